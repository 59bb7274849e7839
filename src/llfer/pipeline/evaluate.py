"""Stage ``evaluate``: test-time enhancement, every trained classifier on every enhancer's output."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..checkpoint import load_classifier
from ..config import Params
from ..device import resolve_device
from ..errors import DataError
from ..inputs import Roots, make_loader, parse_spec
from ..io import write_json
from .args import SubParsers, add_common, params_of, roots_of
from .enhance import enhancer_dirs
from .train_fer import evaluate_specs


#: the CLI sub-command, and the options naming its outputs / inputs (checked before any work)
COMMAND = "evaluate"
OUTPUTS = ("out",)
INPUTS = ("models", "prepared", "degraded", "enhanced")


def classifier_dirs(models_root: Path) -> list[Path]:
    """The trained runs under ``models_root`` (directories holding a ``model.safetensors``)."""
    if not Path(models_root).exists():
        return []
    return sorted(d for d in Path(models_root).iterdir() if (d / "model.safetensors").exists())


def run_evaluate(p: Params, models_root: Path, roots: Roots, enhanced_root: Path, out_json: Path) -> dict[str, Any]:
    """Test-time enhancement: every trained classifier scored on every enhancer's output.

    For each run, enhancer ``E`` and enhanced variant ``v``, the test images of
    ``v`` enhanced by ``E`` (then the run's own preprocessors) go through the
    classifier; keys are ``"<E>:<v>"``.  The ``identity`` enhancer, when present,
    gives the unenhanced baseline.
    """
    device = resolve_device(p.runtime.device)
    enhancers = enhancer_dirs(Path(enhanced_root))
    if not enhancers:
        raise DataError(f"{enhanced_root}: no enhanced data found (run the enhance stages first)")
    loaders = {e: make_loader(p, replace(roots, enhanced=Path(enhanced_root) / e)) for e in enhancers}
    classes = loaders[enhancers[0]].classes()
    out: dict[str, Any] = {}
    for d in classifier_dirs(models_root):
        model, cfg = load_classifier(d / "model.safetensors")
        model.to(device)
        _, preps = parse_spec(cfg["test_spec"], p.variant_names(), p.enhance.variants)
        size = int(cfg["options"].get("input_size", 48))
        row = {}
        for e, loader in loaders.items():
            specs = {f"{e}:{v}": "+".join([f"enhanced:{v}", *preps]) for v in p.enhance.variants
                     if (Path(enhanced_root) / e / v).exists()}
            res = evaluate_specs(model, loader, specs, classes, size, device, p.runtime.eval_batch_size)
            row.update({k: round(v["accuracy"], 4) for k, v in res.items()})
        out[d.name] = row
    write_json(out_json, out)
    return out


def command(args: argparse.Namespace) -> int:
    p = params_of(args)
    res = run_evaluate(p, Path(args.models), roots_of(args, p), Path(args.enhanced), Path(args.out))
    print(json.dumps(res, indent=1))
    return 0


def add_command(sub: SubParsers) -> None:
    sp = sub.add_parser(COMMAND, help="score every trained classifier on every enhancer's output (test-time enhancement)")
    add_common(sp)
    sp.add_argument("--models", required=True)
    sp.add_argument("--prepared", required=True)
    sp.add_argument("--degraded", required=True)
    sp.add_argument("--enhanced", required=True, help="root holding one directory per enhancer")
    sp.add_argument("--out", required=True)
    sp.set_defaults(func=command)
