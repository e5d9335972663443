"""Bootstrap of the Fargate backup task: the backup function's own code, in a container.

The task runs AWS's public Lambda Python image (no image of ours to build or
push). Its command is a one-line loader (template.yaml, BackupTaskDefinition)
that downloads the backup function's code package and runs this file from it.
This file then:

1. downloads the function's code and its layers from the presigned locations
   the runner passed in PGBACKUPS_TASK_CODE (GetFunction's Code.Location and
   GetLayerVersionByArn's Content.Location: what Lambda itself would unpack),
   and refuses any package that does not match its CodeSha256;
2. unpacks them as Lambda does, the function in <task dir>/var/task and the
   layers in order in <task dir>/opt, restoring each file's mode and symlinks
   (zipfile.extractall drops both: pg_dump would lose its execute bit);
3. runs backup_task.main from the unpacked function, with /opt's Python on
   sys.path, PGTOOLS_DIR at the unpacked pgtools layer and PGSERVER_DIRS at /opt,
   where a run that starts PostgreSQL finds the server layer the runner added
   (rooted at postgresql-<major>/, layers/pgserver/Makefile).

The task runs as root and PostgreSQL refuses to: its server runs as an unprivileged
user (pgbackups.postgres.cluster.server_user), who must reach and read the unpacked
server. So the task folder is left enterable by others (not listable) and every
server install is opened to them: folders 0755, files readable (executables 0755).

Standard library only: it runs before any dependency is unpacked. Nothing
secret passes through here; the backup reads its database URL from Secrets
Manager like the Lambda function does.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import stat
import sys
import tempfile
import time
import urllib.request
import zipfile
from pathlib import Path

CODE_VARIABLE = "PGBACKUPS_TASK_CODE"
TASK_DIR_VARIABLE = "PGBACKUPS_TASK_DIR"
DOWNLOAD_TIMEOUT_SECONDS = 120
DOWNLOAD_ATTEMPTS = 3


class BootstrapError(RuntimeError):
    """The task cannot get or unpack the function's code; the message says why."""


def _inside(root: Path, name: str) -> Path:
    """`root / name`, refusing names that climb out of root (absolute, `..`)."""
    path = Path(os.path.normpath(root / name))
    if path != root and root not in path.parents:
        raise BootstrapError(f"refusing archive entry {name!r}: it points outside {root}")
    return path


def _resolves_inside(root: Path, path: Path, name: str) -> None:
    """Refuse `name` unless `path`, every link on the way followed, stays in root."""
    real = Path(os.path.realpath(path))
    if real != root and root not in real.parents:
        raise BootstrapError(f"refusing {name!r}: it leads outside {root}")


def check_digest(path: Path, code_sha256: str) -> None:
    """The package must be the one Lambda describes: its CodeSha256 (base64 SHA-256)."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1024 * 1024), b""):
            digest.update(block)
    if base64.b64encode(digest.digest()).decode() != code_sha256:
        raise BootstrapError("a downloaded package does not match its CodeSha256")


def unpack(archive: zipfile.ZipFile, root: Path) -> int:
    """Extract `archive` into `root` with file modes and symlinks; returns the entry count.

    Later archives overwrite earlier ones (layers are applied in order, like
    Lambda's /opt). Every path is judged as the system resolves it, links followed
    (a chain such as `deep -> .`, `esc -> deep/..` reads as inside but leads out):
    nothing is written or chmod-ed outside root, a link must resolve inside root
    when made, and once all entries are in, every link must still (a later entry
    may turn a folder a link goes through into a link).
    """
    root = root.resolve()
    count = 0
    for info in archive.infolist():
        target = _inside(root, info.filename)
        mode = info.external_attr >> 16
        if info.is_dir():
            _resolves_inside(root, target, info.filename)
            target.mkdir(parents=True, exist_ok=True)
            if stat.S_IMODE(mode):
                os.chmod(target, stat.S_IMODE(mode) | 0o700)
            continue
        _resolves_inside(root, target.parent, info.filename)
        target.parent.mkdir(parents=True, exist_ok=True)
        _resolves_inside(root, target.parent, info.filename)
        if target.is_dir() and not target.is_symlink():
            raise BootstrapError(f"refusing {info.filename!r}: it would replace a folder")
        if target.is_symlink() or target.exists():
            target.unlink()
        if stat.S_ISLNK(mode):
            link = archive.read(info).decode()
            if os.path.isabs(link):
                raise BootstrapError(f"refusing absolute symlink {info.filename!r} -> {link!r}")
            _inside(root, os.path.join(os.path.dirname(info.filename), link))
            _resolves_inside(root, target.parent / link, info.filename)
            os.symlink(link, target)
        else:
            with archive.open(info) as source, open(target, "wb") as sink:
                shutil.copyfileobj(source, sink, 1024 * 1024)
            # Zips without Unix modes (made on Windows) keep the default 0644.
            if stat.S_IMODE(mode):
                os.chmod(target, stat.S_IMODE(mode))
        count += 1
    for entry in [path for path in root.rglob("*") if path.is_symlink()]:
        _resolves_inside(root, entry, str(entry.relative_to(root)))
    return count


def download(url: str, into: Path) -> Path:
    """Fetch a presigned location to a file, retrying transient failures."""
    if not url.startswith(("https://", "http://127.0.0.1:", "http://localhost:")):
        raise BootstrapError("code locations must be https (or the local stack's endpoint)")
    path = Path(tempfile.mkstemp(dir=into, suffix=".zip")[1])
    for attempt in range(1, DOWNLOAD_ATTEMPTS + 1):
        try:
            with (
                urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_SECONDS) as response,  # noqa: S310 (scheme checked)
                open(path, "wb") as sink,
            ):
                shutil.copyfileobj(response, sink, 1024 * 1024)
            return path
        except OSError as error:
            if attempt == DOWNLOAD_ATTEMPTS:
                # The URL is presigned: say which download failed, not where it points.
                raise BootstrapError(f"downloading the code failed: {error}") from None
            time.sleep(2 * attempt)
    raise AssertionError("unreachable")


def install(code: dict[str, object], task_dir: Path) -> tuple[Path, Path]:
    """Download and unpack the function and its layers; returns (function dir, /opt)."""
    function_dir = task_dir / "var" / "task"
    opt_dir = task_dir / "opt"
    downloads = task_dir / "downloads"
    for folder in (function_dir, opt_dir, downloads):
        folder.mkdir(parents=True, exist_ok=True)
    layers = code.get("layers") or []
    packages: list[object] = [code.get("function"), *layers] if isinstance(layers, list) else []
    if not packages or not all(
        isinstance(p, dict)
        and isinstance(p.get("location"), str)
        and isinstance(p.get("sha256"), str)
        for p in packages
    ):
        raise BootstrapError(
            f"{CODE_VARIABLE} must be {{'function': package, 'layers': [package, ...]}}, "
            "each package {'location': url, 'sha256': CodeSha256}"
        )
    folders = [function_dir, *(opt_dir for _ in packages[1:])]
    for package, into in zip(packages, folders, strict=True):
        assert isinstance(package, dict)
        path = download(str(package["location"]), downloads)
        check_digest(path, str(package["sha256"]))
        with zipfile.ZipFile(path) as archive:
            unpack(archive, into)
        path.unlink()
    open_servers(opt_dir)
    return function_dir, opt_dir


def open_servers(opt_dir: Path) -> None:
    """Let the server's unprivileged user reach and run every unpacked server install
    (`<opt>/postgresql-<major>/`): the task folder enterable, folders 0755, files
    readable by all, executables runnable by all. Nothing else of /opt changes."""
    for folder in (opt_dir.parent, opt_dir):
        folder.chmod(stat.S_IMODE(folder.stat().st_mode) | 0o711)
    for install in opt_dir.glob("postgresql-*"):
        if install.is_symlink() or not install.is_dir():
            continue
        for path in [install, *install.rglob("*")]:
            if path.is_symlink():
                continue
            runnable = path.is_dir() or path.stat().st_mode & stat.S_IXUSR
            path.chmod(0o755 if runnable else 0o644)


def main() -> int:
    started = time.monotonic()
    try:
        code = json.loads(os.environ[CODE_VARIABLE])
    except (KeyError, ValueError):
        print(f"{CODE_VARIABLE} is missing or not JSON", file=sys.stderr)
        return 2
    task_dir = Path(os.environ.get(TASK_DIR_VARIABLE) or tempfile.mkdtemp(prefix="pgbackups-"))
    try:
        function_dir, opt_dir = install(code, task_dir)
    except BootstrapError as error:
        print(f"bootstrap failed: {error}", file=sys.stderr)
        return 3
    # Lambda's sys.path for a function with layers: the function, then /opt/python.
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for path in reversed(
        [function_dir, opt_dir / "python", opt_dir / "python" / "lib" / version / "site-packages"]
    ):
        sys.path.insert(0, str(path))
    os.environ["PGTOOLS_DIR"] = str(opt_dir)
    os.environ["PGSERVER_DIRS"] = str(opt_dir)
    servers = ", ".join(sorted(path.name for path in opt_dir.glob("postgresql-*"))) or "none"
    print(
        f"bootstrap: function and {len(code.get('layers') or [])} layers unpacked "
        f"in {time.monotonic() - started:.1f} s (servers: {servers})",
        file=sys.stderr,
        flush=True,
    )
    import backup_task  # the unpacked function's task entry point

    return int(backup_task.main(started_monotonic=started))


if __name__ == "__main__":
    sys.exit(main())
