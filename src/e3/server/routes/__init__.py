"""The API's routes, one module per resource; each lists its :class:`~e3.server.http.Endpoint` s.

Handlers translate HTTP to porcelain calls (:class:`~e3.api.local.LocalRepository`)
and back, and nothing else.
"""

from __future__ import annotations

from e3.server.http import Endpoint


def all_endpoints() -> list[Endpoint]:
    """Every endpoint of the API, in a stable order."""
    from e3.server.routes import (
        dataflow,
        datasets,
        events,
        packages,
        repos,
        transfers,
        ui,
        workspaces,
    )

    return [
        *repos.ENDPOINTS,
        *packages.ENDPOINTS,
        *transfers.ENDPOINTS,
        *workspaces.ENDPOINTS,
        *datasets.ENDPOINTS,
        *dataflow.ENDPOINTS,
        *ui.ENDPOINTS,
        *events.ENDPOINTS,
    ]
