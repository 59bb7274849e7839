"""Getting the data: local paths, verified downloads into a cache, safe archive extraction.

* :func:`resolve_source` turns the ``source`` of params.yaml into a local path: a
  local file or folder is returned as it is (after an existence check, and a
  sha256 check when one is given for a file); an ``http(s)://`` or ``file://``
  URL is downloaded with a progress bar into ``cache_dir``, verified against
  its sha256, renamed into place atomically, and not fetched again once a
  verified copy is there.
* :func:`safe_extract` unpacks a zip or tar archive, refusing members with
  absolute paths or ``..`` components (zip-slip / tar-slip) and links that
  point outside the destination.
* :func:`check_member_name` is the same name check, used by the readers that
  read zip members directly without extracting them.
* :func:`check_member_size` caps a member's declared size and compression
  ratio before it is read (zip bombs): :func:`current_limits`,
  ``dataset.max_member_mb`` / ``dataset.max_compression_ratio`` (set for a
  run by :func:`archive_limits`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import posixpath
import re
import shutil
import stat
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from ..errors import DataError
from ..io import remove_stale_temps, temp_prefix

_CHUNK = 1 << 20
_URL_RE = re.compile(r"^(https?|file)://", re.IGNORECASE)
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def is_url(source: str) -> bool:
    return bool(_URL_RE.match(str(source)))


def _norm_sha(sha256: str | None, where: str) -> str | None:
    if sha256 is None or sha256 == "":
        return None
    s = str(sha256).strip().lower()
    if s.startswith("sha256:"):
        s = s[len("sha256:"):]
    if not _HEX64.match(s):
        raise DataError(f"{where}: sha256 must be 64 hex digits, got {sha256!r}")
    return s


def _cache_name(url: str) -> str:
    """A cache file name that is stable per URL and keeps the URL's base name."""
    path = urllib.parse.urlparse(url).path
    base = posixpath.basename(path.rstrip("/")) or "download"
    base = re.sub(r"[^A-Za-z0-9._+-]", "_", urllib.parse.unquote(base))[:100].lstrip(".") or "download"
    tag = hashlib.sha256(url.encode()).hexdigest()[:12]
    return f"{tag}-{base}"


def resolve_source(source: str | os.PathLike[str], sha256: str | None, cache_dir: str | os.PathLike[str]) -> Path:
    """Return a local path for ``source`` (a local file/folder or a URL), downloading if needed.

    Raises :class:`DataError` naming the path or URL when it is missing, cannot
    be downloaded, or does not match ``sha256``.
    """
    src = str(source)
    if not is_url(src):
        path = Path(src).expanduser()
        if not path.exists():
            raise DataError(f"dataset source {path} does not exist")
        want = _norm_sha(sha256, str(path))
        if want is not None and path.is_dir():
            raise DataError(f"{path}: sha256 is given but the source is a folder; a checksum applies to a file "
                            "or a download (give the archive, or set dataset.sha256 to null)")
        if want is not None:
            got = sha256_file(path)
            if got != want:
                raise DataError(f"{path}: sha256 mismatch (expected {want}, got {got})")
        return path

    want = _norm_sha(sha256, src)
    cache = Path(cache_dir)
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"cannot create download cache {cache}: {e.strerror}") from None
    target = cache / _cache_name(src)
    if target.is_file():
        if want is None:
            # Nothing to verify against; a completed download is only ever renamed into place.
            return target
        if sha256_file(target) == want:
            return target
        target.unlink()  # stale or corrupted copy: fetch again
    _download(src, target, want)
    return target


def _download(url: str, target: Path, want: str | None) -> None:
    from tqdm.auto import tqdm

    remove_stale_temps(target.parent, target.name)  # partial downloads of killed runs
    fd, tmp_name = tempfile.mkstemp(prefix=temp_prefix(target.name), suffix=".tmp", dir=target.parent)
    tmp = Path(tmp_name)
    h = hashlib.sha256()
    try:
        try:
            req = urllib.request.Request(url, headers={"User-Agent": "llfer"})
            with urllib.request.urlopen(req, timeout=60) as resp, os.fdopen(fd, "wb") as out:
                fd = -1
                length = resp.headers.get("Content-Length") if hasattr(resp, "headers") else None
                total = int(length) if length and str(length).isdigit() else None
                with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                          desc=f"download {target.name.split('-', 1)[-1]}", leave=False) as bar:
                    for chunk in iter(lambda: resp.read(_CHUNK), b""):
                        out.write(chunk)
                        h.update(chunk)
                        bar.update(len(chunk))
        except (urllib.error.URLError, OSError, ValueError) as e:
            reason = getattr(e, "reason", None) or e
            raise DataError(f"cannot download {url}: {reason}") from None
        got = h.hexdigest()
        if want is not None and got != want:
            raise DataError(f"{url}: sha256 mismatch (expected {want}, got {got}); download discarded")
        os.replace(tmp, target)
    finally:
        if fd >= 0:
            os.close(fd)
        if tmp.exists():
            tmp.unlink()


# --------------------------------------------------------------------------- archive safety


@dataclass(frozen=True)
class ArchiveLimits:
    """Caps checked before an archive member is read: its declared size, and its compression
    ratio (uncompressed / compressed) for members over ``ratio_from_bytes``.  The defaults
    (``dataset.max_member_mb`` / ``dataset.max_compression_ratio`` of the shipped params) fit every
    real dataset llfer reads (the largest member, FER2013's 290 MB CSV, compresses about 3x; image
    members about 1x; ferplus.zip's largest ratio is 9x); a zip bomb is about 1000x."""

    max_member_mb: float
    max_ratio: float
    ratio_from_bytes: int = 1 << 20


_limits: ArchiveLimits | None = None


def current_limits() -> ArchiveLimits:
    """The caps in force: those of :func:`archive_limits`, else the shipped params' defaults."""
    if _limits is not None:
        return _limits
    from ..config import _lookup

    return ArchiveLimits(float(_lookup("dataset.max_member_mb")), float(_lookup("dataset.max_compression_ratio")))


@contextlib.contextmanager
def archive_limits(max_member_mb: float, max_ratio: float) -> Iterator[ArchiveLimits]:
    """Use these caps inside the ``with`` block (``llfer prepare`` passes the dataset params)."""
    global _limits
    old = _limits
    _limits = ArchiveLimits(float(max_member_mb), float(max_ratio))
    try:
        yield _limits
    finally:
        _limits = old


def check_member_size(archive: str | os.PathLike[str], name: str, size: int, compressed: int | None) -> None:
    """Refuse (naming the member) a member larger than the cap or compressed more than the ratio cap."""
    lim = current_limits()
    if size > lim.max_member_mb * (1 << 20):
        raise DataError(f"{archive}: refusing archive member {name!r}: {size / (1 << 20):.0f} MB uncompressed, "
                        f"more than dataset.max_member_mb={lim.max_member_mb:g}")
    if compressed is not None and size > lim.ratio_from_bytes and size > lim.max_ratio * max(compressed, 1):
        raise DataError(f"{archive}: refusing archive member {name!r}: compressed {size / max(compressed, 1):.0f}x "
                        f"({compressed} -> {size} bytes), more than dataset.max_compression_ratio="
                        f"{lim.max_ratio:g} (a zip bomb?)")


def check_member_name(name: str, archive: str | os.PathLike[str]) -> str:
    """Return the normalised posix name of an archive member, or raise if it is unsafe.

    Unsafe: an absolute path (``/x``, ``\\x``, ``C:x``) or any ``..`` component.
    """
    n = name.replace("\\", "/")
    if n.startswith("/") or re.match(r"^[A-Za-z]:", n):
        raise DataError(f"{archive}: refusing archive member with an absolute path: {name!r}")
    parts = [p for p in n.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise DataError(f"{archive}: refusing archive member with '..' in its path: {name!r}")
    return "/".join(parts)


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _safe_target(dest_real: str, rel: str, archive: Path, name: str) -> Path:
    """Where member ``rel`` goes; refuses when a (symlinked) parent leads outside ``dest``."""
    target = os.path.join(dest_real, *rel.split("/"))
    parent = os.path.realpath(os.path.dirname(target))
    if not _inside(parent, dest_real):
        raise DataError(f"{archive}: refusing archive member {name!r}: it would be written outside {dest_real}")
    if os.path.islink(target):  # never write through a link an earlier member created
        os.unlink(target)
    return Path(target)


def _check_link(dest_real: str, target: Path, linkname: str, archive: Path, name: str) -> None:
    link = linkname.replace("\\", "/")
    if link.startswith("/") or re.match(r"^[A-Za-z]:", link):
        raise DataError(f"{archive}: refusing link {name!r} -> {linkname!r}: absolute link target")
    resolved = os.path.realpath(os.path.join(os.path.realpath(target.parent), *link.split("/")))
    if not _inside(resolved, dest_real):
        raise DataError(f"{archive}: refusing link {name!r} -> {linkname!r}: it points outside the archive")


def safe_extract(archive: str | os.PathLike[str], dest: str | os.PathLike[str]) -> Path:
    """Extract a zip or tar archive into ``dest`` safely; returns ``dest``.

    Refuses (raises :class:`DataError` naming the member) absolute member paths,
    ``..`` components, and symbolic/hard links that resolve outside ``dest``
    (checked against the files already extracted, so chains of links cannot
    escape either).  Device files and FIFOs are skipped.
    """
    archive = Path(archive)
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    dest_real = os.path.realpath(dest)
    if zipfile.is_zipfile(archive):
        _extract_zip(archive, dest_real)
    elif _is_tar(archive):
        _extract_tar(archive, dest_real)
    else:
        raise DataError(f"{archive}: not a zip or tar archive")
    return dest


def _is_tar(path: Path) -> bool:
    try:
        return tarfile.is_tarfile(path)
    except OSError:
        return False


def _extract_zip(archive: Path, dest_real: str) -> None:
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as e:
        raise DataError(f"{archive}: unreadable zip file ({e})") from None
    with zf:
        infos = zf.infolist()
        for info in infos:  # check every name and size before writing anything
            check_member_name(info.filename, archive)
            if not info.is_dir():
                check_member_size(archive, info.filename, info.file_size, info.compress_size)
        for info in infos:
            rel = check_member_name(info.filename, archive)
            if not rel:
                continue
            target = _safe_target(dest_real, rel, archive, info.filename)
            mode = info.external_attr >> 16
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
            elif info.create_system == 3 and stat.S_ISLNK(mode):
                linkname = zf.read(info).decode("utf-8", "replace")
                target.parent.mkdir(parents=True, exist_ok=True)
                _check_link(dest_real, target, linkname, archive, info.filename)
                os.symlink(linkname, target)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    with zf.open(info) as src, open(target, "wb") as out:
                        shutil.copyfileobj(src, out, _CHUNK)
                except (zipfile.BadZipFile, OSError, EOFError) as e:
                    raise DataError(f"{archive}: cannot extract {info.filename!r} ({e})") from None


def _extract_tar(archive: Path, dest_real: str) -> None:
    try:
        tf = tarfile.open(archive)
    except (tarfile.TarError, OSError) as e:
        raise DataError(f"{archive}: unreadable tar file ({e})") from None
    packed = os.path.getsize(archive)
    lim = current_limits()
    total = 0
    with tf:
        try:
            for member in tf:
                rel = check_member_name(member.name, archive)
                if not rel:
                    continue
                if member.isfile():
                    check_member_size(archive, member.name, member.size, None)
                    total += member.size
                    if total > lim.ratio_from_bytes and total > lim.max_ratio * packed:
                        raise DataError(f"{archive}: refusing archive member {member.name!r}: the members so far "
                                        f"hold {total} bytes, {total / packed:.0f}x the archive, more than "
                                        f"dataset.max_compression_ratio={lim.max_ratio:g} (a tar bomb?)")
                target = _safe_target(dest_real, rel, archive, member.name)
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                elif member.issym():
                    target.parent.mkdir(parents=True, exist_ok=True)
                    _check_link(dest_real, target, member.linkname, archive, member.name)
                    os.symlink(member.linkname, target)
                elif member.islnk():
                    # hard link: its target is a member name relative to the archive root
                    lrel = check_member_name(member.linkname, archive)
                    src = os.path.realpath(os.path.join(dest_real, *lrel.split("/")))
                    if not _inside(src, dest_real):
                        raise DataError(f"{archive}: refusing link {member.name!r} -> {member.linkname!r}: it points outside the archive")
                    if not os.path.isfile(src):
                        raise DataError(f"{archive}: hard link {member.name!r} -> {member.linkname!r}: target not extracted")
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(src, target)
                elif member.isfile():
                    target.parent.mkdir(parents=True, exist_ok=True)
                    f = tf.extractfile(member)
                    assert f is not None
                    with f, open(target, "wb") as out:
                        shutil.copyfileobj(f, out, _CHUNK)
                # devices, FIFOs: skipped
        except (tarfile.TarError, OSError, EOFError) as e:
            raise DataError(f"{archive}: cannot extract ({e})") from None
