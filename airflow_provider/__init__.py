"""The Airflow provider of grid-ops: a ``grid`` connection, operators for sweeps and datastore uploads,
sensors, triggers for deferrable mode, and a link to the run.

Airflow finds ``get_provider_info()`` through the ``apache_airflow_provider`` entry point of the
``grid-ops`` distribution (pyproject.toml).
"""

from __future__ import annotations

from typing import Any

PACKAGE_NAME = "grid-ops"
INTEGRATION = "grid-ops"


def _version() -> str:
    from grid_ops.version import package_version

    return package_version()


def get_provider_info() -> dict[str, Any]:
    """What this provider offers, in the shape of Airflow's ``provider_info.schema.json``."""
    modules = "airflow_provider"
    return {
        "package-name": PACKAGE_NAME,
        "name": "grid-ops",
        "description": "Hyperparameter sweeps and versioned datastores on a grid-ops control plane.",
        "versions": [_version()],
        "integrations": [
            {
                "integration-name": INTEGRATION,
                "external-doc-url": "https://pypi.org/project/grid-ops/",
                "tags": ["software"],
            }
        ],
        "hooks": [{"integration-name": INTEGRATION, "python-modules": [f"{modules}.hooks.grid"]}],
        "operators": [
            {
                "integration-name": INTEGRATION,
                "python-modules": [f"{modules}.operators.run", f"{modules}.operators.datastore"],
            }
        ],
        "sensors": [{"integration-name": INTEGRATION, "python-modules": [f"{modules}.sensors.grid"]}],
        "triggers": [{"integration-name": INTEGRATION, "python-modules": [f"{modules}.triggers.grid"]}],
        "extra-links": [f"{modules}.links.grid.GridRunLink"],
        "connection-types": [
            {
                "connection-type": "grid",
                "hook-class-name": f"{modules}.hooks.grid.GridHook",
                "hook-name": "Grid",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port"],
                    "relabeling": {"host": "Control plane URL", "login": "User id", "password": "API key"},
                    "placeholders": {
                        "host": "http://127.0.0.1:8080",
                        "login": "the user id `grid-ops users create` printed",
                        "password": "the API key `grid-ops users create` printed",
                    },
                },
                "conn-fields": {
                    "cluster_id": {
                        "label": "Cluster",
                        "description": "The cluster runs and datastores go to (empty: the server's default).",
                        "schema": {"type": ["string", "null"]},
                    }
                },
            }
        ],
    }
