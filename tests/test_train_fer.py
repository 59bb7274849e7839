import numpy as np
import torch

from llfer.config import AugmentCfg, FerTrainCfg
from llfer.metrics.classification import classification_metrics, confusion_rows
from llfer.train.fer import augment_batch, class_weights, engine_cfg, is_channels_last, predict, train_classifier


def _toy(n=96, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    x = np.clip(np.array([50, 128, 210])[y][:, None, None] + rng.normal(0, 12, (n, 12, 12)), 0, 255).astype(np.uint8)
    return x, y


def _net():
    return torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                               torch.nn.Flatten(), torch.nn.Linear(8, 3))


def test_training_learns_and_is_deterministic(tmp_path):
    x, y = _toy()
    cfg = FerTrainCfg(epochs=15, batch_size=16, lr=0.03, augment=AugmentCfg(flip=True, rotation=5, shift=0.05, zoom=0.05))
    torch.manual_seed(0)
    r1 = train_classifier(_net(), (x, y), (x[:30], y[:30]), cfg, num_classes=3, input_size=12, seed=1, progress=False)
    assert r1.history[-1]["train_loss"] < r1.history[0]["train_loss"]
    assert r1.best_score > 0.8
    torch.manual_seed(0)
    r2 = train_classifier(_net(), (x, y), (x[:30], y[:30]), cfg, num_classes=3, input_size=12, seed=1, progress=False)
    assert [h["train_loss"] for h in r1.history] == [h["train_loss"] for h in r2.history]
    logits = predict(r1.model, x, 12)
    assert logits.shape == (len(x), 3)


def _resumed_and_straight(cfg, ck):
    """Losses of a run stopped after 2 epochs and resumed from ``ck``, and of the same run straight through."""
    x, y = _toy()
    torch.manual_seed(0)
    ref = train_classifier(_net(), (x, y), (x, y), cfg, num_classes=3, input_size=12, seed=2, progress=False)
    torch.manual_seed(0)
    try:
        train_classifier(_net(), (x, y), (x, y), cfg, num_classes=3, input_size=12, seed=2, checkpoint=ck,
                         progress=False, on_epoch=lambda r: _stop_after(r, 2))
    except _Stop:
        pass
    assert ck.exists()
    res = train_classifier(_net(), (x, y), (x, y), cfg, num_classes=3, input_size=12, seed=2, checkpoint=ck,
                           resume=True, progress=False)
    return [h["train_loss"] for h in res.history], [h["train_loss"] for h in ref.history]


def test_resume_continues_from_checkpoint(tmp_path):
    """Interrupting after 2 of 4 epochs and resuming gives the same run as training straight through."""
    resumed, straight = _resumed_and_straight(FerTrainCfg(epochs=4, batch_size=16, lr=0.05), tmp_path / "last.pt")
    assert len(resumed) == 4
    np.testing.assert_allclose(resumed, straight, rtol=1e-5)


class _Stop(Exception):
    pass


def _stop_after(row, n):
    if row["epoch"] >= n:
        raise _Stop


def test_augment_identity_when_off_and_shape_kept():
    x = torch.rand(5, 1, 10, 10)
    g = torch.Generator().manual_seed(0)
    assert torch.equal(augment_batch(x, AugmentCfg(flip=False, rotation=0, shift=0, zoom=0), g), x)
    y = augment_batch(x, AugmentCfg(), g)
    assert y.shape == x.shape and not torch.equal(x, y)


def test_epochs_become_engine_steps_and_weights():
    """fer.train counts epochs; the engine counts steps (warm-up, step size, validation, logging)."""
    e = engine_cfg(FerTrainCfg(epochs=10, schedule="step", step_size=3, warmup_epochs=2, eval_every=2), 7, True)
    assert (e.steps, e.warmup_steps, e.step_size, e.eval_every, e.log_every) == (70, 14, 21, 14, 7)
    w = class_weights(np.array([0, 0, 0, 1]), 3)
    assert w[0] < w[1] and w[2] == 0


def test_classification_metrics():
    m = classification_metrics(np.array([0, 0, 1, 2]), np.array([0, 1, 1, 2]), ["a", "b", "c"])
    assert m["accuracy"] == 0.75
    assert m["per_class"]["b"]["precision"] == 0.5 and m["per_class"]["a"]["recall"] == 0.5
    assert m["confusion"] == [[1, 1, 0], [0, 1, 0], [0, 0, 1]]
    assert confusion_rows([0, 2], [1, 2], ["a", "b", "c"]) == [{"actual": "a", "predicted": "b"},
                                                               {"actual": "c", "predicted": "c"}]


def test_channels_last_option_and_predict_format():
    """channels_last (default on, CPU too) leaves the model NHWC and predict agrees with a contiguous copy."""

    def net2():  # a conv with >1 input channel, whose NCHW and NHWC layouts differ
        return torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 8, 3),
                                   torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 3))

    x, y = _toy()
    cfg = FerTrainCfg(epochs=2, batch_size=16, lr=0.03)
    torch.manual_seed(0)
    on = train_classifier(net2(), (x, y), None, cfg, num_classes=3, input_size=12, seed=1, progress=False)
    torch.manual_seed(0)
    off = train_classifier(net2(), (x, y), None, cfg, num_classes=3, input_size=12, seed=1, progress=False,
                           channels_last=False)
    assert is_channels_last(on.model) and not is_channels_last(off.model)
    # same arithmetic up to summation order
    np.testing.assert_allclose([h["train_loss"] for h in on.history], [h["train_loss"] for h in off.history], rtol=1e-3)
    ref = predict(on.model, x, 12)
    on.model.to(memory_format=torch.contiguous_format)
    np.testing.assert_allclose(predict(on.model, x, 12), ref, rtol=1e-4, atol=1e-5)
    assert not is_channels_last(on.model)  # predict leaves its argument's memory format alone


def test_a_loaded_classifier_is_channels_last_and_scores_as_saved(tmp_path):
    """load_classifier gives NHWC weights (the fast layout for predict on the CPU), with the saved logits."""
    from llfer.checkpoint import load_classifier, save_classifier
    from llfer.models.mini_xception import MiniXception

    x, _ = _toy()
    torch.manual_seed(0)
    net = MiniXception(num_classes=3, in_channels=1).eval()
    ref = predict(net, x, 48)
    assert not is_channels_last(net)
    save_classifier(tmp_path / "m.safetensors", net, {"backbone": "mini_xception", "options": {"num_classes": 3, "in_channels": 1}})
    loaded, _ = load_classifier(tmp_path / "m.safetensors")
    assert is_channels_last(loaded) and not loaded.training
    np.testing.assert_allclose(predict(loaded, x, 48), ref, rtol=1e-4, atol=1e-4)


def test_eval_every_scores_every_kth_and_last_epoch(tmp_path):
    x, y = _toy()
    cfg = FerTrainCfg(epochs=5, batch_size=16, lr=0.03, eval_every=2)
    torch.manual_seed(0)
    r = train_classifier(_net(), (x, y), (x[:30], y[:30]), cfg, num_classes=3, input_size=12, seed=1, progress=False)
    assert [("val_acc" in h) for h in r.history] == [False, True, False, True, True]
    assert r.best_epoch in (2, 4, 5)
    # the same run, interrupted after epoch 3 (not evaluated) and resumed, gives the same history
    ck = tmp_path / "last.pt"
    torch.manual_seed(0)
    try:
        train_classifier(_net(), (x, y), (x[:30], y[:30]), cfg, num_classes=3, input_size=12, seed=1, checkpoint=ck,
                         progress=False, on_epoch=lambda row: _stop_after(row, 3))
    except _Stop:
        pass
    res = train_classifier(_net(), (x, y), (x[:30], y[:30]), cfg, num_classes=3, input_size=12, seed=1,
                           checkpoint=ck, resume=True, progress=False)
    assert [sorted(h) for h in res.history] == [sorted(h) for h in r.history]
    np.testing.assert_allclose([h["train_loss"] for h in res.history], [h["train_loss"] for h in r.history], rtol=1e-5)
    assert res.best_epoch == r.best_epoch


def test_bn_recalibration_matches_exact_statistics():
    """recalibrate_bn sets running stats to the exact mean/var of the training batch features."""
    from llfer.train.fer import images_to_tensor, recalibrate_bn

    x, _ = _toy(64)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 3, 3, padding=1), torch.nn.BatchNorm2d(3, momentum=0.01))
    xt = images_to_tensor(x)
    recalibrate_bn(net, xt, 12, max_images=64, seed=0)
    with torch.no_grad():
        feats = net[0](xt.float() / 255)
    np.testing.assert_allclose(net[1].running_mean.numpy(), feats.mean((0, 2, 3)).numpy(), rtol=1e-4, atol=1e-5)
    assert net[1].momentum == 0.01 and not net.training
    frozen = torch.nn.Sequential(torch.nn.Conv2d(1, 3, 3), torch.nn.BatchNorm2d(3))
    frozen[1].eval()
    frozen.train = lambda mode=True: frozen  # a model that keeps its BN in eval mode
    before = frozen[1].running_mean.clone()
    recalibrate_bn(frozen, xt, 12, max_images=64, seed=0)
    assert torch.equal(frozen[1].running_mean, before)


class _LeftHalf(torch.nn.Module):
    """Logits that depend on the left half of the face only (so a mirror changes them)."""

    def forward(self, x):
        w = x.shape[-1] // 2
        left, right = x[..., :w].mean((1, 2, 3)), x[..., w:].mean((1, 2, 3))
        return torch.stack([left, right, left - right], 1) * 10


def test_tta_flip_averages_a_face_and_its_mirror():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (7, 12, 12), dtype=np.uint8)
    m = _LeftHalf()
    plain, mirrored = predict(m, x, 12), predict(m, np.ascontiguousarray(x[..., ::-1]), 12)
    assert np.abs(plain - mirrored).max() > 0.1  # the model is not symmetric
    tta = predict(m, x, 12, tta_flip=True, batch_size=3)  # batches of 3 + the odd last one
    np.testing.assert_allclose(tta, (plain + mirrored) / 2, atol=1e-5)
    np.testing.assert_allclose(predict(m, np.ascontiguousarray(x[..., ::-1]), 12, tta_flip=True), tta, atol=1e-5)


def test_tta_shift_averages_the_four_shifted_views():
    """shift_views moves a picture by whole pixels (0.25 of 4 px = 1 px) with the edge repeated, and
    predict(tta_shift) averages the face's, the mirror's and their shifts' logits (views 0, 1 face, mirror)."""
    import pytest

    from llfer.errors import LlferError
    from llfer.train.fer import predict_views, shift_views

    x = torch.arange(16.0).view(1, 1, 4, 4)
    v = shift_views(x, 0.25)
    assert v.shape == (5, 1, 4, 4)
    torch.testing.assert_close(v[0], x[0])
    torch.testing.assert_close(v[1, 0, :, 1:], x[0, 0, :, :3])  # right by one pixel
    torch.testing.assert_close(v[1, 0, :, 0], x[0, 0, :, 0])  # the left edge repeated
    torch.testing.assert_close(v[2, 0, :, :3], x[0, 0, :, 1:])  # left
    torch.testing.assert_close(v[3, 0, 1:], x[0, 0, :3])  # down
    torch.testing.assert_close(v[4, 0, :3], x[0, 0, 1:])  # up
    rng = np.random.default_rng(0)
    faces = rng.integers(0, 256, (7, 12, 12), dtype=np.uint8)
    m = _LeftHalf()
    views = predict_views(m, faces, 12, flip=True, shift=1 / 12, batch_size=3)
    assert views.shape == (10, 7, 3)
    np.testing.assert_allclose(views[:2], predict_views(m, faces, 12, flip=True), atol=1e-5)
    assert np.abs(views[2:] - views[:1]).max() > 1e-3  # the shifted views differ
    np.testing.assert_allclose(predict(m, faces, 12, tta_flip=True, tta_shift=1 / 12), views.mean(0), atol=1e-5)
    assert predict_views(m, faces, 12, shift=1 / 12).shape == (5, 7, 3)
    with pytest.raises(LlferError, match="fer.train.tta_shift"):
        predict_views(m, faces, 12, shift=0.6)


def _ambiguous(n=120, seed=0):
    """Faces of 2 brightness bands; band 0 faces are annotated 70 % class 0 / 30 % class 1."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    x = np.clip(np.array([70, 190])[y][:, None, None] + rng.normal(0, 8, (n, 12, 12)), 0, 255).astype(np.uint8)
    soft = np.where(y[:, None] == 0, [[0.7, 0.3]], [[0.0, 1.0]]).astype(np.float32)
    return x, y, soft


def _net2():
    return torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(1, 2))


def test_soft_labels_train_towards_the_vote_distribution():
    """With soft targets the model learns the annotators' 70/30 split of an ambiguous face; with the
    majority label it learns 100/0."""
    x, y, soft = _ambiguous()
    probs = {}
    for use_soft in (False, True):
        cfg = FerTrainCfg(epochs=60, batch_size=30, lr=0.1, augment=AugmentCfg(flip=False, rotation=0, shift=0, zoom=0),
                          soft_labels=use_soft, bn_recalibrate=0)
        torch.manual_seed(0)
        r = train_classifier(_net2(), (x, y), None, cfg, num_classes=2, input_size=12, seed=0, progress=False,
                             soft=soft if use_soft else None)
        probs[use_soft] = torch.softmax(torch.from_numpy(predict(r.model, x[y == 0], 12)), 1)[:, 1].mean().item()
        assert r.history[-1]["train_acc"] == 1.0  # both still put every face in its majority class
    assert probs[False] < 0.1
    assert 0.2 < probs[True] < 0.4


def test_soft_labels_errors_name_the_setting():
    import pytest

    from llfer.errors import LlferError

    x, y, soft = _ambiguous(20)
    cfg = FerTrainCfg(epochs=1, batch_size=10, soft_labels=True)
    with pytest.raises(LlferError, match="fer.train.soft_labels: no label distributions"):
        train_classifier(_net2(), (x, y), None, cfg, num_classes=2, input_size=12, progress=False)
    with pytest.raises(LlferError, match=r"shape \(20, 3\)"):
        train_classifier(_net2(), (x, y), None, cfg, num_classes=2, input_size=12, progress=False,
                         soft=np.full((20, 3), 1 / 3))
    with pytest.raises(LlferError, match="does not sum to 1"):
        train_classifier(_net2(), (x, y), None, cfg, num_classes=2, input_size=12, progress=False, soft=soft * 2)


def test_train_fer_stage_reports_the_flip_gain_and_names_missing_soft_labels(tiny_prepared, tmp_path):
    import json

    import pytest

    from llfer.config import from_dict
    from llfer.errors import ConfigError
    from llfer.inputs import Roots
    from llfer.pipeline.train_fer import run_train_fer

    roots = Roots(prepared=tiny_prepared, degraded=tmp_path / "none")
    train = {"epochs": 2, "batch_size": 16, "bn_recalibrate": 0}
    p = from_dict({"fer": {"eval_on": [], "train": {**train, "tta_flip": True}}})
    m = run_train_fer(p, "mini_xception", "clean", roots, tmp_path / "m", tmp_path / "m.json", tmp_path / "pl",
                      progress=False)
    assert 0 <= m["test_acc_single_view"] <= 1 and m["test_acc"] == json.loads((tmp_path / "m.json").read_text())["test_acc"]
    assert json.loads((tmp_path / "m" / "config.json").read_text())["tta_flip"] is True
    assert "test_acc_flip_views" not in m
    p = from_dict({"fer": {"eval_on": [], "train": {**train, "tta_flip": True, "tta_shift": 0.05}}})
    m = run_train_fer(p, "mini_xception", "clean", roots, tmp_path / "ms", tmp_path / "ms.json", tmp_path / "pls",
                      progress=False)
    assert 0 <= m["test_acc_flip_views"] <= 1 and 0 <= m["test_acc_single_view"] <= 1
    assert json.loads((tmp_path / "ms" / "config.json").read_text())["tta_shift"] == 0.05
    p = from_dict({"fer": {"eval_on": [], "train": {**train, "soft_labels": True}}})
    with pytest.raises(ConfigError, match=r"fer.train.soft_labels: .*prepared has no soft_labels.npy"):
        run_train_fer(p, "mini_xception", "clean", roots, tmp_path / "m2", tmp_path / "m2.json", tmp_path / "pl2",
                      progress=False)
    assert not (tmp_path / "m2").exists() and not (tmp_path / "m2.json").exists()


def test_train_on_val_merges_the_splits_and_keeps_the_last_epoch(tiny_prepared, tmp_path):
    """fer.train.train_on_val ([efc-lowres]'s train+val refit): every train and val face is trained on, no
    validation is scored (no val_acc / best_epoch, no val columns in the history) and the test split is
    still held out."""
    import pandas as pd

    from llfer.config import from_dict
    from llfer.data.store import read_dataset
    from llfer.inputs import Roots
    from llfer.pipeline.train_fer import run_train_fer

    ds = read_dataset(tiny_prepared)
    n_train, n_val = len(ds.split_indices("train")), len(ds.split_indices("val"))
    assert n_val > 0
    roots = Roots(prepared=tiny_prepared, degraded=tmp_path / "none")
    ms = {}
    for refit in (False, True):
        p = from_dict({"fer": {"eval_on": [], "train": {"epochs": 2, "batch_size": 16, "bn_recalibrate": 0,
                                                         "train_on_val": refit}}})
        d = tmp_path / str(refit)
        ms[refit] = run_train_fer(p, "mini_xception", "clean", roots, d / "m", d / "m.json", d / "pl", progress=False)
        hist = pd.read_csv(d / "pl" / "history.csv")
        assert ("val_acc" in hist) is (not refit) and len(hist) == 2
    assert ms[False]["train_images"] == n_train and "val_acc" in ms[False]
    assert ms[True]["train_images"] == n_train + n_val
    assert "val_acc" not in ms[True] and "best_epoch" not in ms[True] and 0 <= ms[True]["test_acc"] <= 1


def test_mixup_mixes_faces_and_targets_with_one_beta_lambda():
    """mixup_batch: x~ = lam x_i + (1 - lam) x_perm(i) and the same lam for the (one-hot or soft) targets."""
    import pytest
    from scipy.stats import beta

    from llfer.errors import LlferError
    from llfer.train.fer import mixup_batch

    x = torch.arange(4 * 3 * 3, dtype=torch.float32).reshape(4, 1, 3, 3)
    y = torch.tensor([0, 1, 2, 1])
    xm, tm = mixup_batch(x, y, 3, 0.4, torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)  # replay the draws: the uniform, then the permutation
    lam = float(beta.ppf(float(torch.rand(1, generator=g)), 0.4, 0.4))  # lam ~ Beta(0.4, 0.4) by its inverse CDF
    perm = torch.randperm(4, generator=g)
    onehot = torch.nn.functional.one_hot(y, 3).float()
    assert 0.0 < lam < 1.0
    torch.testing.assert_close(xm, lam * x + (1 - lam) * x[perm])
    torch.testing.assert_close(tm, lam * onehot + (1 - lam) * onehot[perm])
    torch.testing.assert_close(tm.sum(1), torch.ones(4))
    soft = torch.tensor([[0.5, 0.5, 0.0], [0.0, 1.0, 0.0], [0.2, 0.2, 0.6], [1.0, 0.0, 0.0]])
    _, ts = mixup_batch(x, soft, 3, 0.4, torch.Generator().manual_seed(3))
    torch.testing.assert_close(ts, lam * soft + (1 - lam) * soft[perm])
    with pytest.raises(LlferError, match="fer.train.mixup"):
        mixup_batch(x, y, 3, 0.0, torch.Generator())


def test_mixup_training_learns_and_resumes_identically(tmp_path):
    """A run with mixup still learns the toy task; one interrupted and resumed equals one straight through."""
    x, y = _toy()
    cfg = FerTrainCfg(epochs=15, batch_size=16, lr=0.03, mixup=0.4)
    torch.manual_seed(0)
    r = train_classifier(_net(), (x, y), (x[:30], y[:30]), cfg, num_classes=3, input_size=12, seed=1, progress=False)
    assert r.best_score > 0.8
    resumed, straight = _resumed_and_straight(FerTrainCfg(epochs=4, batch_size=16, lr=0.05, mixup=0.4),
                                              tmp_path / "last.pt")
    assert len(resumed) == 4
    np.testing.assert_allclose(resumed, straight, rtol=1e-5)
