"""The papers' experiments (conf/experiment/, README "The papers' experiments"): DVC's Hydra composition
of params.yaml and each named experiment gives params that pass validation, and a named experiment runs
as one `dvc exp run` and shows up in `dvc exp show` under its name."""

from __future__ import annotations

import configparser
import csv
import io
import os
from pathlib import Path

import pytest
import yaml

from conftest import REPO
from dvc_scratch import restored_clone, run
from llfer.config import load_params

CONF = REPO / "conf"
EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
EFC_SIZES = (20, 15, 10, 8, 5)


def compose(tmp_path: Path, *overrides: str, conf: Path = CONF) -> Path:
    """params.yaml as `dvc exp run -S <overrides>` writes it (DVC's own composition function)."""
    from dvc.utils.hydra import compose_and_dump

    out = tmp_path / "params.yaml"
    compose_and_dump(out, str(conf), None, "config", str(conf.parent), list(overrides))
    return out


def test_dvc_composes_params_from_conf_and_params_yaml_is_the_defaults():
    cfg = configparser.ConfigParser()
    cfg.read(REPO / ".dvc" / "config")
    assert cfg.getboolean("hydra", "enabled")
    link = CONF / "params.yaml"
    assert link.is_symlink() and link.resolve() == (REPO / "params.yaml").resolve()


def test_an_experiment_without_overrides_keeps_every_value(tmp_path):
    assert yaml.safe_load(compose(tmp_path).read_text()) == yaml.safe_load((REPO / "params.yaml").read_text())


def test_the_papers_experiments_are_all_there():
    assert set(EXPERIMENTS) == {"fer2013-minixception", "fer2013-resnet50", "fer2013-enhancers", "ferplus-joint",
                                "fer2013-joint", *(f"ferplus-efc-{px}px" for px in EFC_SIZES)}


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_composes_into_valid_params(tmp_path, name):
    p = load_params(compose(tmp_path, f"+experiment={name}"))  # what `llfer check` validates
    assert p.dataset.name in ("fer2013", "ferplus")
    assert p.dataset.source == f"data/raw/{p.dataset.name}.zip"  # relative: the same on every machine
    assert p.dataset.options == {}
    assert p.cv.runs and p.cv.max_images  # the default's small CV: the cv stage needs a run
    # ... and every fold gets an image of the rarest class (FER+ contempt: about 0.5 % of the faces)
    assert len(p.cv.folds) <= p.cv.max_images * 0.005
    assert p.fer.train.eval_every == 1 or name == "fer2013-enhancers"
    if name != "fer2013-enhancers":  # a FER experiment trains only the enhancers it uses
        learned = {"fer2013-resnet50": {"mirnet"}, "ferplus-joint": {"llenet", "zerodce"},
                   "fer2013-joint": {"llenet", "zerodce"}}.get(name, set())
        assert set(p.learned) == learned
        assert p.joint_pairs() == (["llenet-resnet18", "zerodce-resnet18"] if name.endswith("-joint") else [])
        assert set(p.classical) == {"he"} and p.degrade.combos == {}


def test_resnet50_trains_mirnet_as_params_yaml_does(tmp_path):
    composed = yaml.safe_load(compose(tmp_path, "+experiment=fer2013-resnet50").read_text())
    assert composed["learned"] == {"mirnet": yaml.safe_load((REPO / "params.yaml").read_text())["learned"]["mirnet"]}, \
        "conf/experiment/fer2013-resnet50.yaml: learned.mirnet differs from params.yaml's; copy it"


@pytest.mark.parametrize("name", ["ferplus-joint", "fer2013-joint"])
def test_joint_experiments_train_the_enhancers_as_params_yaml_does(tmp_path, name):
    composed = yaml.safe_load(compose(tmp_path, f"+experiment={name}").read_text())
    defaults = yaml.safe_load((REPO / "params.yaml").read_text())["learned"]
    assert composed["learned"] == {e: defaults[e] for e in ("llenet", "zerodce")}, \
        "conf/setup/ll-fer-joint.yaml: learned.llenet / zerodce differ from params.yaml's; copy them"
    assert composed["joint"]["variant"] == "dark_gamma" and composed["degrade"]["dark_gamma"] == \
        yaml.safe_load((REPO / "params.yaml").read_text())["degrade"]["dark_gamma"]  # [ll-fer] eq. 14


def test_efc_experiments_differ_only_in_their_size(tmp_path):
    composed = {px: yaml.safe_load(compose(tmp_path, f"+experiment=ferplus-efc-{px}px").read_text())
                for px in EFC_SIZES}
    for px, p in composed.items():
        assert p["fer"]["inputs"] == [f"lowres_{px}"]  # each size's faces, upsampled for the network:
        assert p["fer"]["models"]["efcnet"] == {"input_size": 32 if px == 20 else 20}
        assert p["fer"]["train"]["epochs"] == 60
        assert p["degrade"]["lowres"]["sizes"] == list(EFC_SIZES)  # one degrade, shared through the run-cache
        p["fer"]["inputs"] = p["fer"]["models"]["efcnet"] = None
    assert all(p == composed[20] for p in composed.values())


def test_an_override_on_top_of_an_experiment(tmp_path):
    p = load_params(compose(tmp_path, "+experiment=ferplus-efc-5px", "fer.train.epochs=1"))
    assert p.fer.train.epochs == 1 and p.fer.inputs == ["lowres_5"]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_named_experiment_runs_and_shows_in_dvc_exp_show(dvc_repo, tmp_path: Path):
    q, env = restored_clone(dvc_repo.root, tmp_path / "q")
    # a tiny experiment on the shrunk synthetic set: only quality and report depend on it
    (q / "conf" / "experiment" / "tiny.yaml").write_text("# @package _global_\nquality:\n  grid_images: 2\n")
    run(["git", "add", "-A"], q, env)
    run(["git", "commit", "-qm", "baseline", "--allow-empty"], q, env)
    out = run(["dvc", "exp", "run", "-n", "tiny", "-S", "+experiment=tiny"], q, env).stdout
    assert "Running stage 'quality'" in out and "Running stage 'train_fer" not in out, out
    shown = run(["dvc", "exp", "show", "--csv", "--keep", "quality.grid_images", "--keep", "Experiment"], q, env).stdout
    rows = {r["Experiment"]: r for r in csv.DictReader(io.StringIO(shown))}
    assert rows["tiny"]["quality.grid_images"] == "2", shown
    # the experiment's params.yaml (left in the workspace): the shrunk defaults with that one value changed
    exp = yaml.safe_load((q / "params.yaml").read_text())
    base = yaml.safe_load(run(["git", "show", "HEAD:params.yaml"], q, env).stdout)
    base["quality"]["grid_images"] = 2
    assert exp == base
    assert os.path.islink(q / "conf" / "params.yaml")


def test_the_gpu_script_runs_named_experiments_with_valid_params(tmp_path):
    """benchmarks/gpu_papers.sh (the runs sized for a GPU): every `dvc exp run` it would start names an
    experiment of conf/experiment/ and its `-S` overrides compose into params that pass validation."""
    import shlex
    import subprocess

    for f in ("fer2013.zip", "ferplus.zip"):
        (tmp_path / f).write_bytes(b"")
    parts = ["speed", "minixception", "minixception-all", "efc20", "efc-all", "resnet50", "enhancers", "joint"]
    env = {**os.environ, "GPU_PAPERS_DRY": "1", "LLFER_DATA_DIR": str(tmp_path)}
    out = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_papers.sh"), *parts], env=env, check=True,
                         capture_output=True, text=True).stdout
    cmds = [shlex.split(line) for line in out.splitlines() if line.startswith("dvc exp run")]
    assert len(cmds) == 12
    for i, cmd in enumerate(cmds):
        name = cmd[cmd.index("-n") + 1]
        overrides = [cmd[j + 1] for j, a in enumerate(cmd) if a == "-S"]
        assert name in EXPERIMENTS and overrides[0] == f"+experiment={name}"
        (tmp_path / str(i)).mkdir()
        p = load_params(compose(tmp_path / str(i), *overrides))
        assert p.fer.train.epochs >= 30
        for e in ("mirnet", "llenet", "retinexnet"):
            if any(o.startswith(f"learned.{e}=") for o in overrides):
                assert p.learned[e].model["preset"] == "paper" and p.learned[e].train.steps == 2000
    bad = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_papers.sh"), "nope"], env=env,
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown part 'nope'" in bad.stderr
