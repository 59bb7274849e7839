"""``llfer``: every pipeline stage as a command with explicit paths, plus ``list`` and ``check``.

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
from pathlib import Path
from typing import Any, Sequence

from .errors import LlferError


def _params(args: argparse.Namespace) -> Any:
    from .config import Params, _import_registries, load_params

    path = Path(args.params)
    if path.exists() or args.params != "params.yaml":
        return load_params(path)
    _import_registries()
    return Params().check()


def _add_common(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--params", default="params.yaml", help="params file (default: ./params.yaml)")
    sp.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _json_default(o: Any) -> Any:
    return str(o)


def cmd_list(args: argparse.Namespace) -> int:
    from .config import _import_registries
    from .registry import ALL

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


def _param_count(kind: str, e: Any) -> int | None:
    try:
        import torch

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
    p = _params(args)
    print(f"{args.params}: OK ({len(p.variant_names())} degraded variants, "
          f"{len(p.classical) + len(p.learned)} enhancers, {len(p.fer.backbones)} backbones)")
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    from .pipeline import run_prepare

    p = _params(args)
    rep = run_prepare(p, Path(args.out), source=args.source, sha256=args.sha256, dataset=args.dataset)
    counts = rep.get("counts", {})
    print(f"prepared {args.dataset or p.dataset.name} -> {args.out}: " +
          ", ".join(f"{k} {v['total']}" for k, v in counts.items()))
    return 0


def cmd_degrade(args: argparse.Namespace) -> int:
    from .pipeline import run_degrade

    info = run_degrade(_params(args), Path(args.prepared), Path(args.out))
    print(f"degraded -> {args.out}: {', '.join(info)}")
    return 0


def cmd_train_enhancer(args: argparse.Namespace) -> int:
    from .pipeline import run_train_enhancer

    s = run_train_enhancer(_params(args), args.name, Path(args.prepared), Path(args.degraded), Path(args.out))
    print(f"trained {args.name}: loss {s['first_loss']:.4f} -> {s['last_loss']:.4f} in {s['seconds']} s -> {args.out}")
    return 0


def cmd_enhance(args: argparse.Namespace) -> int:
    from .pipeline import run_enhance

    info = run_enhance(_params(args), args.name, Path(args.degraded), Path(args.out),
                       Path(args.model) if args.model else None)
    print(f"enhanced with {args.name} -> {args.out}: {', '.join(info)}")
    return 0


def cmd_quality(args: argparse.Namespace) -> int:
    from .pipeline import run_quality

    res = run_quality(_params(args), Path(args.prepared), Path(args.degraded), Path(args.enhanced),
                      Path(args.out), Path(args.plots), Path(args.models) if args.models else None)
    for v, rows in res.items():
        for m, s in rows.items():
            print(f"{v:>12} {m:<12} " + " ".join(f"{k}={x:.4f}" for k, x in s.items()))
    return 0


def _roots(args: argparse.Namespace, p: Any) -> Any:
    from .pipeline import input_roots

    return input_roots(Path(args.prepared), Path(args.degraded), Path(args.enhanced) if getattr(args, "enhanced", None) else None, p)


def cmd_train_fer(args: argparse.Namespace) -> int:
    from .pipeline import run_train_fer

    p = _params(args)
    m = run_train_fer(p, args.backbone, args.input, _roots(args, p), Path(args.model_out), Path(args.metrics),
                      Path(args.plots), resume=args.resume, progress=not args.no_progress)
    print(f"{args.backbone}-{args.input}: test acc {m['test_acc']:.4f}, macro-F1 {m['test_macro_f1']:.4f}; " +
          ", ".join(f"{k[4:]} {v:.4f}" for k, v in m.items() if k.startswith("acc_")))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .pipeline import run_evaluate

    p = _params(args)
    res = run_evaluate(p, Path(args.models), _roots(args, p), Path(args.enhanced), Path(args.out))
    print(json.dumps(res, indent=1))
    return 0


def cmd_cv(args: argparse.Namespace) -> int:
    from .pipeline import run_cv

    p = _params(args)
    res = run_cv(p, _roots(args, p), Path(args.out), progress=not args.no_progress)
    print(f"{res['folds']}-fold CV {res['backbone']}/{res['input']}: accuracy {res['accuracy_mean']:.4f} ± {res['accuracy_std']:.4f}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .pipeline import run_report

    s = run_report(_params(args), Path(args.metrics), Path(args.out), Path(args.plots))
    print(json.dumps(s.get("headline", {}), indent=1))
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="llfer", description=__doc__.splitlines()[0])
    ap.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND", required=True)

    sp = sub.add_parser("list", help="list every registry entry (datasets, degradations, enhancers, preprocessors, backbones)")
    sp.add_argument("--json", action="store_true", help="JSON: kind -> [{name, description, params}]")
    sp.set_defaults(func=cmd_list)

    sp = sub.add_parser("check", help="validate a params file")
    _add_common(sp)
    sp.set_defaults(func=cmd_check)

    sp = sub.add_parser("prepare", help="read a dataset and write the shared format")
    _add_common(sp)
    sp.add_argument("--dataset", help="registry name (default: dataset.name)")
    sp.add_argument("--source", help="local file/folder or URL (default: dataset.source)")
    sp.add_argument("--sha256", help="expected sha256 of a downloaded source")
    sp.add_argument("--out", required=True)
    sp.set_defaults(func=cmd_prepare)

    sp = sub.add_parser("degrade", help="write every degraded variant")
    _add_common(sp)
    sp.add_argument("--prepared", required=True)
    sp.add_argument("--out", required=True)
    sp.set_defaults(func=cmd_degrade)

    sp = sub.add_parser("train-enhancer", help="train a learned enhancer on (degraded, clean) pairs")
    _add_common(sp)
    sp.add_argument("name")
    sp.add_argument("--prepared", required=True)
    sp.add_argument("--degraded", required=True)
    sp.add_argument("--out", required=True)
    sp.set_defaults(func=cmd_train_enhancer)

    sp = sub.add_parser("enhance", help="apply an enhancer to the degraded variants")
    _add_common(sp)
    sp.add_argument("name")
    sp.add_argument("--degraded", required=True)
    sp.add_argument("--model", help="trained model directory (learned enhancers)")
    sp.add_argument("--out", required=True)
    sp.set_defaults(func=cmd_enhance)

    sp = sub.add_parser("quality", help="PSNR / SSIM / NIQE of every enhancer")
    _add_common(sp)
    sp.add_argument("--prepared", required=True)
    sp.add_argument("--degraded", required=True)
    sp.add_argument("--enhanced", required=True, help="root holding one directory per enhancer")
    sp.add_argument("--models", help="root of trained enhancer models (learned enhancers on quality.unpaired sets)")
    sp.add_argument("--out", required=True)
    sp.add_argument("--plots", required=True)
    sp.set_defaults(func=cmd_quality)

    sp = sub.add_parser("train-fer", help="train and evaluate a FER backbone on an input")
    _add_common(sp)
    sp.add_argument("backbone")
    sp.add_argument("input")
    sp.add_argument("--prepared", required=True)
    sp.add_argument("--degraded", required=True)
    sp.add_argument("--enhanced", help="directory of the selected enhancer's output (for enhanced inputs)")
    sp.add_argument("--model-out", required=True)
    sp.add_argument("--metrics", required=True)
    sp.add_argument("--plots", required=True)
    sp.add_argument("--resume", action="store_true", help="continue from the last epoch checkpoint")
    sp.set_defaults(func=cmd_train_fer)

    sp = sub.add_parser("evaluate", help="score every trained classifier on every enhancer's output (test-time enhancement)")
    _add_common(sp)
    sp.add_argument("--models", required=True)
    sp.add_argument("--prepared", required=True)
    sp.add_argument("--degraded", required=True)
    sp.add_argument("--enhanced", required=True, help="root holding one directory per enhancer")
    sp.add_argument("--out", required=True)
    sp.set_defaults(func=cmd_evaluate)

    sp = sub.add_parser("cv", help="stratified k-fold cross-validation")
    _add_common(sp)
    sp.add_argument("--prepared", required=True)
    sp.add_argument("--degraded", required=True)
    sp.add_argument("--enhanced")
    sp.add_argument("--out", required=True)
    sp.set_defaults(func=cmd_cv)

    sp = sub.add_parser("report", help="aggregate metrics, draw tables and charts")
    _add_common(sp)
    sp.add_argument("--metrics", required=True)
    sp.add_argument("--out", required=True)
    sp.add_argument("--plots", required=True)
    sp.set_defaults(func=cmd_report)
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
