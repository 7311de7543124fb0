"""Engines by name: a lazy built-in table plus the ``roundhouse.engines`` entry points.

Importing an engine module must stay cheap (no model library at import time), so that
validating a registry never needs the heavy dependencies of the engines it names.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import cast

from ._contract import Engine, EngineSpec

__all__ = [
    "ENTRY_POINT_GROUP",
    "UnknownEngine",
    "available_engines",
    "build_engine",
    "engine_class",
]

ENTRY_POINT_GROUP = "roundhouse.engines"

_BUILTIN: dict[str, str] = {
    "llamacpp": "engines.llamacpp:LlamaCppEngine",
    "ollama": "engines.ollama:OllamaEngine",
    "openai": "engines.upstream:UpstreamEngine",
    "vllm": "engines.vllm:VllmEngine",
}


class UnknownEngine(LookupError):
    def __init__(self, name: str) -> None:
        super().__init__(f"unknown engine {name!r}; available: {', '.join(available_engines())}")
        self.name = name


def available_engines() -> list[str]:
    names = set(_BUILTIN)
    names.update(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))
    return sorted(names)


def engine_class(name: str) -> type[Engine]:
    target = _BUILTIN.get(name)
    if target is None:
        found = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
        if not found:
            raise UnknownEngine(name)
        loaded: type[Engine] = found[0].load()
        return loaded
    module_name, _, attr = target.partition(":")
    cls: type[Engine] = getattr(importlib.import_module(module_name), attr)
    return cls


def build_engine(name: str, spec: EngineSpec) -> Engine:
    # Adapters are built from their spec; the Protocol cannot say so about __init__.
    factory = cast("Callable[[EngineSpec], Engine]", engine_class(name))
    return factory(spec)
