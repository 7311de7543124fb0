"""Reading tool calls and thinking out of streamed text, for each template family.

The outputs are those the families' models write (Qwen 2.5 and 3, Hermes, Llama
3.1 and 3.2, Mistral Nemo and Small 3.2), fed in every possible split: one
character at a time, two, and so on, so that tags and JSON fall across pieces at
every point. Each split must give the same calls, text and thinking.
Then each family's grammar is run on the real SmolLM2 (``tool_format`` set by
hand), so the calls it forces are read back by the same family's parser.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from engines import (
    ChatMessage,
    EngineSpec,
    Finish,
    FunctionTool,
    GenerateRequest,
    NamedTool,
    ReasoningTags,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
    build_engine,
)
from engines.llamacpp import LlamaCppOptions
from engines.llamacpp._shape import OutputShaper
from engines.llamacpp._toolparse import FORMATS, CallParser, ToolFormat
from engines.llamacpp._tools import detect_format, template_messages
from gateway.answer import Answer

PARIS = '{"location": "Paris, France", "unit": "celsius"}'

RECORDED: list[tuple[ToolFormat, str, str, list[tuple[str, str]]]] = [
    (
        "hermes",
        f'<tool_call>\n{{"name": "get_weather", "arguments": {PARIS}}}\n</tool_call>',
        "",
        [("get_weather", PARIS)],
    ),
    (
        "hermes",
        'I will look both up.\n<tool_call>\n{"name": "get_weather", "arguments": '
        f'{PARIS}}}\n</tool_call>\n<tool_call>\n{{"name": "get_time", "arguments": '
        '{"zone": "Europe/Paris"}}\n</tool_call>',
        "I will look both up.",
        [("get_weather", PARIS), ("get_time", '{"zone": "Europe/Paris"}')],
    ),
    (
        "hermes",
        'Braces in strings: <tool_call>{"name": "f", "arguments": {"s": "a}\\"{b", '
        '"n": [1, {"k": null}]}}</tool_call>',
        "Braces in strings:",
        [("f", '{"s": "a}\\"{b", "n": [1, {"k": null}]}')],
    ),
    ("hermes", "A plain answer that mentions <tool_ but calls nothing.", None, []),
    ("hermes", "<tool_call>not JSON</tool_call> and text", None, []),
    (
        "llama3",
        f'{{"name": "get_weather", "parameters": {PARIS}}}',
        "",
        [("get_weather", PARIS)],
    ),
    (
        "llama3",
        f'<|python_tag|>{{"type": "function", "name": "get_weather", "parameters": {PARIS}}}',
        "",
        [("get_weather", PARIS)],
    ),
    ("llama3", '{"answer": 42} is a JSON answer, not a call', None, []),
    (
        "mistral",
        f'[TOOL_CALLS][{{"name": "get_weather", "arguments": {PARIS}, "id": "a1b2c3d4e"}}, '
        '{"name": "get_time", "arguments": {}}]',
        "",
        [("get_weather", PARIS), ("get_time", "{}")],
    ),
    ("mistral", f"[TOOL_CALLS]get_weather[ARGS]{PARIS}", "", [("get_weather", PARIS)]),
    (
        "generic",
        f'{{"tool_calls": [{{"name": "get_weather", "arguments": {PARIS}}}]}}',
        "",
        [("get_weather", PARIS)],
    ),
    (
        "generic",
        '{"tool_calls": [{"arguments": {"zone": "UTC"}, "name": "get_time"}]}',
        "",
        [("get_time", '{"zone": "UTC"}')],
    ),
    (
        "generic",
        '{"tool_calls": [{"name": "f", "arguments": "{\\"a\\": 1}"}]}',
        "",
        [("f", '{"a": 1}')],
    ),
    ("generic", 'Sure: {"tool_calls": []}', None, []),
    # Arguments as a JSON string whose escapes are not JSON: as written, no crash.
    (
        "hermes",
        '<tool_call>{"name": "f", "arguments": "{\\"path\\": \\"C:\\Users\\"}"}</tool_call>',
        "",
        [("f", '"{\\"path\\": \\"C:\\Users\\"}"')],
    ),
    # A JSON answer that names no offered function is the answer, not a call.
    ("llama3", '{"name": "Bob", "age": 3}', None, []),
    ("llama3", '{"name": "get_weather"}', None, []),
    (
        "llama3",
        '{"type": "function", "function": {"name": "get_weather", "parameters": {"x": 1}}}',
        "",
        [("get_weather", '{"x": 1}')],
    ),
    # Inside the tags it is a call, with no arguments.
    ("hermes", '<tool_call>{"name": "get_time"}</tool_call>', "", [("get_time", "{}")]),
    # Malformed after the arguments: the call stands, the rest of it is dropped.
    (
        "hermes",
        '<tool_call>{"name": "f", "arguments": {"a": [1, 2}} oops</tool_call> Done.',
        "Done.",
        [("f", '{"a": [1, 2}}')],
    ),
    (
        "generic",
        '{"tool_calls": [{"name": "get_time", "arguments": {}}], "x": 1}',
        "",
        [("get_time", "{}")],
    ),
    # A marker that opens no call keeps the whitespace around it.
    ("hermes", "Answer: use <tool_call> tags", None, []),
    ("mistral", "text [TOOL_CALLS] is a token", None, []),
]


def _pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


OFFERED = frozenset({"get_weather", "get_time", "f", "g"})


def _parse(fmt: ToolFormat, pieces: list[str], *, single: bool = False) -> Answer:
    parser = CallParser(fmt, single=single, names=OFFERED, new_id=lambda: "call_x")
    answer = Answer()
    for piece in pieces:
        for item in parser.feed(TextDelta(text=piece)):
            answer.add(item)
    for item in parser.flush():
        answer.add(item)
    return answer


@pytest.mark.parametrize(("fmt", "output", "text", "calls"), RECORDED)
def test_every_split_reads_the_same_calls(
    fmt: ToolFormat, output: str, text: str | None, calls: list[tuple[str, str]]
) -> None:
    for size in range(1, len(output) + 1):
        answer = _parse(fmt, _pieces(output, size))
        got = [(c.name, c.arguments) for c in answer.tool_calls]
        assert got == calls, f"split into pieces of {size}"
        # No calls: the output is the text, every character of it.
        assert answer.text == (output if text is None else text), f"pieces of {size}"


def test_arguments_stream_as_they_are_generated() -> None:
    output = f'<tool_call>\n{{"name": "get_weather", "arguments": {PARIS}}}\n</tool_call>'
    parser = CallParser("hermes", new_id=lambda: "call_x")
    deltas: list[ToolCallDelta] = []
    for piece in _pieces(output, 4):
        deltas += [d for d in parser.feed(TextDelta(text=piece)) if isinstance(d, ToolCallDelta)]
    first, *rest = deltas
    assert (first.id, first.name, first.arguments) == ("call_x", "get_weather", "")
    assert len(rest) > 5
    assert all(d.id is None and d.name is None and d.arguments for d in rest)
    assert "".join(d.arguments for d in rest) == PARIS


def test_single_drops_later_calls_even_unfinished() -> None:
    output = (
        '<tool_call>{"name": "f", "arguments": {}}</tool_call> and <tool_call>{"name": "g", "argu'
    )
    for size in (1, 5, len(output)):
        answer = _parse("hermes", _pieces(output, size), single=True)
        assert [(c.name, c.arguments) for c in answer.tool_calls] == [("f", "{}")]
        assert answer.text == "and"


def test_long_arguments_are_followed_piece_by_piece() -> None:
    """An agent writing a file: 200 kB of arguments must not be scanned again per piece."""
    import time

    body = json.dumps({"path": "a.txt", "content": "x = [1, {'a': \"}\"}]\n" * 10_000})
    output = f'<tool_call>{{"name": "f", "arguments": {body}}}</tool_call>'
    started = time.process_time()
    answer = _parse("hermes", _pieces(output, 4))
    assert [(c.name, c.arguments) for c in answer.tool_calls] == [("f", body)]
    # A bound no linear pass comes near; the rescanning one took minutes.
    assert time.process_time() - started < 30


def test_mistral_ids_are_nine_letters_and_digits() -> None:
    parser = CallParser("mistral")
    items = parser.feed(TextDelta(text='[TOOL_CALLS][{"name": "f", "arguments": {}}]'))
    (first,) = [d for d in items if isinstance(d, ToolCallDelta) and d.id]
    assert first.id is not None
    assert len(first.id) == 9
    assert first.id.isalnum()


def test_parallel_false_keeps_only_the_first_call() -> None:
    one = '<tool_call>{{"name": "{}", "arguments": {{}}}}</tool_call>'
    output = one.format("a") + one.format("b")
    parser = CallParser("hermes", single=True)
    items = parser.feed(TextDelta(text=output)) + parser.flush()
    names = [d.name for d in items if isinstance(d, ToolCallDelta) and d.name]
    assert names == ["a"]


QWEN3 = (
    "<think>\nThe user wants the weather. I should call get_weather.\n</think>\n\n"
    f'<tool_call>\n{{"name": "get_weather", "arguments": {PARIS}}}\n</tool_call>'
)


@pytest.mark.parametrize("opened", [False, True])
def test_thinking_then_a_call(opened: bool) -> None:
    """Qwen 3: thinking, then a call; with ``opened`` the prompt held the start tag."""
    output = QWEN3.removeprefix("<think>") if opened else QWEN3
    request = GenerateRequest(
        messages=(ChatMessage(role="user", content="weather?"),),
        tools=(FunctionTool(name="get_weather"),),
    )
    for size in range(1, len(output) + 1):
        shaper = OutputShaper(request, "hermes", opened=opened)
        answer = Answer()
        for piece in _pieces(output, size):
            for item in shaper.feed(TextDelta(text=piece)):
                answer.add(item)
        done = Finish(finish_reason="stop", usage=Usage(prompt_tokens=1, completion_tokens=9))
        for item in shaper.feed(done):
            answer.add(item)
        assert answer.reasoning == "The user wants the weather. I should call get_weather."
        assert answer.text == ""
        assert [(c.name, c.arguments) for c in answer.tool_calls] == [("get_weather", PARIS)]
        assert answer.finish is not None
        assert answer.finish.finish_reason == "tool_calls"
        assert answer.finish.usage.completion_tokens == 9


def test_no_reasoning_setting_keeps_the_tags_in_the_text() -> None:
    request = GenerateRequest(messages=(ChatMessage(role="user", content="hi"),), reasoning=None)
    shaper = OutputShaper(request, "generic", opened=False)
    items = shaper.feed(TextDelta(text="<think>x</think>y"))
    assert [i.text for i in items if isinstance(i, TextDelta)] == ["<think>x</think>y"]


def test_other_tags_can_be_set() -> None:
    request = GenerateRequest(
        messages=(ChatMessage(role="user", content="hi"),),
        reasoning=ReasoningTags(start="<reasoning>", end="</reasoning>"),
    )
    shaper = OutputShaper(request, "generic", opened=False)
    answer = Answer()
    for piece in _pieces("<reasoning>why</reasoning>Because.", 3):
        for item in shaper.feed(TextDelta(text=piece)):
            answer.add(item)
    assert (answer.reasoning, answer.text) == ("why", "Because.")


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{% for m in messages %}{{ m.content }}{% endfor %}", ("generic", False)),
        ("{% if tools %}<tool_call>{{ tools | tojson }}</tool_call>{% endif %}", ("hermes", True)),
        ("{% if tools %}[AVAILABLE_TOOLS]{{ tools }}[TOOL_CALLS]{% endif %}", ("mistral", True)),
        ("<|start_header_id|>{% if tools %}{{ tools }}<|python_tag|>{% endif %}", ("llama3", True)),
        ("{% if tools %}{{ tools }}{% endif %}", ("generic", False)),
        ("{% if tools %}<tool_call>\n<function={{ name }}>{% endif %}", ("generic", False)),
    ],
)
def test_the_family_is_told_from_the_template(
    template: str, expected: tuple[ToolFormat, bool]
) -> None:
    assert detect_format(template) == expected


WEATHER = FunctionTool(
    name="get_weather",
    description="The current weather in a city",
    parameters={
        "type": "object",
        "properties": {
            "location": {"type": "string", "maxLength": 30},
            "unit": {"enum": ["celsius", "fahrenheit"]},
        },
        "required": ["location", "unit"],
        "additionalProperties": False,
    },
)
TIME = FunctionTool(
    name="get_time",
    parameters={
        "type": "object",
        "properties": {"zone": {"type": "string", "maxLength": 30}},
        "required": ["zone"],
    },
)


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_familys_grammar_forces_calls_its_parser_reads(model_path: Path, fmt: str) -> None:
    engine = build_engine(
        "llamacpp",
        EngineSpec(
            name="smol",
            path=str(model_path),
            options=LlamaCppOptions(n_ctx=1024, parallel=2, tool_format=fmt),  # type: ignore[arg-type]
        ),
    )
    ask = (ChatMessage(role="user", content="What is the weather in Paris?"),)

    async def both() -> list[list[Any]]:
        await engine.start()
        try:
            return [
                [
                    item
                    async for item in engine.generate(
                        GenerateRequest(
                            messages=ask,
                            temperature=0,
                            max_tokens=120,
                            tools=(WEATHER, TIME),
                            tool_choice=choice,
                        )
                    )
                ]
                for choice in ("required", NamedTool(name="get_time"))
            ]
        finally:
            await engine.close()

    for items, names in zip(
        asyncio.run(both()), ({"get_weather", "get_time"}, {"get_time"}), strict=True
    ):
        answer = Answer()
        for item in items:
            answer.add(item)
        assert answer.finish is not None
        assert answer.finish.finish_reason == "tool_calls", answer.text
        assert answer.tool_calls
        for call in answer.tool_calls:
            assert call.name in names
            arguments = json.loads(call.arguments)
            if call.name == "get_weather":
                assert set(arguments) == {"location", "unit"}
                assert arguments["unit"] in ("celsius", "fahrenheit")
            else:
                assert "zone" in arguments
        assert answer.text == ""


HISTORY = GenerateRequest(
    messages=(
        ChatMessage(role="user", content="Weather and time in Paris?"),
        ChatMessage(
            role="assistant",
            content="",
            tool_calls=(
                ToolCall(id="call_abc", name="get_weather", arguments='{"location": "Paris"}'),
                ToolCall(id="call_def", name="get_time", arguments=""),
            ),
        ),
        ChatMessage(role="tool", content="Sunny", tool_call_id="call_abc"),
        ChatMessage(role="tool", content="Noon", tool_call_id="call_def"),
    ),
    tools=(WEATHER, TIME),
)


def test_a_native_template_gets_calls_as_objects_and_results_named() -> None:
    messages, tools = template_messages(HISTORY, "hermes", native=True)
    assert tools is not None
    assert [t["function"]["name"] for t in tools] == ["get_weather", "get_time"]
    calls = messages[1]["tool_calls"]
    assert calls[0]["function"]["arguments"] == {"location": "Paris"}
    assert calls[1]["function"]["arguments"] == {}
    assert (messages[2]["tool_call_id"], messages[2]["name"]) == ("call_abc", "get_weather")


def test_mistral_templates_get_nine_character_ids_the_same_every_turn() -> None:
    first, _ = template_messages(HISTORY, "mistral", native=True)
    again, _ = template_messages(HISTORY, "mistral", native=True)
    ids = [c["id"] for c in first[1]["tool_calls"]]
    assert all(len(i) == 9 and i.isalnum() for i in ids)
    assert ids == [c["id"] for c in again[1]["tool_calls"]]
    assert [first[2]["tool_call_id"], first[3]["tool_call_id"]] == ids


def test_a_template_without_tools_gets_a_prompt_and_plain_turns() -> None:
    messages, tools = template_messages(HISTORY, "generic", native=False)
    assert tools is None
    assert messages[0]["role"] == "system"
    assert "get_weather" in messages[0]["content"]
    assert json.loads(messages[2]["content"]) == {
        "tool_calls": [
            {"name": "get_weather", "arguments": {"location": "Paris"}},
            {"name": "get_time", "arguments": {}},
        ]
    }
    # Both results in one user turn, for templates that want turns to alternate.
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert "Result of get_weather:\nSunny" in messages[3]["content"]
    assert "Result of get_time:\nNoon" in messages[3]["content"]
    # A template that takes no system turn: the prompt goes into the first user turn.
    no_system, _ = template_messages(HISTORY, "generic", native=False, system=False)
    assert no_system[0]["role"] == "user"
    assert no_system[0]["content"].startswith("Weather and time in Paris?")
    assert "get_weather" in no_system[0]["content"]
