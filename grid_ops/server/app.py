"""The FastAPI application: routers, error shape, and the scheduler's life with the app's."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from grid_ops.server.auth import Authenticator
from grid_ops.server.config import ServerConfig
from grid_ops.server.datastore_ingest import datastore_service
from grid_ops.server.db import init_db, make_engine, sqlite_url
from grid_ops.server.errors import install_handlers
from grid_ops.server.executors.base import Executor
from grid_ops.server.executors.local import LocalExecutor
from grid_ops.server.routers import (
    artifacts,
    auth,
    clusters,
    datastore_transfer,
    datastores,
    experiments,
    metrics,
    runner,
    runs,
)
from grid_ops.server.scheduler import Scheduler
from grid_ops.server.state import AppState, load_secret
from grid_ops.version import __version__


def build_executors(config: ServerConfig, state_dir: Path, scheduler: Scheduler) -> dict[str, Executor]:
    """One executor per configured cluster."""
    out: dict[str, Executor] = {}
    for cluster in config.clusters.values():
        if cluster.executor == "local":
            # options.source_transfer: "local" (default) lets runners read a run's snapshot from the state
            # directory; "http" makes them download it, as runners on other machines do
            out[cluster.id] = LocalExecutor(
                scheduler.report,
                state_dir / "clusters" / cluster.id,
                cluster.capacity.gpu,
                datastore_cache=state_dir / "datastore-cache",
                env_cache=state_dir / "env-cache",
                source_cache=state_dir / "source-cache",
                local_files=cluster.options.get("source_transfer", "local") != "http",
                datastore_cache_max_bytes=config.datastores.node_cache_max_bytes,
            )
        elif cluster.executor == "ray":
            from grid_ops.server.executors.ray import RayExecutor  # imports Ray's job client: only when used

            out[cluster.id] = RayExecutor(
                scheduler.report, cluster, state_dir / "clusters" / cluster.id, config.cancel_grace_seconds
            )
    return out


def create_app(
    config: ServerConfig,
    state_dir: Path,
    db_url: str | None = None,
    on_started: Callable[[AppState], None] | None = None,
    on_stopping: Callable[[AppState], None] | None = None,
    public_url: str | None = None,
) -> FastAPI:
    """A control plane keeping its files under ``state_dir`` and its records in ``db_url``."""
    state_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(db_url or sqlite_url(state_dir))
    sessions = init_db(engine)
    scheduler = Scheduler(config, sessions, state_dir)
    scheduler.executors.update(build_executors(config, state_dir, scheduler))
    state = AppState(
        config=config,
        sessions=sessions,
        scheduler=scheduler,
        auth=Authenticator(),
        state_dir=state_dir,
        secret=load_secret(sessions),
    )
    scheduler.public_url = public_url
    scheduler.runner_token = lambda experiment_id: state.sign("runner", experiment_id)
    datastore_worker = datastore_service(config, state_dir, sessions, state.sign)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        scheduler.start()
        datastore_worker.start()
        if on_started is not None:
            on_started(state)
        try:
            yield
        finally:
            if on_stopping is not None:
                on_stopping(state)
            datastore_worker.stop()
            scheduler.stop()
            engine.dispose()

    app = FastAPI(
        title="grid-ops control plane",
        version=__version__,
        description="Runs, experiments and clusters in the Grid v1 REST dialect.",
        lifespan=lifespan,
    )
    app.state.grid = state
    app.state.datastores = datastore_worker.runtime
    install_handlers(app)

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    for router in (auth.router, clusters.router, runs.router, experiments.router):
        app.include_router(router)
    for router in (metrics.router, artifacts.router, runner.router):
        app.include_router(router)
    for router in (datastores.router, datastores.files_router, datastore_transfer.router):
        app.include_router(router)
    return app
