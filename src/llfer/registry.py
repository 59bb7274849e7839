"""Name -> implementation registries (as in BasicSR / timm).

A registry maps a name to a callable (function or class).  Each entry keeps a
one-line description (the first docstring line unless given) and the default
keyword parameters, so ``llfer list`` can describe everything that exists.
Adding a method is adding one file with one ``@REGISTRY.register(...)``: the
packages in :data:`MEMBER_PACKAGES` are walked and every module in them is
imported (as BasicSR imports every ``*_arch.py``), so no import list has to be
kept by hand.  A module that fails to import stops everything with an
:class:`MemberImportError` naming its file.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from .errors import ConfigError


@dataclass
class Entry:
    name: str
    obj: Callable[..., Any]
    description: str
    defaults: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


def _first_doc_line(obj: Any) -> str:
    doc = inspect.getdoc(obj) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def _defaults(obj: Any) -> dict[str, Any]:
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return {}
    out = {}
    for p in sig.parameters.values():
        if p.default is not inspect.Parameter.empty and p.kind in (
            p.POSITIONAL_OR_KEYWORD,
            p.KEYWORD_ONLY,
        ):
            out[p.name] = p.default
    return out


class Registry:
    """A named collection of implementations of one kind."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry] = {}

    def register(self, name: str, description: str | None = None, **extra: Any):
        """Decorator: ``@ENHANCERS.register("he")``."""

        def deco(obj: Callable[..., Any]) -> Callable[..., Any]:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            self._entries[name] = Entry(
                name=name,
                obj=obj,
                description=description or _first_doc_line(obj),
                defaults=_defaults(obj),
                extra=dict(extra),
            )
            return obj

        return deco

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def entry(self, name: str, key: str | None = None) -> Entry:
        """Look up ``name``; an unknown name raises ConfigError listing the allowed ones."""
        if name not in self._entries:
            where = f"{key}: " if key else ""
            raise ConfigError(
                f"{where}unknown {self.kind} {name!r}; allowed: {', '.join(self.names())}"
            )
        return self._entries[name]

    def get(self, name: str, key: str | None = None) -> Callable[..., Any]:
        return self.entry(name, key).obj

    def build(self, name: str, key: str | None = None, **kwargs: Any) -> Any:
        """Instantiate / call entry ``name`` with keyword arguments, checking their names."""
        entry = self.entry(name, key)
        check_kwargs(entry.obj, kwargs, f"{key or self.kind + '.' + name}")
        return entry.obj(**kwargs)


def check_kwargs(obj: Callable[..., Any], kwargs: dict[str, Any], where: str) -> None:
    """Raise ConfigError if ``kwargs`` has a key that ``obj`` does not accept."""
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return
    params = sig.parameters
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return
    allowed = [n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    for k in kwargs:
        if k not in allowed:
            raise ConfigError(f"{where}: unknown parameter {k!r}; allowed: {', '.join(allowed)}")


DATASETS = Registry("dataset")
DEGRADATIONS = Registry("degradation")
ENHANCERS = Registry("enhancer")
PREPROCESSORS = Registry("preprocessor")
BACKBONES = Registry("backbone")  # builders of StagedBackbone modules: see llfer.models

ALL = {
    "datasets": DATASETS,
    "degradations": DEGRADATIONS,
    "enhancers": ENHANCERS,
    "preprocessors": PREPROCESSORS,
    "backbones": BACKBONES,
}

# Where the members live: packages are walked recursively, plain modules imported.
MEMBER_PACKAGES = (
    "llfer.data",  # dataset readers and the synthetic set
    "llfer.degrade",  # degradations
    "llfer.preprocess",  # FER preprocessors
    "llfer.enhance",  # classical/ and nets/ enhancers
    "llfer.models",  # FER backbones
)


class MemberImportError(ImportError):
    """A module that should register members could not be imported; the message names its file."""


def _import(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except MemberImportError:
        raise
    except Exception as e:
        try:
            spec = importlib.util.find_spec(name)
            where = spec.origin if spec and spec.origin else name
        except Exception:
            where = name
        raise MemberImportError(f"{where}: cannot import {name}: {type(e).__name__}: {e}") from e


def import_members(package: str) -> list[str]:
    """Import ``package`` and, when it is a package, every module below it; return their names."""
    mod = _import(package)
    names = [package]
    for info in pkgutil.iter_modules(getattr(mod, "__path__", []), package + "."):
        names += import_members(info.name) if info.ispkg else [_import(info.name).__name__]
    return names


def import_all() -> list[str]:
    """Import every module that registers members (see :data:`MEMBER_PACKAGES`)."""
    return [n for pkg in MEMBER_PACKAGES for n in import_members(pkg)]
