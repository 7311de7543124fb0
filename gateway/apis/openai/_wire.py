"""Request bodies of the OpenAI endpoints, and turning bytes into them.

Unknown fields are accepted and ignored: real clients send ``do_sample``,
``num_beams``, ``extra_query`` and more, and must not be broken by them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal, TypeVar

import msgspec

from engines import (
    ChatMessage,
    FunctionTool,
    GenerateRequest,
    NamedTool,
    ReasoningEffort,
    ResponseFormat,
    ToolCall,
    ToolChoice,
)

from ...errors import APIError
from ...sampling import (
    MinTokens,
    Penalty,
    PositiveInt,
    Probability,
    RepetitionPenalty,
    Temperature,
    TopK,
    min_tokens_fit,
)
from .._common import invalid, stop_list, unsupported

__all__ = [
    "ChatRequest",
    "CompletionRequest",
    "EmbeddingRequest",
    "fill_from_extras",
]


class ContentPart(msgspec.Struct, kw_only=True):
    type: str
    text: str | None = None


class FunctionCallIn(msgspec.Struct, kw_only=True):
    name: str
    arguments: str


class ToolCallIn(msgspec.Struct, kw_only=True):
    id: str
    function: FunctionCallIn
    type: Literal["function"] = "function"


class Message(msgspec.Struct, kw_only=True):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCallIn] | None = None
    tool_call_id: str | None = None
    # llama-server's and LiteLLM's name for an assistant turn's thinking.
    reasoning_content: str | None = None


FunctionName = Annotated[str, msgspec.Meta(pattern=r"^[a-zA-Z0-9_.\-]{1,64}$")]


class FunctionIn(msgspec.Struct, kw_only=True):
    name: FunctionName
    description: str | None = None
    parameters: dict[str, Any] | None = None
    # Arguments always follow the schema when a grammar forces the call; unforced
    # calls of a model are not checked either way (see docs/api.md).
    strict: bool | None = None


class ToolIn(msgspec.Struct, kw_only=True):
    type: Literal["function"]
    function: FunctionIn


class NamedFunction(msgspec.Struct, kw_only=True):
    name: str


class NamedChoice(msgspec.Struct, kw_only=True):
    type: Literal["function"]
    function: NamedFunction


class StreamOptions(msgspec.Struct, kw_only=True):
    include_usage: bool = False


class JSONSchemaSpec(msgspec.Struct, kw_only=True):
    name: str | None = None
    schema: dict[str, Any] | None = None
    strict: bool | None = None


class ResponseFormatIn(msgspec.Struct, kw_only=True):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JSONSchemaSpec | None = None


class _Sampling(msgspec.Struct, kw_only=True):
    model: str
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: PositiveInt | None = None
    temperature: Temperature | None = None
    top_p: Probability | None = None
    top_k: TopK | None = None
    min_p: Probability | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    frequency_penalty: Penalty | None = None
    presence_penalty: Penalty | None = None
    repetition_penalty: RepetitionPenalty | None = None
    n: Annotated[int, msgspec.Meta(ge=1, le=1)] = 1
    response_format: ResponseFormatIn | None = None
    # vLLM's extensions, which benchmarks send: decode past end-of-generation tokens,
    # or not before min_tokens.
    ignore_eos: bool = False
    min_tokens: MinTokens = 0
    # Old LunaTranslator sends the OpenAI SDK's `extra_query` as a body key.
    extra_query: dict[str, Any] | None = None

    def generate_request(
        self,
        *,
        messages: tuple[ChatMessage, ...] | None = None,
        prompt: str | None = None,
        max_tokens: int | None = None,
    ) -> GenerateRequest:
        min_tokens_fit(self.min_tokens, max_tokens)
        return GenerateRequest(
            messages=messages,
            prompt=prompt,
            max_tokens=max_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            top_k=self.top_k,
            min_p=self.min_p,
            stop=stop_list(self.stop),
            seed=self.seed,
            frequency_penalty=self.frequency_penalty,
            presence_penalty=self.presence_penalty,
            repetition_penalty=self.repetition_penalty,
            response_format=response_format(self.response_format),
            ignore_eos=self.ignore_eos,
            min_tokens=self.min_tokens,
        )

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


TopLogprobs = Annotated[int, msgspec.Meta(ge=0, le=20)]


class ChatRequest(_Sampling, kw_only=True):
    messages: Annotated[list[Message], msgspec.Meta(min_length=1)]
    max_completion_tokens: PositiveInt | None = None
    tools: list[ToolIn] | None = None
    tool_choice: Literal["auto", "none", "required"] | NamedChoice | None = None
    parallel_tool_calls: bool | None = None
    logprobs: bool | None = None
    top_logprobs: TopLogprobs | None = None
    reasoning_effort: ReasoningEffort | None = None
    # The pre-tools names for function calling, and fields that would change the
    # answer but have no meaning here: refused by name rather than ignored.
    functions: Any = None
    function_call: Any = None
    logit_bias: dict[str, Any] | None = None
    audio: Any = None
    modalities: list[str] | None = None
    web_search_options: Any = None

    def chat_messages(self) -> tuple[ChatMessage, ...]:
        return tuple(_chat_message(i, msg) for i, msg in enumerate(self.messages))

    def agent_fields(self) -> dict[str, Any]:
        """The tool, reasoning and logprob fields of the contract, checked."""
        self._refuse_unsupported()
        tools = tuple(
            FunctionTool(
                name=t.function.name,
                description=t.function.description,
                parameters=t.function.parameters,
            )
            for t in self.tools or ()
        )
        choice: ToolChoice | None = None
        if isinstance(self.tool_choice, NamedChoice):
            name = self.tool_choice.function.name
            if name not in {t.name for t in tools}:
                raise invalid(
                    f"tool_choice names the function {name!r}, which is not among the tools",
                    "tool_choice",
                )
            choice = NamedTool(name=name)
        elif self.tool_choice is not None:
            choice = self.tool_choice
        if not tools and choice not in (None, "auto", "none"):
            raise invalid("tool_choice needs tools to choose from", "tool_choice")
        if self.top_logprobs is not None and not self.logprobs:
            raise invalid("top_logprobs needs logprobs: true", "top_logprobs")
        return {
            "tools": tools,
            "tool_choice": choice,
            "parallel_tool_calls": self.parallel_tool_calls is not False,
            "reasoning_effort": self.reasoning_effort,
            "logprobs": (self.top_logprobs or 0) if self.logprobs else None,
        }

    def _refuse_unsupported(self) -> None:
        if self.functions is not None or self.function_call is not None:
            field = "functions" if self.functions is not None else "function_call"
            raise unsupported(f"{field} is the deprecated form of tools; send tools", field)
        if self.logit_bias:
            raise unsupported("logit_bias is not supported", "logit_bias")
        if self.audio is not None or (self.modalities and set(self.modalities) != {"text"}):
            field = "audio" if self.audio is not None else "modalities"
            raise unsupported("only text output is supported", field)
        if self.web_search_options is not None:
            raise unsupported("web search is not supported", "web_search_options")


def _chat_message(i: int, msg: Message) -> ChatMessage:
    content = msg.content
    if isinstance(content, list):
        texts = []
        for k, part in enumerate(content):
            if part.type != "text" or part.text is None:
                raise APIError(
                    400,
                    f"messages[{i}].content[{k}]: content part type {part.type!r} is not "
                    "supported; this model accepts text only",
                    param=f"messages[{i}].content[{k}]",
                    code="unsupported",
                )
            texts.append(part.text)
        content = "".join(texts)
    if msg.role == "tool" and not msg.tool_call_id:
        raise invalid(
            f"messages[{i}]: a tool message needs the tool_call_id it answers",
            f"messages[{i}].tool_call_id",
        )
    if msg.tool_calls and msg.role != "assistant":
        raise invalid(
            f"messages[{i}]: only assistant messages carry tool_calls", f"messages[{i}].tool_calls"
        )
    calls = tuple(
        ToolCall(id=c.id, name=c.function.name, arguments=c.function.arguments)
        for c in msg.tool_calls or ()
    )
    return ChatMessage(
        role=msg.role,
        content=content or "",
        name=msg.name,
        tool_calls=calls,
        tool_call_id=msg.tool_call_id,
        reasoning=msg.reasoning_content,
    )


class CompletionRequest(_Sampling, kw_only=True):
    prompt: str | list[str]
    echo: bool = False
    # The legacy API's alternatives per token (at most 5).
    logprobs: Annotated[int, msgspec.Meta(ge=0, le=5)] | None = None
    best_of: Annotated[int, msgspec.Meta(ge=1, le=1)] | None = None
    suffix: str | None = None
    logit_bias: dict[str, Any] | None = None

    def refuse_unsupported(self) -> None:
        if self.suffix:
            raise unsupported("suffix (fill in the middle) is not supported", "suffix")
        if self.logit_bias:
            raise unsupported("logit_bias is not supported", "logit_bias")
        if self.echo and self.logprobs is not None:
            raise unsupported("logprobs of an echoed prompt are not supported", "logprobs")

    def prompt_text(self) -> str:
        if isinstance(self.prompt, str):
            return self.prompt
        if len(self.prompt) != 1:
            raise APIError(
                400,
                "only one prompt per request is supported; send a string or a list of one",
                param="prompt",
                code="unsupported",
            )
        return self.prompt[0]


class EmbeddingRequest(msgspec.Struct, kw_only=True):
    model: str
    input: str | list[str]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = None


# Sampling fields that translation clients tuck into `extra_query` (a body key, or URL
# query parameters through the OpenAI SDK) and that mean something here.
_EXTRAS: dict[str, Any] = {
    "repetition_penalty": RepetitionPenalty,
    "top_k": TopK,
    "min_p": Probability,
    "seed": int,
}

S = TypeVar("S", bound="_Sampling")


def fill_from_extras(body: S, query: Mapping[str, str]) -> S:
    """Fill what the body left out from its ``extra_query`` key, then from the URL query.

    The body's own fields win; strings such as ``"1.1"`` from a query string are
    converted, and a value that is not a valid one is a 400 naming where it came from.
    """
    updates: dict[str, Any] = {}
    for name, type_ in _EXTRAS.items():
        if getattr(body, name) is not None:
            continue
        for source, where in ((body.extra_query or {}, f"extra_query.{name}"), (query, name)):
            if name not in source:
                continue
            try:
                updates[name] = msgspec.convert(source[name], type_, strict=False)
            except msgspec.ValidationError as exc:
                message = f"{where}: {exc}".replace("`", "")
                raise APIError(400, message, param=where, code="invalid_value") from None
            break
    return msgspec.structs.replace(body, **updates) if updates else body


def response_format(fmt: ResponseFormatIn | None) -> ResponseFormat | None:
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_schema":
        if fmt.json_schema is None or fmt.json_schema.schema is None:
            raise APIError(
                400,
                "response_format json_schema needs json_schema.schema",
                param="response_format.json_schema",
                code="invalid_value",
            )
        return ResponseFormat(type="json_schema", json_schema=fmt.json_schema.schema)
    return ResponseFormat(type="json_object")
