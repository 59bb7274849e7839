"""``llfer export``: a trained classifier (optionally with its learned enhancer in front, as one graph) as
ONNX or TorchScript, checked against PyTorch.

The exported graph takes float32 ``faces`` N x C x S x S in [0, 1] (C and S from
the checkpoint; N free) and returns ``logits`` N x classes.  Faces are prepared
as ``llfer predict`` prepares them (crop, channels, resize to S, the
checkpoint's preprocessors on uint8); ``export.json`` beside the model says
which.  With ``--enhancer DIR`` the learned enhancer runs inside the graph on
the face (grey repeated to RGB, output clamped to [0, 1], averaged back to grey
for grey classifiers and rounded to 8 bit as the numpy path does), so it cannot
be combined with preprocessors, which are OpenCV / numpy code.

ONNX uses PyTorch's TorchScript-based exporter (``dynamo=False``), which needs
only the ``onnx`` package (``pip install llfer[export]``); the check runs the
file in ONNX Runtime when it is installed, else in ONNX's reference evaluator.
TorchScript is written with ``torch.jit.trace`` and checked by reloading it.
The check compares logits and probabilities with PyTorch's on test faces (the
synthetic generator's, or ``--faces``) at the full batch and at batch 1 and
fails, writing nothing, when the largest absolute difference exceeds ``--atol``.
"""

from __future__ import annotations

import argparse
import copy
import os
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .errors import LlferError
from .predict import Classifier, collect_inputs, load_enhancer, load_model, prepare_faces, read_image

FORMATS = {"onnx": "model.onnx", "torchscript": "model.pt"}


# ----------------------------------------------------------------------------- the graph
def _modules() -> tuple[type, type, type]:
    """The two wrapper modules (built on first use, so that importing this module does not import torch)."""
    global _MODULES
    if _MODULES is None:
        import torch
        import torch.nn.functional as F
        from torch import nn

        class EnhancedClassifier(nn.Module):
            """Learned enhancer in front of a classifier, on [0, 1] faces, as ``llfer predict`` chains them."""

            def __init__(self, enhancer: Any, classifier: Any, in_channels: int):
                super().__init__()
                self.enhancer_model = enhancer.model  # registers the weights
                self._forward = enhancer.forward      # the enhancer's own output selection (some nets return extras)
                self.classifier = classifier
                self.in_channels = in_channels

            def forward(self, x: Any) -> Any:
                rgb = x.expand(-1, 3, -1, -1) if self.in_channels == 1 else x
                e = self._forward(rgb).clamp(0.0, 1.0)
                if self.in_channels == 1:
                    e = e.mean(dim=1, keepdim=True)
                e = (e * 255.0).round() / 255.0  # the 8-bit picture the numpy path hands on
                return self.classifier(e)

        class FixedUpsample(nn.Module):
            """Do an ``InputAdapter``'s upsampling at a fixed size, in front of the model.

            The adapter computes the target size with Python's ``round`` on the input's
            shape, which the tracer cannot follow.  Here the bilinear upsampling
            (``align_corners=False``) of an ``n`` px side to ``m`` px is the constant
            m x n matrix ``A`` it applies to each column and row (``y = A_h x A_w^T``;
            shapes stay static, so ONNX shape inference follows every later op).
            Bilinear weights sum to one, so upsampling the [0, 1] input and then
            normalising equals normalising and then upsampling (the export check
            measures the difference)."""

            def __init__(self, model: Any, in_size: int, size: tuple[int, int]):
                super().__init__()
                self.model = model
                eye = torch.eye(in_size)[None, None]
                a_h = F.interpolate(eye, size=(size[0], in_size), mode="bilinear", align_corners=False)[0, 0]
                a_w = F.interpolate(eye, size=(size[1], in_size), mode="bilinear", align_corners=False)[0, 0]
                self.register_buffer("a_h", a_h.contiguous(), persistent=False)
                self.register_buffer("a_wt", a_w.t().contiguous(), persistent=False)

            def forward(self, x: Any) -> Any:
                return self.model(torch.matmul(torch.matmul(self.a_h, x), self.a_wt))

        class FixedAdaptivePool(nn.Module):
            """``AdaptiveAvgPool2d`` at a known input size as the constant matrices it applies
            (``y = P_h x P_w^T``): ONNX's exporter refuses adaptive pooling whose output size does
            not divide the input size (AlexNet's 1 x 1 -> 6 x 6 on small faces)."""

            def __init__(self, in_hw: tuple[int, int], out_hw: tuple[int, int]):
                super().__init__()

                def mat(n: int, m: int) -> Any:
                    return F.adaptive_avg_pool1d(torch.eye(n)[None], m)[0].t().contiguous()  # m x n

                self.register_buffer("p_h", mat(in_hw[0], out_hw[0]), persistent=False)
                self.register_buffer("p_wt", mat(in_hw[1], out_hw[1]).t().contiguous(), persistent=False)

            def forward(self, x: Any) -> Any:
                return torch.matmul(torch.matmul(self.p_h, x), self.p_wt)

        _MODULES = (EnhancedClassifier, FixedUpsample, FixedAdaptivePool)
    return _MODULES


_MODULES: tuple[type, type, type] | None = None


def traceable(model: Any, input_size: int, in_channels: int = 1) -> Any:
    """``model``, or a copy that traces to a static graph at ``input_size``: an input adapter's upsampling
    done at a fixed size in front of it, adaptive average pools (other than global ones) as fixed matrices."""
    import torch
    from torch import nn

    from .models.common import InputAdapter

    adapters = [m for m in model.modules() if isinstance(m, InputAdapter) and m.min_size > input_size]
    if len(adapters) > 1:
        raise LlferError(f"{type(model).__name__}: {len(adapters)} upsampling input adapters; cannot trace")
    m = copy.deepcopy(model).eval()
    shapes: dict[str, tuple[int, int]] = {}
    hooks = [mod.register_forward_hook(lambda mod, inp, out, n=name: shapes.__setitem__(n, tuple(inp[0].shape[-2:])))
             for name, mod in m.named_modules() if isinstance(mod, nn.AdaptiveAvgPool2d)]
    with torch.inference_mode():
        m(torch.zeros(1, in_channels, input_size, input_size))
    for h in hooks:
        h.remove()
    _, upsample, pool = _modules()
    for name, hw in shapes.items():
        mod = m.get_submodule(name)
        out = mod.output_size if isinstance(mod.output_size, tuple) else (mod.output_size, mod.output_size)
        out = tuple(hw[i] if o is None else int(o) for i, o in enumerate(out))
        if out != (1, 1):
            parent, _, child = name.rpartition(".")
            setattr(m.get_submodule(parent) if parent else m, child, pool(hw, out))
    if not adapters:
        return m
    a = adapters[0]
    scale = a.min_size / input_size
    size = (max(a.min_size, round(input_size * scale)),) * 2
    for mod in m.modules():
        if isinstance(mod, InputAdapter):
            mod.min_size = 0
    return upsample(m, input_size, size).eval()


def export_modules(clf: Classifier, enhancer: Any = None) -> tuple[Any, Any]:
    """(module to export, PyTorch reference): the classifier, or enhancer + classifier; the exported one
    is the traceable copy (:func:`traceable`), the reference uses the checkpoint's model as loaded."""
    model = clf.model.cpu().float().eval()
    exported = traceable(model, clf.input_size, clf.in_channels)
    if enhancer is None:
        return exported, model
    if not getattr(enhancer, "learned", False):
        raise LlferError(f"--enhancer {getattr(enhancer, 'name', enhancer)!r} is classical (OpenCV / numpy): only a "
                         "learned enhancer's network can go into the graph; run the classical one before the model")
    if clf.preprocessors:
        raise LlferError(f"{clf.path}: the model's input applies {'+'.join(clf.preprocessors)} after enhancement, "
                         "which is not part of the graph; export the classifier alone")
    enhancer.model.cpu().float().eval()
    joint = _modules()[0]
    return joint(enhancer, exported, clf.in_channels).eval(), joint(enhancer, model, clf.in_channels).eval()


# ----------------------------------------------------------------------------- test faces
def synthetic_faces(clf: Classifier, n: int, seed: int = 0) -> np.ndarray:
    """``n`` faces of the synthetic generator (all classes in turn), prepared for ``clf``."""
    from .data.synthetic import render_faces

    labels = [i % 7 for i in range(n)]
    imgs, _ = render_faces(labels, list(range(n)), list(range(n)), seed=seed, size=max(48, clf.input_size))
    return prepare_faces(clf, list(imgs))


def faces_from_paths(clf: Classifier, paths: Sequence[str], n: int) -> np.ndarray:
    """Up to ``n`` readable images under ``paths`` (face crops), prepared for ``clf``."""
    files, missing = collect_inputs(paths)
    if missing:
        raise LlferError(f"--faces {missing[0].file}: {missing[0].reason}")
    crops = []
    for f, _name in files:
        im = read_image(f)
        if im is not None:
            crops.append(im)
        if len(crops) >= n:
            break
    if not crops:
        raise LlferError(f"--faces {' '.join(paths)}: no readable image")
    return prepare_faces(clf, crops)


def to_input(clf: Classifier, faces: np.ndarray) -> np.ndarray:
    """Prepared uint8 faces -> float32 N x C x S x S in [0, 1], the graph's input."""
    x = faces.astype(np.float32) / 255.0
    return np.ascontiguousarray(x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2))


# ----------------------------------------------------------------------------- writing and running
def _quiet() -> Any:
    w = warnings.catch_warnings()
    w.__enter__()
    warnings.simplefilter("ignore")
    return w


def write_onnx(module: Any, example: Any, path: Path, opset: int = 17) -> None:
    import torch

    try:
        import onnx  # noqa: F401  (the TorchScript-based exporter serialises with it)
    except ImportError:
        raise LlferError("--format onnx needs the 'onnx' package: pip install 'llfer[export]'") from None
    w = _quiet()
    try:
        torch.onnx.export(module, (example,), str(path), dynamo=False, opset_version=opset,
                          input_names=["faces"], output_names=["logits"],
                          dynamic_axes={"faces": {0: "batch"}, "logits": {0: "batch"}})
    finally:
        w.__exit__(None, None, None)


def write_torchscript(module: Any, example: Any, path: Path) -> None:
    import torch

    w = _quiet()
    try:
        traced = torch.jit.trace(module, example, check_trace=False)
        torch.jit.save(traced, str(path))
    finally:
        w.__exit__(None, None, None)


def onnx_runner(path: Path, threads: int | None = None) -> tuple[Callable[[np.ndarray], np.ndarray], str]:
    """A function running the ONNX file, and the runtime's name (ONNX Runtime, else ONNX's reference evaluator)."""
    try:
        import onnxruntime as ort
    except ImportError:
        ort = None
    if ort is not None:
        so = ort.SessionOptions()
        if threads:
            so.intra_op_num_threads = threads
            so.inter_op_num_threads = 1
        sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        return (lambda x: sess.run(None, {"faces": x})[0]), f"onnxruntime {ort.__version__}"
    import onnx
    from onnx.reference import ReferenceEvaluator

    ref = ReferenceEvaluator(str(path))
    return (lambda x: np.asarray(ref.run(None, {"faces": x})[0])), f"onnx.reference (onnx {onnx.__version__})"


def torchscript_runner(path: Path) -> tuple[Callable[[np.ndarray], np.ndarray], str]:
    import torch

    w = _quiet()
    try:
        m = torch.jit.load(str(path), map_location="cpu").eval()
    finally:
        w.__exit__(None, None, None)

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return m(torch.from_numpy(x)).numpy()

    return run, f"torch.jit {torch.__version__}"


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def parity(reference: Any, run: Callable[[np.ndarray], np.ndarray], x: np.ndarray, batch1: int = 8) -> dict[str, Any]:
    """Largest absolute differences between PyTorch (``reference``) and the exported model, whole batch and
    batch 1."""
    import torch

    with torch.inference_mode():
        ref = reference(torch.from_numpy(x)).float().numpy()
    got = np.asarray(run(x), dtype=np.float32)
    if got.shape != ref.shape:
        raise LlferError(f"exported model returns shape {got.shape}, PyTorch {ref.shape}")
    one = np.concatenate([run(x[i : i + 1]) for i in range(min(batch1, len(x)))])
    return {"faces": int(len(x)), "max_abs_diff_logits": float(np.abs(got - ref).max()),
            "max_abs_diff_probs": float(np.abs(_softmax(got) - _softmax(ref)).max()),
            "max_abs_diff_logits_batch1": float(np.abs(one - ref[: len(one)]).max()),
            "top1_agreement": float((got.argmax(1) == ref.argmax(1)).mean())}


def export_model(model_dir: str | os.PathLike[str], fmt: str, out: str | os.PathLike[str], enhancer: str | None = None,
                 faces: Sequence[str] | None = None, num_faces: int = 64, atol: float = 1e-3,
                 opset: int = 17) -> dict[str, Any]:
    """Export, check and write ``out/`` (a new folder: the model file and ``export.json``)."""
    import torch

    from .io import atomic_dir, dumps_json

    if fmt not in FORMATS:
        raise LlferError(f"--format {fmt!r}: allowed: {', '.join(FORMATS)}")
    out = Path(out)
    if out.exists() or out.is_symlink():
        raise LlferError(f"--out {out} already exists; remove it or choose another name")
    if num_faces < 1:
        raise LlferError(f"--num-faces {num_faces}: must be >= 1")
    clf = load_model(model_dir)
    enh = load_enhancer(enhancer) if enhancer else None
    module, reference = export_modules(clf, enh)
    prepared = faces_from_paths(clf, faces, num_faces) if faces else synthetic_faces(clf, num_faces)
    x = to_input(clf, prepared)
    example = torch.from_numpy(x[: min(2, len(x))])
    with atomic_dir(out) as tmp:
        target = tmp / FORMATS[fmt]
        if fmt == "onnx":
            write_onnx(module, example, target, opset)
            run, runtime = onnx_runner(target)
        else:
            write_torchscript(module, example, target)
            run, runtime = torchscript_runner(target)
        check = parity(reference, run, x)
        check.update(runtime=runtime, atol=atol, faces_from=list(faces) if faces else "synthetic generator")
        worst = max(check["max_abs_diff_logits"], check["max_abs_diff_logits_batch1"])
        if not np.isfinite(worst) or worst > atol:
            raise LlferError(f"export check failed: max abs logit difference {worst:.3g} > --atol {atol:g} "
                             f"({runtime}); nothing written")
        s = clf.input_size
        info = {"format": fmt, "file": target.name, "checkpoint": str(clf.path), "backbone": clf.backbone,
                "enhancer": getattr(enh, "name", None), "enhancer_checkpoint": enhancer if enh is not None else None,
                "input": {"name": "faces", "shape": ["batch", clf.in_channels, s, s], "dtype": "float32",
                          "range": [0.0, 1.0], "channels": "grey" if clf.in_channels == 1 else "RGB",
                          "preprocessors": clf.preprocessors, "preprocess_options": clf.prep_params},
                "output": {"name": "logits", "shape": ["batch", len(clf.classes)]}, "classes": clf.classes,
                "opset": opset if fmt == "onnx" else None, "torch": torch.__version__, "check": check,
                "bytes": target.stat().st_size}
        (tmp / "export.json").write_text(dumps_json(info) + "\n")
    return info


def cmd_export(args: argparse.Namespace) -> int:
    info = export_model(args.model, args.format, args.out, enhancer=args.enhancer, faces=args.faces,
                        num_faces=args.num_faces, atol=args.atol, opset=args.opset)
    c = info["check"]
    enh = f" + {info['enhancer']}" if info["enhancer"] else ""
    print(f"exported {info['backbone']}{enh} -> {Path(args.out) / info['file']} ({info['bytes'] / 1e6:.2f} MB); "
          f"check on {c['faces']} faces with {c['runtime']}: max abs diff logits {c['max_abs_diff_logits']:.2e} "
          f"(batch 1: {c['max_abs_diff_logits_batch1']:.2e}), probabilities {c['max_abs_diff_probs']:.2e}, "
          f"top-1 agreement {c['top1_agreement']:.3f}")
    return 0


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    sp = subparsers.add_parser("export", help="export a classifier (+ learned enhancer) to ONNX or TorchScript, checked",
                               description=__doc__.split("\n\n")[0].replace("``", "'"))
    sp.add_argument("--model", required=True, help="classifier model directory (llfer train-fer --model-out)")
    sp.add_argument("--format", choices=sorted(FORMATS), required=True)
    sp.add_argument("--out", required=True, help="new folder for the model file and export.json")
    sp.add_argument("--enhancer", metavar="DIR", help="learned enhancer model directory to put in front (one graph)")
    sp.add_argument("--faces", nargs="+", metavar="PATH", help="face crops for the check (default: synthetic faces)")
    sp.add_argument("--num-faces", type=int, default=64, help="faces used by the check (default 64)")
    sp.add_argument("--atol", type=float, default=1e-3, help="largest allowed absolute logit difference")
    sp.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    sp.set_defaults(func=cmd_export)
    return sp
