"""``python -m grid_ops.cli``: the same as the ``grid-ops`` command."""

from grid_ops.cli.main import main

if __name__ == "__main__":
    main(prog_name="grid-ops")
