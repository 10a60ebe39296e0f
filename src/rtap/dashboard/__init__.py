"""Dashboards as code: one definition (dashboards.yaml), the built-in web dashboard, Metabase provisioning.

``create_app(settings, client)`` and ``serve_dashboard(settings, client)`` are imported lazily so that
``rtap --help`` does not pay for FastAPI and uvicorn.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rtap.dashboard.api import create_app
    from rtap.dashboard.server import DashboardServer, serve_dashboard

__all__ = ["DashboardServer", "create_app", "serve_dashboard"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from rtap.dashboard.api import create_app

        return create_app
    if name in {"serve_dashboard", "DashboardServer"}:
        from rtap.dashboard import server

        return getattr(server, name)
    raise AttributeError(f"module 'rtap.dashboard' has no attribute {name!r}")
