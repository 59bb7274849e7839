"""Benchmark: prepare the real FER2013 and FER+ archives; time and peak memory.

Usage::

    PYTHONPATH=src .venv/bin/python benchmarks/bench_prepare.py [DATA_DIR] [--out benchmarks/results/prepare.json]

DATA_DIR defaults to $LLFER_DATA_DIR, else <repo>/data/raw.  Each
archive is prepared in a fresh child process by ``llfer.pipeline.run_prepare``
(source check, reader, write into a temporary folder; reader + ``Prepared.write``
if the pipeline module is absent);
wall time includes interpreter start-up and imports, peak memory is the child's
maximum resident set size (``os.wait4``).  Targets: <= 60 s and <= 1.5 GiB each.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
JOBS = [("fer2013", "fer2013.zip"), ("ferplus", "ferplus.zip")]
LIMIT_S = 60.0
LIMIT_RSS_GIB = 1.5

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
name, archive, out = sys.argv[1:4]
try:  # the real prepare stage (source resolution, reader, write)
    from llfer.config import from_dict
    from llfer.pipeline import run_prepare
    from llfer.registry import import_all
    import_all()  # registers the readers
    params = from_dict({"dataset": {"name": name, "source": archive}}, check=False)
    how = "llfer.pipeline.run_prepare"
    def go():
        run_prepare(params, out)
except ImportError:  # pipeline not there: reader + write, the same work
    from llfer.registry import DATASETS, import_all
    import_all()
    how = "reader + Prepared.write"
    def go():
        DATASETS.build(name, source=archive).write(out)
t1 = time.perf_counter()
go()
t2 = time.perf_counter()
with open(out + "/report.json") as f:
    rep = json.load(f)
d = rep["duplicates"]
print(json.dumps({
    "how": how, "import_s": t1 - t0, "prepare_s": t2 - t1,
    "num_images": rep["num_images"], "counts": rep["counts"], "corrupt": len(rep["corrupt"]),
    "duplicates": {k: d[k] for k in ("within_split", "across_splits", "across_split_images", "groups_total", "images_in_groups")},
}))
"""


def run_one(name: str, archive: Path, workdir: Path) -> dict:
    """Prepare one archive in a child process; reaped with ``os.wait4`` to get the child's own rusage."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "src"), env.get("PYTHONPATH")]))
    out_file = workdir / f"{name}.stdout"
    err_file = workdir / f"{name}.stderr"
    t = time.perf_counter()
    with open(out_file, "w") as fo, open(err_file, "w") as fe:
        proc = subprocess.Popen([sys.executable, "-c", CHILD, name, str(archive), str(workdir / name)],
                                env=env, stdout=fo, stderr=fe)
        _, status, ru = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"{name}: prepare failed:\n{err_file.read_text().strip()}")
    res = json.loads(out_file.read_text().strip().splitlines()[-1])
    peak = ru.ru_maxrss * (1 if sys.platform == "darwin" else 1024)
    for k in ("import_s", "prepare_s"):
        res[k] = round(res[k], 2)
    res.update({
        "archive": archive.name,
        "wall_s": round(wall, 2),
        "cpu_s": round(ru.ru_utime + ru.ru_stime, 2),
        "peak_rss_mib": round(peak / 2**20, 1),
        "within_limits": wall <= LIMIT_S and peak <= LIMIT_RSS_GIB * 2**30,
    })
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data_dir", nargs="?", default=os.environ.get("LLFER_DATA_DIR") or str(REPO / "data" / "raw"))
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "prepare.json"))
    args = ap.parse_args(argv)
    data = Path(args.data_dir)
    results = {}
    with tempfile.TemporaryDirectory(prefix="llfer-bench-") as tmp:
        for name, fn in JOBS:
            archive = data / fn
            if not archive.is_file():
                print(f"skip {name}: {archive} not found", file=sys.stderr)
                continue
            r = run_one(name, archive, Path(tmp))
            results[name] = r
            print(f"{name:8s} {r['num_images']:6d} images  wall {r['wall_s']:6.2f} s  (cpu {r['cpu_s']:.2f} s, "
                  f"prepare {r['prepare_s']:.2f} s)  peak RSS {r['peak_rss_mib']:.0f} MiB  "
                  f"duplicates: {r['duplicates']['groups_total']} groups, {r['duplicates']['within_split']} within split, "
                  f"{r['duplicates']['across_splits']} across splits  "
                  f"{'OK' if r['within_limits'] else 'OVER LIMIT'}")
    if not results:
        print(f"no archives found in {data}", file=sys.stderr)
        return 1
    doc = {
        "benchmark": "prepare of the real archives, one child process each (wall includes interpreter start and imports)",
        "limits": {"wall_s": LIMIT_S, "peak_rss_gib": LIMIT_RSS_GIB},
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count()},
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "results": results,
    }
    sys.path.insert(0, str(REPO / "src"))
    from llfer.io import write_json

    write_json(args.out, doc)
    print(f"wrote {args.out}")
    return 0 if all(r["within_limits"] for r in results.values()) else 2


if __name__ == "__main__":
    raise SystemExit(main())
