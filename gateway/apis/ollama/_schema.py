"""The Ollama face in the OpenAPI document: its answers as types, and its routes.

The handlers build plain dicts (``_stream.py``, ``models.py``, ``embed.py``); these
types only describe them, key for key. A key a handler sends only sometimes is
``UNSET`` here (absent, never null); a key it always sends is required.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec
from msgspec import UNSET, UnsetType

from ...openapi import (
    BODY_ERRORS,
    GENERATION_ERRORS,
    OPEN_READ_ERRORS,
    READ_ERRORS,
    OllamaError,
    Operation,
    PathParameter,
    StreamKind,
)
from ._wire import ChatBody, EmbedBody, EmbeddingsBody, GenerateBody, ShowBody

__all__ = [
    "OPERATIONS",
    "OllamaChatChunk",
    "OllamaChatResponse",
    "OllamaEmbed",
    "OllamaEmbedding",
    "OllamaGenerateChunk",
    "OllamaGenerateResponse",
    "OllamaLogprob",
    "OllamaModel",
    "OllamaModelDetails",
    "OllamaModels",
    "OllamaReply",
    "OllamaRunningModel",
    "OllamaRunningModels",
    "OllamaShow",
    "OllamaToolCall",
    "OllamaTopLogprob",
    "OllamaVersion",
]

# A call for tools ends as any other, "stop" (the calls say the rest); "load" and
# "unload" end the empty requests that load or unload a model, never streamed.
DoneReason = Literal["stop", "length"]
AnswerReason = Literal["stop", "length", "load", "unload"]


class OllamaTopLogprob(msgspec.Struct, frozen=True, kw_only=True):
    token: str
    logprob: float
    # The token's UTF-8 bytes: a token may hold part of a character.
    bytes: list[int]


class OllamaLogprob(msgspec.Struct, frozen=True, kw_only=True):
    token: str
    logprob: float
    bytes: list[int]
    top_logprobs: list[OllamaTopLogprob]


class OllamaToolCallFunction(msgspec.Struct, frozen=True, kw_only=True):
    index: int
    name: str
    # Always an object: a call whose arguments are not one comes back as content.
    arguments: dict[str, Any]


class OllamaToolCall(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    function: OllamaToolCallFunction


class OllamaReply(msgspec.Struct, frozen=True, kw_only=True):
    """The assistant message of /api/chat: content always, "" when there is none."""

    role: Literal["assistant"]
    content: str
    thinking: str | UnsetType = UNSET
    tool_calls: list[OllamaToolCall] | UnsetType = UNSET


class _Line(msgspec.Struct, frozen=True, kw_only=True):
    model: str
    # RFC 3339 in UTC, as Go writes time.Time.
    created_at: str
    # Only when the request asked for logprobs and this piece has text tokens.
    logprobs: list[OllamaLogprob] | UnsetType = UNSET
    # The measures of an answer that was generated: on its last line, or its one
    # object; a load or unload answer has none. Durations in nanoseconds.
    total_duration: int | UnsetType = UNSET
    load_duration: int | UnsetType = UNSET
    prompt_eval_count: int | UnsetType = UNSET
    prompt_eval_duration: int | UnsetType = UNSET
    eval_count: int | UnsetType = UNSET
    eval_duration: int | UnsetType = UNSET


class _Chunk(_Line, frozen=True, kw_only=True):
    done: bool
    # On the last line (done true) only.
    done_reason: DoneReason | UnsetType = UNSET


class _Answer(_Line, frozen=True, kw_only=True):
    done: Literal[True]
    done_reason: AnswerReason


class OllamaChatChunk(_Chunk, frozen=True, kw_only=True):
    """One NDJSON line of a streamed /api/chat; the last has done true and the measures."""

    message: OllamaReply


class OllamaChatResponse(_Answer, frozen=True, kw_only=True):
    """/api/chat not streamed, or a load or unload (no messages): one object."""

    message: OllamaReply


class OllamaGenerateChunk(_Chunk, frozen=True, kw_only=True):
    """One NDJSON line of a streamed /api/generate."""

    response: str
    thinking: str | UnsetType = UNSET


class OllamaGenerateResponse(_Answer, frozen=True, kw_only=True):
    """/api/generate not streamed, or a load or unload (no prompt). No ``context``."""

    response: str
    thinking: str | UnsetType = UNSET


class OllamaEmbed(msgspec.Struct, frozen=True, kw_only=True):
    model: str
    embeddings: list[list[float]]
    # Absent when there was no input (a load request): no vectors, nothing measured.
    total_duration: int | UnsetType = UNSET
    load_duration: int | UnsetType = UNSET
    prompt_eval_count: int | UnsetType = UNSET


class OllamaEmbedding(msgspec.Struct, frozen=True, kw_only=True):
    # Empty for an empty prompt.
    embedding: list[float]


class OllamaModelDetails(msgspec.Struct, frozen=True, kw_only=True):
    # "" for what is not known (every field but families, [] then).
    parent_model: str
    format: str
    family: str
    families: list[str]
    parameter_size: str
    quantization_level: str


class OllamaModel(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    model: str
    modified_at: str
    size: int
    # Identifies the registry entry, not the weights.
    digest: str
    details: OllamaModelDetails


class OllamaRunningModel(OllamaModel, frozen=True, kw_only=True):
    # When the model's ttl would unload it; far in the future without a ttl.
    expires_at: str
    # 0: not known.
    size_vram: int
    context_length: int


class OllamaModels(msgspec.Struct, frozen=True, kw_only=True):
    models: list[OllamaModel]


class OllamaRunningModels(msgspec.Struct, frozen=True, kw_only=True):
    models: list[OllamaRunningModel]


class OllamaShow(msgspec.Struct, frozen=True, kw_only=True):
    modelfile: str
    parameters: str
    # Always "": the engine applies the chat template and does not hand it out.
    template: str
    details: OllamaModelDetails
    # GGUF-style keys ("general.parameter_count", "roundhouse.context_length"...),
    # each only when the engine knows its value.
    model_info: dict[str, Any]
    capabilities: list[str]
    modified_at: str


class OllamaVersion(msgspec.Struct, frozen=True, kw_only=True):
    version: str


_TAG = "Ollama"
_NDJSON: StreamKind = "application/x-ndjson"
# Each store route answers 403 and nothing else of its own: Roundhouse has no store.
_STORE = (
    "Always 403: models come from the registry file (listed by /api/tags); "
    "there is no model store to act on."
)
_STREAM = (
    "Streamed as NDJSON unless stream is false. An error once the stream has begun "
    'arrives as a last line {"error": "..."} (the status is 200 by then). An empty '
    "request loads (or, with keep_alive 0, unloads) the model and is answered with "
    "one JSON object, streamed or not."
)
_DIGEST = (PathParameter(name="digest", description="The blob's digest (sha256:...)"),)


def _store(method: Literal["post", "delete"], path: str, summary: str, op: str) -> Operation:
    return Operation(
        method=method,
        path=path,
        summary=summary,
        description=_STORE,
        tag=_TAG,
        operation_id=op,
        # Ollama's clients send {"model": ...}; nothing reads it, so any object will do.
        body=dict[str, Any] if method == "post" else None,
        errors=OllamaError,
        refusals=BODY_ERRORS,
    )


OPERATIONS = [
    Operation(
        method="get",
        path="/",
        summary='Ollama\'s probe: "Ollama is running" (a browser gets a link to /ui)',
        tag=_TAG,
        operation_id="ollamaProbe",
        response=str,
        media_type="text/plain",
        errors=OllamaError,
        refusals=OPEN_READ_ERRORS,
        public=True,
    ),
    Operation(
        method="head",
        path="/",
        summary="Ollama's probe, without a body",
        tag=_TAG,
        operation_id="ollamaProbeHead",
        errors=OllamaError,
        refusals=OPEN_READ_ERRORS,
        public=True,
    ),
    Operation(
        method="post",
        path="/api/chat",
        summary="Chat with a model",
        description=_STREAM,
        tag=_TAG,
        operation_id="ollamaChat",
        body=ChatBody,
        response=OllamaChatResponse,
        stream=_NDJSON,
        stream_item=OllamaChatChunk,
        errors=OllamaError,
        refusals=GENERATION_ERRORS,
    ),
    Operation(
        method="post",
        path="/api/generate",
        summary="Complete a prompt, in the model's chat template unless raw",
        description=_STREAM,
        tag=_TAG,
        operation_id="ollamaGenerate",
        body=GenerateBody,
        response=OllamaGenerateResponse,
        stream=_NDJSON,
        stream_item=OllamaGenerateChunk,
        errors=OllamaError,
        refusals=GENERATION_ERRORS,
    ),
    Operation(
        method="post",
        path="/api/embed",
        summary="Embed one or more inputs",
        tag=_TAG,
        operation_id="ollamaEmbed",
        body=EmbedBody,
        response=OllamaEmbed,
        errors=OllamaError,
        refusals=GENERATION_ERRORS,
    ),
    Operation(
        method="post",
        path="/api/embeddings",
        summary="Embed one prompt (the legacy endpoint)",
        tag=_TAG,
        operation_id="ollamaEmbeddings",
        body=EmbeddingsBody,
        response=OllamaEmbedding,
        errors=OllamaError,
        refusals=GENERATION_ERRORS,
    ),
    Operation(
        method="get",
        path="/api/tags",
        summary="The registry's models",
        tag=_TAG,
        operation_id="ollamaTags",
        response=OllamaModels,
        errors=OllamaError,
        refusals=READ_ERRORS,
    ),
    Operation(
        method="get",
        path="/api/ps",
        summary="The models loaded now",
        tag=_TAG,
        operation_id="ollamaPs",
        response=OllamaRunningModels,
        errors=OllamaError,
        refusals=READ_ERRORS,
    ),
    Operation(
        method="post",
        path="/api/show",
        summary="What is known of one model: parameters, details, facts",
        tag=_TAG,
        operation_id="ollamaShow",
        body=ShowBody,
        response=OllamaShow,
        errors=OllamaError,
        refusals=(*BODY_ERRORS, 404),
    ),
    Operation(
        method="get",
        path="/api/version",
        summary="The Ollama version this API matches",
        tag=_TAG,
        operation_id="ollamaVersion",
        response=OllamaVersion,
        errors=OllamaError,
        refusals=READ_ERRORS,
    ),
    _store("post", "/api/pull", "Pull a model (refused)", "ollamaPull"),
    _store("post", "/api/push", "Push a model (refused)", "ollamaPush"),
    _store("post", "/api/create", "Create a model (refused)", "ollamaCreate"),
    _store("post", "/api/copy", "Copy a model (refused)", "ollamaCopy"),
    _store("delete", "/api/delete", "Delete a model (refused)", "ollamaDelete"),
    Operation(
        method="post",
        path="/api/blobs/{digest}",
        summary="Upload a blob (refused)",
        description=f"{_STORE} The body is the blob's bytes, not JSON.",
        tag=_TAG,
        operation_id="ollamaPushBlob",
        errors=OllamaError,
        # A binary body: never refused for its media type.
        refusals=tuple(s for s in BODY_ERRORS if s != 415),
        parameters=_DIGEST,
    ),
    Operation(
        method="head",
        path="/api/blobs/{digest}",
        summary="Check for a blob: always 404, there are no blobs",
        tag=_TAG,
        operation_id="ollamaCheckBlob",
        errors=OllamaError,
        refusals=(*READ_ERRORS, 404),
        parameters=_DIGEST,
    ),
]
