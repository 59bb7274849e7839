"""The code each DVC stage runs, computed from the imports, compared with its ``deps`` in dvc.yaml.

A stage's code is the import closure of its entry script (``stages/<name>.py``, found in the stage's
``cmd``): every module it imports, at the top or inside a function, followed transitively through
``import llfer.x`` / ``from .x import y`` / ``from _run import run`` (the scripts' own folder is on
``sys.path``), plus each package's ``__init__.py`` on the way, plus the modules imported by name at
run time through the registry (``import_members(pkg)`` imports a whole package, ``import_all()`` the
packages in ``MEMBER_PACKAGES``), plus package data files a module names (``"niqe_pris_params.npz"``).
Third-party modules are not followed.  The packaged copy of params.yaml is no code dep (see ``NOT_CODE``).

A dvc.yaml code dep (a path under ``src/`` or ``stages/``) covers itself, a directory covers its
files.  ``check`` reports, per stage, every closure file no dep covers (the stage would keep stale
results when that file changes) and every code dep that holds a file outside the closure (the stage
would re-run for a change that cannot affect it).

    python ci/code_deps.py              # table stage -> code files; exit status 1 on any mismatch
    python ci/code_deps.py --deps       # the table of what dvc.yaml declares instead
"""

from __future__ import annotations

import argparse
import ast
import sys
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CODE_DIRS = ("src", "stages")
#: calls that import modules by name at run time (a constant name or ``__name__`` is followed)
DYNAMIC_IMPORTERS = ("import_members", "import_module")
#: files a module reads that are not code deps, and why
NOT_CODE = {
    "src/llfer/params.yaml": "the packaged copy of params.yaml (pydantic defaults; a test proves it equals "
                             "params.yaml): DVC tracks the values a stage reads through its `params:`, so a "
                             "changed default re-runs the stages that read that key, not every stage",
}


class ModuleIndex:
    """Module name <-> file for the repository's own code (``src/`` packages and the ``stages/`` scripts)."""

    def __init__(self, root: Path):
        self.root = root
        self.files: dict[str, Path] = {}
        for base in (root / "src", root / "stages"):
            for f in sorted(base.rglob("*.py")):
                if "__pycache__" in f.parts:
                    continue
                parts = list(f.relative_to(base).with_suffix("").parts)
                if parts[-1] == "__init__":
                    parts.pop()
                if parts:
                    self.files[".".join(parts)] = f

    def is_package(self, name: str) -> bool:
        return name in self.files and self.files[name].name == "__init__.py"

    def submodules(self, package: str) -> list[str]:
        """Every module below ``package`` (what ``import_members`` walks)."""
        return [n for n in self.files if n.startswith(package + ".")]


@lru_cache(maxsize=None)
def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def _package_of(index: ModuleIndex, name: str) -> str:
    return name if index.is_package(name) else name.rpartition(".")[0]


def _with_parents(index: ModuleIndex, name: str) -> list[str]:
    """``a.b.c`` -> the known modules among ``a``, ``a.b``, ``a.b.c`` (importing one runs its parents)."""
    parts = name.split(".")
    return [m for m in (".".join(parts[:i]) for i in range(1, len(parts) + 1)) if m in index.files]


def _member_packages(index: ModuleIndex, module: str) -> list[str]:
    """String constants of a module-level ``MEMBER_PACKAGES`` tuple/list (what ``import_all`` imports)."""
    for node in _parse(index.files[module]).body:
        target = node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else getattr(node, "target", None)
        if isinstance(target, ast.Name) and target.id == "MEMBER_PACKAGES" and isinstance(node.value, (ast.Tuple, ast.List)):
            return [e.value for e in node.value.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
    return []


def imports_of(index: ModuleIndex, name: str) -> set[str]:
    """Modules of the repository that module ``name`` imports directly (anywhere in its body)."""
    path = index.files[name]
    pkg = _package_of(index, name)
    out: set[str] = set()
    for node in ast.walk(_parse(path)):
        if isinstance(node, ast.Import):
            for a in node.names:
                out.update(_with_parents(index, a.name))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")[: len(pkg.split(".")) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.update(_with_parents(index, mod))
            for a in node.names:  # `from pkg import submodule`
                if f"{mod}.{a.name}" in index.files:
                    out.add(f"{mod}.{a.name}")
        elif isinstance(node, ast.Call):
            fn = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
            arg = node.args[0] if node.args else None
            if fn in DYNAMIC_IMPORTERS and arg is not None:
                target = name if isinstance(arg, ast.Name) and arg.id == "__name__" else (
                    arg.value if isinstance(arg, ast.Constant) and isinstance(arg.value, str) else None)
                if target in index.files:
                    out.update(_with_parents(index, target))
                    if fn == "import_members":
                        out.update(index.submodules(target))
            elif fn == "import_all":
                # defined next to MEMBER_PACKAGES (llfer.registry): imports each member package whole
                for m in sorted(index.files):
                    for p in _member_packages(index, m):
                        out.update(_with_parents(index, p))
                        out.update(index.submodules(p))
    out.discard(name)
    return out


def _data_files(index: ModuleIndex, name: str) -> set[Path]:
    """Non-Python files under a module's folder whose file name the module spells out."""
    folder = index.files[name].parent
    strings = {n.value for n in ast.walk(_parse(index.files[name])) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    return {f for f in folder.rglob("*") if f.is_file() and f.suffix not in (".py", ".pyc") and f.name in strings}


def closure(root: Path, script: str) -> set[str]:
    """Repository-relative paths of every file the entry script ``script`` runs or reads as code."""
    index = ModuleIndex(root)
    start = Path(script).with_suffix("").name
    if start not in index.files:
        raise SystemExit(f"{script}: not a script in stages/")
    seen: set[str] = set()
    todo = [start]
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        todo.extend(imports_of(index, m) - seen)
    files = {index.files[m] for m in seen}
    for m in seen:
        files |= _data_files(index, m)
    return {f.relative_to(root).as_posix() for f in files} - set(NOT_CODE)


def code_files(root: Path) -> set[str]:
    """Every file under the code folders (what a code dep can cover)."""
    return {f.relative_to(root).as_posix() for d in CODE_DIRS for f in (root / d).rglob("*")
            if f.is_file() and "__pycache__" not in f.parts and not f.name.endswith(".pyc")}


def stage_code(root: Path) -> dict[str, tuple[str, list[str]]]:
    """Stage address -> (entry script, code deps as written in dvc.yaml), resolved by DVC itself."""
    from dvc.repo import Repo

    out: dict[str, tuple[str, list[str]]] = {}
    with Repo(str(root)) as repo:
        for stage in repo.index.stages:
            script = next((w for w in str(stage.cmd).split() if w.startswith("stages/") and w.endswith(".py")), None)
            if script is None:
                raise SystemExit(f"dvc.yaml: stage {stage.name}: cmd {stage.cmd!r} runs no stages/*.py script")
            deps = [d.def_path for d in stage.deps if d.def_path.split("/")[0] in CODE_DIRS]
            out[stage.name] = (script, deps)
    return out


def covered(deps: list[str], files: set[str]) -> set[str]:
    """The files among ``files`` that the deps cover (a file dep itself, a directory dep all below it)."""
    return {f for f in files if any(f == d.rstrip("/") or f.startswith(d.rstrip("/") + "/") for d in deps)}


def check(root: Path = ROOT) -> tuple[dict[str, set[str]], list[str]]:
    """(stage -> closure, problems); a problem names the stage and the file."""
    every = code_files(root)
    closures: dict[str, set[str]] = {}
    problems: list[str] = []
    for stage, (script, deps) in stage_code(root).items():
        need = closure(root, script)
        closures[stage] = need
        for f in sorted(need - covered(deps, need)):
            problems.append(f"stage {stage}: imports {f} (module {module_name(f)}) but its deps in dvc.yaml do not list it")
        for d in deps:
            extra = sorted(covered([d], every) - need)
            if extra:
                problems.append(f"stage {stage}: dep {d} covers {', '.join(extra)} outside its import closure "
                                "(list the files it imports instead)")
            if not covered([d], every):
                problems.append(f"stage {stage}: dep {d} does not exist")
    return closures, problems


def module_name(path: str) -> str:
    p = Path(path)
    if p.suffix != ".py":
        return path
    parts = list(p.with_suffix("").parts[1:])
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def tight_deps(files: set[str], every: set[str]) -> list[str]:
    """The shortest dep list that covers exactly ``files``: a directory where all its files are needed."""
    out: list[str] = []
    dirs = sorted({str(Path(f).parent) for f in every}, key=lambda d: (d.count("/"), d))
    done: set[str] = set()
    for d in dirs:
        below = {f for f in every if f.startswith(d + "/")}
        if below and below <= files and not below <= done and d not in CODE_DIRS:
            out.append(d)
            done |= below
    out += sorted(files - done)
    return sorted(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=ROOT)
    ap.add_argument("--deps", action="store_true", help="show the code deps dvc.yaml declares, not the closure")
    ap.add_argument("--suggest", action="store_true", help="print the tight deps list each stage needs")
    args = ap.parse_args(argv)
    closures, problems = check(args.root)
    declared = stage_code(args.root)
    every = code_files(args.root)
    for stage, need in closures.items():
        shown = declared[stage][1] if args.deps else tight_deps(need, every) if args.suggest else sorted(need)
        print(f"{stage}: {', '.join(shown)}")
    for p in problems:
        print(p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
