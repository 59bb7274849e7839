"""``llfer predict``: the expression of every face in photos, folders and videos.

Pipeline per picture (an image file, or every k-th frame of a video):

1. optional enhancer on the whole picture (``--enhancer NAME|DIR``: a classical
   enhancer by registry name, or a learned enhancer's trained model directory
   as ``llfer train-enhancer`` writes it);
2. face detection with OpenCV's Haar frontal-face cascade (shipped inside
   ``opencv-python-headless`` 4.x, no download) on the grey picture, or
   ``--detector none`` when the pictures are face crops already;
3. each face cropped, converted to the classifier's channels (grey by BT.601
   luma, or RGB), resized to its input size and passed through the
   preprocessors of its test input spec (``he``, ``sobel3``, ...), all read
   from the checkpoint, never from the user;
4. batched inference; one JSON line per face: file, frame, box, class
   probabilities, top class.

Inputs that cannot be read are reported one line each on stderr and skipped;
the command's exit status is the number of such inputs (capped at 125).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence, TextIO

import numpy as np

from .errors import LlferError

log = logging.getLogger("llfer.predict")

IMAGE_EXTS = {".bmp", ".dib", ".jpg", ".jpeg", ".jpe", ".jp2", ".png", ".webp", ".pbm", ".pgm", ".ppm", ".pnm",
              ".pxm", ".sr", ".ras", ".tif", ".tiff", ".exr", ".hdr", ".pic", ".avif"}
VIDEO_EXTS = {".mp4", ".m4v", ".avi", ".mov", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp", ".ogv"}
HAAR_FILE = "haarcascade_frontalface_default.xml"
MAX_EXIT = 125  # exit statuses above 125 mean "killed by a signal" to shells


# ----------------------------------------------------------------------------- the classifier
@dataclass
class Classifier:
    """A trained classifier with everything needed to feed it the way it was trained."""

    model: Any
    config: dict[str, Any]
    path: Path
    classes: list[str]
    in_channels: int
    input_size: int
    preprocessors: list[str]
    prep_params: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def backbone(self) -> str:
        return str(self.config.get("backbone"))


def checkpoint_file(path: str | os.PathLike[str], what: str = "model") -> Path:
    """``DIR/model.safetensors`` for a model directory, the file itself for a file."""
    p = Path(path)
    if p.is_dir():
        p = p / "model.safetensors"
    if not p.is_file():
        raise LlferError(f"{what} {path}: not a model directory (no {p.name})" if Path(path).is_dir()
                         else f"{what} {path} does not exist")
    return p


def checkpoint_metadata(ck: Path) -> dict[str, str]:
    """The safetensors header metadata (read without loading any tensor or unpickling anything)."""
    from safetensors import safe_open

    try:
        with safe_open(str(ck), framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception as e:  # safetensors raises several types for a bad header
        raise LlferError(f"{ck}: not a readable safetensors checkpoint ({str(e).splitlines()[0][:120]})") from None


def test_preprocessors(spec: str, where: str) -> list[str]:
    """The preprocessors of an input spec (``dark_pil+he`` -> ``[he]``); the source part is dropped:
    predict's pictures are the source."""
    from .registry import PREPROCESSORS

    from .registry import import_members

    import_members("llfer.preprocess")  # registers its members

    parts = [p.strip() for p in str(spec).split("+") if p.strip()]
    preps = parts if parts and parts[0] in PREPROCESSORS else parts[1:]
    for p in preps:
        if p not in PREPROCESSORS:
            raise LlferError(f"{where}: unknown preprocessor {p!r} in input spec {spec!r}; "
                             f"known: {', '.join(PREPROCESSORS.names())}")
    return preps


def load_model(path: str | os.PathLike[str]) -> Classifier:
    """Load a classifier checkpoint (``llfer train-fer --model-out DIR``) with its input recipe."""
    from .checkpoint import load_classifier  # the one place this module reads classifier checkpoints

    from .registry import import_members

    import_members("llfer.models")  # registers its members

    ck = checkpoint_file(path)
    meta = checkpoint_metadata(ck)
    if "enhancer" in meta:
        raise LlferError(f"{ck}: a checkpoint of the enhancer {meta['enhancer']!r}, not of a classifier "
                         "(give it to --enhancer)")
    try:
        cfg = json.loads(meta["config"])
        opts, classes = cfg["options"], list(cfg["classes"])
        in_ch, n_cls = int(opts["in_channels"]), int(opts["num_classes"])
    except (KeyError, TypeError, ValueError) as e:
        raise LlferError(f"{ck}: not a classifier checkpoint (no valid 'config' metadata: {e!s}); "
                         "classifiers are written by llfer train-fer") from None
    if in_ch not in (1, 3):
        raise LlferError(f"{ck}: built for {in_ch} input channels; predict feeds grey (1) or RGB (3) faces")
    if n_cls != len(classes):
        raise LlferError(f"{ck}: config has {n_cls} outputs but {len(classes)} class names")
    model, cfg = load_classifier(ck)  # damage or weights that do not fit: one line naming the file
    preps = test_preprocessors(cfg.get("test_spec", cfg.get("input", "clean")), str(ck))
    prep_params = {k: dict(v or {}) for k, v in (cfg.get("preprocess") or {}).items()}
    return Classifier(model=model, config=cfg, path=ck, classes=classes, in_channels=in_ch,
                      input_size=int(opts.get("input_size", 48)), preprocessors=preps, prep_params=prep_params)


# ----------------------------------------------------------------------------- enhancers
def load_enhancer(spec: str, classical_options: dict[str, dict[str, Any]] | None = None) -> Any:
    """A classical enhancer by registry name, or a learned one from its model directory / checkpoint file."""
    from .registry import ENHANCERS

    from .registry import import_members

    import_members("llfer.enhance")  # registers its members

    p = Path(spec)
    if p.exists():
        ck = checkpoint_file(p, "enhancer")
        meta = checkpoint_metadata(ck)
        name = meta.get("enhancer")
        if not name:
            kind = "a classifier" if "config" in meta else "no enhancer"
            raise LlferError(f"--enhancer {spec}: {ck} is {kind} checkpoint (learned enhancers are written by "
                             "llfer train-enhancer)")
        if name not in ENHANCERS or not getattr(ENHANCERS.get(name), "learned", False):
            raise LlferError(f"--enhancer {spec}: {ck} names enhancer {name!r}, not a learned enhancer of this version")
        return ENHANCERS.get(name).load(ck)
    if spec not in ENHANCERS:
        raise LlferError(f"--enhancer {spec!r}: neither an enhancer name ({', '.join(ENHANCERS.names())}) "
                         "nor an existing model directory")
    cls = ENHANCERS.get(spec)
    if getattr(cls, "learned", False):
        raise LlferError(f"--enhancer {spec!r} is a learned enhancer: give its trained model directory "
                         "(llfer train-enhancer ... --out DIR)")
    return ENHANCERS.build(spec, key=f"classical.{spec}", **((classical_options or {}).get(spec) or {}))


def enhancer_name(enh: Any) -> str | None:
    return None if enh is None else (getattr(enh, "name", "") or type(enh).__name__)


# ----------------------------------------------------------------------------- reading pictures
def read_image(path: Path) -> np.ndarray | None:
    """uint8 H x W (grey) or H x W x 3 (RGB), or None when OpenCV cannot decode the file."""
    import cv2

    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError:
        return None
    if data.size == 0:
        return None
    im = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if im is None or im.size == 0:
        return None
    return to_uint8_picture(im, bgr=True)


def to_uint8_picture(im: np.ndarray, bgr: bool) -> np.ndarray:
    """Any decoded picture -> uint8 grey H x W or RGB H x W x 3 (alpha dropped, 16 bit and float scaled)."""
    if im.dtype == np.uint16:
        im = (im >> 8).astype(np.uint8)
    elif im.dtype.kind == "f":
        im = np.clip(np.rint(np.nan_to_num(im) * 255.0), 0, 255).astype(np.uint8)
    elif im.dtype != np.uint8:
        im = np.clip(im, 0, 255).astype(np.uint8)
    if im.ndim == 3 and im.shape[2] == 1:
        im = im[:, :, 0]
    if im.ndim == 3:
        im = im[:, :, :3]
        if bgr:
            im = im[:, :, ::-1]
    return np.ascontiguousarray(im)


@dataclass
class Picture:
    """One picture to analyse: an image file or one frame of a video."""

    file: str          # as given / found (shown in the output)
    name: str          # relative name under --annotate
    frame: int | None  # frame index in a video, None for images
    image: np.ndarray


@dataclass
class Failure:
    file: str
    reason: str


def _visible_files(root: Path) -> list[Path]:
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        out += [Path(dirpath) / f for f in sorted(filenames) if not f.startswith(".")]
    return out


def collect_inputs(paths: Sequence[str | os.PathLike[str]]) -> tuple[list[tuple[Path, str]], list[Failure]]:
    """(file, name under --annotate) for every given file and every file under given folders (recursively)."""
    files: list[tuple[Path, str]] = []
    failed: list[Failure] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            base = p.resolve().name or "input"
            found = _visible_files(p)
            if not found:
                failed.append(Failure(str(p), "folder holds no files"))
            files += [(f, str(Path(base) / f.relative_to(p))) for f in found]
        elif p.is_file():
            files.append((p, p.name))
        else:
            failed.append(Failure(str(p), "no such file or folder"))
    return files, failed


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_EXTS


def video_frames(path: Path, every: int) -> tuple[Iterator[tuple[int, np.ndarray]], int] | None:
    """(iterator over (index, RGB frame) of every ``every``-th frame, number of frames it will yield)."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        cap.release()
        return None
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)

    def gen() -> Iterator[tuple[int, np.ndarray]]:
        i = 0
        try:
            while True:
                if i % every == 0:
                    ok, fr = cap.read()
                    if not ok:
                        break
                    yield i, to_uint8_picture(fr, bgr=True)
                elif not cap.grab():
                    break
                i += 1
        finally:
            cap.release()

    return gen(), (total + every - 1) // every if total > 0 else 0


# ----------------------------------------------------------------------------- the predictor
class Predictor:
    """Enhance, detect, crop and classify; :meth:`faces` and :meth:`classify` are the two halves."""

    def __init__(self, clf: Classifier, enhancer: Any = None, detector: str = "haar", device: Any = "cpu",
                 batch_size: int = 64, min_face: int = 24, scale_factor: float = 1.1, min_neighbors: int = 5,
                 margin: float = 0.0):
        if detector not in ("haar", "none"):
            raise LlferError(f"--detector {detector!r}: allowed: haar, none")
        if batch_size < 1 or min_face < 1 or scale_factor <= 1.0 or min_neighbors < 0 or not 0 <= margin <= 1:
            raise LlferError("need --batch-size >= 1, --min-face >= 1, scale factor > 1, min neighbours >= 0, "
                             "0 <= --margin <= 1")
        import torch

        self.clf = clf
        self.enhancer = enhancer
        self.detector = detector
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.min_face, self.scale_factor, self.min_neighbors, self.margin = min_face, scale_factor, min_neighbors, margin
        self.clf.model.to(self.device).eval()
        self._cascade = haar_cascade() if detector == "haar" else None

    # -- picture -> faces ------------------------------------------------------------
    def enhance(self, image: np.ndarray) -> np.ndarray:
        if self.enhancer is None:
            return image
        if getattr(self.enhancer, "learned", False):
            return self.enhancer.enhance(image[None], device=self.device)[0]
        return self.enhancer.enhance(image[None])[0]

    def detect(self, image: np.ndarray) -> list[tuple[int, int, int, int]]:
        """Face boxes (x, y, w, h) in picture pixels."""
        h, w = image.shape[:2]
        if self._cascade is None:
            return [(0, 0, int(w), int(h))]
        from .preprocess import to_gray

        gray = to_gray(image[None])[0]
        found = self._cascade.detectMultiScale(gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
                                               minSize=(self.min_face, self.min_face))
        boxes = [tuple(int(v) for v in b) for b in (found if len(found) else [])]
        return sorted(boxes, key=lambda b: (b[1], b[0]))  # reading order

    def crop(self, image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
        x, y, w, h = box
        mx, my = int(round(w * self.margin)), int(round(h * self.margin))
        H, W = image.shape[:2]
        x0, y0, x1, y1 = max(0, x - mx), max(0, y - my), min(W, x + w + mx), min(H, y + h + my)
        return image[y0:y1, x0:x1]

    def prepare(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """Face crops -> uint8 N x S x S (grey) or N x S x S x 3, preprocessed as the classifier was trained."""
        return prepare_faces(self.clf, crops)

    def faces(self, image: np.ndarray) -> tuple[np.ndarray, list[tuple[int, int, int, int]], np.ndarray]:
        """(enhanced picture, boxes, prepared faces) of one picture."""
        enhanced = self.enhance(image)
        boxes = self.detect(enhanced)
        faces = self.prepare([self.crop(enhanced, b) for b in boxes]) if boxes else self._empty()
        return enhanced, boxes, faces

    def _empty(self) -> np.ndarray:
        s = self.clf.input_size
        return np.zeros((0, s, s) if self.clf.in_channels == 1 else (0, s, s, 3), np.uint8)

    # -- faces -> probabilities --------------------------------------------------------
    def classify(self, faces: np.ndarray) -> np.ndarray:
        """Class probabilities (float32 N x C) of prepared faces, in batches."""
        import torch

        from .train.fer import predict

        if len(faces) == 0:
            return np.zeros((0, len(self.clf.classes)), np.float32)
        with torch.inference_mode():
            logits = predict(self.clf.model, faces, self.clf.input_size, self.device, self.batch_size,
                             bool(self.clf.config.get("tta_flip", False)),
                             float(self.clf.config.get("tta_shift", 0.0)))
        return torch.softmax(torch.from_numpy(logits), dim=1).numpy()


def haar_cascade() -> Any:
    import cv2

    data = getattr(getattr(cv2, "data", None), "haarcascades", None)
    if not hasattr(cv2, "CascadeClassifier") or not data or not (Path(data) / HAAR_FILE).is_file():
        raise LlferError(f"OpenCV {cv2.__version__} ships no Haar cascade (OpenCV 5 dropped it): install "
                         "'opencv-python-headless<5' or use --detector none")
    c = cv2.CascadeClassifier(str(Path(data) / HAAR_FILE))
    if c.empty():
        raise LlferError(f"{Path(data) / HAAR_FILE}: OpenCV could not load the Haar cascade")
    return c


def prepare_faces(clf: Classifier, crops: Sequence[np.ndarray]) -> np.ndarray:
    """Face crops (uint8 grey or RGB, any size) -> the classifier's input images (uint8, its size, channels
    and preprocessors; test mode, so ``salt_pepper`` leaves them alone)."""
    import cv2

    from .preprocess import apply_preprocessors, to_gray

    s = clf.input_size
    out = []
    for c in crops:
        if clf.in_channels == 1:
            c = to_gray(c[None])[0] if c.ndim == 3 else c
        elif c.ndim == 2:
            c = np.repeat(c[:, :, None], 3, axis=2)
        if c.shape[0] != s or c.shape[1] != s:
            shrink = c.shape[0] > s or c.shape[1] > s
            c = cv2.resize(c, (s, s), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        out.append(c)
    faces = np.stack(out) if out else np.zeros((0, s, s) if clf.in_channels == 1 else (0, s, s, 3), np.uint8)
    if clf.preprocessors and len(faces):
        faces = apply_preprocessors(clf.preprocessors, faces, ids=[str(i) for i in range(len(faces))], train=False,
                                    seed=0, params=clf.prep_params)
    return faces


# ----------------------------------------------------------------------------- annotation
def annotate(image: np.ndarray, boxes: Sequence[tuple[int, int, int, int]], labels: Sequence[str]) -> np.ndarray:
    """BGR copy of ``image`` with each box and its label drawn (for cv2.imwrite)."""
    import cv2

    im = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    thick = max(1, round(min(im.shape[:2]) / 300))
    for (x, y, w, h), text in zip(boxes, labels):
        cv2.rectangle(im, (x, y), (x + w - 1, y + h - 1), (0, 255, 0), thick)
        scale = max(0.35, min(w / 160.0, 1.5))
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
        ty = y - 4 if y - th - base - 4 >= 0 else min(im.shape[0] - 1, y + h + th + 4)
        cv2.rectangle(im, (x, ty - th - base), (x + tw + 2, ty + base // 2), (0, 255, 0), -1)
        cv2.putText(im, text, (x + 1, ty - base // 2), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thick, cv2.LINE_AA)
    return im


def _annotation_path(root: Path, pic: Picture, used: set[Path]) -> Path:
    name = Path(pic.name)
    if pic.frame is not None:
        rel = name.parent / name.stem / f"frame_{pic.frame:06d}.png"
    elif name.suffix.lower() in {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}:
        rel = name
    else:
        rel = name.with_suffix(".png")
    path, k = root / rel, 2
    while path in used:
        path = root / rel.parent / f"{rel.stem}_{k}{rel.suffix}"
        k += 1
    used.add(path)
    return path


# ----------------------------------------------------------------------------- the command
@dataclass
class Summary:
    images: int = 0
    videos: int = 0
    frames: int = 0
    faces: int = 0
    failed: list[Failure] = field(default_factory=list)


def iter_pictures(files: Sequence[tuple[Path, str]], every: int, summary: Summary, on_fail: Any,
                  bar: Any = None) -> Iterator[Picture]:
    """Decode the inputs: images whole, videos every ``every``-th frame; undecodable files go to ``on_fail``."""
    for path, name in files:
        image = None if is_video(path) else read_image(path)
        if image is not None:
            summary.images += 1
            yield Picture(str(path), name, None, image)
            if bar is not None:
                bar.update(1)
            continue
        opened = video_frames(path, every) if is_video(path) else None
        if opened is None:
            on_fail(Failure(str(path), "not a readable image or video"))
            if bar is not None:
                bar.update(1)
            continue
        frames, expected = opened
        n = 0
        if bar is not None and expected > 1:
            bar.total += expected - 1
            bar.refresh()
        for idx, fr in frames:
            n += 1
            yield Picture(str(path), name, idx, fr)
            if bar is not None:
                bar.update(1)
        if n == 0:
            on_fail(Failure(str(path), "not a readable image or video (no frame decoded)"))
            if bar is not None:
                bar.update(1)
            continue
        summary.videos += 1
        if bar is not None and expected > n:
            bar.total -= expected - n
            bar.refresh()


def face_records(pred: Predictor, pictures: Iterator[Picture], on_picture: Any = None) -> Iterator[dict[str, Any]]:
    """Run the predictor over pictures, classifying faces in batches across pictures; yields one record per
    face, in input order.  ``on_picture(picture, enhanced, boxes, probs)`` is called once per picture."""
    pending: list[tuple[Picture, np.ndarray, list[tuple[int, int, int, int]], np.ndarray]] = []
    count = 0

    def flush() -> Iterator[dict[str, Any]]:
        nonlocal pending, count
        allfaces = [f for *_, f in pending if len(f)]
        probs = pred.classify(np.concatenate(allfaces)) if allfaces else np.zeros((0, len(pred.clf.classes)))
        k = 0
        for pic, enhanced, boxes, faces in pending:
            pp = probs[k : k + len(faces)]
            k += len(faces)
            if on_picture is not None:
                on_picture(pic, enhanced, boxes, pp)
            for box, p in zip(boxes, pp):
                top = int(np.argmax(p))
                yield {"file": pic.file, "frame": pic.frame, "box": list(box),
                       "probs": {c: round(float(v), 6) for c, v in zip(pred.clf.classes, p)},
                       "top": pred.clf.classes[top], "score": round(float(p[top]), 6)}
        pending, count = [], 0

    for pic in pictures:
        enhanced, boxes, faces = pred.faces(pic.image)
        pending.append((pic, enhanced, boxes, faces))
        count += len(faces)
        if count >= pred.batch_size or len(pending) >= 4 * pred.batch_size:
            yield from flush()
    yield from flush()


def run_predict(paths: Sequence[str], pred: Predictor, out: TextIO, every: int = 1, annotate_dir: Path | None = None,
                progress: bool = True, err: TextIO | None = None) -> Summary:
    """Write one JSON line per face to ``out``; annotated copies under ``annotate_dir`` (must be new or empty)."""
    import cv2
    from tqdm.auto import tqdm

    if every < 1:
        raise LlferError(f"--every {every}: must be >= 1")
    err = err or sys.stderr
    summary = Summary()

    def on_fail(f: Failure) -> None:
        summary.failed.append(f)
        print(f"llfer: skip {f.file}: {f.reason}", file=err, flush=True)

    files, missing = collect_inputs(paths)
    for f in missing:
        on_fail(f)
    used: set[Path] = set()

    def on_picture(pic: Picture, enhanced: np.ndarray, boxes: list, probs: np.ndarray) -> None:
        summary.frames += 1
        summary.faces += len(boxes)
        if annotate_dir is None:
            return
        labels = [f"{pred.clf.classes[int(np.argmax(p))]} {float(np.max(p)):.2f}" for p in probs]
        target = _annotation_path(annotate_dir, pic, used)
        target.parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(target), annotate(enhanced, boxes, labels)):
            raise LlferError(f"{target}: OpenCV could not write the annotated picture")

    with tqdm(total=len(files), desc="predict", unit="picture", disable=not progress or len(files) == 0,
              mininterval=1, file=sys.stderr) as bar:
        for rec in face_records(pred, iter_pictures(files, every, summary, on_fail, bar), on_picture):
            out.write(json.dumps(rec) + "\n")
    out.flush()
    return summary


def _new_path(path: Path, what: str, dir_ok_if_empty: bool = False) -> None:
    """Refuse to replace anything the command did not create."""
    if path.is_dir() and dir_ok_if_empty and not any(path.iterdir()):
        return
    if path.exists() or path.is_symlink():
        raise LlferError(f"{what} {path} already exists; remove it or choose another name")


def cmd_predict(args: argparse.Namespace) -> int:
    from .device import resolve_device
    from .io import atomic_dir, atomic_path

    clf = load_model(args.model)
    classical = None
    if args.params:
        from .config import load_params

        classical = {k: dict(v or {}) for k, v in load_params(Path(args.params)).classical.items()}
    enh = load_enhancer(args.enhancer, classical) if args.enhancer else None
    pred = Predictor(clf, enh, detector=args.detector, device=resolve_device(args.device), batch_size=args.batch_size,
                     min_face=args.min_face, margin=args.margin, min_neighbors=args.min_neighbors)
    out_path = Path(args.out) if args.out else None
    ann = Path(args.annotate) if args.annotate else None
    if out_path is not None:
        _new_path(out_path, "--out")
    if ann is not None:
        _new_path(ann, "--annotate", dir_ok_if_empty=True)
    progress = not args.no_progress

    def go(out: TextIO, ann_tmp: Path | None) -> Summary:
        return run_predict(args.paths, pred, out, every=args.every, annotate_dir=ann_tmp, progress=progress)

    def with_out(ann_tmp: Path | None) -> Summary:
        if out_path is None:
            return go(sys.stdout, ann_tmp)
        with atomic_path(out_path) as tmp, open(tmp, "w") as f:
            return go(f, ann_tmp)

    if ann is not None:
        was_empty_dir = ann.is_dir()
        if was_empty_dir:  # checked empty above: replaced by the finished folder, restored on failure
            ann.rmdir()
        try:
            with atomic_dir(ann) as tmpd:
                s = with_out(tmpd)
        except BaseException:
            if was_empty_dir:
                ann.mkdir(exist_ok=True)
            raise
    else:
        s = with_out(None)
    enh_txt = f", enhancer {enhancer_name(enh)}" if enh is not None else ""
    print(f"predict: {s.images} images, {s.videos} videos, {s.frames} pictures, {s.faces} faces{enh_txt}; "
          f"{len(s.failed)} inputs failed", file=sys.stderr)
    return min(len(s.failed), MAX_EXIT)


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    sp = subparsers.add_parser(
        "predict", help="expressions of the faces in images, folders and videos (JSON lines)",
        description="Find the faces in images, folders (recursively) and videos, optionally enhance low-light "
                    "pictures first, and print one JSON line per face. Exit status: the number of inputs that "
                    "could not be read (0 = all read; capped at 125); 2 with 'llfer: error:' for a fatal error.")
    sp.add_argument("paths", nargs="+", metavar="PATH", help="image files, folders, video files")
    sp.add_argument("--model", required=True, help="classifier model directory (llfer train-fer --model-out)")
    sp.add_argument("--detector", choices=["haar", "none"], default="haar",
                    help="haar: OpenCV frontal-face cascade; none: every picture is one face crop")
    sp.add_argument("--enhancer", metavar="NAME|DIR",
                    help="enhance each picture first: a classical enhancer name or a learned enhancer's model dir")
    sp.add_argument("--params", help="params file whose classical.<name> options configure --enhancer NAME "
                                     "(default: the enhancer's own defaults)")
    sp.add_argument("--every", type=int, default=1, metavar="K", help="videos: analyse every K-th frame (default 1)")
    sp.add_argument("--batch-size", type=int, default=64, help="faces per inference batch (default 64)")
    sp.add_argument("--min-face", type=int, default=24, metavar="PX", help="smallest face the detector reports")
    sp.add_argument("--min-neighbors", type=int, default=5, help="Haar minNeighbors (higher: fewer false faces)")
    sp.add_argument("--margin", type=float, default=0.0, help="widen each box by this fraction per side")
    sp.add_argument("--out", help="write the JSON lines to this new file (default: stdout)")
    sp.add_argument("--annotate", metavar="DIR", help="write copies with boxes and labels into this new or empty folder")
    sp.add_argument("--device", default="auto", help="auto | cpu | cuda")
    sp.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    sp.set_defaults(func=cmd_predict)
    return sp
