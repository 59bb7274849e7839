"""Safe outputs: atomic writes that never destroy what llfer did not write.

* :func:`atomic_path` / :func:`atomic_dir` write into a temporary beside the
  target and rename it into place, so a killed stage never leaves a
  half-written artifact that looks complete.  The temporary's name carries the
  writer's process id; temporaries of processes that no longer run (a run
  killed with SIGKILL) are removed by the next write to the same place.
* An existing target is replaced only when it is recognisably a previous llfer
  output (:func:`is_llfer_output`: our marker file, a dataset's ``meta.json``, a
  checkpoint with its config, a JSON file) or when replacing is forced
  (``llfer ... --force``, :func:`set_force`).  The current directory, a folder
  above it and the home folder are never replaced.
* :func:`check_outputs` refuses an output that is, contains or lies inside one
  of a stage's inputs, and an output that may not be replaced, before any work.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator

from .errors import LlferError

#: File written into every output directory: marks it as replaceable by a later run.
MARKER = ".llfer-output"

_force = False


def set_force(force: bool) -> None:
    """Allow (``True``) replacing existing outputs that llfer does not recognise as its own."""
    global _force
    _force = bool(force)


def _check_parent(path: Path) -> None:
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise LlferError(f"cannot create output directory {parent}: {e.strerror}") from None
    if not os.access(parent, os.W_OK):
        raise LlferError(f"output directory {parent} is not writable")


def _inside(a: Path, b: Path) -> bool:
    """``a`` is ``b`` or lies inside it (both absolute, resolved)."""
    return a == b or b in a.parents


def _resolved(path: str | os.PathLike[str]) -> Path:
    return Path(os.path.realpath(os.path.abspath(os.path.expanduser(path))))


def _is_json_file(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return isinstance(json.loads(f.read(64 << 20)), (dict, list))
    except (OSError, ValueError):
        return False


def _is_checkpoint_file(path: Path) -> bool:
    """A safetensors file whose metadata holds our config / summary."""
    try:
        with open(path, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            if not 0 < n <= 100 << 20:
                return False
            head = json.loads(f.read(n))
        meta = head.get("__metadata__") or {}
        return isinstance(meta, dict) and bool({"config", "llfer"} & set(meta))
    except (OSError, ValueError, AttributeError):
        return False


def is_llfer_output(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is recognisably something llfer wrote (or holds nothing)."""
    path = Path(path)
    if path.is_symlink() or not path.exists():
        return True  # replacing a link loses nothing but the link
    if path.is_dir():
        if (path / MARKER).is_file() or (path / "meta.json").is_file():
            return True
        if (path / "model.safetensors").is_file() and _is_checkpoint_file(path / "model.safetensors"):
            return True
        try:
            entries = [e for e in path.iterdir() if not _TMP_RE.search(e.name)]
        except OSError:
            return False
        # an empty folder, or a root of earlier outputs (data/degraded/<variant>/ ...)
        return all(e.is_dir() and not e.is_symlink() and is_llfer_output(e) for e in entries)
    if path.suffix.lower() == ".json":
        return _is_json_file(path)
    if path.suffix.lower() == ".safetensors":
        return _is_checkpoint_file(path)
    return False


def _protected(path: Path) -> str | None:
    cwd = _resolved(os.getcwd())
    if _inside(cwd, path):
        return "it is or contains the current directory"
    if path == _resolved(Path.home()) or path.parent == path:
        return "it is the home or root folder"
    return None


def check_replaceable(path: str | os.PathLike[str], what: str = "output") -> None:
    """Raise unless an existing ``path`` may be replaced (ours, or ``--force``; never the cwd or above)."""
    path = Path(path)
    if not (path.exists() or path.is_symlink()):
        return
    rp = _resolved(path)
    why = _protected(rp) if not path.is_symlink() else None
    if why:
        raise LlferError(f"{what} {path}: refusing to replace it: {why}")
    if not _force and not is_llfer_output(path):
        kind = "folder" if path.is_dir() else "file"
        raise LlferError(f"{what} {path}: refusing to replace an existing {kind} that llfer did not write "
                         "(choose another path, remove it, or pass --force)")


def check_outputs(outputs: Iterable[tuple[str, str | os.PathLike[str] | None]],
                  inputs: Iterable[tuple[str, str | os.PathLike[str] | None]]) -> None:
    """Before any work: every output may be replaced and is not, does not contain and does not lie inside an input.

    ``outputs`` and ``inputs`` are (option name, path) pairs; None paths are skipped.
    """
    ins = [(n, Path(p), _resolved(p)) for n, p in inputs if p is not None and str(p) != ""]
    outs = [(n, Path(p), _resolved(p)) for n, p in outputs if p is not None and str(p) != ""]
    for oname, opath, o in outs:
        for iname, ipath, i in ins:
            if o == i:
                rel = "is"
            elif _inside(i, o):
                rel = "contains"
            elif _inside(o, i):
                rel = "lies inside"
            else:
                continue
            raise LlferError(f"{oname} {opath} {rel} the input {iname} {ipath}; choose an output outside the inputs")
        check_replaceable(opath, oname)
    for k, (oname, opath, o) in enumerate(outs):
        for oname2, opath2, o2 in outs[k + 1:]:
            if _inside(o, o2) or _inside(o2, o):
                raise LlferError(f"{oname} {opath} and {oname2} {opath2} overlap; give them separate paths")


# --------------------------------------------------------------------------- temporaries

_TMP_RE = re.compile(r"\.llfer-(\d+)\.[^.]+\.tmp$")


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def temp_prefix(name: str) -> str:
    """Prefix of this process's temporaries for ``name`` (the pid lets a later run spot stale ones)."""
    return f".{name}.llfer-{os.getpid()}."


def remove_stale_temps(directory: str | os.PathLike[str], name: str) -> list[Path]:
    """Remove temporaries for ``name`` in ``directory`` left by processes that no longer run."""
    directory = Path(directory)
    removed = []
    try:
        candidates = list(directory.glob(f".{glob_escape(name)}.llfer-*.tmp"))
    except OSError:
        return removed
    for c in candidates:
        m = _TMP_RE.search(c.name)
        if m and not _pid_alive(int(m.group(1))):
            if c.is_dir() and not c.is_symlink():
                shutil.rmtree(c, ignore_errors=True)
            else:
                c.unlink(missing_ok=True)
            removed.append(c)
    return removed


def glob_escape(s: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", s)


def make_temp_dir(parent: str | os.PathLike[str] | None, name: str) -> Path:
    """A fresh temporary folder for ``name`` under ``parent`` (the system temp folder when None),
    after removing the stale ones of killed runs."""
    parent = Path(parent) if parent is not None else Path(tempfile.gettempdir())
    remove_stale_temps(parent, name)
    return Path(tempfile.mkdtemp(prefix=temp_prefix(name), suffix=".tmp", dir=parent))


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], suffix: str = "", replace_check: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    Works for files and directories.  On error (or Ctrl-C / SIGTERM) the
    temporary is removed and the previous ``path`` (if any) is left untouched.
    An existing ``path`` that llfer did not write is refused before anything
    is written (:func:`check_replaceable`), unless ``replace_check`` is False
    (internal files such as resume checkpoints).
    """
    path = Path(os.path.abspath(path))
    if replace_check:
        check_replaceable(path)
    _check_parent(path)
    tmp = make_temp_dir(path.parent, path.name)
    target = tmp / (path.name + suffix)
    try:
        yield target
        if not target.exists():
            raise LlferError(f"internal error: nothing was written for {path}")
        if path.exists() and not path.is_symlink() and path.is_dir() != target.is_dir():
            if not _force:
                raise LlferError(f"output {path}: refusing to replace a {'folder' if path.is_dir() else 'file'} "
                                 f"with a {'folder' if target.is_dir() else 'file'} (pass --force)")
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
        os.replace(target, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield an empty temporary directory that replaces ``path`` on success (marked as an llfer output)."""
    with atomic_path(path) as tmp:
        tmp.mkdir()
        (tmp / MARKER).write_text("written by llfer; a later run may replace this folder\n")
        yield tmp


def _json_default(o: Any) -> Any:
    try:
        import numpy as np

        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def dumps_json(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n"


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write JSON atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(dumps_json(obj))


def write_text(path: str | os.PathLike[str], text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def read_json(path: str | os.PathLike[str], kind: type | None = None) -> Any:
    """Parse a JSON file; a missing, unreadable or malformed file (or, with ``kind``, a
    top-level value of another type) raises :class:`LlferError` naming the file."""
    path = Path(path)
    if not path.exists():
        raise LlferError(f"missing file {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise LlferError(f"{path}: malformed JSON ({e})") from None
    except UnicodeDecodeError:
        raise LlferError(f"{path}: not a text (UTF-8) file") from None
    except OSError as e:
        raise LlferError(f"{path}: unreadable ({e.strerror or e})") from None
    if kind is not None and not isinstance(data, kind):
        want = {dict: "an object", list: "a list"}.get(kind, kind.__name__)
        raise LlferError(f"{path}: expected {want} at the top level, got {type(data).__name__}")
    return data
