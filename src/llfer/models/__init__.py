"""FER backbones (registry ``BACKBONES``); importing registers them.

Builder contract: ``BACKBONES.build(name, num_classes=7, in_channels=1,
input_size=48, pretrained=False, **kw)`` returns an ``nn.Module`` that takes
float N x in_channels x S x S in [0, 1] and returns logits N x num_classes.
The model owns its input normalisation (first op), and repeats a single
grayscale channel to 3 where the architecture expects RGB.
"""

import importlib

for _mod in ("mini_xception", "resnet", "inception_resnet", "alexnet", "efcnet"):
    try:
        importlib.import_module(f"{__name__}.{_mod}")
    except ModuleNotFoundError as _e:  # a backbone not written yet
        if _e.name != f"{__name__}.{_mod}":
            raise
