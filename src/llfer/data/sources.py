"""Uniform read access to a dataset source: a folder, a zip file (members read in
place, nothing extracted), a tar file (safely extracted to a temporary folder) or
a single plain file.

A :class:`SourceTree` lists the regular files of the source as posix paths
relative to its root (hidden files, ``__MACOSX`` and similar clutter left out)
and reads them as bytes or text.
"""

from __future__ import annotations

import io
import os
import posixpath
import shutil
import stat
import zipfile
from pathlib import Path
from typing import IO, Iterable

from ..errors import DataError
from ..io import make_temp_dir
from .download import _is_tar, check_member_name, check_member_size, safe_extract

_JUNK_NAMES = {"thumbs.db", "desktop.ini"}


def is_junk(rel: str) -> bool:
    """Hidden files/folders, macOS resource forks and Windows thumbnails."""
    for part in rel.split("/"):
        if part.startswith(".") or part.startswith("__MACOSX"):
            return True
    return rel.rsplit("/", 1)[-1].lower() in _JUNK_NAMES


class SourceTree:
    """Files of a dataset source; subclasses implement :meth:`read` and :meth:`open_binary`."""

    kind = "folder"

    def __init__(self, label: str, files: Iterable[str], dirs: Iterable[str] = ()):
        self.label = label
        self.files: list[str] = sorted(f for f in files if not is_junk(f))
        self._set = set(self.files)
        #: every folder (explicit or implied by a file), so empty folders can be reported
        self.dirs: set[str] = {d for d in dirs if d and not is_junk(d)}
        for f in self.files:
            parts = f.split("/")[:-1]
            for k in range(1, len(parts) + 1):
                self.dirs.add("/".join(parts[:k]))

    def __contains__(self, name: str) -> bool:
        return name in self._set

    def where(self, name: str) -> str:
        """How a member is named in messages and reports."""
        return f"{self.label}:{name}" if self.kind != "folder" else os.path.join(self.label, name)

    def read(self, name: str) -> bytes:  # pragma: no cover - abstract
        raise NotImplementedError

    def open_binary(self, name: str) -> IO[bytes]:  # pragma: no cover - abstract
        raise NotImplementedError

    def open_text(self, name: str) -> IO[str]:
        return io.TextIOWrapper(self.open_binary(name), encoding="utf-8-sig", newline="")

    def find(self, basename: str) -> list[str]:
        """Members whose file name equals ``basename`` (case-insensitive), shallowest first."""
        b = basename.lower()
        hits = [f for f in self.files if f.rsplit("/", 1)[-1].lower() == b]
        return sorted(hits, key=lambda f: (f.count("/"), f))

    def close(self) -> None:
        pass

    def __enter__(self) -> "SourceTree":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FolderTree(SourceTree):
    kind = "folder"

    def __init__(self, root: Path, files: Iterable[str] | None = None, label: str | None = None,
                 cleanup: Path | None = None):
        self.root = Path(root)
        self._cleanup = cleanup
        dirs: list[str] = []
        if files is None:
            files, dirs = self._walk()
        super().__init__(label or str(self.root), files, dirs)
        if cleanup is not None:
            self.kind = "archive"

    def _walk(self) -> tuple[list[str], list[str]]:
        out: list[str] = []
        dirs: list[str] = []
        root = str(self.root)
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            dirnames[:] = [d for d in dirnames if not d.startswith(".") and not d.startswith("__MACOSX")]
            rel_dir = os.path.relpath(dirpath, root)
            if rel_dir != ".":
                dirs.append(rel_dir.replace(os.sep, "/"))
            for fn in filenames:
                full = os.path.join(dirpath, fn)
                try:
                    if not stat.S_ISREG(os.stat(full).st_mode):
                        continue
                except OSError:
                    continue  # dangling link
                rel = fn if rel_dir == "." else f"{rel_dir}/{fn}"
                out.append(rel.replace(os.sep, "/"))
        return out, dirs

    def path(self, name: str) -> Path:
        return self.root.joinpath(*name.split("/"))

    def read(self, name: str) -> bytes:
        return self.path(name).read_bytes()

    def open_binary(self, name: str) -> IO[bytes]:
        return open(self.path(name), "rb")

    def close(self) -> None:
        if self._cleanup is not None:
            shutil.rmtree(self._cleanup, ignore_errors=True)
            self._cleanup = None


class ZipTree(SourceTree):
    kind = "zip"

    def __init__(self, archive: Path):
        try:
            self.zf = zipfile.ZipFile(archive)
        except (zipfile.BadZipFile, OSError) as e:
            raise DataError(f"{archive}: unreadable zip file ({e})") from None
        self._info: dict[str, zipfile.ZipInfo] = {}
        dirs: list[str] = []
        try:
            for info in self.zf.infolist():
                rel = check_member_name(info.filename, archive)
                if not rel:
                    continue
                if info.is_dir():
                    dirs.append(rel)
                    continue
                if info.create_system == 3 and stat.S_ISLNK(info.external_attr >> 16):
                    target = self.zf.read(info).decode("utf-8", "replace").replace("\\", "/")
                    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(rel), target))
                    if target.startswith("/") or resolved == ".." or resolved.startswith("../"):
                        raise DataError(f"{archive}: refusing link {info.filename!r} -> {target!r}: it points outside the archive")
                    continue  # links inside the archive are not followed
                check_member_size(archive, info.filename, info.file_size, info.compress_size)
                self._info[rel] = info
        except DataError:
            self.zf.close()
            raise
        super().__init__(str(archive), self._info, dirs)

    def read(self, name: str) -> bytes:
        return self.zf.read(self._info[name])

    def open_binary(self, name: str) -> IO[bytes]:
        return self.zf.open(self._info[name])

    def close(self) -> None:
        self.zf.close()


def open_tree(source: str | os.PathLike[str], only: Iterable[str] | None = None) -> SourceTree:
    """Open ``source`` (folder, zip, tar or plain file) as a :class:`SourceTree`.

    ``only`` restricts a folder to the given relative names (used for a file
    source: its folder, limited to the file and known siblings).
    """
    path = Path(source)
    if not path.exists():
        raise DataError(f"dataset source {path} does not exist")
    if path.is_dir():
        if only is not None:
            return FolderTree(path, [n for n in only if (path / n).is_file()])
        return FolderTree(path)
    if zipfile.is_zipfile(path):
        return ZipTree(path)
    if _is_tar(path):
        tmp = make_temp_dir(None, "llfer-extract")  # also removes those of killed runs
        try:
            safe_extract(path, tmp)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return FolderTree(tmp, label=str(path), cleanup=tmp)
    return FolderTree(path.parent, [path.name])
