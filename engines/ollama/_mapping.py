"""What goes over the wire: contract requests out, Ollama's answers in."""

from __future__ import annotations

import math
import re
from typing import Any, Literal

from ollama import ChatResponse, EmbedResponse, GenerateResponse, ShowResponse

from .._contract import (
    Embeddings,
    EmbedRequest,
    Finish,
    FinishReason,
    GenerateRequest,
    ModelInfo,
    Usage,
)
from .._errors import UpstreamError
from ._options import OllamaOptions

__all__ = [
    "ChunkReader",
    "chat_messages",
    "embeddings",
    "load_options",
    "model_info",
    "request_format",
    "request_options",
]

# Contract fields and the Modelfile parameters that mean the same.
_RENAMED = (
    ("temperature", "temperature"),
    ("top_p", "top_p"),
    ("top_k", "top_k"),
    ("min_p", "min_p"),
    ("frequency_penalty", "frequency_penalty"),
    ("presence_penalty", "presence_penalty"),
    ("repetition_penalty", "repeat_penalty"),
)
# What a done chunk says when the daemon only loaded or unloaded the model.
_NOT_ANSWERS = frozenset({"load", "unload"})
# For counts the daemon did not send: about four characters per token, plus what
# a chat template adds around each message (OpenAI's rule of thumb).
_CHARS_PER_TOKEN = 4
_PER_MESSAGE = 3
_PARAMETER = re.compile(r"^num_ctx\s+(\d+)\s*$", re.MULTILINE)


def chat_messages(request: GenerateRequest) -> list[dict[str, str]]:
    # Ollama's templates know system, user, assistant and tool; "developer" is
    # OpenAI's newer name for the system prompt. Ollama messages carry no name.
    return [
        {"role": "system" if m.role == "developer" else m.role, "content": m.content}
        for m in request.messages or ()
    ]


def load_options(options: OllamaOptions) -> dict[str, Any]:
    """The registry's settings, which every request to the daemon carries."""
    sent = dict(options.options)
    if options.num_ctx is not None:
        sent["num_ctx"] = options.num_ctx
    if options.num_gpu is not None:
        sent["num_gpu"] = options.num_gpu
    return sent


def request_options(request: GenerateRequest, options: OllamaOptions) -> dict[str, Any]:
    sent = load_options(options)
    for ours, theirs in _RENAMED:
        value = getattr(request, ours)
        if value is not None:
            sent[theirs] = value
    # Ollama reads a negative seed as "random", which is what leaving it out means.
    if request.seed is not None and request.seed >= 0:
        sent["seed"] = request.seed
    if request.stop:
        sent["stop"] = list(request.stop)
    limit = request.max_tokens if request.max_tokens is not None else request.token_budget
    if limit is not None:
        sent["num_predict"] = limit
    return sent


def request_format(request: GenerateRequest) -> Literal["json"] | dict[str, Any] | None:
    fmt = request.response_format
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_schema" and fmt.json_schema is not None:
        return fmt.json_schema
    return "json"


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text) / _CHARS_PER_TOKEN)


class ChunkReader:
    """Reads streamed chunks: text out; done reason and counts kept from the last."""

    def __init__(self) -> None:
        self.done = False
        self._reason: str | None = None
        self._prompt: int | None = None
        self._completion: int | None = None
        self._deltas = 0
        self._chars = 0

    def take(self, chunk: ChatResponse | GenerateResponse) -> str:
        if isinstance(chunk, ChatResponse):
            text = chunk.message.content or ""
        else:
            text = chunk.response or ""
        if text:
            self._deltas += 1
            self._chars += len(text)
        if chunk.done:
            self.done = True
            self._reason = chunk.done_reason
            self._prompt = chunk.prompt_eval_count
            self._completion = chunk.eval_count
        return text

    def finish(self, request: GenerateRequest) -> Finish:
        if not self.done:
            raise UpstreamError("the Ollama stream ended before its final chunk")
        if self._reason in _NOT_ANSWERS:
            raise UpstreamError(f"the Ollama daemon answered {self._reason!r} instead of text")
        reason: FinishReason = "length" if self._reason == "length" else "stop"
        estimated = False
        prompt = self._prompt
        # A prompt always has tokens; 0 is what some daemons send for a cached one.
        if prompt is None or prompt <= 0:
            estimated = True
            prompt = _estimate_prompt(request)
        completion = self._completion
        if completion is None or completion < 0:
            estimated = True
            # Every streamed piece holds at least one token.
            completion = max(self._deltas, math.ceil(self._chars / _CHARS_PER_TOKEN))
        usage = Usage(prompt_tokens=prompt, completion_tokens=completion, estimated=estimated)
        return Finish(finish_reason=reason, usage=usage)


def _estimate_prompt(request: GenerateRequest) -> int:
    if request.prompt is not None:
        return max(1, estimate_tokens(request.prompt))
    return _PER_MESSAGE + sum(
        _PER_MESSAGE + estimate_tokens(m.content) for m in request.messages or ()
    )


def embeddings(answer: EmbedResponse, request: EmbedRequest) -> Embeddings:
    vectors = tuple(tuple(float(x) for x in vector) for vector in answer.embeddings)
    if len(vectors) != len(request.inputs):
        raise UpstreamError(
            f"the Ollama daemon sent {len(vectors)} embeddings for {len(request.inputs)} inputs"
        )
    tokens = answer.prompt_eval_count
    if tokens is None or tokens < 0:
        # Embeddings carry no "estimated" flag; the guess is the best there is.
        tokens = sum(estimate_tokens(text) for text in request.inputs)
    return Embeddings(vectors=vectors, prompt_tokens=tokens)


def model_info(show: ShowResponse, num_ctx: int | None) -> ModelInfo:
    """What ``/api/show`` tells about the model, under GGUF's metadata keys."""
    facts: dict[str, Any] = dict(show.modelinfo or {})
    arch = facts.get("general.architecture")

    def number(key: str) -> int | None:
        value = facts.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    def of_arch(name: str) -> int | None:
        return number(f"{arch}.{name}") if isinstance(arch, str) else None

    if num_ctx is None and show.parameters:
        # A Modelfile's PARAMETER num_ctx is what the daemon loads with by default.
        found = _PARAMETER.search(show.parameters)
        num_ctx = int(found.group(1)) if found else None
    return ModelInfo(
        n_ctx=num_ctx,
        n_ctx_train=of_arch("context_length"),
        n_vocab=of_arch("vocab_size"),
        n_embd=of_arch("embedding_length"),
        n_params=number("general.parameter_count"),
    )
