"""The HTTP collector: browsers' events into Kafka (docs/collector.md).

Split by concern, like PostHog's capture service: ``routes.py`` (the endpoints), ``api.py`` (every status a
client sees and why), ``payload.py`` (bodies into events), ``records.py`` (the Kafka record and the server's
facts), ``keys.py`` (write keys and origins), ``limiters.py`` (rate limits), ``sinks/`` (Kafka behind a small
abstract sink), ``server.py`` (uvicorn), ``workers.py`` (one process or several) and ``cli.py``
(``rtap collect``); ``static/`` holds the browser tracker and the demo shop it serves.
"""

from rtap.collect.routes import create_app
from rtap.collect.workers import serve

__all__ = ["create_app", "serve"]
