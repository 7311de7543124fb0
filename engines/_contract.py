"""The engine contract: what every adapter consumes and produces.

An adapter's ``generate`` is an async stream of deltas (``TextDelta``, and for chat
``ReasoningDelta`` and ``ToolCallDelta``) that ends with exactly one ``Finish``
carrying the finish reason and exact token usage. The gateway builds both streamed
and non-streamed responses from that one stream.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncGenerator
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

import msgspec

from ._calls import FunctionTool, ReasoningEffort, ReasoningTags, TokenLogprob, ToolCall, ToolChoice

__all__ = [
    "Batching",
    "ChatMessage",
    "Distribution",
    "EmbedRequest",
    "Embeddings",
    "Engine",
    "EngineSpec",
    "Finish",
    "FinishReason",
    "Footprint",
    "GenerateRequest",
    "Halt",
    "Health",
    "ModelInfo",
    "PromptCounter",
    "ReasoningDelta",
    "ResponseFormat",
    "SlotState",
    "SplitsReasoning",
    "State",
    "StepStats",
    "StreamItem",
    "TextDelta",
    "Tokenizer",
    "ToolCallDelta",
    "Usage",
]

# "tool_calls": the model stopped to have its calls run (never when cut by length).
FinishReason = Literal["stop", "length", "tool_calls"]


class Usage(msgspec.Struct, frozen=True, kw_only=True):
    prompt_tokens: int
    completion_tokens: int
    # True when a count could not be measured and is a best guess (a remote engine
    # that neither reports usage nor offers a tokenizer for the prompt it built).
    estimated: bool = False
    # Of the prompt tokens, those an engine took from its cache instead of
    # evaluating (prefix reuse); 0 when none were, or the engine cannot tell.
    cached_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class TextDelta(msgspec.Struct, frozen=True, kw_only=True, tag="delta"):
    text: str
    # When asked for (GenerateRequest.logprobs): the tokens whose text this delta
    # releases, in order. Tokens that became reasoning or a tool call carry none.
    logprobs: tuple[TokenLogprob, ...] = ()


class ReasoningDelta(msgspec.Struct, frozen=True, kw_only=True, tag="reasoning"):
    """Thinking text, split from the answer (the model's reasoning tags removed)."""

    text: str


class ToolCallDelta(msgspec.Struct, frozen=True, kw_only=True, tag="tool_call"):
    """A piece of the ``index``-th tool call of this answer.

    A call's first delta has its ``id`` and ``name``; every delta may add a fragment
    of ``arguments``, and the fragments joined are the call's JSON arguments.
    """

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


class Finish(msgspec.Struct, frozen=True, kw_only=True, tag="finish"):
    finish_reason: FinishReason
    usage: Usage
    # The request's stop string that ended the output, when the engine can tell
    # (finish_reason "stop" with None means end of generation, or unknown).
    stop_word: str | None = None


StreamItem = TextDelta | ReasoningDelta | ToolCallDelta | Finish


class Halt(Exception):
    """Thrown into a ``generate`` stream (``athrow``) to end the output early.

    An engine that honours it stops before its next token and still sends its
    ``Finish`` (``"length"``, exact usage), so the consumer can report honest counts.
    An engine that does not simply lets it propagate out of the stream; the consumer
    must then close the stream and account for the output itself.
    """


class ChatMessage(msgspec.Struct, frozen=True, kw_only=True):
    role: str
    # Text parts are already joined by the gateway; engines see plain text. Other
    # kinds of content (images) would come as a field of their own beside it.
    content: str
    name: str | None = None
    # An assistant turn's calls, and a "tool" turn's answer to one of them.
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    # An assistant turn's thinking, for templates that render it back.
    reasoning: str | None = None


class ResponseFormat(msgspec.Struct, frozen=True, kw_only=True):
    type: Literal["text", "json_object", "json_schema"]
    # The JSON Schema for ``json_schema``; None means any JSON object.
    json_schema: dict[str, Any] | None = None


class GenerateRequest(msgspec.Struct, frozen=True, kw_only=True):
    """One normalized generation request.

    Exactly one of ``messages`` (chat) and ``prompt`` (plain completion) is set.
    Sampling fields left as None mean "the engine's default".
    """

    messages: tuple[ChatMessage, ...] | None = None
    prompt: str | None = None
    # The client's own limit: binding, so prompt + max_tokens must fit the context.
    max_tokens: int | None = None
    # A ceiling from defaults or limits, used only when max_tokens is None.
    token_budget: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    repetition_penalty: float | None = None
    response_format: ResponseFormat | None = None
    # vLLM's and llama-server's names: generate past end-of-generation tokens (for
    # benchmarks), or not before this many tokens. Engines that cannot refuse them.
    ignore_eos: bool = False
    min_tokens: int = 0
    # Chat only. Tools the model may call, and how it must choose among them.
    tools: tuple[FunctionTool, ...] = ()
    # None: the model's default from the registry, else "auto".
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool = True
    # How thinking is told from the answer (None: it is not; the text is the answer).
    reasoning: ReasoningTags | None = msgspec.field(default_factory=ReasoningTags)
    # Asks a reasoning model to think more, less or not at all (None: its default).
    reasoning_effort: ReasoningEffort | None = None
    # The log probabilities of generated tokens, with this many alternatives each
    # (None: not asked for). Engines that cannot give them refuse the request.
    logprobs: int | None = None


class EmbedRequest(msgspec.Struct, frozen=True, kw_only=True):
    inputs: tuple[str, ...]


class Embeddings(msgspec.Struct, frozen=True, kw_only=True):
    vectors: tuple[tuple[float, ...], ...]
    prompt_tokens: int


class State(enum.StrEnum):
    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"
    CLOSED = "closed"
    # Set by the gateway's lifecycle, never by an engine: not loaded (it loads on
    # demand), and taking no new requests while those in flight finish.
    UNLOADED = "unloaded"
    DRAINING = "draining"


class SlotState(msgspec.Struct, frozen=True, kw_only=True):
    """One of an engine's decoding slots: a sequence of the shared batch."""

    id: int
    processing: bool
    # The most tokens one request may hold in this slot (prompt plus completion).
    n_ctx: int
    # Tokens of the last prompt and completion still in the slot's KV cache.
    cached_tokens: int = 0


class Health(msgspec.Struct, frozen=True, kw_only=True):
    state: State
    message: str | None = None
    # Requests admitted and not yet finished: the running ones plus the waiting ones.
    in_flight: int = 0
    waiting: int = 0
    # An engine that batches reports its slots; empty means one request at a time.
    slots: tuple[SlotState, ...] = ()


class ModelInfo(msgspec.Struct, frozen=True, kw_only=True):
    """Facts about a loaded model, as far as the engine knows them."""

    n_ctx: int | None = None
    n_ctx_train: int | None = None
    n_vocab: int | None = None
    n_embd: int | None = None
    n_params: int | None = None
    size: int | None = None
    # llama.cpp's vocabulary type (1 SPM, 2 BPE, ...): only a loaded GGUF has one.
    vocab_type: int | None = None
    # The chat template the engine renders messages with, when it renders them.
    chat_template: str | None = None


class EngineSpec(msgspec.Struct, frozen=True, kw_only=True):
    """What an engine is built from: one deployment of the registry.

    ``options`` is an instance of the engine class's ``options_type``.
    """

    name: str
    path: str | None = None
    url: str | None = None
    model: str | None = None
    options: Any = None


@runtime_checkable
class Engine(Protocol):
    """What the gateway needs from an adapter.

    ``options_type`` is the msgspec Struct that the registry block named after the
    engine is decoded into; unknown keys there are rejected.
    """

    options_type: ClassVar[type[msgspec.Struct]]
    # Deployment keys this engine cannot work without ("path", "url", "model").
    requires: ClassVar[tuple[str, ...]]

    async def start(self) -> None:
        """Load or connect. A failure leaves the engine FAILED; it must not raise."""

    async def close(self) -> None: ...

    def health(self) -> Health: ...

    def info(self) -> ModelInfo: ...

    def generate(self, request: GenerateRequest) -> AsyncGenerator[StreamItem, None]:
        """Stream deltas, then exactly one Finish.

        Errors raised before the first item are errors of the request; the
        consumer closing the iterator early cancels the generation.
        """
        ...

    async def embed(self, request: EmbedRequest) -> Embeddings: ...


@runtime_checkable
class Tokenizer(Protocol):
    """An optional engine capability: the model's own tokenizer.

    Engines that can tokenize without a round trip to elsewhere implement it;
    the gateway checks with ``isinstance(engine, Tokenizer)``.
    """

    async def tokenize(self, text: str, *, add_special: bool) -> list[int]: ...

    async def detokenize(self, tokens: list[int]) -> str: ...


class Distribution(msgspec.Struct, frozen=True, kw_only=True):
    """Counts of observations per bucket (upper bounds ``bounds``, then one overflow)."""

    bounds: tuple[float, ...]
    counts: tuple[int, ...]
    total: float = 0.0


class StepStats(msgspec.Struct, frozen=True, kw_only=True):
    """Cumulative figures of a batching engine's decode loop."""

    steps: int
    # Sequences and tokens in each decode step.
    sequences_per_step: Distribution
    tokens_per_step: Distribution
    kv_cells_used: int
    kv_cells: int
    # Prompt tokens taken from a slot's cache, and those evaluated anew.
    prompt_tokens_reused: int
    prompt_tokens_evaluated: int


@runtime_checkable
class Batching(Protocol):
    """An optional engine capability: figures of its shared decode batch."""

    def step_stats(self) -> StepStats: ...


@runtime_checkable
class SplitsReasoning(Protocol):
    """An optional engine capability: it sends thinking as ``ReasoningDelta`` itself,
    by ``GenerateRequest.reasoning``, so the gateway need not look for the tags again.

    The in-process engine must: it splits before it reads tool calls, and it alone
    knows when the prompt already opened the thinking.
    """

    splits_reasoning: ClassVar[bool]


@runtime_checkable
class PromptCounter(Protocol):
    """An optional engine capability: the exact prompt tokens of a chat request.

    The prompt as the engine would build it (template, tools and special tokens
    included), counted without generating: Anthropic's ``count_tokens``.
    """

    async def count_prompt(self, request: GenerateRequest) -> int: ...


@runtime_checkable
class Footprint(Protocol):
    """An optional engine capability: the memory its model will take once loaded.

    ``footprint`` gives the bytes (weights, caches and working buffers),
    estimated without loading the model, so a caller can decide beforehand
    whether it fits; None when unknown. The gateway checks with
    ``isinstance(engine, Footprint)``.
    """

    def footprint(self) -> int | None: ...
