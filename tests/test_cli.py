"""CLI: listing, and bad input ending in one line naming the culprit, a non-zero exit and no half-written output."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from llfer.cli import main
from llfer.data.store import read_dataset
from conftest import REPO


def _err(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("llfer: error: ")
    return err[0]


def test_help_lists_every_stage(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for cmd in ("list", "check", "prepare", "degrade", "train-enhancer", "enhance", "quality", "train-fer",
                "evaluate", "cv-fold", "cv", "robustness", "explain", "joint", "report"):
        assert cmd in out


def test_list_json_has_every_kind(capsys):
    assert main(["list", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert set(d) == {"datasets", "degradations", "enhancers", "preprocessors", "backbones"}
    names = {k: {r["name"] for r in v} for k, v in d.items()}
    assert {"synthetic", "fer2013", "ferplus"} <= names["datasets"]
    assert {"dark_pil", "dark_gamma", "lowres", "noise"} <= names["degradations"]
    assert {"he", "clahe", "agc", "retinex", "zerodce", "mirnet", "retinexnet", "llenet"} <= names["enhancers"]
    assert {"he", "gcn", "gcn_he", "salt_pepper", "sobel3"} <= names["preprocessors"]
    assert {"mini_xception", "resnet50", "efcnet"} <= names["backbones"]
    for rows in d.values():
        for r in rows:
            assert r["description"] and isinstance(r["params"], dict)
    mx = next(r for r in d["backbones"] if r["name"] == "mini_xception")
    assert abs(mx["num_parameters"] - 56951) < 100
    mir = next(r for r in d["enhancers"] if r["name"] == "mirnet")
    assert abs(mir["num_parameters"] - 31_787_436) < 1000


def test_prepare_degrade_enhance_by_hand(tmp_path, capsys):
    params = tmp_path / "p.yaml"
    params.write_text("dataset: {options: {num_images: 70, num_subjects: 14}}\ndegrade: {lowres: {sizes: [10]}}\n")
    assert main(["prepare", "--params", str(params), "--out", str(tmp_path / "prep")]) == 0
    assert main(["degrade", "--params", str(params), "--prepared", str(tmp_path / "prep"), "--out", str(tmp_path / "deg")]) == 0
    assert main(["enhance", "he", "--params", str(params), "--degraded", str(tmp_path / "deg"), "--out", str(tmp_path / "he")]) == 0
    ds = read_dataset(tmp_path / "he" / "dark_pil")
    clean = read_dataset(tmp_path / "prep")
    assert ds.ids == clean.ids and ds.images.shape == clean.images.shape
    assert read_dataset(tmp_path / "deg" / "lowres_10").images.shape[1:] == (10, 10)


def test_missing_dataset_path(tmp_path, capsys):
    assert main(["prepare", "--dataset", "fer2013", "--source", str(tmp_path / "nope.zip"), "--out", str(tmp_path / "o")]) == 2
    assert "nope.zip" in _err(capsys)
    assert not (tmp_path / "o").exists()


def test_malformed_params(tmp_path, capsys):
    p = tmp_path / "params.yaml"
    p.write_text("seed: 0\nfer: {train: {epochs: [}\n")
    assert main(["check", "--params", str(p)]) == 2
    assert "malformed YAML" in _err(capsys)
    p.write_text("seed: 0\nfer:\n  trian: {}\n")
    assert main(["check", "--params", str(p)]) == 2
    assert "fer.trian: unknown key" in _err(capsys)


def test_unknown_enhancer(tmp_path, capsys):
    p = tmp_path / "params.yaml"
    p.write_text("enhancer: brightest\n")
    assert main(["check", "--params", str(p)]) == 2
    line = _err(capsys)
    assert "enhancer: unknown enhancer 'brightest'" in line and "allowed:" in line
    assert main(["enhance", "nosuch", "--degraded", str(tmp_path / "deg"), "--out", str(tmp_path / "o")]) == 2
    assert "nosuch" in _err(capsys)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_output_dir_nonroot(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        assert main(["prepare", "--out", str(ro / "sub" / "prep")]) == 2
        assert "ro" in _err(capsys)
    finally:
        ro.chmod(0o700)


def test_unwritable_output_dir(tmp_path, capsys):
    # A regular file where a parent directory should be: unwritable for root too.
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    p = tmp_path / "p.yaml"
    p.write_text("dataset: {options: {num_images: 14, num_subjects: 7}}\n")
    assert main(["prepare", "--params", str(p), "--out", str(blocker / "prep")]) == 2
    assert "blocker" in _err(capsys)
    assert blocker.read_text() == "x"


def test_interrupted_write_leaves_nothing(tmp_path, monkeypatch):
    """A stage killed while writing leaves neither a partial output nor temporaries."""
    import llfer.data.store as store

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(store.np, "save", boom)
    p = tmp_path / "p.yaml"
    p.write_text("dataset: {options: {num_images: 14, num_subjects: 7}}\n")
    assert main(["prepare", "--params", str(p), "--out", str(tmp_path / "prep")]) == 130
    assert list(tmp_path.iterdir()) == [p]


def test_prepare_other_dataset_ignores_synthetic_options(tmp_path, capsys):
    """`llfer prepare --dataset X` with the repo's params (synthetic options) uses X's defaults."""
    from PIL import Image

    for split in ("train", "val", "test"):
        for c in ("angry", "happy"):
            d = tmp_path / "faces" / split / c
            d.mkdir(parents=True)
            for i in range(3):
                Image.fromarray(np.full((8, 8), 40 * i + (c == "happy") * 100, np.uint8)).save(d / f"{split}_{c}_{i}.png")
    assert main(["prepare", "--params", str(REPO / "params.yaml"), "--dataset", "folder",
                 "--source", str(tmp_path / "faces"), "--out", str(tmp_path / "prep")]) == 0
    assert read_dataset(tmp_path / "prep").classes == ["angry", "happy"]


@pytest.mark.parametrize("steps", [2, 0])
def test_train_enhancer_uses_lol_pairs(tmp_path, capsys, steps):
    """A prepared LOL set trains the enhancer on its own low/normal-light pairs (``steps: 0`` saves the initial
    model and says that no step ran)."""
    from llfer.data.store import Prepared
    from conftest import make_index

    rng = np.random.default_rng(0)
    high = rng.integers(60, 255, (8, 16, 16, 3), dtype=np.uint8)
    idx = make_index(8, ["none"], splits=("train",))
    Prepared(images=high, index=idx, classes=["none"], extras={"low": (high // 8).astype(np.uint8)}).write(tmp_path / "lol")
    p = tmp_path / "p.yaml"
    # a learned entry states all its values (no code defaults)
    p.write_text("learned: {zerodce: {model: {}, init: null, train: {steps: %d, batch_size: 2, patch: 8, "
                 "optimizer: adam, lr: 0.0001, weight_decay: 0.0, schedule: cosine, warmup_steps: 0, grad_clip: 0.0, "
                 "eval_every: 0, patience: 0, max_pairs: null, max_val: null}}}\nenhancer: zerodce\n" % steps)
    assert main(["train-enhancer", "zerodce", "--params", str(p), "--prepared", str(tmp_path / "lol"),
                 "--degraded", str(tmp_path / "none"), "--out", str(tmp_path / "m")]) == 0
    summary = json.loads((tmp_path / "m" / "summary.json").read_text())
    assert summary["pairs"] == 8 and (tmp_path / "m" / "model.safetensors").exists()
    assert summary["steps_run"] == steps
    assert ("no step run" in capsys.readouterr().out) == (steps == 0)


def test_closed_stdout_pipe_exits_quietly():
    """`llfer list | head -1`: a reader that goes away is not an error (no message, no traceback)."""
    import subprocess
    import sys

    p = subprocess.Popen([sys.executable, "-m", "llfer.cli", "list"], cwd=REPO,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdout.close()  # before the child writes anything: its first write gets EPIPE
    err = p.stderr.read().decode()
    assert p.wait(timeout=120) == 141
    assert "error" not in err and "Traceback" not in err and "Exception ignored" not in err


def test_outside_the_repository_the_packaged_params_are_used(tmp_path, monkeypatch, capsys):
    """Without ./params.yaml and --params, the CLI uses the defaults shipped in the package and says which file."""
    from llfer.config import DEFAULT_PARAMS

    monkeypatch.chdir(tmp_path)
    assert main(["check"]) == 0
    assert capsys.readouterr().out.startswith(f"{DEFAULT_PARAMS}: OK")
    (tmp_path / "params.yaml").write_text("seed: 3\n")
    assert main(["check"]) == 0
    assert capsys.readouterr().out.startswith("params.yaml: OK")
