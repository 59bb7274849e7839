"""``llfer export``: ONNX / TorchScript files that compute what PyTorch computes, and clear refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from llfer.cli import main
from llfer.errors import LlferError

from test_predict import save_model, synthetic_faces

cv2 = pytest.importorskip("cv2")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return save_model(tmp_path_factory.mktemp("model") / "mx", seed=3)


@pytest.fixture(scope="module")
def enhancer_dir(tmp_path_factory) -> Path:
    import torch

    from llfer.enhance.nets.zerodce import ZeroDCE

    torch.manual_seed(1)
    d = tmp_path_factory.mktemp("enh") / "zerodce"
    d.mkdir()
    ZeroDCE(preset="cpu").save(d / "model.safetensors")
    return d


def face_files(tmp_path: Path, n: int = 6, size: int = 48, dark: bool = False) -> Path:
    folder = tmp_path / "faces"
    folder.mkdir(exist_ok=True)
    for i, f in enumerate(synthetic_faces(n, size=size, seed=40)):
        cv2.imwrite(str(folder / f"{i}.png"), f // 5 if dark else f)
    return folder


def test_onnx_export_matches_pytorch_and_predict(tmp_path, model_dir, capsys):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    out = tmp_path / "onnx"
    assert main(["export", "--model", str(model_dir), "--format", "onnx", "--out", str(out)]) == 0
    assert "max abs diff logits" in capsys.readouterr().out
    info = json.loads((out / "export.json").read_text())
    assert info["file"] == "model.onnx" and info["input"]["shape"] == ["batch", 1, 48, 48]
    c = info["check"]
    assert c["faces"] == 64 and c["max_abs_diff_logits"] < 1e-4 and c["max_abs_diff_logits_batch1"] < 1e-4
    assert c["top1_agreement"] == 1.0 and c["runtime"].startswith("onnxruntime")
    # the ONNX model on faces prepared as export.json says gives predict's probabilities
    faces = face_files(tmp_path)
    assert main(["predict", str(faces), "--model", str(model_dir), "--detector", "none", "--no-progress"]) == 0
    recs = [json.loads(ln) for ln in capsys.readouterr().out.splitlines()]
    sess = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    for r in recs:
        x = cv2.imread(r["file"], cv2.IMREAD_GRAYSCALE).astype(np.float32)[None, None] / 255.0
        z = sess.run(None, {"faces": x})[0][0]
        p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
        np.testing.assert_allclose(p, list(r["probs"].values()), atol=1e-5)
        assert info["classes"][int(p.argmax())] == r["top"]


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_backbone_with_upsampling_and_adaptive_pooling(tmp_path, fmt, capsys):
    """AlexNet upsamples small faces inside its input adapter and pools 1 x 1 -> 6 x 6 adaptively; the
    exported graph does both with fixed matrices and still computes what the checkpoint's model computes."""
    import torch

    if fmt == "onnx":
        pytest.importorskip("onnx")
    mdir = save_model(tmp_path / "alex", backbone="alexnet", input_size=32)
    out = tmp_path / fmt
    assert main(["export", "--model", str(mdir), "--format", fmt, "--out", str(out),
                 "--num-faces", "8", "--faces", str(face_files(tmp_path, size=32))]) == 0
    info = json.loads((out / "export.json").read_text())
    assert info["check"]["faces"] == 6 and info["check"]["max_abs_diff_logits"] < 1e-4
    assert info["check"]["faces_from"] == [str(tmp_path / "faces")]
    if fmt == "torchscript":
        from llfer.predict import load_model

        clf = load_model(mdir)
        x = torch.rand(3, 1, 32, 32)
        ts = torch.jit.load(str(out / "model.pt"))
        with torch.inference_mode():
            np.testing.assert_allclose(ts(x).numpy(), clf.model(x).numpy(), atol=1e-4)


def test_enhancer_in_front_as_one_graph(tmp_path, model_dir, enhancer_dir, capsys):
    """The graph (learned enhancer + classifier) gives what predict gives with --enhancer DIR on face crops."""
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    out = tmp_path / "joint"
    assert main(["export", "--model", str(model_dir), "--format", "onnx", "--out", str(out),
                 "--enhancer", str(enhancer_dir), "--num-faces", "16"]) == 0
    info = json.loads((out / "export.json").read_text())
    assert info["enhancer"] == "zerodce" and info["check"]["max_abs_diff_logits"] < 1e-4
    faces = face_files(tmp_path, dark=True)
    capsys.readouterr()
    assert main(["predict", str(faces), "--model", str(model_dir), "--detector", "none", "--no-progress",
                 "--enhancer", str(enhancer_dir)]) == 0
    recs = [json.loads(ln) for ln in capsys.readouterr().out.splitlines()]
    sess = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    x = np.stack([cv2.imread(r["file"], cv2.IMREAD_GRAYSCALE) for r in recs]).astype(np.float32)[:, None] / 255
    z = sess.run(None, {"faces": x})[0]
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    # an 8-bit rounding tie may fall the other way in another runtime: compare probabilities, not bits
    np.testing.assert_allclose(p, [list(r["probs"].values()) for r in recs], atol=2e-3)


def test_refusals_leave_nothing_behind(tmp_path, model_dir, enhancer_dir, capsys, monkeypatch):
    import llfer.export as ex

    # a classical enhancer cannot go into the graph
    assert main(["export", "--model", str(model_dir), "--format", "torchscript", "--out", str(tmp_path / "a"),
                 "--enhancer", "he"]) == 2
    assert "classical" in capsys.readouterr().err and not (tmp_path / "a").exists()
    # nor can an enhancer in front of preprocessors (they are numpy code)
    he_model = save_model(tmp_path / "he_model", test_spec="clean+he")
    assert main(["export", "--model", str(he_model), "--format", "torchscript", "--out", str(tmp_path / "b"),
                 "--enhancer", str(enhancer_dir)]) == 2
    assert "applies he after enhancement" in capsys.readouterr().err
    # an existing --out is never replaced
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "keep").write_text("x")
    assert main(["export", "--model", str(model_dir), "--format", "torchscript", "--out", str(tmp_path / "c")]) == 2
    assert "already exists" in capsys.readouterr().err and (tmp_path / "c" / "keep").read_text() == "x"
    # a runtime that disagrees with PyTorch fails the check and nothing is written
    real = ex.torchscript_runner

    def skewed(path):
        run, name = real(path)
        return (lambda x: run(x) + 0.01), name

    monkeypatch.setattr(ex, "torchscript_runner", skewed)
    assert main(["export", "--model", str(model_dir), "--format", "torchscript", "--out", str(tmp_path / "d"),
                 "--num-faces", "4"]) == 2
    err = capsys.readouterr().err
    assert "export check failed" in err and "nothing written" in err
    assert not (tmp_path / "d").exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    # test faces that do not exist
    with pytest.raises(LlferError, match="nope: no such file or folder"):
        ex.export_model(model_dir, "torchscript", tmp_path / "g", faces=[str(tmp_path / "nope")])
    # not a classifier
    with pytest.raises(LlferError, match="not of a classifier"):
        ex.export_model(enhancer_dir, "onnx", tmp_path / "e")
    with pytest.raises(LlferError, match="allowed: onnx, torchscript"):
        ex.export_model(model_dir, "tflite", tmp_path / "f")
