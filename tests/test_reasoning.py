"""Thinking split from the answer, whatever engine wrote the tags.

A stand-in engine (tests/fakes.py, FAKE) emits ``<think>`` text in pieces that cut
the tags anywhere; the gateway must send the thinking as ``reasoning_content`` and
Ollama's ``thinking``, the rest as the answer, streamed and not, with usage intact.
Then the real SmolLM2 under a template that opens the thinking itself: everything
it writes is thinking, counted as usual.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import ollama
import openai
import pytest
from litestar.testing import TestClient
from litestar.testing import transport as litestar_transport

from engines import EngineSpec, TextDelta
from gateway import Settings, create_app
from gateway.dispatch import Dispatcher
from gateway.registry import Deployment, ModelSpec, Reasoning, Registry

from .fakes import FakeEngine
from .server import Server

OUTPUT = "<think>\nThe user greets me. I greet back.\n</think>\n\nHello there!"
THOUGHT, ANSWER = "The user greets me. I greet back.", "Hello there!"


class _InProcess(httpx.BaseTransport):
    def __init__(self, client: TestClient[Any]) -> None:
        self._transport = litestar_transport.TestClientTransport(client)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self._transport.handle_request(request)


def _pieces(size: int) -> list[TextDelta]:
    return [TextDelta(text=OUTPUT[i : i + size]) for i in range(0, len(OUTPUT), size)]


def _app(engine: FakeEngine, reasoning: bool | Reasoning = True) -> TestClient[Any]:
    model = ModelSpec(
        name="thinker",
        deployments=(Deployment(engine="fake", name="thinker"),),
        reasoning=reasoning,
    )
    engine.loaded.set()
    return TestClient(
        create_app(
            Settings(), dispatcher=Dispatcher(Registry(models=(model,)), {"thinker": engine})
        )
    )


@pytest.fixture(params=[1, 3, 7, 100])
def size(request: pytest.FixtureRequest) -> int:
    return int(request.param)


@pytest.fixture
def sdk(size: int) -> Iterator[openai.OpenAI]:
    engine = FakeEngine(EngineSpec(name="thinker"), script=list(_pieces(size)))
    with _app(engine) as client:
        http = httpx.Client(transport=_InProcess(client), base_url=str(client.base_url))
        with openai.OpenAI(base_url=f"{client.base_url}/v1", api_key="x", http_client=http) as sdk:
            yield sdk


ASK: Any = [{"role": "user", "content": "Hi"}]


def test_the_thinking_is_reasoning_content(sdk: openai.OpenAI, size: int) -> None:
    answer = sdk.chat.completions.create(model="thinker", messages=ASK)
    message: Any = answer.choices[0].message
    assert message.content == ANSWER
    assert message.reasoning_content == THOUGHT
    assert answer.usage is not None
    # The stand-in counts one token per piece: the thinking's are counted too.
    assert answer.usage.completion_tokens == len(_pieces(size))


def test_streamed_thinking_joins_to_the_same(sdk: openai.OpenAI) -> None:
    whole = sdk.chat.completions.create(model="thinker", messages=ASK)
    thought, text = [], []
    usage = None
    for chunk in sdk.chat.completions.create(
        model="thinker", messages=ASK, stream=True, stream_options={"include_usage": True}
    ):
        if chunk.usage is not None:
            usage = chunk.usage
        if not chunk.choices:
            continue
        delta: Any = chunk.choices[0].delta
        thought.append(getattr(delta, "reasoning_content", None) or "")
        text.append(delta.content or "")
    assert "".join(thought) == THOUGHT
    assert "".join(text) == ANSWER
    assert usage is not None
    assert whole.usage is not None
    assert usage.completion_tokens == whole.usage.completion_tokens


def test_ollama_clients_get_thinking() -> None:
    engine = FakeEngine(EngineSpec(name="thinker"), script=list(_pieces(2)))
    with (
        _app(engine) as client,
        ollama.Client(host=str(client.base_url), transport=_InProcess(client)) as oc,
    ):
        whole = oc.chat(model="thinker", messages=ASK)
        assert (whole.message.thinking, whole.message.content) == (THOUGHT, ANSWER)
        parts = list(oc.chat(model="thinker", messages=ASK, stream=True))
        assert "".join(p.message.thinking or "" for p in parts) == THOUGHT
        assert "".join(p.message.content or "" for p in parts) == ANSWER


def test_reasoning_off_keeps_the_tags_in_the_answer() -> None:
    engine = FakeEngine(EngineSpec(name="thinker"), script=list(_pieces(4)))
    with _app(engine, reasoning=False) as client:
        body = client.post("/v1/chat/completions", json={"model": "thinker", "messages": ASK})
        message = body.json()["choices"][0]["message"]
        assert message["content"] == OUTPUT
        assert "reasoning_content" not in message


def test_other_tags_are_a_registry_setting() -> None:
    output = "<reasoning>why</reasoning>because"
    engine = FakeEngine(EngineSpec(name="thinker"), script=[TextDelta(text=c) for c in output])
    tags = Reasoning(start="<reasoning>", end="</reasoning>")
    with _app(engine, reasoning=tags) as client:
        body = client.post("/v1/chat/completions", json={"model": "thinker", "messages": ASK})
        message = body.json()["choices"][0]["message"]
        assert (message["reasoning_content"], message["content"]) == ("why", "because")


# SmolLM2's own template, with the assistant's turn opened on <think>.
OPENED_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n<think>\\n' }}{% endif %}"
)


@pytest.fixture(scope="module")
def opened(tmp_path_factory: pytest.TempPathFactory, model_path: Path) -> Iterator[Server]:
    import json

    config = tmp_path_factory.mktemp("opened") / "registry.yaml"
    config.write_text(
        "models:\n"
        "  - name: opened\n"
        "    preload: true\n"
        "    deployments:\n"
        "      - engine: llamacpp\n"
        f"        path: {model_path}\n"
        "        llamacpp:\n"
        "          n_ctx: 512\n"
        "          parallel: 1\n"
        "          embeddings: false\n"
        f"          chat_template: {json.dumps(OPENED_TEMPLATE)}\n"
    )
    with Server(config) as srv:
        yield srv


def test_a_template_that_opens_the_thinking(opened: Server) -> None:
    """SmolLM2 never closes the tag: all it writes, to the limit, is thinking."""
    with openai.OpenAI(base_url=f"{opened.url}/v1", api_key="x", max_retries=0) as sdk:
        answer = sdk.chat.completions.create(
            model="opened", messages=ASK, max_tokens=12, temperature=0
        )
    choice = answer.choices[0]
    message: Any = choice.message
    assert choice.finish_reason == "length"
    assert answer.usage is not None
    assert answer.usage.completion_tokens == 12
    assert message.reasoning_content
    assert "<think>" not in message.reasoning_content
    assert not message.content
