"""Command-line pieces every stage command shares: the common options, the params, the input roots."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..config import Params, _import_registries, load_params
from ..inputs import Roots, input_roots

#: ``argparse``'s sub-parser collection (what ``add_subparsers`` returns)
SubParsers = argparse._SubParsersAction


def add_common(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--params", default="params.yaml", help="params file (default: ./params.yaml)")
    sp.add_argument("--no-progress", action="store_true", help="hide progress bars")


def params_of(args: argparse.Namespace) -> Params:
    path = Path(args.params)
    if path.exists() or args.params != "params.yaml":
        return load_params(path)
    _import_registries()
    return Params().check()


def roots_of(args: argparse.Namespace, p: Params) -> Roots:
    enhanced = getattr(args, "enhanced", None)
    return input_roots(Path(args.prepared), Path(args.degraded), Path(enhanced) if enhanced else None, p)
