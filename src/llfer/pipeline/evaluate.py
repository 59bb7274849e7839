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
from .args import SubParsers, add_common, fer_runs, params_of, roots_of
from .enhance import enhanced_outputs
from .train_fer import evaluate_specs


#: the CLI sub-command, and the options naming its outputs / inputs (checked before any work)
COMMAND = "evaluate"
OUTPUTS = ("out",)
INPUTS = ("models", "prepared", "degraded", "enhanced")


def run_evaluate(p: Params, models_root: Path, roots: Roots, enhanced_root: Path, out_json: Path) -> dict[str, Any]:
    """Test-time enhancement: every trained classifier scored on every enhancer's output.

    For each run, enhancer ``E`` and enhanced variant ``v``, the test images of
    ``v`` enhanced by ``E`` (then the run's own preprocessors) go through the
    classifier; keys are ``"<E>:<v>"``.  The ``identity`` enhancer, when present,
    gives the unenhanced baseline.  Runs and enhancers come from params (:func:`fer_runs`,
    :func:`enhanced_outputs`), never from the folders that exist; a missing one is an error.
    """
    device = resolve_device(p.runtime.device)
    runs = fer_runs(p)
    # the checkpoints that are there are read first (a broken one is named), then anything missing is
    classifiers = {r: load_classifier(Path(models_root) / r / "model.safetensors")
                   for r in runs if (Path(models_root) / r / "model.safetensors").exists()}
    missing = [r for r in runs if r not in classifiers]
    if missing:
        raise DataError(f"{Path(models_root) / missing[0] / 'model.safetensors'}: missing; params list FER run "
                        f"{missing[0]!r} (run its train_fer stage: dvc repro)")
    outputs = enhanced_outputs(p, Path(enhanced_root))  # never empty: params.enhancer is one of them
    loaders = {e: make_loader(p, replace(roots, enhanced=d)) for e, d in outputs.items()}
    classes = next(iter(loaders.values())).classes()
    out: dict[str, Any] = {}
    for name, (model, cfg) in classifiers.items():
        model.to(device)
        _, preps = parse_spec(cfg["test_spec"], p.variant_names(), p.enhance.variants)
        size = int(cfg["options"].get("input_size", 48))
        row = {}
        for e, loader in loaders.items():
            specs = {f"{e}:{v}": "+".join([f"enhanced:{v}", *preps]) for v in p.enhance.variants}
            res = evaluate_specs(model, loader, specs, classes, size, device, p.runtime.eval_batch_size)
            row.update({k: round(v["accuracy"], 4) for k, v in res.items()})
        out[name] = row
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
