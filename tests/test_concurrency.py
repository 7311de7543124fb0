"""Several clients at once on one in-process model: order, isolation, disconnects."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import httpx
import openai
import pytest

from .server import Server, async_wait_for, wait_for

STORY = [
    {"role": "user", "content": "Write a very long story about a dragon who learns to bake bread."}
]


def _stream_body(model: str, max_tokens: int) -> dict[str, Any]:
    return {
        "model": model,
        "messages": STORY,
        "temperature": 0,
        "max_tokens": max_tokens,
        "stream": True,
    }


def test_four_concurrent_streams_all_complete(server: Server) -> None:
    async def one(client: openai.AsyncOpenAI, n: int) -> tuple[str, Any]:
        stream = await client.chat.completions.create(
            model="smollm2",
            messages=[{"role": "user", "content": f"Tell me fact number {n} about the sea."}],
            temperature=0,
            max_tokens=24,
            stream=True,
            stream_options={"include_usage": True},
        )
        text, usage = "", None
        async for chunk in stream:
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
            if chunk.usage is not None:
                usage = chunk.usage
        return text, usage

    async def main() -> list[tuple[str, Any]]:
        async with openai.AsyncOpenAI(
            base_url=f"{server.url}/v1", api_key="none", max_retries=0
        ) as client:
            return await asyncio.gather(*(one(client, n) for n in range(4)))

    results = asyncio.run(main())
    assert len(results) == 4
    for text, usage in results:
        assert text.strip()
        assert usage is not None
        assert 0 < usage.completion_tokens <= 24


def test_concurrent_requests_decode_together(server: Server) -> None:
    """smollm2 has four slots: four streams are all processing at once, none waits."""
    url = f"{server.url}/v1/chat/completions"

    def all_four_processing() -> bool:
        d = server.deployment("smollm2")
        return (d["waiting"], d["slots_idle"], d["slots_processing"]) == (0, 0, 4)

    async def main() -> None:
        async with httpx.AsyncClient(timeout=120) as client:
            holders = [
                asyncio.create_task(_hold(client, url, _stream_body("smollm2", 400)))
                for _ in range(4)
            ]
            await async_wait_for(all_four_processing, within=60, what="four slots processing")
            for holder in holders:
                holder.cancel()
            await asyncio.gather(*holders, return_exceptions=True)

    asyncio.run(main())
    wait_for(
        lambda: server.deployment("smollm2")["in_flight"] == 0,
        timeout=5,
        what="the abandoned streams to leave their slots",
    )


def test_waiting_requests_start_in_arrival_order(server: Server) -> None:
    """single-slot has one slot: each request is sent once the previous one is admitted;
    they finish in that order."""
    finished: list[int] = []
    lock = threading.Lock()

    def run(n: int) -> None:
        with httpx.stream(
            "POST",
            f"{server.url}/v1/chat/completions",
            json=_stream_body("single-slot", 12),
            timeout=120,
        ) as response:
            assert response.status_code == 200
            body = "".join(response.iter_text())
        assert body.endswith("data: [DONE]\n\n")
        with lock:
            finished.append(n)

    threads = []
    for n in range(3):
        thread = threading.Thread(target=run, args=(n,))
        thread.start()
        threads.append(thread)
        wait_for(
            lambda n=n: server.deployment("single-slot")["in_flight"] + len(finished) >= n + 1,
            timeout=30,
            what=f"request {n} to be admitted",
        )
    for thread in threads:
        thread.join(timeout=120)
    assert finished == [0, 1, 2]


def test_disconnect_frees_the_model(server: Server) -> None:
    with httpx.stream(
        "POST", f"{server.url}/v1/chat/completions", json=_stream_body("smollm2", 1000), timeout=120
    ) as response:
        data = []
        for line in response.iter_lines():
            if line.startswith("data:"):
                data.append(line)
            if len(data) >= 4:
                break
    # The client is gone: the generation must stop long before its 1000 tokens.
    wait_for(
        lambda: server.deployment("smollm2")["in_flight"] == 0,
        timeout=5,
        what="the abandoned generation to stop",
    )
    reply = httpx.post(
        f"{server.url}/v1/chat/completions",
        json={"model": "smollm2", "messages": STORY, "temperature": 0, "max_tokens": 3},
        timeout=30,
    )
    assert reply.status_code == 200
    assert reply.json()["usage"]["completion_tokens"] == 3


async def _hold(client: httpx.AsyncClient, url: str, body: dict[str, Any]) -> None:
    async with client.stream("POST", url, json=body) as response:
        async for _ in response.aiter_bytes():
            pass


def test_full_queue_gets_429_and_queued_clients_can_leave(server: Server) -> None:
    """single-slot lets two requests wait behind the running one; the next gets 429."""
    url = f"{server.url}/v1/chat/completions"

    async def main() -> httpx.Response:
        async with httpx.AsyncClient(timeout=120) as client:
            holders = []
            for expected in (1, 2, 3):
                holders.append(
                    asyncio.create_task(_hold(client, url, _stream_body("single-slot", 400)))
                )
                await async_wait_for(
                    lambda expected=expected: (
                        server.deployment("single-slot")["in_flight"] >= expected
                    ),
                    within=30,
                    what=f"{expected} request(s) admitted",
                )
            rejected = await client.post(url, json=_stream_body("single-slot", 5))
            # The running stream and the waiting (headerless) request both walk away.
            for holder in holders:
                holder.cancel()
            await asyncio.gather(*holders, return_exceptions=True)
            return rejected

    rejected = asyncio.run(main())
    assert rejected.status_code == 429
    assert int(rejected.headers["retry-after"]) >= 1
    error = rejected.json()["error"]
    assert error["type"] == "rate_limit_error"
    assert error["code"] == "queue_full"
    wait_for(
        lambda: server.deployment("single-slot")["in_flight"] == 0,
        timeout=5,
        what="the abandoned requests to end",
    )


def test_non_streamed_client_that_leaves_frees_the_model(server: Server) -> None:
    body = {"model": "smollm2", "messages": STORY, "temperature": 0, "max_tokens": 1000}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            f"{server.url}/v1/chat/completions", json=body, timeout=httpx.Timeout(30, read=0.5)
        )
    wait_for(
        lambda: server.deployment("smollm2")["in_flight"] == 0,
        timeout=5,
        what="the abandoned generation to stop",
    )


def test_a_giant_body_is_refused_without_stalling_a_stream(server: Server) -> None:
    """Thousands of messages that cannot fit: refused from their size before they are
    tokenized whole, while a stream on the same model keeps going to its end."""
    url = f"{server.url}/v1/chat/completions"
    # Under the test server's 1 MiB body limit and ROUNDHOUSE_MAX_MESSAGES (2048); the
    # prompt alone is far past n_ctx.
    messages = [{"role": "user", "content": f"message {i}: " + "word " * 60} for i in range(2000)]

    async def main() -> tuple[httpx.Response, list[str]]:
        async with httpx.AsyncClient(timeout=120) as client:
            lines: list[str] = []
            under_way = asyncio.Event()

            async def stream() -> None:
                body = _stream_body("smollm2", 60) | {"ignore_eos": True}
                async with client.stream("POST", url, json=body) as response:
                    async for line in response.aiter_lines():
                        if line.startswith("data:"):
                            lines.append(line)
                            under_way.set()

            task = asyncio.create_task(stream())
            await under_way.wait()
            refused = await client.post(url, json={"model": "smollm2", "messages": messages})
            await task
            return refused, lines

    refused, lines = asyncio.run(main())
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert error["code"] == "context_length_exceeded"
    assert "at least" in error["message"]
    assert lines[-1] == "data: [DONE]"
    # Every one of the 60 tokens arrived: one chunk each, or fewer carrying several.
    assert len(lines) >= 3


def test_embeddings_answer_during_a_long_generation(server: Server, client: openai.OpenAI) -> None:
    with httpx.stream(
        "POST",
        f"{server.url}/v1/chat/completions",
        json=_stream_body("smollm2", 1000) | {"ignore_eos": True},
        timeout=120,
    ) as response:
        # Held, not dropped: a closed line iterator closes the response.
        lines = response.iter_lines()
        for line in lines:
            if line.startswith("data:"):
                break
        vectors = client.embeddings.create(model="smollm2", input="lighthouse")
        assert len(vectors.data[0].embedding) > 0
        # The stream is still running: the embedding did not wait for its slot.
        assert server.deployment("smollm2")["slots_processing"] == 1


def test_ignore_eos_and_min_tokens_reach_the_engine(client: openai.OpenAI) -> None:
    messages = [
        {"role": "system", "content": "Answer with one word."},
        {"role": "user", "content": "What is the capital of France?"},
    ]
    ignored = client.chat.completions.create(
        model="smollm2",
        messages=messages,
        max_tokens=30,
        temperature=0,  # type: ignore[arg-type]
        extra_body={"ignore_eos": True},
    )
    assert ignored.choices[0].finish_reason == "length"
    assert ignored.usage is not None
    assert ignored.usage.completion_tokens == 30
    held = client.chat.completions.create(
        model="smollm2",
        messages=messages,
        max_tokens=40,
        temperature=0,  # type: ignore[arg-type]
        extra_body={"min_tokens": 20},
    )
    assert held.usage is not None
    assert held.usage.completion_tokens >= 20
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(
            model="smollm2",
            messages=messages,
            max_tokens=5,  # type: ignore[arg-type]
            extra_body={"min_tokens": 6},
        )
    assert refused.value.body["param"] == "min_tokens"  # type: ignore[index]


def test_eight_mixed_clients_each_get_their_own_exact_answer(server: Server) -> None:
    """Eight at once on four slots, streamed and not: limits, stops and JSON all hold."""
    yes_no = {
        "type": "json_schema",
        "json_schema": {
            "name": "answer",
            "schema": {
                "type": "object",
                "properties": {"answer": {"enum": ["yes", "no"]}},
                "required": ["answer"],
                "additionalProperties": False,
            },
        },
    }
    asks: list[dict[str, Any]] = [
        {"max_tokens": 7, "extra_body": {"ignore_eos": True}},
        {"max_tokens": 19, "extra_body": {"ignore_eos": True}, "stream": True},
        {"max_tokens": 64, "stop": [" "]},
        {"max_tokens": 64, "stop": [" "], "stream": True},
        {"max_tokens": 60, "response_format": yes_no},
        {"max_tokens": 60, "response_format": yes_no, "stream": True},
        {"max_tokens": 31, "extra_body": {"ignore_eos": True}, "seed": 3, "temperature": 0.9},
        {"max_tokens": 12, "extra_body": {"ignore_eos": True, "top_k": 4}, "stream": True},
    ]

    async def one(client: openai.AsyncOpenAI, ask: dict[str, Any]) -> tuple[str, str, int]:
        params = {"temperature": 0, **ask}
        messages = [{"role": "user", "content": "Is the sea salty? Tell me a story."}]
        if params.pop("stream", False):
            stream = await client.chat.completions.create(
                model="smollm2",
                messages=messages,  # type: ignore[arg-type]
                stream=True,
                stream_options={"include_usage": True},
                **params,
            )
            text, finish, tokens = "", "", -1
            async for chunk in stream:
                for choice in chunk.choices:
                    text += choice.delta.content or ""
                    finish = choice.finish_reason or finish
                if chunk.usage is not None:
                    tokens = chunk.usage.completion_tokens
            return text, finish, tokens
        reply = await client.chat.completions.create(
            model="smollm2",
            messages=messages,  # type: ignore[arg-type]
            **params,
        )
        assert reply.usage is not None
        choice = reply.choices[0]
        return choice.message.content or "", choice.finish_reason, reply.usage.completion_tokens

    async def main() -> list[tuple[str, str, int]]:
        async with openai.AsyncOpenAI(
            base_url=f"{server.url}/v1", api_key="none", max_retries=0
        ) as client:
            return await asyncio.gather(*(one(client, ask) for ask in asks))

    results = asyncio.run(main())
    for i in (0, 1, 6, 7):
        assert results[i][1:] == ("length", asks[i]["max_tokens"])
    for i in (2, 3):
        text, finish, tokens = results[i]
        assert finish == "stop"
        assert " " not in text
        assert 0 < tokens < 64
    for i in (4, 5):
        text, finish, _ = results[i]
        assert finish == "stop"
        assert json.loads(text) in ({"answer": "yes"}, {"answer": "no"})
