"""The built function and layers (`make build`'s .aws-sam/build) as Lambda's zip packages.

The local Lambda endpoint answers GetFunction and GetLayerVersionByArn with
locations of these packages, as Lambda answers with presigned S3 URLs, so the
Fargate task's bootstrap downloads and unpacks exactly what `sam build` made.
Each file keeps its mode and each symlink stays a symlink (Unix attributes in
the zip, as `zip -y` writes them): the bootstrap must restore both.
"""

from __future__ import annotations

import base64
import hashlib
import os
import stat
import threading
import zipfile
from pathlib import Path


def zip_tree(source: Path, archive: Path) -> None:
    """Zip the tree under `source` (paths relative to it) into `archive`, atomically."""
    staging = archive.with_suffix(".partial")
    with zipfile.ZipFile(staging, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as package:
        for folder, dirs, files in os.walk(source):
            dirs.sort()
            here = Path(folder)
            for name in sorted(dirs) + sorted(files):
                path = here / name
                arcname = path.relative_to(source).as_posix()
                if path.is_symlink():
                    info = zipfile.ZipInfo(arcname)
                    info.create_system = 3  # Unix: external_attr holds st_mode
                    info.external_attr = (stat.S_IFLNK | 0o777) << 16
                    package.writestr(info, os.readlink(path))
                elif path.is_file():
                    package.write(path, arcname)  # ZipInfo.from_file keeps the mode
    staging.replace(archive)


class CodePackages:
    """Zips of the built artifacts, made once per stack on first request."""

    def __init__(self, build_dir: Path, cache_dir: Path) -> None:
        self.build_dir = build_dir
        self.cache_dir = cache_dir
        self._lock = threading.Lock()
        self._made: dict[str, Path] = {}

    def package(self, logical_id: str) -> Path:
        with self._lock:
            if logical_id not in self._made:
                source = self.build_dir / logical_id
                if not source.is_dir():
                    raise FileNotFoundError(
                        f"{logical_id} is not built at {source}: run `make build`"
                    )
                self.cache_dir.mkdir(parents=True, exist_ok=True)
                archive = self.cache_dir / f"{logical_id}.zip"
                zip_tree(source, archive)
                self._made[logical_id] = archive
            return self._made[logical_id]

    def sha256(self, logical_id: str) -> str:
        digest = hashlib.sha256()
        with open(self.package(logical_id), "rb") as stream:
            for block in iter(lambda: stream.read(1024 * 1024), b""):
                digest.update(block)
        return digest.hexdigest()

    def code_sha256(self, logical_id: str) -> str:
        """Lambda's CodeSha256 of the package: its SHA-256, base64."""
        return base64.b64encode(bytes.fromhex(self.sha256(logical_id))).decode()
