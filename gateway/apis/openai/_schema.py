"""What the OpenAI face sends, as types for the OpenAPI document.

The handlers build these bodies directly; the fuzz test (tests/test_openapi.py)
validates every real response against these types, and tests/test_openai_schemas.py
validates them against OpenAI's own published schemas, so they cannot drift.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from ...openapi import GENERATION_ERRORS, READ_ERRORS, OpenAIError, Operation, PathParameter
from ._wire import ChatRequest, CompletionRequest, EmbeddingRequest

__all__ = ["OPERATIONS"]

FinishReason = Literal["stop", "length", "tool_calls"]


class PromptTokensDetails(msgspec.Struct, frozen=True, kw_only=True):
    cached_tokens: int


class Usage(msgspec.Struct, frozen=True, kw_only=True):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails
    # Present (true) only when an engine could not count exactly.
    estimated: bool = False


class FunctionCallOut(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    arguments: str


class ToolCallOut(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    type: Literal["function"]
    function: FunctionCallOut


class AssistantMessage(msgspec.Struct, frozen=True, kw_only=True):
    role: Literal["assistant"]
    content: str | None
    refusal: None
    reasoning_content: str | None = None
    tool_calls: list[ToolCallOut] | None = None


class TopLogprob(msgspec.Struct, frozen=True, kw_only=True):
    token: str
    logprob: float
    bytes: list[int]


class TokenLogprob(msgspec.Struct, frozen=True, kw_only=True):
    token: str
    logprob: float
    bytes: list[int]
    top_logprobs: list[TopLogprob]


class ChatLogprobs(msgspec.Struct, frozen=True, kw_only=True):
    content: list[TokenLogprob]
    refusal: None


class ChatChoice(msgspec.Struct, frozen=True, kw_only=True):
    index: int
    message: AssistantMessage
    logprobs: ChatLogprobs | None
    finish_reason: FinishReason


class ChatCompletion(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage


class FunctionDelta(msgspec.Struct, frozen=True, kw_only=True):
    arguments: str
    name: str | None = None


class ToolCallDeltaOut(msgspec.Struct, frozen=True, kw_only=True):
    index: int
    function: FunctionDelta
    # A call's first chunk: its id and type.
    id: str | None = None
    type: Literal["function"] | None = None


class ChatDelta(msgspec.Struct, frozen=True, kw_only=True):
    role: Literal["assistant"] | None = None
    content: str | None = None
    reasoning_content: str | None = None
    tool_calls: list[ToolCallDeltaOut] | None = None


class ChatChunkChoice(msgspec.Struct, frozen=True, kw_only=True):
    index: int
    delta: ChatDelta
    logprobs: ChatLogprobs | None
    finish_reason: FinishReason | None


class ChatCompletionChunk(msgspec.Struct, frozen=True, kw_only=True):
    """One ``data:`` event; ``[DONE]`` ends the stream. With ``include_usage``, every
    chunk has ``usage`` (null) and a last one with no choices carries it."""

    id: str
    object: Literal["chat.completion.chunk"]
    created: int
    model: str
    choices: list[ChatChunkChoice]
    usage: Usage | None = None


class CompletionLogprobs(msgspec.Struct, frozen=True, kw_only=True):
    tokens: list[str]
    token_logprobs: list[float]
    top_logprobs: list[dict[str, float]]
    text_offset: list[int]


class CompletionChoice(msgspec.Struct, frozen=True, kw_only=True):
    index: int
    text: str
    logprobs: CompletionLogprobs | None
    finish_reason: Literal["stop", "length"]


class Completion(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    object: Literal["text_completion"]
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage


class CompletionChunkChoice(msgspec.Struct, frozen=True, kw_only=True):
    index: int
    text: str
    logprobs: CompletionLogprobs | None
    finish_reason: Literal["stop", "length"] | None


class CompletionChunk(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    object: Literal["text_completion"]
    created: int
    model: str
    choices: list[CompletionChunkChoice]
    usage: Usage | None = None


class Embedding(msgspec.Struct, frozen=True, kw_only=True):
    object: Literal["embedding"]
    index: int
    # A list of floats, or their little-endian float32 bytes in base64.
    embedding: list[float] | str


class EmbeddingUsage(msgspec.Struct, frozen=True, kw_only=True):
    prompt_tokens: int
    total_tokens: int


class EmbeddingList(msgspec.Struct, frozen=True, kw_only=True):
    object: Literal["list"]
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage


class Model(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str
    aliases: list[str]
    engines: list[str]
    # llama-server's facts of a loaded GGUF.
    meta: dict[str, Any] | None = None


class ModelList(msgspec.Struct, frozen=True, kw_only=True):
    object: Literal["list"]
    data: list[Model]


OPERATIONS = [
    Operation(
        method="post",
        path="/v1/chat/completions",
        operation_id="createChatCompletion",
        summary="A chat completion, streamed (server-sent events) or not",
        tag="OpenAI",
        body=ChatRequest,
        response=ChatCompletion,
        stream="text/event-stream",
        stream_item=ChatCompletionChunk,
        errors=OpenAIError,
        refusals=GENERATION_ERRORS,
    ),
    Operation(
        method="post",
        path="/v1/completions",
        operation_id="createCompletion",
        summary="A plain-text completion, streamed or not",
        tag="OpenAI",
        body=CompletionRequest,
        response=Completion,
        stream="text/event-stream",
        stream_item=CompletionChunk,
        errors=OpenAIError,
        refusals=GENERATION_ERRORS,
    ),
    Operation(
        method="post",
        path="/v1/embeddings",
        operation_id="createEmbedding",
        summary="Embeddings of one input or several",
        tag="OpenAI",
        body=EmbeddingRequest,
        response=EmbeddingList,
        errors=OpenAIError,
        refusals=GENERATION_ERRORS,
    ),
    Operation(
        method="get",
        path="/v1/models",
        operation_id="listModels",
        summary="The registry's models",
        tag="OpenAI",
        response=ModelList,
        errors=OpenAIError,
        refusals=READ_ERRORS,
    ),
    Operation(
        method="get",
        path="/v1/models/{model_id}",
        operation_id="retrieveModel",
        summary="One model, by name or alias",
        tag="OpenAI",
        response=Model,
        parameters=(PathParameter(name="model_id", description="A model's name or alias"),),
        errors=OpenAIError,
        refusals=(*READ_ERRORS, 404),
    ),
]
