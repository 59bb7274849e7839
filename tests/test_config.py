import textwrap

import pytest

from llfer.config import from_dict, load_params
from llfer.errors import ConfigError
from conftest import REPO


def test_repo_params_are_valid():
    p = load_params(REPO / "params.yaml")
    assert p.enhancer in set(p.classical) | set(p.learned)
    assert "dark_pil" in p.variant_names()


@pytest.mark.parametrize("data, message", [
    ({"sed": 1}, "sed: unknown key"),
    ({"fer": {"train": {"lr": "fast"}}}, "fer.train.lr: Input should be a valid number"),
    ({"fer": {"train": {"epochs": 0}}}, "fer.train.epochs"),
    ({"enhancer": "magic"}, "enhancer: unknown enhancer 'magic'; allowed: agc, clahe"),
    ({"dataset": {"name": "imagenet"}}, "dataset.name: unknown dataset 'imagenet'; allowed:"),
    ({"dataset": {"options": {"num_imgs": 3}}}, "dataset.options: unknown parameter 'num_imgs'"),
    ({"fer": {"backbones": ["vgg99"]}}, "fer.backbones: unknown backbone 'vgg99'"),
    ({"classical": {"he": {"clip": 3}}}, "classical.he: unknown parameter 'clip'"),
    ({"classical": {"zerodce": {}}}, "classical.zerodce: 'zerodce' is a learned enhancer"),
    ({"enhance": {"variants": ["dark_moon"]}}, "enhance.variants: unknown variant 'dark_moon'"),
    ({"fer": {"inputs": ["enhanced"], "enhanced_inputs": []}}, "list it under fer.enhanced_inputs"),
    ({"fer": {"inputs": ["clean+nonsense"]}}, "unknown preprocessor 'nonsense'"),
    ({"degrade": {"lowres": {"interpolation": "sinc"}}}, "degrade.lowres.interpolation"),
])
def test_bad_params_name_the_key(data, message):
    with pytest.raises(ConfigError) as e:
        from_dict(data)
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_load_params_errors(tmp_path):
    with pytest.raises(ConfigError, match="params file not found"):
        load_params(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("seed: [1, 2\nfer: {}\n")
    with pytest.raises(ConfigError, match="malformed YAML at line"):
        load_params(bad)
    top = tmp_path / "list.yaml"
    top.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_params(top)


def test_input_defs_and_specs():
    p = from_dict(yaml_load("""
        fer:
          inputs: [clean, dark, he, gcn_he]
          input_defs: {dark: {train: dark_pil}, mixed: {train: clean, test: dark_pil}}
    """))
    assert p.input_def("dark").train == "dark_pil" and p.input_def("dark").test == "dark_pil"
    assert p.input_def("he").train == "he"
    assert p.input_def("mixed").test == "dark_pil"


def yaml_load(s):
    import yaml

    return yaml.safe_load(textwrap.dedent(s))


def test_every_registered_enhancer_is_selectable_in_repo_params():
    """`dvc exp run -S enhancer=<name>` must work for every enhancer in the registry."""
    from llfer.registry import ENHANCERS

    p = load_params(REPO / "params.yaml")
    assert set(ENHANCERS.names()) == set(p.classical) | set(p.learned)
    for name in ENHANCERS.names():
        from_dict({**p.model_dump(), "enhancer": name})


# --------------------------------------------------------------------------- one source of settings
def _section_fields(model, prefix=""):
    """(dotted key, field) of every field of ``model`` and of the section models below it."""
    import typing

    from pydantic import BaseModel

    for name, f in model.model_fields.items():
        key = f"{prefix}{name}"
        yield key, f
        inner = typing.get_args(f.annotation) if typing.get_origin(f.annotation) is typing.Union else ()
        for t in (f.annotation, *inner):  # a section or an optional section, not a map's entries
            if isinstance(t, type) and issubclass(t, BaseModel):
                yield from _section_fields(t, key + ".")


def test_packaged_params_are_the_repository_params():
    """The defaults shipped in the package (used outside the repository) are params.yaml, byte for byte."""
    from llfer.config import DEFAULT_PARAMS

    assert DEFAULT_PARAMS.read_bytes() == (REPO / "params.yaml").read_bytes(), (
        f"copy params.yaml to {DEFAULT_PARAMS.relative_to(REPO)}")


def test_code_defaults_are_params_yaml():
    """Every default in the code is params.yaml's value at the field's own key; no other default exists."""
    from pydantic_core import PydanticUndefined

    from llfer.config import EnhTrainCfg, LearnedCfg, Params

    assert Params().model_dump() == load_params(REPO / "params.yaml").model_dump()
    fields = dict(_section_fields(Params))
    assert {"runtime.device", "fer.train.bn_recalibrate", "fer.train.augment.zoom", "degrade.noise.read"} <= set(fields)
    for key, f in fields.items():
        assert f.default is PydanticUndefined and f.default_factory is not None, f"{key}: a default written in code"
        assert (f.json_schema_extra or {}).get("params_key") == key, f"{key} reads another key's default"
    # entries of name-keyed maps state every value
    for model in (LearnedCfg, EnhTrainCfg):
        assert all(f.is_required() for f in model.model_fields.values()), model


def test_runtime_is_no_stage_param():
    """Speed-only settings never invalidate a cached result: no DVC stage declares `runtime`, and the
    result-changing knobs moved out of it are declared where they live."""
    import yaml as _yaml

    dvc = _yaml.safe_load((REPO / "dvc.yaml").read_text())
    declared = [k for st in dvc["stages"].values() for k in (st.get("do", st).get("params") or [])]
    assert declared and not any(str(k).split(".")[0] == "runtime" for k in declared)
    p = load_params(REPO / "params.yaml")
    assert set(p.runtime.model_dump()) == {"device", "threads", "enhance_batch_size", "eval_batch_size", "channels_last"}


def test_moved_keys_say_where_they_went():
    with pytest.raises(ConfigError, match=r"device: unknown key \(it moved to runtime.device\)"):
        from_dict({"device": "cpu"})
    with pytest.raises(ConfigError, match=r"fer.train.eval_batch_size: unknown key \(it moved to runtime.eval_batch_size\)"):
        from_dict({"fer": {"train": {"eval_batch_size": 64}}})


def test_default_dataset_options_follow_the_default_dataset():
    p = from_dict({"dataset": {"name": "fer2013", "source": "x.zip"}}, check=False)
    assert p.dataset.options == {}
    assert from_dict({}, check=False).dataset.options == load_params(REPO / "params.yaml").dataset.options


def test_learned_entry_states_every_value():
    with pytest.raises(ConfigError, match="learned.zerodce.train.lr: Field required"):
        from_dict({"learned": {"zerodce": {"model": {}, "init": None, "train": {
            "steps": 2, "batch_size": 2, "patch": 8, "optimizer": "adam", "weight_decay": 0.0, "schedule": "cosine",
            "warmup_steps": 0, "grad_clip": 0.0, "eval_every": 0, "patience": 0, "max_pairs": None, "max_val": None}}}})
