"""Stage ``degrade``: every degraded variant of the prepared set (same ids and index)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ..config import Params
from ..data.store import read_dataset, write_dataset
from ..degrade import Step, apply_steps, expand_variants
from ..errors import ConfigError
from ..io import atomic_dir
from .args import SubParsers, add_common, params_of


#: the CLI sub-command, and the options naming its outputs / inputs (checked before any work)
COMMAND = "degrade"
OUTPUTS = ("out",)
INPUTS = ("prepared",)


def run_degrade(p: Params, prepared: Path, out: Path) -> dict[str, Any]:
    """Write every degraded variant of ``prepared`` under ``out/<variant>/`` (same ids and index)."""
    ds = read_dataset(prepared)
    variants = expand_variants(p.degrade.model_dump())
    if not variants:
        raise ConfigError("degrade: no variants configured")
    ids = ds.ids
    images = np.asarray(ds.images)
    info = {}
    done: dict[str, np.ndarray] = {}  # results by step chain, so a combo reuses its prefix

    def chain(steps: list[Step]) -> np.ndarray:
        key = repr(steps)
        if key not in done:
            prev = chain(steps[:-1]) if len(steps) > 1 else images
            done[key] = apply_steps(prev, ids, steps[-1:], p.seed)
        return done[key]

    with atomic_dir(out) as tmp:
        for name, steps in tqdm(variants.items(), desc="degrade", mininterval=1):
            t0 = time.perf_counter()
            imgs = chain(list(steps))
            write_dataset(tmp / name, imgs, ds.index, classes=ds.classes,
                          provenance={"variant": name, "source": str(prepared), "seed": p.seed,
                                      "steps": [{"type": s.type, **s.params} for s in steps]})
            info[name] = {"seconds": round(time.perf_counter() - t0, 3), "shape": list(imgs.shape)}
    return info


def command(args: argparse.Namespace) -> int:
    info = run_degrade(params_of(args), Path(args.prepared), Path(args.out))
    print(f"degraded -> {args.out}: {', '.join(info)}")
    return 0


def add_command(sub: SubParsers) -> None:
    sp = sub.add_parser(COMMAND, help="write every degraded variant")
    add_common(sp)
    sp.add_argument("--prepared", required=True)
    sp.add_argument("--out", required=True)
    sp.set_defaults(func=command)
