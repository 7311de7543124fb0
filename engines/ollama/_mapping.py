"""What goes over the wire: options, formats, embeddings and model facts.

Chat messages, tools and thinking are in ``_chat``; streamed answers in ``_chunks``.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from ollama import EmbedResponse, ShowResponse

from .._contract import Embeddings, EmbedRequest, GenerateRequest, ModelInfo
from .._errors import UpstreamError
from ._chunks import estimate_tokens
from ._options import OllamaOptions

__all__ = [
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
_PARAMETER = re.compile(r"^num_ctx\s+(\d+)\s*$", re.MULTILINE)


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
