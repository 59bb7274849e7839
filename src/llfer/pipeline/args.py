"""Command-line pieces every stage command shares: the common options, the params, the input roots."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ..config import Params, load_params, params_file
from ..inputs import Roots, input_roots
from ..workers import limit_threads

log = logging.getLogger("llfer")

#: ``argparse``'s sub-parser collection (what ``add_subparsers`` returns)
SubParsers = argparse._SubParsersAction


def add_common(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--params", help="params file (default: ./params.yaml, else the defaults shipped with llfer)")
    sp.add_argument("--no-progress", action="store_true", help="hide progress bars")


def params_of(args: argparse.Namespace) -> Params:
    """The validated params of ``--params`` (see :func:`llfer.config.params_file`); says which file, applies ``runtime``."""
    path = params_file(args.params)
    args.params = str(path)
    log.info("params: %s", path)
    p = load_params(path)
    limit_threads(p.runtime.threads)
    return p


def fer_runs(p: Params) -> list[str]:
    """The FER runs params configure (``<backbone>-<input>`` over ``fer.inputs`` and ``fer.enhanced_inputs``,
    and ``fer.runs``), sorted: what evaluate and report aggregate, never whatever folders or files exist."""
    return sorted([*(f"{b}-{i}" for b in p.fer.backbones for i in [*p.fer.inputs, *p.fer.enhanced_inputs]), *p.fer.runs])


def roots_of(args: argparse.Namespace, p: Params) -> Roots:
    enhanced = getattr(args, "enhanced", None)
    return input_roots(Path(args.prepared), Path(args.degraded), Path(enhanced) if enhanced else None, p)
