"""The one training engine of llfer: enhancers, FER classifiers and the joint stage all train here.

A :class:`Trainer` owns everything that is the same for every network:

* the optimizer (:func:`make_optimizer`: Adam, AdamW, SGD with Nesterov momentum) and a **per-step**
  learning-rate schedule (:class:`LrSchedule`: linear warm-up, then cosine, step, plateau or constant);
* the batch order (:class:`EpochSampler`: a fresh seeded permutation each epoch, every image once per
  epoch, the last incomplete batch dropped) -- the task's ``step_fn`` turns the indices into a loss;
* bf16 autocast on a GPU (off on the CPU, where it is slower for these networks), channels_last model
  weights where asked, gradient clipping by global norm;
* validation every ``eval_every`` steps with the task's own metric (PSNR for enhancers, accuracy for
  classifiers: ``evaluate()`` returns a dict holding ``metric``), the best weights kept, early stopping
  after ``patience`` evaluations without a gain, the best weights restored at the end;
* a resumable checkpoint (one ``torch.save`` file that loads with ``weights_only=True``: weights,
  optimizer, schedule, sampler and RNG state, history, the config that built the run) and a history
  (one row per logged step: step, epoch, lr, mean training loss and loss parts, validation metrics) that
  the stages write as DVC plots;
* a tqdm progress bar.

The engine is deterministic on the CPU for a fixed seed: the same run twice, or a run interrupted and
resumed from its checkpoint, gives bit-identical weights (tested).
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from ..errors import LlferError

#: a step function: (batch indices, the run's generator) -> (loss, parts); parts are floats or 0-d tensors
StepFn = Callable[[torch.Tensor, torch.Generator], "tuple[torch.Tensor, dict[str, Any]]"]


def images_to_tensor(images: Any, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 N x H x W (x C) numpy -> uint8 tensor N x C x H x W on ``device`` (done once per run)."""
    import numpy as np

    t = torch.from_numpy(np.ascontiguousarray(images))
    t = t.unsqueeze(1) if t.ndim == 3 else t.permute(0, 3, 1, 2).contiguous()
    return t.to(device)


def make_optimizer(params: Any, name: str, lr: float, weight_decay: float = 0.0,
                   momentum: float = 0.9) -> torch.optim.Optimizer:
    """The optimizer factory of every network (SGD uses Nesterov momentum when ``momentum`` > 0)."""
    params = [p for p in params if p.requires_grad]
    if not params:
        raise LlferError("the model has no trainable parameters")
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=momentum > 0)
    raise LlferError(f"unknown optimizer {name!r}; allowed: adam, adamw, sgd")


class LrSchedule:
    """Learning-rate multiplier per optimizer step.

    ``warmup`` steps rise linearly to 1 (``(s + 1) / (warmup + 1)``), then ``kind``:
    ``cosine`` anneals to 0 over the remaining steps, ``step`` multiplies by ``gamma`` every
    ``step_size`` steps, ``plateau`` multiplies by ``gamma`` after ``plateau_patience`` evaluations
    without a gain (:meth:`observe`), ``none`` keeps 1.
    """

    KINDS = ("cosine", "step", "plateau", "none")

    def __init__(self, kind: str, total: int, warmup: int = 0, step_size: int = 1, gamma: float = 0.1,
                 plateau_patience: int = 2):
        if kind not in self.KINDS:
            raise LlferError(f"unknown schedule {kind!r}; allowed: {', '.join(self.KINDS)}")
        self.kind, self.total, self.warmup = kind, max(1, int(total)), max(0, int(warmup))
        self.step_size, self.gamma, self.plateau_patience = max(1, int(step_size)), float(gamma), max(1, int(plateau_patience))
        self.plateau_factor, self.plateau_stale = 1.0, 0

    def factor(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / (self.warmup + 1)
        s = step - self.warmup
        if self.kind == "cosine":
            return 0.5 * (1 + math.cos(math.pi * min(s, self.total - self.warmup) / max(1, self.total - self.warmup)))
        if self.kind == "step":
            return self.gamma ** (s // self.step_size)
        if self.kind == "plateau":
            return self.plateau_factor
        return 1.0

    def observe(self, improved: bool) -> None:
        """Tell the schedule whether the last evaluation improved (``plateau`` only)."""
        if self.kind != "plateau":
            return
        self.plateau_stale = 0 if improved else self.plateau_stale + 1
        if self.plateau_stale >= self.plateau_patience:
            self.plateau_factor *= self.gamma
            self.plateau_stale = 0

    def state_dict(self) -> dict[str, float]:
        return {"plateau_factor": self.plateau_factor, "plateau_stale": self.plateau_stale}

    def load_state_dict(self, st: dict[str, float]) -> None:
        self.plateau_factor, self.plateau_stale = float(st["plateau_factor"]), int(st["plateau_stale"])


class EpochSampler:
    """Batches of indices: a seeded permutation of ``n`` items per epoch, ``n // batch_size`` full batches.

    When ``n`` < ``batch_size`` each step is the whole (shuffled) set.  The state (permutation and
    position) is saved in the checkpoint, so a resumed run sees the same batches.
    """

    def __init__(self, n: int, batch_size: int):
        if n <= 0:
            raise LlferError("empty training set")
        self.n, self.bs = n, min(batch_size, n)
        self.steps_per_epoch = max(1, n // self.bs)
        self.perm: torch.Tensor | None = None
        self.pos = 0

    def next(self, gen: torch.Generator) -> torch.Tensor:
        if self.perm is None or self.pos >= self.steps_per_epoch:
            self.perm, self.pos = torch.randperm(self.n, generator=gen), 0
        idx = self.perm[self.pos * self.bs : (self.pos + 1) * self.bs]
        self.pos += 1
        return idx

    def state_dict(self) -> dict[str, Any]:
        return {"perm": self.perm if self.perm is not None else torch.zeros(0, dtype=torch.long), "pos": self.pos}

    def load_state_dict(self, st: dict[str, Any]) -> None:
        self.perm = st["perm"] if len(st["perm"]) else None
        self.pos = int(st["pos"])


@dataclass
class EngineCfg:
    """How one run trains (built by each task from its params section)."""

    steps: int
    batch_size: int
    lr: float
    optimizer: str = "adam"
    weight_decay: float = 0.0
    momentum: float = 0.9
    schedule: str = "cosine"
    warmup_steps: int = 0
    step_size: int = 1          # steps per decay of the ``step`` schedule
    step_gamma: float = 0.1     # ``step`` / ``plateau`` factor
    plateau_patience: int = 2   # evaluations without gain before a ``plateau`` decay
    grad_clip: float = 0.0      # global gradient-norm limit (0: off)
    eval_every: int = 0         # steps between validations (0: only after the last step)
    log_every: int = 0          # steps between history rows without validation (0: at validations only)
    patience: int = 0           # early stopping after this many validations without gain (0: off)
    min_delta: float = 0.0      # a gain smaller than this is no gain
    bf16: bool | None = None    # autocast to bf16 (None: on a GPU only)
    channels_last: bool = False


@dataclass
class TrainResult:
    model: nn.Module
    history: list[dict[str, float]] = field(default_factory=list)
    best_step: int = -1
    best_score: float = float("nan")
    steps_done: int = 0
    stopped_early: bool = False
    seconds: float = 0.0
    steps_per_epoch: int = 1

    @property
    def best_epoch(self) -> int:
        return -1 if self.best_step < 0 else math.ceil(self.best_step / self.steps_per_epoch)


_RESUME_KEYS = ("model", "optimizer", "generator", "sampler", "schedule", "history_keys", "history", "best_score",
                "best_step", "step", "stale", "best_model", "config")


def load_resume_state(path: Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    """A checkpoint written by :class:`Trainer`, loaded with ``weights_only=True`` (never unpickles code)."""
    try:
        st = torch.load(path, map_location=device, weights_only=True)
    except Exception:  # noqa: BLE001 - any failure means the file is not ours; never retry unsafely
        raise LlferError(f"{path}: not a valid llfer resume checkpoint (delete it to start over, "
                         "or run without --resume)") from None
    missing = [k for k in _RESUME_KEYS if not isinstance(st, dict) or k not in st]
    if missing:
        raise LlferError(f"{path}: not a valid llfer resume checkpoint (missing {', '.join(missing)}); "
                         "delete it to start over, or run without --resume")
    return st


class Trainer:
    """Train ``model`` by ``step_fn`` for ``cfg.steps`` optimizer steps (see the module docstring).

    ``metric`` names the key of ``evaluate()``'s dict that selects the best weights (``mode`` "max" or
    "min").  ``checkpoint``: path of the resumable file, rewritten at every history row; ``config``: a
    JSON-able dict stored in it (what built the run).
    """

    def __init__(self, model: nn.Module, cfg: EngineCfg, *, device: torch.device | str = "cpu", seed: int = 0,
                 metric: str = "val_loss", mode: str = "min", checkpoint: str | os.PathLike[str] | None = None,
                 config: dict[str, Any] | None = None, progress: bool = True, desc: str = "train"):
        if mode not in ("max", "min"):
            raise LlferError(f"unknown mode {mode!r}; allowed: max, min")
        self.model, self.cfg, self.device = model, cfg, torch.device(device)
        self.seed, self.metric, self.mode = seed, metric, mode
        self.checkpoint = Path(checkpoint) if checkpoint else None
        self.config = config or {}
        self.progress, self.desc = progress, desc

    def _better(self, score: float, best: float | None) -> bool:
        if best is None or math.isnan(best):
            return not math.isnan(score)
        d = self.cfg.min_delta
        return score > best + d if self.mode == "max" else score < best - d

    def fit(self, step_fn: StepFn, n_items: int, evaluate: Callable[[], dict[str, float]] | None = None,
            resume: bool = False, on_row: Callable[[dict[str, float]], None] | None = None) -> TrainResult:
        """Run the remaining steps; ``on_row`` sees each history row after the checkpoint is written."""
        from tqdm.auto import tqdm

        cfg, model, device = self.cfg, self.model, self.device
        torch.manual_seed(self.seed)
        gen = torch.Generator().manual_seed(self.seed)
        model.to(device)
        if cfg.channels_last:
            model.to(memory_format=torch.channels_last)
        opt = make_optimizer(model.parameters(), cfg.optimizer, cfg.lr, cfg.weight_decay, cfg.momentum)
        trainable = [p for g in opt.param_groups for p in g["params"]]
        base_lrs = [g["lr"] for g in opt.param_groups]
        sched = LrSchedule(cfg.schedule, cfg.steps, cfg.warmup_steps, cfg.step_size, cfg.step_gamma, cfg.plateau_patience)
        sampler = EpochSampler(n_items, cfg.batch_size)
        spe = sampler.steps_per_epoch
        bf16 = cfg.bf16 if cfg.bf16 is not None else device.type == "cuda"

        history: list[dict[str, float]] = []
        best: float | None = None
        best_step, best_state, stale, start = -1, None, 0, 0
        if resume and self.checkpoint is not None and self.checkpoint.exists():
            st = load_resume_state(self.checkpoint, device)
            try:
                model.load_state_dict(st["model"])
                opt.load_state_dict(st["optimizer"])
                gen.set_state(st["generator"])
                sampler.load_state_dict(st["sampler"])
                sched.load_state_dict(st["schedule"])
                history = [{k: v for k, v in zip(st["history_keys"], row) if not math.isnan(v)}
                           for row in st["history"].tolist()]
                best = None if math.isnan(float(st["best_score"])) else float(st["best_score"])
                best_step, start, stale = int(st["best_step"]), int(st["step"]), int(st["stale"])
            except (RuntimeError, ValueError, TypeError, KeyError, AttributeError) as e:
                raise LlferError(f"{self.checkpoint}: resume checkpoint does not fit this run "
                                 f"({str(e).splitlines()[0][:200]}); delete it to start over, or run without --resume") from None
            best_state = st["best_model"]

        t0 = time.perf_counter()
        sums: dict[str, torch.Tensor | float] = {}
        count = 0
        stopped = False
        step = start
        bar = tqdm(range(start, cfg.steps), desc=self.desc, disable=not self.progress, mininterval=1)
        model.train()
        for step in bar:
            f = sched.factor(step)
            for g, lr in zip(opt.param_groups, base_lrs):
                g["lr"] = lr * f
            idx = sampler.next(gen)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                loss, parts = step_fn(idx.to(device), gen)
            if not torch.isfinite(loss):
                raise LlferError(f"{self.desc}: loss became {loss.item()} at step {step}; lower the learning rate")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(trainable, cfg.grad_clip)
            opt.step()
            sums["train_loss"] = sums.get("train_loss", 0.0) + loss.detach().float()
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + (v.detach().float() if isinstance(v, torch.Tensor) else float(v))
            count += 1
            done = step + 1
            do_eval = evaluate is not None and (done == cfg.steps or (cfg.eval_every and done % cfg.eval_every == 0))
            do_log = do_eval or done == cfg.steps or (cfg.log_every and done % cfg.log_every == 0)
            if not do_log:
                continue
            row: dict[str, float] = {"step": done, "epoch": round(done / spe, 4), "lr": opt.param_groups[0]["lr"]}
            row.update({k: float(v) / count for k, v in sums.items()})
            sums, count = {}, 0
            if do_eval:
                assert evaluate is not None
                scores = evaluate()
                model.train()
                if self.metric not in scores:
                    raise LlferError(f"{self.desc}: evaluation returned no {self.metric!r}")
                row.update({k: float(v) for k, v in scores.items()})
                score = float(scores[self.metric])
                improved = self._better(score, best)
                if improved:
                    best, best_step, stale = score, done, 0
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                else:
                    stale += 1
                sched.observe(improved)
            history.append(row)
            bar.set_postfix({k: f"{v:.4g}" for k, v in row.items() if k in ("train_loss", self.metric)})
            stop = bool(do_eval and cfg.patience and stale >= cfg.patience and done < cfg.steps)
            if self.checkpoint is not None:
                self._save(model, opt, gen, sampler, sched, history, best, best_step, done, stale, best_state)
            if on_row is not None:
                on_row(row)
            if stop:
                stopped = True
                break
        if best_state is not None:
            model.load_state_dict(best_state)
        model.eval()
        return TrainResult(model=model, history=history, best_step=best_step,
                           best_score=float("nan") if best is None else best,
                           steps_done=(step + 1) if cfg.steps > start else start, stopped_early=stopped,
                           seconds=time.perf_counter() - t0, steps_per_epoch=spe)

    def _save(self, model: nn.Module, opt: torch.optim.Optimizer, gen: torch.Generator, sampler: EpochSampler,
              sched: LrSchedule, history: list[dict[str, float]], best: float | None, best_step: int, step: int,
              stale: int, best_state: dict[str, torch.Tensor] | None) -> None:
        from ..io import atomic_path

        keys = list(dict.fromkeys(k for r in history for k in r))
        state = {
            "model": model.state_dict(), "optimizer": opt.state_dict(), "generator": gen.get_state(),
            "sampler": sampler.state_dict(), "schedule": sched.state_dict(), "history_keys": keys,
            "history": torch.tensor([[r.get(k, float("nan")) for k in keys] for r in history], dtype=torch.float64),
            "best_score": float("nan") if best is None else best, "best_step": best_step, "step": step,
            "stale": stale, "best_model": best_state,
            "config": json.dumps({"engine": asdict(self.cfg), **self.config}, sort_keys=True, default=str),
        }
        assert self.checkpoint is not None
        with atomic_path(self.checkpoint, replace_check=False) as tmp:  # our own resume file
            torch.save(state, tmp)

