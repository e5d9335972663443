"""`pitr-restore` on this machine against a bucket and a source that may be hostile: every
WAL file checked against the plan's digest, WAL names checked before they become paths,
everything written private and removed on every way out, the recovered cluster's
configuration built from an allow-list. The whole restore runs end to end in
tests/e2e/test_pitr_cli.py; these are its parts, with the storage answered in-process."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tempfile
import urllib.error
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pgbackups.postgres import cluster as cluster_module
from pgbackups.postgres import recovery
from pgbackups.postgres.cluster import (
    ClusterFailed,
    RecoveredCluster,
    check_replayed_to,
    configure_recovery,
    unpack_base_backup,
)
from pgbackups_cli import main, pitr
from pgbackups_cli.output import Failure, Interrupted
from tests.unit.full_disk import tiny_file_system

pytestmark = pytest.mark.unit

STORAGE = "https://storage.example.com"
SEGMENT = "000000010000000000000003"
BODY = gzip.compress(b"\x01" * 4096)


class Storage:
    """What the presigned URLs answer: body per URL; what was asked."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.asked: list[str] = []

    def urlopen(self, url: str, timeout: float = 0) -> Any:
        self.asked.append(url)
        if url not in self.objects:
            raise urllib.error.HTTPError(url, 404, "Not Found", Message(), None)
        response = io.BytesIO(self.objects[url])
        # What the object says of itself is never what the restore trusts.
        response.headers = {"x-amz-meta-sha256": hashlib.sha256(self.objects[url]).hexdigest()}  # type: ignore[attr-defined]
        return response


@pytest.fixture
def storage(monkeypatch: pytest.MonkeyPatch) -> Storage:
    fake = Storage()
    monkeypatch.setattr(pitr.urllib.request, "urlopen", fake.urlopen)
    return fake


def wal_entry(storage: Storage, name: str, body: bytes = BODY, **changes: Any) -> dict[str, Any]:
    url = f"{STORAGE}/wal/{name}"
    storage.objects[url] = body
    entry = {"name": name, "partial": False, "url": url, "size": len(body)}
    entry["sha256"] = hashlib.sha256(body).hexdigest()
    return entry | changes


def download_wal(pages: list[dict[str, Any]], wal_dir: Path) -> str | None:
    """The CLI's WAL download: the plan's pages through its presigned-URL opener."""
    return recovery.fetch_wal(pitr.open_url, pitr.wal_of(pages), wal_dir, None)


def every_file(root: Path) -> list[Path]:
    return sorted(root.rglob("*"))


def test_wal_files_are_checked_and_private(storage: Storage, tmp_path: Path) -> None:
    wal_dir = tmp_path / "wal"
    wal_dir.mkdir(mode=0o700)
    page = {"wal": [wal_entry(storage, SEGMENT)]}
    last = download_wal([page], wal_dir)
    assert last == SEGMENT
    assert (wal_dir / SEGMENT).read_bytes() == b"\x01" * 4096
    assert [p.name for p in wal_dir.iterdir()] == [SEGMENT]
    assert (wal_dir / SEGMENT).stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    "name",
    [
        "../../../tmp/pwned0000000000000",
        "/tmp/pwn000000000000000000000",
        "000000010000000000000003/../x",
        "00000001000000000000000g",
        "000000010000000000000003.partial",
        "",
    ],
)
def test_a_wal_name_that_is_not_a_segment_name_is_refused(
    storage: Storage, tmp_path: Path, name: str
) -> None:
    wal_dir = tmp_path / "inside" / "wal"
    wal_dir.mkdir(parents=True)
    page = {"wal": [wal_entry(storage, name)]}
    with pytest.raises(ClusterFailed, match="not a WAL segment name"):
        download_wal([page], wal_dir)
    assert every_file(tmp_path) == [tmp_path / "inside", wal_dir]
    assert storage.asked == []


def test_a_wal_file_without_a_digest_in_the_plan_is_refused(
    storage: Storage, tmp_path: Path
) -> None:
    entry = wal_entry(storage, SEGMENT)
    del entry["sha256"]
    with pytest.raises(ClusterFailed, match=f"WAL file {SEGMENT}: the restore plan gives no"):
        download_wal([{"wal": [entry]}], tmp_path)
    assert storage.asked == [] and list(tmp_path.iterdir()) == []


def test_a_wal_file_is_checked_against_the_plan_not_its_own_metadata(
    storage: Storage, tmp_path: Path
) -> None:
    # The bucket's object was replaced (its metadata too): the plan's digest still says no.
    entry = wal_entry(storage, SEGMENT, sha256=hashlib.sha256(b"what was archived").hexdigest())
    with pytest.raises(ClusterFailed, match="not the one recorded when it was archived"):
        download_wal([{"wal": [entry]}], tmp_path)


def test_a_wal_file_missing_from_the_bucket_is_named(storage: Storage, tmp_path: Path) -> None:
    present = wal_entry(storage, SEGMENT)
    missing = wal_entry(storage, "000000010000000000000004")
    del storage.objects[missing["url"]]
    with pytest.raises(ClusterFailed) as failed:
        download_wal([{"wal": [present]}, {"wal": [missing]}], tmp_path)
    assert "000000010000000000000004" in str(failed.value)
    assert "404" in str(failed.value) and "missing from the bucket" in str(failed.value)


# -- the folders a restore writes -----------------------------------------------------------


@pytest.mark.parametrize(
    ("raised", "expected", "code"),
    [
        (KeyboardInterrupt(), Interrupted, 130),
        (pitr.PitrRestoreFailed("boom"), Failure, 1),
        (OSError(28, "No space left on device"), Failure, 1),
    ],
)
def test_a_failed_restore_leaves_nothing(
    tmp_path: Path, raised: BaseException, expected: type[Failure], code: int
) -> None:
    target = tmp_path / "recovered"
    with pytest.raises(expected) as failed, pitr._restore_folders(target, None) as folders:
        assert folders.data_dir == target
        for folder in (folders.scratch, folders.data_dir):
            assert folder.stat().st_mode & 0o777 == 0o700
        (target / "base").mkdir()
        (target / "base" / "1").write_bytes(b"rows")
        (folders.scratch / "wal").mkdir()
        raise raised
    assert failed.value.exit_code == code
    assert f"{target} was removed" in failed.value.message
    assert list(tmp_path.iterdir()) == []


def test_a_failed_restore_into_an_empty_folder_empties_it(tmp_path: Path) -> None:
    target = tmp_path / "given"
    target.mkdir()
    with pytest.raises(Failure) as failed, pitr._restore_folders(target, None):
        (target / "PG_VERSION").write_text("18\n")
        raise pitr.PitrRestoreFailed("boom")
    assert failed.value.message == f"boom ({target} was emptied.)"
    assert every_file(tmp_path) == [target]


def test_a_successful_restore_leaves_only_the_cluster(tmp_path: Path) -> None:
    target = tmp_path / "recovered"
    with pitr._restore_folders(target, None) as folders:
        (target / "PG_VERSION").write_text("18\n")
        (folders.scratch / "wal").mkdir()
    assert every_file(tmp_path) == [target, target / "PG_VERSION"]


def test_a_restore_into_a_url_leaves_nothing_in_the_temporary_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pitr.tempfile, "gettempdir", lambda: str(tmp_path))
    with pytest.raises(Interrupted), pitr._restore_folders(None, None) as folders:
        assert folders.data_dir.parent == folders.scratch
        (folders.data_dir / "PG_VERSION").write_text("18\n")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tiny file system needs root")
def test_a_full_disk_says_so_and_leaves_nothing(storage: Storage, tmp_path: Path) -> None:
    big = os.urandom(256 * 1024)  # does not compress: more than the file system holds
    entry = wal_entry(storage, SEGMENT, body=big)
    with tiny_file_system(tmp_path / "tiny") as tiny:
        target = tiny / "recovered"
        with pytest.raises(Failure) as failed, pitr._restore_folders(target, None) as folders:
            wal_dir = folders.scratch / "wal"
            wal_dir.mkdir()
            download_wal([{"wal": [entry]}], wal_dir)
        assert "No space left on the device" in failed.value.message
        assert f"{target} was removed" in failed.value.message
        assert list(tiny.iterdir()) == []


# -- the recovered cluster's configuration ----------------------------------------------------


def fake_cluster(tmp_path: Path, control: dict[str, str], major: int = 18) -> RecoveredCluster:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    cluster = RecoveredCluster(
        data_dir=data, install=tmp_path / "install", socket_dir=tmp_path / "socket",
        port=54321, user=None, log_file=tmp_path / "log", major=major,
    )  # fmt: skip
    cluster.control_data = lambda: control  # type: ignore[method-assign]
    return cluster


def test_the_configuration_keeps_nothing_of_the_source(tmp_path: Path) -> None:
    cluster = fake_cluster(
        tmp_path,
        {
            "max_connections setting": "300",
            "max_worker_processes setting": "8",
            "max_wal_senders setting": "10",
            "max_prepared_xacts setting": "5",
            # Not a number: not a value of the source's that goes in.
            "max_locks_per_xact setting": "64'\nrecovery_end_command = 'id",
        },
    )
    (cluster.data_dir / "postgresql.auto.conf").write_text("recovery_end_command = 'id'\n")
    configure_recovery(cluster, tmp_path / "wal dir'; id", "2026-12-01T10:00:00Z")
    conf = (cluster.data_dir / "postgresql.conf").read_text()
    assert (cluster.data_dir / "postgresql.auto.conf").read_text() == ""
    settings = dict(
        line.split(" = ", 1) for line in conf.splitlines() if line and not line.startswith("#")
    )
    assert settings == {
        "listen_addresses": "''",
        "port": "'54321'",
        "hba_file": f"'{cluster.data_dir}/pgbackups_hba.conf'",
        "ident_file": f"'{cluster.data_dir}/pgbackups_hba.conf'",
        "archive_mode": "'off'",
        "ssl": "'off'",
        "max_connections": "'300'",
        "max_worker_processes": "'8'",
        "max_wal_senders": "'10'",
        "max_prepared_transactions": "'5'",
        "event_triggers": "'off'",
        "unix_socket_directories": f"'{tmp_path}/socket'",
        "hot_standby": "'off'",
        "restore_command": f"'/bin/cp ''{tmp_path}/wal dir''\"''\"''; id''/%f %p'",
        "recovery_target_action": "'promote'",
        "recovery_target_timeline": "'current'",
        "recovery_target_time": "'2026-12-01 10:00:00.000000+00'",
        "recovery_target_inclusive": "'on'",
    }
    for name in ("postgresql.conf", "postgresql.auto.conf", "pgbackups_hba.conf"):
        assert (cluster.data_dir / name).stat().st_mode & 0o777 == 0o600
    assert (cluster.data_dir / "pgbackups_hba.conf").read_text() == "local all all trust\n"
    assert (cluster.data_dir / "recovery.signal").exists()


def test_servers_before_17_get_no_event_triggers_setting(tmp_path: Path) -> None:
    cluster = fake_cluster(tmp_path, {}, major=16)
    configure_recovery(cluster, tmp_path / "wal", None)
    conf = (cluster.data_dir / "postgresql.conf").read_text()
    assert "event_triggers" not in conf and "recovery_target_time =" not in conf


def test_the_base_backup_loses_its_configuration_and_anything_unsafe(tmp_path: Path) -> None:
    import tarfile

    def tar_with(*members: tuple[tarfile.TarInfo, bytes]) -> Path:
        path = tmp_path / f"base{len(list(tmp_path.glob('base*')))}.tar.gz"
        with tarfile.open(path, "w:gz") as archive:
            for info, body in members:
                info.size = len(body)
                archive.addfile(info, io.BytesIO(body))
        return path

    def file(name: str, body: bytes = b"x", mode: int = 0o644) -> tuple[tarfile.TarInfo, bytes]:
        info = tarfile.TarInfo(name)
        info.mode = mode
        return info, body

    names = ("postgresql.conf", "postgresql.auto.conf", "pg_hba.conf", "pg_ident.conf")
    data = tmp_path / "data"
    data.mkdir()
    unpack_base_backup(
        tar_with(file("PG_VERSION", b"18\n"), file("base/1/1259", mode=0o4755),
                 *(file(n, b"include_dir = 'x'\n") for n in names), file("standby.signal")),
        data,
    )  # fmt: skip
    assert sorted(str(p.relative_to(data)) for p in data.rglob("*")) == [
        "PG_VERSION",
        "base",
        "base/1",
        "base/1/1259",
    ]
    assert all(p.stat().st_mode & 0o7077 == 0 for p in data.rglob("*"))

    link = tarfile.TarInfo("pg_wal")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc"
    with pytest.raises(ClusterFailed, match="unsafe entry"):
        unpack_base_backup(tar_with((link, b"")), tmp_path / "data2")
    with pytest.raises(ClusterFailed, match="executable file, refused: base/1/16390"):
        unpack_base_backup(tar_with(file("base/1/16390", b"\x7fELF\x02\x01")), tmp_path / "d4")
    with pytest.raises(ClusterFailed, match="tablespaces"):
        unpack_base_backup(tar_with(file("tablespace_map", b"16384 /etc\n")), tmp_path / "data3")


def test_latest_is_refused_when_replay_stopped_before_the_last_wal_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster = fake_cluster(tmp_path, {"Bytes per WAL segment": str(16 * 1024 * 1024)})
    monkeypatch.setattr(cluster, "replay_lsn", lambda: 0x2FFFFFF)  # inside segment 2
    with pytest.raises(ClusterFailed, match="before the last WAL file"):
        check_replayed_to(cluster, SEGMENT)
    monkeypatch.setattr(cluster, "replay_lsn", lambda: 0x3000128)  # inside segment 3
    check_replayed_to(cluster, SEGMENT)


# -- the command line -------------------------------------------------------------------------


def test_a_password_on_the_command_line_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "s3cr3t-on-argv"
    monkeypatch.setenv("PGBACKUPS_API_URL", "https://api.example.com")
    monkeypatch.setenv("PGBACKUPS_TOKEN", "t0ken")
    url = f"postgresql://app:{secret}@db.example.com/shop"
    result = CliRunner().invoke(main, ["pitr-restore", "latest", "--target-url", url, "--yes"])
    assert result.exit_code == 2
    assert "--target-url: this URL holds a password" in result.output
    assert secret not in result.output


def test_cluster_module_stands_alone() -> None:
    # A server-side restore will use it: it must not need the CLI.
    source = Path(cluster_module.__file__).read_text()
    assert "pgbackups_cli" not in source


def test_a_wal_file_of_another_size_than_the_plan_says_is_refused(
    storage: Storage, tmp_path: Path
) -> None:
    entry = wal_entry(storage, SEGMENT, size=len(BODY) + 1)
    with pytest.raises(ClusterFailed, match="bytes received, the restore plan says"):
        download_wal([{"wal": [entry]}], tmp_path)


def test_a_wal_file_larger_than_a_segment_is_refused(
    storage: Storage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(recovery, "MAX_WAL_SEGMENT", 1024)
    entry = wal_entry(storage, SEGMENT, body=gzip.compress(b"\0" * 4096))
    with pytest.raises(ClusterFailed, match="larger than a WAL segment can be"):
        download_wal([{"wal": [entry]}], tmp_path)


def test_the_time_recovery_reached_is_read_from_the_servers_log(tmp_path: Path) -> None:
    cluster = fake_cluster(tmp_path, {})
    assert recovery.reached_at(cluster) is None  # no log yet
    cluster.log_file.write_text(
        "2026-12-06 05:07:50.101 GMT [41] LOG:  recovery stopping before commit of "
        "transaction 745, time 2026-12-06 05:07:45.120304+00\n"
        "2026-12-06 05:07:50.101 GMT [41] LOG:  last completed transaction was at log time "
        "2026-12-06 07:07:44.459002+02\n"
    )
    reached = recovery.reached_at(cluster)
    assert reached is not None and reached.isoformat() == "2026-12-06T05:07:44.459002+00:00"


@pytest.mark.skipif(os.geteuid() != 0, reason="the server runs as another user only as root")
def test_a_runner_recovers_where_the_servers_user_can_reach(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pgbackups.postgres.cluster import reachable_storage

    task = Path(tempfile.mkdtemp(dir="/var/tmp"))  # 0700: only the task's user enters it
    try:
        monkeypatch.setattr(tempfile, "tempdir", str(task))
        assert reachable_storage() == Path("/var/tmp")
        task.chmod(0o711)
        assert reachable_storage() == task
    finally:
        task.rmdir()
