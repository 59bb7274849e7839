"""DVC experiment queues: relative paths resolve against the repository, torch threads are shared out."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dvc_scratch import restored_clone, run
from llfer.errors import ConfigError
from llfer.workers import from_root, from_root_or_url, project_root, queue_workers, torch_threads


@pytest.fixture
def fake_queue(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A repository with DVC's temporary experiment workspace and two live queue worker records."""
    monkeypatch.delenv("LLFER_ROOT", raising=False)
    monkeypatch.delenv("LLFER_THREADS", raising=False)
    root = tmp_path / "repo"
    ws = root / ".dvc" / "tmp" / "exps" / "tmpab12cd"
    ws.mkdir(parents=True)
    for n in (1, 2):
        d = root / ".dvc" / "tmp" / "exps" / "run" / f"dvc-exp-worker-{n}"
        d.mkdir(parents=True)
        (d / f"dvc-exp-worker-{n}.json").write_text(f'{{"pid": {os.getpid()}, "returncode": null}}')
    done = root / ".dvc" / "tmp" / "exps" / "run" / "dvc-exp-worker-3"
    done.mkdir()
    (done / "dvc-exp-worker-3.json").write_text(f'{{"pid": {os.getpid()}, "returncode": 0}}')
    return root, ws


def test_paths_resolve_against_the_repository_of_a_queued_experiment(fake_queue, monkeypatch):
    root, ws = fake_queue
    assert project_root(ws) == root.resolve()
    assert from_root("data/unpaired", ws) == root.resolve() / "data/unpaired"
    assert from_root("/abs/x.zip", ws) == Path("/abs/x.zip")
    assert from_root_or_url("https://example.org/f.zip", ws) == "https://example.org/f.zip"
    assert project_root(root) == root.resolve() and from_root("data/x", root) == Path("data/x")  # a normal run
    monkeypatch.setenv("LLFER_ROOT", str(root / "elsewhere"))
    assert from_root("data/x", root) == root / "elsewhere" / "data/x"


def test_threads_are_shared_among_queue_workers(fake_queue, monkeypatch):
    root, ws = fake_queue
    assert queue_workers(root) == 2  # the finished process 3 does not count
    cores = len(os.sched_getaffinity(0))
    n, why = torch_threads(None, ws)
    assert n == max(1, cores // 2) and "shared by 2 running queued experiment" in why
    assert torch_threads(3, ws) == (3, "runtime.threads")
    assert torch_threads(None, root) == (None, "torch default")  # a workspace run keeps torch's default
    monkeypatch.setenv("LLFER_THREADS", "5")
    assert torch_threads(3, ws) == (5, "LLFER_THREADS")
    monkeypatch.setenv("LLFER_THREADS", "zero")
    with pytest.raises(ConfigError, match="LLFER_THREADS"):
        torch_threads(None, ws)


def _exp_ref(root: Path, env: dict[str, str], name: str) -> str:
    refs = run(["git", "for-each-ref", "--format=%(refname)", "refs/exps"], root, env).stdout.split()
    match = [r for r in refs if r.endswith("/" + name)]
    assert len(match) == 1, refs
    return match[0]


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_two_queued_experiments_run_in_parallel(dvc_repo, tmp_path: Path):
    q, env = restored_clone(dvc_repo.root, tmp_path / "q")
    run(["git", "add", "-A"], q, env)
    run(["git", "commit", "-qm", "baseline", "--allow-empty"], q, env)
    # an unpaired low-light set that git does not hold: a queued experiment's temporary copy lacks it
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):  # 64 px: NIQE's x4 upsampling gives two 96 px blocks
        Image.fromarray(rng.integers(0, 60, (64, 64), dtype=np.uint8)).save(photos / f"p{i}.png")
    run(["python", "-m", "llfer.cli", "prepare", "--dataset", "unpaired", "--source", str(photos),
         "--out", "data/unpaired"], q, env)
    with open(q / ".git" / "info" / "exclude", "a") as f:
        f.write("/data/unpaired/\n")
    run(["dvc", "exp", "run", "--queue", "-n", "cv2", "-S", "cv.epochs=2"], q, env)
    run(["dvc", "exp", "run", "--queue", "-n", "unpaired", "-S", "quality.unpaired=[data/unpaired]"], q, env)
    t0 = time.perf_counter()
    run(["dvc", "queue", "start", "-j", "2"], q, env)
    while True:
        st = run(["dvc", "queue", "status"], q, env).stdout
        if not re.search(r"\b(Queued|Running)\b", st):
            break
        assert time.perf_counter() - t0 < 1000, st
        time.sleep(3)
    wall = time.perf_counter() - t0
    logs = {n: run(["dvc", "queue", "logs", n], q, env, check=False).stdout for n in ("cv2", "unpaired")}
    assert st.count("Success") == 2, f"{st}\n{logs}"
    quality = run(["git", "show", f"{_exp_ref(q, env, 'unpaired')}:metrics/quality.json"], q, env).stdout
    assert '"unpaired:unpaired"' in quality
    cv = run(["git", "show", f"{_exp_ref(q, env, 'cv2')}:metrics/cv.json"], q, env).stdout
    assert cv != (q / "metrics" / "cv.json").read_text()
    cores = len(os.sched_getaffinity(0))
    # every stage that ran in a queued experiment shared the cores among the experiments running then
    shared = re.findall(r"(\d+) torch threads \((\d+) cores shared by (\d+) running queued", "".join(logs.values()))
    assert shared and all(int(n) == max(1, int(c) // int(k)) for n, c, k in shared), logs
    print(f"queued stages' threads (threads, cores, experiments running): {sorted(set(shared))}")
    print(f"two queued experiments with -j 2: {wall:.1f} s")
