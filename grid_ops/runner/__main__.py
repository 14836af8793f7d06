"""``python -I -S grid_ops/runner/__main__.py -- COMMAND...``: run one experiment's command under its
supervisor (see ``supervise.py``). Also works as ``python -m grid_ops.runner -- COMMAND...``.

``--spare``: start, then wait for one job on standard input (a JSON line: ``argv``, ``env``, ``cwd``,
``log``) and run it. An executor keeps one such spare ready, so that the interpreter's start-up is paid
while the previous experiment runs rather than between two experiments.
"""

import os
import sys

if __name__ == "__main__":
    # Imported from this folder rather than as ``grid_ops.runner``: the package and its imports stay out
    # of the supervisor, which starts once per experiment.
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import supervise

    if sys.argv[1:2] == ["--spare"]:
        supervise.main_spare()
    else:
        supervise.main(sys.argv[1:])
