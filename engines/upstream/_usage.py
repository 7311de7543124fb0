"""Token counts for upstreams that stream no usage.

The upstream's own tokenizer is the only exact source, so the counter finds which
tokenize endpoint the server offers (once) and asks it. A count it cannot measure
is estimated from characters, and the ``Usage`` says so.
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Any, Literal

import httpx
import msgspec

from .._contract import GenerateRequest, Usage
from ._body import JSON_HEADERS
from ._options import TokenizeMode

__all__ = ["TokenCounter", "estimate_tokens", "settle_usage"]

log = logging.getLogger("roundhouse.engines.upstream")

Dialect = Literal["vllm", "llama-server", "llama-cpp-python"]

# Roughly four characters per token for English text and common BPE vocabularies.
_CHARS_PER_TOKEN = 4
# OpenAI's rule of thumb for what a chat template adds around each message, and
# for the assistant header that opens the reply.
_PER_MESSAGE = 3
_REPLY_PRIMING = 3
_PROBE_TEXT = "Hello world"
_NAMED: dict[str, Dialect] = {
    "vllm": "vllm",
    "llama-server": "llama-server",
    "llama-cpp-python": "llama-cpp-python",
}


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text) / _CHARS_PER_TOKEN)


class TokenCounter:
    """Counts tokens with the upstream's tokenize endpoint, when it has one."""

    def __init__(self, mode: TokenizeMode, model: str) -> None:
        self._model = model
        self._dialect: Dialect | None = _NAMED.get(mode)
        self._detected = mode != "auto"
        self._lock = asyncio.Lock()
        self._bos: int | None = None

    async def _find(self, client: httpx.AsyncClient) -> Dialect | None:
        if self._detected:
            return self._dialect
        async with self._lock:
            if not self._detected:
                self._dialect = await self._detect(client)
        return self._dialect

    async def _detect(self, client: httpx.AsyncClient) -> Dialect | None:
        # vLLM and llama-server share the path; only vLLM answers with "count".
        probes: list[tuple[Dialect, str, dict[str, Any]]] = [
            ("vllm", "/tokenize", {"model": self._model, "prompt": _PROBE_TEXT}),
            ("llama-server", "/tokenize", {"content": _PROBE_TEXT}),
            ("llama-cpp-python", "/extras/tokenize", {"model": self._model, "input": _PROBE_TEXT}),
        ]
        for dialect, path, body in probes:
            try:
                response = await client.post(
                    path, content=msgspec.json.encode(body), headers=JSON_HEADERS
                )
            except httpx.HTTPError as exc:
                # Unreachable now says nothing about the endpoints: ask again next time.
                log.debug("tokenize detection failed: %s", exc)
                return None
            found = _json(response) or {}
            tokens = found.get("tokens")
            if not isinstance(tokens, list) or not tokens:
                continue
            if dialect == "vllm" and "count" not in found:
                continue
            self._detected = True
            log.info("upstream tokenizer: %s (%s)", dialect, path)
            return dialect
        self._detected = True
        log.info("upstream has no tokenize endpoint; usage it does not send is estimated")
        return None

    async def prompt(self, client: httpx.AsyncClient, request: GenerateRequest) -> int | None:
        """The exact prompt tokens of ``request``, or None where they cannot be counted."""
        dialect = await self._find(client)
        if dialect is None:
            return None
        if request.prompt is not None:
            return await self._count(client, dialect, request.prompt, special=True)
        messages = [{"role": m.role, "content": m.content} for m in request.messages or ()]
        if dialect == "vllm":
            body = {"model": self._model, "messages": messages, "add_generation_prompt": True}
            return _length(await _post(client, "/tokenize", body))
        if dialect == "llama-server":
            rendered = await _post(client, "/apply-template", {"messages": messages})
            prompt = rendered.get("prompt") if rendered else None
            if isinstance(prompt, str):
                return await self._count(client, dialect, prompt, special=True)
        # llama-cpp-python renders its chat template where no endpoint can reach it.
        return None

    async def text(self, client: httpx.AsyncClient, text: str) -> int | None:
        """The tokens of generated text, without the BOS a prompt would get."""
        if not text:
            return 0
        dialect = await self._find(client)
        if dialect is None:
            return None
        return await self._count(client, dialect, text, special=False)

    async def _count(
        self, client: httpx.AsyncClient, dialect: Dialect, text: str, *, special: bool
    ) -> int | None:
        if dialect == "vllm":
            body = {"model": self._model, "prompt": text, "add_special_tokens": special}
            return _length(await _post(client, "/tokenize", body))
        if dialect == "llama-server":
            body = {"content": text, "add_special": special}
            return _length(await _post(client, "/tokenize", body))
        count = await self._extras_tokenize(client, text)
        if count is None or special:
            return count
        # llama-cpp-python always adds BOS (when the model has one): tokenizing ""
        # yields exactly that, so it is subtracted from generated text.
        if self._bos is None:
            self._bos = await self._extras_tokenize(client, "")
        return None if self._bos is None else count - self._bos

    async def _extras_tokenize(self, client: httpx.AsyncClient, text: str) -> int | None:
        return _length(
            await _post(client, "/extras/tokenize", {"model": self._model, "input": text})
        )


async def _post(
    client: httpx.AsyncClient, path: str, body: dict[str, Any]
) -> dict[str, Any] | None:
    try:
        response = await client.post(path, content=msgspec.json.encode(body), headers=JSON_HEADERS)
    except httpx.HTTPError as exc:
        # Counting is best effort: the answer is already complete.
        log.warning("tokenize request %s failed: %s", path, exc)
        return None
    return _json(response)


def _json(response: httpx.Response) -> dict[str, Any] | None:
    if response.status_code != 200:
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _length(body: dict[str, Any] | None) -> int | None:
    if body is None:
        return None
    count = body.get("count")
    if isinstance(count, int):
        return count
    tokens = body.get("tokens")
    return len(tokens) if isinstance(tokens, list) else None


async def settle_usage(
    client: httpx.AsyncClient,
    counter: TokenCounter,
    request: GenerateRequest,
    *,
    text: str,
    deltas: int,
    finish_reason: str,
    limit: int | None,
) -> Usage:
    """Usage for a stream that carried none: measured where possible, else estimated."""
    estimated = False
    prompt = await counter.prompt(client, request)
    if prompt is None:
        estimated = True
        prompt = _estimate_prompt(request)
    completion = await counter.text(client, text)
    if finish_reason == "length" and limit is not None and _hit_limit(completion, limit):
        # The upstream stopped at our limit, so it sampled exactly that many tokens;
        # re-tokenizing the text can merge or split a few of them differently.
        completion = limit
    elif completion is None:
        estimated = True
        # Every streamed piece holds at least one token.
        completion = max(deltas, estimate_tokens(text))
    return Usage(prompt_tokens=prompt, completion_tokens=completion, estimated=estimated)


def _hit_limit(counted: int | None, limit: int) -> bool:
    if counted is None or counted >= limit:
        return True
    # Far below the limit, "length" meant another ceiling (the context window).
    return limit - counted <= max(2, limit // 10)


def _estimate_prompt(request: GenerateRequest) -> int:
    if request.prompt is not None:
        return max(1, estimate_tokens(request.prompt))
    messages = request.messages or ()
    return _REPLY_PRIMING + sum(
        _PER_MESSAGE + estimate_tokens(m.role) + estimate_tokens(m.content) for m in messages
    )
