"""Object Lock on moto: what S3 refuses, what retention waits for, dates, legal holds.

Each test gets a bucket created with Object Lock (as template.yaml creates it when
BackupLock is not off) and the services writing to it with a lock. Dates are taken
from the real clock: moto checks a version's retain-until date against it.

Where moto 5.2.5 differs from AWS (checked here): GetObjectRetention answers 500, so
a version's date is read with HeadObject (x-amz-object-lock-*); it lets a governance
date be shortened without the bypass permission; and the object a multipart upload
created with lock parameters completes into carries no lock. So the multipart
upload's lock is checked on the requests the code sends (a botocore event hook).
"""

from __future__ import annotations

import dataclasses
import io
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import boto3
import pytest
from botocore.exceptions import ClientError

from pgbackups.adapters.archives import ArchiveStore
from pgbackups.domain.errors import BackupLocked, BackupNotFound
from pgbackups.domain.lock import BackupLock, LockMode
from pgbackups.domain.models import (
    BackupRecord,
    BackupRequest,
    ConnectionInfo,
    DatabaseRecord,
    RetentionPolicy,
    utcnow,
)
from pgbackups.services import Services
from pgbackups.settings import Settings
from pgbackups.usecases.backup import run_backup
from pgbackups.usecases.holds import hold_backup, release_backup
from pgbackups.usecases.retention import apply_retention, delete_backup
from pgbackups.wiring import build_services
from tests.conftest import (
    REGION,
    AwsStack,
    LambdaContext,
    RecordingRunner,
    load_event,
    load_function,
)

pytestmark = pytest.mark.integration

PARIS = ZoneInfo("Europe/Paris")


def locked_bucket(aws: AwsStack) -> str:
    name = f"pgbackups-locked-{uuid.uuid4().hex[:10]}"
    aws.s3.create_bucket(
        Bucket=name,
        CreateBucketConfiguration={"LocationConstraint": REGION},
        ObjectLockEnabledForBucket=True,
    )
    return name


def locked_services(aws: AwsStack, mode: LockMode = "governance", days: int = 7) -> Services:
    settings = dataclasses.replace(
        aws.settings, bucket_name=locked_bucket(aws), backup_lock=BackupLock(mode, days)
    )
    services = build_services(settings)
    services.runner = RecordingRunner()
    return services


@pytest.fixture
def services(aws: AwsStack) -> Services:
    return locked_services(aws)


def s3(services: Services) -> Any:
    return services.archives._s3  # type: ignore[attr-defined]


def versions(services: Services, key: str) -> list[dict[str, Any]]:
    listing = s3(services).list_object_versions(Bucket=services.settings.bucket_name, Prefix=key)
    return [v for v in listing.get("Versions", []) if v["Key"] == key]


def lock_of(services: Services, key: str) -> tuple[str | None, datetime | None]:
    """The current version's Object Lock mode and date (HeadObject: see the module doc)."""
    head = s3(services).head_object(Bucket=services.settings.bucket_name, Key=key)
    return head.get("ObjectLockMode"), head.get("ObjectLockRetainUntilDate")


def register(services: Services, retention: RetentionPolicy | None = None) -> DatabaseRecord:
    record = DatabaseRecord(
        name="shop", retention=retention or RetentionPolicy(), created_at=utcnow()
    )
    services.catalog.create_database(record)
    return record


def done_backup(services: Services, created_at: datetime, method: str = "manual") -> BackupRecord:
    """A backup through the catalog's transitions, its archive uploaded by the archive
    store (locked as the backup function locks it) and its record as the backup
    function finishes it."""
    record = BackupRecord.new("shop", method, created_at)  # type: ignore[arg-type]
    services.catalog.create_backup(record)
    running = services.catalog.start_backup(
        "shop", record.id, created_at, runner="lambda", deadline_at=created_at
    )
    assert running is not None
    services.archives.upload_stream(record.object_key, io.BytesIO(b"PGDMP archive"))
    finished_at = utcnow()
    finished = running.model_copy(
        update={
            "status": "done",
            "finished_at": finished_at,
            "size": 13,
            "locked_until": services.settings.backup_lock.until(finished_at),
        }
    )
    assert services.catalog.finish_backup(finished)
    return finished


def at(moment: datetime) -> Callable[[], datetime]:
    return lambda: moment


# ------------------------------------------------------------------ what S3 refuses


@pytest.mark.parametrize("mode", ["governance", "compliance"])
def test_a_locked_archive_version_cannot_be_deleted(aws: AwsStack, mode: LockMode) -> None:
    services = locked_services(aws, mode, days=7)
    written = utcnow()
    services.archives.upload_stream("databases/shop/backups/a.pgsql", io.BytesIO(b"PGDMP x"))

    locked_mode, until = lock_of(services, "databases/shop/backups/a.pgsql")
    assert locked_mode == mode.upper()
    assert until is not None
    assert written + timedelta(days=7) <= until <= utcnow() + timedelta(days=7, seconds=1)
    (version,) = versions(services, "databases/shop/backups/a.pgsql")
    with pytest.raises(ClientError) as refused:
        s3(services).delete_object(
            Bucket=services.settings.bucket_name,
            Key="databases/shop/backups/a.pgsql",
            VersionId=version["VersionId"],
        )
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    assert versions(services, "databases/shop/backups/a.pgsql") == [version]


def test_governance_gives_way_only_to_the_bypass_permission_compliance_to_nobody(
    aws: AwsStack,
) -> None:
    """A caller allowed s3:BypassGovernanceRetention (an account administrator; no role of
    the stack: tests/unit/test_template_lock.py) can delete a governance version; with
    compliance, not even that caller can."""
    for mode, deletable in (("governance", True), ("compliance", False)):
        services = locked_services(aws, mode)  # type: ignore[arg-type]
        key = f"databases/shop/backups/{mode}.pgsql"
        services.archives.upload_stream(key, io.BytesIO(b"PGDMP x"))
        (version,) = versions(services, key)
        delete = {"Bucket": services.settings.bucket_name, "Key": key}
        if deletable:
            s3(services).delete_object(
                **delete, VersionId=version["VersionId"], BypassGovernanceRetention=True
            )
            assert versions(services, key) == []
        else:
            with pytest.raises(ClientError):
                s3(services).delete_object(
                    **delete, VersionId=version["VersionId"], BypassGovernanceRetention=True
                )
            assert versions(services, key) == [version]


def test_complete_wal_segments_are_locked_the_partial_one_is_not(services: Services) -> None:
    prefix = "databases/shop/pitr/c1/wal/000000010000000000000001"
    services.archives.put_bytes(prefix + ".gz", b"wal", {"sha256": "x"}, kind="wal")
    services.archives.put_bytes(prefix + ".partial.gz", b"wal", {"sha256": "x"}, kind="wal")

    assert lock_of(services, prefix + ".gz")[0] == "GOVERNANCE"
    # Rewritten every capture: locking each version would keep thousands of them.
    assert lock_of(services, prefix + ".partial.gz") == (None, None)


def test_without_a_lock_nothing_is_locked(aws: AwsStack) -> None:
    services = locked_services(aws, "off")
    services.archives.upload_stream("databases/shop/backups/a.pgsql", io.BytesIO(b"PGDMP x"))
    assert lock_of(services, "databases/shop/backups/a.pgsql") == (None, None)


def test_a_backup_is_recorded_with_the_date_s3_holds_at_least(
    services: Services, database_url: str
) -> None:
    """A real pg_dump through the backup use case: its archive locked, the record's
    `locked_until` no earlier than the date S3 holds (set when the upload began)."""
    services.catalog.create_database(DatabaseRecord(name="shop", created_at=utcnow()))
    services.secrets.put("shop", ConnectionInfo(url=database_url))
    record = BackupRecord.new("shop", "manual", utcnow())
    services.catalog.create_backup(record)

    finished = run_backup(
        services,
        BackupRequest(database="shop", backup_id=record.id),
        seconds_left=600,
        runner="lambda",
    )

    assert finished is not None and finished.status == "done", finished
    mode, until = lock_of(services, record.object_key)
    assert mode == "GOVERNANCE" and until is not None
    assert finished.locked_until is not None
    assert until <= finished.locked_until <= until + timedelta(minutes=5)
    shown = services.catalog.get_backup("shop", record.id)
    assert (shown.locked_until, shown.legal_hold) == (finished.locked_until, False)


# ---------------------------------------------------------- multipart lock headers


def test_a_multipart_upload_declares_its_lock_and_checksum(services: Services) -> None:
    sent: list[tuple[str, dict[str, Any]]] = []

    def capture(params: dict[str, Any], model: Any, **_: Any) -> None:
        sent.append((model.name, {k: v for k, v in params.items() if k != "Body"}))

    s3(services).meta.events.register("before-parameter-build.s3.*", capture)
    size = 8 * 1024 * 1024 + 100  # two parts of the smallest part size
    services.archives.upload_stream("databases/shop/backups/big.pgsql", io.BytesIO(b"P" * size))

    (create,) = [params for name, params in sent if name == "CreateMultipartUpload"]
    assert create["ObjectLockMode"] == "GOVERNANCE"
    assert create["ObjectLockRetainUntilDate"] > utcnow() + timedelta(days=6, hours=23)
    # S3 requires a checksum with lock parameters: the upload names its algorithm and
    # every part carries its CRC32.
    assert create["ChecksumAlgorithm"] == "CRC32"
    parts = [params for name, params in sent if name == "UploadPart"]
    assert len(parts) == 2
    assert all(p["ChecksumAlgorithm"] == "CRC32" and p["ChecksumCRC32"] for p in parts)
    assert [name for name, _ in sent][-1] == "CompleteMultipartUpload"


# ------------------------------------------------------------------------- retention


def test_retention_prunes_a_locked_backup_only_after_its_date(services: Services) -> None:
    database = register(services, RetentionPolicy(manual=1))
    now = utcnow()
    old = done_backup(services, now - timedelta(hours=2))
    new = done_backup(services, now - timedelta(hours=1))
    assert old.locked_until is not None

    assert apply_retention(services, database, now) == []
    # Kept, record and object, marked with the date it is retried after.
    kept = services.catalog.get_backup("shop", old.id)
    assert kept.locked_until == old.locked_until
    assert len(versions(services, old.object_key)) == 1

    after = old.locked_until + timedelta(minutes=1)
    services.clock = at(after)
    deleted = apply_retention(services, database, after)

    assert [r.id for r in deleted] == [old.id]
    with pytest.raises(BackupNotFound):
        services.catalog.get_backup("shop", old.id)
    assert [r.id for r in services.catalog.all_backups("shop")] == [new.id]


def test_deleting_a_locked_backup_is_refused_with_its_date(services: Services) -> None:
    register(services)
    backup = done_backup(services, utcnow() - timedelta(hours=1))
    assert backup.locked_until is not None

    with pytest.raises(BackupLocked) as refused:
        delete_backup(services, "shop", backup.id)

    assert refused.value.code == "backup_locked"
    assert refused.value.details["locked_until"] == backup.locked_until.isoformat().replace(
        "+00:00", "Z"
    )
    assert services.catalog.get_backup("shop", backup.id).id == backup.id
    assert len(versions(services, backup.object_key)) == 1


def last_sunday(today: datetime) -> datetime:
    local = today.astimezone(PARIS)
    sunday = local - timedelta(days=(local.weekday() - 6) % 7)
    return sunday.replace(hour=1, minute=0, second=0, microsecond=0)


def test_a_sunday_backup_kept_as_weekly_is_locked_as_long_and_never_shortened(
    services: Services,
) -> None:
    database = register(services, RetentionPolicy(daily=7, weekly=4))
    now = utcnow()
    sunday = last_sunday(now)
    backup = done_backup(services, sunday, method="periodic")
    assert backup.locked_until is not None

    apply_retention(services, database, now)

    # Kept as weekly until the fourth Sunday after it: locked as long, in S3 and on record.
    end = datetime.combine(
        sunday.date() + timedelta(weeks=4), datetime.min.time(), tzinfo=PARIS
    ).astimezone(UTC)
    assert services.catalog.get_backup("shop", backup.id).locked_until == end
    assert lock_of(services, backup.object_key) == ("GOVERNANCE", end)

    # A shorter policy later never shortens a date.
    shorter = database.model_copy(update={"retention": RetentionPolicy(daily=7, weekly=1)})
    apply_retention(services, shorter, now)
    assert services.catalog.get_backup("shop", backup.id).locked_until == end
    assert lock_of(services, backup.object_key) == ("GOVERNANCE", end)


def test_a_held_backup_outlives_its_retention_until_released(services: Services) -> None:
    database = register(services, RetentionPolicy(manual=1))
    now = utcnow()
    old = done_backup(services, now - timedelta(hours=2))
    done_backup(services, now - timedelta(hours=1))

    (held,) = hold_backup(services, "shop", old.id).backups
    assert held.legal_hold is True
    hold = s3(services).get_object_legal_hold(
        Bucket=services.settings.bucket_name, Key=old.object_key
    )
    assert hold["LegalHold"]["Status"] == "ON"

    long_after = now + timedelta(days=400)
    services.clock = at(long_after)
    assert apply_retention(services, database, long_after) == []
    with pytest.raises(BackupLocked) as refused:
        delete_backup(services, "shop", old.id)
    assert refused.value.details["legal_hold"] is True

    (released,) = release_backup(services, "shop", old.id).backups
    assert released.legal_hold is False
    hold = s3(services).get_object_legal_hold(
        Bucket=services.settings.bucket_name, Key=old.object_key
    )
    assert hold["LegalHold"]["Status"] == "OFF"
    assert [r.id for r in apply_retention(services, database, long_after)] == [old.id]


def test_a_hold_placed_after_retention_read_the_backups_still_keeps_it(
    services: Services,
) -> None:
    """Retention plans from what it read; a hold placed since is honoured by the catalog's
    own condition, so the backup and its record stay."""
    database = register(services, RetentionPolicy(manual=1))
    now = utcnow()
    old = done_backup(services, now - timedelta(hours=2))
    done_backup(services, now - timedelta(hours=1))
    read_before_the_hold = services.catalog.all_backups("shop")
    hold_backup(services, "shop", old.id)
    services.catalog.all_backups = lambda database: read_before_the_hold  # type: ignore[method-assign]
    long_after = now + timedelta(days=400)
    services.clock = at(long_after)

    assert apply_retention(services, database, long_after) == []

    assert services.catalog.get_backup("shop", old.id).legal_hold is True
    with pytest.raises(BackupLocked):
        services.catalog.mark_deleting("shop", old.id, long_after)
    assert len(versions(services, old.object_key)) == 1


# ------------------------------------------------------------------------------ API


@dataclasses.dataclass
class LockedApi:
    services: Services
    call: Callable[[str, str], tuple[int, Any]]  # (event name, backup id) -> (status, body)


@pytest.fixture
def api(aws: AwsStack, lambda_context: LambdaContext, monkeypatch: pytest.MonkeyPatch) -> LockedApi:
    """functions/api.py on a locked bucket, as the template configures it."""
    bucket = locked_bucket(aws)
    monkeypatch.setenv("BUCKET_NAME", bucket)
    monkeypatch.setenv("BACKUP_LOCK", "governance")
    monkeypatch.setenv("BACKUP_LOCK_DAYS", "7")
    module = load_function("api")
    module.services.runner = RecordingRunner()
    assert module.services.settings == Settings.from_env()

    def call(event_name: str, backup_id: str) -> tuple[int, Any]:
        event = load_event(event_name)
        path = event["rawPath"].replace("01KEZF7CZ87WMWEMMEK3Q551MX", backup_id)
        event["rawPath"] = event["requestContext"]["http"]["path"] = path
        event["pathParameters"]["id"] = backup_id
        response = module.handler(event, lambda_context)
        body = response.get("body")
        return response["statusCode"], json.loads(body) if body else None

    return LockedApi(module.services, call)


def test_the_api_refuses_to_delete_a_locked_backup_and_holds_and_releases(
    api: LockedApi,
) -> None:
    services = api.services
    register(services)
    backup = done_backup(services, utcnow() - timedelta(hours=1))
    assert backup.locked_until is not None
    until = backup.locked_until.isoformat().replace("+00:00", "Z")

    status, body = api.call("api-delete-backup", backup.id)
    assert status == 409
    assert body["error"]["code"] == "backup_locked"
    assert body["error"]["locked_until"] == until
    assert until in body["error"]["message"]

    status, body = api.call("api-hold-backup", backup.id)
    assert (status, body["legal_hold"], body["locked_until"]) == (200, True, until)
    assert body["kept_as"] == "manual"  # shown as everywhere else
    status, body = api.call("api-get-backup", backup.id)
    assert (status, body["legal_hold"]) == (200, True)

    status, body = api.call("api-release-backup", backup.id)
    assert (status, body["legal_hold"]) == (200, False)
    assert len(versions(services, backup.object_key)) == 1


def test_a_backup_not_done_cannot_be_held(api: LockedApi) -> None:
    services = api.services
    register(services)
    record = BackupRecord.new("shop", "manual", utcnow())
    services.catalog.create_backup(record)

    status, body = api.call("api-hold-backup", record.id)

    assert (status, body["error"]["code"]) == (409, "backup_not_done")
    assert services.catalog.get_backup("shop", record.id).legal_hold is False


def test_settings_read_the_lock_from_the_environment() -> None:
    env = {"TABLE_NAME": "t", "BUCKET_NAME": "b", "SECRET_PREFIX": "p"}
    assert Settings.from_env(env).backup_lock == BackupLock("off", 7)
    assert Settings.from_env(
        env | {"BACKUP_LOCK": "compliance", "BACKUP_LOCK_DAYS": "30"}
    ).backup_lock == BackupLock("compliance", 30)


def test_an_archive_store_without_a_lock_writes_to_any_bucket(aws: AwsStack) -> None:
    store = ArchiveStore(
        boto3.client("s3", endpoint_url=aws.endpoint, region_name=REGION), aws.settings.bucket_name
    )
    store.upload_stream("databases/shop/backups/plain.pgsql", io.BytesIO(b"PGDMP"))
    assert aws.object_keys() == ["databases/shop/backups/plain.pgsql"]
