"""Time the default pipeline: `dvc repro` wall time, per-stage time and peak memory,
a no-op `dvc repro`, and (with --install) the install time of `make repro` on a fresh clone.

    python benchmarks/bench_pipeline.py [--install] [--out benchmarks/results/pipeline.json]

Runs in a fresh clone of the current HEAD in a temporary directory (nothing in the
working tree is touched). Without --install the clone uses this interpreter's
environment (the venv that runs the script).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def sh(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return dt, r.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--install", action="store_true", help="also time `make install` (fresh venv) in the clone")
    ap.add_argument("--out", default=str(REPO / "benchmarks/results/pipeline.json"))
    ap.add_argument("--keep", action="store_true", help="keep the temporary clone")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="llfer-bench-"))
    clone = tmp / "repo"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    env = dict(os.environ, TQDM_DISABLE="1", DVC_NO_ANALYTICS="1")
    result: dict = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
                    "commit": subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()}
    if args.install:
        dt, _ = sh(["make", "install"], clone, env)
        result["make_install_seconds"] = round(dt, 1)
        bindir = clone / ".venv" / "bin"
    else:
        bindir = Path(sys.executable).parent
    env["PATH"] = f"{bindir}{os.pathsep}{env['PATH']}"
    stats = tmp / "stages.jsonl"
    env["LLFER_STAGE_STATS"] = str(stats)
    dt, out = sh(["dvc", "repro"], clone, env)
    result["dvc_repro_seconds"] = round(dt, 1)
    result["stages"] = [json.loads(l) for l in stats.read_text().splitlines()]
    for s in result["stages"]:
        s.pop("argv", None)
    dt, out2 = sh(["dvc", "repro"], clone, env)
    result["noop_dvc_repro_seconds"] = round(dt, 1)
    result["noop_ran_nothing"] = "Running stage" not in out2
    summary = json.loads((clone / "metrics/summary.json").read_text())
    result["headline"] = summary.get("headline", {})
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"dvc repro: {result['dvc_repro_seconds']} s; no-op: {result['noop_dvc_repro_seconds']} s"
          + (f"; make install: {result['make_install_seconds']} s" if args.install else ""))
    print(f"{'stage':<50} {'s':>8} {'peak MiB':>9}")
    for s in result["stages"]:
        print(f"{s['stage']:<50} {s['seconds']:>8} {s['peak_rss_mib']:>9}")
    print("headline:", json.dumps(result["headline"]))
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        print("kept", clone)


if __name__ == "__main__":
    main()
