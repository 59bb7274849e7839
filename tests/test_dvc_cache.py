"""DVC's caches can be trusted: cached outputs hold no run facts, and the run-cache restores earlier runs."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from conftest import REPO
from dvc_scratch import lock_outs, ran_stages, restored_stages, run, set_params, status

RUN_FACT_KEYS = {"seconds", "wall_seconds", "time", "host", "hostname", "started", "finished", "date", "timestamp"}


def _stages(root: Path):
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return list(repo.index.stages)


def test_every_uncached_output_is_a_git_tracked_metric():
    """`cache: false` is only for small metrics files (committed to git); every other output is cached,
    so DVC's run-cache can restore any stage."""
    for stage in _stages(REPO):
        for out in stage.outs:
            assert out.use_cache or out.metric, f"{stage.name}: {out.def_path} has cache: false"
            assert not out.persist, f"{stage.name}: {out.def_path} is persistent"


def _json_keys(obj, found: set[str]) -> set[str]:
    if isinstance(obj, dict):
        for k, v in obj.items():
            found.add(str(k))
            _json_keys(v, found)
    elif isinstance(obj, list):
        for v in obj:
            _json_keys(v, found)
    return found


@pytest.mark.slow
def test_run_facts_go_to_timing_files_outside_the_lock(dvc_repo):
    root = dvc_repo.root
    outs = set(dvc_repo.lock)
    # no cached or git-tracked output carries wall-clock seconds or the host name
    for path in outs:
        p = root / path
        for f in ([p] if p.is_file() else sorted(p.rglob("*"))):
            if f.suffix == ".json":
                keys = _json_keys(json.loads(f.read_text()), set())
                assert not keys & RUN_FACT_KEYS, f"{f.relative_to(root)} holds run facts {sorted(keys & RUN_FACT_KEYS)}"
    # every stage wrote its run facts to metrics/timing/<stage>.json, which is no output and git-ignored
    for stage in _stages(root):
        t = root / "metrics" / "timing" / f"{stage.name}.json"
        facts = json.loads(t.read_text())
        assert facts["stage"] == stage.name and facts["seconds"] > 0 and facts["host"], facts
        assert facts["status"] == 0 and facts["threads"] >= 1
        rel = t.relative_to(root).as_posix()
        assert rel not in outs and not any(rel.startswith(o + "/") for o in outs)
        assert subprocess.run(["git", "check-ignore", "-q", rel], cwd=root).returncode == 0, f"{rel} is not git-ignored"


@pytest.mark.slow
def test_enhancer_a_b_a_restores_a_from_the_run_cache(dvc_repo):
    root, env = dvc_repo.root, dvc_repo.env
    enhanced = {s.name for s in _stages(root) if s.name.startswith("train_fer_enhanced@")}
    assert enhanced and status(root, env) == {}
    original = set_params(root, enhancer="he")
    try:
        t0 = time.perf_counter()
        b = run(["dvc", "repro"], root, env).stdout
        trained = time.perf_counter() - t0
        assert enhanced <= ran_stages(b), b
    finally:
        (root / "params.yaml").write_text(original)
    t0 = time.perf_counter()
    a = run(["dvc", "repro"], root, env).stdout
    restored = time.perf_counter() - t0
    assert not ran_stages(a) & enhanced, a
    assert enhanced <= restored_stages(a), a
    assert status(root, env) == {}
    assert lock_outs(root) == dvc_repo.lock  # A's outputs, byte for byte
    seconds = {s: json.loads((root / "metrics" / "timing" / f"{s}.json").read_text())["seconds"] for s in enhanced}
    print(f"enhancer he (trains {sorted(enhanced)}): dvc repro {trained:.1f} s (training {seconds}); "
          f"back to zerodce from the run-cache: dvc repro {restored:.1f} s")

