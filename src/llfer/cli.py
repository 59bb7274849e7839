"""``llfer``: every pipeline stage as a command with explicit paths, plus ``list`` and ``check``.

The stage commands come from the stage modules (:data:`llfer.pipeline.STAGES`); a DVC
stage script offers its own one only (``main(argv, stages=[module])``).

Settings come from a params file (``--params``, else ``./params.yaml`` when it
exists, else the defaults shipped in the package; the log names the file);
paths come from the command line.  Errors in
the user's input end with one line ``llfer: error: ...`` and exit status 2
(``--debug`` also prints the traceback).  Before any work, every output path is
checked: it may not be, contain or lie inside an input, and an existing one is
replaced only when llfer wrote it (or with ``--force``).  Ctrl-C (status 130)
and SIGTERM (status 143) leave no temporary files behind.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import signal
import sys
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any, Sequence

import torch

from .config import _import_registries
from .errors import LlferError
from .io import check_outputs, set_force
from .pipeline import stage_modules
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


def build_parser(stages: Sequence[ModuleType] | None = None) -> argparse.ArgumentParser:
    """The ``llfer`` parser: ``list``, ``check`` and the commands of ``stages`` (default: every stage module)."""
    ap = argparse.ArgumentParser(prog="llfer", description=__doc__.splitlines()[0])
    ap.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND", required=True)

    sp = sub.add_parser("list", help="list every registry entry (datasets, degradations, enhancers, preprocessors, backbones)")
    sp.add_argument("--json", action="store_true", help="JSON: kind -> [{name, description, params}]")
    sp.set_defaults(func=cmd_list)

    sp = sub.add_parser("check", help="validate a params file")
    add_common(sp)
    sp.set_defaults(func=cmd_check)

    for stage in stage_modules() if stages is None else stages:
        stage.add_command(sub)
        sub.choices[stage.COMMAND].set_defaults(stage=stage)
    if stages is None:  # the full CLI; a DVC stage script offers its own command only, so its code deps stay exact
        # using a trained model (not DVC stages); imported here to keep start-up fast, by name like the stage modules
        for name in ("predict", "export"):
            importlib.import_module(f"{__package__}.{name}").add_parser(sub)
    ap.add_argument("--debug", action="store_true", help="on an error, also print the traceback")
    for name, sp in sub.choices.items():
        sp.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="on an error, also print the traceback")
        if sp.get_default("stage") is not None:
            sp.add_argument("--force", action="store_true",
                            help="replace existing outputs even when llfer does not recognise them as its own")
    return ap


def _opt(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def check_stage_paths(args: argparse.Namespace) -> None:
    """Refuse outputs that are, contain or lie inside an input, or that may not be replaced (see :mod:`llfer.io`).

    The stage module names them: ``OUTPUTS`` / ``INPUTS`` (option names) and, optionally, ``extra_inputs(args)``."""
    stage = args.stage
    inputs = [(_opt(d), getattr(args, d, None)) for d in stage.INPUTS]
    if hasattr(stage, "extra_inputs"):
        inputs += stage.extra_inputs(args)
    params = getattr(args, "params", None) or "params.yaml"
    if Path(params).is_file():
        inputs.append(("--params", params))
    check_outputs([(_opt(d), getattr(args, d, None)) for d in stage.OUTPUTS], inputs)


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C: the ``finally`` blocks remove the temporaries."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise Terminated()


def main(argv: Sequence[str] | None = None, stages: Sequence[ModuleType] | None = None) -> int:
    """Run one command; the exit status.  ``stages``: the stage modules to offer (default: all)."""
    ap = build_parser(stages)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(name)s: %(message)s")
    if getattr(args, "no_progress", False) or os.environ.get("LLFER_NO_PROGRESS"):
        os.environ["TQDM_DISABLE"] = "1"
    debug = bool(getattr(args, "debug", False))
    set_force(getattr(args, "force", False))
    try:
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread
        previous = None
    try:
        if getattr(args, "stage", None) is not None:
            check_stage_paths(args)
        return int(args.func(args) or 0)
    except LlferError as e:
        if debug:
            traceback.print_exc()
        print(f"llfer: error: {e}", file=sys.stderr)
        return 2
    except Terminated:
        print("llfer: terminated", file=sys.stderr)
        return 143
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
        if debug:
            traceback.print_exc()
        name = getattr(e, "filename", None)
        print(f"llfer: error: {name + ': ' if name else ''}{e.strerror or e}", file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001 - a bug, not bad input: one line, the traceback with --debug
        if debug:
            traceback.print_exc()
        msg = str(e).strip().splitlines()[0][:300] if str(e).strip() else ""
        print(f"llfer: internal error: {type(e).__name__}{': ' + msg if msg else ''} "
              "(a bug in llfer; run with --debug for the traceback)", file=sys.stderr)
        return 1
    finally:
        set_force(False)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
