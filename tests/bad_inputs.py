"""The bad inputs of issue 13 as data: each case builds its files in an empty folder and names the
``llfer`` command to run there (relative paths, run with that folder as the working directory).

Used by ``tests/test_bad_inputs.py`` (every case must end as the case says: a one-line error naming the
culprit, or a correct result; nothing outside the outputs changed) and by
``benchmarks/bad_inputs_table.py`` (the before / after table in docs/reliability.md), which runs the
same commands against another checkout of the package.

A case's ``setup(folder)`` returns a :class:`Run`: ``argv`` for ``llfer``; ``culprit``, the text the
one-line error must contain (None when the command must succeed); ``outputs``, paths (relative) the
command may create or change; ``check(folder)``, run after a success (a wrong result there is a
silent failure), returns None when the result is right, else what is wrong.  The rest of the folder (inputs, bystanders) must stay as it was.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

#: params valid for every version of llfer compared here: a tiny, one-epoch, 16 px run
PARAMS = """\
seed: 0
dataset: {options: {num_images: 70, num_subjects: 14}}
fer:
  eval_on: []
  models: {mini_xception: {input_size: 16}}
  train: {epochs: 1, batch_size: 16, augment: {flip: false, rotation: 0.0, shift: 0.0, zoom: 0.0}}
"""
CLASSES = ["angry", "happy", "sad"]


@dataclass
class Run:
    argv: list[str]
    culprit: str | None = None
    outputs: list[str] = field(default_factory=list)
    check: Callable[[Path], str | None] | None = None
    #: SIGTERM the command once this (relative) glob matches (the command is then run as a subprocess)
    terminate_when: str | None = None
    #: run ``check`` even when the command fails (else only after a success: what a silent run got wrong)
    always_check: bool = False


@dataclass
class Case:
    name: str
    kind: str  # what the issue found: data loss | silent | traceback | memory | leftover
    what: str
    setup: Callable[[Path], Run]


# --------------------------------------------------------------------------- building blocks


def params(d: Path, extra: str = "") -> str:
    (d / "p.yaml").write_text(PARAMS + extra)
    return "p.yaml"


def _index(n: int, classes: list[str], prefix: str = "img") -> pd.DataFrame:
    labels = np.arange(n) % len(classes)
    split = np.array(["train", "train", "train", "val", "test"] * (n // 5 + 1))[:n]
    return pd.DataFrame({"id": [f"{prefix}{i:05d}" for i in range(n)], "split": split, "label": labels,
                         "label_name": [classes[k] for k in labels], "subject": "", "source": ""})


def prepared(d: Path, name: str = "prep", classes: list[str] = CLASSES, n: int = 60, prefix: str = "img") -> str:
    """A prepared set: class = brightness band, so a short run learns something."""
    from llfer.data.store import write_dataset

    idx = _index(n, classes, prefix)
    rng = np.random.default_rng(1)
    base = np.linspace(50, 200, len(classes))[idx["label"].to_numpy()]
    imgs = np.clip(base[:, None, None] + rng.normal(0, 10, (n, 16, 16)), 0, 255).astype(np.uint8)
    write_dataset(d / name, imgs, idx, classes=classes)
    return name


def degraded(d: Path, prep: str = "prep", name: str = "deg") -> str:
    from llfer.data.store import read_dataset, write_dataset

    ds = read_dataset(d / prep)
    write_dataset(d / name / "dark_pil", (np.asarray(ds.images) // 10).astype(np.uint8), ds.index, classes=ds.classes)
    return name


def png(path: Path, a: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(a).save(path)


def faces(d: Path, name: str = "faces", classes: tuple[str, ...] = ("angry", "happy")) -> str:
    """A class-folder source with train/val/test folders (no carving needed)."""
    for split in ("train", "val", "test"):
        for k, c in enumerate(classes):
            for i in range(3):
                png(d / name / split / c / f"{split}_{c}_{i}.png", np.full((8, 8), 30 * i + 80 * k, np.uint8))
    return name


def train_fer(prep: str = "prep", deg: str = "deg", inp: str = "clean", metrics: str = "m.json",
              *extra: str) -> list[str]:
    return ["train-fer", "mini_xception", inp, "--params", "p.yaml", "--prepared", prep, "--degraded", deg,
            "--model-out", "model", "--metrics", metrics, "--plots", "plots", *extra]


TRAIN_OUTPUTS = ["model", "m.json", "plots", ".model.last.pt"]


def fer_csv(d: Path, usages: list[str], pixels: Callable[[int], str] | None = None) -> str:
    rng = np.random.default_rng(0)
    rows = ["emotion,pixels,Usage"]
    for i, u in enumerate(usages):
        px = pixels(i) if pixels else " ".join(str(v) for v in rng.integers(0, 256, 36))
        rows.append(f"{i % 7},{px},{u}")
    (d / "fer2013.csv").write_text("\n".join(rows) + "\n")
    return "fer2013.csv"


def _metrics_root(d: Path, fer: dict | None = None, cv: dict | None = None) -> None:
    (d / "metrics" / "fer").mkdir(parents=True)
    (d / "metrics" / "fer" / "mini_xception-clean.json").write_text(json.dumps(fer or {"test_acc": 0.5, "test_macro_f1": 0.4}))
    if cv is not None:
        (d / "metrics" / "cv.json").write_text(json.dumps(cv))


def _report(d: Path) -> list[str]:
    params(d)
    return ["report", "--params", "p.yaml", "--metrics", "metrics", "--out", "metrics/summary.json", "--plots", "rplots"]


def _evaluate(d: Path, payload: bytes | Callable[[Path], None]) -> Run:
    params(d)
    prepared(d)
    degraded(d)
    from llfer.data.store import read_dataset, write_dataset

    dv = read_dataset(d / "deg" / "dark_pil")
    write_dataset(d / "enh" / "he" / "dark_pil", np.asarray(dv.images), dv.index, classes=dv.classes)
    ck = d / "models" / "mini_xception-clean" / "model.safetensors"
    ck.parent.mkdir(parents=True)
    if callable(payload):
        payload(ck)
    else:
        ck.write_bytes(payload)
    return Run(["evaluate", "--params", "p.yaml", "--models", "models", "--prepared", "prep", "--degraded", "deg",
                "--enhanced", "enh", "--out", "tte.json"], culprit="models/mini_xception-clean/model.safetensors",
               outputs=["tte.json"])


def _safetensors_without_config(path: Path) -> None:
    import torch
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(path))


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def _resume(d: Path, payload: bytes) -> Run:
    params(d)
    prepared(d)
    degraded(d)
    (d / ".model.last.pt").write_bytes(payload)
    return Run(train_fer("prep", "deg", "clean", "m.json", "--resume"), culprit=".model.last.pt",
               outputs=["model", "m.json", "plots"], check=None)


def _no_pwned(d: Path) -> str | None:
    return "the pickle ran code (PWNED exists)" if (d / "PWNED").exists() else None


# --------------------------------------------------------------------------- cases: data loss


def c_out_file(d: Path) -> Run:
    (d / "notes.txt").write_text("my notes\n")
    return Run(["prepare", "--params", params(d), "--out", "notes.txt"], culprit="notes.txt")


def c_out_folder(d: Path) -> Run:
    (d / "thesis").mkdir()
    (d / "thesis" / "chapter1.tex").write_text("\\chapter{Intro}\n")
    return Run(["prepare", "--params", params(d), "--out", "thesis"], culprit="thesis")


def c_out_is_source(d: Path) -> Run:
    return Run(["prepare", "--params", params(d), "--dataset", "folder", "--source", faces(d), "--out", "faces"],
               culprit="faces")


def c_degrade_onto_prepared(d: Path) -> Run:
    params(d)
    return Run(["degrade", "--params", "p.yaml", "--prepared", prepared(d), "--out", "prep"], culprit="prep")


def c_metrics_is_folder(d: Path) -> Run:
    params(d)
    prepared(d)
    degraded(d)
    (d / "big").mkdir()
    (d / "big" / "data.bin").write_bytes(os.urandom(1 << 16))
    return Run(train_fer("prep", "deg", "clean", "big"), culprit="big", outputs=["model", "plots", ".model.last.pt"])


def c_out_dot(d: Path) -> Run:
    (d / "keep.txt").write_text("keep me\n")
    return Run(["prepare", "--params", params(d), "--out", "."], culprit="--out .")


# --------------------------------------------------------------------------- cases: silently wrong


def c_one_class_prepare(d: Path) -> Run:
    return Run(["prepare", "--params", params(d), "--dataset", "folder", "--source", faces(d, classes=("happy",)),
                "--out", "out"], culprit="only one class", outputs=["out"])


def c_one_class_train(d: Path) -> Run:
    params(d)
    prepared(d, classes=["happy"])
    degraded(d)
    return Run(train_fer(), culprit="prep/meta.json", outputs=TRAIN_OUTPUTS)


def _subject_warning(d: Path) -> str | None:
    rep = json.loads((d / "out" / "report.json").read_text())
    if "NOT subject-disjoint" not in " ".join(rep.get("warnings", [])):
        return "report.json does not say the split fell back from subject-disjoint"
    return None


def c_subject_fallback(d: Path) -> Run:
    for s in range(1, 11):
        for code, c in (("HA", "happy"), ("AN", "angry")):
            png(d / "kdef" / c / f"AF{s:02d}{code}S.png", np.full((8, 8), 10 * s + (code == "HA") * 100, np.uint8))
    png(d / "kdef" / "happy" / "IMG_0001.png", np.full((8, 8), 7, np.uint8))
    return Run(["prepare", "--params", params(d), "--dataset", "folder", "--source", "kdef", "--out", "out"],
               outputs=["out"], check=_subject_warning)


def _macro_f1_over_present(d: Path) -> str | None:
    m = json.loads((d / "m.json").read_text())
    pc = pd.read_csv(d / "plots" / "per_class.csv")
    want = round(float(pc[pc["support"] > 0]["f1"].mean()), 4)
    if abs(m["test_macro_f1"] - want) > 2e-4:
        return f"macro-F1 {m['test_macro_f1']} averages over an absent class (present classes: {want})"
    return None


def c_macro_f1_absent(d: Path) -> Run:
    from llfer.data.store import read_dataset, write_dataset

    params(d)
    prepared(d, name="full")
    ds = read_dataset(d / "full")
    keep = ~((ds.index["split"] == "test") & (ds.index["label"] == 2)).to_numpy()
    write_dataset(d / "prep", np.asarray(ds.images)[keep], ds.index[keep], classes=ds.classes)
    degraded(d)
    return Run(train_fer(), outputs=TRAIN_OUTPUTS, check=_macro_f1_over_present)


def _dark_stays_dark(d: Path) -> str | None:
    mean = float(np.load(d / "out" / "images.npy").mean())
    return None if mean < 2 else f"dark 16-bit images stretched: mean {mean:.1f} (about 0.5 expected)"


def c_png16(d: Path) -> Run:
    for split in ("train", "val", "test"):
        for k, c in enumerate(("angry", "happy")):
            for i in range(2):
                png(d / "f16" / split / c / f"{c}{i}.png", np.full((8, 8), 100 + 50 * k + i, np.uint16))
    return Run(["prepare", "--params", params(d), "--dataset", "folder", "--source", "f16", "--out", "out"],
               outputs=["out"], check=_dark_stays_dark)


def c_degraded_other_set(d: Path) -> Run:
    params(d)
    prepared(d)
    prepared(d, name="other", classes=["fear", "surprise", "neutral"], prefix="oth")
    degraded(d, "other", "deg")
    return Run(train_fer("prep", "deg", "dark_pil"), culprit="deg/dark_pil", outputs=TRAIN_OUTPUTS)


def c_sha256_folder(d: Path) -> Run:
    return Run(["prepare", "--params", params(d), "--dataset", "folder", "--source", faces(d), "--sha256", "0" * 64,
                "--out", "out"], culprit="faces", outputs=["out"])


def _has_test_split(d: Path) -> str | None:
    idx = pd.read_csv(d / "out" / "index.csv")
    return None if (idx["split"] == "test").any() else "prepared without a test split (fails only at training)"


def c_fer_no_private(d: Path) -> Run:
    fer_csv(d, ["Training"] * 14 + ["PublicTest"] * 7)
    return Run(["prepare", "--params", params(d), "--dataset", "fer2013", "--source", "fer2013.csv", "--out", "out"],
               culprit="PrivateTest", outputs=["out"], check=_has_test_split)


def _not_1x1(d: Path) -> str | None:
    size = json.loads((d / "out" / "meta.json").read_text())["image_size"]
    return None if min(size) >= 4 else f"prepared {size[0]}x{size[1]} images"


def c_csv_one_pixel(d: Path) -> Run:
    fer_csv(d, ["Training", "PublicTest", "PrivateTest"] * 7, pixels=lambda i: str(i * 9 % 256))
    return Run(["prepare", "--params", params(d), "--dataset", "fer2013", "--source", "fer2013.csv", "--out", "out"],
               culprit="fer2013.csv", outputs=["out"], check=_not_1x1)


def c_check_negative_factor(d: Path) -> Run:
    return Run(["check", "--params", params(d, "degrade: {dark_pil: {factors: [-0.5]}}\n")],
               culprit="degrade.dark_pil")


def c_check_zero_tiles(d: Path) -> Run:
    return Run(["check", "--params", params(d, "classical: {clahe: {tiles: [0, 4]}, he: {}}\nenhancer: he\n")],
               culprit="classical.clahe")


# --------------------------------------------------------------------------- cases: tracebacks


def c_label_out_of_range(d: Path) -> Run:
    params(d)
    prepared(d)
    degraded(d)
    f = d / "prep" / "index.csv"
    idx = pd.read_csv(f)
    idx.loc[0, "label"] = 7
    idx.to_csv(f, index=False)
    return Run(train_fer(), culprit="prep/index.csv", outputs=TRAIN_OUTPUTS)


def c_index_no_label(d: Path) -> Run:
    params(d)
    prepared(d)
    degraded(d)
    f = d / "prep" / "index.csv"
    pd.read_csv(f).drop(columns=["label"]).to_csv(f, index=False)
    return Run(train_fer(), culprit="prep/index.csv", outputs=TRAIN_OUTPUTS)


def c_garbage_checkpoint(d: Path) -> Run:
    return _evaluate(d, b"this is not a safetensors file at all" * 10)


def c_checkpoint_without_config(d: Path) -> Run:
    return _evaluate(d, _safetensors_without_config)


def c_resume_garbage(d: Path) -> Run:
    return _resume(d, os.urandom(256))


def c_resume_pickle(d: Path) -> Run:
    run = _resume(d, pickle.dumps({"model": _Evil()}))
    run.check, run.always_check = _no_pwned, True
    return run


def c_report_missing_keys(d: Path) -> Run:
    _metrics_root(d, fer={"accuracy": 0.5})
    return Run(_report(d), culprit="mini_xception-clean.json", outputs=["metrics/summary.json", "rplots"])


def c_report_cv_missing_keys(d: Path) -> Run:
    _metrics_root(d, cv={"folds": 3})
    return Run(_report(d), culprit="cv.json", outputs=["metrics/summary.json", "rplots"])


# --------------------------------------------------------------------------- cases: memory, leftovers, params


def c_zip_bomb(d: Path) -> Run:
    with zipfile.ZipFile(d / "bomb.zip", "w", zipfile.ZIP_DEFLATED) as z:
        for c in ("angry", "happy"):
            buf = io.BytesIO()
            from PIL import Image

            Image.fromarray(np.zeros((8, 8), np.uint8)).save(buf, format="PNG")
            z.writestr(f"{c}/a.png", buf.getvalue())
        with z.open("happy/huge.png", "w", force_zip64=True) as f:
            chunk = bytes(1 << 20)
            for _ in range(300):
                f.write(chunk)
    return Run(["prepare", "--params", params(d), "--dataset", "folder", "--source", "bomb.zip", "--out", "out"],
               culprit="happy/huge.png", outputs=["out"])


def _no_temporaries(d: Path) -> str | None:
    left = [p.name for p in d.iterdir() if p.name.startswith(".deg.")]
    return f"temporaries left: {left}" if left else None


def c_sigterm_degrade(d: Path) -> Run:
    from llfer.data.store import write_dataset

    params(d, "degrade: {lowres: {sizes: [40, 36, 32, 28, 24, 20, 16, 12, 10, 8]}}\n")
    n = 6000
    idx = _index(n, CLASSES)
    rng = np.random.default_rng(0)
    write_dataset(d / "prep", rng.integers(0, 256, (n, 48, 48), dtype=np.uint8), idx, classes=CLASSES)
    return Run(["degrade", "--params", "p.yaml", "--prepared", "prep", "--out", "deg"], culprit="terminated",
               outputs=["deg"], check=_no_temporaries, terminate_when=".deg.*")


def c_stale_temp(d: Path) -> Run:
    params(d)
    prepared(d)
    stale = d / f".deg.llfer-{_dead_pid()}.abcd1234.tmp"
    (stale / "deg" / "dark_pil").mkdir(parents=True)
    (stale / "deg" / "dark_pil" / "images.npy").write_bytes(bytes(1 << 16))
    return Run(["degrade", "--params", "p.yaml", "--prepared", "prep", "--out", "deg"], outputs=["deg", stale.name],
               check=lambda d: f"stale temporary {stale.name} left" if (d / stale.name).exists() else None)


def _dead_pid() -> int:
    pid = 999_999
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            pass
        pid -= 1


def c_params_empty(d: Path) -> Run:
    (d / "p.yaml").write_text("# nothing here\n")
    return Run(["check", "--params", "p.yaml"], culprit="p.yaml")


def c_params_duplicate_key(d: Path) -> Run:
    (d / "p.yaml").write_text("seed: 1\nfer:\n  backbones: [mini_xception]\nseed: 2\n")
    return Run(["check", "--params", "p.yaml"], culprit="seed")


def _not_stretched(d: Path) -> str | None:
    rep = json.loads((d / "out" / "report.json").read_text())
    if rep.get("stretched", rep.get("resized")) or not rep.get("rotated"):
        return f"portrait photo stretched to landscape (report: resized {rep.get('resized')})"
    return None


def c_unpaired_orientation(d: Path) -> Run:
    rng = np.random.default_rng(0)
    for i in range(3):
        png(d / "photos" / f"land{i}.png", rng.integers(0, 60, (30, 40, 3), dtype=np.uint8))
    png(d / "photos" / "portrait.png", rng.integers(0, 60, (40, 30, 3), dtype=np.uint8))
    return Run(["prepare", "--params", params(d), "--dataset", "unpaired", "--source", "photos", "--out", "out"],
               outputs=["out"], check=_not_stretched)


CASES: list[Case] = [
    Case("out-existing-file", "data loss", "`prepare --out` names an existing file", c_out_file),
    Case("out-unrelated-folder", "data loss", "`prepare --out` names an unrelated non-empty folder", c_out_folder),
    Case("out-is-source", "data loss", "`prepare --out` is the `--source` folder", c_out_is_source),
    Case("degrade-out-is-prepared", "data loss", "`degrade --out` equals `--prepared`", c_degrade_onto_prepared),
    Case("metrics-is-folder", "data loss", "`train-fer --metrics` names a non-empty folder", c_metrics_is_folder),
    Case("out-dot", "data loss", "`prepare --out .`", c_out_dot),
    Case("one-class-prepare", "silent", "a source with one class folder", c_one_class_prepare),
    Case("one-class-train", "silent", "training on a one-class prepared set", c_one_class_train),
    Case("subject-fallback", "silent", "one file name off the KDEF subject pattern", c_subject_fallback),
    Case("macro-f1-absent-class", "silent", "a class absent from the test split (macro-F1)", c_macro_f1_absent),
    Case("png16-dark", "silent", "dark 16-bit PNGs", c_png16),
    Case("degraded-other-set", "silent", "`--degraded` made from another dataset", c_degraded_other_set),
    Case("sha256-folder", "silent", "`--sha256` with a folder source", c_sha256_folder),
    Case("fer2013-no-privatetest", "silent", "FER2013 CSV without PrivateTest rows", c_fer_no_private),
    Case("csv-one-pixel", "silent", "FER2013 CSV with one pixel per row", c_csv_one_pixel),
    Case("check-negative-factor", "silent", "`llfer check` with a negative darkening factor", c_check_negative_factor),
    Case("check-zero-tiles", "silent", "`llfer check` with zero-size CLAHE tiles", c_check_zero_tiles),
    Case("label-out-of-range", "traceback", "index.csv label outside the class range", c_label_out_of_range),
    Case("index-no-label", "traceback", "index.csv without a label column", c_index_no_label),
    Case("garbage-checkpoint", "traceback", "a garbage classifier checkpoint", c_garbage_checkpoint),
    Case("checkpoint-no-config", "traceback", "a classifier checkpoint without its config", c_checkpoint_without_config),
    Case("resume-garbage", "traceback", "`--resume` with a garbage last.pt", c_resume_garbage),
    Case("resume-pickle", "traceback", "`--resume` with a code-running pickle as last.pt", c_resume_pickle),
    Case("report-missing-keys", "traceback", "FER metrics file missing its keys (report)", c_report_missing_keys),
    Case("report-cv-missing-keys", "traceback", "cv.json missing its keys (report)", c_report_cv_missing_keys),
    Case("zip-bomb", "memory", "a zip with a 300 MB member compressed 1000x", c_zip_bomb),
    Case("sigterm-degrade", "leftover", "SIGTERM during `degrade`", c_sigterm_degrade),
    Case("stale-temporary", "leftover", "a temporary left by a killed run", c_stale_temp),
    Case("params-empty", "silent", "an empty params file", c_params_empty),
    Case("params-duplicate-key", "silent", "a params file with a duplicate key", c_params_duplicate_key),
    Case("unpaired-orientation", "silent", "unpaired photos of mixed orientation", c_unpaired_orientation),
]


# --------------------------------------------------------------------------- snapshots


def snapshot(root: Path, skip: list[str]) -> dict[str, tuple]:
    """Every path under ``root`` (but ``skip`` and what lies under them) with its content digest."""
    import hashlib

    skipped = [root / s for s in skip]
    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dp = Path(dirpath)
        dirnames[:] = [n for n in dirnames if dp / n not in skipped]
        for n in dirnames:
            out[str((dp / n).relative_to(root)) + "/"] = ("dir",)
        for n in filenames:
            p = dp / n
            if p in skipped:
                continue
            st = p.lstat()
            h = hashlib.blake2b(p.read_bytes(), digest_size=16).hexdigest() if p.is_file() else ""
            out[str(p.relative_to(root))] = (st.st_size, h)
    return out


def diff(before: dict[str, tuple], after: dict[str, tuple]) -> list[str]:
    return sorted([f"deleted {k}" for k in before if k not in after] +
                  [f"created {k}" for k in after if k not in before] +
                  [f"changed {k}" for k in before if k in after and before[k] != after[k]])

