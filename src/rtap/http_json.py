"""JSON over HTTP, the one place where httpx errors become rtap errors (``rtap validate``'s checks, the
Metabase provisioning).

A request that cannot reach a service, or gets an error status or a body that is not JSON, must turn into
one readable line ("GET http://host:8050/api/health: connection refused"), not a traceback. So every
request goes through :func:`request_json`, which raises :class:`~rtap.errors.ServiceError` (or the subclass
the caller names) with the method, the URL and the reason.

A 429 or 503 that says when to come back (``Retry-After`` in seconds, as rtap's dashboard and collector send
it under load) is tried again after that long, a few times and never for longer than ``_MAX_WAIT_S`` in all,
as an HTTP client library does: a busy service is not a failed one. Without ``Retry-After`` it is an error at
once (the dashboard's 503 for a warehouse it cannot reach says nothing about when).
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from rtap.errors import ConfigError, ServiceError

# Enough of an error body to show the server's reason without flooding the terminal.
_BODY_EXCERPT = 200
_RETRYABLE = frozenset({429, 503})
_MAX_TRIES = 4
_MAX_WAIT_S = 30.0  # summed over one request's waits


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
    sleep: Callable[[float], None] = time.sleep,
) -> Any:
    """The JSON body of a 2xx answer (None for an empty one); ``error`` naming the request for anything else.
    A 429 or 503 with ``Retry-After`` is tried again as it says (see the module docstring)."""
    where = f"{method} {client.build_request(method, path).url}"
    attempt, waited = 0, 0.0
    while True:
        attempt += 1
        try:
            response = client.request(method, path, params=params, json=body)
        except httpx.TimeoutException as exc:
            raise error(f"{where}: no answer within {client.timeout.read} s") from exc
        except httpx.HTTPError as exc:
            raise error(f"{where}: {exc or type(exc).__name__}") from exc
        wait = retry_after_s(response.status_code, response.headers.get("retry-after"))
        if wait is None or attempt == _MAX_TRIES or waited + wait > _MAX_WAIT_S:
            break
        sleep(wait)
        waited += wait
    if not response.is_success:
        excerpt = " ".join(response.text.split())[:_BODY_EXCERPT]
        tried = f" (after {attempt} tries over {waited:g} s)" if attempt > 1 else ""
        raise error(f"{where}: HTTP {response.status_code} {excerpt}{tried}".rstrip())
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError as exc:
        raise error(f"{where}: the answer is not JSON") from exc


def retry_after_s(status: int, retry_after: str | None) -> float | None:
    """How long a 429 or 503 (``status``) asks the client to wait before trying again, by its ``Retry-After``
    header (None: absent); None for any other answer, or one whose header is not a number of seconds (an HTTP
    date is not honoured: rtap never sends one). Any HTTP client's answer can be read, not only httpx's."""
    if status not in _RETRYABLE or retry_after is None:
        return None
    value = retry_after.strip()
    return float(value) if value.isdigit() else None
