"""The collector's routes (docs/collector.md has the wire protocol with examples):

- ``POST /v1/batch``: ``{"write_key", "sent_at", "events": [...]}``, JSON or ``text/plain`` (sendBeacon),
  gzip accepted;
- ``POST /v1/event``: one event with ``write_key`` and ``sent_at`` inside it;
- ``GET /v1/pixel.gif?key=K&e=<JSON event>&sent_at=T``: a 1x1 GIF, for pages without JavaScript;
- ``OPTIONS`` on the two POST routes: CORS preflights, answered for the key's origins only;
- ``GET /healthz`` (the sink's health: 200 or 503), ``GET /metrics`` (Prometheus: with basic auth when
  ``RTAP_METRICS_PASSWORD`` is set, and not served at all beyond loopback without it, rtap.collect.server);
- ``GET /tracker.js`` and ``/shop/...``: the browser tracker and the demo shop (``static/``).

The write key comes from ``X-Rtap-Write-Key`` or ``?key=`` (checked before the body is read), else from the
body. Every request is accepted whole or refused whole (rtap.collect.api).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from rtap import metrics as rtap_metrics
from rtap.addresses import ClientAddress, client_key
from rtap.collect import payload
from rtap.collect.api import Reason, Refused, accepted, refusal
from rtap.collect.keys import Site, WriteKeys, cors_headers, preflight_headers, referer_origin
from rtap.collect.limiters import RateLimiter
from rtap.collect.records import encode, fill_pixel, received_now, server_fields
from rtap.collect.sinks import Sink
from rtap.metrics.collector import CollectorMetrics, CollectorRequestMetrics
from rtap.metrics.endpoint import ScrapeAuth
from rtap.settings import CollectorSettings

STATIC = Path(__file__).parent / "static"
# The smallest transparent GIF: 1x1, one colour, the image a tracking pixel answers with.
PIXEL_GIF = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\x00\x00\x00!\xf9\x04\x01\x00\x00\x00\x00"
    b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)
_NO_STORE = {"Cache-Control": "no-store"}
# The tracker changes with rtap's version: pages pick up a new one within minutes.
_TRACKER_CACHE = {"Cache-Control": "public, max-age=300"}


class Collector:
    """The request handlers of one collector: its keys, limits, client addresses, sink and metrics."""

    def __init__(self, settings: CollectorSettings, sink: Sink, keys: WriteKeys, metrics: CollectorMetrics) -> None:
        self._settings = settings
        self._sink = sink
        self._keys = keys
        self._metrics = metrics
        self._limiter = RateLimiter(settings, keys=max(len(settings.write_keys), 1))
        self._addresses = ClientAddress(settings.trusted_proxies)

    async def batch(self, request: Request) -> Response:
        return await self._post(request, single=False)

    async def event(self, request: Request) -> Response:
        return await self._post(request, single=True)

    async def _post(self, request: Request, *, single: bool, store: bool = True) -> Response:
        """A POST route's work; ``store=False`` stops short of the sink (the benchmark's ceiling)."""
        received_at = received_now()
        origin = request.headers.get("origin")
        cors = cors_headers(origin)
        try:
            given_key = request.headers.get("x-rtap-write-key") or (
                request.query_params.get("key") if request.scope["query_string"] else None
            )
            if given_key is not None:  # refused before reading a body it would not take
                self._keys.site(given_key, origin)
            body = await payload.read_body(
                request.stream(),
                content_length=request.headers.get("content-length"),
                content_encoding=request.headers.get("content-encoding"),
                limit=self._settings.max_body_bytes,
                timeout_s=self._settings.body_timeout_s,
            )
            document = payload.parse_json(body)
            envelope = payload.single(document) if single else payload.batch(document, self._settings.max_batch_events)
            key = given_key or envelope.write_key
            site = self._keys.site(key, origin)
            assert key is not None  # site() refuses a missing key
            count = await self._accept(request, envelope, key, site, received_at, store=store)
        except Refused as refused:
            return self._refuse(refused, cors)
        return accepted(count, cors)

    async def noop_batch(self, request: Request) -> Response:
        return await self._post(request, single=False, store=False)

    async def noop_event(self, request: Request) -> Response:
        return await self._post(request, single=True, store=False)

    async def pixel(self, request: Request) -> Response:
        received_at = received_now()
        origin = request.headers.get("origin")
        try:
            params = payload.query(request.scope["query_string"])
            encoded = params.get("e")
            if encoded is None:
                raise Refused(Reason.WRONG_SHAPE, "the pixel needs the event as JSON in e=")
            envelope = payload.single(payload.parse_json(encoded, "e="))
            key = params.get("key") or envelope.write_key
            # An image request has no Origin; the page's origin is in its Referer (browsers send it by default),
            # so another site's page embedding the pixel is refused like its scripts are (rtap.collect.keys).
            site = self._keys.site(key, origin or referer_origin(request.headers.get("referer")))
            assert key is not None
            if "sent_at" in params:
                envelope = payload.Envelope(key, params["sent_at"], envelope.events)
            await self._accept(request, envelope, key, site, received_at, pixel=True)
        except Refused as refused:
            return self._refuse(refused, cors_headers(origin))
        return Response(PIXEL_GIF, media_type="image/gif", headers=_NO_STORE)

    async def _accept(
        self,
        request: Request,
        envelope: payload.Envelope,
        key: str,
        site: Site,
        received_at: str,
        *,
        pixel: bool = False,
        store: bool = True,
    ) -> int:
        """Stamp, encode, limit and store one request's events; their number once Kafka has them all. Limited once
        encoded: a request refused for its size takes no tokens (the tracker sends such a batch again in halves)."""
        peer = request.client.host if request.client is not None else None
        client = self._addresses.resolve(peer, request.headers.getlist("x-forwarded-for"))
        user_agent = request.headers.get("user-agent")
        fields = server_fields(
            received_at=received_at,
            sent_at=envelope.sent_at,
            ip=client,
            anonymize_ip=self._settings.anonymize_ip,
            user_agent=user_agent,
            site=site.name,
        )
        if pixel:
            (event,) = envelope.events
            referer = request.headers.get("referer")
            fill_pixel(
                event, site=site.name, ip=fields["ip"], user_agent=user_agent, referer=referer, day=received_at[:10]
            )
        records = encode(envelope.events, fields, self._settings.max_event_bytes)
        self._limiter.admit(key, None if client is None else client_key(client), len(records))
        if not store:
            return len(records)
        await self._sink.send(records)
        self._metrics.events_accepted.inc(len(records))
        return len(records)

    def _refuse(self, refused: Refused, headers: dict[str, str]) -> Response:
        self._metrics.events_refused.labels(refused.reason.value).inc(refused.events)
        return refusal(refused, headers)

    async def preflight(self, request: Request) -> Response:
        origin = request.headers.get("origin")
        if origin is None or not self._keys.preflight_allows(request.query_params.get("key"), origin):
            refused = Refused(Reason.ORIGIN_NOT_ALLOWED, f"origin {origin} is not allowed to send here")
            return refusal(refused, {"Vary": "Origin"})
        return Response(status_code=204, headers=preflight_headers(origin))

    async def health(self, _request: Request) -> Response:
        health = self._sink.health()
        body = {"status": "ok" if health.ok else "unavailable", "detail": health.detail, "queued": self._sink.queued()}
        if health.ok:
            return Response(orjson.dumps(body), media_type="application/json", headers=_NO_STORE)
        headers = {**_NO_STORE, "Retry-After": str(self._settings.retry_after_s)}
        return Response(orjson.dumps(body), status_code=503, media_type="application/json", headers=headers)


async def shop(_request: Request) -> Response:
    return RedirectResponse("/shop/")


async def tracker(_request: Request) -> Response:
    path = STATIC / "tracker.js"
    if not path.is_file():
        return Response(b"tracker.js is not in this rtap", status_code=404)
    return FileResponse(path, media_type="application/javascript", headers=_TRACKER_CACHE)


class PostRoutes:
    """ASGI middleware: the POST routes every event takes, dispatched by their exact path before Starlette's router.

    The router tries each route's pattern in turn and wraps the call in its exception middleware: in-process,
    about a third of a single-event request's CPU (``python -m bench.profile_collect``). Everything else (other
    methods and paths, the static files) goes through the router as before; ``scope["route"]`` is set as the
    router sets it, for the request metrics.
    """

    def __init__(self, app: ASGIApp, routes: list[Route]) -> None:
        self._app = app
        self._routes = {route.path: route for route in routes}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self._routes.get(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        if route is None:
            await self._app(scope, receive, send)
            return
        scope["route"] = route
        response = await route.endpoint(Request(scope, receive))
        await response(scope, receive, send)


def create_app(
    settings: CollectorSettings,
    sink: Sink,
    *,
    port: int,
    metrics: CollectorMetrics | None = None,
    scrape: ScrapeAuth | None = None,
    serve_metrics: bool = True,
) -> Starlette:
    """The collector as an ASGI app writing to ``sink`` (started and closed with the app). ``port`` is the port
    it is served on: the demo key's origins are the collector's own (rtap.collect.keys). ``/metrics`` asks for
    ``scrape``'s credential when given, and is not served when ``serve_metrics`` is false."""
    recorder = metrics or rtap_metrics.COLLECTOR
    handlers = Collector(settings, sink, WriteKeys.from_settings(settings, port), recorder)
    registry = rtap_metrics.process_registry(recorder)

    async def prometheus(request: Request) -> Response:
        if scrape is not None and not scrape.allows(request.headers.get("authorization")):
            return PlainTextResponse(ScrapeAuth.REFUSAL, 401, headers={"WWW-Authenticate": ScrapeAuth.CHALLENGE})
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await sink.start()
        try:
            yield
        finally:
            await sink.close()

    posts = [
        Route("/v1/batch", handlers.batch, methods=["POST"]),
        Route("/v1/event", handlers.event, methods=["POST"]),
    ]
    if settings.bench_noop:  # every step of /v1/batch and /v1/event but the sink's
        posts.append(Route("/v1/noop/batch", handlers.noop_batch, methods=["POST"]))
        posts.append(Route("/v1/noop/event", handlers.noop_event, methods=["POST"]))
    routes = [
        *posts,
        Route("/v1/batch", handlers.preflight, methods=["OPTIONS"]),
        Route("/v1/event", handlers.preflight, methods=["OPTIONS"]),
        Route("/v1/pixel.gif", handlers.pixel, methods=["GET"]),
        Route("/healthz", handlers.health, methods=["GET"]),
        *([Route("/metrics", prometheus, methods=["GET"])] if serve_metrics else []),
        Route("/tracker.js", tracker, methods=["GET"]),
        Route("/", shop, methods=["GET"]),
        Mount("/shop", StaticFiles(directory=STATIC / "shop", html=True, check_dir=False)),
    ]
    middleware = [Middleware(CollectorRequestMetrics, metrics=recorder), Middleware(PostRoutes, routes=posts)]
    return Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
