"""Print, one per line, the plot images and plot files whose DVC hash differs from a base revision.

    python ci/changed_plots.py BASE_REV      # BASE_REV: a git revision holding the baseline dvc.lock

An output counts as a plot when dvc.yaml declares it under ``plots`` or it lies under ``plots/``.
A changed directory output lists the image files inside it.  ``ci/pipeline.sh`` embeds the images
in the pull-request comment (CML uploads local images a Markdown file links to).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

IMAGES = (".png", ".jpg", ".jpeg", ".svg")


def lock_hashes(text: str | None) -> dict[str, str]:
    """Output path -> md5 over every stage of a dvc.lock text (empty when there is none)."""
    lock = yaml.safe_load(text) if text else None
    out: dict[str, str] = {}
    for stage in (lock or {}).get("stages", {}).values():
        for o in stage.get("outs", []):
            out[o["path"]] = o.get("md5", "")
    return out


def declared_plots(root: Path) -> set[str]:
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return {o.def_path for s in repo.index.stages for o in s.outs if o.plot}


def changed(root: Path, base: str) -> list[str]:
    shown = subprocess.run(["git", "show", f"{base}:dvc.lock"], cwd=root, capture_output=True, text=True)
    before = lock_hashes(shown.stdout if shown.returncode == 0 else None)
    now = lock_hashes((root / "dvc.lock").read_text() if (root / "dvc.lock").exists() else None)
    plots = declared_plots(root)
    files: list[str] = []
    for path, md5 in sorted(now.items()):
        if before.get(path) == md5 or not (path in plots or path.startswith("plots/")):
            continue
        p = root / path
        if p.is_dir():
            files += sorted(f.relative_to(root).as_posix() for f in p.rglob("*") if f.suffix.lower() in IMAGES)
        else:
            files.append(path)
    return files


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python ci/changed_plots.py BASE_REV")
    print("\n".join(changed(Path.cwd(), sys.argv[1])))
