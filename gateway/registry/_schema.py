"""The registry's shape: frozen msgspec Structs; unknown keys are rejected."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from ..host import parse_memory_budget
from ..sampling import (
    Penalty,
    PositiveInt,
    Probability,
    RepetitionPenalty,
    Temperature,
    TopK,
)

__all__ = [
    "Defaults",
    "DegenerationGuard",
    "Deployment",
    "Limits",
    "ModelSpec",
    "Registry",
    "Routing",
    "Timeouts",
]


def _check_size(value: int | str) -> None:
    text = str(value)
    if "%" in text:
        raise ValueError("memory must be a size such as 20GiB, not a share")
    parse_memory_budget(value, ram_total=1, vram_total=1)


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
    # For requests with tools that name no tool_choice (Ollama's API has none):
    # "required" makes a model that would not call on its own call every time.
    tool_choice: Literal["auto", "none", "required"] | None = None


class Limits(_Strict, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Bounds a request may not exceed; past them it gets 400."""

    max_tokens: PositiveInt | None = None


class DegenerationGuard(_Strict, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Stop a generation caught in a repetition loop (see docs/translation.md).

    Counted in characters, not words: Japanese and Chinese have no spaces.
    """

    # The longest repeating unit looked for, in characters ("の" is 1, "はっ" is 2).
    period: Annotated[int, msgspec.Meta(ge=1, le=200)] = 24
    # Back-to-back copies of the unit that make a loop...
    repeats: Annotated[int, msgspec.Meta(ge=2)] = 8
    # ...and the least length of the repeated run, so that a short burst ("啊啊啊",
    # "……") is left alone however many copies it has.
    min_chars: PositiveInt = 64
    # The same non-blank line this many times in a row is a loop too (long lines).
    line_repeats: Annotated[int, msgspec.Meta(ge=2)] = 4
    # frequency_penalty of each new try of a non-streamed request that looped.
    retries: tuple[Penalty, ...] = (0.1, 0.2)


class Timeouts(_Strict, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Deadlines the gateway enforces on any engine; past them the client gets 504.

    Connecting is the engine's business (``connect_timeout`` of remote engines).
    """

    # Seconds from sending the request until its first token.
    first_token: Annotated[float, msgspec.Meta(gt=0)] | None = None
    # Seconds for the whole answer.
    total: Annotated[float, msgspec.Meta(gt=0)] | None = None


class Routing(_Strict, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How requests move between deployments and fallbacks when one fails."""

    # Tries per request, over all deployments and fallbacks together.
    attempts: PositiveInt = 3
    # Consecutive failures after which a deployment cools down.
    failures_before_cooldown: PositiveInt = 3
    # Seconds a deployment rests before it gets a single trial request.
    cooldown_seconds: Annotated[float, msgspec.Meta(ge=0)] = 30.0
    # The longest a Retry-After from a full deployment is honoured before giving up.
    max_retry_wait: Annotated[float, msgspec.Meta(ge=0)] = 10.0


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
    timeouts: Timeouts = Timeouts()
    # Bytes the deployment takes once loaded, for the memory budget: a size such as
    # "20GiB", for engines that cannot estimate their own (a vLLM launch, a remote).
    memory: int | str | None = None
    options: Any = None

    def __post_init__(self) -> None:
        if self.memory is not None:
            _check_size(self.memory)


class Reasoning(_Strict, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The tags around a model's thinking; output that opens with ``start`` is split."""

    start: Annotated[str, msgspec.Meta(min_length=1)] = "<think>"
    end: Annotated[str, msgspec.Meta(min_length=1)] = "</think>"


class ModelSpec(_Strict, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: str
    deployments: tuple[Deployment, ...]
    aliases: tuple[str, ...] = ()
    description: str | None = None
    # Other model names tried in order when every deployment of this one fails.
    fallbacks: tuple[str, ...] = ()
    defaults: Defaults = Defaults()
    limits: Limits = Limits()
    # Recommended sampling and prompts of a model family (gateway/presets.py); the
    # model's own ``defaults`` win over the preset's.
    preset: str | None = None
    degeneration_guard: DegenerationGuard | None = None
    # Thinking sent apart from the answer (reasoning_content, Ollama's thinking):
    # false keeps it in the text; true is <think>…</think>, or give the tags.
    reasoning: bool | Reasoning = True
    # Lifecycle (docs/operations.md): load at start-up instead of on the first request;
    # unload after this many idle seconds; never evict for the memory budget.
    preload: bool = False
    ttl: Annotated[float, msgspec.Meta(gt=0)] | None = None
    pinned: bool = False

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise ValueError("name must not be empty")
        if not self.deployments:
            raise ValueError("a model needs at least one deployment")


class Registry(_Strict, frozen=True, kw_only=True, forbid_unknown_fields=True):
    models: tuple[ModelSpec, ...]
    routing: Routing = Routing()
    # A model name or alias that answers requests naming an unknown (or empty) model,
    # for clients that send a fixed placeholder; None keeps those a 404.
    default_model: str | None = None
    # Memory that loaded deployments may take together: bytes, a size ("12GiB"), or a
    # share of the host ("60%", "60% ram", "90% vram"). Idle models are evicted for it.
    memory_budget: int | str | None = None

    def __post_init__(self) -> None:
        if self.memory_budget is not None:
            # Shares are resolved against the host when the gateway starts; here only
            # the syntax is checked, so that `roundhouse check` works anywhere.
            parse_memory_budget(self.memory_budget, ram_total=1 << 40, vram_total=1 << 40)

    def names(self) -> list[str]:
        return [m.name for m in self.models]
