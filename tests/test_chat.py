"""Generation through the real server and the official openai client."""

from __future__ import annotations

import json

import openai
import pytest

from .checks import counts
from .prompts import PARIS, PARIS_COMPLETION
from .server import Server


def test_greedy_chat_answers_paris(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="smollm2", messages=PARIS, temperature=0)  # type: ignore[arg-type]
    choice = reply.choices[0]
    assert "Paris" in (choice.message.content or "")
    assert choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    assert reply.model == "smollm2"
    assert reply.usage is not None
    assert reply.usage.prompt_tokens > 0
    assert reply.usage.completion_tokens > 0
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_alias_reaches_the_model(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="smol", messages=PARIS, temperature=0, max_tokens=3
    )  # type: ignore[arg-type]
    assert reply.model == "smollm2"


def test_stream_with_usage_matches_the_non_streamed_answer(client: openai.OpenAI) -> None:
    plain = client.chat.completions.create(
        model="smollm2", messages=PARIS, temperature=0, max_tokens=40
    )  # type: ignore[arg-type]
    stream = client.chat.completions.create(
        model="smollm2",
        messages=PARIS,  # type: ignore[arg-type]
        temperature=0,
        max_tokens=40,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finishes = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    usage_chunks = [c for c in chunks if c.usage is not None]

    assert text == plain.choices[0].message.content
    assert finishes == [plain.choices[0].finish_reason]
    assert len(usage_chunks) == 1
    last = chunks[-1]
    assert last.choices == []
    assert counts(last.usage) == counts(plain.usage)
    assert chunks[0].choices[0].delta.role == "assistant"
    # Every content chunk carries at least one token's text.
    content_chunks = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert 0 < len(content_chunks) <= last.usage.completion_tokens


def test_length_finish_is_exact(client: openai.OpenAI) -> None:
    story = [{"role": "user", "content": "Write a very long story about a dragon."}]
    for field in ("max_tokens", "max_completion_tokens"):
        reply = client.chat.completions.create(
            model="smollm2",
            messages=story,  # type: ignore[arg-type]
            temperature=0,
            **{field: 7},  # type: ignore[arg-type]
        )
        assert reply.choices[0].finish_reason == "length"
        assert reply.usage is not None
        assert reply.usage.completion_tokens == 7


def test_stream_without_usage_sends_no_usage(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model="smollm2",
            messages=PARIS,
            temperature=0,
            max_tokens=5,
            stream=True,  # type: ignore[arg-type]
        )
    )
    assert all(c.usage is None for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "length"


def test_stop_sequence_cuts_the_output(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="smollm2",
        messages=PARIS,
        temperature=0,
        stop=["Paris"],  # type: ignore[arg-type]
    )
    content = reply.choices[0].message.content or ""
    assert "Paris" not in content
    assert content.startswith("The capital of France is")
    assert reply.choices[0].finish_reason == "stop"


def test_seed_makes_sampling_repeatable(client: openai.OpenAI) -> None:
    def sample() -> str | None:
        return (
            client.chat.completions.create(
                model="smollm2",
                messages=PARIS,
                temperature=1.0,
                seed=1234,
                max_tokens=20,  # type: ignore[arg-type]
            )
            .choices[0]
            .message.content
        )

    assert sample() == sample()


def test_json_object_response_format(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="smollm2",
        messages=[
            {"role": "system", "content": "You are a helpful assistant. Reply in JSON."},
            {
                "role": "user",
                "content": "What is the capital of France? "
                'Reply with a JSON object with a key "capital".',
            },
        ],
        temperature=0,
        max_tokens=100,
        response_format={"type": "json_object"},
    )
    # Whether this small model closes its object within the limit depends on the build;
    # what the grammar guarantees does not: an object that parses, or an exact cut.
    text = reply.choices[0].message.content or ""
    assert text.startswith("{")
    assert reply.usage is not None
    if reply.choices[0].finish_reason == "stop":
        assert isinstance(json.loads(text), dict)
    else:
        assert reply.choices[0].finish_reason == "length"
        assert reply.usage.completion_tokens == 100


def test_json_schema_response_format(client: openai.OpenAI) -> None:
    schema = {
        "type": "object",
        "properties": {
            "city": {"type": "string", "maxLength": 20},
            "country": {"type": "string", "maxLength": 20},
        },
        "required": ["city", "country"],
        "additionalProperties": False,
    }
    reply = client.chat.completions.create(
        model="smollm2",
        messages=PARIS,  # type: ignore[arg-type]
        temperature=0,
        max_tokens=80,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "capital", "schema": schema},
        },
    )
    value = json.loads(reply.choices[0].message.content or "")
    assert set(value) == {"city", "country"}
    assert all(isinstance(v, str) for v in value.values())


def test_sampling_knobs_and_foreign_fields_are_accepted(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="smollm2",
        messages=PARIS,  # type: ignore[arg-type]
        temperature=0.5,
        top_p=0.9,
        frequency_penalty=0.2,
        presence_penalty=0.1,
        seed=-1,
        max_tokens=5,
        extra_body={
            "top_k": 40,
            "min_p": 0.05,
            "repetition_penalty": 1.1,
            "do_sample": True,
            "num_beams": 1,
            "extra_query": {"do_sample": False},
        },
        extra_query={"do_sample": "false", "num_beams": "1"},
    )
    assert reply.usage is not None
    assert reply.usage.completion_tokens == 5


def test_legacy_completions(client: openai.OpenAI) -> None:
    reply = client.completions.create(
        model="smollm2", prompt=PARIS_COMPLETION, temperature=0, max_tokens=5
    )
    assert "Paris" in reply.choices[0].text
    assert reply.usage is not None
    assert reply.usage.completion_tokens == 5
    assert reply.choices[0].finish_reason == "length"

    chunks = list(
        client.completions.create(
            model="smollm2",
            prompt=PARIS_COMPLETION,
            temperature=0,
            max_tokens=5,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert "".join(c.choices[0].text for c in chunks if c.choices) == reply.choices[0].text
    assert counts(chunks[-1].usage) == counts(reply.usage)


def test_legacy_completions_default_to_16_tokens(client: openai.OpenAI) -> None:
    reply = client.completions.create(model="smollm2", prompt="Once upon a time", temperature=0)
    assert reply.usage is not None
    assert reply.usage.completion_tokens <= 16
    if reply.choices[0].finish_reason == "length":
        assert reply.usage.completion_tokens == 16


def test_models_endpoints(client: openai.OpenAI) -> None:
    ids = [m.id for m in client.models.list()]
    assert ids == ["smollm2", "single-slot", "missing", "corrupt"]
    assert client.models.retrieve("smol").id == "smollm2"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nope")


def test_deployment_header(server: Server, client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="smollm2",
        messages=PARIS,
        max_tokens=1,  # type: ignore[arg-type]
    )
    assert raw.headers["x-roundhouse-deployment"] == "smollm2"
