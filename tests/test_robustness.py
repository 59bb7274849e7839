"""Robustness curves (stage robustness) and Grad-CAM / filters / feature maps (stage explain)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from llfer.build import backbone_options
from llfer.checkpoint import save_classifier
from llfer.config import from_dict
from llfer.data.store import read_dataset, write_dataset
from llfer.degrade import dark_pil
from llfer.errors import DataError
from llfer.inputs import Roots
from llfer.models import mini_xception  # noqa: F401  (registers the backbones)
from llfer.pipeline.explain import conv_layers, gradcam, pick_faces, run_explain
from llfer.pipeline.robustness import degrade_level, run_robustness, run_transform
from llfer.registry import BACKBONES

P = {"fer": {"inputs": ["clean", "he"], "enhanced_inputs": [], "runs": ["mini_xception-lowres_12"], "eval_on": ["clean"]},
     "degrade": {"lowres": {"sizes": [12]}}, "classical": {"identity": {}, "he": {}, "gain": {}}, "learned": {},
     "enhancer": "he", "cv": {"runs": [], "enhanced_runs": []}, "joint": {"enhancers": []},
     "robustness": {"enhancers": ["identity", "gain"], "brightness": [1.0, 0.1], "gamma": [2.0, 5.0],
                    "resolution": [16, 4], "max_images": 12},
     "explain": {"faces": 3, "filters": 4}}


def _params(**over):
    return from_dict({**P, **over})


def test_levels_darken_and_downscale_as_declared():
    p = _params()
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (5, 16, 16), dtype=np.uint8)
    ids = [f"i{k}" for k in range(5)]
    assert np.array_equal(degrade_level(p, "brightness", 1.0, x, ids), x)
    assert np.array_equal(degrade_level(p, "brightness", 0.1, x, ids), dark_pil(x, factor=0.1))
    g2, g5 = degrade_level(p, "gamma", 2.0, x, ids), degrade_level(p, "gamma", 5.0, x, ids)
    assert g5.astype(int).sum() < g2.astype(int).sum() < x.astype(int).sum()          # darker with gamma
    r = degrade_level(p, "resolution", 4, x, ids)
    assert r.shape == x.shape and np.abs(np.diff(r.astype(int), axis=2)).mean() < np.abs(np.diff(x.astype(int), axis=2)).mean()
    assert np.array_equal(degrade_level(p, "resolution", 16, x, ids), x)


def test_a_run_keeps_its_own_resolution_and_preprocessors_only():
    p = _params()
    steps, preps = run_transform(p, "lowres_12+he")
    assert [s.type for s in steps] == ["lowres"] and steps[0].params["size"] == 12 and preps == ["he"]
    assert run_transform(p, "dark_pil") == ([], [])            # the curve's darkening replaces the run's
    assert run_transform(p, "salt_pepper") == ([], ["salt_pepper"])


def _classifiers(p, prepared: Path, root: Path) -> None:
    classes = read_dataset(prepared).classes
    for run, test_spec in (("mini_xception-clean", "clean"), ("mini_xception-he", "he"),
                           ("mini_xception-lowres_12", "lowres_12")):
        torch.manual_seed(0)
        opts = {**backbone_options(p, "mini_xception"), "num_classes": len(classes), "in_channels": 1}
        model = BACKBONES.build("mini_xception", **opts)
        save_classifier(root / run / "model.safetensors", model,
                        {"backbone": "mini_xception", "options": opts, "train_spec": test_spec, "test_spec": test_spec,
                         "classes": classes})


def test_robustness_scores_every_run_enhancer_and_level(tiny_prepared: Path, tmp_path: Path):
    p = _params()
    models = tmp_path / "models"
    _classifiers(p, tiny_prepared, models)
    out = run_robustness(p, models, tiny_prepared, tmp_path / "no-learned", tmp_path / "r.json", tmp_path / "plots")
    assert set(out) == {"mini_xception-clean", "mini_xception-he", "mini_xception-lowres_12"}
    for run in out.values():
        assert set(run) == {"brightness", "gamma", "resolution"}
        assert set(run["brightness"]) == {"identity", "gain"} and set(run["gamma"]["gain"]) == {"2", "5"}
        assert all(0 <= a <= 1 for c in run.values() for e in c.values() for a in e.values())
    csv = pd.read_csv(tmp_path / "plots" / "resolution" / "mini_xception-he.csv")
    assert list(csv.columns) == ["enhancer", "resolution", "accuracy"] and len(csv) == 4
    assert (tmp_path / "plots" / "png" / "mini_xception-clean.png").stat().st_size > 1000
    (models / "mini_xception-he" / "model.safetensors").unlink()
    with pytest.raises(DataError, match=r"mini_xception-he/model.safetensors: missing"):
        run_robustness(p, models, tiny_prepared, tmp_path / "x", tmp_path / "r2.json", tmp_path / "plots2")


def test_pick_faces_one_per_class_first():
    labels = np.array([2, 2, 0, 1, 0, 1, 2])
    assert pick_faces(labels, 4).tolist() == [2, 3, 0, 4]


@pytest.mark.parametrize("backbone, size", [("mini_xception", 48), ("efcnet", 10)])
def test_gradcam_layer_and_maps(backbone: str, size: int):
    torch.manual_seed(0)
    model = BACKBONES.build(backbone, num_classes=4, in_channels=1, input_size=size).eval()
    first, last = conv_layers(model, size, 1)
    assert isinstance(first, torch.nn.Conv2d) and last.out_channels != 4     # not a convolution to the class scores
    x = torch.rand(3, 1, size, size)
    cam = gradcam(model, last, x, torch.tensor([0, 1, 2]))
    assert cam.shape == (3, size, size) and cam.min() >= 0 and cam.max() <= 1 + 1e-6


def test_explain_draws_every_run(tiny_prepared: Path, tmp_path: Path):
    p = _params(enhancer="gain", fer={**P["fer"], "enhanced_variant": "dark_pil"})
    ds = read_dataset(tiny_prepared)
    images = np.asarray(ds.images)
    write_dataset(tmp_path / "deg" / "dark_pil", dark_pil(images, factor=0.1), ds.index, classes=ds.classes)
    write_dataset(tmp_path / "enh" / "dark_pil", np.clip(dark_pil(images, factor=0.1).astype(int) * 9, 0, 255)
                  .astype(np.uint8), ds.index, classes=ds.classes)
    _classifiers(p, tiny_prepared, tmp_path / "models")
    roots = Roots(prepared=tiny_prepared, degraded=tmp_path / "deg", enhanced=tmp_path / "enh")
    out = run_explain(p, tmp_path / "models", roots, tmp_path / "plots")
    assert set(out) == {"mini_xception-clean", "mini_xception-he", "mini_xception-lowres_12"}
    assert out["mini_xception-clean"]["faces"] == 3
    for run in out:
        for f in ("gradcam.png", "filters.png", "feature_maps.png"):
            assert (tmp_path / "plots" / run / f).stat().st_size > 1000, (run, f)
