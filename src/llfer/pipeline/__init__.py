"""The pipeline: one module per DVC stage.

Each stage module holds its run function (validated params and explicit paths
in, atomically written outputs out), its CLI sub-command (``add_command``, which
adds the sub-parser, and ``command``, which runs it) and the pictures it draws
(through :mod:`llfer.plots`).  ``stages/<stage>.py`` (run by DVC) and the
``llfer`` CLI both go through these commands.  :data:`STAGES` lists the modules
in DAG order; the CLI builds its parser from it, so a new stage is one module
here, one entry in :data:`STAGES`, one thin script in ``stages/``, one stage in
``dvc.yaml`` and its params section.
"""

from __future__ import annotations

from types import ModuleType

from . import cv, degrade, enhance, evaluate, prepare, quality, report, train_enhancer, train_fer
from .cv import run_cv
from .degrade import run_degrade
from .enhance import run_enhance
from .evaluate import run_evaluate
from .prepare import run_prepare
from .quality import run_quality
from .report import run_report
from .train_enhancer import run_train_enhancer
from .train_fer import run_train_fer

#: the stage modules in DAG order (each has ``add_command``)
STAGES: tuple[ModuleType, ...] = (prepare, degrade, train_enhancer, enhance, quality, train_fer, evaluate, cv, report)

__all__ = ["STAGES", "run_cv", "run_degrade", "run_enhance", "run_evaluate", "run_prepare", "run_quality",
           "run_report", "run_train_enhancer", "run_train_fer"]
