"""The pipeline stages as functions of (validated params, explicit paths).

``stages/*.py`` (run by DVC) and the ``llfer`` CLI both call these; all logic
lives here and in the modules they use.  Every output is written atomically.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from .config import Params
from .data.store import read_dataset, write_dataset
from .errors import ConfigError, DataError, LlferError
from .io import atomic_dir, atomic_path, read_json, write_json, write_text

log = logging.getLogger("llfer")


# ----------------------------------------------------------------------------- prepare
def run_prepare(p: Params, out: Path, source: str | None = None, sha256: str | None = None,
                dataset: str | None = None) -> dict[str, Any]:
    """Read a dataset (registry ``DATASETS``) and write the shared format to ``out``."""
    from .registry import DATASETS

    name = dataset or p.dataset.name
    src = source if source is not None else p.dataset.source
    digest = sha256 if sha256 is not None else p.dataset.sha256
    entry = DATASETS.entry(name, key="dataset.name")
    path = None
    if src is not None:
        from .data.download import resolve_source

        path = resolve_source(str(src), digest, Path(p.dataset.cache_dir))
    elif name != "synthetic":
        raise ConfigError(f"dataset.source: dataset {name!r} needs a source (a local path or a URL)")
    # dataset.options belong to dataset.name; another --dataset starts from its reader's defaults.
    opts = dict(p.dataset.options) if name == p.dataset.name else {}
    t0 = time.perf_counter()
    prepared = DATASETS.build(name, key="dataset.options", source=path, **opts)
    prepared.provenance.update({"dataset": name, "source": src, "sha256": digest, "options": opts})
    prepared.report.setdefault("seconds", round(time.perf_counter() - t0, 3))
    prepared.write(out)
    return prepared.report


# ----------------------------------------------------------------------------- degrade
def run_degrade(p: Params, prepared: Path, out: Path) -> dict[str, Any]:
    """Write every degraded variant of ``prepared`` under ``out/<variant>/`` (same ids and index)."""
    from tqdm.auto import tqdm

    from .degrade import apply_steps, expand_variants

    ds = read_dataset(prepared)
    variants = expand_variants(p.degrade.model_dump())
    if not variants:
        raise ConfigError("degrade: no variants configured")
    ids = ds.ids
    images = np.asarray(ds.images)
    info = {}
    done: dict[str, np.ndarray] = {}  # results by step chain, so a combo reuses its prefix

    def chain(steps: list[Any]) -> np.ndarray:
        key = repr(steps)
        if key not in done:
            prev = chain(steps[:-1]) if len(steps) > 1 else images
            done[key] = apply_steps(prev, ids, steps[-1:], p.seed)
        return done[key]

    with atomic_dir(out) as tmp:
        for name, steps in tqdm(variants.items(), desc="degrade", mininterval=1):
            t0 = time.perf_counter()
            imgs = chain(list(steps))
            write_dataset(tmp / name, imgs, ds.index, classes=ds.classes,
                          provenance={"variant": name, "source": str(prepared), "seed": p.seed,
                                      "steps": [{"type": s.type, **s.params} for s in steps]})
            info[name] = {"seconds": round(time.perf_counter() - t0, 3), "shape": list(imgs.shape)}
    return info


# ----------------------------------------------------------------------------- enhancers
def _learned_cls(name: str) -> Any:
    from .registry import ENHANCERS

    import llfer.enhance  # noqa: F401

    return ENHANCERS.get(name, key="enhancer")


def _pairs(p: Params, prepared: Path, degraded: Path, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Training pairs (low, high): a prepared LOL set's own low/normal-light pairs when it has them
    (``extras["low"]``, from the ``lol`` reader), else each of ``enhance.variants`` with its clean image."""
    clean = read_dataset(prepared)
    idx = clean.split_indices(split)
    if "low" in clean.extras:
        if len(idx) == 0:
            raise DataError(f"{prepared}: no {split!r} pairs")
        return np.asarray(clean.extras["low"][idx]), np.asarray(clean.images[idx])
    lows, highs = [], []
    for v in p.enhance.variants:
        dv = read_dataset(degraded / v)
        if dv.images.shape[1:] != clean.images.shape[1:]:
            raise ConfigError(f"enhance.variants: {v!r} has size {dv.images.shape[1:3]}, not the clean size; "
                              "enhancers need same-size pairs")
        lows.append(np.asarray(dv.images[idx]))
        highs.append(np.asarray(clean.images[idx]))
    return np.concatenate(lows), np.concatenate(highs)


def run_train_enhancer(p: Params, name: str, prepared: Path, degraded: Path, out: Path) -> dict[str, Any]:
    """Train learned enhancer ``name`` on (degraded, clean) train pairs; write ``out/model.safetensors``."""
    from .device import resolve_device, seed_everything

    if name not in p.learned:
        raise ConfigError(f"learned: no learned enhancer {name!r}; allowed: {', '.join(sorted(p.learned))}")
    lc = p.learned[name]
    cls = _learned_cls(name)
    low, high = _pairs(p, prepared, degraded)
    if lc.train.max_pairs and len(low) > lc.train.max_pairs:
        sel = np.sort(np.random.default_rng(p.seed).choice(len(low), lc.train.max_pairs, replace=False))
        low, high = low[sel], high[sel]
    seed_everything(p.seed)
    enh = cls(**lc.model)
    if lc.init:
        enh.init_from(lc.init)
    device = resolve_device(p.device)
    t0 = time.perf_counter()
    tc = lc.train.model_dump(exclude={"max_pairs"})
    history = enh.fit(low, high, seed=p.seed, device=device, **tc)
    secs = time.perf_counter() - t0
    from .enhance.base import num_params

    summary = {"enhancer": name, "pairs": int(len(low)), "iterations": tc["iterations"], "seconds": round(secs, 2),
               "params": num_params(enh.model), "images_per_second": round(tc["iterations"] * tc["batch_size"] / max(secs, 1e-9), 1),
               "first_loss": history[0]["loss"] if history else None, "last_loss": history[-1]["loss"] if history else None,
               "init": lc.init, "device": str(device)}
    with atomic_dir(out) as tmp:
        enh.save(tmp / "model.safetensors", extra=summary)
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        pd.DataFrame(history).to_csv(tmp / "history.csv", index=False)
    return summary


def build_enhancer(p: Params, name: str, model_dir: Path | None = None) -> Any:
    """A ready enhancer: classical from params, learned from its trained checkpoint."""
    from .registry import ENHANCERS

    import llfer.enhance  # noqa: F401

    if name in p.classical:
        return ENHANCERS.build(name, key=f"classical.{name}", **(p.classical[name] or {}))
    if name in p.learned:
        if model_dir is None:
            raise ConfigError(f"enhancer {name!r} is learned: give its model directory")
        ck = Path(model_dir) / "model.safetensors"
        if not ck.exists():
            raise DataError(f"{ck} does not exist (run train_enhancer@{name} first)")
        return ENHANCERS.get(name).load(ck)
    raise ConfigError(f"enhancer: unknown enhancer {name!r}; allowed: {', '.join(sorted(set(p.classical) | set(p.learned)))}")


def apply_enhancer(enh: Any, images: np.ndarray, device: Any = "cpu", batch_size: int = 256) -> np.ndarray:
    if getattr(enh, "learned", False):
        return enh.enhance(images, batch_size=batch_size, device=device)
    return enh.enhance(images)


def enhanced_splits(p: Params, variant: str) -> list[str] | None:
    """Splits an enhancer processes for ``variant``: all (None) for ``enhance.all_splits`` variants
    (the FER "enhanced" input trains on them), else only ``enhance.split`` (what quality and
    test-time enhancement score), which saves most of the learned enhancers' inference time."""
    return None if variant in p.enhance.all_splits else [p.enhance.split]


def run_enhance(p: Params, name: str, degraded: Path, out: Path, model_dir: Path | None = None) -> dict[str, Any]:
    """Apply enhancer ``name`` to every variant in ``enhance.variants``; write ``out/<variant>/``."""
    from tqdm.auto import tqdm

    from .device import resolve_device

    enh = build_enhancer(p, name, model_dir)
    device = resolve_device(p.device)
    info = {}
    with atomic_dir(out) as tmp:
        for v in tqdm(p.enhance.variants, desc=f"enhance {name}", mininterval=1):
            dv = read_dataset(degraded / v)
            splits = enhanced_splits(p, v)
            rows = np.flatnonzero(dv.index["split"].isin(splits).to_numpy()) if splits else np.arange(len(dv.index))
            t0 = time.perf_counter()
            imgs = apply_enhancer(enh, np.asarray(dv.images[rows]), device, p.enhance.batch_size)
            secs = time.perf_counter() - t0
            write_dataset(tmp / v, imgs, dv.index.iloc[rows], classes=dv.classes,
                          provenance={"enhancer": name, "variant": v, "source": str(degraded / v),
                                      "splits": splits or "all"})
            info[v] = {"seconds": round(secs, 3), "images_per_second": round(len(imgs) / max(secs, 1e-9), 1)}
    return info


# ----------------------------------------------------------------------------- quality
def _enhanced_dirs(enhanced_root: Path) -> list[str]:
    if not enhanced_root.exists():
        return []
    return sorted(d.name for d in enhanced_root.iterdir() if d.is_dir() and not d.name.startswith("."))


def run_quality(p: Params, prepared: Path, degraded: Path, enhanced_root: Path, out_json: Path,
                plots_dir: Path, models_root: Path | None = None) -> dict[str, Any]:
    """PSNR / SSIM (vs the clean image) and NIQE of every enhancer's output on each enhanced variant.

    The degraded input itself is a row (``input``).  Writes ``out_json`` and a
    sample-grid PNG per variant (clean / degraded / each enhancer on the same faces).
    Each prepared unpaired low-light set in ``quality.unpaired`` adds a key
    ``unpaired:<dirname>`` with the NIQE of its photos and of every enhancer's
    output on them (:func:`_unpaired_niqe`; learned enhancers whose checkpoint
    is under ``models_root/<name>/``).
    """
    from .metrics.quality import niqe, psnr, ssim

    clean = read_dataset(prepared)
    idx = clean.split_indices(p.quality.split)
    if len(idx) == 0:
        raise DataError(f"{prepared}: split {p.quality.split!r} is empty")
    ref = np.asarray(clean.images[idx])
    names = _enhanced_dirs(enhanced_root)
    rng = np.random.default_rng(p.seed)
    niqe_idx = np.sort(rng.choice(len(idx), min(len(idx), p.quality.niqe_max_images), replace=False))
    grid_idx = np.sort(rng.choice(len(idx), min(len(idx), p.quality.grid_images), replace=False))
    result: dict[str, Any] = {}
    grids: dict[str, list[tuple[str, np.ndarray]]] = {}

    def score(imgs: np.ndarray) -> dict[str, float]:
        row = {"psnr": float(np.mean(np.minimum(psnr(imgs, ref), 100.0))), "ssim": float(np.mean(ssim(imgs, ref)))}
        if p.quality.niqe:
            row["niqe"] = float(np.nanmean(niqe(imgs[niqe_idx], upsample=p.quality.niqe_upsample)))
        return row

    result_clean = {"niqe": float(np.nanmean(niqe(ref[niqe_idx], upsample=p.quality.niqe_upsample)))} if p.quality.niqe else {}
    for v in p.enhance.variants:
        dv = read_dataset(degraded / v)
        low = np.asarray(dv.images[idx])
        rows = {"input": score(low)}
        grids[v] = [("clean", ref[grid_idx]), (v, low[grid_idx])]
        for e in names:
            d = enhanced_root / e / v
            if not d.exists():
                continue
            ed = read_dataset(d)
            e_idx = ed.split_indices(p.quality.split)
            if ed.index["id"].iloc[e_idx].tolist() != clean.index["id"].iloc[idx].tolist():
                raise DataError(f"{d}: its {p.quality.split!r} images do not pair with {prepared} (re-run enhance)")
            ev = np.asarray(ed.images[e_idx])
            rows[e] = score(ev)
            grids[v].append((e, ev[grid_idx]))
        result[v] = rows
    if result_clean:
        result["clean"] = {"reference": result_clean}
    for d in p.quality.unpaired:
        result[f"unpaired:{Path(d).name}"] = _unpaired_niqe(p, Path(d), models_root)
    write_json(out_json, result)
    with atomic_dir(plots_dir) as tmp:
        for v, cols in grids.items():
            _sample_grid(cols, tmp / f"{v}.png", title=f"{v}: clean / degraded / enhancers")
        pd.DataFrame([{"variant": v, "method": m, **s} for v, rows in result.items() for m, s in rows.items()]) \
            .to_csv(tmp / "quality.csv", index=False)
    return result


def _unpaired_niqe(p: Params, directory: Path, models_root: Path | None = None) -> dict[str, dict[str, float]]:
    """NIQE (no reference) of an unpaired low-light set and of each enhancer's output on it.

    ``directory`` is a prepared dataset (``llfer prepare --dataset unpaired``).
    Up to ``quality.niqe_max_images`` photos (a fixed random choice, seed
    ``seed``) are scored as they are (row ``input``), then after every classical
    enhancer and every learned one with ``models_root/<name>/model.safetensors``.
    Photos smaller than 192 px (two 96 px NIQE blocks) are upsampled by
    ``quality.niqe_upsample``.  Computed whenever the set is listed, whatever
    ``quality.niqe`` says (NIQE is the only score without a reference).
    """
    from .device import resolve_device
    from .metrics.quality import niqe

    if not (directory / "images.npy").exists():
        raise DataError(f"quality.unpaired: {directory} is not a prepared dataset "
                        "(make it with `llfer prepare --dataset unpaired --source DIR --out DIR`)")
    ds = read_dataset(directory)
    n = len(ds.images)
    if n == 0:
        raise DataError(f"quality.unpaired: {directory} holds no images")
    sel = np.sort(np.random.default_rng(p.seed).choice(n, min(n, p.quality.niqe_max_images), replace=False))
    low = np.asarray(ds.images[sel])
    h, w = low.shape[1:3]
    up = 1 if min(h, w) >= 192 else p.quality.niqe_upsample
    # keep about as many pixels per batch as enhance.batch_size 48 x 48 faces
    bs = max(1, min(p.enhance.batch_size, p.enhance.batch_size * 48 * 48 // (h * w)))
    device = resolve_device(p.device)
    rows = {"input": {"niqe": float(np.nanmean(niqe(low, upsample=up)))}}
    names = list(p.classical)
    if models_root is not None:
        names += [e for e in p.learned if (Path(models_root) / e / "model.safetensors").exists()]
    for e in names:
        if e in ("identity", "none"):
            continue
        enh = build_enhancer(p, e, Path(models_root) / e if e in p.learned else None)
        rows[e] = {"niqe": float(np.nanmean(niqe(apply_enhancer(enh, low, device, bs), upsample=up)))}
    return rows


def _sample_grid(cols: list[tuple[str, np.ndarray]], path: Path, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(cols[0][1])
    fig, axes = plt.subplots(n, len(cols), figsize=(1.3 * len(cols), 1.3 * n + 0.4), squeeze=False)
    for j, (name, imgs) in enumerate(cols):
        for i in range(n):
            ax = axes[i, j]
            ax.imshow(imgs[i], cmap="gray", vmin=0, vmax=255)
            ax.set_xticks([]), ax.set_yticks([])
            if i == 0:
                ax.set_title(name, fontsize=7)
    if title:
        fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ----------------------------------------------------------------------------- FER
def input_roots(prepared: Path, degraded: Path, enhanced: Path | None, p: Params) -> Any:
    from .inputs import Roots

    return Roots(prepared=Path(prepared), degraded=Path(degraded), enhanced=Path(enhanced) if enhanced else None,
                 enhanced_variant=p.fer.enhanced_variant)


def make_loader(p: Params, roots: Any) -> Any:
    from .inputs import InputLoader

    return InputLoader(roots, p.variant_names(), p.enhance.variants, p.fer.preprocess, seed=p.seed)


def backbone_options(p: Params, backbone: str) -> dict[str, Any]:
    from .registry import BACKBONES

    import llfer.models  # noqa: F401

    e = BACKBONES.entry(backbone, key="fer.backbones")
    opts = dict(e.defaults)
    opts.update(p.fer.models.get(backbone, {}))
    return opts


def build_backbone(p: Params, backbone: str, num_classes: int, in_channels: int) -> tuple[Any, int]:
    from .registry import BACKBONES

    opts = backbone_options(p, backbone)
    opts.update(num_classes=num_classes, in_channels=in_channels)
    model = BACKBONES.build(backbone, key=f"fer.models.{backbone}", **opts)
    return model, int(opts.get("input_size", 48))


def _eval_specs(p: Params, test_spec: str, with_enhanced: bool) -> dict[str, str]:
    """Test sets a run is scored on: its own test input and fer.eval_on, composed with its preprocessors."""
    from .inputs import parse_spec

    _, preps = parse_spec(test_spec, p.variant_names(), p.enhance.variants)
    specs = {"test": test_spec}
    for s in p.fer.eval_on:
        src, extra = parse_spec(s, p.variant_names(), p.enhance.variants)
        if src.startswith("enhanced") and not with_enhanced:
            continue
        specs[s] = "+".join([src, *extra, *preps])
    return specs


def save_classifier(path: Path, model: Any, config: dict[str, Any]) -> None:
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata={"config": json.dumps(config)})


def load_classifier(path: Path) -> tuple[Any, dict[str, Any]]:
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path)
    if not path.exists():
        raise DataError(f"classifier checkpoint {path} does not exist")
    with safe_open(str(path), framework="pt") as f:
        cfg = json.loads((f.metadata() or {})["config"])
    from .registry import BACKBONES

    model = BACKBONES.build(cfg["backbone"], **cfg["options"])
    model.load_state_dict(load_file(str(path)))
    model.eval()
    return model, cfg


def evaluate_specs(model: Any, loader: Any, specs: dict[str, str], classes: list[str], input_size: int,
                   device: Any, batch_size: int = 512) -> dict[str, dict[str, Any]]:
    from .metrics.classification import classification_metrics
    from .train.fer import predict

    out = {}
    for key, spec in specs.items():
        x, y, _ = loader.load(spec, "test", train=False)
        pred = predict(model, x, input_size, device, batch_size).argmax(1)
        m = classification_metrics(y, pred, classes)
        m["pred"] = pred
        m["true"] = y
        out[key] = m
    return out


def run_train_fer(p: Params, backbone: str, input_name: str, roots: Any, model_out: Path, metrics_out: Path,
                  plots_out: Path, resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """Train ``backbone`` on input ``input_name``; score it on its test input and ``fer.eval_on``."""
    from .device import resolve_device, seed_everything
    from .metrics.classification import confusion_rows
    from .train.fer import train_classifier

    spec = p.input_def(input_name)
    loader = make_loader(p, roots)
    classes = loader.classes()
    xtr, ytr, _ = loader.load(spec.train, "train", train=True)
    xva, yva, _ = loader.load(spec.test, "val", train=False)
    in_ch = 1 if xtr.ndim == 3 else xtr.shape[3]
    seed_everything(p.seed)
    model, input_size = build_backbone(p, backbone, len(classes), in_ch)
    device = resolve_device(p.device)
    ckpt = Path(model_out).parent / f".{Path(model_out).name}.last.pt"
    res = train_classifier(model, (xtr, ytr), (xva, yva), p.fer.train, num_classes=len(classes),
                           input_size=input_size, device=device, seed=p.seed, checkpoint=ckpt, resume=resume,
                           progress=progress)
    with_enh = roots.enhanced is not None
    evals = evaluate_specs(res.model, loader, _eval_specs(p, spec.test, with_enh), classes, input_size, device,
                           p.fer.train.eval_batch_size)
    main = evals["test"]
    from .enhance.base import num_params

    # Flat and small, numbers only (dvc metrics show / diff); details go to plots/ and the model dir.
    metrics: dict[str, Any] = {
        "test_acc": round(main["accuracy"], 4), "test_macro_f1": round(main["macro_f1"], 4),
        "val_acc": round(res.best_val_acc, 4), "best_epoch": res.best_epoch, "epochs_run": len(res.history),
        "train_seconds": round(res.seconds, 2), "params": num_params(res.model),
        **{f"acc_{k}": round(v["accuracy"], 4) for k, v in evals.items() if k != "test"},
    }
    per_class = pd.DataFrame([{"class": c, "precision": round(v["precision"], 4), "recall": round(v["recall"], 4),
                               "f1": round(v["f1"], 4), "support": v["support"]} for c, v in main["per_class"].items()])
    cfg = {"backbone": backbone, "options": {**backbone_options(p, backbone), "num_classes": len(classes),
                                              "in_channels": in_ch}, "input": input_name,
           "train_spec": spec.train, "test_spec": spec.test, "classes": classes}
    with atomic_dir(model_out) as tmp:
        save_classifier(tmp / "model.safetensors", res.model, cfg)
        (tmp / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    write_json(metrics_out, metrics)
    with atomic_dir(plots_out) as tmp:
        pd.DataFrame(res.history).to_csv(tmp / "history.csv", index=False)
        per_class.to_csv(tmp / "per_class.csv", index=False)
        _curves(res.history, tmp / "curves.png", f"{backbone} / {input_name}")
        write_json(tmp / "confusion.json", confusion_rows(main["true"], main["pred"], classes))
        plot_confusion(np.array(main["confusion"]), classes, tmp / "confusion.png",
                       title=f"{backbone} / {input_name}: test {spec.test} (acc {main['accuracy']:.3f})")
    ckpt.unlink(missing_ok=True)
    return metrics


def _curves(history: list[dict[str, float]], path: Path, title: str) -> None:
    """Loss and accuracy per epoch (train and validation)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h = pd.DataFrame(history)
    fig, (a, b) = plt.subplots(1, 2, figsize=(8, 3))
    for col in ("train_loss", "val_loss"):
        if col in h:
            a.plot(h["epoch"], h[col], label=col)
    for col in ("train_acc", "val_acc"):
        if col in h:
            b.plot(h["epoch"], h[col], label=col)
    a.set_xlabel("epoch"), b.set_xlabel("epoch"), a.set_ylabel("loss"), b.set_ylabel("accuracy")
    a.legend(fontsize=7), b.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_confusion(cm: np.ndarray, classes: Sequence[str], path: Path, title: str = "") -> None:
    """Heatmap with row-normalised percentages."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(cm, dtype=np.float64)
    pct = 100 * cm / np.maximum(cm.sum(1, keepdims=True), 1)
    k = len(classes)
    fig, ax = plt.subplots(figsize=(0.75 * k + 1.8, 0.75 * k + 1.2))
    im = ax.imshow(pct, cmap="Blues", vmin=0, vmax=100)
    for i in range(k):
        for j in range(k):
            ax.text(j, i, f"{pct[i, j]:.0f}", ha="center", va="center", fontsize=7,
                    color="white" if pct[i, j] > 60 else "black")
    ax.set_xticks(range(k), classes, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(k), classes, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    if title:
        ax.set_title(title, fontsize=8)
    fig.colorbar(im, ax=ax, fraction=0.046, label="% of row")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _run_dirs(models_root: Path) -> list[Path]:
    if not Path(models_root).exists():
        return []
    return sorted(d for d in Path(models_root).iterdir() if (d / "model.safetensors").exists())


# ----------------------------------------------------------------------------- test-time enhancement
def run_evaluate(p: Params, models_root: Path, roots: Any, enhanced_root: Path, out_json: Path) -> dict[str, Any]:
    """Test-time enhancement: every trained classifier scored on every enhancer's output.

    For each run, enhancer ``E`` and enhanced variant ``v``, the test images of
    ``v`` enhanced by ``E`` (then the run's own preprocessors) go through the
    classifier; keys are ``"<E>:<v>"``.  The ``identity`` enhancer, when present,
    gives the unenhanced baseline.
    """
    from dataclasses import replace

    from .device import resolve_device
    from .inputs import parse_spec

    device = resolve_device(p.device)
    enhancers = _enhanced_dirs(Path(enhanced_root))
    if not enhancers:
        raise DataError(f"{enhanced_root}: no enhanced data found (run the enhance stages first)")
    loaders = {e: make_loader(p, replace(roots, enhanced=Path(enhanced_root) / e)) for e in enhancers}
    classes = loaders[enhancers[0]].classes()
    out: dict[str, Any] = {}
    for d in _run_dirs(models_root):
        model, cfg = load_classifier(d / "model.safetensors")
        model.to(device)
        _, preps = parse_spec(cfg["test_spec"], p.variant_names(), p.enhance.variants)
        size = int(cfg["options"].get("input_size", 48))
        row = {}
        for e, loader in loaders.items():
            specs = {f"{e}:{v}": "+".join([f"enhanced:{v}", *preps]) for v in p.enhance.variants
                     if (Path(enhanced_root) / e / v).exists()}
            res = evaluate_specs(model, loader, specs, classes, size, device, p.fer.train.eval_batch_size)
            row.update({k: round(v["accuracy"], 4) for k, v in res.items()})
        out[d.name] = row
    write_json(out_json, out)
    return out


# ----------------------------------------------------------------------------- cross-validation
def run_cv(p: Params, roots: Any, out_json: Path, progress: bool = True) -> dict[str, Any]:
    """Stratified k-fold cross-validation of ``cv.backbone`` on ``cv.input`` over all splits pooled."""
    from sklearn.model_selection import StratifiedKFold

    from .device import resolve_device, seed_everything
    from .metrics.classification import classification_metrics
    from .train.fer import predict, train_classifier

    spec = p.input_def(p.cv.input)
    loader = make_loader(p, roots)
    classes = loader.classes()
    splits = ["train", "val", "test"]
    ds = loader.dataset("clean")
    present = [s for s in splits if ds.split_mask(s).any()]
    xtr_all, y_all, ids = loader.load(spec.train, present, train=True)
    xte_all, _, _ = loader.load(spec.test, present, train=False) if spec.test != spec.train else (xtr_all, None, None)
    n = len(y_all)
    sel = np.arange(n)
    if p.cv.max_images and n > p.cv.max_images:
        from sklearn.model_selection import train_test_split

        sel, _ = train_test_split(sel, train_size=p.cv.max_images, stratify=y_all, random_state=p.seed)
        sel = np.sort(sel)
    y = y_all[sel]
    counts = np.bincount(y, minlength=len(classes))
    k = min(p.cv.folds, int(counts[counts > 0].min()))
    if k < 2:
        raise DataError(f"cv: a class has fewer than 2 images; cannot run {p.cv.folds}-fold CV")
    skf = StratifiedKFold(n_splits=k, shuffle=True, random_state=p.seed)
    device = resolve_device(p.device)
    tcfg = p.fer.train.model_copy(update={"epochs": p.cv.epochs, "patience": 0})
    folds = []
    for f, (tr, te) in enumerate(skf.split(np.zeros(len(y)), y)):
        seed_everything(p.seed + f)
        in_ch = 1 if xtr_all.ndim == 3 else xtr_all.shape[3]
        model, size = build_backbone(p, p.cv.backbone, len(classes), in_ch)
        res = train_classifier(model, (xtr_all[sel[tr]], y[tr]), None, tcfg, num_classes=len(classes), input_size=size,
                               device=device, seed=p.seed + f, progress=progress)
        pred = predict(res.model, xte_all[sel[te]], size, device).argmax(1)
        m = classification_metrics(y[te], pred, classes)
        folds.append({"fold": f, "accuracy": round(m["accuracy"], 4), "macro_f1": round(m["macro_f1"], 4), "n": m["n"]})
    accs = np.array([r["accuracy"] for r in folds])
    out = {"backbone": p.cv.backbone, "input": p.cv.input, "folds": k, "epochs": p.cv.epochs, "images": int(len(y)),
           "accuracy_mean": round(float(accs.mean()), 4), "accuracy_std": round(float(accs.std(ddof=1)), 4),
           "macro_f1_mean": round(float(np.mean([r["macro_f1"] for r in folds])), 4), "per_fold": folds}
    write_json(out_json, out)
    return out


# ----------------------------------------------------------------------------- report
def run_report(p: Params, metrics_dir: Path, out_json: Path, plots_dir: Path) -> dict[str, Any]:
    """Aggregate the headline numbers into ``summary.json``; draw the results table and accuracy chart."""
    metrics_dir = Path(metrics_dir)
    runs = {f.stem: read_json(f) for f in sorted((metrics_dir / "fer").glob("*.json"))}
    if not runs:
        raise DataError(f"{metrics_dir / 'fer'}: no FER metrics found (run train_fer first)")
    tte = read_json(metrics_dir / "tte.json") if (metrics_dir / "tte.json").exists() else {}
    quality = read_json(metrics_dir / "quality.json") if (metrics_dir / "quality.json").exists() else {}
    cv = read_json(metrics_dir / "cv.json") if (metrics_dir / "cv.json").exists() else {}
    rows = []
    notes: list[str] = []
    for name, m in runs.items():
        acc = _acc(m)
        row = {"run": name, "test": m["test_acc"], "macro_f1": m["test_macro_f1"], **{f"on {k}": v for k, v in acc.items()}}
        for k, v in (tte.get(name) or {}).items():
            if k.split(":")[0] == p.enhancer:
                row[f"on {k}"] = v
        rows.append(row)
    table = pd.DataFrame(rows)
    summary: dict[str, Any] = {"fer": {}}
    for r in rows:
        summary["fer"][r["run"]] = {k.replace("on ", "acc_").replace(":", "_"): v for k, v in r.items() if k != "run"}
    head = f"{p.report.headline_backbone}-clean"
    if head in runs:
        m = runs[head]
        acc = _acc(m)
        v = p.fer.enhanced_variant
        h = {"clean_test_acc": acc.get("clean", m["test_acc"])}
        if v in acc:
            h[f"{v}_test_acc"] = acc[v]
            h["drop_points"] = round(100 * (h["clean_test_acc"] - acc[v]), 2)
        tr = tte.get(head) or {}
        te = tr.get(f"{p.enhancer}:{v}")
        if te is not None:
            h[f"enhanced_{v}_test_acc"] = te
            if v in acc:
                h["recovered_points"] = round(100 * (te - acc[v]), 2)
        on_v = {k.split(":")[0]: a for k, a in tr.items() if k.endswith(f":{v}")}
        if on_v:
            best = max(on_v, key=on_v.get)
            h[f"best_enhanced_{v}_test_acc"] = on_v[best]
            notes.append(f"Best test-time enhancer on {v} for {head}: {best} ({on_v[best]:.4f}); "
                         f"selected enhancer: {p.enhancer}.")
        summary["headline"] = h
    if quality:
        summary["quality"] = {
            v: {"best_psnr": max(((k, s["psnr"]) for k, s in rows_.items() if "psnr" in s), key=lambda t: t[1])[0],
                **{f"{k}_psnr": round(s["psnr"], 3) for k, s in rows_.items() if "psnr" in s}}
            for v, rows_ in quality.items() if any("psnr" in s for s in rows_.values())}
    if cv:
        summary["cv"] = {"accuracy_mean": cv["accuracy_mean"], "accuracy_std": cv["accuracy_std"], "folds": cv["folds"]}
    write_json(out_json, summary)
    with atomic_dir(plots_dir) as tmp:
        table.to_csv(tmp / "results.csv", index=False)
        (tmp / "results.md").write_text(_markdown_table(table) + "".join(f"\n{n}\n" for n in notes))
        _accuracy_chart(table, tmp / "accuracy.png")
    return summary


def _acc(m: dict[str, Any]) -> dict[str, float]:
    """The ``acc_<test set>`` entries of a flat FER metrics file, keyed by test set."""
    return {k[4:]: v for k, v in m.items() if k.startswith("acc_")}


def _markdown_table(df: pd.DataFrame) -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in df.iterrows():
        lines.append("| " + " | ".join(f"{v:.4f}" if isinstance(v, float) else str(v) for v in r.tolist()) + " |")
    return "\n".join(lines) + "\n"


def _accuracy_chart(df: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = [c for c in df.columns if c == "test" or c.startswith("on ")]
    fig, ax = plt.subplots(figsize=(max(5, 1.2 * len(df) * max(1, len(cols)) / 3), 3.5))
    w = 0.8 / max(1, len(cols))
    x = np.arange(len(df))
    for j, c in enumerate(cols):
        ax.bar(x + j * w, df[c].astype(float).fillna(0).to_numpy(), w, label=c)
    ax.set_xticks(x + w * (len(cols) - 1) / 2, df["run"], rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
