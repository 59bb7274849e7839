"""Scratch DVC repositories for the tests: a copy of this repository with shrunk params in its own git repo.

The shrunk configuration keeps one enhancer of each kind, a 280-image synthetic dataset, 2 FER epochs
and 1 CV epoch, so a full `dvc repro` takes about a minute on two CPU cores.  The stages import
llfer from the scratch copy (``PYTHONPATH=<copy>/src``), so editing a module there changes what runs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
#: workspace outputs and local results that never go into a scratch copy
SKIP = ("data/", "models/", "metrics/", "plots/", "benchmarks/", "dvc.lock")


def run(cmd: list[str], cwd: Path, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess:
    """Run a command; on failure raise with the tail of its output (stderr merged into stdout)."""
    r = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({r.returncode}) in {cwd}:\n{r.stdout[-6000:]}")
    return r


def copy_repo(dst: Path) -> None:
    """Copy the tracked and untracked-but-not-ignored files of this repository, without outputs."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, check=True).stdout.split(b"\0")
    for f in filter(None, (x.decode() for x in files)):
        src = REPO / f
        if not src.is_file() or f.startswith(SKIP):
            continue
        (dst / f).parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():  # e.g. conf/params.yaml -> ../params.yaml: the copy's link names the copy's file
            os.symlink(os.readlink(src), dst / f)
        else:
            shutil.copy2(src, dst / f)


def shrink(params: Path) -> None:
    """The shrunk configuration (see the module docstring)."""
    p = yaml.safe_load(params.read_text())
    p["dataset"]["options"] = {"num_images": 280, "num_subjects": 40}
    p["degrade"]["lowres"]["sizes"] = [12]
    # Every enhancer has its own unit tests; the end-to-end run keeps one of each kind.
    p["classical"] = {"identity": {}, "he": {}}
    p["learned"] = {"zerodce": p["learned"]["zerodce"]}
    p["enhancer"] = "zerodce"
    p["learned"]["zerodce"]["train"].update(steps=3, batch_size=4, warmup_steps=0, eval_every=0)
    p["quality"]["niqe_max_images"] = 4
    p["quality"]["grid_images"] = 3
    p["fer"]["eval_on"] = ["clean", "dark_pil", "lowres_12"]
    p["fer"]["train"].update(epochs=2, batch_size=32)
    # one preprocessed input (train-only noise), one low-resolution run outside the grid, one CV run of 2 folds
    p["fer"]["inputs"] = ["clean", "dark", "salt_pepper"]
    p["fer"]["runs"] = ["efcnet-lowres_12"]
    p["fer"]["models"]["efcnet"] = {"input_size": 12}
    p["cv"].update(runs=["mini_xception-clean"], folds=[0, 1], epochs=1)
    p["robustness"].update(enhancers=["identity", "he"], brightness=[1.0, 0.1], gamma=[3.0], resolution=[48, 12],
                           max_images=40)
    p["explain"].update(faces=2, filters=4)
    p["joint"]["classical"] = ["he"]
    p["joint"]["train"].update(steps=2, batch_size=8, eval_every=0, max_train=32, max_val=16)
    params.write_text(yaml.safe_dump(p, sort_keys=False))


def scratch_env(root: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env.update(TQDM_DISABLE="1", DVC_NO_ANALYTICS="1", GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t",
               GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t", PYTHONPATH=str(root / "src"))
    env.pop("LLFER_THREADS", None)
    return env


def make_scratch(dst: Path) -> tuple[Path, dict[str, str]]:
    """A shrunk copy of this repository in a new git repository with one commit (nothing reproduced)."""
    dst.mkdir(parents=True)
    copy_repo(dst)
    shrink(dst / "params.yaml")
    env = scratch_env(dst)
    run(["git", "init", "-q", "-b", "main"], dst, env)
    run(["git", "add", "-A"], dst, env)
    run(["git", "commit", "-qm", "init"], dst, env)
    return dst, env


def clone(src: Path, dst: Path, branch: str | None = None) -> tuple[Path, dict[str, str]]:
    """A git clone of a scratch repository (its own empty DVC cache), with its own environment."""
    env = scratch_env(dst)
    run(["git", "clone", "-q", *(["-b", branch] if branch else []), str(src), str(dst)], src.parent, env)
    return dst, env


def restored_clone(src: Path, dst: Path) -> tuple[Path, dict[str, str]]:
    """A clone of the scratch repository ``src`` sharing its DVC cache, every output restored by `dvc repro`
    from the run-cache, committed as the baseline of experiments."""
    q, env = clone(src, dst)
    run(["dvc", "cache", "dir", "--local", str(src / ".dvc" / "cache")], q, env)
    run(["dvc", "repro"], q, env)  # every stage restored from the shared run-cache
    return q, env


def ran_stages(output: str) -> set[str]:
    """The stages a `dvc repro` / `dvc exp run` output says it ran."""
    return set(re.findall(r"^Running stage '([^']+)'", output, flags=re.M))


def restored_stages(output: str) -> set[str]:
    """The stages DVC restored from its run-cache instead of running."""
    return set(re.findall(r"^Stage '([^']+)' is cached - skipping run", output, flags=re.M))


def lock_outs(root: Path) -> dict[str, str]:
    """Every output path in dvc.lock -> its md5."""
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    return {o["path"]: o["md5"] for s in lock["stages"].values() for o in s.get("outs", [])}


def status(root: Path, env: dict[str, str]) -> dict:
    """`dvc status --json`: stage -> what changed (empty when everything is up to date)."""
    r = subprocess.run(["dvc", "status", "--json"], cwd=root, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise AssertionError(f"dvc status failed in {root}:\n{r.stdout}\n{r.stderr}")
    return json.loads(r.stdout or "{}")


def set_params(root: Path, **changes: object) -> str:
    """Set dotted params keys in params.yaml (``set_params(root, **{"cv.epochs": 2})``); return the old text."""
    path = root / "params.yaml"
    old = path.read_text()
    p = yaml.safe_load(old)
    for key, value in changes.items():
        *parents, last = key.split(".")
        d = p
        for k in parents:
            d = d[k]
        d[last] = value
    path.write_text(yaml.safe_dump(p, sort_keys=False))
    return old
