"""The registry's shape: frozen msgspec Structs; unknown keys are rejected."""

from __future__ import annotations

from typing import Any

import msgspec

from ..sampling import (
    Penalty,
    PositiveInt,
    Probability,
    RepetitionPenalty,
    Temperature,
    TopK,
)

__all__ = ["Defaults", "Deployment", "Limits", "ModelSpec", "Registry"]


class _Strict(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class Defaults(_Strict, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Sampling values applied when a request leaves them out."""

    temperature: Temperature | None = None
    top_p: Probability | None = None
    top_k: TopK | None = None
    min_p: Probability | None = None
    max_tokens: PositiveInt | None = None
    stop: tuple[str, ...] | None = None
    seed: int | None = None
    frequency_penalty: Penalty | None = None
    presence_penalty: Penalty | None = None
    repetition_penalty: RepetitionPenalty | None = None


class Limits(_Strict, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Bounds a request may not exceed; past them it gets 400."""

    max_tokens: PositiveInt | None = None


class Deployment(_Strict, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One place a model runs. Its engine's settings sit in a block named after it.

    ``options`` is not written in YAML: the loader fills it from that block.
    """

    engine: str
    name: str | None = None
    # A local model file (relative paths resolve against the registry file).
    path: str | None = None
    # A running server to attach to.
    url: str | None = None
    # The model's name upstream (a hub id, an Ollama tag).
    model: str | None = None
    options: Any = None


class ModelSpec(_Strict, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: str
    deployments: tuple[Deployment, ...]
    aliases: tuple[str, ...] = ()
    description: str | None = None
    # Other model names tried in order when every deployment of this one fails.
    fallbacks: tuple[str, ...] = ()
    defaults: Defaults = Defaults()
    limits: Limits = Limits()

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise ValueError("name must not be empty")
        if not self.deployments:
            raise ValueError("a model needs at least one deployment")


class Registry(_Strict, frozen=True, kw_only=True, forbid_unknown_fields=True):
    models: tuple[ModelSpec, ...]

    def names(self) -> list[str]:
        return [m.name for m in self.models]
