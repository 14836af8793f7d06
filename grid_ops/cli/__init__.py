"""The ``grid-ops`` (also ``grid``) command line: runs, experiments, clusters, the local and deployed
control plane, and users. The click group is ``grid_ops.cli.main.cli``; ``main()`` is the entry point."""
