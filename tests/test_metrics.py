"""Operations: /metrics after known traffic, request ids, text and JSON logs.

The metric checks read counters before and after, since other tests share the server.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from .server import Server, wait_for

CHAT_PATH = "/v1/chat/completions"
PROMPT = [{"role": "user", "content": "Write a long story about a train crossing the mountains."}]
SMOL = {"model": "smollm2", "deployment": "smollm2"}
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _samples(server: Server) -> Samples:
    response = httpx.get(f"{server.url}/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def _value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def _requests(samples: Any, status: str, **route: str) -> float:
    labels = {"model": "", "deployment": "", **route, "endpoint": CHAT_PATH, "status": status}
    return _value(samples, "roundhouse_requests_total", **labels)


def test_metrics_count_known_traffic(server: Server) -> None:
    before = _samples(server)
    used = 0
    with httpx.Client(base_url=server.url, timeout=120) as http:
        for _ in range(3):
            body = {"model": "smollm2", "messages": PROMPT, "max_tokens": 5}
            response = http.post(CHAT_PATH, json=body)
            assert response.status_code == 200
            used += response.json()["usage"]["completion_tokens"]
        stream = {
            "model": "smollm2",
            "messages": PROMPT,
            "max_tokens": 5,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        with http.stream("POST", CHAT_PATH, json=stream) as streamed:
            assert streamed.status_code == 200
            for line in streamed.iter_lines():
                if line.startswith("data: {") and '"usage"' in line:
                    usage = json.loads(line[len("data: ") :]).get("usage")
                    used += usage["completion_tokens"] if usage else 0
        missing = http.post(CHAT_PATH, json={"model": "no-such-model", "messages": PROMPT})
        assert missing.status_code == 404
    assert used == 20

    # A streamed request is counted when its response ends, just after the client's last byte.
    def settled() -> Any:
        now = _samples(server)
        return (
            now if _requests(now, "200", **SMOL) >= _requests(before, "200", **SMOL) + 4 else None
        )

    after = wait_for(settled, timeout=10, what="the streamed request to be counted")
    assert _requests(after, "200", **SMOL) - _requests(before, "200", **SMOL) == 4
    assert _requests(after, "404") - _requests(before, "404") == 1
    tokens = "roundhouse_completion_tokens_total"
    assert _value(after, tokens, **SMOL) - _value(before, tokens, **SMOL) == 20
    ttft = "roundhouse_time_to_first_token_seconds_count"
    assert _value(after, ttft, **SMOL) - _value(before, ttft, **SMOL) == 4
    e2e = "roundhouse_generation_duration_seconds_count"
    assert _value(after, e2e, **SMOL) - _value(before, e2e, **SMOL) == 4
    assert _value(after, "roundhouse_prompt_tokens_total", **SMOL) > _value(
        before, "roundhouse_prompt_tokens_total", **SMOL
    )
    assert _value(after, "roundhouse_requests_in_flight", deployment="smollm2") == 0
    assert _value(after, "roundhouse_queue_depth", deployment="smollm2") == 0
    assert _value(after, "roundhouse_deployment_state", deployment="smollm2", state="ready") == 1
    assert _value(after, "roundhouse_deployment_state", deployment="missing", state="failed") == 1
    assert _value(after, "roundhouse_deployment_state", deployment="missing", state="ready") == 0


def test_request_id_is_echoed_or_made(server: Server) -> None:
    sent = httpx.get(f"{server.url}/v1/models", headers={"X-Request-ID": "client-id-42"})
    assert sent.headers["x-request-id"] == "client-id-42"
    made = httpx.get(f"{server.url}/v1/models")
    assert re.fullmatch(r"[0-9a-f]{32}", made.headers["x-request-id"])
    # Unprintable or too long: replaced by a fresh one, never echoed.
    too_long = httpx.get(f"{server.url}/health", headers={"X-Request-ID": "x" * 129})
    assert re.fullmatch(r"[0-9a-f]{32}", too_long.headers["x-request-id"])
    unknown = httpx.get(f"{server.url}/no/such/path", headers={"X-Request-ID": "lost-1"})
    assert unknown.status_code == 404
    assert unknown.headers["x-request-id"] == "lost-1"


def test_streamed_response_carries_the_request_id(server: Server) -> None:
    body = {"model": "smollm2", "messages": PROMPT, "max_tokens": 3, "stream": True}
    with httpx.stream(
        "POST",
        f"{server.url}{CHAT_PATH}",
        json=body,
        headers={"X-Request-ID": "stream-7"},
        timeout=120,
    ) as response:
        assert response.status_code == 200
        assert response.headers["x-request-id"] == "stream-7"
        assert [x for x in response.iter_lines() if x][-1] == "data: [DONE]"


REGISTRY = """
models:
  - name: smollm2
    deployments:
      - engine: llamacpp
        path: {model}
        llamacpp: {{n_ctx: 512}}
"""


@pytest.fixture
def registry_file(tmp_path: Path, model_path: Path) -> Path:
    path = tmp_path / "registry.yaml"
    path.write_text(REGISTRY.format(model=model_path))
    return path


@contextlib.contextmanager
def _logging_server(config: Path, **env: str) -> Iterator[Server]:
    with Server(config, env={"ROUNDHOUSE_LOG_LEVEL": "debug", **env}) as srv:
        yield srv


def _chat(srv: Server, request_id: str) -> None:
    body = {"model": "smollm2", "messages": PROMPT, "max_tokens": 2}
    headers = {"X-Request-ID": request_id}
    response = httpx.post(f"{srv.url}{CHAT_PATH}", json=body, headers=headers, timeout=120)
    assert response.status_code == 200


def test_text_log_lines_show_the_request_id(registry_file: Path) -> None:
    with _logging_server(registry_file) as srv:
        _chat(srv, "text-log-1")
        lines = srv.lines
        line = wait_for(
            lambda: next((x for x in lines if "[text-log-1]" in x), None),
            timeout=10,
            what="a log line with the request id",
        )
        assert "POST /v1/chat/completions" in line


def test_json_logs_are_one_object_per_line(registry_file: Path) -> None:
    with _logging_server(registry_file, ROUNDHOUSE_LOG_FORMAT="json") as srv:
        _chat(srv, "json-log-1")

        lines = srv.lines

        def tagged() -> list[dict[str, Any]]:
            entries = [json.loads(x) for x in list(lines) if x.startswith("{")]
            return [e for e in entries if e.get("request_id") == "json-log-1"]

        entries = wait_for(tagged, timeout=10, what="a JSON log line with the request id")
        assert {"time", "level", "logger", "message"} <= entries[0].keys()
        assert any(e["logger"] == "uvicorn.access" for e in entries)
        # No record went out in the text format.
        text_record = re.compile(r"^\d{4}-\d\d-\d\d .* (DEBUG|INFO|WARNING|ERROR) ")
        assert not [x for x in srv.lines if text_record.match(x)]


def test_batch_metrics_follow_the_decode_loop(server: Server) -> None:
    """Steps, tokens per step and prompt reuse move with traffic; the slots are real."""
    system = {"role": "system", "content": "You keep a ship's log. " + "Calm sea. " * 60}
    before = _samples(server)
    for question in ("What was the weather?", "Any ships sighted?"):
        reply = httpx.post(
            f"{server.url}{CHAT_PATH}",
            json={
                "model": "smollm2",
                "messages": [system, {"role": "user", "content": question}],
                "max_tokens": 3,
                "temperature": 0,
            },
            timeout=60,
        )
        assert reply.status_code == 200
    # The client hears of it too, where OpenAI reports cached prompt tokens.
    assert reply.json()["usage"]["prompt_tokens_details"]["cached_tokens"] >= 100
    after = _samples(server)
    dep = {"deployment": "smollm2"}
    assert _value(after, "roundhouse_decode_steps_total", **dep) > _value(
        before, "roundhouse_decode_steps_total", **dep
    )
    # The second request found the first one's system prompt in a slot.
    reused = _value(after, "roundhouse_prompt_tokens_reused_total", **dep) - _value(
        before, "roundhouse_prompt_tokens_reused_total", **dep
    )
    assert reused >= 100
    steps = _value(after, "roundhouse_batch_tokens_count", **dep)
    assert steps == _value(after, "roundhouse_decode_steps_total", **dep)
    assert _value(after, "roundhouse_batch_sequences_bucket", **dep, le="+Inf") == steps
    assert _value(after, "roundhouse_kv_cells_used", **dep) > 0
    assert _value(after, "roundhouse_kv_cells", **dep) >= 4 * 2048
    assert (
        _value(after, "roundhouse_slots", **dep, state="idle")
        + _value(after, "roundhouse_slots", **dep, state="processing")
        == 4
    )
