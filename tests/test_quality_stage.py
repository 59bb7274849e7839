"""run_quality: NIQE on prepared unpaired low-light sets (``quality.unpaired``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from llfer.config import default_data, from_dict
from llfer.data.store import read_dataset, write_dataset
from llfer.errors import ConfigError, DataError
from llfer.pipeline import run_prepare, run_quality


def _params(unpaired: list[str], **quality):
    return from_dict({
        "enhancer": "he",
        "classical": {"identity": {}, "he": {}, "gain": {}},
        "learned": {"zerodce": {**default_data()["learned"]["zerodce"]}},
        "degrade": {"dark_pil": {"factors": [0.1]}, "dark_gamma": None, "lowres": None, "combos": {}},
        "fer": {"eval_on": ["clean", "dark_pil"], "runs": []},  # the defaults also list the variants switched off here
        "enhance": {"variants": ["dark_pil"]},
        "joint": {"variant": "dark_pil"},  # the default joint pair learns from dark_gamma, switched off here
        "quality": {"niqe_upsample": 12, "niqe_max_images": 4, "unpaired": unpaired, **quality},
    })


@pytest.fixture
def unpaired_set(tmp_path: Path) -> Path:
    """Five dark 48 x 64 RGB photos (two sizes on disk), prepared with `--dataset unpaired`."""
    from PIL import Image

    src = tmp_path / "lowlight_photos"
    (src / "DICM").mkdir(parents=True)
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:48, 0:64]
    for i in range(5):
        base = 20 + 15 * np.sin(xx / (3 + i)) * np.cos(yy / 5) + rng.normal(0, 4, (48, 64))
        rgb = np.clip(np.stack([base, base * 0.9, base * 1.1], -1), 0, 255).astype(np.uint8)
        Image.fromarray(rgb).save(src / "DICM" / f"{i:02d}.png")
    out = tmp_path / "unpaired_dicm"
    run_prepare(_params([]), out, source=str(src), dataset="unpaired")
    return out


@pytest.fixture
def paired(tiny_prepared: Path) -> tuple[Path, Path, Path]:
    """The tiny 16 x 16 set, its dark_pil variant, and an enhanced root with an output for each enhancer in
    ``_params`` (quality scores exactly those; here they are the dark images themselves)."""
    ds = read_dataset(tiny_prepared)
    degraded = tiny_prepared.parent / "degraded"
    dark = (np.asarray(ds.images) // 10).astype(np.uint8)
    write_dataset(degraded / "dark_pil", dark, ds.index, classes=ds.classes)
    enhanced = tiny_prepared.parent / "enhanced"
    for e in ("identity", "he", "gain", "zerodce"):
        write_dataset(enhanced / e / "dark_pil", dark, ds.index, classes=ds.classes)
    return tiny_prepared, degraded, enhanced


def test_unpaired_niqe_rows(paired, unpaired_set, tmp_path):
    from llfer.enhance.nets.zerodce import ZeroDCE

    prepared, degraded, enhanced = paired
    models = tmp_path / "models"
    ZeroDCE(preset="cpu").save(models / "zerodce" / "model.safetensors")
    p = _params([str(unpaired_set)])
    out = tmp_path / "quality.json"
    res = run_quality(p, prepared, degraded, enhanced, out, tmp_path / "plots", models_root=models)
    rows = res["unpaired:unpaired_dicm"]
    assert set(rows) == {"input", "he", "gain", "zerodce"}  # identity would repeat "input"
    assert all(np.isfinite(r["niqe"]) for r in rows.values())
    assert rows["he"]["niqe"] != rows["input"]["niqe"]
    assert json.loads(out.read_text())["unpaired:unpaired_dicm"] == rows
    assert set(res["dark_pil"]) == {"input", "identity", "he", "gain", "zerodce"}  # the paired table, from params
    csv = (tmp_path / "plots" / "quality.csv").read_text()
    assert "unpaired:unpaired_dicm" in csv

    # without a models root only the classical enhancers are scored; same photos, same numbers
    res2 = run_quality(p, prepared, degraded, enhanced, tmp_path / "q2.json", tmp_path / "plots2")
    rows2 = res2["unpaired:unpaired_dicm"]
    assert set(rows2) == {"input", "he", "gain"}
    assert rows2["he"] == rows["he"] and rows2["input"] == rows["input"]


def test_unpaired_default_empty_and_errors(paired, tmp_path):
    prepared, degraded, enhanced = paired
    res = run_quality(_params([], niqe=False), prepared, degraded, enhanced, tmp_path / "q.json", tmp_path / "plots")
    assert not any(k.startswith("unpaired:") for k in res)
    with pytest.raises(DataError, match="not a prepared dataset"):
        run_quality(_params([str(tmp_path / "missing")], niqe=False), prepared, degraded, enhanced,
                    tmp_path / "q3.json", tmp_path / "plots3")
    assert not (tmp_path / "q3.json").exists()
    # a leftover folder of an enhancer params do not list is not scored; a listed one that is missing is an error
    (enhanced / "gain").rename(enhanced / "old_gain")
    with pytest.raises(DataError, match=r"gain/dark_pil: no enhanced data; params list enhancer 'gain'"):
        run_quality(_params([], niqe=False), prepared, degraded, enhanced, tmp_path / "q4.json", tmp_path / "plots4")
    res = run_quality(_params([], niqe=False), prepared, degraded, enhanced, tmp_path / "q5.json", tmp_path / "plots5",
                      enhancers=["identity", "he"])
    assert set(res["dark_pil"]) == {"input", "identity", "he"}
    with pytest.raises(ConfigError, match="quality.unpaired"):
        _params("not-a-list")  # type: ignore[arg-type]
