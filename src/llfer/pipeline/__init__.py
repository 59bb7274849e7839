"""The pipeline: one module per DVC stage.

Each stage module holds its run function (validated params and explicit paths
in, atomically written outputs out), its CLI sub-command (``COMMAND``;
``add_command`` adds the sub-parser, ``command`` runs it; ``OUTPUTS`` /
``INPUTS`` name the path options checked before any work) and the pictures it
draws (through :mod:`llfer.plots`).  ``stages/<stage>.py`` (run by DVC) calls
its own module only, so a stage's code is its module and what that imports;
the ``llfer`` CLI offers every module in :data:`STAGES`.  A new stage is one
module here, its name in :data:`STAGES`, one thin script in ``stages/``, one
stage in ``dvc.yaml`` and its params section.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

#: the stage modules in DAG order
STAGES = ("prepare", "degrade", "train_enhancer", "enhance", "quality", "train_fer", "evaluate", "cv_fold", "cv",
          "robustness", "explain", "joint", "report")


def stage_modules() -> list[ModuleType]:
    """Every stage module, imported (the CLI's sub-commands)."""
    return [importlib.import_module(f"{__name__}.{name}") for name in STAGES]


def __getattr__(name: str) -> Any:
    """``from llfer.pipeline import run_<stage>``: the run function, its module imported on first use."""
    stage = name.removeprefix("run_")
    if name.startswith("run_") and stage in STAGES:
        return getattr(importlib.import_module(f"{__name__}.{stage}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["STAGES", "stage_modules", *(f"run_{s}" for s in STAGES)]
