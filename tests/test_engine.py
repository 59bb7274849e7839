"""The one training engine: schedules, sampler, best weights, early stopping, resume, clipping."""

import math

import pytest
import torch

from llfer.errors import LlferError
from llfer.train.engine import EngineCfg, EpochSampler, LrSchedule, Trainer, load_resume_state, make_optimizer


def _problem(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    w = torch.tensor([[1.0], [-2.0], [0.5], [3.0]])
    return x, x @ w


def _task(seed=0):
    """A linear regression: (model, data size, step_fn, evaluate)."""
    x, y = _problem()
    torch.manual_seed(seed)
    model = torch.nn.Linear(4, 1)

    def step(idx, gen):
        return torch.nn.functional.mse_loss(model(x[idx]), y[idx]), {"abs": (model(x[idx]) - y[idx]).abs().mean()}

    def ev():
        with torch.no_grad():
            return {"val_loss": float(torch.nn.functional.mse_loss(model(x), y))}

    return model, len(x), step, ev


def _fit(cfg, evaluate=True, **kw):
    model, n, step, ev = _task()
    tr = Trainer(model, cfg, metric="val_loss", mode="min", progress=False, **kw)
    return model, tr.fit(step, n, ev if evaluate else None)


def test_schedules():
    cos = LrSchedule("cosine", total=110, warmup=10)
    assert cos.factor(0) == pytest.approx(1 / 11) and cos.factor(9) == pytest.approx(10 / 11)
    assert cos.factor(10) == 1.0 and cos.factor(60) == pytest.approx(0.5) and cos.factor(110) == pytest.approx(0.0)
    step = LrSchedule("step", total=100, step_size=30, gamma=0.5)
    assert step.factor(29) == 1.0 and step.factor(30) == 0.5 and step.factor(61) == 0.25
    pl = LrSchedule("plateau", total=100, gamma=0.1, plateau_patience=2)
    pl.observe(True), pl.observe(False)
    assert pl.factor(5) == 1.0
    pl.observe(False)
    assert pl.factor(5) == pytest.approx(0.1)
    assert LrSchedule("none", total=5).factor(4) == 1.0
    with pytest.raises(LlferError, match="unknown schedule 'warm'"):
        LrSchedule("warm", total=5)


def test_sgd_is_nesterov_and_unknown_optimizer_named():
    p = [torch.nn.Parameter(torch.zeros(2))]
    assert make_optimizer(p, "sgd", 0.1, momentum=0.9).defaults["nesterov"] is True
    with pytest.raises(LlferError, match="unknown optimizer 'lamb'"):
        make_optimizer(p, "lamb", 0.1)


def test_sampler_visits_every_item_once_per_epoch():
    s, g = EpochSampler(10, 3), torch.Generator().manual_seed(0)
    assert s.steps_per_epoch == 3
    seen = torch.cat([s.next(g) for _ in range(3)])
    assert len(seen.unique()) == 9  # one incomplete batch dropped
    small = EpochSampler(2, 8)
    assert sorted(small.next(g).tolist()) == [0, 1]


def test_loss_goes_down_history_and_best_weights():
    cfg = EngineCfg(steps=200, batch_size=16, lr=0.05, schedule="cosine", warmup_steps=10, eval_every=20)
    model, res = _fit(cfg)
    evals = [r for r in res.history if "val_loss" in r]
    assert len(evals) == 10 and evals[-1]["val_loss"] < evals[0]["val_loss"] / 20
    assert res.best_score == min(r["val_loss"] for r in evals)
    assert {"step", "epoch", "lr", "train_loss", "abs"} <= set(res.history[0])
    assert res.history[0]["epoch"] == 20 / 4


def test_early_stopping_and_best_restored():
    # a learning rate that diverges upward after a few steps: plateau of the metric stops the run
    cfg = EngineCfg(steps=400, batch_size=16, lr=1e-4, schedule="none", eval_every=10, patience=2, min_delta=10.0)
    model, res = _fit(cfg)
    assert res.stopped_early and res.steps_done == 30 and res.best_step == 10
    x, y = _problem()
    with torch.no_grad():
        assert float(torch.nn.functional.mse_loss(model(x), y)) == pytest.approx(res.best_score)


def test_grad_clip_limits_the_update():
    free = _fit(EngineCfg(steps=1, batch_size=64, lr=1.0, optimizer="sgd", momentum=0.0, schedule="none"),
                evaluate=False)[0]
    clipped = _fit(EngineCfg(steps=1, batch_size=64, lr=1.0, optimizer="sgd", momentum=0.0, schedule="none",
                             grad_clip=0.01), evaluate=False)[0]
    torch.manual_seed(0)
    init = torch.nn.Linear(4, 1)
    move = lambda m: math.sqrt(sum(float((a - b).detach().pow(2).sum()) for a, b in zip(m.parameters(), init.parameters())))  # noqa: E731
    assert move(clipped) == pytest.approx(0.01, rel=1e-4) and move(free) > 1.0


def test_resume_is_bit_identical(tmp_path):
    cfg = EngineCfg(steps=60, batch_size=16, lr=0.05, eval_every=10, log_every=5)
    ref_model, ref = _fit(cfg)
    ck = tmp_path / "run.pt"

    class Stop(Exception):
        pass

    model, n, step, ev = _task()

    def stop(row):
        if row["step"] == 35:
            raise Stop

    with pytest.raises(Stop):
        Trainer(model, cfg, metric="val_loss", checkpoint=ck, progress=False, config={"what": "test"}).fit(
            step, n, ev, on_row=stop)
    st = load_resume_state(ck)
    assert st["step"] == 35 and '"what": "test"' in st["config"]
    with torch.no_grad():  # the resumed run must not depend on the weights it starts from
        for q in model.parameters():
            q.zero_()
    res = Trainer(model, cfg, metric="val_loss", checkpoint=ck, progress=False).fit(step, n, ev, resume=True)
    assert [r["step"] for r in res.history] == [r["step"] for r in ref.history]
    for a, b in zip(model.parameters(), ref_model.parameters()):
        assert torch.equal(a, b)


def test_foreign_resume_file_is_refused(tmp_path):
    bad = tmp_path / "x.pt"
    torch.save({"model": {}}, bad)
    with pytest.raises(LlferError, match="not a valid llfer resume checkpoint"):
        load_resume_state(bad)
