"""Point-in-time recovery as a user runs it: the local stack, `pgbackups pitr-enable`,
`pgbackups local pitr-capture`, `pgbackups pitr-window`, `pgbackups pitr-restore` and
`pgbackups pitr-disable`, on a real PostgreSQL 18."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pgbackups_local.postgres import EmbeddedPostgres, free_port
from tests.e2e.conftest import Cli, RunningStack, beside_the_stack, pgbackups_command

pytestmark = pytest.mark.e2e

CACHE = "/var/tmp/pgbackups-test-cache"


@pytest.fixture(scope="module")
def cli(local_stack: RunningStack, tmp_path_factory: pytest.TempPathFactory) -> Cli:
    base = tmp_path_factory.mktemp("pitr-cli")
    (base / "work").mkdir()
    (base / "home").mkdir()
    return Cli(local_stack, beside_the_stack(base / "work", local_stack), base / "home")


@pytest.fixture
def server() -> Iterator[EmbeddedPostgres]:
    server = EmbeddedPostgres(name="pitr-e2e").init().start()
    try:
        yield server
    finally:
        server.destroy()


def commit(server: EmbeddedPostgres, row: int, database: str = "orders") -> datetime:
    server.psql(f"SET synchronous_commit = on; INSERT INTO events VALUES ({row})", database)
    stamp = server.psql("SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US')")
    return datetime.fromisoformat(stamp).replace(tzinfo=UTC)


def capture(cli: Cli, database: str = "orders") -> dict[str, object]:
    """One capture now; the stack's own schedule may hold the lease a moment: try again."""
    for _ in range(30):
        result = cli(
            "local", "pitr-capture", "-d", database, "--json",
            "--state-dir", str(cli.stack.state_dir),
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        (answer,) = json.loads(result.stdout)
        if answer["outcome"] != "busy":
            return answer
        time.sleep(1)
    pytest.fail("the capture stayed busy")


def test_capture_window_and_restore_to_a_point_in_time(
    cli: Cli, server: EmbeddedPostgres, tmp_path: Path
) -> None:
    url = server.create_database("orders")
    server.psql("CREATE TABLE events (id int PRIMARY KEY)", "orders")
    api = cli.stack.api()
    base = f"{cli.stack.api_url}/v1/databases"
    assert api.post(base, json={"name": "orders", "url": url}, timeout=30).status_code == 201
    enabled = api.put(f"{base}/orders/pitr", json={"enabled": True}, timeout=60)
    assert enabled.status_code == 200, enabled.text
    # Enabling started the first base backup on the backup function; it may be stored already.
    assert enabled.json()["base_backup_in_progress"] or enabled.json()["base_backups"]

    for _ in range(120):
        view = api.get(f"{base}/orders/pitr", timeout=30).json()
        if view["base_backups"] or view["last_base_backup_error"]:
            break
        time.sleep(1)
    else:
        pytest.fail(f"no base backup was stored: {view}")
    assert view["last_base_backup_error"] is None
    (stored,) = view["base_backups"]
    assert stored["runner"] == "lambda", "taken by the backup function"
    assert view["base_backup_in_progress"] is None
    capture(cli)
    text = cli("local", "pitr-capture", "-d", "orders", "--state-dir", str(cli.stack.state_dir))
    assert text.returncode == 0 and "-----> Captured orders:" in text.stdout

    commit(server, 1)
    commit(server, 2)
    time.sleep(1.1)
    after_two = datetime.now(UTC)
    time.sleep(1.1)
    commit(server, 3)
    capture(cli)

    window = cli("pitr-window", "-d", "orders")
    assert window.returncode == 0, window.stderr
    assert window.stdout.startswith("=== Continuous backups of orders\nStatus:            ok\n")
    assert re.search(r"^Recoverable: +\d{4}-\d\d-\d\d [\d:]+ UTC to \d{4}-", window.stdout, re.M)

    # Outside the window: refused before anything is downloaded.
    nowhere = tmp_path / "never"
    refused = cli(
        "pitr-restore", "2001-01-01T00:00:00Z", "--target-dir", str(nowhere), "--yes",
        "-d", "orders", PGBACKUPS_CACHE_DIR=str(tmp_path / "empty-cache"),
    )  # fmt: skip
    assert refused.returncode == 1
    assert "outside the recovery window" in refused.stderr
    assert not nowhere.exists() and not (tmp_path / "empty-cache").exists()

    target = server.create_database("orders_restored")
    server.psql("CREATE TABLE events (id int PRIMARY KEY)", "orders_restored")
    restored = cli(
        "pitr-restore", after_two.isoformat().replace("+00:00", "Z"), "--target-url", "-",
        "--yes", "-d", "orders", input=target + "\n", PGBACKUPS_CACHE_DIR=CACHE,
    )  # fmt: skip
    assert restored.returncode == 0, restored.stderr + restored.stdout
    assert "Restored orders as of" in restored.stdout
    assert target.split("@")[0].split(":")[-1] not in restored.stdout + restored.stderr
    assert (
        server.psql("SELECT string_agg(id::text, ',' ORDER BY id) FROM events", "orders_restored")
        == "1,2"
    )

    # The latest state into a directory: a promoted cluster that starts on its own.
    # As root the server runs as `postgres`, which must reach the directory.
    reachable = Path(tempfile.mkdtemp(dir="/var/tmp"))
    reachable.chmod(0o755)
    cluster_dir = reachable / "recovered"
    latest = cli(
        "pitr-restore", "latest", "--target-dir", str(cluster_dir), "--yes", "-d", "orders",
        PGBACKUPS_CACHE_DIR=CACHE,
    )  # fmt: skip
    assert latest.returncode == 0, latest.stderr + latest.stdout
    assert f"===> {cluster_dir}" in latest.stdout
    try:
        assert rows_of_cluster(cluster_dir) == "1,2,3"
    finally:
        shutil.rmtree(reachable, ignore_errors=True)


def test_enable_see_the_window_and_disable_from_the_cli(
    cli: Cli, server: EmbeddedPostgres, tmp_path: Path
) -> None:
    """The flow the README shows: the replication URL from a file on stdin, never on the
    command line; a refused server said in the API's words, with nothing enabled."""
    url = server.create_database("shop")
    server.psql("CREATE TABLE events (id int PRIMARY KEY)", "shop")
    server.psql("CREATE ROLE streamer LOGIN REPLICATION PASSWORD 'Streamer-pw-2'")
    added = cli("databases-add", "shop", "--url", "-", input=url + "\n")
    assert added.returncode == 0, added.stderr

    nobody = f"postgresql://streamer:Streamer-pw-2@127.0.0.1:{free_port()}/shop"
    refused = cli("pitr-enable", "-d", "shop", "--replication-url", "-", input=nobody + "\n")
    assert refused.returncode == 1
    assert refused.stderr.splitlines()[-1].startswith(" !     ")
    assert "Streamer-pw-2" not in refused.stdout + refused.stderr
    assert cli.api_get("/v1/databases/shop/pitr")["enabled"] is False

    repl = tmp_path / "repl.url"
    repl.write_text(f"postgresql://streamer:Streamer-pw-2@127.0.0.1:{server.port}/shop\n")
    enabled = cli("pitr-enable", "-d", "shop", "--replication-url", "-", input=repl.read_text())
    assert enabled.returncode == 0, enabled.stderr
    print(f"\n$ pgbackups pitr-enable --replication-url - < repl.url\n{enabled.stdout}")
    assert enabled.stdout.splitlines() == [
        "-----> Continuous backups enabled for shop",
        "       Replication through the URL given",
        "       A base backup every 7 days, history kept 7 days",
        "       The first base backup is on its way: `pgbackups pitr-window -d shop` shows it.",
    ]
    for _ in range(120):
        view = cli.api_get("/v1/databases/shop/pitr")
        if view["base_backups"] or view["last_base_backup_error"]:
            break
        time.sleep(1)
    assert view["last_base_backup_error"] is None and view["base_backups"], view
    capture(cli, "shop")
    commit(server, 1, "shop")
    capture(cli, "shop")

    window = cli("pitr-window", "-d", "shop")
    assert window.returncode == 0, window.stderr
    print(f"$ pgbackups pitr-window\n{window.stdout}")
    lines = window.stdout.splitlines()
    assert lines[:2] == ["=== Continuous backups of shop", "Status:            ok"]
    assert re.fullmatch(
        r"Recoverable: +\d{4}-\d\d-\d\d [\d:]+ UTC to \d{4}-\S+ [\d:]+ UTC", lines[2]
    )
    assert re.fullmatch(r"Lag: +(\d+ (s|min \d+ s)) behind", lines[3])
    assert re.fullmatch(r"Last archived WAL: +([0-9A-F]{24} at )?\d{4}-\S+ [\d:]+ UTC", lines[4])
    assert lines[5] == "Settings:          a base backup every 7 days, history kept 7 days"
    assert "Streamer-pw-2" not in window.stdout + window.stderr

    asked = cli("pitr-disable", "-d", "shop")  # no terminal to say yes: nothing changes
    assert asked.returncode == 1 and "expires with the window (7 days)" in asked.stdout
    assert cli.api_get("/v1/databases/shop/pitr")["enabled"] is True
    disabled = cli("pitr-disable", "-d", "shop", "--yes")
    assert disabled.returncode == 0, disabled.stderr
    print(f"$ pgbackups pitr-disable --yes\n{disabled.stdout}")
    assert disabled.stdout.startswith("-----> Continuous backups disabled for shop\n")
    assert cli.api_get("/v1/databases/shop/pitr")["enabled"] is False
    after = cli("pitr-window", "-d", "shop")
    print(f"$ pgbackups pitr-window\n{after.stdout}")
    assert after.stdout.startswith("-----> Continuous backups are disabled for shop")


def enable_continuous_backups(
    cli: Cli, server: EmbeddedPostgres, name: str, replication_url: str | None = None
) -> None:
    """`name` registered with continuous backups on, its first base backup stored."""
    api = cli.stack.api()
    base = f"{cli.stack.api_url}/v1/databases"
    url = server.url(name)
    assert api.post(base, json={"name": name, "url": url}, timeout=30).status_code == 201
    settings: dict[str, object] = {"enabled": True}
    if replication_url is not None:
        settings["replication_url"] = replication_url
    enabled = api.put(f"{base}/{name}/pitr", json=settings, timeout=60)
    assert enabled.status_code == 200, enabled.text
    for _ in range(120):
        view = api.get(f"{base}/{name}/pitr", timeout=30).json()
        if view["base_backups"] or view["last_base_backup_error"]:
            break
        time.sleep(1)
    else:
        pytest.fail(f"no base backup was stored: {view}")
    assert view["last_base_backup_error"] is None


def test_a_source_superuser_runs_nothing_on_the_restoring_machine(
    cli: Cli, server: EmbeddedPostgres
) -> None:
    """Settings that run commands or load code travel in the base backup: none is used."""
    server.create_database("hostile")
    server.psql("CREATE TABLE events (id int PRIMARY KEY)", "hostile")
    markers = Path(tempfile.mkdtemp(dir="/var/tmp"))
    markers.chmod(0o777)  # writable by whichever user a command would run as
    hostile = {
        "recovery_end_command": f"touch {markers}/recovery_end_command",
        "archive_cleanup_command": f"touch {markers}/archive_cleanup_command",
        "archive_command": f"touch {markers}/archive_command",
        "restore_command": f"touch {markers}/restore_command; false",
        "shared_preload_libraries": "pgbackups_no_such_library",
        "session_preload_libraries": "pgbackups_no_such_library",
        "dynamic_library_path": str(markers),
        "archive_mode": "always",
    }
    for name, value in hostile.items():
        server.psql(f"ALTER SYSTEM SET {name} = '{value}'")
    (server.data_dir / "conf.d").mkdir()
    (server.data_dir / "conf.d" / "more.conf").write_text(
        f"recovery_end_command = 'touch {markers}/include_dir'\n"
    )
    with (server.data_dir / "postgresql.conf").open("a") as conf:
        conf.write("include_dir = 'conf.d'\n")
    (server.data_dir / "pg_hba.conf").write_text("local all all trust\nhost all all all trust\n")
    # Not reloaded: the source runs on; the base backup carries the files as they are.
    enable_continuous_backups(cli, server, "hostile")
    capture(cli, "hostile")
    commit(server, 1, "hostile")
    commit(server, 2, "hostile")
    capture(cli, "hostile")

    reachable = Path(tempfile.mkdtemp(dir="/var/tmp"))
    reachable.chmod(0o755)
    cluster_dir = reachable / "recovered"
    try:
        restored = cli(
            "pitr-restore", "latest", "--target-dir", str(cluster_dir), "--yes", "-d", "hostile",
            PGBACKUPS_CACHE_DIR=CACHE,
        )  # fmt: skip
        assert restored.returncode == 0, restored.stderr + restored.stdout
        assert list(markers.iterdir()) == [], "a command of the source ran"
        assert [p.name for p in reachable.iterdir()] == ["recovered"], "work files left behind"
        # Everything the restore wrote is its owner's only.
        for path in [cluster_dir, *cluster_dir.rglob("*")]:
            assert path.stat().st_mode & 0o077 == 0, f"{path} is readable by others"
        kept = (cluster_dir / "postgresql.conf").read_text()
        kept += (cluster_dir / "postgresql.auto.conf").read_text()
        for name, value in hostile.items():
            assert value not in kept, name
        assert "include" not in kept and not (cluster_dir / "pg_hba.conf").exists()
        pg_ctl = str(Path(CACHE).resolve() / "postgresql-18" / "bin" / "pg_ctl")
        assert "Start it with: LD_LIBRARY_PATH=" in restored.stdout
        assert pg_ctl in restored.stdout
        assert rows_of_cluster(cluster_dir, "hostile") == "1,2"
        assert list(markers.iterdir()) == [], "a command of the source ran"
    finally:
        shutil.rmtree(reachable, ignore_errors=True)
        shutil.rmtree(markers, ignore_errors=True)


def test_a_dedicated_replication_role_restores_every_table(
    cli: Cli, server: EmbeddedPostgres
) -> None:
    """The chain is streamed by a role that may replicate but read no table: the recovered
    cluster is dumped as its superuser, restored as the target URL's user."""
    server.create_database("shop_repl")
    server.psql("CREATE TABLE events (id int PRIMARY KEY)", "shop_repl")
    server.psql("CREATE ROLE streamer LOGIN REPLICATION PASSWORD 'Streamer-pw-1'")
    streamer = f"postgresql://streamer:Streamer-pw-1@127.0.0.1:{server.port}/shop_repl"
    enable_continuous_backups(cli, server, "shop_repl", replication_url=streamer)
    capture(cli, "shop_repl")
    commit(server, 7, "shop_repl")
    capture(cli, "shop_repl")
    target = server.create_database("shop_repl_restored")
    restored = cli(
        "pitr-restore", "latest", "--target-url", "-", "--yes", "-d", "shop_repl",
        input=target + "\n", PGBACKUPS_CACHE_DIR=CACHE,
    )  # fmt: skip
    assert restored.returncode == 0, restored.stderr + restored.stdout
    assert server.psql("SELECT string_agg(id::text, ',') FROM events", "shop_repl_restored") == "7"
    assert "Streamer-pw-1" not in restored.stdout + restored.stderr


def test_ctrl_c_removes_the_partial_cluster(cli: Cli, server: EmbeddedPostgres) -> None:
    server.create_database("stopped")
    server.psql("CREATE TABLE events (id int PRIMARY KEY)", "stopped")
    enable_continuous_backups(cli, server, "stopped")
    commit(server, 1, "stopped")
    capture(cli, "stopped")
    reachable = Path(tempfile.mkdtemp(dir="/var/tmp"))
    reachable.chmod(0o755)
    cluster_dir = reachable / "recovered"
    # As a terminal does: SIGINT to the whole foreground process group.
    process = subprocess.Popen(
        pgbackups_command(
            "pitr-restore", "latest", "--target-dir", str(cluster_dir), "--yes", "-d", "stopped"
        ),
        env=cli.environment(PGBACKUPS_CACHE_DIR=CACHE, PYTHONUNBUFFERED="1"),
        cwd=cli.folder, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first.startswith("-----> Downloading the base backup"), first
        os.killpg(process.pid, signal.SIGINT)
        out, err = process.communicate(timeout=120)
        assert process.returncode == 130, first + out + err
        assert "Interrupted: the restore was stopped, its files removed." in err
        assert f"{cluster_dir} was removed" in err
        assert list(reachable.iterdir()) == []
    finally:
        if process.poll() is None:
            process.kill()
        shutil.rmtree(reachable, ignore_errors=True)


def rows_of_cluster(data_dir: Path, database: str = "orders") -> str:
    """Start the cluster pitr-restore left, as its owner, read the rows, stop it."""
    install = Path(CACHE) / "postgresql-18"
    runuser = shutil.which("runuser", path="/usr/sbin:/sbin:/usr/bin:/bin") or "runuser"
    user = [] if os.geteuid() else [runuser, "-u", "postgres", "--"]
    env = {"LD_LIBRARY_PATH": str(install / "lib"), "PATH": "/usr/bin:/bin"}
    port = next(
        line.split("'")[1]
        for line in (data_dir / "postgresql.conf").read_text().splitlines()[::-1]
        if line.startswith("port = ")
    )

    def run(*args: str) -> str:
        done = subprocess.run(
            [*user, *args], env=env, capture_output=True, text=True, check=False, cwd="/"
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    log = data_dir / "startup.log"
    run(str(install / "bin/pg_ctl"), "-D", str(data_dir), "-l", str(log), "-w", "start")
    try:
        return run(
            str(install / "bin/psql"), "-h", "/tmp", "-p", port, "-U", "postgres", "-d", database,
            "-Atc", "SELECT string_agg(id::text, ',' ORDER BY id) FROM events",
        ).strip()  # fmt: skip
    finally:
        run(str(install / "bin/pg_ctl"), "-D", str(data_dir), "-m", "fast", "-w", "stop")
