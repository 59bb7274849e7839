"""ci/pipeline.sh (what the pull-request workflow runs) against a directory remote, on the shrunk configuration.

Clone A reproduces everything and pushes the cache; its dvc.lock and metrics become the baseline (as a
merge to main would).  Clone B pulls and runs nothing; then one param changes and exactly its dependents
run, and the printed report names the changed metrics.  Clone A's run is also the second, independent
`dvc repro` that the determinism test compares with the shared scratch repository's.
"""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from dvc_scratch import clone, lock_outs, ran_stages, run, set_params, status

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


def _pipeline(root: Path, env: dict[str, str]) -> tuple[str, float]:
    t0 = time.perf_counter()
    out = run(["bash", "ci/pipeline.sh"], root, env).stdout
    return out, time.perf_counter() - t0


def _report_ran(out: str) -> set[str]:
    line = next(x for x in out.splitlines() if x.startswith("Stages re-run: "))
    names = line.removeprefix("Stages re-run: ").split()
    return set() if names == ["none"] else set(names)


@pytest.fixture(scope="module")
def ci(dvc_repo, tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    base = tmp_path_factory.mktemp("ci")
    remote = base / "remote"
    a, env_a = clone(dvc_repo.root, base / "a")
    env_a["DVC_REMOTE_URL"] = str(remote)
    out_a, t_a = _pipeline(a, env_a)
    # the baseline: A's lock and metrics committed (what merging to main does)
    run(["git", "add", "-A"], a, env_a)
    run(["git", "commit", "-qm", "baseline"], a, env_a)
    run(["git", "push", "-q", "origin", "HEAD:baseline"], a, env_a)
    b, env_b = clone(dvc_repo.root, base / "b", branch="baseline")
    env_b["DVC_REMOTE_URL"] = str(remote)
    out_b, t_b = _pipeline(b, env_b)
    return SimpleNamespace(a=a, env_a=env_a, out_a=out_a, t_a=t_a, b=b, env_b=env_b, out_b=out_b, t_b=t_b,
                           remote=remote)


def test_clone_a_reproduces_every_stage_and_pushes(ci, dvc_repo):
    stages = set(yaml.safe_load((ci.a / "dvc.lock").read_text())["stages"])
    assert ran_stages(ci.out_a) == stages == _report_ran(ci.out_a)
    assert (ci.remote / "files" / "md5").is_dir() and (ci.remote / "runs").is_dir()  # cache and run-cache pushed
    print(f"clone A (empty remote, full repro + push): {ci.t_a:.1f} s, {len(stages)} stages")


def test_two_independent_repros_give_identical_output_hashes(ci, dvc_repo):
    """The shared scratch repository and clone A each ran `dvc repro` from nothing on the same params."""
    first, second = dvc_repo.lock, lock_outs(ci.a)
    assert set(first) == set(second)
    differ = sorted(p for p in first if first[p] != second[p])
    assert not differ, f"outputs whose hash differs between two runs: {differ}"


def test_clone_b_pulls_the_cache_and_runs_nothing(ci):
    assert ran_stages(ci.out_b) == set() == _report_ran(ci.out_b), ci.out_b
    assert status(ci.b, ci.env_b) == {}
    print(f"clone B (pull + no-op repro + push): {ci.t_b:.1f} s")


def test_clone_b_param_change_reruns_exactly_its_dependents_and_reports_the_metrics(ci):
    set_params(ci.b, **{"cv.epochs": 2})
    out, t = _pipeline(ci.b, ci.env_b)
    folds = {"cv_fold@mini_xception-clean-0", "cv_fold@mini_xception-clean-1"}
    assert ran_stages(out) == {*folds, "cv", "report"} == _report_ran(out), out
    report = out[out.index("## DVC pipeline"):]
    assert "cv.epochs" in report                      # dvc params diff
    # dvc metrics diff names the changed metrics: cv.json states its epochs (a CV score of this tiny run can stay
    # the same between 1 and 2 epochs: accuracy_mean 0.1321 both times at one commit)
    assert "metrics/cv.json" in report and "mini_xception-clean.epochs" in report
    print(f"clone B after cv.epochs 1 -> 2: {t:.1f} s, re-ran {sorted(ran_stages(out))}")
