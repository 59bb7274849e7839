"""Stages run by DVC's experiment queue: where the repository is, and how many CPU threads to use.

``dvc queue start -j N`` runs each queued experiment in a temporary copy of the repository
(``<repo>/.dvc/tmp/exps/<tmpdir>``) holding only git-tracked files, N at a time.  So:

* relative paths in params that point at files outside git (``dataset.source``, ``dataset.cache_dir``,
  ``quality.unpaired``, ``learned.<name>.init``) resolve against the repository the experiment was
  queued from (:func:`from_root`), not against the temporary copy;
* each stage limits torch to ``cores // k`` threads, k the queued experiments running at that
  moment (:func:`torch_threads`), so N workers do not oversubscribe the cores.  ``LLFER_THREADS`` (environment) or ``runtime.threads`` (params) set the
  number instead.  The GPU of a worker is chosen with ``CUDA_VISIBLE_DEVICES`` in the environment of
  ``dvc queue start`` (see README, "Experiment queues").
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

#: DVC's layout: temporary experiment workspaces and the queue workers' process records
EXPS = (".dvc", "tmp", "exps")


def project_root(cwd: Path | None = None) -> Path:
    """The repository a stage belongs to: ``$LLFER_ROOT``, else the repository a queued experiment's
    temporary workspace was made from, else the working directory."""
    env = os.environ.get("LLFER_ROOT")
    if env:
        return Path(env)
    here = Path(cwd or Path.cwd()).resolve()
    for parent in here.parents:
        if parent.parts[-3:] == EXPS:
            return parent.parents[2]
    return here


def from_root(path: str | Path, cwd: Path | None = None) -> Path:
    """``path`` as given when absolute or when the stage runs in the repository itself; otherwise
    (inside a queued experiment's temporary workspace) relative to the repository."""
    path = Path(path)
    root = project_root(cwd)
    here = Path(cwd or Path.cwd()).resolve()
    return path if path.is_absolute() or root == here else root / path


def from_root_or_url(source: str, cwd: Path | None = None) -> str:
    """:func:`from_root` for a path; a URL (``scheme://...``) is returned as it is."""
    return source if "://" in source else str(from_root(source, cwd))


def queue_workers(root: Path) -> int:
    """How many queued experiments (or queue workers) of the repository ``root`` are running now.

    DVC keeps a record ``.dvc/tmp/exps/run/<name>/<name>.json`` (pid, returncode) per process it
    manages: each running experiment and each worker; the live ones without a return code count."""
    n = 0
    for info in (root.joinpath(*EXPS, "run")).glob("*/*.json"):
        try:
            rec = json.loads(info.read_text())
            if rec.get("returncode") is None:
                os.kill(int(rec["pid"]), 0)
                n += 1
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return n


def torch_threads(configured: int | None = None, cwd: Path | None = None) -> tuple[int | None, str]:
    """(threads, why): ``$LLFER_THREADS``, else ``configured`` (``runtime.threads``), else, inside a
    queued experiment, the cores shared among the running queue workers; ``None`` keeps torch's default."""
    env = os.environ.get("LLFER_THREADS")
    if env:
        try:
            n = int(env)
        except ValueError:
            n = 0
        if n < 1:
            from .errors import ConfigError

            raise ConfigError(f"LLFER_THREADS: {env!r} is not a positive integer")
        return n, "LLFER_THREADS"
    if configured:
        return configured, "runtime.threads"
    here = Path(cwd or Path.cwd()).resolve()
    root = project_root(here)
    if root == here:
        return None, "torch default"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    workers = max(1, queue_workers(root))
    return max(1, cores // workers), f"{cores} cores shared by {workers} running queued experiment(s)"


def limit_threads(configured: int | None = None) -> int:
    """Apply :func:`torch_threads` to torch; return the number of threads torch uses."""
    import torch

    n, why = torch_threads(configured)
    if n is not None:
        torch.set_num_threads(n)
        log.info("%d torch threads (%s)", n, why)
    return torch.get_num_threads()
