"""Downloads (loopback HTTP server and file:// URLs) and safe archive extraction."""

from __future__ import annotations

import hashlib
import http.server
import io
import os
import tarfile
import threading
import zipfile
from pathlib import Path

import pytest

from llfer.data.download import resolve_source, safe_extract, sha256_file
from llfer.errors import DataError

PAYLOAD = os.urandom(3 * (1 << 20) + 123)  # a few chunks
SHA = hashlib.sha256(PAYLOAD).hexdigest()


@pytest.fixture
def server(tmp_path):
    """A loopback HTTP server serving ``data.bin``; counts GET requests."""
    root = tmp_path / "www"
    root.mkdir()
    (root / "data.bin").write_bytes(PAYLOAD)
    hits = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(root), **kw)

        def do_GET(self):
            hits.append(self.path)
            super().do_GET()

        def log_message(self, *a):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", hits
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_sha256_file(tmp_path):
    f = tmp_path / "x"
    f.write_bytes(PAYLOAD)
    assert sha256_file(f) == SHA


def test_local_paths(tmp_path):
    f = tmp_path / "a.zip"
    f.write_bytes(PAYLOAD)
    assert resolve_source(str(f), None, tmp_path / "cache") == f
    assert resolve_source(str(f), SHA.upper(), tmp_path / "cache") == f
    assert resolve_source(str(tmp_path), None, tmp_path / "cache") == tmp_path
    with pytest.raises(DataError, match=r"dataset source .*nope\.zip does not exist"):
        resolve_source(str(tmp_path / "nope.zip"), None, tmp_path / "cache")
    with pytest.raises(DataError, match=r"a\.zip: sha256 mismatch"):
        resolve_source(str(f), "0" * 64, tmp_path / "cache")
    with pytest.raises(DataError, match="64 hex digits"):
        resolve_source(str(f), "abc", tmp_path / "cache")


def test_http_download_verify_and_cache(server, tmp_path):
    base, hits = server
    cache = tmp_path / "cache"
    p = resolve_source(f"{base}/data.bin", SHA, cache)
    assert p.parent == cache and p.name.endswith("data.bin") and p.read_bytes() == PAYLOAD
    assert len(hits) == 1
    assert resolve_source(f"{base}/data.bin", SHA, cache) == p
    assert len(hits) == 1  # verified copy reused, not fetched again
    p.write_bytes(b"corrupted")  # a damaged cache entry is fetched again
    assert resolve_source(f"{base}/data.bin", SHA, cache).read_bytes() == PAYLOAD
    assert len(hits) == 2
    assert [f.name for f in cache.iterdir()] == [p.name]


def test_http_sha_mismatch_discards(server, tmp_path):
    base, _ = server
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match=r"data\.bin: sha256 mismatch.*download discarded"):
        resolve_source(f"{base}/data.bin", "1" * 64, cache)
    assert list(cache.iterdir()) == []  # no temp file, nothing renamed into place
    with pytest.raises(DataError, match=r"cannot download .*missing\.bin"):
        resolve_source(f"{base}/missing.bin", SHA, cache)
    assert list(cache.iterdir()) == []


def test_file_url(tmp_path):
    f = tmp_path / "src.bin"
    f.write_bytes(PAYLOAD)
    p = resolve_source(f.as_uri(), SHA, tmp_path / "cache")
    assert p.read_bytes() == PAYLOAD and p != f


# --------------------------------------------------------------------------- safe_extract


def make_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for n, d in members.items():
            zf.writestr(n, d)
    return path


def make_tar(path: Path, members: list[tarfile.TarInfo | tuple[str, bytes]]) -> Path:
    with tarfile.open(path, "w") as tf:
        for m in members:
            if isinstance(m, tarfile.TarInfo):
                tf.addfile(m)
            else:
                info = tarfile.TarInfo(m[0])
                info.size = len(m[1])
                tf.addfile(info, io.BytesIO(m[1]))
    return path


def link(name: str, target: str, kind=tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


def test_extract_ok(tmp_path):
    z = make_zip(tmp_path / "ok.zip", {"a/b.txt": b"hi", "c.txt": b"yo"})
    out = safe_extract(z, tmp_path / "z")
    assert (out / "a" / "b.txt").read_bytes() == b"hi"
    t = make_tar(tmp_path / "ok.tar", [("d/e.txt", b"x"), link("d/l", "e.txt"), link("d/h", "d/e.txt", tarfile.LNKTYPE)])
    out = safe_extract(t, tmp_path / "t")
    assert (out / "d" / "l").read_bytes() == b"x" and (out / "d" / "h").read_bytes() == b"x"


@pytest.mark.parametrize("name", ["../evil.txt", "a/../../evil.txt", "/abs/evil.txt", "C:/evil.txt", "..\\evil.txt"])
def test_zip_slip_refused(tmp_path, name):
    z = make_zip(tmp_path / "bad.zip", {"fine.txt": b"x", name: b"evil"})
    with pytest.raises(DataError, match=r"bad\.zip: refusing archive member"):
        safe_extract(z, tmp_path / "out" / "dest")
    assert not (tmp_path / "out" / "dest" / "fine.txt").exists()  # names checked before writing
    assert not list(tmp_path.rglob("evil.txt"))


def test_tar_slip_and_links_refused(tmp_path):
    cases = {
        "dotdot": [("../evil.txt", b"evil")],
        "abs": [("/tmp/evil.txt", b"evil")],
        "symlink_out": [link("l", "../../etc")],
        "symlink_abs": [link("l", "/etc/passwd")],
        "hardlink_out": [link("h", "../x", tarfile.LNKTYPE)],
        "chain": [("a/f", b""), link("a/b", ".."), link("a/b/c", ".."), ("a/b/c/evil.txt", b"evil")],
    }
    for case, members in cases.items():
        t = make_tar(tmp_path / f"{case}.tar", members)
        dest = tmp_path / "out" / case / "dest"
        with pytest.raises(DataError, match=rf"{case}\.tar: refusing"):
            safe_extract(t, dest)
    assert not list(tmp_path.rglob("evil.txt"))


def test_not_an_archive(tmp_path):
    f = tmp_path / "x.bin"
    f.write_bytes(b"plain")
    with pytest.raises(DataError, match="not a zip or tar archive"):
        safe_extract(f, tmp_path / "o")


def zip_with_link(path: Path, name: str, target: str) -> Path:
    import stat

    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("ok.txt", b"x")
        info = zipfile.ZipInfo(name)
        info.create_system = 3
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, target)
    return path


def test_zip_symlinks(tmp_path):
    from llfer.data.sources import open_tree

    bad = zip_with_link(tmp_path / "badlink.zip", "a/l", "../../outside")
    with pytest.raises(DataError, match=r"badlink\.zip: refusing link 'a/l'"):
        safe_extract(bad, tmp_path / "o1")
    with pytest.raises(DataError, match=r"badlink\.zip: refusing link 'a/l'"):
        open_tree(bad)  # also when members are read in place
    good = zip_with_link(tmp_path / "goodlink.zip", "a/l", "../ok.txt")
    out = safe_extract(good, tmp_path / "o2")
    assert (out / "a" / "l").is_symlink() and (out / "a" / "l").read_bytes() == b"x"
    with open_tree(good) as tree:
        assert tree.files == ["ok.txt"]  # links are not followed when reading in place
