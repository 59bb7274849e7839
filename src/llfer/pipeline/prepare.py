"""Stage ``prepare``: read a dataset (registry ``DATASETS``) and write the shared format."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from ..config import Params
from ..data.download import archive_limits, resolve_source
from ..errors import ConfigError
from ..io import check_outputs
from ..registry import DATASETS
from ..runfacts import record
from ..workers import from_root, from_root_or_url
from .args import SubParsers, add_common, params_of


#: the CLI sub-command, and the options naming its outputs / inputs (checked before any work)
COMMAND = "prepare"
OUTPUTS = ("out",)
INPUTS = ("source",)


def run_prepare(p: Params, out: Path, source: str | None = None, sha256: str | None = None,
                dataset: str | None = None) -> dict[str, Any]:
    """Read a dataset (registry ``DATASETS``) and write the shared format to ``out``."""
    name = dataset or p.dataset.name
    src = source if source is not None else p.dataset.source
    digest = sha256 if sha256 is not None else p.dataset.sha256
    DATASETS.entry(name, key="dataset.name")  # an unknown name fails before any download
    path = None
    if src is not None:
        # relative paths: against the repository, also inside a queued experiment's temporary copy
        path = resolve_source(from_root_or_url(str(src)), digest, from_root(p.dataset.cache_dir))
        check_outputs([("--out", out)], [("dataset source", path)])
    elif name != "synthetic":
        raise ConfigError(f"dataset.source: dataset {name!r} needs a source (a local path or a URL)")
    # dataset.options belong to dataset.name; another --dataset starts from its reader's defaults.
    opts = dict(p.dataset.options) if name == p.dataset.name else {}
    t0 = time.perf_counter()
    with archive_limits(p.dataset.max_member_mb, p.dataset.max_compression_ratio):
        prepared = DATASETS.build(name, key="dataset.options", source=path, **opts)
    prepared.provenance.update({"dataset": name, "source": src, "sha256": digest, "options": opts})
    record(read_seconds=round(time.perf_counter() - t0, 3))  # a run fact: never in the (hashed) report
    prepared.write(out)
    return prepared.report


def command(args: argparse.Namespace) -> int:
    p = params_of(args)
    rep = run_prepare(p, Path(args.out), source=args.source, sha256=args.sha256, dataset=args.dataset)
    counts = rep.get("counts", {})
    print(f"prepared {args.dataset or p.dataset.name} -> {args.out}: " +
          ", ".join(f"{k} {v['total']}" for k, v in counts.items()))
    return 0


def add_command(sub: SubParsers) -> None:
    sp = sub.add_parser(COMMAND, help="read a dataset and write the shared format")
    add_common(sp)
    sp.add_argument("--dataset", help="registry name (default: dataset.name)")
    sp.add_argument("--source", help="local file/folder or URL (default: dataset.source)")
    sp.add_argument("--sha256", help="expected sha256 of a downloaded source")
    sp.add_argument("--out", required=True)
    sp.set_defaults(func=command)
