"""One validated config object built from params.yaml.

Every section is a pydantic model with ``extra="forbid"``: an unknown key, a
wrong type or an unknown registry name fails before any work, with a one-line
message naming the key (e.g. ``params.yaml: fer.train.lr: Input should be a
valid number``) and, for names, the allowed values.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class DatasetCfg(_Strict):
    name: str = "synthetic"
    source: Optional[str] = None
    sha256: Optional[str] = None
    cache_dir: str = ".cache/downloads"
    options: dict[str, Any] = Field(default_factory=dict)


class DarkPilCfg(_Strict):
    factors: list[float] = Field(default_factory=lambda: [0.1])


class DarkGammaCfg(_Strict):
    alpha: list[float] = Field(default_factory=lambda: [0.9, 1.0])
    beta: list[float] = Field(default_factory=lambda: [0.5, 1.0])
    gamma: list[float] = Field(default_factory=lambda: [1.5, 5.0])


class LowresCfg(_Strict):
    sizes: list[int] = Field(default_factory=lambda: [32, 20, 15, 10, 8, 5])
    interpolation: Literal["area", "box", "bilinear", "bicubic", "nearest", "lanczos"] = "area"


class NoiseCfg(_Strict):
    shot: float = 0.01
    read: float = 0.005


class DegradeCfg(_Strict):
    dark_pil: Optional[DarkPilCfg] = Field(default_factory=DarkPilCfg)
    dark_gamma: Optional[DarkGammaCfg] = Field(default_factory=DarkGammaCfg)
    lowres: Optional[LowresCfg] = Field(default_factory=LowresCfg)
    noise: Optional[NoiseCfg] = None
    combos: dict[str, list[str]] = Field(default_factory=dict)


class EnhTrainCfg(_Strict):
    iterations: int = Field(300, ge=0)
    batch_size: int = Field(16, ge=1)
    patch: int = Field(32, ge=0)
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = Field(1e-4, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    max_pairs: Optional[int] = Field(None, ge=1)


class LearnedCfg(_Strict):
    model: dict[str, Any] = Field(default_factory=dict)
    train: EnhTrainCfg = Field(default_factory=EnhTrainCfg)
    init: Optional[str] = None


class EnhanceCfg(_Strict):
    variants: list[str] = Field(default_factory=lambda: ["dark_pil", "dark_gamma"])
    #: variants enhanced on every split (FER "enhanced" inputs train on them); the others only on `split`
    all_splits: list[str] = Field(default_factory=lambda: ["dark_pil"])
    split: str = "test"
    batch_size: int = Field(256, ge=1)


class QualityCfg(_Strict):
    niqe: bool = True
    niqe_upsample: int = Field(4, ge=1)
    niqe_max_images: int = Field(200, ge=1)
    split: str = "test"
    grid_images: int = Field(8, ge=1)
    # prepared unpaired low-light sets (`llfer prepare --dataset unpaired --source DIR --out DIR`):
    # NIQE of the photos and of each enhancer's output -> quality.json "unpaired:<dirname>"
    unpaired: list[str] = Field(default_factory=list)


class AugmentCfg(_Strict):
    flip: bool = True
    rotation: float = Field(10.0, ge=0)
    shift: float = Field(0.1, ge=0)
    zoom: float = Field(0.1, ge=0)


class FerTrainCfg(_Strict):
    epochs: int = Field(20, ge=1)
    batch_size: int = Field(64, ge=1)
    optimizer: Literal["adamw", "adam", "sgd"] = "adamw"
    lr: float = Field(3e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    momentum: float = Field(0.9, ge=0)
    schedule: Literal["cosine", "step", "none"] = "cosine"
    step_size: int = Field(10, ge=1)
    step_gamma: float = Field(0.1, gt=0)
    warmup_epochs: int = Field(0, ge=0)
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    class_weights: bool = False
    patience: int = Field(0, ge=0)
    augment: AugmentCfg = Field(default_factory=AugmentCfg)
    eval_batch_size: int = Field(512, ge=1)
    max_train: Optional[int] = Field(None, ge=1)
    #: channels_last memory format for model and batches; None = on (GPU and CPU: on this CPU it
    #: doubles mini-Xception's training throughput, see benchmarks/bench_train_loop.py)
    channels_last: Optional[bool] = None
    #: score the validation set every k epochs (and always after the last epoch); best-epoch
    #: selection and early stopping (patience counts evaluations) only see evaluated epochs
    eval_every: int = Field(1, ge=1)
    #: after training, re-estimate BatchNorm statistics on up to this many training images (0 = off)
    bn_recalibrate: int = Field(4096, ge=0)


class FerInputCfg(_Strict):
    train: str
    test: Optional[str] = None


class FerCfg(_Strict):
    backbones: list[str] = Field(default_factory=lambda: ["mini_xception"])
    inputs: list[str] = Field(default_factory=lambda: ["clean", "dark"])
    enhanced_inputs: list[str] = Field(default_factory=lambda: ["enhanced"])
    input_defs: dict[str, FerInputCfg] = Field(default_factory=lambda: {"dark": FerInputCfg(train="dark_pil")})
    models: dict[str, dict[str, Any]] = Field(default_factory=dict)
    preprocess: dict[str, dict[str, Any]] = Field(default_factory=dict)
    eval_on: list[str] = Field(default_factory=lambda: ["clean"])
    enhanced_variant: str = "dark_pil"
    train: FerTrainCfg = Field(default_factory=FerTrainCfg)


class CvCfg(_Strict):
    folds: int = Field(5, ge=2)
    backbone: str = "mini_xception"
    input: str = "clean"
    epochs: int = Field(5, ge=1)
    max_images: Optional[int] = Field(None, ge=10)


class ReportCfg(_Strict):
    headline_backbone: str = "mini_xception"


class Params(_Strict):
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    enhancer: str = "he"
    dataset: DatasetCfg = Field(default_factory=DatasetCfg)
    degrade: DegradeCfg = Field(default_factory=DegradeCfg)
    classical: dict[str, dict[str, Any]] = Field(default_factory=lambda: {"he": {}})
    learned: dict[str, LearnedCfg] = Field(default_factory=dict)
    enhance: EnhanceCfg = Field(default_factory=EnhanceCfg)
    quality: QualityCfg = Field(default_factory=QualityCfg)
    fer: FerCfg = Field(default_factory=FerCfg)
    cv: CvCfg = Field(default_factory=CvCfg)
    report: ReportCfg = Field(default_factory=ReportCfg)

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
        if self.fer.enhanced_variant not in self.enhance.all_splits:
            raise ConfigError(f"fer.enhanced_variant: {self.fer.enhanced_variant!r} must be listed in enhance.all_splits "
                              "(the enhanced FER input trains on its train split)")
        if self.fer.enhanced_variant not in self.enhance.variants:
            raise ConfigError(
                f"fer.enhanced_variant: {self.fer.enhanced_variant!r} is not enhanced; allowed: {', '.join(self.enhance.variants)}"
            )
        for b in self.fer.backbones + [self.cv.backbone]:
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
        for name in self.fer.inputs + self.fer.enhanced_inputs + [self.cv.input]:
            spec = self.input_def(name)
            for which, s in (("train", spec.train), ("test", spec.test)):
                src, _ = parse_spec(s, variants, self.enhance.variants, f"fer.input_defs.{name}.{which}")
                uses_enh = src.startswith("enhanced")
                if uses_enh and name in self.fer.inputs:
                    raise ConfigError(
                        f"fer.inputs: {name!r} reads the selected enhancer's output; list it under fer.enhanced_inputs"
                    )
                if uses_enh and name == self.cv.input:
                    raise ConfigError(f"cv.input: {name!r} reads enhanced data; cross-validate a non-enhanced input")
        for s in self.fer.eval_on:
            parse_spec(s, variants, self.enhance.variants, "fer.eval_on")
        return self

    def variant_names(self) -> list[str]:
        from .degrade import expand_variants

        return list(expand_variants(self.degrade.model_dump()))

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


def _import_registries() -> None:
    """Import every module that registers entries."""
    from .registry import import_all

    import_all()


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
            msg = "unknown key"
        raise ConfigError(f"{where}: {loc}: {msg}") from None
    return p.check() if check else p


def load_params(path: str | os.PathLike[str] = "params.yaml", check: bool = True) -> Params:
    """Read and validate params.yaml (missing file, bad YAML, bad key -> ConfigError)."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: params file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}: malformed YAML{where}: {getattr(e, 'problem', e)}") from None
    return from_dict(data, str(path), check=check)
