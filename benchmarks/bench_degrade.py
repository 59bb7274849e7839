"""Benchmark: the ``degrade`` stage on the whole of FER2013 (35,887 faces); time and peak memory.

Usage::

    .venv/bin/python benchmarks/bench_degrade.py [DATA_DIR] [--prepared DIR] [--out benchmarks/results/degrade.json]

DATA_DIR defaults to $LLFER_DATA_DIR, else <repo>/data/raw.  FER2013
is prepared from ``DATA_DIR/fer2013.zip`` into a temporary folder (not timed);
``--prepared DIR`` reuses a prepared dataset there, or prepares into DIR and
keeps it when DIR does not exist yet.

The variants are those of the repository's ``params.yaml`` ``degrade`` section,
plus [efc-lowres]'s low-resolution sizes (32, 20, 15, 10, 8, 5 px) and a
dark-then-low-res combination (``dark_pil_lowres_12``).  The stage function
``llfer.pipeline.run_degrade`` runs in a fresh child process, reaped with
``os.wait4`` to get that child's own peak resident set size; per-variant seconds
are the stage's own (degradation + sha256 of the array for meta.json + atomic
write), ``degrade_s`` is the whole call (memory-mapped read included, imports
excluded) and ``wall_s`` the child's life (interpreter start and imports
included).  Target: ``degrade_s`` <= 60 s.
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
LIMIT_S = 60.0
EFC_LOWRES_SIZES = [32, 20, 15, 10, 8, 5]
COMBO = {"dark_pil_lowres_12": ["dark_pil", "lowres_12"]}

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
prepared, out, degrade_json = sys.argv[1:4]
import yaml
import llfer.pipeline.degrade as stage
from llfer.config import from_dict
from llfer.pipeline import run_degrade
data = yaml.safe_load(open(sys.argv[4]))
data["degrade"] = json.loads(degrade_json)
params = from_dict(data, check=False)

# CPU seconds per variant (the machine may be shared, so wall time alone can mislead):
# thin wrappers around the two calls run_degrade makes per variant.
cpu = {}
_apply, _write = stage.apply_steps, stage.write_dataset
def apply_steps(*a, **k):
    c = time.process_time(); r = _apply(*a, **k); cpu["degrade"] = time.process_time() - c; return r
def write_dataset(path, *a, **k):
    c = time.process_time(); r = _write(path, *a, **k)
    cpu[path.name] = {"cpu_degrade_s": cpu.pop("degrade"), "cpu_write_s": time.process_time() - c}
    return r
stage.apply_steps, stage.write_dataset = apply_steps, write_dataset
t1 = time.perf_counter()
c1 = time.process_time()
info = run_degrade(params, prepared, out)
t2 = time.perf_counter()
c2 = time.process_time()
for name, v in info.items():
    v.update({k: round(x, 3) for k, x in cpu[name].items()})
print(json.dumps({"import_s": t1 - t0, "degrade_s": t2 - t1, "degrade_cpu_s": c2 - c1, "variants": info}))
"""


def degrade_section(params_file: Path) -> dict:
    """The repository's ``degrade`` section plus [efc-lowres]'s sizes and a dark-then-low-res combination."""
    import yaml

    cfg = yaml.safe_load(params_file.read_text()).get("degrade") or {}
    lr = dict(cfg.get("lowres") or {"interpolation": "area"})
    sizes = [int(s) for s in lr.get("sizes", [])]
    lr["sizes"] = sizes + [s for s in EFC_LOWRES_SIZES if s not in sizes]
    cfg["lowres"] = lr
    combos = dict(cfg.get("combos") or {})
    combos.update(COMBO)
    cfg["combos"] = combos
    return cfg


def prepare(archive: Path, out: Path) -> float:
    sys.path.insert(0, str(REPO / "src"))
    from llfer.config import from_dict
    from llfer.registry import import_all

    import_all()  # registers the readers
    from llfer.pipeline import run_prepare

    t = time.perf_counter()
    run_prepare(from_dict({"dataset": {"name": "fer2013", "source": str(archive)}}, check=False), out)
    return time.perf_counter() - t


def run_child(prepared: Path, out: Path, cfg: dict, params_file: Path, workdir: Path) -> tuple[dict, float, float, float]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "src"), env.get("PYTHONPATH")]))
    env["TQDM_DISABLE"] = "1"
    fo_path, fe_path = workdir / "degrade.stdout", workdir / "degrade.stderr"
    t = time.perf_counter()
    with open(fo_path, "w") as fo, open(fe_path, "w") as fe:
        proc = subprocess.Popen([sys.executable, "-c", CHILD, str(prepared), str(out), json.dumps(cfg), str(params_file)],
                                env=env, stdout=fo, stderr=fe)
        _, status, ru = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"degrade failed:\n{fe_path.read_text().strip()}")
    res = json.loads(fo_path.read_text().strip().splitlines()[-1])
    peak = ru.ru_maxrss * (1 if sys.platform == "darwin" else 1024)
    return res, wall, ru.ru_utime + ru.ru_stime, peak


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data_dir", nargs="?", default=os.environ.get("LLFER_DATA_DIR") or str(REPO / "data" / "raw"))
    ap.add_argument("--prepared", help="prepared FER2013 to reuse (prepared into it and kept when absent)")
    ap.add_argument("--params", default=str(REPO / "params.yaml"), help="params file whose degrade section is used")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "degrade.json"))
    args = ap.parse_args(argv)
    params_file = Path(args.params).resolve()
    cfg = degrade_section(params_file)
    with tempfile.TemporaryDirectory(prefix="llfer-bench-degrade-") as tmp:
        tmp = Path(tmp)
        prep_s = None
        prepared = Path(args.prepared).resolve() if args.prepared else tmp / "prepared"
        if not (prepared / "images.npy").is_file():
            archive = Path(args.data_dir) / "fer2013.zip"
            if not archive.is_file():
                print(f"{archive} not found (give DATA_DIR or set LLFER_DATA_DIR)", file=sys.stderr)
                return 1
            prep_s = prepare(archive, prepared)
            print(f"prepared {archive} -> {prepared} in {prep_s:.1f} s (not part of the timing)")
        res, wall, cpu, peak = run_child(prepared, tmp / "degraded", cfg, params_file, tmp)
        sizes = {n: sum(f.stat().st_size for f in (tmp / "degraded" / n).iterdir()) for n in res["variants"]}
    n_images = None
    for name, v in res["variants"].items():
        n_images = v["shape"][0]
        print(f"  {name:22s} {str(tuple(v['shape'])):18s} {v['seconds']:7.2f} s  "
              f"(cpu: degrade {v['cpu_degrade_s']:.2f} s + write/sha256 {v['cpu_write_s']:.2f} s)")
    ok = res["degrade_s"] <= LIMIT_S
    print(f"degrade: {len(res['variants'])} variants of {n_images} images in {res['degrade_s']:.2f} s "
          f"(cpu {res['degrade_cpu_s']:.2f} s; child wall {wall:.2f} s incl. imports, cpu {cpu:.2f} s), peak RSS {peak / 2**20:.0f} MiB  "
          f"{'OK' if ok else 'OVER LIMIT'} (limit {LIMIT_S:.0f} s)")
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    doc = {
        "benchmark": "llfer.pipeline.run_degrade on the whole of FER2013 (fer2013.zip), in a child process",
        "limit_s": LIMIT_S,
        "degrade_config": cfg,
        "seed": "from params file",
        "num_images": n_images,
        "variants": {n: {**v, "bytes": sizes[n]} for n, v in res["variants"].items()},
        "degrade_s": round(res["degrade_s"], 2),
        "degrade_cpu_s": round(res["degrade_cpu_s"], 2),
        "sum_variant_s": round(sum(v["seconds"] for v in res["variants"].values()), 2),
        "import_s": round(res["import_s"], 2),
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "peak_rss_mib": round(peak / 2**20, 1),
        "prepare_s_untimed": None if prep_s is None else round(prep_s, 2),
        "within_limit": ok,
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
                    "loadavg_after": None if load is None else [round(x, 2) for x in load]},
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    sys.path.insert(0, str(REPO / "src"))
    from llfer.io import write_json

    write_json(args.out, doc)
    print(f"wrote {args.out}")
    return 0 if ok else 2


if __name__ == "__main__":
    raise SystemExit(main())
