"""fer.finetune: start a FER network from a classifier this pipeline trained; frozen stages; step budget."""

import pytest
import torch

from llfer.checkpoint import save_classifier
from llfer.config import FerTrainCfg, FinetuneCfg, from_dict
from llfer.data.download import sha256_file
from llfer.errors import ConfigError
from llfer.registry import BACKBONES
from llfer.train import finetune
from llfer.train.fer import engine_cfg

OPTS = {"num_classes": 3, "in_channels": 1}


def _saved(tmp_path, classes=("a", "b", "c"), backbone="mini_xception"):
    torch.manual_seed(1)
    model = BACKBONES.build(backbone, **{**OPTS, "num_classes": len(classes)})
    path = tmp_path / "big" / "model.safetensors"
    path.parent.mkdir()
    save_classifier(path, model, {"backbone": backbone, "options": {**OPTS, "num_classes": len(classes)},
                                  "classes": list(classes)})
    return model, path


def test_new_head_when_classes_differ_and_every_other_tensor_loaded(tmp_path):
    big, path = _saved(tmp_path)
    torch.manual_seed(2)
    small = BACKBONES.build("mini_xception", num_classes=2, in_channels=1)
    before = {k: v.clone() for k, v in small.state_dict().items()}
    info = finetune.init_from_classifier(small, "mini_xception", {**OPTS, "num_classes": 2}, ["x", "y"],
                                         path.parent, sha256_file(path))
    heads = finetune.head_keys(small, "mini_xception", {**OPTS, "num_classes": 2})
    assert heads and info["new_head"] and info["tensors_loaded"] == len(before) - len(heads)
    for k, v in small.state_dict().items():
        if k in heads:
            assert torch.equal(v, before[k])
        else:
            assert torch.equal(v, big.state_dict()[k]), k


def test_same_classes_keep_the_head(tmp_path):
    big, path = _saved(tmp_path)
    torch.manual_seed(3)
    model = BACKBONES.build("mini_xception", **OPTS)
    info = finetune.init_from_classifier(model, "mini_xception", OPTS, ["a", "b", "c"], path, sha256_file(path))
    assert not info["new_head"]
    assert all(torch.equal(v, big.state_dict()[k]) for k, v in model.state_dict().items())
    # same number of classes in another order: the head is new
    info = finetune.init_from_classifier(model, "mini_xception", OPTS, ["c", "b", "a"], path, sha256_file(path))
    assert info["new_head"]


def test_hash_backbone_and_missing_file_named(tmp_path):
    _, path = _saved(tmp_path)
    model = BACKBONES.build("mini_xception", **OPTS)
    with pytest.raises(ConfigError, match=f"fer.finetune.sha256: state the hash of .*{sha256_file(path)}"):
        finetune.init_from_classifier(model, "mini_xception", OPTS, ["a", "b", "c"], path, None)
    with pytest.raises(ConfigError, match="has sha256 .*, not abc"):
        finetune.init_from_classifier(model, "mini_xception", OPTS, ["a", "b", "c"], path, "abc")
    other = BACKBONES.build("efcnet", **OPTS)
    with pytest.raises(ConfigError, match="is a mini_xception classifier, not efcnet"):
        finetune.init_from_classifier(other, "efcnet", OPTS, ["a", "b", "c"], path, sha256_file(path))
    with pytest.raises(ConfigError, match="fer.finetune.init: .*nope does not exist"):
        finetune.init_from_classifier(model, "mini_xception", OPTS, ["a"], tmp_path / "nope", "x")


def test_freeze_stages_fixes_weights_and_keeps_their_batchnorm_in_eval():
    model = BACKBONES.build("mini_xception", **OPTS)
    first = model.stage_names[0]
    names = finetune.freeze(model, [first])
    assert names and finetune.trainable_fraction(model) < 1
    block = dict(zip(model.stage_names, model._stage_blocks()))[first]
    assert not any(q.requires_grad for q in block.parameters())
    model.train()
    bns = [m for m in block.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert bns and not any(m.training for m in bns)
    assert any(m.training for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm))
    alex = BACKBONES.build("alexnet", **OPTS)
    finetune.freeze(alex, ["conv1", "conv2", "conv3", "conv4"])  # [sobel-alexnet]
    assert 0 < finetune.trainable_fraction(alex) < 1
    with pytest.raises(ConfigError, match="fer.finetune.freeze: 'conv9' is neither a stage"):
        finetune.freeze(alex, ["conv9"])


def test_params_default_is_scratch_and_freeze_needs_init():
    p = from_dict({})
    assert p.fer.finetune == FinetuneCfg(init=None, sha256=None, freeze=[])
    model = BACKBONES.build("mini_xception", **OPTS)
    assert finetune.apply(p, model, "mini_xception", OPTS, ["a", "b", "c"]) == {}
    q = from_dict({"fer": {"finetune": {"init": None, "sha256": None, "freeze": ["module1"]}}}, check=False)
    with pytest.raises(ConfigError, match="freezing layers needs fer.finetune.init"):
        finetune.apply(q, model, "mini_xception", OPTS, ["a", "b", "c"])


def test_min_steps_sets_a_budget_in_steps():
    """A 213-image set at batch 64 has 3 steps per epoch: min_steps raises the budget, epochs stay the floor."""
    assert engine_cfg(FerTrainCfg(epochs=10, min_steps=500), 3, False).steps == 500
    assert engine_cfg(FerTrainCfg(epochs=10, min_steps=5), 3, False).steps == 30
