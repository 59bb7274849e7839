"""Stage joint ([ll-fer] joint training, llfer.pipeline.joint) on a tiny prepared set: its outputs, the scheme
table's numbers against the runs that make them, the frozen classifier, the falling L_joint, bad params."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from llfer.build import backbone_options
from llfer.checkpoint import load_classifier, save_classifier
from llfer.config import from_dict
from llfer.data.store import read_dataset, write_dataset
from llfer.degrade import dark_gamma
from llfer.errors import ConfigError, DataError
from llfer.metrics.classification import classification_metrics
from llfer.metrics.quality import psnr
from llfer.paper_tables import Runs, joint_markdown, paper_tables
from llfer.pipeline.joint import run_joint
from llfer.registry import BACKBONES, ENHANCERS, import_all
from llfer.train.fer import predict

torch.set_num_threads(1)
import_all()

ZERODCE = {"n_feat": 4, "n_iter": 2}
P = {"fer": {"backbones": ["mini_xception"], "inputs": ["clean"], "enhanced_inputs": [], "runs": [], "eval_on": [],
             "models": {"mini_xception": {"input_size": 16}}},
     "degrade": {"lowres": None, "combos": {}, "noise": None},
     "classical": {"identity": {}, "he": {}, "gain": {}},
     "learned": {"zerodce": {"model": ZERODCE, "init": None,
                             "train": {"steps": 1, "batch_size": 4, "patch": 0, "optimizer": "adam", "lr": 0.001,
                                       "weight_decay": 0.0, "schedule": "none", "warmup_steps": 0, "grad_clip": 0.0,
                                       "eval_every": 0, "patience": 0, "max_pairs": None, "max_val": None}}},
     "enhancer": "he", "cv": {"runs": [], "enhanced_runs": []},
     "robustness": {"enhancers": ["identity"]},
     "joint": {"enhancers": ["zerodce"], "backbones": ["mini_xception"], "variant": "dark_gamma",
               "classical": ["he", "gain"],
               "train": {"steps": 8, "batch_size": 20, "optimizer": "adam", "lr": 0.003, "weight_decay": 0.0,
                         "schedule": "none", "warmup_steps": 0, "grad_clip": 0.0, "eval_every": 4, "patience": 0,
                         "max_train": None, "max_val": None}}}


def _params(**over):
    return from_dict({**P, **{k: ({**P[k], **v} if isinstance(v, dict) and k in P else v) for k, v in over.items()}})


@pytest.fixture
def setup(tiny_prepared: Path, tmp_path: Path):
    """Params, the dark_gamma variant of the tiny set, a clean classifier and a zerodce checkpoint."""
    p = _params()
    ds = read_dataset(tiny_prepared)
    images = np.asarray(ds.images)
    write_dataset(tmp_path / "deg" / "dark_gamma", dark_gamma(images, ids=ds.ids, seed=0), ds.index, classes=ds.classes)
    opts = {**backbone_options(p, "mini_xception"), "num_classes": len(ds.classes), "in_channels": 1}
    torch.manual_seed(0)
    model = BACKBONES.build("mini_xception", **opts)
    save_classifier(tmp_path / "fer" / "model.safetensors", model,
                    {"backbone": "mini_xception", "options": opts, "train_spec": "clean", "test_spec": "clean",
                     "classes": ds.classes})
    torch.manual_seed(1)
    enh = ENHANCERS.build("zerodce", **ZERODCE)
    (tmp_path / "enh").mkdir()
    enh.save(tmp_path / "enh" / "model.safetensors")
    return p, tiny_prepared, tmp_path


def _run(p, prepared, root, name="out"):
    return run_joint(p, "zerodce", "mini_xception", prepared, root / "deg", root / "fer", root / "enh",
                     root / name, root / f"{name}.json", root / f"{name}_plots", progress=False)


def _acc(model, images, labels):
    return round(float((predict(model, images, 16).argmax(1) == labels).mean()), 4)


def test_the_scheme_table_comes_from_the_right_runs(setup):
    p, prepared, root = setup
    fer_before = load_file(str(root / "fer" / "model.safetensors"))
    m = _run(p, prepared, root)
    assert json.loads((root / "out.json").read_text()) == m
    assert all(isinstance(v, (int, float)) for v in m.values())  # flat numbers (dvc metrics)
    ds, dark = read_dataset(prepared), read_dataset(root / "deg" / "dark_gamma")
    te = ds.split_indices("test")
    clean, low, y = np.asarray(ds.images[te]), np.asarray(dark.images[te]), ds.labels[te]
    clf, _ = load_classifier(root / "fer" / "model.safetensors")
    ifer = ENHANCERS.get("zerodce").load(root / "enh" / "model.safetensors")
    joint = ENHANCERS.get("zerodce").load(root / "out" / "model.safetensors")  # an ordinary enhancer checkpoint
    he, gain = ENHANCERS.build("he"), ENHANCERS.build("gain")
    assert m["acc_clean"] == _acc(clf, clean, y)
    assert m["acc_baseline"] == _acc(clf, low, y)
    assert m["acc_he"] == _acc(clf, he.enhance(low), y) and m["acc_gain"] == _acc(clf, gain.enhance(low), y)
    assert m["acc_ifer"] == _acc(clf, ifer.enhance(low), y)
    assert m["acc_joint"] == _acc(clf, joint.enhance(low), y)
    assert m["psnr_ifer"] == pytest.approx(float(np.mean(psnr(ifer.enhance(low), clean))), abs=1e-4)
    assert m["psnr_joint"] == pytest.approx(float(np.mean(psnr(joint.enhance(low), clean))), abs=1e-4)
    per = classification_metrics(y, predict(clf, joint.enhance(low), 16).argmax(1), ds.classes)["per_class"]
    assert [m[f"class_acc_joint_{c}"] for c in ds.classes] == [round(per[c]["recall"], 4) for c in ds.classes]
    assert m["test_images"] == len(te) and m["steps_run"] == 8
    assert not any(ifer.model.state_dict()[k].equal(v) for k, v in joint.model.state_dict().items()
                   if v.dtype.is_floating_point and v.numel() > 1)  # the enhancer did train
    # the classifier is never written, and scoring it after training gives what it gave before: frozen
    assert all(fer_before[k].equal(v) for k, v in load_file(str(root / "fer" / "model.safetensors")).items())
    assert not (root / "out" / "finetuned").exists()
    for f in ("history.csv", "per_class.csv", "confusion.json", "confusion.png", "curves.png", "schemes.png"):
        assert (root / "out_plots" / f).stat().st_size > 0, f
    # the report's tables read these numbers
    md = joint_markdown(p, {"zerodce-mini_xception": m})
    assert f"| baseline: low-light faces straight in | {100 * m['acc_baseline']:.1f} |" in md
    assert "Per-class accuracy" in md and f"{m['psnr_joint']:.2f}" in md
    papers = paper_tables(p, Runs(fer={}, tte={}, quality={}, cv={}, joint={"zerodce-mini_xception": m}))
    row = next(r for r in papers.splitlines() if r.startswith("| mini_xception joint |"))
    assert f"| {100 * m['acc_joint']:.1f} | joint@zerodce-mini_xception |" in row


def test_joint_training_lowers_l_joint_and_keeps_the_classifier_frozen(setup):
    p, prepared, root = setup
    m = _run(p, prepared, root)
    hist = (root / "out_plots" / "history.csv").read_text().splitlines()
    cols = hist[0].split(",")
    assert {"train_loss", "res", "ferp", "cls", "label", "val_acc"} <= set(cols)
    assert m["loss_last"] < m["loss_first"], m  # L_joint falls
    # frozen: the classifier that scores the schemes after training scores clean faces as it did before
    ds = read_dataset(prepared)
    te = ds.split_indices("test")
    clf, _ = load_classifier(root / "fer" / "model.safetensors")
    assert m["acc_clean"] == _acc(clf, np.asarray(ds.images[te]), ds.labels[te])
    # the second phase unfreezes it: a new classifier beside its enhancer, the original left as it was
    p2 = _params(joint={**P["joint"], "finetune": {"steps": 2, "lr": 0.01}})
    m2 = _run(p2, prepared, root, "ft")
    ft, cfg = load_classifier(root / "ft" / "finetuned" / "classifier" / "model.safetensors")
    assert cfg["joint"] == "zerodce-mini_xception" and "acc_joint_finetuned" in m2
    assert not all(a.equal(b) for a, b in zip(ft.state_dict().values(), clf.state_dict().values()))
    ENHANCERS.get("zerodce").load(root / "ft" / "finetuned" / "enhancer" / "model.safetensors")
    assert m2["acc_joint"] == m["acc_joint"]  # the first phase is the same run


@pytest.mark.parametrize("over, message", [
    ({"joint": {**P["joint"], "enhancers": ["he"]}}, "joint.enhancers: 'he' is not a learned enhancer"),
    ({"joint": {**P["joint"], "backbones": ["resnet18"]}}, "joint.backbones: 'resnet18' needs the classifier of resnet18-clean"),
    ({"joint": {**P["joint"], "backbones": ["nonet"]}}, "joint.backbones"),
    ({"joint": {**P["joint"], "variant": "dark_moon"}}, "joint.variant: unknown variant 'dark_moon'"),
    ({"joint": {**P["joint"], "classical": ["clahe"]}}, "joint.classical: 'clahe' is not a classical enhancer"),
    ({"joint": {**P["joint"], "weights": {"res": 0, "ferp": 0, "cls": 0, "label": 0}}}, "joint.weights: every weight"),
    ({"joint": {**P["joint"], "weights": {"res": -1, "ferp": 1, "cls": 1, "label": 1}}}, "joint.weights.res"),
    ({"joint": {**P["joint"], "train": {**P["joint"]["train"], "lr": 0}}}, "joint.train.lr"),
    ({"joint": {**P["joint"], "finetune": {"steps": -1, "lr": 0.1}}}, "joint.finetune.steps"),
])
def test_bad_params_are_named_in_one_line(over, message):
    with pytest.raises(ConfigError, match=message) as e:
        _params(**over)
    assert "\n" not in str(e.value)


def test_no_pairs_no_joint_checks():
    p = _params(learned={}, joint={**P["joint"], "enhancers": [], "variant": "dark_moon"})
    assert p.joint_pairs() == []


def test_bad_inputs_are_named(setup):
    p, prepared, root = setup
    with pytest.raises(ConfigError, match="'zerodce-resnet18' is not a pair of joint.enhancers x joint.backbones"):
        run_joint(p, "zerodce", "resnet18", prepared, root / "deg", root / "fer", root / "enh", root / "o",
                  root / "o.json", root / "op", progress=False)
    with pytest.raises(DataError, match="nofer/model.safetensors does not exist"):
        run_joint(p, "zerodce", "mini_xception", prepared, root / "deg", root / "nofer", root / "enh", root / "o",
                  root / "o.json", root / "op", progress=False)
    assert not (root / "o").exists() and not (root / "o.json").exists()


def test_the_command_says_what_is_wrong_in_one_line(setup, capsys):
    import yaml

    from llfer.cli import main

    _, prepared, root = setup
    (root / "params.yaml").write_text(yaml.safe_dump(P))
    args = ["joint", "zerodce", "mini_xception", "--params", str(root / "params.yaml"), "--prepared", str(prepared),
            "--degraded", str(root / "deg"), "--fer-model", str(root / "enh"), "--enhancer-model", str(root / "enh"),
            "--out", str(root / "o"), "--metrics", str(root / "o.json"), "--plots", str(root / "op"), "--no-progress"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("llfer: error: ") and "enh/model.safetensors" in err[-1], err
    assert not (root / "o").exists()
