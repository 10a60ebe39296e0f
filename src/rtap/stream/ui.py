"""Who may read the Spark UI: anyone on loopback, and beyond it only a client that presents a token.

The UI (and the Prometheus metrics Spark serves on its port) shows the job's plans, configuration and progress,
and has no login of its own. So rtap lets it listen beyond loopback only with ``RTAP_STREAM_UI_SECRET`` set
(:func:`check_exposure`), and then installs Spark's own ``JWSFilter``: every request must carry
``Authorization: Bearer <token>``, an HS256-signed JSON Web Signature made with that secret (:func:`token`;
``rtap stream --ui-token`` prints it). Spark keeps the secret out of its UI and logs: its key name matches the
redaction pattern. The UI stays beyond loopback whenever the driver serves executors elsewhere (a Spark master
not on this machine), whatever ``RTAP_STREAM_UI_HOST`` says, so that needs the secret too.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from pydantic import SecretStr

from rtap.errors import ConfigError
from rtap.settings import StreamSettings, is_loopback

JWS_FILTER = "org.apache.spark.ui.JWSFilter"
_LOCAL_MASTERS = ("local", "spark://127.0.0.1:", "spark://localhost:")


def _base64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# The token's header and claims never change: what the filter checks is the signature.
_SIGNED = _base64url(b'{"alg":"HS256","typ":"JWT"}') + "." + _base64url(b'{"sub":"rtap"}')


def local_master(stream: StreamSettings) -> bool:
    """Whether the job's executors run on this machine (local mode, or a standalone cluster on loopback), so the
    driver, and with it the UI, can listen on ``RTAP_STREAM_UI_HOST`` alone."""
    return stream.master.startswith(_LOCAL_MASTERS)


def beyond_loopback(stream: StreamSettings) -> bool:
    return not local_master(stream) or not is_loopback(stream.ui_host)


def check_exposure(stream: StreamSettings) -> None:
    """ConfigError, before anything starts, if the UI would listen beyond loopback without a secret."""
    if stream.ui_secret is None and beyond_loopback(stream):
        where = f"on {stream.ui_host}" if local_master(stream) else f"for executors of {stream.master}"
        raise ConfigError(
            f"the Spark UI would listen {where}, beyond loopback, without authentication: set "
            "RTAP_STREAM_UI_SECRET (clients then present `rtap stream --ui-token`), or keep RTAP_STREAM_UI_HOST="
            "127.0.0.1 with a local master (docs/security.md)"
        )


def spark_config(secret: SecretStr) -> dict[str, str]:
    """The session's settings that make every UI request present :func:`token` (Spark's JWSFilter, which takes
    the key base64url-encoded)."""
    return {
        "spark.ui.filters": JWS_FILTER,
        f"spark.{JWS_FILTER}.param.secretKey": _base64url(secret.get_secret_value().encode()),
    }


def token(secret: SecretStr) -> str:
    """The bearer token the filter accepts: a compact JWS, HS256 with the secret's bytes as the key."""
    signature = hmac.new(secret.get_secret_value().encode(), _SIGNED.encode(), hashlib.sha256).digest()
    return f"{_SIGNED}.{_base64url(signature)}"


def authorization(stream: StreamSettings) -> dict[str, str]:
    """The headers a request to the UI needs: none without a secret."""
    return {} if stream.ui_secret is None else {"Authorization": f"Bearer {token(stream.ui_secret)}"}
