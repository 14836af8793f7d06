"""``Datastore``: a versioned, immutable dataset, uploaded from a directory, a file, an ``http(s)`` URL or
an ``s3://`` prefix, and ``list_datastores``.

``Datastore(source=...)`` prepares a new version (the server assigns its number on ``upload()``);
``Datastore(name=..., version=N)`` without a source loads an existing version. ``snapshot_status`` reads
``uploading``, ``optimizing`` (the server unpacks or fetches), ``succeeded``, ``failed`` or ``deleted``.
"""

from __future__ import annotations

import textwrap
from datetime import datetime
from pathlib import Path

from grid_ops import schemas
from grid_ops.client import GridClient, get_client
from grid_ops.datastore_names import name_from_source, validate_datastore_name
from grid_ops.errors import GridError, NotFoundError, ValidationError
from grid_ops.upload.progress import Progress
from grid_ops.upload.uploader import DatastoreUploader, UploadStats

_PHASE_WORDS = {
    schemas.DatastoreOptimizationStatus.UNSPECIFIED: "uploading",
    schemas.DatastoreOptimizationStatus.OPTIMIZING: "optimizing",
    schemas.DatastoreOptimizationStatus.POD_PENDING: "optimizing",
    schemas.DatastoreOptimizationStatus.CLOUD_RESOURCES_PENDING: "optimizing",
    schemas.DatastoreOptimizationStatus.SUCCEEDED: "succeeded",
    schemas.DatastoreOptimizationStatus.FAILED: "failed",
    schemas.DatastoreOptimizationStatus.DELETED: "deleted",
}


def datastore_status(phase: schemas.DatastoreOptimizationStatus | None) -> str:
    """The lowercase word for a version's phase (``uploading`` for the wire's unspecified phase)."""
    return _PHASE_WORDS.get(phase or schemas.DatastoreOptimizationStatus.UNSPECIFIED, "uploading")


def _check_version(version: object) -> int:
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValidationError(f"datastore version must be a whole number >= 1, got {version!r}")
    return version


class Datastore:
    """Initialize a new DataStore Object.

    If a DataStore with the given name and version already exists (and no ``source`` is given), the object
    returned interacts with the existing DataStore. With ``source`` (a local directory or file, an
    ``http(s)`` URL, or ``s3://bucket/prefix/``), ``upload()`` creates the next version of ``name`` (default:
    the source's last path component); ``compression=True`` packs a directory into one gzip tar for the
    upload, which the server unpacks into the original structure. An interrupted ``upload()`` resumes when
    it is called again with the same arguments. ``user`` and ``team`` are accepted for compatibility: a
    datastore always belongs to the caller. ``client`` (keyword-only) selects the control plane.
    """

    def __init__(
        self,
        name: str | None = None,
        source: str | Path | None = None,
        team: str | None = None,
        user: str | None = None,
        version: int = 1,
        compression: bool | None = None,
        cluster_id: str | None = None,
        *,
        client: GridClient | None = None,
    ) -> None:
        self._client = client
        self._wire: schemas.Datastore | None = None
        self._deleted = False
        self._last_upload: UploadStats | None = None
        self._source = str(source) if source is not None else None
        self._compression = bool(compression)
        self._team, self._user = team, user
        self._cluster_id = cluster_id
        if self._source is None:
            if name is None:
                raise ValidationError(
                    "a Datastore needs a name (to load an existing one, e.g. Datastore(name='churn', version=2)) "
                    "or a source (to upload one, e.g. Datastore(source='./data'))"
                )
            self._name = validate_datastore_name(name)
            self._load(name, _check_version(version))
        else:
            self._name = validate_datastore_name(name) if name is not None else name_from_source(self._source)

    @classmethod
    def _from_wire(cls, wire: schemas.Datastore, client: GridClient | None = None) -> Datastore:
        """A Datastore around an already fetched version (no request)."""
        ds = cls.__new__(cls)
        ds._client, ds._wire, ds._deleted, ds._last_upload = client, wire, False, None
        ds._source, ds._compression, ds._team, ds._user = None, False, None, None
        ds._cluster_id, ds._name = wire.spec.cluster_id, wire.name
        return ds

    def _api(self) -> GridClient:
        if self._client is None:
            self._client = get_client()
        return self._client

    def _load(self, name: str, version: int) -> None:
        try:
            self._wire = self._api().get_datastore(f"{name}:{version}", cluster_id=self._cluster_id)
        except NotFoundError as exc:
            raise NotFoundError(
                f"datastore {name!r} version {version} does not exist (or is not yours): {exc.message}. To "
                f"upload it, pass source= as well, e.g. Datastore(name={name!r}, source='./data')",
                status_code=exc.status_code,
                details=[exc.message],
            ) from None
        self._cluster_id = self._wire.spec.cluster_id

    def _uploaded(self, action: str) -> schemas.Datastore:
        if self._deleted:
            raise GridError(f"datastore {self._name!r} was deleted; cannot {action} it")
        if self._wire is None:
            raise GridError(f"datastore {self._name!r} has not been uploaded; call upload() before you {action} it")
        return self._wire

    # ------------------------------------------------------------------ properties

    @property
    def id(self) -> str | None:
        """The version's id on the control plane (``None`` before ``upload()``)."""
        return self._wire.id if self._wire else None

    @property
    def name(self) -> str:
        """The name of the datastore."""
        return self._name

    @property
    def version(self) -> int | None:
        """The version of the datastore (assigned by the server on ``upload()``)."""
        return self._wire.spec.version if self._wire else None

    @property
    def source(self) -> str | None:
        """The directory, file or URL the datastore is uploaded from (for loaded versions: the URL of a
        remote source, else ``None``)."""
        if self._source is not None:
            return self._source
        return (self._wire.spec.source or None) if self._wire else None

    @property
    def compression(self) -> bool:
        """Whether the data is (or was) packed into one gzip tar for the upload."""
        if self._wire is not None and self._source is None:
            return self._wire.spec.source_type == schemas.DatastoreSourceType.COMPRESSED_FILE
        return self._compression

    @property
    def user(self) -> str | None:
        """The id of the user who owns the datastore."""
        return self._wire.spec.user_id if self._wire else self._user

    @property
    def team(self) -> str | None:
        """The team of the owner, if they have one."""
        return (self._wire.spec.team if self._wire else None) or self._team

    @property
    def created_at(self) -> datetime | None:
        """When this version was created (``None`` before ``upload()``)."""
        return self._wire.created_at if self._wire else None

    @property
    def size(self) -> int:
        """Size of the datastore version in bytes (0 until it is complete)."""
        return (self._wire.spec.size_bytes or 0) if self._wire else 0

    @property
    def file_count(self) -> int:
        """How many files the version holds (0 until it is complete)."""
        return (self._wire.spec.file_count or 0) if self._wire else 0

    @property
    def snapshot_status(self) -> str:
        """``not uploaded``, ``uploading``, ``optimizing``, ``succeeded``, ``failed`` or ``deleted`` (as of the
        last fetch; see ``refresh()``)."""
        if self._deleted:
            return "deleted"
        return datastore_status(self._wire.status.phase) if self._wire else "not uploaded"

    @property
    def message(self) -> str | None:
        """Why the version is in its state (e.g. the reason it failed)."""
        return self._wire.status.message if self._wire else None

    @property
    def cluster_id(self) -> str | None:
        """ID of the cluster which this datastore is uploaded to."""
        return self._wire.spec.cluster_id if self._wire else self._cluster_id

    @property
    def last_upload(self) -> UploadStats | None:
        """What the last ``upload()`` of this object did: bytes sent, content already stored, time taken."""
        return self._last_upload

    # ------------------------------------------------------------------ actions

    def upload(self, *, progress: Progress | None = None) -> bool:
        """Uploads the contents of the directories referenced by this datastore instance to Grid.

        Returns when the version is complete (and, with compression or a remote source, unpacked or
        fetched by the server). If uploading is interrupted, calling ``upload()`` again on an object made
        with the same arguments resumes it, sending only what is missing. ``progress`` (keyword-only)
        receives progress callbacks.
        """
        if self._deleted:
            raise GridError(f"datastore {self._name!r} was deleted; create a new Datastore(...) to upload again")
        if self._wire is not None:
            raise GridError(
                f"version {self._wire.spec.version} of datastore {self._name!r} is uploaded already "
                f"({self.snapshot_status}); create a new Datastore(source=...) to upload another version"
            )
        if self._source is None:
            raise ValidationError(f"datastore {self._name!r} has no source to upload; pass source= to Datastore(...)")
        uploader = DatastoreUploader(self._api(), progress=progress)
        result = uploader.upload(self._name, self._source, self._compression, self._cluster_id)
        self._wire, self._last_upload = result.datastore, result.stats
        self._cluster_id = result.datastore.spec.cluster_id
        return True

    def refresh(self) -> Datastore:
        """Fetch the version again (its status may have moved on); returns ``self``."""
        wire = self._uploaded("refresh")
        self._wire = self._api().get_datastore(wire.id, cluster_id=wire.spec.cluster_id)
        return self

    def delete(self) -> bool:
        """Deletes the datastore version from the grid system (and any saved progress of its upload)."""
        wire = self._uploaded("delete")
        self._api().delete_datastore(wire.id, cluster_id=wire.spec.cluster_id)
        DatastoreUploader(self._api()).forget(wire.id)
        self._deleted = True
        return True

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Datastore):
            return NotImplemented
        return (self.name, self.version, self.user) == (other.name, other.version, other.user)

    def __hash__(self) -> int:
        return hash((self.name, self.version, self.user))

    def __repr__(self) -> str:
        fields = {
            "name": self.name,
            "version": self.version,
            "status": self.snapshot_status,
            "size": self.size,
            "source": self.source,
            "cluster_id": self.cluster_id,
            "created_at": self.created_at,
        }
        body = "\n".join(f"{key:<11} = {value!r}," for key, value in fields.items())
        return f"{type(self).__name__}(\n{textwrap.indent(body, '    ')}\n)"


def list_datastores(
    cluster_id: str | None = None, is_global: bool = False, *, client: GridClient | None = None
) -> list[Datastore]:
    """List your datastore versions on a cluster (default: the default cluster), by name and version.

    Deleted versions are left out. ``is_global`` is accepted for compatibility: a user only ever sees their
    own datastores."""
    del is_global  # other users' datastores are never visible (users see only their own resources)
    api = client or get_client()
    return [Datastore._from_wire(d, api) for d in api.iter_datastores(cluster_id=cluster_id)]
