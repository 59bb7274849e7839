"""One validated config object built from params.yaml.

Every section is a pydantic model with ``extra="forbid"``: an unknown key, a
wrong type or an unknown registry name fails before any work, with a one-line
message naming the key (e.g. ``params.yaml: fer.train.lr: Input should be a
valid number``) and, for names, the allowed values.

One source of settings: the models state types and ranges only.  Every
default is the value at the same key of the default params file shipped in the
package (``llfer/params.yaml``, a copy of the repository's ``params.yaml``;
``tests/test_config.py`` proves both, and that each field reads its own key),
so a partial params file means "the defaults, changed here".  The entries of
the name-keyed maps (``learned.<name>``, ``fer.input_defs.<name>``) have no
defaults: each states all its values.  Settings that change speed but never a
result live in ``runtime``, which no DVC stage declares as a param.
"""

from __future__ import annotations

import copy
import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import ConfigError, LlferError

#: the default params shipped in the package: a copy of the repository's params.yaml
DEFAULT_PARAMS = Path(__file__).with_name("params.yaml")


@lru_cache(maxsize=1)
def default_data() -> dict[str, Any]:
    """The default params (:data:`DEFAULT_PARAMS`) as plain data."""
    return yaml.safe_load(DEFAULT_PARAMS.read_text())


def _lookup(key: str) -> Any:
    v: Any = default_data()
    for k in key.split("."):
        v = v[k]
    return copy.deepcopy(v)


def default(key: str, **constraints: Any) -> Any:
    """A field whose default is the default params' value at the dotted ``key`` (its own place)."""
    return Field(default_factory=lambda: _lookup(key), json_schema_extra={"params_key": key}, **constraints)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class DatasetCfg(_Strict):
    name: str = default("dataset.name")
    source: Optional[str] = default("dataset.source")
    sha256: Optional[str] = default("dataset.sha256")
    cache_dir: str = default("dataset.cache_dir")
    #: archive members are refused (by name, before reading) above this size or compression ratio
    max_member_mb: float = default("dataset.max_member_mb", gt=0)
    max_compression_ratio: float = default("dataset.max_compression_ratio", gt=1)
    options: dict[str, Any] = default("dataset.options")

    @model_validator(mode="before")
    @classmethod
    def _options_follow_name(cls, data: Any) -> Any:
        """The default ``options`` belong to the default dataset; another ``name`` starts from none."""
        if isinstance(data, dict) and "options" not in data and data.get("name", _lookup("dataset.name")) != _lookup("dataset.name"):
            data = {**data, "options": {}}
        return data


class DarkPilCfg(_Strict):
    factors: list[float] = default("degrade.dark_pil.factors")


class DarkGammaCfg(_Strict):
    alpha: list[float] = default("degrade.dark_gamma.alpha")
    beta: list[float] = default("degrade.dark_gamma.beta")
    gamma: list[float] = default("degrade.dark_gamma.gamma")


class LowresCfg(_Strict):
    sizes: list[int] = default("degrade.lowres.sizes")
    interpolation: Literal["area", "box", "bilinear", "bicubic", "nearest", "lanczos"] = default("degrade.lowres.interpolation")


class NoiseCfg(_Strict):
    shot: float = default("degrade.noise.shot", ge=0)
    read: float = default("degrade.noise.read", ge=0)


class DegradeCfg(_Strict):
    dark_pil: Optional[DarkPilCfg] = default("degrade.dark_pil")
    dark_gamma: Optional[DarkGammaCfg] = default("degrade.dark_gamma")
    lowres: Optional[LowresCfg] = default("degrade.lowres")
    noise: Optional[NoiseCfg] = default("degrade.noise")
    combos: dict[str, list[str]] = default("degrade.combos")


class EnhTrainCfg(_Strict):
    """Training of one learned enhancer (``learned.<name>.train``) on the one engine: every value stated in params."""

    steps: int = Field(ge=0)
    batch_size: int = Field(ge=1)
    #: square training crops of this size (0: whole faces)
    patch: int = Field(ge=0)
    optimizer: Literal["adam", "adamw", "sgd"]
    lr: float = Field(gt=0)
    weight_decay: float = Field(ge=0)
    schedule: Literal["cosine", "step", "plateau", "none"]
    warmup_steps: int = Field(ge=0)
    #: global gradient-norm limit (0: off)
    grad_clip: float = Field(ge=0)
    #: validation (PSNR on the val split's pairs) every this many steps, and after the last (0: last only)
    eval_every: int = Field(ge=0)
    #: stop after this many validations without a gain (0: off)
    patience: int = Field(ge=0)
    #: at most this many training pairs (a fixed random subset; null: all)
    max_pairs: Optional[int] = Field(ge=1)
    #: at most this many validation pairs (null: all)
    max_val: Optional[int] = Field(ge=1)


class LearnedCfg(_Strict):
    """One learned enhancer: network options (registry defaults for the rest), training, initial checkpoint."""

    model: dict[str, Any]
    train: EnhTrainCfg
    init: Optional[str]


class EnhanceCfg(_Strict):
    variants: list[str] = default("enhance.variants")
    #: variants enhanced on every split (FER "enhanced" inputs train on them); the others only on `split`
    all_splits: list[str] = default("enhance.all_splits")
    split: str = default("enhance.split")


class QualityCfg(_Strict):
    niqe: bool = default("quality.niqe")
    niqe_upsample: int = default("quality.niqe_upsample", ge=1)
    niqe_max_images: int = default("quality.niqe_max_images", ge=1)
    split: str = default("quality.split")
    grid_images: int = default("quality.grid_images", ge=1)
    # prepared unpaired low-light sets (`llfer prepare --dataset unpaired --source DIR --out DIR`):
    # NIQE of the photos and of each enhancer's output -> quality.json "unpaired:<dirname>"
    unpaired: list[str] = default("quality.unpaired")


class AugmentCfg(_Strict):
    flip: bool = default("fer.train.augment.flip")
    rotation: float = default("fer.train.augment.rotation", ge=0)
    shift: float = default("fer.train.augment.shift", ge=0)
    zoom: float = default("fer.train.augment.zoom", ge=0)


class FerTrainCfg(_Strict):
    epochs: int = default("fer.train.epochs", ge=1)
    batch_size: int = default("fer.train.batch_size", ge=1)
    optimizer: Literal["adamw", "adam", "sgd"] = default("fer.train.optimizer")
    lr: float = default("fer.train.lr", gt=0)
    weight_decay: float = default("fer.train.weight_decay", ge=0)
    momentum: float = default("fer.train.momentum", ge=0)
    schedule: Literal["cosine", "step", "plateau", "none"] = default("fer.train.schedule")
    step_size: int = default("fer.train.step_size", ge=1)
    step_gamma: float = default("fer.train.step_gamma", gt=0)
    warmup_epochs: int = default("fer.train.warmup_epochs", ge=0)
    #: at least this many optimizer steps: more epochs when a small set gives few steps per epoch (0: off)
    min_steps: int = default("fer.train.min_steps", ge=0)
    #: plateau schedule: validations without gain before the lr is multiplied by step_gamma
    plateau_patience: int = default("fer.train.plateau_patience", ge=1)
    #: global gradient-norm limit (0: off)
    grad_clip: float = default("fer.train.grad_clip", ge=0)
    label_smoothing: float = default("fer.train.label_smoothing", ge=0, lt=1)
    #: mixup Beta(a, a) parameter: each batch trains on mixes of pairs of faces and of their targets (0: off)
    mixup: float = default("fer.train.mixup", ge=0)
    #: cross-entropy against the dataset's per-image label distribution (``soft_labels``, FER+ votes)
    soft_labels: bool = default("fer.train.soft_labels")
    #: validation and test logits averaged over each face and its horizontal mirror
    tta_flip: bool = default("fer.train.tta_flip")
    #: validation and test logits also averaged over the views shifted by this fraction of the input size
    #: (left, right, up, down; 0: off)
    tta_shift: float = default("fer.train.tta_shift", ge=0, lt=0.5)
    #: train on the train and val splits merged, keeping the last epoch (no validation; the epochs chosen
    #: on val by a run without it): [efc-lowres] refits on train+val
    train_on_val: bool = default("fer.train.train_on_val")
    class_weights: bool = default("fer.train.class_weights")
    patience: int = default("fer.train.patience", ge=0)
    augment: AugmentCfg = default("fer.train.augment")
    #: train on a fixed random subset of at most this many training images (null: all)
    max_train: Optional[int] = default("fer.train.max_train", ge=1)
    #: score the validation set every k epochs (and always after the last epoch); best-epoch
    #: selection and early stopping (patience counts evaluations) only see evaluated epochs
    eval_every: int = default("fer.train.eval_every", ge=1)
    #: before each validation (and after training without one), re-estimate BatchNorm statistics on up to
    #: this many training images (0 = off)
    bn_recalibrate: int = default("fer.train.bn_recalibrate", ge=0)
    #: batch size of that re-estimation (the statistics are averaged per batch, so it changes the result)
    bn_batch_size: int = default("fer.train.bn_batch_size", ge=1)


class FerInputCfg(_Strict):
    train: str
    test: Optional[str] = None  # None: the train spec


class FinetuneCfg(_Strict):
    """Start FER training from a classifier this pipeline trained (``fer.finetune``; llfer.train.finetune)."""

    #: an llfer classifier checkpoint (model.safetensors or its folder; relative: to the repository), null: scratch
    init: Optional[str] = default("fer.finetune.init")
    #: its sha256 (required with init: the path is a param, so the hash is what re-runs the stages)
    sha256: Optional[str] = default("fer.finetune.sha256")
    #: stages (the backbone's stage_names) or module names whose weights stay fixed
    freeze: list[str] = default("fer.finetune.freeze")


class FerCfg(_Strict):
    backbones: list[str] = default("fer.backbones")
    inputs: list[str] = default("fer.inputs")
    enhanced_inputs: list[str] = default("fer.enhanced_inputs")
    input_defs: dict[str, FerInputCfg] = default("fer.input_defs")
    models: dict[str, dict[str, Any]] = default("fer.models")
    preprocess: dict[str, dict[str, Any]] = default("fer.preprocess")
    eval_on: list[str] = default("fer.eval_on")
    enhanced_variant: str = default("fer.enhanced_variant")
    #: single ``<backbone>-<input>`` runs outside the backbones x inputs grid (stage train_fer_run@<run>)
    runs: list[str] = default("fer.runs")
    train: FerTrainCfg = default("fer.train")
    finetune: FinetuneCfg = default("fer.finetune")


class CvCfg(_Strict):
    """k-fold cross-validation of ``<backbone>-<input>`` runs, one DVC stage per (run, fold)."""

    #: runs on non-enhanced inputs (stages cv_fold@<run>-<fold>)
    runs: list[str] = default("cv.runs")
    #: runs on inputs that read the selected enhancer's output (stages cv_fold_enhanced@<run>-<fold>)
    enhanced_runs: list[str] = default("cv.enhanced_runs")
    #: the fold indices 0 .. k-1 (k = their number); DVC makes one stage per fold from this list
    folds: list[int] = default("cv.folds")
    #: auto: subject-independent folds when every image has a subject id, else stratified (logged);
    #: subject: subject-independent (an error without subject ids); stratified: the papers' plain stratified folds
    protocol: Literal["auto", "subject", "stratified"] = default("cv.protocol")
    epochs: int = default("cv.epochs", ge=1)
    #: a fixed class-stratified subset of at most this many images is cross-validated (null: all)
    max_images: Optional[int] = default("cv.max_images", ge=10)

    @field_validator("folds")
    @classmethod
    def _folds_0_to_k(cls, v: list[int]) -> list[int]:
        if len(v) < 2 or v != list(range(len(v))):
            raise ValueError(f"give the fold indices 0, 1, ..., k-1 for k >= 2 folds (got {v})")
        return v


class RobustnessCfg(_Strict):
    """Accuracy of every classifier, after every listed enhancer, as light or resolution falls."""

    enhancers: list[str] = default("robustness.enhancers")
    #: PIL ImageEnhance.Brightness factors ([mirnet-fer] darkening)
    brightness: list[float] = default("robustness.brightness")
    #: fixed gammas of [ll-fer] eq. 14 (alpha and beta drawn per image from degrade.dark_gamma)
    gamma: list[float] = default("robustness.gamma")
    #: face sizes in pixels ([efc-lowres]), downscaled with degrade.lowres.interpolation
    resolution: list[int] = default("robustness.resolution")
    #: a fixed class-stratified subset of at most this many test faces (null: the whole test split)
    max_images: Optional[int] = default("robustness.max_images", ge=10)


class ExplainCfg(_Strict):
    """Grad-CAM overlays, first-layer filters and feature maps of every classifier."""

    #: test faces shown (one per class first, in class order, then the next of each class)
    faces: int = default("explain.faces", ge=1)
    #: first-layer filters / feature maps drawn
    filters: int = default("explain.filters", ge=1)


class JointWeightsCfg(_Strict):
    """The weights of [ll-fer] eq. (13)'s four terms (the paper: 1 each)."""

    res: float = default("joint.weights.res", ge=0)
    ferp: float = default("joint.weights.ferp", ge=0)
    cls: float = default("joint.weights.cls", ge=0)
    label: float = default("joint.weights.label", ge=0)


class JointTrainCfg(_Strict):
    """The joint phase on the one engine: the enhancer trained under the frozen classifier."""

    steps: int = default("joint.train.steps", ge=1)
    batch_size: int = default("joint.train.batch_size", ge=1)
    optimizer: Literal["adam", "adamw", "sgd"] = default("joint.train.optimizer")
    lr: float = default("joint.train.lr", gt=0)
    weight_decay: float = default("joint.train.weight_decay", ge=0)
    schedule: Literal["cosine", "step", "plateau", "none"] = default("joint.train.schedule")
    warmup_steps: int = default("joint.train.warmup_steps", ge=0)
    #: global gradient-norm limit (0: off)
    grad_clip: float = default("joint.train.grad_clip", ge=0)
    #: cascade accuracy on the val split every this many steps, and after the last (0: last only)
    eval_every: int = default("joint.train.eval_every", ge=0)
    #: stop after this many validations without a gain (0: off)
    patience: int = default("joint.train.patience", ge=0)
    #: at most this many training triples (a fixed class-stratified subset; null: all)
    max_train: Optional[int] = default("joint.train.max_train", ge=1)
    #: at most this many validation faces (null: all)
    max_val: Optional[int] = default("joint.train.max_val", ge=1)


class JointFinetuneCfg(_Strict):
    """Optional second phase: enhancer and classifier trained together (0 steps: off)."""

    steps: int = default("joint.finetune.steps", ge=0)
    lr: float = default("joint.finetune.lr", gt=0)


class JointCfg(_Strict):
    """[ll-fer] joint training of every enhancer x backbone pair (stage joint@<enhancer>-<backbone>) and the
    comparison of training schemes."""

    #: learned enhancers, each trained under each backbone's clean-trained classifier
    enhancers: list[str] = default("joint.enhancers")
    #: backbones whose ``<backbone>-clean`` run supervises
    backbones: list[str] = default("joint.backbones")
    #: the degraded variant of the (low-light, normal-light, label) triples and of the comparison
    variant: str = default("joint.variant")
    #: classical enhancers compared as "classical enhancer -> FER" schemes
    classical: list[str] = default("joint.classical")
    weights: JointWeightsCfg = default("joint.weights")
    train: JointTrainCfg = default("joint.train")
    finetune: JointFinetuneCfg = default("joint.finetune")


class ReportCfg(_Strict):
    headline_backbone: str = default("report.headline_backbone")


class RuntimeCfg(_Strict):
    """How fast, not what: no stage declares these as params, so changing them re-runs nothing."""

    device: Literal["auto", "cpu", "cuda"] = default("runtime.device")
    #: torch intra-op CPU threads (null: torch's default)
    threads: Optional[int] = default("runtime.threads", ge=1)
    #: inference batch of the learned enhancers (pixels per batch are kept about this many 48 x 48 faces)
    enhance_batch_size: int = default("runtime.enhance_batch_size", ge=1)
    #: inference batch of the FER classifiers
    eval_batch_size: int = default("runtime.eval_batch_size", ge=1)
    #: channels_last memory format for FER training (on this project's CPU it doubles mini-Xception's
    #: training throughput, see benchmarks/bench_train_loop.py)
    channels_last: bool = default("runtime.channels_last")


class Params(_Strict):
    seed: int = default("seed")
    enhancer: str = default("enhancer")
    dataset: DatasetCfg = default("dataset")
    degrade: DegradeCfg = default("degrade")
    classical: dict[str, dict[str, Any]] = default("classical")
    learned: dict[str, LearnedCfg] = default("learned")
    enhance: EnhanceCfg = default("enhance")
    quality: QualityCfg = default("quality")
    fer: FerCfg = default("fer")
    cv: CvCfg = default("cv")
    robustness: RobustnessCfg = default("robustness")
    explain: ExplainCfg = default("explain")
    joint: JointCfg = default("joint")
    report: ReportCfg = default("report")
    runtime: RuntimeCfg = default("runtime")

    @field_validator("classical", "learned", mode="before")
    @classmethod
    def _none_is_empty(cls, v: Any) -> Any:
        return {} if v is None else v

    # ---- cross-field and registry checks ---------------------------------------
    def check(self) -> "Params":
        from .registry import BACKBONES, DATASETS, ENHANCERS, PREPROCESSORS, check_kwargs

        _import_registries()
        DATASETS.entry(self.dataset.name, key="dataset.name")
        if self.dataset.options:
            check_kwargs(DATASETS.get(self.dataset.name), self.dataset.options, "dataset.options")
        for name, opts in self.classical.items():
            e = ENHANCERS.entry(name, key=f"classical.{name}")
            if getattr(e.obj, "learned", False):
                raise ConfigError(f"classical.{name}: {name!r} is a learned enhancer; put it under 'learned'")
            check_kwargs(e.obj, opts or {}, f"classical.{name}")
        for name, lc in self.learned.items():
            e = ENHANCERS.entry(name, key=f"learned.{name}")
            if not getattr(e.obj, "learned", False):
                raise ConfigError(f"learned.{name}: {name!r} is a classical enhancer; put it under 'classical'")
            check_kwargs(e.obj, lc.model, f"learned.{name}.model")
        names = sorted(set(self.classical) | set(self.learned))
        if self.enhancer not in names:
            raise ConfigError(f"enhancer: unknown enhancer {self.enhancer!r}; allowed: {', '.join(names)}")
        variants = self.variant_names()
        for v in self.enhance.variants:
            if v not in variants:
                raise ConfigError(f"enhance.variants: unknown variant {v!r}; allowed: {', '.join(variants)}")
        for v in self.enhance.all_splits:
            if v not in self.enhance.variants:
                raise ConfigError(f"enhance.all_splits: {v!r} is not in enhance.variants ({', '.join(self.enhance.variants)})")
        if self.quality.split != self.enhance.split and set(self.enhance.all_splits) != set(self.enhance.variants):
            raise ConfigError(f"quality.split: {self.quality.split!r} differs from enhance.split {self.enhance.split!r}; "
                              "quality scores enhanced images of that split")
        trains_enhanced = bool(self.fer.enhanced_inputs or self.cv.enhanced_runs
                               or any(self.split_run(r)[1].startswith("enhanced") for r in self.fer.runs))
        if trains_enhanced and self.fer.enhanced_variant not in self.enhance.all_splits:
            raise ConfigError(f"fer.enhanced_variant: {self.fer.enhanced_variant!r} must be listed in enhance.all_splits "
                              "(the enhanced FER input trains on its train split)")
        if self.fer.enhanced_variant not in self.enhance.variants:
            raise ConfigError(
                f"fer.enhanced_variant: {self.fer.enhanced_variant!r} is not enhanced; allowed: {', '.join(self.enhance.variants)}"
            )
        for b in self.fer.backbones:
            BACKBONES.entry(b, key="fer.backbones")
        for b, opts in self.fer.models.items():
            e = BACKBONES.entry(b, key=f"fer.models.{b}")
            check_kwargs(e.obj, opts, f"fer.models.{b}")
        for p, opts in self.fer.preprocess.items():
            e = PREPROCESSORS.entry(p, key=f"fer.preprocess.{p}")
            check_kwargs(e.obj, opts, f"fer.preprocess.{p}")
        from .inputs import parse_spec

        both = sorted(set(self.fer.inputs) & set(self.fer.enhanced_inputs))
        if both:
            raise ConfigError(f"fer.enhanced_inputs: {both} also listed in fer.inputs")
        for name in self.fer.inputs + self.fer.enhanced_inputs:
            if name in self.fer.inputs and self.reads_enhanced(name, "fer.inputs"):
                raise ConfigError(
                    f"fer.inputs: {name!r} reads the selected enhancer's output; list it under fer.enhanced_inputs"
                )
            self.reads_enhanced(name, "fer.enhanced_inputs")
        grid = {f"{b}-{i}" for b in self.fer.backbones for i in self.fer.inputs + self.fer.enhanced_inputs}
        where = {"fer.runs": "fer.backbones x fer.enhanced_inputs", "cv.runs": "cv.enhanced_runs", "cv.enhanced_runs": "cv.runs"}
        for key, runs, enhanced in (("fer.runs", self.fer.runs, False), ("cv.runs", self.cv.runs, False),
                                    ("cv.enhanced_runs", self.cv.enhanced_runs, True)):
            for i, run in enumerate(runs):
                _, name = self.split_run(run, key)
                if self.reads_enhanced(name, key) != enhanced:
                    reads = "reads the selected enhancer's output" if not enhanced else "reads no enhanced data"
                    raise ConfigError(f"{key}: {run!r} {reads}; list it under {where[key]}")
                if run in runs[:i] or (key == "fer.runs" and run in grid) or (key == "cv.enhanced_runs" and run in self.cv.runs):
                    raise ConfigError(f"{key}: {run!r} is listed twice (or is already a run of fer.backbones x fer.inputs)")
        if any(not 0 <= f <= 1 for f in self.robustness.brightness):
            raise ConfigError(f"robustness.brightness: factors must lie in [0, 1], got {self.robustness.brightness}")
        if any(g <= 0 for g in self.robustness.gamma):
            raise ConfigError(f"robustness.gamma: gammas must be > 0, got {self.robustness.gamma}")
        if any(r < 1 for r in self.robustness.resolution):
            raise ConfigError(f"robustness.resolution: sizes must be >= 1 px, got {self.robustness.resolution}")
        for s in self.fer.eval_on:
            parse_spec(s, variants, self.enhance.variants, "fer.eval_on")
        self._check_values()
        # after the values: a params file that redefines `classical` hears about its bad values first
        self._check_joint(names)
        for e in self.robustness.enhancers:
            if e not in names:
                raise ConfigError(f"robustness.enhancers: unknown enhancer {e!r}; allowed: {', '.join(names)}")
        return self

    def _check_joint(self, names: list[str]) -> None:
        """``joint``: each pair's enhancer is learned, its classifier a configured clean run, the rest known."""
        j = self.joint
        if not self.joint_pairs():  # an experiment without joint stages
            return
        if j.variant not in self.variant_names():
            raise ConfigError(f"joint.variant: unknown variant {j.variant!r}; allowed: {', '.join(self.variant_names())}")
        for e in j.classical:
            if e not in self.classical:
                raise ConfigError(f"joint.classical: {e!r} is not a classical enhancer of params; "
                                  f"allowed: {', '.join(sorted(self.classical))}")
        if not any(j.weights.model_dump().values()):
            raise ConfigError("joint.weights: every weight (res, ferp, cls, label) is 0")
        from .registry import BACKBONES

        for key, names in (("joint.enhancers", j.enhancers), ("joint.backbones", j.backbones)):
            twice = [n for i, n in enumerate(names) if n in names[:i]]
            if twice:
                raise ConfigError(f"{key}: {twice[0]!r} is listed twice")
        for e in j.enhancers:
            if e not in self.learned:
                raise ConfigError(f"joint.enhancers: {e!r} is not a learned enhancer of params; "
                                  f"allowed: {', '.join(sorted(self.learned)) or 'none (learned is empty)'}")
        runs = {f"{b}-{i}" for b in self.fer.backbones for i in self.fer.inputs} | set(self.fer.runs)
        for b in j.backbones:
            BACKBONES.entry(b, key="joint.backbones")
            if f"{b}-clean" not in runs:
                raise ConfigError(f"joint.backbones: {b!r} needs the classifier of {b}-clean; add {b} to "
                                  f"fer.backbones (with clean in fer.inputs) or {b}-clean to fer.runs")

    def joint_pairs(self) -> list[str]:
        """The ``<enhancer>-<backbone>`` pairs of the joint stage (joint.enhancers x joint.backbones)."""
        return [f"{e}-{b}" for e in self.joint.enhancers for b in self.joint.backbones]

    def _check_values(self) -> None:
        """Build every configured component once on a tiny probe, so that a value a stage would reject
        (a negative darkening factor, zero CLAHE tiles, a bad network option) fails here, naming its key."""
        import numpy as np
        import torch

        from .data.common import Builder
        from .degrade import apply_steps, expand_variants
        from .preprocess import apply_preprocessors
        from .models.common import resolve_pretrained
        from .registry import BACKBONES, ENHANCERS

        imgs = np.linspace(0, 255, 2 * 16 * 16).astype(np.uint8).reshape(2, 16, 16)
        ids = ["probe0", "probe1"]
        for name, steps in expand_variants(self.degrade.model_dump()).items():
            _probe(f"degrade.{name}", lambda steps=steps: apply_steps(imgs, ids, steps, self.seed))
        for name, opts in self.classical.items():
            _probe(f"classical.{name}", lambda name=name, opts=opts: ENHANCERS.build(
                name, key=f"classical.{name}", **(opts or {})).enhance(np.repeat(imgs[..., None], 3, axis=3)))
        with torch.device("meta"):
            for name, lc in self.learned.items():
                _probe(f"learned.{name}.model", lambda name=name, lc=lc: ENHANCERS.get(name)(**lc.model))
            for b in dict.fromkeys(self.fer.backbones + [self.split_run(r)[0] for r in self.all_runs()]):
                opts = {**BACKBONES.entry(b).defaults, **self.fer.models.get(b, {}), "num_classes": 7, "in_channels": 1}
                if "pretrained" in opts:  # checked, but never downloaded or read here
                    _probe(f"fer.models.{b}.pretrained", lambda opts=opts: _weights_file(resolve_pretrained(opts["pretrained"])))
                    opts["pretrained"] = False
                _probe(f"fer.models.{b}", lambda b=b, opts=opts: BACKBONES.build(b, key=f"fer.models.{b}", **opts))
        for name in self.fer.preprocess:
            _probe(f"fer.preprocess.{name}", lambda name=name: apply_preprocessors(
                [name], imgs, ids=ids, train=True, seed=self.seed, params=self.fer.preprocess))
        o = self.dataset.options
        common = {k: o[k] for k in ("grayscale", "size", "max_corrupt") if k in o}
        _probe("dataset.options", lambda: Builder(reader=self.dataset.name, source="", **{
            "grayscale": True, "size": None, "max_corrupt": 0.0, **common}))
        for k in ("val_fraction", "test_fraction"):
            if k in o and not (isinstance(o[k], (int, float)) and 0 <= o[k] < 1):
                raise ConfigError(f"dataset.options.{k}: must be in [0, 1), got {o[k]!r}")

    def variant_names(self) -> list[str]:
        from .degrade import expand_variants

        return list(expand_variants(self.degrade.model_dump()))

    def split_run(self, run: str, key: str = "run") -> tuple[str, str]:
        """``<backbone>-<input>`` -> (backbone, input), both checked (a backbone name holds no ``-``)."""
        from .registry import BACKBONES

        backbone, sep, name = run.partition("-")
        if not sep or not name:
            raise ConfigError(f"{key}: {run!r} is not <backbone>-<input> (e.g. mini_xception-clean)")
        BACKBONES.entry(backbone, key=key)
        return backbone, name

    def all_runs(self) -> list[str]:
        """Every ``<backbone>-<input>`` run that params train or cross-validate."""
        return [*self.fer.runs, *self.cv.runs, *self.cv.enhanced_runs]

    def reads_enhanced(self, name: str, key: str = "input") -> bool:
        """Whether input ``name`` (train or test spec) reads the selected enhancer's output; specs checked."""
        from .inputs import parse_spec

        spec = self.input_def(name)
        return any(parse_spec(s, self.variant_names(), self.enhance.variants, f"{key}: {name}: {which}")[0]
                   .startswith("enhanced") for which, s in (("train", spec.train), ("test", spec.test)))

    def input_def(self, name: str) -> FerInputCfg:
        """An input's train/test spec; a name not in input_defs is itself a spec (e.g. ``clean+he``)."""
        d = self.fer.input_defs.get(name)
        if d is None:
            d = FerInputCfg(train=name)
        return FerInputCfg(train=d.train, test=d.test or d.train)

    def enhancer_cfg(self, name: str) -> dict[str, Any]:
        if name in self.classical:
            return dict(self.classical[name] or {})
        if name in self.learned:
            return dict(self.learned[name].model)
        raise ConfigError(f"enhancer: unknown enhancer {name!r}; allowed: {', '.join(sorted(set(self.classical) | set(self.learned)))}")


def _weights_file(pretrained: bool | str) -> None:
    """A ``pretrained`` path must name an existing file (True / False are resolved by the backbone)."""
    if isinstance(pretrained, str) and not Path(pretrained).is_file():
        raise ConfigError(f"weights file {pretrained!r} does not exist")


def _probe(key: str, fn: Any) -> None:
    """Run ``fn``; any error becomes a ConfigError naming ``key`` (unless its message already starts with it)."""
    try:
        fn()
    except ConfigError as e:
        if not str(e).startswith(key.split(".")[0] + "."):
            raise ConfigError(f"{key}: {e}") from None
        raise
    except (LlferError, TypeError, ValueError, RuntimeError) as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(msg if msg.startswith(key) else f"{key}: {msg}") from None


def _import_registries() -> None:
    """Import every module that registers entries."""
    from .registry import import_all

    import_all()


#: keys that moved to the ``runtime`` section (they change speed, not results)
MOVED = {"cv.backbone": "cv.runs", "cv.input": "cv.runs", "device": "runtime.device", "enhance.batch_size": "runtime.enhance_batch_size",
         "fer.train.eval_batch_size": "runtime.eval_batch_size", "fer.train.channels_last": "runtime.channels_last"}


def _fmt_loc(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc if not (isinstance(p, str) and p.startswith("function-")))


def from_dict(data: Any, where: str = "params.yaml", check: bool = True) -> Params:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        p = Params.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        loc = _fmt_loc(err["loc"])
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key" + (f" (it moved to {MOVED[loc]})" if loc in MOVED else "")
        raise ConfigError(f"{where}: {loc}: {msg}") from None
    return p.check() if check else p


def params_file(given: str | os.PathLike[str] | None = None) -> Path:
    """The params file to use: ``given``, else ``./params.yaml`` when there is one, else :data:`DEFAULT_PARAMS`."""
    if given is not None:
        return Path(given)
    local = Path("params.yaml")
    return local if local.exists() else DEFAULT_PARAMS


def load_params(path: str | os.PathLike[str] = "params.yaml", check: bool = True) -> Params:
    """Read and validate params.yaml (missing file, bad YAML, bad key -> ConfigError)."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: params file not found")
    try:
        data = yaml.load(path.read_text(), Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}: malformed YAML{where}: {getattr(e, 'problem', e)}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: unreadable params file ({getattr(e, 'strerror', None) or e})") from None
    if data is None:
        raise ConfigError(f"{path}: empty params file (no settings at all; give at least one key, "
                          "or leave --params out to use the defaults)")
    return from_dict(data, str(path), check=check)


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (PyYAML silently keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)
