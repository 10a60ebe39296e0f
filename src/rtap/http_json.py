"""JSON over HTTP, the one place where httpx errors become rtap errors (``rtap validate``'s checks, the
Metabase provisioning).

A request that cannot reach a service, or gets an error status or a body that is not JSON, must turn into
one readable line ("GET http://host:8050/api/health: connection refused"), not a traceback. So every
request goes through :func:`request_json`, which raises :class:`~rtap.errors.ServiceError` (or the subclass
the caller names) with the method, the URL and the reason.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from typing import Any

import httpx

from rtap.errors import ConfigError, ServiceError

# Enough of an error body to show the server's reason without flooding the terminal.
_BODY_EXCERPT = 200


def base_url(url: str, option: str) -> str:
    """``url`` without a trailing slash, after checking it is an absolute http(s) URL."""
    parsed = httpx.URL(url)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ConfigError(f"{option} must be an http:// or https:// URL with a host, got {url!r}")
    return url.rstrip("/")


def new_client(
    url: str, timeout_s: float, transport: httpx.BaseTransport | None = None, *, ca_file: str | None = None
) -> httpx.Client:
    """A client for one service; ``transport`` lets unit tests answer with ``httpx.MockTransport``; ``ca_file``
    verifies an https service against that CA bundle instead of the system's (a private CA's certificate)."""
    verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=ca_file) if ca_file else True
    return httpx.Client(base_url=url, timeout=timeout_s, transport=transport, follow_redirects=True, verify=verify)


def request_json(
    client: httpx.Client,
    method: str,
    path: str,
    *,
    params: Mapping[str, Any] | None = None,
    body: Any = None,
    error: type[ServiceError] = ServiceError,
) -> Any:
    """The JSON body of a 2xx answer (None for an empty one); ``error`` naming the request for anything else."""
    where = f"{method} {client.build_request(method, path).url}"
    try:
        response = client.request(method, path, params=params, json=body)
    except httpx.TimeoutException as exc:
        raise error(f"{where}: no answer within {client.timeout.read} s") from exc
    except httpx.HTTPError as exc:
        raise error(f"{where}: {exc or type(exc).__name__}") from exc
    if not response.is_success:
        excerpt = " ".join(response.text.split())[:_BODY_EXCERPT]
        raise error(f"{where}: HTTP {response.status_code} {excerpt}".rstrip())
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError as exc:
        raise error(f"{where}: the answer is not JSON") from exc
