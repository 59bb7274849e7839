"""Learned enhancer networks; importing registers them."""

import importlib

for _mod in ("zerodce", "mirnet", "retinexnet", "llenet"):
    try:
        importlib.import_module(f"{__name__}.{_mod}")
    except ModuleNotFoundError as _e:  # a net not written yet
        if _e.name != f"{__name__}.{_mod}":
            raise
