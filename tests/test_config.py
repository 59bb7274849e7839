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
    ({"enhancer": "magic"}, "enhancer: unknown enhancer 'magic'; allowed: he"),
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
