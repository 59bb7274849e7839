"""Stage ``report``: the headline numbers in ``summary.json``, the results table and the accuracy chart."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pandas as pd

from .. import plots
from ..config import Params
from ..errors import DataError
from ..io import atomic_dir, read_json, write_json
from ..paper_tables import Runs, joint_markdown, paper_tables
from .args import SubParsers, add_common, fer_runs, params_of


#: the CLI sub-command, and the options naming its outputs / inputs (checked before any work)
COMMAND = "report"
OUTPUTS = ("out", "plots")
INPUTS: tuple[str, ...] = ()


def extra_inputs(args: argparse.Namespace) -> list[tuple[str, Path]]:
    """The per-stage metrics read under ``--metrics`` (the outputs are written beside them)."""
    root = Path(args.metrics)
    return [(f"--metrics {name}", root / name) for name in ("fer", "tte.json", "quality.json", "cv.json")]


def run_report(p: Params, metrics_dir: Path, out_json: Path, plots_dir: Path) -> dict[str, Any]:
    """Aggregate the headline numbers into ``summary.json``; draw the results table and accuracy chart; the papers'
    tables (``papers.md``) and the joint stages' comparison of training schemes (``joint.md``).

    The FER runs are those params configure (:func:`fer_runs`), never whatever files ``metrics/fer/``
    holds; every input must exist (the files that are there are read first, so a broken one is named).
    """
    metrics_dir = Path(metrics_dir)
    files = {r: metrics_dir / "fer" / f"{r}.json" for r in fer_runs(p)}
    runs = {r: _metrics(f, ("test_acc", "test_macro_f1")) for r, f in files.items() if f.exists()}
    joint_files = {q: metrics_dir / "fer" / "joint" / f"{q}.json" for q in p.joint_pairs()}
    joint = {q: _metrics(f, JOINT_KEYS) for q, f in joint_files.items() if f.exists()}
    inputs = {"tte": (metrics_dir / "tte.json", (), True), "quality": (metrics_dir / "quality.json", (), True),
              "cv": (metrics_dir / "cv.json", (), False)}
    read = {k: (_cv_metrics(f) if k == "cv" else _metrics(f, keys, nested=nested))
            for k, (f, keys, nested) in inputs.items() if f.exists()}
    missing = [f for r, f in files.items() if r not in runs] + [f for k, (f, _, _) in inputs.items() if k not in read]
    missing += [f for q, f in joint_files.items() if q not in joint]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise DataError(f"{missing[0]}: missing{more}; params list it (run the stages before report: dvc repro)")
    tte, quality, cv = read["tte"], read["quality"], read["cv"]
    rows = []
    notes: list[str] = []
    for name, m in runs.items():
        acc = _acc(m)
        row = {"run": name, "test": m["test_acc"], "macro_f1": m["test_macro_f1"], **{f"on {k}": v for k, v in acc.items()}}
        for k, v in (tte.get(name) or {}).items():
            if k.split(":")[0] == p.enhancer:
                row[f"on {k}"] = v
        rows.append(row)
    table = pd.DataFrame(rows)
    summary: dict[str, Any] = {"fer": {}}
    for r in rows:
        summary["fer"][r["run"]] = {k.replace("on ", "acc_").replace(":", "_"): v for k, v in r.items() if k != "run"}
    head = f"{p.report.headline_backbone}-clean"
    if head in runs:
        m = runs[head]
        acc = _acc(m)
        v = p.fer.enhanced_variant
        h = {"clean_test_acc": acc.get("clean", m["test_acc"])}
        if v in acc:
            h[f"{v}_test_acc"] = acc[v]
            h["drop_points"] = round(100 * (h["clean_test_acc"] - acc[v]), 2)
        tr = tte.get(head) or {}
        te = tr.get(f"{p.enhancer}:{v}")
        if te is not None:
            h[f"enhanced_{v}_test_acc"] = te
            if v in acc:
                h["recovered_points"] = round(100 * (te - acc[v]), 2)
        on_v = {k.split(":")[0]: a for k, a in tr.items() if k.endswith(f":{v}")}
        if on_v:
            best = max(on_v, key=on_v.get)
            h[f"best_enhanced_{v}_test_acc"] = on_v[best]
            notes.append(f"Best test-time enhancer on {v} for {head}: {best} ({on_v[best]:.4f}); "
                         f"selected enhancer: {p.enhancer}.")
        summary["headline"] = h
    if quality:
        summary["quality"] = {
            v: {"best_psnr": max(((k, s["psnr"]) for k, s in rows_.items() if "psnr" in s), key=lambda t: t[1])[0],
                **{f"{k}_psnr": round(s["psnr"], 3) for k, s in rows_.items() if "psnr" in s}}
            for v, rows_ in quality.items() if any("psnr" in s for s in rows_.values())}
    if cv:
        summary["cv"] = {r: {k: c[k] for k in ("accuracy_mean", "accuracy_std", "macro_f1_mean", "folds") if k in c}
                         for r, c in cv.items()}
        notes += [cv_vs_holdout(r, c, runs.get(r), p) for r, c in cv.items()]
    summary["joint"] = {q: {k: v for k, v in m.items() if k.startswith(("acc_", "psnr_", "ssim_"))}
                        for q, m in joint.items()}
    papers = paper_tables(p, Runs(fer=runs, tte=tte, quality=quality, cv=cv, joint=joint))
    write_json(out_json, summary)
    with atomic_dir(plots_dir) as tmp:
        table.to_csv(tmp / "results.csv", index=False)
        (tmp / "results.md").write_text(_markdown_table(table) + "".join(f"\n{n}\n" for n in notes))
        (tmp / "papers.md").write_text(papers)
        (tmp / "joint.md").write_text(joint_markdown(p, joint))
        plots.accuracy_chart(table, tmp / "accuracy.png")
    return summary


#: what a joint stage's metrics must hold (the report's scheme table reads them)
JOINT_KEYS = ("acc_clean", "acc_baseline", "acc_ifer", "acc_joint", "psnr_ifer", "psnr_joint", "ssim_ifer", "ssim_joint",
              "val_acc_ifer", "val_acc_joint", "best_step", "steps_run", "loss_first", "loss_last", "train_triples",
              "val_images")


def cv_vs_holdout(run: str, c: dict[str, Any], holdout: dict[str, Any] | None, p: Params) -> str:
    """One line: a run's CV accuracy beside its hold-out accuracy, and why they differ (images, epochs, protocol)."""
    cv_txt = (f"CV {run}: {c['accuracy_mean']:.4f} ± {c['accuracy_std']:.4f} over {c['folds']} "
              f"{'subject-independent' if c.get('protocol') == 'subject' else 'plain stratified'} folds of "
              f"{c.get('images', '?')} images pooled from all splits, {c.get('epochs', '?')} epochs on "
              f"{c.get('train_images_per_fold', '?')} training images per fold")
    if holdout is None:
        return cv_txt + " (no hold-out run of the same backbone and input)."
    gap = 100 * (c["accuracy_mean"] - holdout["test_acc"])
    ci, hi, ce, he = c.get("train_images_per_fold"), holdout.get("train_images"), c.get("epochs"), holdout.get("epochs_run")
    why = [f"{ci} vs {hi} training images" for _ in [0] if ci != hi] + \
          [f"{ce} vs {he} epochs" for _ in [0] if ce != he] + \
          ["protocol: folds drawn over all splits pooled (other test faces" +
           (", subjects kept apart)" if c.get("protocol") == "subject" else ", subjects shared between folds)") +
           " vs the fixed train/test split"]
    agree = abs(gap) <= 2 * 100 * max(c["accuracy_std"], 0.005)
    return (cv_txt + f"; hold-out test {holdout['test_acc']:.4f}: CV is {abs(gap):.1f} points "
            f"{'above' if gap > 0 else 'below'} ({'within' if agree else 'beyond'} two standard deviations) - "
            f"{'they differ in' if not agree else 'the settings differ in'}: {'; '.join(why)}.")


def _cv_metrics(f: Path) -> dict[str, Any]:
    """cv.json checked: run -> an object with number accuracy_mean, accuracy_std and folds."""
    m = read_json(f, kind=dict)
    for run, c in m.items():
        bad = [k for k in ("accuracy_mean", "accuracy_std", "folds")
               if not isinstance(c, dict) or not isinstance(c.get(k), (int, float)) or isinstance(c.get(k), bool)]
        if bad:
            raise DataError(f"{f}: entry {run!r} has no number {bad[0]!r}; not a metrics file of stage cv (re-run it)")
    return m


def _metrics(f: Path, keys: tuple[str, ...], nested: bool = False) -> dict[str, Any]:
    """A metrics file checked before it is used: a JSON object with number ``keys`` (``nested``: an object of
    objects, as tte.json and quality.json); anything else raises DataError naming the file and the key."""
    m = read_json(f, kind=dict)
    for k in keys:
        if not isinstance(m.get(k), (int, float)) or isinstance(m.get(k), bool):
            raise DataError(f"{f}: no number {k!r} ({'missing' if k not in m else repr(m[k])}); "
                            "not a metrics file of this stage (re-run it)")
    for k, v in m.items():
        if nested and not (isinstance(v, dict) and all(isinstance(x, (int, float, dict)) for x in v.values())):
            raise DataError(f"{f}: entry {k!r} is not an object of numbers; not a metrics file of this stage (re-run it)")
        if k.startswith("acc_") and not isinstance(v, (int, float)):
            raise DataError(f"{f}: {k!r} is not a number")
    return m


def _acc(m: dict[str, Any]) -> dict[str, float]:
    """The ``acc_<test set>`` entries of a flat FER metrics file, keyed by test set."""
    return {k[4:]: v for k, v in m.items() if k.startswith("acc_")}


def _markdown_table(df: pd.DataFrame) -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in df.iterrows():
        lines.append("| " + " | ".join(f"{v:.4f}" if isinstance(v, float) else str(v) for v in r.tolist()) + " |")
    return "\n".join(lines) + "\n"


def command(args: argparse.Namespace) -> int:
    s = run_report(params_of(args), Path(args.metrics), Path(args.out), Path(args.plots))
    print(json.dumps(s.get("headline", {}), indent=1))
    return 0


def add_command(sub: SubParsers) -> None:
    sp = sub.add_parser(COMMAND, help="aggregate metrics, draw tables and charts")
    add_common(sp)
    sp.add_argument("--metrics", required=True)
    sp.add_argument("--out", required=True)
    sp.add_argument("--plots", required=True)
    sp.set_defaults(func=command)
