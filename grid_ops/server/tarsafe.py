"""Safe unpacking of tar archives: the runner's module (``grid_ops/runner/tarsafe.py``), which the control
plane uses too; kept importable here for the control plane's modules."""

from grid_ops.runner.tarsafe import check_members, safe_extract

__all__ = ["check_members", "safe_extract"]
