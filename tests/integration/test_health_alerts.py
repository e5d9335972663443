"""Health kept by the dispatcher, and alerts reaching a person's webhook: one message
when an incident begins, one when it ends, none in between."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pgbackups.domain.models import BackupRecord, DatabaseRecord, Health, Schedule
from pgbackups.services import Services
from pgbackups.usecases.dispatch import dispatch
from tests.conftest import AwsStack, RecordingRunner, load_event, load_function
from tests.integration.test_alert_channels import Receiver

pytestmark = pytest.mark.integration


@pytest.fixture
def webhook() -> Iterator[Receiver]:
    receiver = Receiver()
    try:
        yield receiver
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()


@pytest.fixture
def dispatcher(
    aws: AwsStack, webhook: Receiver, monkeypatch: pytest.MonkeyPatch
) -> Any:  # the function module
    """The dispatcher function as deployed with AlertWebhookUrl: the URL in a secret."""
    arn = aws.secretsmanager.create_secret(
        Name=f"{aws.settings.secret_prefix}/alert-webhook", SecretString=webhook.url
    )["ARN"]
    monkeypatch.setenv("ALERT_WEBHOOK_SECRET_ARN", arn)
    monkeypatch.setenv("DASHBOARD_ADDRESS", "https://abc123.execute-api.eu-west-3.amazonaws.com/")
    function = load_function("dispatcher")
    function.services.runner = RecordingRunner()
    return function


def register(services: Services, name: str = "shop") -> None:
    """A database registered two hours ago, its daily backup due half a day from now (the
    test's runs schedule nothing)."""
    services.catalog.create_database(
        DatabaseRecord(
            name=name,
            schedule=Schedule(hour=(datetime.now(UTC).hour + 12) % 24, timezone="UTC"),
            created_at=datetime.now(UTC) - timedelta(hours=2),
        )
    )


def backup(services: Services, at: datetime, status: str, name: str = "shop") -> BackupRecord:
    record = BackupRecord.new(name, "manual", at)
    services.catalog.create_backup(record)
    running = services.catalog.start_backup(
        name, record.id, at, runner="lambda", deadline_at=at + timedelta(minutes=15)
    )
    assert running is not None
    update: dict[str, Any] = {"status": status, "finished_at": at + timedelta(minutes=1)}
    if status == "error":
        update["error"] = "pg_dump: error: connection to server failed\nConnection refused"
    done = running.model_copy(update=update)
    assert services.catalog.finish_backup(done)
    return done


def event_for(record: BackupRecord) -> dict[str, Any]:
    kind = "Backup Succeeded" if record.status == "done" else "Backup Failed"
    return load_event("dispatcher-backup-failed") | {
        "detail-type": kind,
        "detail": json.loads(record.model_dump_json()),
    }


def texts(webhook: Receiver) -> list[str]:
    return [delivery["body"]["text"] for delivery in webhook.received]


def test_a_failed_backup_alerts_once_and_its_recovery_once(
    dispatcher: Any, webhook: Receiver, lambda_context: Any
) -> None:
    services = dispatcher.services
    register(services)
    now = datetime.now(UTC)
    failed = backup(services, now - timedelta(minutes=5), "error")

    assert dispatcher.handler(event_for(failed), lambda_context) == {"health": "failing"}
    dispatcher.handler(event_for(failed), lambda_context)
    dispatch(services, now)

    [alert] = webhook.received
    assert alert["body"]["pgbackups"] == {
        "database": "shop",
        "alert": "raised",
        "status": "failing",
        "subject": "[pgbackups] shop: backup failed",
    }
    assert alert["body"]["text"].startswith("pgbackups: the database shop is failing.")
    assert "The last backup failed: Connection refused." in alert["body"]["text"]
    assert alert["body"]["text"].endswith(
        "Dashboard: https://abc123.execute-api.eu-west-3.amazonaws.com/#/databases/shop"
    )
    health = services.catalog.get_database("shop").health
    assert health is not None and health.status == "failing"
    assert [r.code for r in health.reasons] == ["backup_failed"]

    good = backup(services, now, "done")
    assert dispatcher.handler(event_for(good), lambda_context) == {"health": "ok"}
    dispatch(services, now + timedelta(hours=1))

    assert len(webhook.received) == 2
    recovery = webhook.received[1]["body"]
    assert recovery["pgbackups"]["alert"] == "cleared"
    assert recovery["text"].startswith(
        "pgbackups: the database shop has recovered: backup failed (since "
    )
    assert "Its backups are healthy again." in recovery["text"]
    assert services.catalog.get_database("shop").health == Health(
        status="ok", reasons=[], since=services.catalog.get_database("shop").health.since
    )


def test_a_stale_database_alerts_once_across_hourly_runs(
    dispatcher: Any, webhook: Receiver, lambda_context: Any
) -> None:
    services = dispatcher.services
    register(services)
    last_good = datetime.now(UTC) - timedelta(hours=1)
    backup(services, last_good, "done")

    dispatch(services, last_good + timedelta(hours=2))
    assert webhook.received == []
    for hours in (48, 49, 50):
        dispatch(services, last_good + timedelta(hours=hours))

    [alert] = texts(webhook)
    assert "No backup has succeeded for 2 days" in alert
    assert "(the schedule allows 1 day 6 h)" in alert


def test_a_webhook_that_fails_gets_the_alert_at_the_next_run(
    dispatcher: Any, webhook: Receiver, lambda_context: Any, logs: Any
) -> None:
    services = dispatcher.services
    register(services)
    now = datetime.now(UTC)
    backup(services, now - timedelta(minutes=5), "error")
    webhook.status = 500

    report = dispatch(services, now)

    assert [h.status for h in report.healths] == ["failing"]  # the metric counts it
    assert services.catalog.get_database("shop").health is None or (
        services.catalog.get_database("shop").health.status == "ok"
    )
    assert "the alert webhook answered HTTP 500" in logs.getvalue()
    assert webhook.url not in logs.getvalue() and "secret-part" not in logs.getvalue()
    webhook.status = 200
    dispatch(services, now + timedelta(minutes=1))
    assert [d["body"]["pgbackups"]["alert"] for d in webhook.received] == ["raised", "raised"]
    assert webhook.received[0]["body"] == webhook.received[1]["body"]


def test_the_hourly_run_publishes_health_counts(
    dispatcher: Any, lambda_context: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    services = dispatcher.services
    register(services, "shop")
    register(services, "crm")
    now = datetime.now(UTC)
    backup(services, now - timedelta(minutes=5), "error", "shop")
    backup(services, now - timedelta(minutes=5), "done", "crm")

    dispatcher.handler(load_event("dispatcher") | {"time": now.isoformat()}, lambda_context)

    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if "_aws" in line]
    [metrics] = [m for m in emf if "DatabasesFailing" in m]
    assert [
        metrics[name] for name in ("DatabasesFailing", "DatabasesStale", "DatabasesLagging")
    ] == [
        [1.0],
        [0.0],
        [0.0],
    ]
    # What the template's alarm watches: the namespace and the one `service` dimension.
    [directive] = metrics["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "pgbackups" and directive["Dimensions"] == [["service"]]
