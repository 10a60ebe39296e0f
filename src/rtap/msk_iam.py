"""MSK IAM for librdkafka: the OAUTHBEARER token callback that signs with the environment's AWS credentials.

librdkafka has no AWS_MSK_IAM mechanism; MSK accepts the same signed request as an OAUTHBEARER token, which
AWS's ``aws-msk-iam-sasl-signer-python`` makes (SigV4, locally, from the default credential chain or a named
profile). The package, and the boto3 it brings, is the optional extra ``rtap[msk]``: imported only when a
client is configured for AWS_MSK_IAM. The Java side (Spark's Kafka source) uses AWS's ``aws-msk-iam-auth``
jar instead (:meth:`rtap.settings.KafkaSettings.java_client_config`).
"""

from __future__ import annotations

from collections.abc import Callable

from rtap.errors import DependencyError

SIGNER_PACKAGE = "aws-msk-iam-sasl-signer-python"


def token_callback(region: str, profile: str | None = None) -> Callable[[str], tuple[str, float]]:
    """librdkafka's ``oauth_cb``: called with the (unused) ``sasl.oauthbearer.config``, whenever librdkafka needs
    a token (before the first connection and ahead of the last token's expiry); returns the token and its expiry
    in seconds since the epoch."""
    try:
        from aws_msk_iam_sasl_signer import MSKAuthTokenProvider
    except ImportError as missing:
        raise DependencyError(
            f"RTAP_KAFKA_SASL_MECHANISM=AWS_MSK_IAM needs the {SIGNER_PACKAGE} package: pip install 'rtap[msk]'"
        ) from missing

    def token(_oauthbearer_config: str) -> tuple[str, float]:
        if profile:
            signed, expiry_ms = MSKAuthTokenProvider.generate_auth_token_from_profile(region, profile)
        else:
            signed, expiry_ms = MSKAuthTokenProvider.generate_auth_token(region)
        return signed, expiry_ms / 1000

    return token
