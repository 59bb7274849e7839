"""End to end: copy the repository into a temporary git repository, shrink the params,
run `dvc repro`, check every output and plausible metric ranges, check that a second
`dvc repro` runs nothing and that `dvc exp run -S enhancer=...` re-runs only what
depends on the enhancer."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO

pytestmark = pytest.mark.timeout(1500)


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}")
    return r


def _copy_repo(dst: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, check=True).stdout.split(b"\0")
    for f in filter(None, files):
        src = REPO / f.decode()
        if not src.is_file() or f.decode().startswith(("data/", "models/", "metrics/", "plots/", "benchmarks/")):
            continue
        (dst / f.decode()).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst / f.decode())


def _shrink(params: Path) -> None:
    p = yaml.safe_load(params.read_text())
    p["dataset"]["options"] = {"num_images": 280, "num_subjects": 40}
    p["degrade"]["lowres"]["sizes"] = [12]
    # Every enhancer has its own unit tests; the end-to-end run keeps one of each kind.
    p["classical"] = {"identity": {}, "he": {}}
    p["learned"] = {"zerodce": p["learned"]["zerodce"]}
    p["enhancer"] = "zerodce"
    p["learned"]["zerodce"]["train"].update(iterations=3, batch_size=4)
    p["quality"]["niqe_max_images"] = 4
    p["quality"]["grid_images"] = 3
    p["fer"]["eval_on"] = ["clean", "dark_pil", "lowres_12"]
    p["fer"]["train"].update(epochs=2, batch_size=32)
    p["cv"].update(folds=2, epochs=1)
    params.write_text(yaml.safe_dump(p, sort_keys=False))


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    dst = tmp_path_factory.mktemp("e2e") / "repo"
    dst.mkdir()
    _copy_repo(dst)
    _shrink(dst / "params.yaml")
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env.update(TQDM_DISABLE="1", DVC_NO_ANALYTICS="1", GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t",
               GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t", PYTHONPATH=str(REPO / "src"))
    _run(["git", "init", "-q", "-b", "main"], dst, env)
    _run(["git", "add", "-A"], dst, env)
    _run(["git", "commit", "-qm", "init"], dst, env)
    _run(["dvc", "repro"], dst, env)
    return dst, env


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
    cv = json.loads((root / "metrics/cv.json").read_text())
    assert cv["folds"] == 2 and 0 <= cv["accuracy_mean"] <= 1
    s = json.loads((root / "metrics/summary.json").read_text())
    assert {"clean_test_acc", "dark_pil_test_acc", "enhanced_dark_pil_test_acc"} <= set(s["headline"])
    assert (root / "plots/report/accuracy.png").exists() and (root / "plots/report/results.md").exists()


def test_second_repro_runs_nothing(repo):
    root, env = repo
    r = _run(["dvc", "repro"], root, env)
    assert "Running stage" not in r.stdout, r.stdout
    st = _run(["dvc", "status", "--json"], root, env)
    assert json.loads(st.stdout) == {}


def test_changing_runtime_reruns_nothing(repo):
    """`runtime` (device, threads, inference batch sizes, channels_last) is no stage's param."""
    root, env = repo
    params = root / "params.yaml"
    original = params.read_text()
    p = yaml.safe_load(original)
    p["runtime"].update(device="cpu", threads=1, enhance_batch_size=3, eval_batch_size=7, channels_last=False)
    params.write_text(yaml.safe_dump(p, sort_keys=False))
    try:
        assert json.loads(_run(["dvc", "status", "--json"], root, env).stdout) == {}
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
        changed = set(json.loads(_run(["dvc", "status", "--json"], root, env).stdout))
    finally:
        params.write_text(original)
    assert changed == {"train_fer_enhanced@mini_xception-enhanced", "report"}, changed
    _run(["git", "add", "-A"], root, env)
    _run(["git", "commit", "-qm", "repro", "--allow-empty"], root, env)
    r = _run(["dvc", "exp", "run", "-S", "enhancer=he"], root, env)
    ran = {line.split("'")[1] for line in r.stdout.splitlines() if line.startswith("Running stage")}
    assert ran == changed | {"evaluate"}, r.stdout  # evaluate follows the retrained classifier
    shown = _run(["dvc", "exp", "show", "--json"], root, env).stdout
    assert '"he"' in shown
