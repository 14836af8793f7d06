"""``python -m grid_ops.server``: a control plane in the foreground (``--embedded`` for the local default)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from grid_ops.server.serve import serve


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m grid_ops.server", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--db", default=None, help="database URL (default: SQLite under the state directory)")
    parser.add_argument("--config", default=None, help="server config YAML (clusters, instance types)")
    parser.add_argument("--state-dir", type=Path, default=None)
    parser.add_argument("--embedded", action="store_true", help="run as the embedded local control plane")
    parser.add_argument("--home", type=Path, default=None, help="GRID_OPS_HOME for --embedded")
    parser.add_argument(
        "--heartbeat-timeout", type=float, default=None, help="seconds without a heartbeat before an experiment fails"
    )
    args = parser.parse_args(argv)
    home = None
    if args.embedded:
        home = args.home or Path(os.environ.get("GRID_OPS_HOME", Path.home() / ".grid_ops"))
    serve(args.host, args.port, args.db, args.config, args.state_dir, home, heartbeat_timeout=args.heartbeat_timeout)


if __name__ == "__main__":
    main()
