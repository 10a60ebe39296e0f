"""The one exception hierarchy of rtap.

Every error rtap raises on purpose derives from :class:`RtapError`. Driver errors (confluent-kafka,
chdb, clickhouse-connect, py4j) are translated into this tree at the boundary of the module that talks
to that system, so callers never import a driver to catch its exceptions. The CLI prints ``str(error)``
as one line and exits non-zero; anything outside this tree is a bug and keeps its traceback.

    RtapError
    ├── ConfigError                 a bad setting or CLI value (exit 2)
    ├── DependencyError             Java, Maven, jars or a package is missing
    ├── ContractError               a record breaks the event contract (carries field and reason)
    ├── ContractCompatibilityError  a new contract version would break v1 readers
    ├── ServiceError                an external system failed
    │   ├── PortInUseError          a port rtap must bind is taken
    │   ├── BrokerError             Kafka: start, topic admin, produce, consume
    │   │   ├── BrokerStartError    the broker did not come up (carries the log tail)
    │   │   └── BrokerRefusedError  the cluster refused the client: its login or a certificate
    │   ├── WarehouseError          ClickHouse (chDB or server)
    │   │   ├── RetryableWarehouseError   worth retrying: timeouts, readonly table, too many parts
    │   │   ├── QueryRejectedError        refused by design: a write through a read-only path
    │   │   └── ServerVersionError        the ClickHouse server is older than rtap.warehouse.MIN_SERVER_VERSION
    │   ├── MetabaseError           Metabase's API answered something unexpected
    │   ├── PreflightError          a service rtap would use is not ready (carries one line per problem)
    │   └── BusyError               no room for more work now (the dashboard's query slots): retry shortly
    ├── PipelineError               the stream job failed (a failed batch is never swallowed)
    └── ValidationFailedError       `rtap validate` / `rtap reconcile` found a difference

``retryable`` tells a caller whether trying again may succeed; it is a property of the error,
not of the call site, so retry loops do not need to know driver error codes.
"""

from __future__ import annotations


class RtapError(Exception):
    """Base of every error rtap raises deliberately."""

    retryable: bool = False
    exit_code: int = 1


class ConfigError(RtapError):
    """A setting or command-line value is invalid."""

    exit_code = 2


class DependencyError(RtapError):
    """Something rtap needs on the machine is missing (Java 17+, Maven, the Kafka or Spark jars)."""


class ContractError(RtapError):
    """A record breaks the event contract."""

    def __init__(self, reason: str, field: str | None = None) -> None:
        self.reason = reason
        self.field = field
        super().__init__(f"{field}: {reason}" if field else reason)


class ContractCompatibilityError(RtapError):
    """A proposed contract version would break readers of an earlier version."""


class ServiceError(RtapError):
    """An external system (Kafka, ClickHouse, Metabase, a local port) failed."""


class PortInUseError(ServiceError):
    """A port rtap needs to bind is already taken by another process."""

    def __init__(self, host: str, port: int, what: str) -> None:
        self.host, self.port, self.what = host, port, what
        super().__init__(f"port {host}:{port} for {what} is already in use; stop that process or choose another port")


class BrokerError(ServiceError):
    """Kafka failed: topic administration, produce, consume or broker lifecycle."""


class BrokerStartError(BrokerError):
    """The local broker did not start; ``log_tail`` holds the last lines of its log."""

    def __init__(self, message: str, log_tail: str = "") -> None:
        self.log_tail = log_tail
        super().__init__(message + (f" | last log lines: {log_tail}" if log_tail else ""))


class BrokerRefusedError(BrokerError):
    """Kafka refused the client: a failed SASL login, or a TLS handshake that failed on a certificate.

    Not retryable: the same credentials and certificates fail the same way until the settings change.
    """


class WarehouseError(ServiceError):
    """ClickHouse (embedded chDB or a server) failed a query or an insert."""

    def __init__(self, message: str, *, code: int | None = None, query: str | None = None) -> None:
        self.code = code
        self.query = query
        super().__init__(message)


class RetryableWarehouseError(WarehouseError):
    """A warehouse failure that may pass: timeout, table temporarily read-only, too many parts."""

    retryable = True


class QueryRejectedError(WarehouseError):
    """A statement refused by design, e.g. a write sent through a read-only path."""


class ServerVersionError(WarehouseError):
    """The ClickHouse server is older than rtap supports (``rtap.warehouse.MIN_SERVER_VERSION`` says why).

    Not retryable: the same server answers the same version until it is upgraded.
    """


class MetabaseError(ServiceError):
    """Metabase's API answered with an error or an unexpected shape."""


class PreflightError(ServiceError):
    """A service rtap would use and does not start (external mode) is not ready: one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        count = "a problem" if len(problems) == 1 else f"{len(problems)} problems"
        super().__init__(f"preflight found {count}, nothing was started:" + "".join(f"\n  {p}" for p in problems))


class BusyError(ServiceError):
    """A service has no room for more work at the moment (all of the dashboard's query slots are taken)."""

    retryable = True


class PipelineError(RtapError):
    """The stream job failed; the micro-batch was not committed and will be re-run."""


class ValidationFailedError(RtapError):
    """An end-to-end validation or reconciliation found a difference."""


def first_line(error: object) -> str:
    """The first line of ``error``'s text, or its type's name when it has none: the one line an operator is shown."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
