"""Commands of the operations tools: ``rtap validate`` (end-to-end check of a running stack), ``rtap reconcile``,
``rtap backup`` / ``rtap restore`` and ``rtap dlq reasons|show|replay``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from rtap.console import console as make_console
from rtap.options import finite
from rtap.settings import Settings

if TYPE_CHECKING:
    from rtap.ops.dead_letters import Filters
    from rtap.ops.replay import ReplayReport

dlq_app = typer.Typer(help="Dead letters: inspect and replay records that broke the contract.", no_args_is_help=True)

# The filters `rtap dlq reasons` and `rtap dlq show` share (rtap.ops.dead_letters).
Since = Annotated[str | None, typer.Option("--since", help="How far back: 90s, 15m, 6h, 2d (default 1h; or --from).")]
From = Annotated[str | None, typer.Option("--from", help="Start, ISO 8601 (UTC unless it says otherwise).")]
To = Annotated[str | None, typer.Option("--to", help="End, ISO 8601 (default: now).")]
Topic = Annotated[str | None, typer.Option(help="Only dead letters read from this topic.")]
Reason = Annotated[str | None, typer.Option(help="Only reasons containing this text (any case).")]


def validate(
    target: Annotated[
        str | None,
        typer.Option(help="Base URL of the rtap dashboard, e.g. http://IP:8050 (default: the local one)."),
    ] = None,
    metabase: Annotated[
        str | None,
        typer.Option(help="Base URL of Metabase, e.g. http://IP:3000; its rtap cards are run too."),
    ] = None,
    freshness_s: Annotated[
        float,
        typer.Option(
            "--freshness-s", min=1, max=86_400, callback=finite, help="Bound on the age of the newest data (seconds)."
        ),
    ] = 60.0,
    flow_timeout_s: Annotated[
        float,
        typer.Option(
            "--flow-timeout-s", min=1, max=86_400, callback=finite, help="How long to wait for the event count to grow."
        ),
    ] = 30.0,
    wait_s: Annotated[
        float,
        typer.Option(
            "--wait-s",
            min=0,
            max=86_400,
            callback=finite,
            help="Retry failing checks for this long (a stack still starting).",
        ),
    ] = 0.0,
    allow_empty: Annotated[
        list[str] | None,
        typer.Option("--allow-empty", help="A panel id that may return no rows in this run (repeatable)."),
    ] = None,
    timeout_s: Annotated[
        float, typer.Option("--timeout-s", min=1, max=86_400, callback=finite, help="HTTP timeout per request.")
    ] = 30.0,
    collector: Annotated[
        str | None,
        typer.Option(
            help="Base URL of the collector a validation event is posted to, e.g. http://IP:8070 (default: the "
            "local one)."
        ),
    ] = None,
    write_key: Annotated[
        str | None,
        typer.Option(help="Write key for that event (default: the first of RTAP_COLLECT_WRITE_KEYS, or the demo key)."),
    ] = None,
    collector_ca: Annotated[
        Path | None,
        typer.Option(
            "--collector-ca",
            exists=True,
            dir_okay=False,
            help="CA certificate (PEM) an https collector's certificate is checked against, e.g. Caddy's local CA.",
        ),
    ] = None,
    skip_collector: Annotated[
        bool, typer.Option("--skip-collector", help="A stack without a collector: post nothing.")
    ] = False,
) -> None:
    """Check a running stack end to end (local, compose or cloud): one line per check, non-zero exit on failure.

    A dashboard with a login is logged in to with RTAP_DASHBOARD_PASSWORD; Metabase's admin account comes from
    RTAP_METABASE_ADMIN_EMAIL / RTAP_METABASE_ADMIN_PASSWORD. Unless --skip-collector, one page view in the
    tracker's format is posted to the collector and must reach the warehouse.
    """
    from contextlib import ExitStack

    from rtap.errors import ConfigError, ValidationFailedError
    from rtap.http_json import base_url, new_client
    from rtap.ops.checks import (
        CollectorTarget,
        MetabaseTarget,
        ValidationOptions,
        check_password_transport,
        dashboard_login,
        run_checks,
        validate_until,
    )
    from rtap.settings import DEMO_WRITE_KEY, connect_host

    settings = Settings()
    dashboard_url = base_url(
        target
        or f"{'https' if settings.dashboard.tls else 'http'}://"
        f"{connect_host(settings.dashboard.host)}:{settings.dashboard.port}",
        "--target",
    )
    options = ValidationOptions(
        freshness_s=freshness_s, flow_timeout_s=flow_timeout_s, allow_empty=frozenset(allow_empty or ())
    )
    console, errors = make_console(), make_console(stderr=True)
    with ExitStack() as stack:
        dashboard_client = stack.enter_context(new_client(dashboard_url, timeout_s))
        if settings.dashboard.password is not None:  # a dashboard beyond loopback asks for it
            check_password_transport(dashboard_url, "--target")
            dashboard_login(dashboard_client, settings.dashboard.password.get_secret_value())
        metabase_target = None
        if metabase:
            password = settings.metabase.admin_password.get_secret_value()
            if not password:
                raise ConfigError("--metabase needs RTAP_METABASE_ADMIN_PASSWORD to run the rtap cards")
            metabase_url = base_url(metabase, "--metabase")
            check_password_transport(metabase_url, "--metabase")
            metabase_client = stack.enter_context(new_client(metabase_url, timeout_s))
            metabase_target = MetabaseTarget(metabase_client, settings.metabase.admin_email, password)
        collector_target = None
        if not skip_collector:
            collect = settings.collect
            collector_url = base_url(collector or f"http://{connect_host(collect.host)}:{collect.port}", "--collector")
            key = write_key or next(iter(collect.write_keys), DEMO_WRITE_KEY)
            ca_file = str(collector_ca) if collector_ca else None
            http = stack.enter_context(new_client(collector_url, timeout_s, ca_file=ca_file))
            collector_target = CollectorTarget(http, key)
        results = validate_until(
            lambda: list(run_checks(dashboard_client, options, metabase_target, collector_target)),
            wait_s,
            on_retry=lambda failed: errors.print(f"waiting: {len(failed)} checks failing (first: {failed[0].line()})"),
        )
    for result in results:
        console.print(result.line(), style=None if result.ok else "red")
    failed = [result.name for result in results if not result.ok]
    if failed:
        raise ValidationFailedError(f"{len(failed)} of {len(results)} checks failed: {', '.join(failed)}")
    console.print(f"all {len(results)} checks passed against {dashboard_url}")


def reconcile(
    truth: Annotated[
        list[Path] | None,
        typer.Option(
            "--truth",
            dir_okay=False,
            help="Ground truth file(s) of the runs in the topic, in production order "
            "(repeatable; default: DATA_DIR/truth/latest.json).",
        ),
    ] = None,
    max_differences: Annotated[
        int, typer.Option("--max-differences", min=1, help="Differences listed per check.")
    ] = 10,
) -> None:
    """Compare the warehouse with the generator's ground truth: exit 0 only when every number is exact."""
    from rich.table import Table

    from rtap.errors import ValidationFailedError
    from rtap.ops.reconcile import format_report, load_truth, observe
    from rtap.ops.reconcile import reconcile as compare
    from rtap.warehouse import create_client

    settings = Settings()
    expected = load_truth(truth or [settings.paths.truth / "latest.json"])
    with create_client(settings, readonly=True) as client:
        observed = observe(client, topic=settings.kafka.topic)
    report = compare(expected, observed, max_differences=max_differences)
    table = Table("check", "expected", "observed", "result", title="reconciliation with the ground truth")
    for name, want, got, result in format_report(report):
        table.add_row(name, want, got, result, style=None if result == "ok" else "red")
    make_console().print(table)
    if not report.ok:
        raise ValidationFailedError(
            f"{len(report.failed)} of {len(report.checks)} checks differ: {', '.join(c.name for c in report.failed)}"
        )


def backup(
    target: Annotated[Path, typer.Argument(help="A new folder for the backup (it must not exist).")],
) -> None:
    """Save the warehouse (chDB) and the stream job's checkpoint, from one moment, while nothing runs.

    Refused while `rtap up` or `rtap stream` holds the data directory: stop it, back up, start it again.
    """
    from rtap.ops.backup import backup as save

    manifest = save(Settings(), target)
    make_console().print(
        f"backed up database {manifest.database} (migration {manifest.migration:04d}, last batch "
        f"{_batch(manifest.warehouse_batch)}) and the checkpoint to {target}"
    )


def restore(
    source: Annotated[Path, typer.Argument(help="A folder written by `rtap backup`.")],
) -> None:
    """Replace the warehouse and the checkpoint by a backup; the next start re-reads Kafka from the backup's moment.

    Refused while `rtap up` or `rtap stream` holds the data directory.
    """
    from rtap.ops.backup import restore as bring_back

    manifest = bring_back(Settings(), source)
    make_console().print(
        f"restored database {manifest.database} and the checkpoint from {source} (made {manifest.created_at} by "
        f"rtap {manifest.rtap_version}, last batch {_batch(manifest.warehouse_batch)}); start rtap to catch up"
    )


def _batch(batch: int | None) -> str:
    return "none" if batch is None else str(batch)


def _filters(since: str | None, start: str | None, end: str | None, topic: str | None, reason: str | None) -> Filters:
    from datetime import UTC, datetime

    from rtap.ops.dead_letters import resolve_filters

    return resolve_filters(since=since, start=start, end=end, topic=topic, reason=reason, now=datetime.now(UTC))


@dlq_app.command("reasons")
def reasons(
    since: Since = None,
    start: From = None,
    end: To = None,
    topic: Topic = None,
    reason: Reason = None,
    limit: Annotated[int, typer.Option(help="At most this many reasons.")] = 50,
    detail: Annotated[
        bool,
        typer.Option("--detail", help="Exact reasons (with the parser's position, the record's size), not classes."),
    ] = False,
) -> None:
    """Why records were rejected: each reason class with its count, share, first and last time seen."""
    from rtap.ops import dead_letters
    from rtap.warehouse import create_client

    filters = _filters(since, start, end, topic, reason)
    dead_letters.check_limit(limit)
    with create_client(Settings(), readonly=True) as client:
        total, found = dead_letters.reasons(client, filters, limit=limit, detail=detail)
    console = make_console()
    for line in dead_letters.reason_lines(total, found, filters):
        console.print(line)


@dlq_app.command("show")
def show(
    since: Since = None,
    start: From = None,
    end: To = None,
    topic: Topic = None,
    reason: Reason = None,
    limit: Annotated[int, typer.Option(help="At most this many dead letters, newest first.")] = 10,
    full: Annotated[bool, typer.Option("--full", help="Whole payloads (default: the first 300 characters).")] = False,
    json_lines: Annotated[
        bool, typer.Option("--json", help="One JSON object per dead letter (whole payloads), for jq and scripts.")
    ] = False,
) -> None:
    """The newest dead letters: where each came from, why it was rejected, and its payload."""
    from rtap.ops import dead_letters
    from rtap.warehouse import create_client

    filters = _filters(since, start, end, topic, reason)
    dead_letters.check_limit(limit)
    with create_client(Settings(), readonly=True) as client:
        letters = dead_letters.recent(client, filters, limit=limit, full=full or json_lines)
    if json_lines:
        for letter in letters:
            typer.echo(dead_letters.json_line(dead_letters.letter_json(letter)))
        return
    console = make_console()
    if not letters:
        console.print(f"no dead letters {filters.describe()}")
    for letter in letters:
        for line in dead_letters.letter_lines(letter):
            console.print(line)


@dlq_app.command("replay")
def replay(
    since: Annotated[
        str | None, typer.Option("--since", help="How far back: 90s, 15m, 6h, 2d (default 30d, every dead letter).")
    ] = None,
    start: From = None,
    end: To = None,
    topic: Topic = None,
    reason: Reason = None,
    dry_run: Annotated[bool, typer.Option(help="Only report what would be replayed.")] = False,
) -> None:
    """Re-validate dead letters against their own topic's format and re-publish those that now pass to that topic."""
    from datetime import UTC, datetime

    from rtap.ops.dead_letters import resolve_filters
    from rtap.ops.replay import replay_dead_letters
    from rtap.warehouse import create_client

    settings = Settings()
    filters = resolve_filters(
        since=since, start=start, end=end, topic=topic, reason=reason, now=datetime.now(UTC), default_since="30d"
    )
    with create_client(settings, readonly=True) as client:
        report = replay_dead_letters(client, settings, filters, dry_run=dry_run)
    console = make_console()
    for line in replay_lines(report, filters, dry_run=dry_run, limit=settings.stream.max_record_bytes):
        console.print(line)


def replay_lines(report: ReplayReport, filters: Filters, *, dry_run: bool, limit: int) -> list[str]:
    """``rtap dlq replay``'s report: what was read, what went where, and why the rest stayed."""
    from rtap.ops.dead_letters import printable

    verb = "would replay" if dry_run else "replayed"
    where = ", ".join(f"{count:,} to {name}" for name, count in sorted(report.replayed.items()))
    lines = [f"read {report.read:,} dead letters {filters.describe()}; {verb} {report.replayed_total:,}"]
    if where:
        lines[0] += f" ({where})"
    kept = [
        (report.already_stored, "already stored (replayed before, or another copy passed)"),
        (report.truncated, "truncated, not replayable (the warehouse keeps only the start of the payload)"),
        (report.too_large, f"larger than the record size limit ({limit:,} bytes), not replayable"),
        *(
            (count, f"topic {printable(name)} is not an input topic any more")
            for name, count in report.not_input_topic.items()
        ),
        *((count, f"still invalid: {printable(why)}") for why, count in report.still_invalid.most_common()),
    ]
    lines += [f"  {count:>7,}  {what}" for count, what in kept if count]
    return lines
