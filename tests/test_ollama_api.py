"""The Ollama API through the real server, the real model and the official ollama client."""

from __future__ import annotations

import concurrent.futures
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import numpy as np
import ollama
import openai
import pytest

from .checks import counts
from .prompts import PARIS
from .server import MODEL, Server

GREEDY = {"temperature": 0}


@pytest.fixture
def oc(server: Server) -> Iterator[ollama.Client]:
    with ollama.Client(host=server.url, timeout=120) as client:
        yield client


def _status(error: pytest.ExceptionInfo[ollama.ResponseError]) -> int:
    return error.value.status_code


def test_root_and_version_answer_like_ollama(server: Server) -> None:
    root = httpx.get(f"{server.url}/", timeout=10)
    assert root.status_code == 200
    assert root.text == "Ollama is running"
    assert httpx.head(f"{server.url}/", timeout=10).status_code == 200
    version = httpx.get(f"{server.url}/api/version", timeout=10).json()["version"]
    assert [int(part) for part in version.split(".")] >= [0, 5, 0]


def test_list_names_every_registry_model_with_a_tag(oc: ollama.Client) -> None:
    models = {m.model: m for m in oc.list().models}
    assert set(models) == {
        "smollm2:latest",
        "single-slot:latest",
        "missing:latest",
        "corrupt:latest",
    }
    smol = models["smollm2:latest"]
    assert smol.details is not None
    assert smol.details.format == "gguf"
    assert smol.details.quantization_level == "Q4_1"
    assert smol.details.parameter_size == "134.52M"
    assert smol.size is not None
    assert smol.size > 50_000_000
    assert smol.digest is not None
    assert len(smol.digest) == 64


@pytest.mark.parametrize("name", ["smollm2", "smollm2:latest", "smol", "smol:latest"])
def test_show_resolves_names_with_or_without_tag(oc: ollama.Client, name: str) -> None:
    shown = oc.show(name)
    assert shown.modelinfo is not None
    assert shown.modelinfo["roundhouse.context_length"] == 2048
    assert shown.modelinfo["general.parameter_count"] > 100_000_000
    assert shown.parameters is not None
    assert "num_ctx" in shown.parameters
    assert shown.capabilities == ["completion", "tools"]


def test_show_accepts_the_legacy_name_field(server: Server) -> None:
    response = httpx.post(f"{server.url}/api/show", json={"name": "smollm2"}, timeout=10)
    assert response.status_code == 200
    assert response.json()["details"]["format"] == "gguf"


def test_ps_lists_only_models_that_are_ready(oc: ollama.Client) -> None:
    running = {m.model: m for m in oc.ps().models}
    assert set(running) == {"smollm2:latest", "single-slot:latest"}
    smol = running["smollm2:latest"]
    assert smol.context_length == 2048
    # The weights plus the KV cache of its four slots of 2048 tokens (23 KB a token).
    assert smol.size is not None
    assert smol.size > MODEL.stat().st_size + 4 * 2048 * 23_000
    assert smol.expires_at is not None
    assert smol.expires_at > datetime.now(UTC)


def test_greedy_chat_answers_paris_with_the_openai_counts(
    oc: ollama.Client, client: openai.OpenAI
) -> None:
    reply = oc.chat(model="smollm2", messages=PARIS, options=GREEDY)
    reference = client.chat.completions.create(model="smollm2", messages=PARIS, temperature=0)  # type: ignore[arg-type]
    assert reference.usage is not None
    assert "Paris" in (reply.message.content or "")
    assert reply.message.content == reference.choices[0].message.content
    assert reply.message.role == "assistant"
    assert reply.done is True
    assert reply.done_reason == "stop"
    assert reply.prompt_eval_count == reference.usage.prompt_tokens
    assert reply.eval_count == reference.usage.completion_tokens
    assert reply.model == "smollm2"
    durations = [reply.total_duration, reply.load_duration, reply.prompt_eval_duration]
    assert all(d is not None and d >= 0 for d in [*durations, reply.eval_duration])
    assert reply.total_duration is not None
    assert reply.eval_duration is not None
    assert 0 < reply.eval_duration < reply.total_duration


def test_streamed_chat_matches_the_whole_answer(oc: ollama.Client) -> None:
    whole = oc.chat(model="smollm2:latest", messages=PARIS, options=GREEDY)
    parts = list(oc.chat(model="smollm2:latest", messages=PARIS, options=GREEDY, stream=True))
    assert [p.done for p in parts] == [False] * (len(parts) - 1) + [True]
    assert "".join(p.message.content or "" for p in parts) == whole.message.content
    last = parts[-1]
    assert last.message.content == ""
    assert (last.done_reason, last.prompt_eval_count, last.eval_count) == (
        whole.done_reason,
        whole.prompt_eval_count,
        whole.eval_count,
    )
    assert 0 < len(parts) - 1 <= (whole.eval_count or 0)


@pytest.mark.parametrize("stream", [False, True])
def test_num_predict_ends_with_length(oc: ollama.Client, stream: bool) -> None:
    story = [{"role": "user", "content": "Write a very long story about a dragon."}]
    options = {**GREEDY, "num_predict": 7}
    reply = oc.chat(model="smollm2", messages=story, options=options, stream=stream)
    last = list(reply)[-1] if stream else reply
    assert last.done_reason == "length"
    assert last.eval_count == 7


@pytest.mark.parametrize("unlimited", [-1, -2])
def test_negative_num_predict_sets_no_limit(oc: ollama.Client, unlimited: int) -> None:
    reply = oc.chat(model="smollm2", messages=PARIS, options={**GREEDY, "num_predict": unlimited})
    assert reply.done_reason == "stop"
    assert "Paris" in (reply.message.content or "")


def test_generate_templates_the_prompt_like_chat(oc: ollama.Client) -> None:
    chat = oc.chat(model="smollm2", messages=PARIS, options=GREEDY)
    reply = oc.generate(
        model="smollm2",
        system=PARIS[0]["content"],
        prompt=PARIS[1]["content"],
        options=GREEDY,
    )
    assert reply.response == chat.message.content
    assert (reply.prompt_eval_count, reply.eval_count) == (chat.prompt_eval_count, chat.eval_count)
    streamed = list(
        oc.generate(model="smollm2", system=PARIS[0]["content"], prompt=PARIS[1]["content"],
                    options=GREEDY, stream=True)
    )  # fmt: skip
    assert "".join(p.response for p in streamed) == reply.response
    assert streamed[-1].eval_count == reply.eval_count


def test_raw_generate_matches_openai_completions(oc: ollama.Client, client: openai.OpenAI) -> None:
    prompt = "The capital of France is"
    reply = oc.generate(
        model="smollm2", prompt=prompt, raw=True, options={**GREEDY, "num_predict": 5}
    )
    reference = client.completions.create(
        model="smollm2", prompt=prompt, temperature=0, max_tokens=5
    )
    assert reference.usage is not None
    assert reply.response == reference.choices[0].text
    assert "Paris" in (reply.response or "")
    assert reply.prompt_eval_count == reference.usage.prompt_tokens
    assert reply.eval_count == reference.usage.completion_tokens == 5


def test_format_json_and_schema(oc: ollama.Client) -> None:
    ask = [
        {"role": "system", "content": "You are a helpful assistant. Reply in JSON."},
        {
            "role": "user",
            "content": "What is the capital of France? "
            'Reply with a JSON object with a key "capital".',
        },
    ]
    options = {**GREEDY, "num_predict": 100}
    reply = oc.chat(model="smollm2", messages=ask, format="json", options=options)
    # Closing the object within the limit depends on the build; the grammar's promise
    # does not: an object that parses, or a cut at exactly num_predict.
    assert (reply.message.content or "").startswith("{")
    if reply.done_reason == "stop":
        assert isinstance(json.loads(reply.message.content or ""), dict)
    else:
        assert (reply.done_reason, reply.eval_count) == ("length", 100)
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string", "maxLength": 20}},
        "required": ["city"],
        "additionalProperties": False,
    }
    reply = oc.chat(model="smollm2", messages=PARIS, format=schema, options=options)
    assert set(json.loads(reply.message.content or "")) == {"city"}


def test_embed_matches_openai_embeddings(oc: ollama.Client, client: openai.OpenAI) -> None:
    texts = ["The sky is blue.", "Grass is green."]
    reply = oc.embed(model="smollm2", input=texts)
    reference = client.embeddings.create(model="smollm2", input=texts)
    assert len(reply.embeddings) == 2
    assert len(reply.embeddings[0]) == 576
    for ours, theirs in zip(reply.embeddings, reference.data, strict=True):
        np.testing.assert_allclose(ours, theirs.embedding, atol=1e-6)
    assert reply.prompt_eval_count == reference.usage.prompt_tokens
    single = oc.embed(model="smollm2:latest", input=texts[0])
    legacy = oc.embeddings(model="smollm2", prompt=texts[0])
    np.testing.assert_allclose(single.embeddings[0], reply.embeddings[0], atol=1e-6)
    np.testing.assert_allclose(legacy.embedding, reply.embeddings[0], atol=1e-6)


def test_unknown_models_are_404_in_every_endpoint(oc: ollama.Client) -> None:
    calls: list[Any] = [
        lambda: oc.chat(model="nope", messages=PARIS),
        lambda: oc.generate(model="nope:7b", prompt="hi"),
        lambda: oc.show("nope"),
        lambda: oc.embed(model="nope", input="hi"),
        lambda: oc.embeddings(model="nope", prompt="hi"),
    ]
    for call in calls:
        with pytest.raises(ollama.ResponseError) as error:
            call()
        assert _status(error) == 404
        assert "not found, try pulling it first" in error.value.error


def test_other_tags_fall_back_to_the_name(oc: ollama.Client) -> None:
    reply = oc.chat(model="smollm2:135m", messages=PARIS, options={**GREEDY, "num_predict": 1})
    assert reply.model == "smollm2:135m"
    assert reply.eval_count == 1


def test_load_and_unload_requests(oc: ollama.Client) -> None:
    assert oc.chat(model="smollm2", messages=[]).done_reason == "load"
    assert oc.chat(model="smollm2", messages=[], keep_alive=0).done_reason == "unload"
    assert oc.generate(model="smollm2", keep_alive="0s").done_reason == "unload"
    assert oc.generate(model="smollm2").done_reason == "load"
    with pytest.raises(ollama.ResponseError) as error:
        oc.chat(model="missing", messages=[])
    assert _status(error) == 503
    # Still loaded: unloading arrives with the lifecycle work.
    assert "smollm2:latest" in {m.model for m in oc.ps().models}


def test_engine_errors_keep_their_status(oc: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as error:
        oc.chat(model="missing", messages=PARIS)
    assert _status(error) == 503
    with pytest.raises(ollama.ResponseError) as error:
        oc.embed(model="single-slot", input="no embeddings here")
    assert _status(error) == 400
    with pytest.raises(ollama.ResponseError) as error:
        oc.chat(model="smollm2", messages=PARIS, options={"num_predict": 5000})
    assert _status(error) == 400


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.pull("smollm2"),
        lambda c: c.push("smollm2"),
        lambda c: c.create(model="copy", from_="smollm2"),
        lambda c: c.copy("smollm2", "copy"),
        lambda c: c.delete("smollm2"),
    ],
)
def test_model_store_endpoints_are_403(oc: ollama.Client, call: Any) -> None:
    with pytest.raises(ollama.ResponseError) as error:
        call(oc)
    assert _status(error) == 403
    assert "registry" in error.value.error


def test_ollama_and_openai_clients_at_once(oc: ollama.Client, client: openai.OpenAI) -> None:
    colours = [{"role": "user", "content": "Name three colours."}]
    base_paris = client.chat.completions.create(
        model="smollm2", messages=PARIS, temperature=0, max_tokens=24
    ).usage  # type: ignore[arg-type]
    base_colours = client.chat.completions.create(
        model="smollm2", messages=colours, temperature=0, max_tokens=16
    ).usage  # type: ignore[arg-type]
    assert base_paris is not None
    assert base_colours is not None
    together = threading.Barrier(2)

    def via_ollama() -> ollama.ChatResponse:
        together.wait(timeout=30)
        return oc.chat(model="smollm2", messages=PARIS, options={**GREEDY, "num_predict": 24})

    def via_openai() -> openai.types.chat.ChatCompletion:
        together.wait(timeout=30)
        return client.chat.completions.create(
            model="smollm2",
            messages=colours,
            temperature=0,
            max_tokens=16,  # type: ignore[arg-type]
        )

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        from_ollama, from_openai = pool.submit(via_ollama), pool.submit(via_openai)
        ollama_reply, openai_reply = from_ollama.result(120), from_openai.result(120)
    assert (ollama_reply.prompt_eval_count, ollama_reply.eval_count) == (
        base_paris.prompt_tokens,
        base_paris.completion_tokens,
    )
    assert counts(openai_reply.usage) == counts(base_colours)
