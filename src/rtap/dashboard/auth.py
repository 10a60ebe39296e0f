"""Who may see the dashboard: anyone on loopback; beyond it, only someone who logged in with its password.

The data (user and session ids among them) is not for whoever reaches the port, and a published Docker port
bypasses host firewalls such as ufw. So:

- :func:`check_exposure` refuses, before anything listens, an address beyond loopback without
  ``RTAP_DASHBOARD_PASSWORD`` (or its scrypt hash, ``RTAP_DASHBOARD_PASSWORD_HASH``, made by
  ``rtap dashboard --hash-password``, so the server's environment need not hold the password itself), and
  without TLS: its own (``RTAP_DASHBOARD_TLS_*``) or a TLS proxy's (``RTAP_DASHBOARD_TRUSTED_PROXIES``), since
  the password travels in the login form.
  An OIDC or other single-sign-on proxy is the other way: keep the dashboard on loopback and let the proxy,
  on the same host, reach it there.
- :class:`Gate` (with a password configured): ``GET /login`` is a form, ``POST /login`` checks the password
  and sets a session cookie (``<expiry>.<HMAC>``, signed with a key made at start: a restart ends every
  session; ``POST /logout`` ends one; HttpOnly, SameSite=Strict, Secure behind TLS). Without a valid cookie a
  page redirects to the form and every other answer is 401, except ``/api/health`` (compose's and
  ``rtap validate``'s liveness probe). Failed logins are limited to :data:`MAX_FAILED_LOGINS` a minute for
  the whole dashboard (429 beyond): a fixed amount of memory, whoever is guessing.

docs/security.md has what each deployment sets.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from collections import deque
from importlib import resources
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from rtap.addresses import ClientAddress
from rtap.errors import ConfigError
from rtap.settings import DashboardSettings, is_loopback

SESSION_COOKIE = "rtap_session"
MAX_FAILED_LOGINS = 10
MAX_REVOKED = 1024
FAILURE_WINDOW_S = 60.0
# A login form is a few dozen bytes; more is not a login.
MAX_LOGIN_BODY = 4096
# scrypt's cost: ~50 ms and 16 MiB per check on a small machine, slow enough to make guessing expensive.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
_OPEN_PATHS = frozenset({"/login", "/api/health"})
_PAGES = frozenset({"/", "/index.html"})


def hash_password(password: str) -> str:
    """``scrypt$N$r$p$<salt>$<key>`` (base64): the value for RTAP_DASHBOARD_PASSWORD_HASH."""
    salt = secrets.token_bytes(16)
    key = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P)
    return "$".join(["scrypt", str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P), _b64(salt), _b64(key)])


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Password:
    """A password check against a scrypt hash (given, or made at start from the plain password)."""

    def __init__(self, encoded: str) -> None:
        try:
            scheme, n, r, p, salt, key = encoded.split("$")
            if scheme != "scrypt":
                raise ValueError(scheme)
            self._n, self._r, self._p = int(n), int(r), int(p)
            self._salt, self._key = _unb64(salt), _unb64(key)
        except ValueError:
            raise ConfigError(
                "RTAP_DASHBOARD_PASSWORD_HASH is not a hash made by `rtap dashboard --hash-password` (scrypt$N$r$p$...)"
            ) from None

    @classmethod
    def from_settings(cls, settings: DashboardSettings) -> Password | None:
        if settings.password_hash is not None:
            return cls(settings.password_hash.get_secret_value())
        if settings.password is not None:
            return cls(hash_password(settings.password.get_secret_value()))
        return None

    def matches(self, candidate: str) -> bool:
        derived = hashlib.scrypt(
            candidate.encode(), salt=self._salt, n=self._n, r=self._r, p=self._p, dklen=len(self._key)
        )
        return hmac.compare_digest(derived, self._key)


def check_exposure(settings: DashboardSettings) -> None:
    """ConfigError if the dashboard would listen beyond loopback without a password (or with a bad hash), or
    where that password would cross the network in clear: neither TLS of its own nor a TLS proxy it trusts."""
    password = Password.from_settings(settings)
    if is_loopback(settings.host):
        return
    if password is None:
        raise ConfigError(
            f"the dashboard would listen on {settings.host}, beyond loopback, without authentication: set "
            "RTAP_DASHBOARD_PASSWORD (or RTAP_DASHBOARD_PASSWORD_HASH from `rtap dashboard --hash-password`), "
            "or keep RTAP_DASHBOARD_HOST=127.0.0.1 (docs/security.md)"
        )
    if not settings.tls and not settings.trusted_proxies and not settings.private_network:
        raise ConfigError(
            f"the dashboard would take its password on {settings.host} in plain HTTP: set "
            "RTAP_DASHBOARD_TLS_CERTIFICATE_FILE and RTAP_DASHBOARD_TLS_KEY_FILE, or put a TLS proxy in front and "
            "list it in RTAP_DASHBOARD_TRUSTED_PROXIES, or set RTAP_DASHBOARD_PRIVATE_NETWORK=true if only this "
            "host reaches the port, or keep RTAP_DASHBOARD_HOST=127.0.0.1 and use an SSH tunnel (docs/security.md)"
        )


class Sessions:
    """Signed session tokens: ``<expiry>.<HMAC-SHA256(key, expiry)>`` with a key of this process only.

    A logged-out token is refused until it expires (the last :data:`MAX_REVOKED` of them: a bounded memory).
    """

    def __init__(self, lifetime_s: float) -> None:
        self._key = secrets.token_bytes(32)
        self.lifetime_s = lifetime_s
        self._revoked: deque[str] = deque(maxlen=MAX_REVOKED)
        self._lock = threading.Lock()

    def issue(self) -> str:
        expires = f"{time.time() + self.lifetime_s:.6f}"  # microseconds: two logins a moment apart differ
        return f"{expires}.{self._sign(expires)}"

    def valid(self, token: str | None) -> bool:
        if not token or token.count(".") != 2:
            return False
        expires, signature = token.rsplit(".", 1)
        if not hmac.compare_digest(signature, self._sign(expires)):
            return False
        with self._lock:
            if token in self._revoked:
                return False
        try:
            return float(expires) > time.time()
        except ValueError:
            return False

    def revoke(self, token: str | None) -> None:
        if self.valid(token):
            with self._lock:
                self._revoked.append(str(token))

    def _sign(self, value: str) -> str:
        return _b64(hmac.new(self._key, value.encode(), hashlib.sha256).digest())


class FailedLogins:
    """At most ``limit`` failed logins per ``window_s`` for the whole dashboard: a bounded window of times."""

    def __init__(self, limit: int = MAX_FAILED_LOGINS, window_s: float = FAILURE_WINDOW_S) -> None:
        self._times: deque[float] = deque(maxlen=limit)
        self._window_s = window_s
        self._lock = threading.Lock()

    def wait_s(self) -> int:
        """Seconds until another attempt is allowed (0: now)."""
        with self._lock:
            if len(self._times) < (self._times.maxlen or 0):
                return 0
            return max(0, int(self._times[0] + self._window_s - time.monotonic()) + 1)

    def record(self) -> None:
        with self._lock:
            self._times.append(time.monotonic())


async def read_login_body(request: Request) -> bytes | None:
    """The login form's body, or None past :data:`MAX_LOGIN_BODY` bytes: counted as it arrives, since a chunked
    body has no length to check first, and it comes before anyone has logged in."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_LOGIN_BODY:
            return None
    return body


def _from_loopback(request: Request) -> bool:
    return request.client is not None and is_loopback(request.client.host)


class Gate:
    """ASGI middleware: the login form, and a session required for everything else (see the module docstring)."""

    def __init__(
        self, app: ASGIApp, password: Password, lifetime_s: float, proxies: ClientAddress, *, plain_logins: bool
    ) -> None:
        self._app = app
        self._password = password
        self._proxies = proxies
        # Whether a password may arrive in plain HTTP from any peer: on loopback, or on a network the operator
        # says stays on this host (RTAP_DASHBOARD_PRIVATE_NETWORK). Otherwise only over TLS or from loopback.
        self._plain_logins = plain_logins
        self._sessions = Sessions(lifetime_s)
        self._failures = FailedLogins()
        self._form = (resources.files("rtap.dashboard") / "static" / "login.html").read_text(encoding="utf-8")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        request = Request(scope, receive)
        path = request.url.path
        if path == "/login":
            response = await self._login(request) if request.method == "POST" else self._page()
        elif path == "/logout" and request.method == "POST":
            self._sessions.revoke(request.cookies.get(SESSION_COOKIE))
            response = RedirectResponse("/login", status_code=303)
            response.delete_cookie(SESSION_COOKIE, path="/")
        elif path in _OPEN_PATHS or self._sessions.valid(request.cookies.get(SESSION_COOKIE)):
            await self._app(scope, receive, send)
            return
        elif path in _PAGES:
            response = RedirectResponse("/login", status_code=303)
        else:
            response = JSONResponse({"detail": "log in at /login"}, status_code=401)
        await response(scope, receive, send)

    def _page(self, status: int = 200, message: str = "") -> HTMLResponse:
        return HTMLResponse(self._form.replace("$message", message), status_code=status)

    async def _login(self, request: Request) -> Response:
        if not (self._plain_logins or self._over_tls(request) or _from_loopback(request)):
            # Refused before the body is read: the password in it has crossed the network in clear already,
            # but is never checked, so a login page served over plain HTTP by mistake cannot be used.
            return self._page(403, "Log in over https: this address takes no password in plain HTTP.")
        wait = self._failures.wait_s()
        if wait:
            refused = self._page(429, "Too many failed logins: try again in a minute.")
            refused.headers["Retry-After"] = str(wait)
            return refused
        if int(request.headers.get("content-length") or 0) > MAX_LOGIN_BODY:
            return self._page(413, "That is not a login.")
        body = await read_login_body(request)
        if body is None:
            return self._page(413, "That is not a login.")
        candidate = parse_qs(body.decode("utf-8", errors="replace")).get("password", [""])[0]
        if not candidate or not self._password.matches(candidate):
            self._failures.record()
            return self._page(401, "Wrong password.")
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            self._sessions.issue(),
            max_age=int(self._sessions.lifetime_s),
            path="/",
            httponly=True,
            samesite="strict",
            secure=self._over_tls(request),
        )
        return response

    def _over_tls(self, request: Request) -> bool:
        """Whether the browser reached the dashboard over TLS: directly, or through a trusted proxy that says so
        (``X-Forwarded-Proto``); the session cookie is then ``Secure``, never sent over plain HTTP."""
        if request.url.scheme == "https":
            return True
        peer = request.client.host if request.client else None
        return self._proxies.trusts(peer) and request.headers.get("x-forwarded-proto") == "https"
