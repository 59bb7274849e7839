"""Benchmark: llfer's FER training loop against a conventional torchvision loop, per backbone.

Usage::

    .venv/bin/python benchmarks/bench_train_loop.py [--backbones mini_xception,efcnet,...]
        [--images N | --images name=N,...] [--epochs 1] [--repeats 2] [--device auto|cpu|cuda]
        [--threads T] [--workers 2] [--out benchmarks/results/train_loop.json]

Data: the real FER2013 archive ``$LLFER_DATA_DIR/fer2013.zip`` (default
``<repo>/data/raw``).  Once, into ``benchmarks/work/train_loop/``
(gitignored), its JPEGs are extracted as an ImageFolder tree (``train/<class>/``
and ``val/<class>/`` = the PublicTest images) and the same archive is read by
llfer's ``fer2013`` reader into a uint8 array (cached as .npy).  Both loops see
the *same* images: a seeded random subset of ``N`` training images and
``N // 8`` validation images (the FER2013 train:PublicTest ratio, 28,709 : 3,589,
so the per-epoch evaluation costs what it costs on the full set).

Per backbone, with the same model (same init), optimiser (AdamW, lr 3e-3), batch
64, number of epochs and steps:

(a) conventional: ``torchvision.datasets.ImageFolder`` + ``DataLoader(shuffle=True,
    num_workers=--workers (default 2, as in PyTorch's tutorials))`` + PIL transforms
    (Grayscale, RandomHorizontalFlip, RandomAffine(10, translate 0.1, scale
    0.9-1.1), [Resize to the backbone's input size when it is not 48], ToTensor,
    Normalize(0.5, 0.5)); fp32, default memory format; full evaluation of the
    validation loader (batch 64, ``no_grad``) after every epoch.
(b) llfer: ``llfer.train.fer.train_classifier`` with its defaults (uint8 tensor
    loaded once, batched tensor augmentation, channels_last; bf16 autocast on a
    GPU), evaluating the same validation images after every epoch.

Each repeat builds fresh models and runs (a) then (b) (order alternates between
repeats) in this one process; wall time covers the whole fit (worker start-up,
every epoch, every evaluation), not model construction or data preparation.
Reported: training images per second (= images x epochs / wall), the ratio, and
epochs per second extrapolated to the full 28,709-image FER2013 epoch (with its
3,589-image evaluation).  A short untimed warm-up of both loops comes first.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import platform
import statistics
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

FULL_TRAIN = 28709
ALL = ["mini_xception", "efcnet", "resnet18", "alexnet", "resnet50", "inception_resnet_v2"]
#: default training-subset sizes on a CPU (big backbones run on fewer images); 0 = all
CPU_IMAGES = {"mini_xception": 4096, "efcnet": 2048, "resnet18": 1024, "alexnet": 1024, "resnet50": 256,
              "inception_resnet_v2": 128}
BATCH = 64
LR = 3e-3


def data_dir() -> Path:
    return Path(os.environ.get("LLFER_DATA_DIR") or REPO / "data" / "raw")


def prepare_cache(archive: Path, cache: Path) -> tuple[Path, dict]:
    """ImageFolder tree + llfer uint8 arrays of the FER2013 archive, built once into ``cache``."""
    tree = cache / "imagefolder"
    done = cache / "done.json"
    stamp = {"archive": str(archive), "size": archive.stat().st_size, "mtime": int(archive.stat().st_mtime)}
    if done.exists() and json.loads(done.read_text()).get("stamp") == stamp:
        arr = {k: np.load(cache / f"{k}.npy", allow_pickle=False) for k in ("images", "labels", "split")}
        arr["source"] = np.array((cache / "source.txt").read_text().splitlines())
        return tree, arr
    from llfer.registry import DATASETS, import_all

    import_all()  # registers the readers

    t = time.perf_counter()
    prep = DATASETS.build("fer2013", source=str(archive))
    t_read = time.perf_counter() - t
    idx = prep.index
    keep = idx["split"].isin(["train", "val"]).to_numpy()
    images = np.ascontiguousarray(prep.images[keep])
    labels = idx["label"].to_numpy()[keep].astype(np.int64)
    split = (idx["split"].to_numpy()[keep] == "val").astype(np.int8)  # 0 train, 1 val
    source = idx["source"].astype(str).to_numpy()[keep]
    t = time.perf_counter()
    with zipfile.ZipFile(archive) as z:
        for m, s, name in zip(source, split, idx["label_name"].to_numpy()[keep]):
            dst = tree / ("val" if s else "train") / str(name) / Path(m).name
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_bytes(z.read(m))
    t_extract = time.perf_counter() - t
    cache.mkdir(parents=True, exist_ok=True)
    for k, v in (("images", images), ("labels", labels), ("split", split)):
        np.save(cache / f"{k}.npy", v)
    (cache / "source.txt").write_text("\n".join(source) + "\n")
    done.write_text(json.dumps({"stamp": stamp, "read_s": t_read, "extract_s": t_extract}))
    print(f"cache: fer2013 reader {t_read:.1f} s, extracted {len(source)} JPEGs in {t_extract:.1f} s", flush=True)
    return tree, {"images": images, "labels": labels, "split": split, "source": source}


def pick(arr: dict, n_train: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (into the cached arrays) of ``n_train`` train and ``n_train // 8`` val images (0 = all)."""
    rng = np.random.default_rng(seed)
    tr, va = np.flatnonzero(arr["split"] == 0), np.flatnonzero(arr["split"] == 1)
    if n_train and n_train < len(tr):
        tr = np.sort(rng.choice(tr, n_train, replace=False))
        va = np.sort(rng.choice(va, max(1, n_train // 8), replace=False))
    return tr, va


def build(name: str, seed: int) -> tuple[nn.Module, int]:
    import llfer.models  # noqa: F401
    from llfer.registry import BACKBONES

    fn = BACKBONES.get(name)
    size = inspect.signature(fn).parameters["input_size"].default
    torch.manual_seed(seed)
    return BACKBONES.build(name, num_classes=7, in_channels=1, input_size=size), size


# --------------------------------------------------------------------------- (a) conventional loop
def conventional_fit(model: nn.Module, tree: Path, files_tr: list[str], files_va: list[str], size: int, epochs: int,
                     device: torch.device, workers: int, max_steps: int | None = None) -> None:
    """What a typical user writes: ImageFolder + DataLoader + PIL transforms, fp32, eval every epoch."""
    from torch.utils.data import DataLoader, Subset
    from torchvision import datasets, transforms as T

    resize = [T.Resize((size, size))] if size != 48 else []
    tf_train = T.Compose([T.Grayscale(), T.RandomHorizontalFlip(),
                          T.RandomAffine(10, translate=(0.1, 0.1), scale=(0.9, 1.1)), *resize,
                          T.ToTensor(), T.Normalize((0.5,), (0.5,))])
    tf_eval = T.Compose([T.Grayscale(), *resize, T.ToTensor(), T.Normalize((0.5,), (0.5,))])
    ds_tr = datasets.ImageFolder(str(tree / "train"), transform=tf_train)
    ds_va = datasets.ImageFolder(str(tree / "val"), transform=tf_eval)
    pos_tr = {p: i for i, (p, _) in enumerate(ds_tr.samples)}
    pos_va = {p: i for i, (p, _) in enumerate(ds_va.samples)}
    ds_tr = Subset(ds_tr, [pos_tr[f] for f in files_tr])
    ds_va = Subset(ds_va, [pos_va[f] for f in files_va])
    dl_tr = DataLoader(ds_tr, batch_size=BATCH, shuffle=True, num_workers=workers, drop_last=True)
    dl_va = DataLoader(ds_va, batch_size=BATCH, shuffle=False, num_workers=workers)
    model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=1e-4)
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(epochs):
        model.train()
        for step, (x, y) in enumerate(dl_tr):
            x, y = x.to(device), y.to(device)
            opt.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
            if max_steps and step + 1 >= max_steps:
                break
        model.eval()
        correct = 0
        with torch.no_grad():
            for x, y in dl_va:
                correct += (model(x.to(device)).argmax(1).cpu() == y).sum().item()
    if device.type == "cuda":
        torch.cuda.synchronize()


# --------------------------------------------------------------------------- (b) llfer loop
def llfer_fit(model: nn.Module, xtr, ytr, xva, yva, size: int, epochs: int, device: torch.device, **cfg_kw) -> None:
    from llfer.config import FerTrainCfg
    from llfer.train.fer import train_classifier

    channels_last = cfg_kw.pop("channels_last", True)  # a runtime setting, not a FerTrainCfg field
    cfg = FerTrainCfg(epochs=epochs, batch_size=BATCH, lr=LR, weight_decay=1e-4, schedule="none", **cfg_kw)
    train_classifier(model, (xtr, ytr), (xva, yva), cfg, num_classes=7, input_size=size, device=device,
                     seed=0, progress=False, channels_last=channels_last)
    if device.type == "cuda":
        torch.cuda.synchronize()


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backbones", default=",".join(ALL))
    ap.add_argument("--images", default="", help="training images per backbone: N for all, or name=N,...; 0 = all "
                    "(default: all on a GPU, CPU_IMAGES on a CPU)")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads for both loops (0 = torch default)")
    ap.add_argument("--workers", type=int, default=2, help="DataLoader num_workers of the conventional loop")
    ap.add_argument("--llfer-option", action="append", default=[], metavar="KEY=JSON",
                    help="extra FerTrainCfg field (or channels_last) for the llfer loop, e.g. channels_last=false (ablation)")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--cache", default=str(REPO / "benchmarks" / "work" / "train_loop"))
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "train_loop.json"))
    a = ap.parse_args(argv)

    device = torch.device("cuda" if a.device == "cuda" or (a.device == "auto" and torch.cuda.is_available()) else "cpu")
    if a.threads:
        torch.set_num_threads(a.threads)
    names = [b.strip() for b in a.backbones.split(",") if b.strip()]
    default_n = {n: (0 if device.type == "cuda" else CPU_IMAGES.get(n, 1024)) for n in names}
    if a.images:
        if "=" in a.images:
            default_n.update({k: int(v) for k, v in (kv.split("=") for kv in a.images.split(","))})
        else:
            default_n = {n: int(a.images) for n in names}
    llfer_kw = {k: json.loads(v) for k, v in (o.split("=", 1) for o in a.llfer_option)}

    archive = Path(a.data_dir or data_dir()) / "fer2013.zip"
    if not archive.exists():
        raise SystemExit(f"{archive} not found (set LLFER_DATA_DIR)")
    tree, arr = prepare_cache(archive, Path(a.cache))
    names_by_row = _imagefolder_paths(tree, arr)

    rows = []
    print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}, conventional "
          f"DataLoader num_workers={a.workers}, epochs {a.epochs}, repeats {a.repeats}", flush=True)
    for name in names:
        tr, va = pick(arr, default_n[name], seed=0)
        xtr, ytr, xva, yva = arr["images"][tr], arr["labels"][tr], arr["images"][va], arr["labels"][va]
        ftr, fva = [names_by_row[i] for i in tr], [names_by_row[i] for i in va]
        _, size = build(name, 0)
        # untimed warm-up: oneDNN primitive creation, lazy imports, worker fork paths
        # (rows spread over the subset: it is sorted by file, hence by class, and llfer refuses one-class labels)
        w, wv = np.linspace(0, len(tr) - 1, BATCH * 2).astype(int), np.linspace(0, len(va) - 1, BATCH).astype(int)
        conventional_fit(build(name, 0)[0], tree, [ftr[i] for i in w], [fva[i] for i in wv], size, 1, device, 0,
                         max_steps=2)
        llfer_fit(build(name, 0)[0], xtr[w], ytr[w], xva[wv], yva[wv], size, 1, device, **llfer_kw)
        times: dict[str, list[float]] = {"conventional": [], "llfer": []}
        for r in range(a.repeats):
            order = ["conventional", "llfer"] if r % 2 == 0 else ["llfer", "conventional"]
            for which in order:
                model, _ = build(name, r)
                t = time.perf_counter()
                if which == "conventional":
                    conventional_fit(model, tree, ftr, fva, size, a.epochs, device, a.workers)
                else:
                    llfer_fit(model, xtr, ytr, xva, yva, size, a.epochs, device, **llfer_kw)
                times[which].append(time.perf_counter() - t)
                del model
        steps = len(tr) // BATCH
        n_img = steps * BATCH * a.epochs
        ips = {k: n_img / statistics.median(v) for k, v in times.items()}
        per_rep = [c / l for c, l in zip(times["conventional"], times["llfer"])]
        row = {"backbone": name, "input_size": size, "train_images": int(len(tr)), "val_images": int(len(va)),
               "steps_per_epoch": steps, "epochs": a.epochs,
               "seconds": {k: [round(x, 2) for x in v] for k, v in times.items()},
               "images_per_s": {k: round(v, 1) for k, v in ips.items()},
               "full_epochs_per_s": {k: round(v / FULL_TRAIN, 5) for k, v in ips.items()},
               "full_epoch_s": {k: round(FULL_TRAIN / v, 1) for k, v in ips.items()},
               "ratio": round(ips["llfer"] / ips["conventional"], 2),
               "ratio_per_repeat": [round(x, 2) for x in per_rep]}
        rows.append(row)
        print(f"{name:20s} {len(tr):6d} img  conventional {ips['conventional']:8.1f} img/s  llfer {ips['llfer']:8.1f} "
              f"img/s  x{row['ratio']:.2f}  (per repeat {row['ratio_per_repeat']})", flush=True)

    print()
    hdr = f"| backbone | size | train imgs | conventional img/s | llfer img/s | ratio | full epoch s (conv / llfer) |"
    print(hdr)
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['backbone']} | {r['input_size']} | {r['train_images']} | {r['images_per_s']['conventional']} | "
              f"{r['images_per_s']['llfer']} | {r['ratio']}x | {r['full_epoch_s']['conventional']} / "
              f"{r['full_epoch_s']['llfer']} |")
    res = {
        "benchmark": "bench_train_loop", "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "device": str(device), "device_name": torch.cuda.get_device_name() if device.type == "cuda" else platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(), "torch": torch.__version__, "threads": torch.get_num_threads(),
        "conventional": {"num_workers": a.workers, "batch": BATCH, "dtype": "float32", "memory_format": "contiguous",
                         "eval": "full val loader every epoch, no_grad"},
        "llfer": {"batch": BATCH, "options": llfer_kw, "eval": "full val every epoch, inference_mode",
                  "autocast": "bf16" if device.type == "cuda" else "off"},
        "full_epoch_images": FULL_TRAIN, "results": rows,
    }
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(res, indent=2) + "\n")
    tmp.replace(out)
    print(f"\nwrote {out}")
    return res


def _imagefolder_paths(tree: Path, arr: dict) -> list[str]:
    """ImageFolder sample path of each cached row (the tree was written from the same rows)."""
    out = []
    for s, src in zip(arr["split"], arr["source"]):
        fname = Path(src).name
        out.append(fname)
    # resolve names to full paths by scanning the tree once (class folder = reader's label name)
    where = {}
    for sub in ("train", "val"):
        for p in (tree / sub).glob("*/*"):
            where[(sub, p.name)] = str(p)
    return [where[("val" if s else "train", f)] for s, f in zip(arr["split"], out)]


if __name__ == "__main__":
    main()
