"""k-fold cross-validation: subject-independent folds, the papers' stratified protocol, test folds with the
test-time transform only, errors naming the class, and the aggregation (mean ± std, summed confusion)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from llfer.config import from_dict
from llfer.errors import ConfigError, DataError
from llfer.inputs import Roots, make_loader
from llfer.pipeline.cv import fold_file, run_cv
from llfer.pipeline.cv_fold import plan_folds, pooled_index, run_cv_fold


def _params(**cv):
    return from_dict({"cv": {"runs": ["mini_xception-clean"], "folds": [0, 1, 2], "epochs": 1, "max_images": None, **cv},
                      "fer": {"train": {"epochs": 1, "batch_size": 16, "bn_recalibrate": 0}}})


def _labels_subjects(n=120, subjects=12, classes=3):
    k = np.arange(n)
    return k % classes, np.array([f"s{i % subjects}" for i in k])


def test_subject_protocol_keeps_subjects_apart_and_stratified_leaks():
    labels, subjects = _labels_subjects()
    classes = ["a", "b", "c"]
    subj = plan_folds(_params(protocol="subject"), labels, subjects, classes)
    strat = plan_folds(_params(protocol="stratified"), labels, subjects, classes)
    assert subj.protocol == "subject" and strat.protocol == "stratified"
    for plan, leak in ((subj, False), (strat, True)):
        assert len(plan.folds) == 3
        tested = np.concatenate([te for _, te in plan.folds])
        assert sorted(tested) == list(range(len(labels)))            # every image tested exactly once
        shared = [set(plan.subjects[tr]) & set(plan.subjects[te]) for tr, te in plan.folds]
        assert any(shared) == leak, shared
    # deterministic: every fold stage computes the same assignment
    again = plan_folds(_params(protocol="subject"), labels, subjects, classes)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(subj.folds, again.folds))


def test_auto_falls_back_to_stratified_without_subject_ids_and_logs_it(caplog):
    labels, subjects = _labels_subjects()
    subjects[5] = ""
    with caplog.at_level(logging.WARNING, logger="llfer"):
        plan = plan_folds(_params(protocol="auto"), labels, subjects, ["a", "b", "c"])
    assert plan.protocol == "stratified" and "1 of 120 images have no subject id" in plan.note
    assert "no subject id" in caplog.text
    with pytest.raises(DataError, match="cv.protocol: subject: 1 of 120 images have no subject id"):
        plan_folds(_params(protocol="subject"), labels, subjects, ["a", "b", "c"])


def test_a_class_with_fewer_images_than_folds_is_named():
    labels, subjects = _labels_subjects(n=30)
    labels[labels == 2] = 0
    labels[:2] = 2                                    # class 'c': 2 images, 3 folds
    with pytest.raises(DataError, match="class 'c' has 2 image"):
        plan_folds(_params(), labels, subjects, ["a", "b", "c"])
    labels, subjects = _labels_subjects(n=30, subjects=2)
    with pytest.raises(DataError, match="2 subjects are fewer than cv.folds"):
        plan_folds(_params(protocol="subject"), labels, subjects, ["a", "b", "c"])


def test_max_images_is_a_fixed_stratified_subset():
    labels, subjects = _labels_subjects(n=300)
    plan = plan_folds(_params(max_images=60), labels, subjects, ["a", "b", "c"])
    assert len(plan.rows) == 60 and np.bincount(plan.labels).tolist() == [20, 20, 20]


@pytest.mark.parametrize("bad, message", [
    ({"folds": [0]}, "cv.folds"), ({"folds": [1, 2]}, "cv.folds"), ({"folds": 3}, "cv.folds"),
    ({"runs": ["mini_xception"]}, "not <backbone>-<input>"), ({"runs": ["nonet-clean"]}, "nonet"),
    ({"runs": ["mini_xception-enhanced"]}, "list it under cv.enhanced_runs"),
    ({"enhanced_runs": ["mini_xception-clean"]}, "reads no enhanced data"),
    ({"backbone": "mini_xception"}, "it moved to cv.runs"),
])
def test_bad_cv_params_name_the_key(bad, message):
    with pytest.raises(ConfigError, match=message):
        from_dict({"cv": bad})


def test_salt_pepper_never_touches_a_test_fold(tiny_prepared: Path, tmp_path: Path, monkeypatch):
    """The train spec for the training folds, only the test-time transform for the test fold."""
    import llfer.pipeline.cv_fold as cvf

    p = from_dict({"cv": {"runs": ["mini_xception-salt_pepper"], "folds": [0, 1, 2], "epochs": 1, "max_images": None},
                   "fer": {"preprocess": {"salt_pepper": {"rate": 0.2}},
                           "train": {"epochs": 1, "batch_size": 16, "bn_recalibrate": 0}}})
    seen = {}

    def fake_predict(model, x, size, device, bs, tta_flip=False, tta_shift=0.0):
        seen["test"] = np.asarray(x)
        return np.zeros((len(x), 3), np.float32)

    def fake_train(model, train, val, cfg, **kw):
        seen["train"] = np.asarray(train[0])
        from llfer.train.fer import TrainResult
        return TrainResult(model=model)

    monkeypatch.setattr(cvf, "predict", fake_predict)
    monkeypatch.setattr(cvf, "train_classifier", fake_train)
    roots = Roots(prepared=tiny_prepared, degraded=tmp_path / "none")
    out = run_cv_fold(p, "mini_xception-salt_pepper", 1, roots, tmp_path / "f.json", progress=False)
    extremes = lambda x: float(np.isin(x, (0, 255)).mean())  # noqa: E731
    assert extremes(seen["train"]) > 0.1 and extremes(seen["test"]) == 0.0   # the fixture's faces have no 0 / 255
    assert out["test_images"] == len(seen["test"]) and out["protocol"] == "subject" and out["subjects_shared"] == 0


def test_folds_train_score_and_aggregate(tiny_prepared: Path, tmp_path: Path):
    p = _params()
    roots = Roots(prepared=tiny_prepared, degraded=tmp_path / "none")
    loader = make_loader(p, roots)
    present, labels, subjects = pooled_index(loader)
    assert present == ["train", "val", "test"] and len(labels) == 60
    root = tmp_path / "folds"
    res = [run_cv_fold(p, "mini_xception-clean", f, roots, fold_file(root, "mini_xception-clean", f), progress=False)
           for f in p.cv.folds]
    assert sum(r["test_images"] for r in res) == 60 and all(r["subjects_shared"] == 0 for r in res)
    out = run_cv(p, root, tmp_path / "cv.json", tmp_path / "plots")["mini_xception-clean"]
    accs = [r["accuracy"] for r in res]
    assert out["accuracy_mean"] == pytest.approx(np.mean(accs), abs=1e-4)
    assert out["accuracy_std"] == pytest.approx(np.std(accs, ddof=1), abs=1e-4)
    assert out["folds"] == 3 and out["images"] == 60 and out["protocol"] == "subject"
    rows = json.loads((tmp_path / "plots" / "mini_xception-clean" / "confusion.json").read_text())
    assert len(rows) == 60 and set(rows[0]) == {"actual", "predicted"}          # summed over the folds
    assert (tmp_path / "plots" / "mini_xception-clean" / "confusion.png").stat().st_size > 1000
    # a missing or foreign fold file is named
    f1 = fold_file(root, "mini_xception-clean", 1)
    f1.write_text(json.dumps({**json.loads(f1.read_text()), "fold": 2}))
    with pytest.raises(DataError, match="fold_1.json: not the result of fold 1"):
        run_cv(p, root, tmp_path / "cv2.json", tmp_path / "plots2")
    f1.unlink()
    with pytest.raises(DataError, match=r"fold_1.json: missing; .* cv_fold@mini_xception-clean-1"):
        run_cv(p, root, tmp_path / "cv2.json", tmp_path / "plots2")
    with pytest.raises(ConfigError, match="fold 5 is not in cv.folds"):
        run_cv_fold(p, "mini_xception-clean", 5, roots, tmp_path / "x.json", progress=False)
