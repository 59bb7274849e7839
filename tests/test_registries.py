"""Every registered member, found by iterating the registries (as timm's tests iterate ``list_models()``).

Nothing here lists members by hand: a new backbone, enhancer, preprocessor,
degradation or dataset is picked up by ``registry.import_all()`` and tested
here.  The only data kept by name are the backbones' expected parameter
counts and the datasets' tiny fixtures; a registered member without them (or
an entry without a member) fails.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from llfer.data.store import CLASSES_FER2013, SPLITS, Prepared
from llfer.registry import (
    ALL,
    BACKBONES,
    DATASETS,
    DEGRADATIONS,
    ENHANCERS,
    MEMBER_PACKAGES,
    PREPROCESSORS,
    MemberImportError,
    import_all,
    import_members,
)
from test_readers import encode, fer_folder, ferplus_tree, img, put

torch.set_num_threads(1)
MODULES = import_all()

# per backbone: parameters of BACKBONES.build(name) (7 classes, 1 channel, 48 px, scratch), and whether
# tests/test_models.py::test_small_overfit trains it (a few Adam steps; AlexNet's dropout head and no BN
# need far more, the two big nets take too long)
BACKBONE_EXPECT = {
    "alexnet": {"params": 2_534_215, "quick_overfit": False},
    "efcnet": {"params": 519_597, "quick_overfit": True},
    "inception_resnet_v2": {"params": 54_317_223, "quick_overfit": False},
    "mini_xception": {"params": 56_951, "quick_overfit": True},
    "resnet18": {"params": 11_180_103, "quick_overfit": True},
    "resnet50": {"params": 36_103_239, "quick_overfit": False},
}
SLOW_PARAMS = 50_000_000  # above this a backbone's checks are marked slow


# ------------------------------------------------------------------------------------- discovery
def test_import_all_finds_every_member_module():
    for reg in ALL.values():
        assert len(reg) > 0
        for name in reg.names():
            mod = reg.get(name).__module__
            assert mod in MODULES and mod.startswith(MEMBER_PACKAGES), (reg.kind, name, mod)


def test_broken_member_module_fails_naming_its_file(tmp_path, monkeypatch):
    pkg = tmp_path / "llfer_probe_pkg"
    put(pkg / "__init__.py", b"")
    put(pkg / "good.py", b"VALUE = 1\n")
    put(pkg / "sub" / "__init__.py", b"")
    put(pkg / "sub" / "broken.py", b"import llfer_no_such_module_anywhere\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(MemberImportError, match=r"sub[/\\]broken\.py: cannot import llfer_probe_pkg\.sub\.broken: "
                                                r"ModuleNotFoundError"):
        import_members("llfer_probe_pkg")
    assert "llfer_probe_pkg.good" in sys.modules
    (pkg / "sub" / "broken.py").write_text("VALUE = 2\n")
    assert import_members("llfer_probe_pkg") == [
        "llfer_probe_pkg", "llfer_probe_pkg.good", "llfer_probe_pkg.sub", "llfer_probe_pkg.sub.broken"]


# ------------------------------------------------------------------------------------- backbones
def slow_if_big(names):
    big = {n for n, e in BACKBONE_EXPECT.items() if e["params"] > SLOW_PARAMS}
    return [pytest.param(n, marks=pytest.mark.slow) if n in big else n for n in names]


def test_every_backbone_has_an_expected_parameter_count():
    assert sorted(BACKBONE_EXPECT) == BACKBONES.names()


@pytest.mark.parametrize("name", slow_if_big(BACKBONES.names()))
def test_backbone_builds_learns_and_counts(name):
    e = BACKBONES.entry(name)
    assert e.description
    for k in ("num_classes", "in_channels", "input_size", "pretrained"):
        assert k in e.defaults
    assert e.defaults["pretrained"] is False
    torch.manual_seed(0)
    m = BACKBONES.build(name)
    assert sum(p.numel() for p in m.parameters()) == BACKBONE_EXPECT.get(name, {}).get("params")
    assert all(p.requires_grad for p in m.parameters())  # scratch: nothing frozen
    # forward and backward on a tiny batch
    m.train()
    out = m(torch.rand(2, 1, 48, 48))
    assert out.shape == (2, 7) and torch.isfinite(out).all()
    torch.nn.functional.cross_entropy(out, torch.tensor([0, 3])).backward()
    grads = [p.grad for p in m.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
    # another size and class count, inference mode
    m = BACKBONES.build(name, num_classes=5, input_size=32).eval()
    with torch.no_grad():
        out = m(torch.rand(2, 1, 32, 32))
    assert out.shape == (2, 5) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", slow_if_big(BACKBONES.names()))
def test_backbone_stage_features(name):
    """The supervisor contract ([ll-fer] eq. 12): per-stage maps that share forward's weights."""
    from llfer.models.common import StagedBackbone

    torch.manual_seed(0)
    m = BACKBONES.build(name).eval()
    assert isinstance(m, StagedBackbone) and m.in_channels == 1
    names = m.stage_names
    assert len(names) >= 3 and len(set(names)) == len(names) and all(names)
    x = torch.rand(2, 1, 48, 48)
    with torch.no_grad():
        before = m(x)
        feats = m.stage_features(x)
        feats2, logits = m.forward_stages(x)
        after = m(x)
    assert len(feats) == len(names)
    assert torch.equal(logits, before) and torch.equal(after, before)  # forward untouched, same pass
    assert all(torch.equal(a, b) for a, b in zip(feats, feats2))
    sizes = []
    for f in feats:
        assert f.dim() == 4 and f.shape[0] == 2 and f.shape[1] > 0 and torch.isfinite(f).all()
        sizes.append(f.shape[-1])
    assert sizes == sorted(sizes, reverse=True) and sizes[0] > 1  # coarser stage by stage
    # gradients flow from every stage to the input, and stages + head reach every weight
    x.requires_grad_(True)
    feats, logits = m.forward_stages(x)
    for s, f in enumerate(feats):
        (g,) = torch.autograd.grad(f.square().mean(), x, retain_graph=True)
        assert torch.isfinite(g).all() and g.abs().sum() > 0, (name, names[s])
    m.zero_grad(set_to_none=True)
    (logits.square().mean() + sum(f.mean() for f in feats)).backward()
    assert all(p.grad is not None for p in m.parameters())


# ------------------------------------------------------------------------------------- enhancers
def _dark_faces(n=3, h=24, w=20, rgb=False, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    face = 20 + 25 * np.exp(-(((xx - 0.5) / 0.3) ** 2 + ((yy - 0.5) / 0.4) ** 2))
    x = face[None] * rng.uniform(0.5, 1.0, (n, 1, 1)) + rng.normal(0, 3, (n, h, w))
    if rgb:
        x = x[..., None] * np.array([1.0, 0.8, 0.6])
    return np.clip(x, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("rgb", [False, True])
@pytest.mark.parametrize("name", ENHANCERS.names())
def test_enhancer_maps_dark_batch_to_uint8_same_shape(name, rgb):
    e = ENHANCERS.entry(name)
    assert e.description and e.obj.name == name
    torch.manual_seed(0)
    enh = ENHANCERS.build(name)  # every option has a default
    x = _dark_faces(rgb=rgb)
    y = enh.enhance(x)
    assert y.dtype == np.uint8 and y.shape == x.shape
    assert 0 <= y.min() and y.max() <= 255
    np.testing.assert_array_equal(y, enh.enhance(x))  # deterministic
    np.testing.assert_array_equal(y[1:2], enh.enhance(x[1:2]))  # per image: the batch does not matter
    if not e.obj.learned and name != "identity":
        assert y.astype(float).mean() > x.mean()  # a classical enhancer brightens a dark face


# ------------------------------------------------------------------------------------- preprocessors
@pytest.mark.parametrize("rgb", [False, True])
@pytest.mark.parametrize("train", [False, True])
@pytest.mark.parametrize("name", PREPROCESSORS.names())
def test_preprocessor_keeps_uint8_and_image_size(name, train, rgb):
    assert PREPROCESSORS.entry(name).description
    x = _dark_faces(4, 16, 16, rgb=rgb)
    ids = [f"i{k}" for k in range(len(x))]
    y = PREPROCESSORS.build(name, images=x, ids=ids, train=train, seed=3)
    assert y.dtype == np.uint8 and y.shape[:3] == x.shape[:3] and y.ndim in (3, 4)
    assert y.ndim == 3 or y.shape[-1] == 3
    np.testing.assert_array_equal(y[::-1], PREPROCESSORS.build(name, images=x[::-1], ids=ids[::-1], train=train, seed=3))


# ------------------------------------------------------------------------------------- degradations
@pytest.mark.parametrize("rgb", [False, True])
@pytest.mark.parametrize("name", DEGRADATIONS.names())
def test_degradation_is_uint8_per_image_and_seeded(name, rgb):
    assert DEGRADATIONS.entry(name).description
    x = _dark_faces(4, 24, 24, rgb=rgb) * 5
    ids = [f"d{k}" for k in range(len(x))]
    y = DEGRADATIONS.build(name, images=x, ids=ids, seed=1)
    assert y.dtype == np.uint8 and len(y) == len(x) and y.ndim == x.ndim
    if y.shape[1:3] == x.shape[1:3]:  # not a resize: at most as bright as the input on average
        assert y.astype(float).mean() <= x.mean() + 1
    else:
        assert y.shape[1] == y.shape[2] < x.shape[1]
    np.testing.assert_array_equal(y[::-1], DEGRADATIONS.build(name, images=x[::-1], ids=ids[::-1], seed=1))


# ------------------------------------------------------------------------------------- datasets
def _jaffe(root: Path) -> dict:
    subjects = ["KA", "KL", "KM", "KR", "MK"]
    for n, (s, c) in enumerate((s, c) for s in subjects for c in ["AN", "DI", "FE", "HA", "NE", "SA", "SU"]):
        put(root / f"{s}.{c}1.{n}.tiff", encode(img(n, (8, 8)), "TIFF"))
    return {}


def _kdef(root: Path) -> dict:
    for person in ("F01", "M02", "F03", "M04", "F05"):
        for c in ("AF", "AN", "DI", "HA", "NE", "SA", "SU"):
            put(root / f"A{person}" / f"A{person}{c}S.JPG", encode(img(len(person) + ord(c[1]), (8, 8), "RGB"), "JPEG"))
    return {"test_fraction": 0.2, "val_fraction": 0.2}


def _rafdb(root: Path) -> dict:
    lines = []
    for split, n in (("train", 21), ("test", 7)):
        for k in range(n):
            lines.append(f"{split}_{k + 1:05d}.jpg {k % 7 + 1}")
            put(root / "Image" / "aligned" / f"{split}_{k + 1:05d}_aligned.jpg", encode(img(k, (8, 8), "RGB"), "JPEG"))
    put(root / "EmoLabel" / "list_patition_label.txt", ("\n".join(lines) + "\n").encode())
    return {"size": 8, "val_fraction": 1 / 3}


def _lol(root: Path) -> dict:
    for split, names in (("our485", ["2", "5"]), ("eval15", ["1"])):
        for n in names:
            hi = img(int(n), (6, 8), "RGB")
            put(root / split / "high" / f"{n}.png", encode(hi))
            put(root / split / "low" / f"{n}.png", encode(hi // 10))
    return {}


def _unpaired(root: Path) -> dict:
    for i in range(3):
        put(root / "DICM" / f"{i:02d}.png", encode(img(i, (6, 8), "RGB")))
    return {}


def _folder(root: Path) -> dict:
    for split in ("train", "test"):
        for ci, c in enumerate(CLASSES_FER2013[:3]):
            for k in range(3):
                put(root / split / c / f"{split}_{c}_{k}.png", encode(img(ci * 10 + k + (50 if split == "test" else 0))))
    return {"val_fraction": 0.0}


DATASET_FIXTURES = {  # name -> writes a tiny source under the given folder, returns reader options
    "fer2013": lambda root: (fer_folder(root), {})[1],
    "ferplus": lambda root: (ferplus_tree(root), {})[1],
    "folder": _folder,
    "jaffe": _jaffe,
    "kdef": _kdef,
    "lol": _lol,
    "rafdb": _rafdb,
    "synthetic": None,  # no source: drawn procedurally
    "unpaired": _unpaired,
}


def test_every_dataset_has_a_fixture():
    assert sorted(DATASET_FIXTURES) == DATASETS.names()


@pytest.mark.parametrize("name", DATASETS.names())
def test_dataset_builds_from_a_tiny_fixture(name, tmp_path):
    assert DATASETS.entry(name).description
    if name not in DATASET_FIXTURES:
        pytest.fail(f"dataset {name!r} has no fixture in DATASET_FIXTURES")
    write = DATASET_FIXTURES[name]
    if write is None:
        p = DATASETS.build(name, num_images=21, size=16, render_scale=1, num_subjects=7)
    else:
        opts = write(tmp_path / "src")
        p = DATASETS.build(name, source=tmp_path / "src", **opts)
    assert isinstance(p, Prepared)
    assert p.images.dtype == np.uint8 and p.images.ndim in (3, 4) and len(p.images) == len(p.index) > 0
    assert list(p.index.columns) == ["id", "split", "label", "label_name", "subject", "source"]
    assert p.index["id"].is_unique and set(p.index["split"]) <= set(SPLITS)
    assert p.classes and p.index["label"].between(0, len(p.classes) - 1).all()
    assert [p.classes[k] for k in p.index["label"]] == p.index["label_name"].tolist()
    assert sum(c["total"] for c in p.report["counts"].values()) == len(p.index)
