"""Package exports that load their module on first use.

The CLI and the settings import a package's light modules (vocabularies, settings) without pulling
in torch, Lightning or OpenCV; a package's public names therefore resolve lazily::

    __getattr__, __all__ = lazy_exports(__name__, {"build_model": "fpar.models.registry"})

A value is ``"module"`` (the attribute of the same name) or ``("module", "attribute")``.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any, Callable


def lazy_exports(package: str, exports: dict[str, str | tuple[str, str]]) -> tuple[Callable[[str], Any], list[str]]:
    """A module ``__getattr__`` serving ``exports``, and the sorted ``__all__``."""

    def __getattr__(name: str) -> Any:
        target = exports.get(name)
        if target is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, attribute = target if isinstance(target, tuple) else (target, name)
        value = getattr(importlib.import_module(module), attribute)
        setattr(sys.modules[package], name, value)  # later look-ups skip this function
        return value

    return __getattr__, sorted(exports)
