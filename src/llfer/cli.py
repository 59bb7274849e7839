"""``llfer``: every pipeline stage as a command with explicit paths, plus ``list`` and ``check``.

The stage commands come from the stage modules (:data:`llfer.pipeline.STAGES`).

Settings come from a params file (``--params``, default ``params.yaml`` when it
exists, else built-in defaults); paths come from the command line.  Errors in
the user's input end with one line ``llfer: error: ...`` and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Any, Sequence

import torch

from .config import _import_registries
from .errors import LlferError
from .pipeline import STAGES
from .pipeline.args import add_common, params_of
from .registry import ALL, Entry


def _json_default(o: Any) -> Any:
    return str(o)


def cmd_list(args: argparse.Namespace) -> int:
    _import_registries()
    out: dict[str, list[dict[str, Any]]] = {}
    for kind, reg in ALL.items():
        rows = []
        for name in reg.names():
            e = reg.entry(name)
            row: dict[str, Any] = {"name": name, "description": e.description,
                                   "params": {k: v for k, v in e.defaults.items() if k not in ("ids", "seed", "source")}}
            n = _param_count(kind, e)
            if n is not None:
                row["num_parameters"] = n
            rows.append(row)
        out[kind] = rows
    if args.json:
        print(json.dumps(out, indent=2, default=_json_default))
        return 0
    for kind, rows in out.items():
        print(f"{kind}:")
        for r in rows:
            extra = f"  [{r['num_parameters']:,} parameters]" if "num_parameters" in r else ""
            print(f"  {r['name']:<22} {r['description']}{extra}")
    return 0


def _param_count(kind: str, e: Entry) -> int | None:
    try:
        if kind == "enhancers" and getattr(e.obj, "learned", False):
            return int(sum(p.numel() for p in e.obj().model.parameters()))
        if kind == "backbones":
            with torch.device("meta"):
                m = e.obj()
            return int(sum(p.numel() for p in m.parameters()))
    except Exception:  # a network that cannot be built offline still gets listed
        return None
    return None


def cmd_check(args: argparse.Namespace) -> int:
    p = params_of(args)
    print(f"{args.params}: OK ({len(p.variant_names())} degraded variants, "
          f"{len(p.classical) + len(p.learned)} enhancers, {len(p.fer.backbones)} backbones)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="llfer", description=__doc__.splitlines()[0])
    ap.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND", required=True)

    sp = sub.add_parser("list", help="list every registry entry (datasets, degradations, enhancers, preprocessors, backbones)")
    sp.add_argument("--json", action="store_true", help="JSON: kind -> [{name, description, params}]")
    sp.set_defaults(func=cmd_list)

    sp = sub.add_parser("check", help="validate a params file")
    add_common(sp)
    sp.set_defaults(func=cmd_check)

    for stage in STAGES:
        stage.add_command(sub)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(name)s: %(message)s")
    if getattr(args, "no_progress", False) or os.environ.get("LLFER_NO_PROGRESS"):
        os.environ["TQDM_DISABLE"] = "1"
    try:
        return int(args.func(args) or 0)
    except LlferError as e:
        print(f"llfer: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("llfer: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`llfer list | head`): stop quietly, as a SIGPIPE'd tool would, and point
        # stdout at /dev/null so the interpreter's final flush does not raise again.
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 141
    except OSError as e:
        name = getattr(e, "filename", None)
        print(f"llfer: error: {name + ': ' if name else ''}{e.strerror or e}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
