"""Every DVC stage depends on exactly the code it runs (ci/code_deps.py computes it from the imports)."""

from __future__ import annotations

import re
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from conftest import REPO
from dvc_scratch import ran_stages, run, status

sys.path.insert(0, str(REPO / "ci"))
import code_deps  # noqa: E402


def test_code_deps_equal_the_import_closure():
    closures, problems = code_deps.check(REPO)
    assert closures, "dvc.yaml has no stages"
    assert not problems, "\n".join(problems)


def test_closure_follows_imports_in_functions_relative_imports_and_registries(tmp_path: Path):
    # A miniature repository: the script imports a helper, the helper imports a package lazily inside a
    # function, and the package imports its members through the registry's import_members(__name__).
    (tmp_path / "stages").mkdir()
    pkg = tmp_path / "src" / "toy"
    (pkg / "plugins").mkdir(parents=True)
    (tmp_path / "stages" / "_run.py").write_text("from toy.cli import main\n")
    (tmp_path / "stages" / "go.py").write_text("from _run import main\n")
    (pkg / "__init__.py").write_text("")
    (pkg / "cli.py").write_text("def main():\n    from .helpers import util\n    from . import plugins\n")
    (pkg / "helpers.py").write_text("import os\nDATA = 'table.npz'\n")
    (pkg / "table.npz").write_bytes(b"x")
    (pkg / "unused.py").write_text("import toy.cli\n")
    (pkg / "plugins" / "__init__.py").write_text("from ..registry import import_members\nimport_members(__name__)\n")
    (pkg / "plugins" / "a.py").write_text("")
    (pkg / "registry.py").write_text("def import_members(name):\n    pass\n")
    got = code_deps.closure(tmp_path, "stages/go.py")
    assert got == {"stages/go.py", "stages/_run.py", "src/toy/__init__.py", "src/toy/cli.py", "src/toy/helpers.py",
                   "src/toy/table.npz", "src/toy/plugins/__init__.py", "src/toy/plugins/a.py", "src/toy/registry.py"}
    assert code_deps.covered(["src/toy/plugins", "stages/go.py"], got) == {
        "src/toy/plugins/__init__.py", "src/toy/plugins/a.py", "stages/go.py"}


def test_check_names_the_stage_and_the_missing_module(monkeypatch: pytest.MonkeyPatch):
    closures, _ = code_deps.check(REPO)
    stage, need = next(iter(closures.items()))
    victim = sorted(f for f in need if f.startswith("src/"))[-1]
    script = code_deps.stage_code(REPO)[stage][0]
    monkeypatch.setattr(code_deps, "stage_code", lambda root: {stage: (script, sorted(need - {victim}))})
    _, problems = code_deps.check(REPO)
    assert problems == [f"stage {stage}: imports {victim} (module {code_deps.module_name(victim)}) "
                        "but its deps in dvc.yaml do not list it"]
    # an over-broad directory dep is reported too
    monkeypatch.setattr(code_deps, "stage_code", lambda root: {stage: (script, sorted(need) + ["src/llfer"])})
    _, problems = code_deps.check(REPO)
    assert len(problems) == 1 and problems[0].startswith(f"stage {stage}: dep src/llfer covers "), problems


def _runtime_imports(output: str) -> dict[str, set[str]]:
    """Stage -> the repository modules its process imported (from PYTHONPROFILEIMPORTTIME lines)."""
    got: dict[str, set[str]] = defaultdict(set)
    stage = None
    for line in output.splitlines():
        m = re.match(r"Running stage '([^']+)'", line)
        if m:
            stage = m.group(1)
        elif stage and line.startswith("import time:"):
            name = line.rsplit("|", 1)[-1].strip()
            if name == "_run" or name.split(".")[0] == "llfer":
                got[stage].add(name)
    return got


@pytest.mark.slow
def test_runtime_imports_lie_in_the_static_closure(dvc_repo):
    """What each stage really imported while `dvc repro` ran it is inside the closure its deps list."""
    closures, _ = code_deps.check(dvc_repo.root)
    index = code_deps.ModuleIndex(dvc_repo.root)
    seen = _runtime_imports(dvc_repo.output)
    assert set(seen) == set(closures), (set(seen), set(closures))
    for stage, modules in seen.items():
        files = {index.files[m].relative_to(dvc_repo.root).as_posix() for m in modules}
        assert files <= closures[stage], f"{stage}: imported {sorted(files - closures[stage])} outside its closure"


@pytest.mark.slow
def test_touching_a_module_reruns_exactly_the_stages_whose_closure_holds_it(dvc_repo):
    root, env = dvc_repo.root, dvc_repo.env
    assert status(root, env) == {}
    closures, problems = code_deps.check(root)
    assert not problems, problems
    holders: dict[frozenset[str], list[str]] = defaultdict(list)
    for f in sorted(set().union(*closures.values())):
        if f.endswith(".py"):
            holders[frozenset(s for s, c in closures.items() if f in c)].append(f)
    # one module per distinct set of holding stages: `dvc status` lists exactly that set as changed
    for stages, files in holders.items():
        path = root / files[0]
        original = path.read_bytes()
        path.write_bytes(original + b"\n# touched\n")
        try:
            changed = set(status(root, env))
        finally:
            path.write_bytes(original)
        assert changed == set(stages), f"touching {files[0]}: {sorted(changed)} changed, closure holders {sorted(stages)}"
    # and `dvc repro` runs just those: the smallest holder set that is not only the last stage
    stages, files = min(holders.items(), key=lambda kv: (len(kv[0]), kv[0] == {"report"}, sorted(kv[0])))
    path = root / files[0]
    original = path.read_bytes()
    path.write_bytes(original + b"\n# touched\n")
    try:
        out = run(["dvc", "repro"], root, env).stdout
    finally:
        path.write_bytes(original)
    assert ran_stages(out) == set(stages), out
    run(["dvc", "commit", "-f"], root, env)  # the lock records the original file again
    assert status(root, env) == {}


def test_a_stage_runs_its_own_trees_code(tmp_path: Path):
    """stages/_run.py puts its repository's src first, so a clone runs the code its dvc.lock hashes even when
    the environment's llfer is an editable install of another checkout."""
    import shutil
    import subprocess

    shutil.copytree(REPO / "stages", tmp_path / "stages")
    shutil.copytree(REPO / "src" / "llfer", tmp_path / "src" / "llfer", ignore=shutil.ignore_patterns("__pycache__"))
    out = subprocess.run([sys.executable, "-c", "import _run, llfer; print(llfer.__file__)"], cwd=tmp_path / "stages",
                         capture_output=True, text=True, check=True, env={"PATH": "/usr/bin:/bin"}).stdout
    assert Path(out.strip()) == tmp_path / "src" / "llfer" / "__init__.py"
