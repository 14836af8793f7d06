"""``GridCredentials``: the Prefect block that says which grid-ops control plane to use, and as whom.

Like ``AwsCredentials`` in prefect-aws, it stores the connection and hands out a client. With no ``url``
the client resolves its control plane as the SDK does: ``GRID_URL``/``GRID_USER_ID``/``GRID_API_KEY``,
then ``$GRID_OPS_HOME/credentials.json``, else the embedded local control plane (started on demand).
"""

from __future__ import annotations

from typing import Any

from prefect.blocks.abstract import CredentialsBlock
from pydantic import Field, SecretStr

from grid_ops.client import GridClient
from grid_ops.errors import ValidationError


class GridCredentials(CredentialsBlock):
    """Where grid-ops runs go: a control plane URL with a user's API key, or the local control plane.

    Example:
        ```python
        from prefect_tasks import GridCredentials

        GridCredentials(url="https://grid.example.com", user_id="alice", api_key="...").save("prod")
        client = GridCredentials.load("prod").get_client()
        ```
    """

    _block_type_name = "Grid Credentials"
    _block_type_slug = "grid-credentials"
    _logo_url = None
    _description = (
        "A grid-ops control plane URL and API key (leave the URL empty for the local control plane). "
        "Documented in docs/prefect.md of grid-ops."
    )
    # _documentation_url stays unset: grid-ops' documentation ships in its repository (docs/prefect.md) and
    # has no published address to link to.
    _code_example = """
```python
from prefect_tasks import GridCredentials

credentials = GridCredentials.load("BLOCK_NAME")
client = credentials.get_client()
```
"""

    url: str | None = Field(
        default=None,
        title="Control plane URL",
        description=(
            "URL of the grid-ops control plane, e.g. https://grid.example.com. Leave empty to use GRID_URL, "
            "the credentials stored by `grid-ops login`, or else the local control plane on this machine."
        ),
    )
    user_id: str | None = Field(
        default=None,
        title="User ID",
        description="Your user id on that control plane (shown by `grid-ops users create` or `grid-ops login`).",
    )
    api_key: SecretStr | None = Field(
        default=None,
        title="API key",
        description="Your API key on that control plane; a secret field, masked in the UI and in logs.",
    )
    cluster_id: str | None = Field(
        default=None,
        title="Cluster ID",
        description="The cluster runs and datastores go to; empty for the control plane's default cluster.",
    )

    def get_client(self, *args: Any, **kwargs: Any) -> GridClient:
        """A ``GridClient`` for these credentials (keyword arguments go to its constructor, e.g. ``timeout``).

        A URL needs a user id and an API key; without a URL both must be empty (the local control plane
        has its own user)."""
        if args:
            raise TypeError("GridCredentials.get_client() takes keyword arguments only (e.g. timeout=30)")
        kwargs.setdefault("cluster_id", self.cluster_id)
        if self.url:
            if not self.user_id or self.api_key is None or not self.api_key.get_secret_value():
                raise ValidationError(
                    f"GridCredentials for {self.url} need user_id and api_key as well; set them on the block "
                    "(`grid-ops users create NAME` on the server prints both)"
                )
            return GridClient(self.url, self.user_id, self.api_key.get_secret_value(), **kwargs)
        if self.user_id or self.api_key is not None:
            raise ValidationError(
                "GridCredentials has user_id or api_key but no url: set url to the control plane they belong "
                "to, or clear them to use the local control plane"
            )
        return GridClient.from_env(**kwargs)
