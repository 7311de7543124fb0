"""GET /api/core/version and GET /v1/chat/model_info: what SakuraLLM's server.py said
about its model, derived here from the primary model's name and file."""

from __future__ import annotations

import re
from pathlib import PurePath
from typing import Any

from litestar import get
from litestar.di import NamedDependency

from ...dispatch import Dispatcher
from ...registry import ModelSpec

__all__ = ["core_version", "model_info"]

# "v1.0", "v0.10", "-0.9-": the version tag in Sakura model names.
# Not "qwen2.5" (glued to a word) and not "1.5b" (a parameter count).
_VERSION = re.compile(r"(?i)(?<![a-z0-9.])v?(\d+\.\d+(?:\.\d+)?)(?![\d.]|b\b)")
_QUANT = re.compile(r"(?i)(?<![a-z0-9])(I?Q\d[A-Z0-9_]*|AWQ|GPTQ|BF16|F16|F32)(?![a-z0-9])")


def _source(model: ModelSpec) -> str:
    first = model.deployments[0]
    return first.path or first.model or first.url or model.name


def _texts(model: ModelSpec) -> list[str]:
    source = _source(model)
    return [model.name, *model.aliases, PurePath(source).name, source, model.description or ""]


def _first(pattern: re.Pattern[str], texts: list[str]) -> str:
    for text in texts:
        # A version after the family ("qwen2.5-v1.0") wins: take the last match.
        found = pattern.findall(text)
        if found:
            return str(found[-1])
    return ""


def _facts(model: ModelSpec) -> dict[str, str]:
    texts = _texts(model)
    return {
        "name": model.name,
        "version": _first(_VERSION, texts),
        "quant": _first(_QUANT, texts).upper(),
        "source": _source(model),
    }


@get("/api/core/version", sync_to_thread=False)
def core_version(dispatcher: NamedDependency[Dispatcher]) -> dict[str, Any]:
    facts = _facts(dispatcher.resolve_for_request(None, single_model=True))
    return {"name": facts["name"], "version": facts["version"], "quant": facts["quant"]}


@get("/v1/chat/model_info", sync_to_thread=False)
def model_info(dispatcher: NamedDependency[Dispatcher]) -> dict[str, Any]:
    facts = _facts(dispatcher.resolve_for_request(None, single_model=True))
    return {
        "model_name": facts["name"],
        "model_version": facts["version"],
        "model_quant": facts["quant"],
        "model_name_or_path": facts["source"],
    }
