"""``llfer predict``: synthetic faces pasted into scenes at known places, crops, folders, videos, bad input."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from llfer.cli import main  # noqa: E402
from llfer.errors import LlferError  # noqa: E402

from conftest import shared_datasets_dir  # noqa: E402

CLASSES = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
FACE = 96
#: top-left corners of the faces pasted into the 320 x 240 scene
PLACES = [(30, 40), (200, 100)]
needs_haar = pytest.mark.skipif(not hasattr(cv2, "CascadeClassifier"), reason="OpenCV without the Haar cascade (5.x)")


def save_model(path: Path, backbone: str = "mini_xception", in_channels: int = 1, test_spec: str = "clean",
               seed: int = 0, weights_channels: int | None = None, **opts) -> Path:
    """A classifier model directory as ``llfer train-fer`` writes it (seeded random weights)."""
    import torch

    from llfer.registry import import_members

    import_members("llfer.models")  # registers its members
    from llfer.checkpoint import save_classifier
    from llfer.registry import BACKBONES

    o = dict(BACKBONES.entry(backbone).defaults)
    o.update(num_classes=len(CLASSES), in_channels=in_channels, **opts)
    torch.manual_seed(seed)
    model = BACKBONES.build(backbone, **{**o, "in_channels": weights_channels or in_channels})
    cfg = {"backbone": backbone, "options": o, "input": test_spec, "train_spec": test_spec, "test_spec": test_spec,
           "classes": CLASSES}
    path.mkdir(parents=True, exist_ok=True)
    save_classifier(path / "model.safetensors", model, cfg)
    return path


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return save_model(tmp_path_factory.mktemp("model") / "mx")


def synthetic_faces(n: int, size: int = FACE, seed: int = 0) -> np.ndarray:
    from llfer.data.synthetic import render_faces

    return render_faces([i % 7 for i in range(n)], list(range(n)), list(range(seed, seed + n)), size=size)[0]


def make_scene(faces: np.ndarray, places=PLACES, shape=(240, 320), seed: int = 0) -> np.ndarray:
    """A blurred-noise background with ``faces`` pasted at ``places`` (x, y)."""
    rng = np.random.default_rng(seed)
    scene = cv2.GaussianBlur(np.clip(rng.normal(100, 25, shape), 0, 255).astype(np.uint8), (9, 9), 3)
    for f, (x, y) in zip(faces, places):
        scene[y : y + f.shape[0], x : x + f.shape[1]] = f
    return scene


def run(args, capsys) -> tuple[int, list[dict], str]:
    rc = main(["predict", "--no-progress", *map(str, args)])
    cap = capsys.readouterr()
    return rc, [json.loads(ln) for ln in cap.out.splitlines() if ln.strip()], cap.err


def inside(box, place, size=FACE) -> bool:
    x, y, w, h = box
    cx, cy = x + w / 2, y + h / 2
    return place[0] <= cx < place[0] + size and place[1] <= cy < place[1] + size and w >= size / 2


# ----------------------------------------------------------------------------- detection and classification
@needs_haar
def test_haar_finds_pasted_faces_and_annotates(tmp_path, model_dir, capsys):
    scene = make_scene(synthetic_faces(2))
    cv2.imwrite(str(tmp_path / "scene.png"), scene)
    rc, recs, err = run([tmp_path / "scene.png", "--model", model_dir, "--out", tmp_path / "faces.jsonl",
                         "--annotate", tmp_path / "ann"], capsys)
    assert rc == 0, err
    assert recs == []  # --out: nothing on stdout
    recs = [json.loads(ln) for ln in (tmp_path / "faces.jsonl").read_text().splitlines()]
    assert len(recs) == 2
    for rec, place in zip(recs, PLACES):  # reading order = the order of PLACES
        assert inside(rec["box"], place), (rec["box"], place)
        assert rec["file"] == str(tmp_path / "scene.png") and rec["frame"] is None
        assert set(rec["probs"]) == set(CLASSES) and abs(sum(rec["probs"].values()) - 1) < 1e-4
        assert rec["top"] == max(rec["probs"], key=rec["probs"].get) and rec["score"] == rec["probs"][rec["top"]]
    ann = cv2.imread(str(tmp_path / "ann" / "scene.png"))
    assert ann.shape == (240, 320, 3)
    x, y, w, h = recs[0]["box"]
    assert tuple(ann[y + h // 2, x]) == (0, 255, 0)  # the box is drawn in green
    assert "1 images" in err and "2 faces" in err


@needs_haar
def test_scene_predictions_match_predict_on_the_crops(tmp_path, model_dir, capsys):
    """A face's probabilities are the same whether predict finds it in a scene or gets the crop itself, and
    equal the model's own output on the crop resized to its input size."""
    import torch

    scene = make_scene(synthetic_faces(2, seed=5))
    cv2.imwrite(str(tmp_path / "scene.png"), scene)
    rc, recs, _ = run([tmp_path / "scene.png", "--model", model_dir], capsys)
    assert rc == 0 and len(recs) == 2
    crops = tmp_path / "crops"
    crops.mkdir()
    for i, r in enumerate(recs):
        x, y, w, h = r["box"]
        cv2.imwrite(str(crops / f"{i}.png"), scene[y : y + h, x : x + w])
    rc, crop_recs, _ = run([crops, "--model", model_dir, "--detector", "none"], capsys)
    assert rc == 0 and len(crop_recs) == 2
    from llfer.predict import load_model

    clf = load_model(model_dir)
    for r, c in zip(recs, crop_recs):
        assert c["box"][:2] == [0, 0] and c["box"][2:] == r["box"][2:]
        np.testing.assert_allclose(list(c["probs"].values()), list(r["probs"].values()), atol=1e-6)
        x, y, w, h = r["box"]
        face = cv2.resize(scene[y : y + h, x : x + w], (48, 48), interpolation=cv2.INTER_AREA)
        with torch.inference_mode():
            p = torch.softmax(clf.model(torch.from_numpy(face).float()[None, None] / 255), 1)[0].numpy()
        np.testing.assert_allclose(list(r["probs"].values()), p, atol=1e-5)


def test_faces_are_prepared_as_the_checkpoint_says(tmp_path):
    """Channels, size and the test spec's preprocessors come from the checkpoint."""
    from llfer.preprocess import apply_preprocessors
    from llfer.predict import load_model, prepare_faces

    crop = synthetic_faces(1, size=64)[0]
    rgb = np.stack([crop, crop // 2, crop], axis=-1)
    clf = load_model(save_model(tmp_path / "he", test_spec="dark_pil+he", input_size=40))
    assert clf.preprocessors == ["he"] and clf.input_size == 40 and clf.in_channels == 1
    got = prepare_faces(clf, [rgb])
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    want = apply_preprocessors(["he"], cv2.resize(gray, (40, 40), interpolation=cv2.INTER_AREA)[None], ids=["0"],
                               train=False, seed=0)
    assert got.shape == (1, 40, 40)
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 1  # OpenCV's and BT.601 luma round alike
    clf = load_model(save_model(tmp_path / "sobel", test_spec="sobel3", in_channels=3))
    assert clf.preprocessors == ["sobel3"]
    assert prepare_faces(clf, [crop]).shape == (1, 48, 48, 3)
    clf = load_model(save_model(tmp_path / "rgb", in_channels=3))
    out = prepare_faces(clf, [crop])
    assert out.shape == (1, 48, 48, 3) and (out[..., 0] == out[..., 1]).all()  # grey repeated


# ----------------------------------------------------------------------------- enhancers
@needs_haar
def test_enhancer_in_front_recovers_faces_in_the_dark(tmp_path, model_dir, capsys):
    from llfer.degrade import dark_pil

    scene = dark_pil(make_scene(synthetic_faces(2, seed=0))[None], factor=0.1)[0]
    cv2.imwrite(str(tmp_path / "dark.png"), scene)
    rc, dark, _ = run([tmp_path / "dark.png", "--model", model_dir], capsys)
    rc2, lit, err = run([tmp_path / "dark.png", "--model", model_dir, "--enhancer", "gain",
                         "--annotate", tmp_path / "ann"], capsys)
    assert rc == rc2 == 0
    assert len(lit) == 2 and all(inside(r["box"], p) for r, p in zip(lit, PLACES))
    assert len(dark) < len(lit)
    assert "enhancer gain" in err
    assert cv2.imread(str(tmp_path / "ann" / "dark.png")).mean() > 2 * scene.mean()  # drawn on the enhanced picture


def test_learned_enhancer_directory(tmp_path, model_dir, capsys):
    from llfer.enhance.nets.zerodce import ZeroDCE
    from llfer.predict import Predictor, load_model

    enh = ZeroDCE(preset="cpu")
    (tmp_path / "zdce").mkdir()
    enh.save(tmp_path / "zdce" / "model.safetensors")
    faces = synthetic_faces(3, size=48) // 4
    for i, f in enumerate(faces):
        cv2.imwrite(str(tmp_path / f"f{i}.png"), f)
    rc, recs, _ = run([tmp_path / "f0.png", tmp_path / "f1.png", tmp_path / "f2.png", "--model", model_dir,
                       "--detector", "none", "--enhancer", tmp_path / "zdce"], capsys)
    assert rc == 0 and len(recs) == 3
    pred = Predictor(load_model(model_dir), ZeroDCE.load(tmp_path / "zdce" / "model.safetensors"), detector="none")
    want = pred.classify(pred.prepare(list(pred.enhancer.enhance(faces))))
    np.testing.assert_allclose([list(r["probs"].values()) for r in recs], want, atol=1e-5)
    # the learned enhancer by name alone, or a classifier given as enhancer, is refused
    rc, _, err = run([tmp_path / "f0.png", "--model", model_dir, "--enhancer", "zerodce"], capsys)
    assert rc == 2 and "learned enhancer" in err and "model directory" in err
    rc, _, err = run([tmp_path / "f0.png", "--model", model_dir, "--enhancer", model_dir], capsys)
    assert rc == 2 and "classifier checkpoint" in err
    rc, _, err = run([tmp_path / "f0.png", "--model", model_dir, "--enhancer", "nosuch"], capsys)
    assert rc == 2 and "nosuch" in err and "clahe" in err
    # an enhancer checkpoint given as the model
    rc, _, err = run([tmp_path / "f0.png", "--model", tmp_path / "zdce"], capsys)
    assert rc == 2 and "enhancer 'zerodce', not of a classifier" in err


# ----------------------------------------------------------------------------- folders, videos, bad input
def test_folder_recursion_and_bad_files(tmp_path, model_dir, capsys):
    root = tmp_path / "photos"
    (root / "a" / "b").mkdir(parents=True)
    faces = synthetic_faces(3, size=48)
    cv2.imwrite(str(root / "one.png"), faces[0])
    cv2.imwrite(str(root / "a" / "two.jpg"), faces[1])
    cv2.imwrite(str(root / "a" / "b" / "three.bmp"), faces[2])
    (root / "a" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (root / "a" / "b" / "notes.txt").write_text("hello")
    (root / "empty.png").write_bytes(b"")
    (root / ".hidden.png").write_bytes(b"ignored")
    rc, recs, err = run([root, tmp_path / "missing.png", "--model", model_dir, "--detector", "none",
                         "--annotate", tmp_path / "ann"], capsys)
    assert rc == 4  # exit status = number of inputs that failed
    skipped = [ln for ln in err.splitlines() if ln.startswith("llfer: skip")]
    assert len(skipped) == 4
    for name in ("broken.jpg", "notes.txt", "empty.png", "missing.png"):
        assert sum(name in ln for ln in skipped) == 1
    assert sorted(Path(r["file"]).name for r in recs) == ["one.png", "three.bmp", "two.jpg"]
    assert (tmp_path / "ann" / "photos" / "a" / "b" / "three.bmp").is_file()
    assert (tmp_path / "ann" / "photos" / "one.png").is_file()


def test_video_every_kth_frame(tmp_path, model_dir, capsys):
    faces = synthetic_faces(10, size=64)
    w = cv2.VideoWriter(str(tmp_path / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 64), isColor=False)
    assert w.isOpened()
    for f in faces:
        w.write(f)
    w.release()
    rc, recs, err = run([tmp_path / "clip.avi", "--model", model_dir, "--detector", "none", "--every", "3",
                         "--annotate", tmp_path / "ann", "--batch-size", "2"], capsys)
    assert rc == 0, err
    assert [r["frame"] for r in recs] == [0, 3, 6, 9]
    assert sorted(p.name for p in (tmp_path / "ann" / "clip").iterdir()) == [f"frame_{i:06d}.png" for i in (0, 3, 6, 9)]
    assert "1 videos, 4 pictures" in err
    (tmp_path / "fake.mp4").write_bytes(b"\x00" * 100)
    rc, recs, err = run([tmp_path / "fake.mp4", "--model", model_dir, "--detector", "none"], capsys)
    assert rc == 1 and recs == [] and "fake.mp4: not a readable image or video" in err


def test_bad_model_directories(tmp_path, capsys):
    img = tmp_path / "f.png"
    cv2.imwrite(str(img), synthetic_faces(1, size=48)[0])
    (tmp_path / "empty").mkdir()
    rc, _, err = run([img, "--model", tmp_path / "empty"], capsys)
    assert rc == 2 and "not a model directory (no model.safetensors)" in err
    rc, _, err = run([img, "--model", tmp_path / "nope"], capsys)
    assert rc == 2 and "does not exist" in err
    # a pickled torch file is never unpickled
    import torch

    (tmp_path / "pickle").mkdir()
    torch.save({"x": torch.zeros(1)}, tmp_path / "pickle" / "model.safetensors")
    rc, _, err = run([img, "--model", tmp_path / "pickle"], capsys)
    assert rc == 2 and "not a readable safetensors checkpoint" in err
    # safetensors without the classifier config
    from safetensors.torch import save_file

    (tmp_path / "noconf").mkdir()
    save_file({"w": torch.zeros(2)}, str(tmp_path / "noconf" / "model.safetensors"))
    rc, _, err = run([img, "--model", tmp_path / "noconf"], capsys)
    assert rc == 2 and "not a classifier checkpoint" in err
    # config says grey, weights were built for RGB
    save_model(tmp_path / "mism", in_channels=1, weights_channels=3)
    rc, _, err = run([img, "--model", tmp_path / "mism"], capsys)
    assert rc == 2 and "mism/model.safetensors" in err and "weights do not fit" in err and "mini_xception" in err
    assert len([ln for ln in err.splitlines() if ln.strip()]) == 1


def test_outputs_never_replace_existing_files(tmp_path, model_dir, capsys):
    img = tmp_path / "f.png"
    cv2.imwrite(str(img), synthetic_faces(1, size=48)[0])
    (tmp_path / "out.jsonl").write_text("precious\n")
    rc, _, err = run([img, "--model", model_dir, "--detector", "none", "--out", tmp_path / "out.jsonl"], capsys)
    assert rc == 2 and "already exists" in err
    assert (tmp_path / "out.jsonl").read_text() == "precious\n"
    (tmp_path / "ann").mkdir()
    (tmp_path / "ann" / "keep.txt").write_text("x")
    rc, _, err = run([img, "--model", model_dir, "--detector", "none", "--annotate", tmp_path / "ann"], capsys)
    assert rc == 2 and "already exists" in err and (tmp_path / "ann" / "keep.txt").read_text() == "x"
    (tmp_path / "empty_ann").mkdir()  # an empty folder is fine
    rc, recs, _ = run([img, "--model", model_dir, "--detector", "none", "--annotate", tmp_path / "empty_ann",
                       "--out", tmp_path / "new.jsonl"], capsys)
    assert rc == 0 and (tmp_path / "empty_ann" / "f.png").is_file() and (tmp_path / "new.jsonl").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporaries left behind


def test_predictor_rejects_bad_settings(model_dir):
    from llfer.predict import Predictor, load_model

    with pytest.raises(LlferError, match="--detector"):
        Predictor(load_model(model_dir), detector="yolo")
    with pytest.raises(LlferError, match="batch-size"):
        Predictor(load_model(model_dir), batch_size=0, detector="none")


# ----------------------------------------------------------------------------- real photos
@pytest.mark.realdata
@needs_haar
def test_haar_finds_real_fer2013_faces_pasted_into_scenes(tmp_path, model_dir):
    """Real FER2013 faces (48 px crops, upscaled to 96 px) pasted into scenes: the detector finds most."""
    zpath = shared_datasets_dir() / "fer2013.zip"
    if not zpath.exists():
        pytest.skip(f"{zpath} is absent")
    from llfer.predict import Predictor, load_model

    with zipfile.ZipFile(zpath) as z:
        names = sorted(n for n in z.namelist() if "/PrivateTest_" in n and n.endswith(".jpg"))[:40]
        faces = [cv2.imdecode(np.frombuffer(z.read(n), np.uint8), cv2.IMREAD_GRAYSCALE) for n in names]
    pred = Predictor(load_model(model_dir))
    found = 0
    for i in range(0, len(faces), 2):
        pair = [cv2.resize(f, (FACE, FACE), interpolation=cv2.INTER_CUBIC) for f in faces[i : i + 2]]
        _, boxes, _ = pred.faces(make_scene(np.stack(pair), seed=i))
        found += sum(any(inside(b, p) for b in boxes) for p in PLACES)
    assert found / len(faces) >= 0.6, found
