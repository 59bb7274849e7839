"""End to end: copy the repository into a temporary git repository, shrink the params,
run `dvc repro`, check every output and plausible metric ranges, check that a second
`dvc repro` runs nothing and that `dvc exp run -S enhancer=...` re-runs only what
depends on the enhancer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from dvc_scratch import ran_stages, restored_stages, run as _run, status

pytestmark = pytest.mark.timeout(1500)


@pytest.fixture
def repo(dvc_repo) -> tuple[Path, dict[str, str]]:
    """The shrunk scratch repository after `dvc repro` (conftest.dvc_repo, shared with the other DVC tests)."""
    return dvc_repo.root, dvc_repo.env


def test_every_output_exists_with_plausible_metrics(repo):
    root, _ = repo
    for d in ["data/prepared", "data/degraded/dark_pil", "data/degraded/dark_gamma", "data/degraded/lowres_12",
              "data/degraded/dark_gamma_noise", "data/enhanced/he/dark_pil", "data/enhanced/zerodce/dark_gamma",
              "models/enhancers/zerodce", "models/fer/mini_xception-clean", "models/fer/mini_xception-dark",
              "models/fer/mini_xception-enhanced", "plots/quality", "plots/report"]:
        assert (root / d).is_dir(), d
    q = json.loads((root / "metrics/quality.json").read_text())
    assert 0 < q["dark_pil"]["input"]["psnr"] < 15
    assert q["dark_pil"]["identity"]["psnr"] == pytest.approx(q["dark_pil"]["input"]["psnr"])
    assert q["dark_pil"]["he"]["psnr"] > q["dark_pil"]["input"]["psnr"]
    assert all(0 <= r["ssim"] <= 1 for v in ("dark_pil", "dark_gamma") for r in q[v].values())
    m = json.loads((root / "metrics/fer/mini_xception-clean.json").read_text())
    assert 0 <= m["test_acc"] <= 1 and {"acc_clean", "acc_dark_pil", "acc_lowres_12"} <= set(m)
    assert all(isinstance(v, (int, float)) for v in m.values())  # flat, numbers only
    per_class = (root / "plots/fer/mini_xception-clean/per_class.csv").read_text().splitlines()
    assert per_class[0] == "class,precision,recall,f1,support" and len(per_class) == 8
    rows = json.loads((root / "plots/fer/mini_xception-clean/confusion.json").read_text())
    assert len(rows) > 0
    assert set(rows[0]) == {"actual", "predicted"}
    assert (root / "plots/fer/mini_xception-clean/confusion.png").stat().st_size > 1000
    tte = json.loads((root / "metrics/tte.json").read_text())
    assert {"zerodce:dark_pil", "he:dark_gamma", "identity:dark_pil"} <= set(tte["mini_xception-clean"])
    assert tte["mini_xception-clean"]["identity:dark_pil"] == m["acc_dark_pil"]
    cv = json.loads((root / "metrics/cv.json").read_text())["mini_xception-clean"]
    assert cv["folds"] == 2 and 0 <= cv["accuracy_mean"] <= 1 and cv["protocol"] == "subject"
    assert cv["subjects_shared"] == 0 and sum(f["n"] for f in cv["per_fold"].values()) == cv["images"]
    assert (root / "plots/cv/mini_xception-clean/confusion.png").stat().st_size > 1000
    rob = json.loads((root / "metrics/robustness.json").read_text())
    assert set(rob) == {"efcnet-lowres_12", "mini_xception-clean", "mini_xception-dark", "mini_xception-enhanced",
                        "mini_xception-salt_pepper"}
    assert set(rob["mini_xception-clean"]["brightness"]["he"]) == {"1", "0.1"}
    assert (root / "plots/robustness/resolution/efcnet-lowres_12.csv").read_text().startswith("enhancer,resolution,accuracy")
    for f in ("gradcam.png", "filters.png", "feature_maps.png"):
        assert (root / "plots/explain/efcnet-lowres_12" / f).stat().st_size > 1000
    papers = (root / "plots/report/papers.md").read_text()
    assert "[efc-lowres] Table 3" in papers and "train_fer_run@efcnet-lowres_12" not in papers  # 12 px: no paper column
    assert "| salt_pepper | 69 |" in papers and "train_fer@mini_xception-salt_pepper" in papers
    j = json.loads((root / "metrics/fer/joint/zerodce-mini_xception.json").read_text())
    assert j["steps_run"] == 2 and all(isinstance(v, (int, float)) for v in j.values())
    assert j["acc_he"] == tte["mini_xception-clean"]["he:dark_gamma"]  # the same classifier, enhancer and faces
    assert (root / "models/joint/zerodce-mini_xception/model.safetensors").exists()
    assert "## joint@zerodce-mini_xception" in (root / "plots/report/joint.md").read_text()
    assert "| joint@zerodce-mini_xception |" in papers
    s = json.loads((root / "metrics/summary.json").read_text())
    assert {"clean_test_acc", "dark_pil_test_acc", "enhanced_dark_pil_test_acc"} <= set(s["headline"])
    assert (root / "plots/report/accuracy.png").exists() and (root / "plots/report/results.md").exists()


def test_second_repro_runs_nothing(repo):
    root, env = repo
    r = _run(["dvc", "repro"], root, env)
    assert "Running stage" not in r.stdout, r.stdout
    assert status(root, env) == {}


def test_changing_runtime_reruns_nothing(repo):
    """`runtime` (device, threads, inference batch sizes, channels_last) is no stage's param."""
    root, env = repo
    params = root / "params.yaml"
    original = params.read_text()
    p = yaml.safe_load(original)
    p["runtime"].update(device="cpu", threads=1, enhance_batch_size=3, eval_batch_size=7, channels_last=False)
    params.write_text(yaml.safe_dump(p, sort_keys=False))
    try:
        assert status(root, env) == {}
    finally:
        params.write_text(original)


def test_metrics_and_plots_commands(repo):
    root, env = repo
    r = _run(["dvc", "metrics", "show"], root, env)
    assert "metrics/summary.json" in r.stdout and "test_acc" in r.stdout
    _run(["dvc", "plots", "show", "-o", str(root / "plots_html")], root, env)
    assert (root / "plots_html" / "index.html").exists()


def test_changing_enhancer_reruns_only_dependents(repo):
    root, env = repo
    params = root / "params.yaml"
    original = params.read_text()
    p = yaml.safe_load(original)
    p["enhancer"] = "he"
    params.write_text(yaml.safe_dump(p, sort_keys=False))
    try:
        changed = set(status(root, env))
    finally:
        params.write_text(original)
    # explain draws the faces the selected enhancer brightened
    assert changed == {"train_fer_enhanced@mini_xception-enhanced", "explain", "report"}, changed
    _run(["git", "add", "-A"], root, env)
    _run(["git", "commit", "-qm", "repro", "--allow-empty"], root, env)
    try:
        r = _run(["dvc", "exp", "run", "-S", "enhancer=he"], root, env)
        # run, or restored from the run-cache when another test already ran enhancer=he
        ran = ran_stages(r.stdout) | restored_stages(r.stdout)
        assert ran == changed | {"evaluate", "robustness"}, r.stdout  # both follow the retrained classifier
        shown = _run(["dvc", "exp", "show", "--json"], root, env).stdout
        assert '"he"' in shown
    finally:  # back to the committed params and their outputs for the other tests on this repository
        _run(["git", "reset", "-q", "--hard"], root, env)
        _run(["dvc", "checkout", "-q"], root, env)
    assert status(root, env) == {}
