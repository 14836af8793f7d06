"""One operation of the ORIGINAL Grid SDK (lightning-grid 0.8.81), run as its own process.

Run by tests/compat with the compat env's python and an environment that points the SDK at our control
plane (``HOME``, ``GRID_URL``, ``GRID_USER_ID``, ``GRID_API_KEY``, ``GRID_CLUSTER_ID``), which the SDK reads
when ``grid`` is first imported. Only the SDK's public API is used. What the SDK answered is printed as
one last line ``RESULT <json>``; an exception from the SDK ends the process with its traceback, as it
would for a user.

    python grid_sdk.py start NAME COMMAND [INSTANCE_TYPE]   (cwd = the project directory to upload)
    python grid_sdk.py run NAME | cancel-run NAME | delete-run NAME
    python grid_sdk.py experiment NAME | cancel-experiment NAME | delete-experiment NAME
    python grid_sdk.py clusters
    python grid_sdk.py datastore-upload NAME SOURCE | datastore NAME VERSION
    python grid_sdk.py start-mounting NAME COMMAND INSTANCE_TYPE DATASTORE VERSION MOUNT_DIR
"""

from __future__ import annotations

import json
import sys
from typing import Any

from grid.sdk import Datastore, Experiment, Resources, Run, get_instance_types, list_clusters


def run_info(run: Run) -> dict[str, Any]:
    return {
        "name": run.name,
        "id": run.id,
        "status": run.status.value,
        "desired_status": run.desired_status.value,
        "run_command": run.run_command,
        "cluster_id": run.cluster_id,
        "instance_type": run.resources.instance_type,
        "num_experiments": len(run.experiments),
        "experiment_ids": [e.id for e in run.experiments],
        "created_at": run.created_at.isoformat() if run.created_at else None,
    }


def experiment_info(exp: Experiment) -> dict[str, Any]:
    return {
        "name": exp.name,
        "id": exp.id,
        "status": exp.status.value,
        "desired_state": exp.desired_state.value,
        "command": exp.command,
        "run_name": exp.run_name,
        "cluster_id": exp.cluster_id,
        "instance_type": exp.instance_type,
    }


def datastore_info(ds: Datastore) -> dict[str, Any]:
    return {
        "name": ds.name,
        "id": ds.id,
        "version": ds.version,
        "status": ds.status,
        "size": ds.size,
        "cluster_id": ds.cluster_id,
    }


def main(argv: list[str]) -> Any:
    op, args = argv[0], argv[1:]
    if op == "start":
        name, command = args[0], args[1]
        # without an instance type the SDK sends its own default, t2.medium
        resources = Resources(instance_type=args[2]) if len(args) > 2 else None
        run = Run(name=name, run_command=command, localdir=True, resources=resources)
        run.start()
        return run_info(run)
    if op == "start-git":
        name, command, instance_type, url = args
        run = Run(name=name, run_command=command, url=url, resources=Resources(instance_type=instance_type))
        run.start()
        return run_info(run)
    if op == "run":
        run = Run(args[0])
        info = run_info(run)
        info["experiments"] = [experiment_info(e) for e in run.experiments]
        return info
    if op == "cancel-run":
        run = Run(args[0])
        run.cancel()
        return run_info(run)
    if op == "delete-run":
        return {"deleted": Run(args[0]).delete()}
    if op == "experiment":
        return experiment_info(Experiment(args[0]))
    if op == "cancel-experiment":
        exp = Experiment(args[0])
        exp.cancel()
        return experiment_info(exp)
    if op == "delete-experiment":
        return {"deleted": Experiment(args[0]).delete()}
    if op == "datastore-upload":
        ds = Datastore(name=args[0], source=args[1])
        ds.upload()
        return datastore_info(ds)
    if op == "datastore":
        # 0.8.81 finds an existing datastore by name only together with its version
        return datastore_info(Datastore(name=args[0], version=int(args[1])))
    if op == "start-mounting":
        name, command, instance_type, ds_name, version, mount = args
        datastore = Datastore(name=ds_name, version=int(version))
        run = Run(
            name=name,
            run_command=command,
            localdir=True,
            resources=Resources(instance_type=instance_type),
            datastore=datastore,
            datastore_mount_dir=mount,
        )
        run.start()
        return run_info(run)
    if op == "clusters":
        listed = list_clusters()
        types = get_instance_types("local")
        return {
            "default_cluster": listed.default_cluster,
            "clusters": [
                {"id": c.id, "name": c.name, "type": str(c.spec.cluster_type), "phase": str(c.status.phase)}
                for c in listed.clusters
            ],
            "instance_types": [
                {"name": t.name, "cpu": t.cpu, "gpu": t.gpu, "memory": t.memory, "hourly_cost": t.hourly_cost,
                 "spot": t.spot}
                for t in types
            ],
        }
    raise SystemExit(f"unknown operation {op!r}")


if __name__ == "__main__":
    answer = main(sys.argv[1:])
    print("\nRESULT " + json.dumps(answer), flush=True)  # on a line of its own, after any progress display
