"""The bad-input table of docs/reliability.md: issue 13's cases (tests/bad_inputs.py) run through ``llfer`` as a
subprocess, against this checkout's package and, with ``--before SRC``, another one (e.g. a worktree of an older
commit: ``git worktree add /tmp/before <commit>``, then ``--before /tmp/before/src``).

For each case and package: exit status, the first error line (or the exception line of a traceback), peak
memory of the command, and the outcome: ``ok`` (a one-line error naming the culprit, or a correct result),
``traceback``, ``silent`` (exit 0 with a wrong result, or where an error was due), ``data loss`` (an input or a
bystander changed or deleted), ``leftover`` (temporaries left behind), ``no culprit`` (an error that does not
name it).

    python benchmarks/bad_inputs_table.py [--before SRC] [--only NAME ...] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "src"))

from bad_inputs import CASES, Case, diff, snapshot  # noqa: E402


def run_case(case: Case, src: Path) -> dict:
    with tempfile.TemporaryDirectory(prefix="llfer-bad-") as tmp:
        d = Path(tmp)
        run = case.setup(d)
        existed = {o for o in run.outputs if (d / o).exists()}
        before = snapshot(d, run.outputs)
        env = dict(os.environ, PYTHONPATH=str(src), TQDM_DISABLE="1")
        with tempfile.TemporaryFile("w+") as outf, tempfile.TemporaryFile("w+") as errf:
            t0 = time.monotonic()
            pid = _spawn(run.argv, d, env, outf, errf)
            status, rusage = _wait(pid, d, run.terminate_when)
            seconds = time.monotonic() - t0
            outf.seek(0)
            errf.seek(0)
            out, err = outf.read(), errf.read()
        changes = diff(before, snapshot(d, run.outputs))
        outcome = _outcome(run, status, err, [c for c in changes if not c.startswith("created ")], d, existed)
        if outcome == "ok" and changes:
            outcome = "leftover"
    return {"case": case.name, "kind": case.kind, "what": case.what, "status": status,
            "line": _first_line(err, d) if status else _first_line(out, d), "outcome": outcome, "peak_mb": round(rusage.ru_maxrss / 1024),
            "seconds": round(seconds, 1), "changed": changes[:3]}


def _spawn(argv: list[str], cwd: Path, env: dict, outf, errf) -> int:
    import subprocess

    proc = subprocess.Popen([sys.executable, "-m", "llfer.cli", *argv], cwd=cwd, env=env, stdout=outf, stderr=errf)
    proc.returncode = 0  # reaped with os.wait4 below (for its peak memory), never by Popen
    return proc.pid


def _wait(pid: int, cwd: Path, terminate_when: str | None):
    t0 = time.monotonic()
    sent = False
    while True:
        wpid, st, ru = os.wait4(pid, os.WNOHANG)
        if wpid:
            code = os.waitstatus_to_exitcode(st)
            return (128 - code if code < 0 else code), ru
        if terminate_when and not sent and (list(cwd.glob(terminate_when)) or time.monotonic() - t0 > 120):
            time.sleep(0.3)
            os.kill(pid, signal.SIGTERM)
            sent = True
        time.sleep(0.05)


def _outcome(run, status: int, err: str, loss: list[str], d: Path, existed: set[str]) -> str:
    if "Traceback" in err or "internal error" in err:
        return "traceback"
    if loss:
        return "data loss"
    if run.check is not None and (status == 0 or run.always_check):
        bad = run.check(d)
        if bad:
            return "leftover" if run.terminate_when or "temporar" in bad else "silent"
    if run.terminate_when:
        return "ok" if status == 143 and not any((d / o).exists() for o in run.outputs) else "leftover"
    if run.culprit is not None:
        if status == 0:
            return "silent"
        errors = [ln for ln in err.splitlines() if ln.startswith("llfer: error:")]
        if len(errors) != 1 or run.culprit not in errors[0]:
            return "no culprit"
        if any((d / o).exists() != (o in existed) for o in run.outputs):
            return "leftover"
        return "ok"
    return "ok" if status == 0 else "error"


def _first_line(err: str, d: Path) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    if any(ln.startswith("Traceback") for ln in lines):
        line = lines[-1]
    else:
        line = next((ln for ln in lines if ln.startswith(("llfer: error", "llfer: terminated", "llfer: interrupted",
                                                            "llfer: internal"))), lines[-1] if lines else "")
    for p in (str(d.resolve()), str(d)):
        line = line.replace(p + "/", "").replace(p, ".")
    return line[:160]


def markdown(rows_after: list[dict], rows_before: list[dict] | None) -> str:
    before = {r["case"]: r for r in rows_before or []}
    head = ("| case | issue | before: status, first line | before | peak MB | after: status, first line | after "
            "| peak MB |")
    out = [head, "|---|---|---|---|---:|---|---|---:|"]
    for r in rows_after:
        b = before.get(r["case"])
        bcell = f"{b['status']}: `{_cell(b['line'])}` | {b['outcome']} | {b['peak_mb']}" if b else " | | "
        out.append(f"| {r['what']} | {r['kind']} | {bcell} | {r['status']}: `{_cell(r['line'])}` | {r['outcome']} "
                   f"| {r['peak_mb']} |")
    return "\n".join(out) + "\n"


def _cell(s: str) -> str:
    return s.replace("|", "\\|").replace("`", "'")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", type=Path, help="src/ folder of the package to compare with, or the --json of "
                    "an earlier run (its 'before' rows)")
    ap.add_argument("--only", nargs="*", help="case names")
    ap.add_argument("--json", type=Path, help="write the rows here")
    args = ap.parse_args()
    cases = [c for c in CASES if not args.only or c.name in args.only]
    res: dict[str, list[dict]] = {}
    for label, src in (("before", args.before), ("after", REPO / "src")):
        if src is None:
            continue
        if src.suffix == ".json":
            res[label] = [r for r in json.loads(src.read_text())[label] if r["case"] in {c.name for c in cases}]
            continue
        res[label] = []
        for c in cases:
            row = run_case(c, src.resolve())
            res[label].append(row)
            print(f"{label:6} {c.name:26} {row['status']:>4} {row['outcome']:10} {row['peak_mb']:>6} MB  {row['line']}",
                  flush=True)
    print()
    print(markdown(res["after"], res.get("before")))
    for label, rows in res.items():
        bad = [r for r in rows if r["outcome"] != "ok"]
        print(f"{label}: {len(bad)} of {len(rows)} cases end in a traceback, a silent wrong result, data loss "
              f"or a leftover: {', '.join(r['case'] + ' (' + r['outcome'] + ')' for r in bad) or 'none'}")
    if args.json:
        args.json.write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
