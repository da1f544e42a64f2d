"""Lazy package exports (PEP 562): a package names what it offers, and the module that defines each
name is imported on first use.

Why: ``snnlab --help`` imports every command module (``snnlab.training.cli``, ``snnlab.hardware.cli``,
...), and importing a module first runs its package's ``__init__``. With eager re-exports that pulled
in torch and Numba (about 2 s); with these, a package ``__init__`` costs nothing until one of its
names is read (``from snnlab.training import train`` still works unchanged).

A name may be spelled like the submodule that defines it (``snnlab.conversion.energy`` defines
``energy``). Importing that submodule makes Python set it as the package's attribute, which would
hide the function; the package's module class keeps the exported value instead, as the eager
``from ... import`` used to.
"""

from __future__ import annotations

import sys
from importlib import import_module
from types import ModuleType
from typing import Callable

__all__ = ["lazy_exports"]


def lazy_exports(package: str, exports: dict[str, str]) -> Callable[[str], object]:
    """A module ``__getattr__`` for ``package`` that resolves each name of ``exports`` (name ->
    defining module) by importing that module on first access and caching the value."""

    if package in sys.modules:
        module = sys.modules[package]
        module._lazy_exports = dict(exports)
        module.__class__ = _LazyPackage

    def __getattr__(name: str) -> object:
        where = exports.get(name)
        if where is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(where), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__


class _LazyPackage(ModuleType):
    """A package whose exported names win over its same-named submodules (see the module docstring)."""

    def __setattr__(self, name: str, value: object) -> None:
        exports = self.__dict__.get("_lazy_exports", {})
        if isinstance(value, ModuleType) and value.__name__ == exports.get(name) and hasattr(value, name):
            value = getattr(value, name)
        super().__setattr__(name, value)
