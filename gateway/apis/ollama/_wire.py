"""Request bodies of the Ollama endpoints, and what they mean for a ``GenerateRequest``.

As on the OpenAI side, unknown fields are ignored: Ollama clients send options that
only make sense to Ollama's own runner (``num_ctx``, ``num_gpu``, ``mirostat``...),
and refusing them would break every client that sets one.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

import msgspec

from engines import ChatMessage, FunctionTool, GenerateRequest, ReasoningEffort, ResponseFormat

from ...errors import APIError
from ...sampling import Penalty, Probability, RepetitionPenalty, Temperature, TopK
from ._tools import CallIn, ToolIn, ToolPairing, contract_calls, contract_tools

__all__ = [
    "ChatBody",
    "EmbedBody",
    "EmbeddingsBody",
    "GenerateBody",
    "Options",
    "ShowBody",
    "unload_requested",
]

ModelName = Annotated[str, msgspec.Meta(min_length=1)]
KeepAlive = float | str | None
# Ollama's bounds on alternatives per token.
TopLogprobs = Annotated[int, msgspec.Meta(ge=0, le=20)]

# Ollama's `think` levels, as reasoning_effort; it reads "max" as "high" too.
_LEVELS: dict[str, ReasoningEffort] = {
    "low": "low",
    "medium": "medium",
    "high": "high",
    "max": "high",
}


class Options(msgspec.Struct, kw_only=True):
    """The Modelfile parameters Roundhouse can honour; the rest are ignored."""

    temperature: Temperature | None = None
    top_p: Probability | None = None
    top_k: TopK | None = None
    min_p: Probability | None = None
    seed: int | None = None
    stop: str | list[str] | None = None
    # -1 (until the end) and -2 (fill the context) are Ollama's "no limit" values.
    num_predict: int | None = None
    repeat_penalty: RepetitionPenalty | None = None
    frequency_penalty: Penalty | None = None
    presence_penalty: Penalty | None = None


class Message(msgspec.Struct, kw_only=True):
    role: Literal["system", "user", "assistant", "tool"]
    content: str | None = None
    images: list[str] | None = None
    # An assistant turn's thinking and calls; a tool turn's answer to one of them.
    thinking: str | None = None
    tool_calls: list[CallIn] | None = None
    tool_name: str | None = None
    tool_call_id: str | None = None


class _Generation(msgspec.Struct, kw_only=True):
    model: ModelName
    # Absent or null: streamed, Ollama's default.
    stream: bool | None = None
    format: str | dict[str, Any] | None = None
    options: Options | None = None
    keep_alive: KeepAlive = None
    think: bool | str | None = None
    logprobs: bool | None = None
    top_logprobs: TopLogprobs | None = None

    def generate_request(
        self,
        *,
        messages: tuple[ChatMessage, ...] | None = None,
        prompt: str | None = None,
        tools: tuple[FunctionTool, ...] = (),
    ) -> GenerateRequest:
        opts = self.options or Options()
        stop = opts.stop
        return GenerateRequest(
            messages=messages,
            prompt=prompt,
            max_tokens=opts.num_predict if opts.num_predict and opts.num_predict > 0 else None,
            temperature=opts.temperature,
            top_p=opts.top_p,
            top_k=opts.top_k,
            min_p=opts.min_p,
            stop=() if stop is None else (stop,) if isinstance(stop, str) else tuple(stop),
            seed=opts.seed,
            frequency_penalty=opts.frequency_penalty,
            presence_penalty=opts.presence_penalty,
            repetition_penalty=opts.repeat_penalty,
            response_format=self._response_format(),
            tools=tools,
            reasoning_effort=self._reasoning_effort(),
            # Ollama's top_logprobs applies only with logprobs.
            logprobs=(self.top_logprobs or 0) if self.logprobs else None,
        )

    def _response_format(self) -> ResponseFormat | None:
        fmt = self.format
        if fmt is None or fmt == "":
            return None
        if fmt == "json":
            return ResponseFormat(type="json_object")
        if isinstance(fmt, dict):
            return ResponseFormat(type="json_schema", json_schema=fmt)
        raise APIError(400, f'format must be "json" or a JSON schema, not {fmt!r}', param="format")

    @property
    def streamed(self) -> bool:
        return self.stream is not False

    def _reasoning_effort(self) -> ReasoningEffort | None:
        # true, as absent, leaves it to the model: Ollama's default for a thinking
        # model is to think. Whether it can think is not known here, so true never
        # answers Ollama's 400 "does not support thinking": such a model just has
        # no thinking to show.
        think = self.think
        if think is None or think is True:
            return None
        if think is False:
            return "none"
        level = _LEVELS.get(think)
        if level is None:
            raise APIError(
                400,
                f'invalid think value: {think!r} (must be "high", "medium", "low", "max", '
                "true, or false)",
                param="think",
            )
        return level

    @property
    def shows_thinking(self) -> bool:
        """Whether the answer carries its thinking: unless ``think`` is false, as in Ollama."""
        return self.think is not False


class ChatBody(_Generation, kw_only=True):
    # Clients written in other languages send null where Python ones leave a key out.
    messages: list[Message] | None = None
    tools: list[ToolIn] | None = None

    def contract_tools(self) -> tuple[FunctionTool, ...]:
        return contract_tools(self.tools)

    def chat_messages(self) -> tuple[ChatMessage, ...]:
        pairing = ToolPairing()
        messages: list[ChatMessage] = []
        for i, msg in enumerate(self.messages or []):
            if msg.images:
                raise _no_images(f"messages[{i}].images")
            assistant = msg.role == "assistant"
            calls = contract_calls(i, msg.tool_calls) if assistant else ()
            pairing.called(calls)
            answers = (
                pairing.answered(msg.tool_call_id, msg.tool_name) if msg.role == "tool" else None
            )
            messages.append(
                ChatMessage(
                    role=msg.role,
                    content=msg.content or "",
                    tool_calls=calls,
                    tool_call_id=answers,
                    reasoning=(msg.thinking or None) if assistant else None,
                )
            )
        return tuple(messages)


class GenerateBody(_Generation, kw_only=True):
    prompt: str | None = None
    system: str | None = None
    raw: bool = False
    suffix: str | None = None
    template: str | None = None
    context: list[int] | None = None
    images: list[str] | None = None

    def check(self) -> None:
        """Refuse what would silently change the answer if it were ignored."""
        if self.images:
            raise _no_images("images")
        for field in ("suffix", "template"):
            if getattr(self, field):
                raise APIError(
                    400,
                    f"{field} is not supported: the model's own chat template is always used",
                    param=field,
                )
        if self.context:
            raise APIError(
                400,
                "context is not supported (Roundhouse returns none): send the conversation "
                "to /api/chat instead",
                param="context",
            )
        if self.raw and self.system:
            raise APIError(400, "raw mode does not support a system prompt", param="system")


class ShowBody(msgspec.Struct, kw_only=True):
    model: str = ""
    # The field's name before Ollama 0.1.40; older clients still send it.
    name: str = ""
    verbose: bool = False


class EmbedBody(msgspec.Struct, kw_only=True):
    model: ModelName
    input: str | list[str] | None = None
    truncate: bool = True
    dimensions: int | None = None
    keep_alive: KeepAlive = None


class EmbeddingsBody(msgspec.Struct, kw_only=True):
    model: ModelName
    prompt: str | None = None
    keep_alive: KeepAlive = None


def _no_images(param: str) -> APIError:
    return APIError(400, "images are not supported: the models here read text only", param=param)


# Go's time.ParseDuration syntax, which Ollama uses for string keep_alive values.
_DURATION = re.compile(r"[+-]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+")
_NUMBER = re.compile(r"\d+(?:\.\d*)?|\.\d+")


def unload_requested(keep_alive: KeepAlive) -> bool:
    """Whether ``keep_alive`` is zero: Ollama's way to ask for an unload."""
    if keep_alive is None:
        return False
    if isinstance(keep_alive, int | float):
        return keep_alive == 0
    text = keep_alive.strip()
    if text in ("0", "+0", "-0"):
        return True
    if not _DURATION.fullmatch(text):
        raise APIError(
            400,
            f"keep_alive {keep_alive!r} is not a duration (such as 5m, 30s or 0)",
            param="keep_alive",
        )
    return all(float(n) == 0 for n in _NUMBER.findall(text))
