"""Translation clients of SakuraLLM models against the shipped sakura example registry:
placeholder model names, their exact bodies, SakuraLLM's legacy endpoints, Basic auth."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from .server import ROOT, Server

CONFIG = ROOT / "configs" / "examples" / "sakura.yaml"
NAME = "sakura-14b-qwen2.5-v1.0"
SYSTEM = "你是一个轻小说翻译模型，可以流畅通顺地以日本轻小说的风格将日文翻译成简体中文。"  # noqa: RUF001
MESSAGES: list[Any] = [
    {"role": "system", "content": SYSTEM},
    {"role": "user", "content": "将下面的日文文本翻译成中文：やる気マンゴスキン"},  # noqa: RUF001
]
CHATML = f"<|im_start|>user\n{MESSAGES[1]['content']}<|im_end|>\n<|im_start|>assistant\n"
BASIC = "sakura:s3cret-Pa55"


@pytest.fixture(scope="session")
def sakura() -> Iterator[Server]:
    """The shipped example: SmolLM2 standing in for Sakura, default_model on."""
    with Server(CONFIG) as srv:
        yield srv


@pytest.fixture(scope="module")
def guarded() -> Iterator[Server]:
    with Server(
        CONFIG, env={"ROUNDHOUSE_BASIC_AUTH": BASIC, "ROUNDHOUSE_LOG_LEVEL": "debug"}
    ) as srv:
        yield srv


def _client(url: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=120)


def _post(server: Server, path: str, body: dict[str, Any], **kw: Any) -> httpx.Response:
    return httpx.post(f"{server.url}{path}", json=body, timeout=120, **kw)


@pytest.mark.parametrize("model", ["", "sukinishiro", "Sakura-v1.0", "no_model_required"])
def test_placeholder_names_reach_the_default_model(sakura: Server, model: str) -> None:
    with _client(sakura.url, "no-key") as client:
        reply = client.chat.completions.create(
            model=model,
            messages=MESSAGES,
            max_tokens=4,
        )
    assert reply.model == NAME
    assert reply.usage is not None
    assert reply.usage.completion_tokens == 4
    assert reply.choices[0].finish_reason == "length"


def test_models_list_the_default_first_with_meta(sakura: Server) -> None:
    data = httpx.get(f"{sakura.url}/v1/models", timeout=10).json()["data"]
    assert data[0]["id"] == NAME
    assert data[0]["meta"]["n_vocab"] == 49152


def test_old_lunatranslator_connection_test(sakura: Server) -> None:
    body = {
        "model": "sukinishiro",
        "messages": MESSAGES,
        "temperature": 0.1,
        "top_p": 0.3,
        "max_tokens": 1,
        "frequency_penalty": 0,
        "seed": -1,
        "extra_query": {"do_sample": False, "num_beams": 1, "repetition_penalty": 1.0},
        "stream": False,
    }
    reply = _post(sakura, "/v1/chat/completions", body)
    assert reply.status_code == 200
    assert reply.json()["usage"]["completion_tokens"] == 1
    assert reply.json()["choices"][0]["finish_reason"] == "length"


def test_sakura_translator_body(sakura: Server) -> None:
    body = {
        "model": "sukinishiro",
        "messages": MESSAGES,
        "temperature": 0.1,
        "top_p": 0.3,
        "max_tokens": 8,
        "frequency_penalty": 0.2,
        "seed": -1,
        "do_sample": True,
        "num_beams": 1,
        "repetition_penalty": 1.0,
        "stream": False,
    }
    reply = _post(sakura, "/v1/chat/completions", body)
    assert reply.status_code == 200
    assert reply.json()["usage"]["completion_tokens"] <= 8


def test_ainiee_sizes_its_pool_then_chats_with_query_params(sakura: Server) -> None:
    slots = httpx.get(f"{sakura.url}/slots", timeout=10).json()
    # sakura.yaml's parallel: AiNiee starts that many workers, one per slot.
    assert len(slots) == 8
    assert {s["model"] for s in slots} == {NAME}
    with _client(sakura.url, "nokey") as client:
        raw = client.chat.completions.with_raw_response.create(
            model="Sakura-v1.0",
            messages=MESSAGES,
            temperature=0.1,
            top_p=0.3,
            max_tokens=5,
            extra_query={"do_sample": True, "num_beams": 1, "repetition_penalty": 1.0},
        )
    assert "do_sample=" in str(raw.http_request.url)
    assert raw.parse().usage.completion_tokens <= 5  # type: ignore[union-attr]


def test_galtransl_streams_with_alias(sakura: Server) -> None:
    with _client(sakura.url, "sk-sakura") as client:
        chunks = list(
            client.chat.completions.create(
                model="sakura",
                messages=MESSAGES,
                max_tokens=6,
                stream=True,
            )
        )
    assert chunks[0].model == NAME
    assert chunks[-1].choices[0].finish_reason == "length"


def test_completion_routes_placeholders_to_the_default(sakura: Server) -> None:
    body = _post(sakura, "/completion", {"prompt": CHATML, "n_predict": 3, "model": "x"}).json()
    assert (body["model"], body["tokens_predicted"], body["stop_type"]) == (NAME, 3, "limit")


def test_kobold_generate(sakura: Server) -> None:
    body = {
        "prompt": CHATML,
        "max_new_tokens": 5,
        "do_sample": False,
        "temperature": 0.1,
        "top_p": 0.3,
        "top_k": 40,
        "repetition_penalty": 1.0,
        "num_beams": 1,
        "seed": -1,
    }
    reply = _post(sakura, "/api/v1/generate", body)
    assert reply.status_code == 200
    results = reply.json()["results"]
    assert len(results) == 1
    assert isinstance(results[0]["text"], str)
    assert results[0]["new_token"] == 5
    # do_sample false is greedy: the same text every time.
    assert _post(sakura, "/api/v1/generate", body).json()["results"] == results


def test_kobold_errors_are_openai_shaped(sakura: Server) -> None:
    bad = _post(sakura, "/api/v1/generate", {"max_new_tokens": 5})
    assert bad.status_code == 400
    assert bad.json()["error"]["param"] == "prompt"
    wrong_method = httpx.get(f"{sakura.url}/api/v1/generate", timeout=10)
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"]["code"] == "method_not_allowed"
    # Ollama's own paths are untouched beside them.
    assert httpx.get(f"{sakura.url}/api/version", timeout=10).json()["version"]
    ollama = _post(
        sakura,
        "/api/generate",
        {"model": NAME, "prompt": "hi", "stream": False, "options": {"num_predict": 2}},
    )
    assert ollama.status_code == 200
    assert ollama.json()["eval_count"] == 2


def test_sakura_model_facts(sakura: Server) -> None:
    version = httpx.get(f"{sakura.url}/api/core/version", timeout=10).json()
    assert version == {"name": NAME, "version": "1.0", "quant": "Q4_1"}
    info = httpx.get(f"{sakura.url}/v1/chat/model_info", timeout=10).json()
    assert (info["model_name"], info["model_version"], info["model_quant"]) == (NAME, "1.0", "Q4_1")
    assert info["model_name_or_path"].endswith("SmolLM2-135M-Instruct.Q4_1.gguf")


def test_basic_auth_in_the_url(guarded: Server) -> None:
    user_url = guarded.url.replace("http://", f"http://{BASIC}@")
    with _client(user_url, "sk-sakura") as client:
        reply = client.chat.completions.create(
            model="sukinishiro",
            messages=MESSAGES,
            max_tokens=2,
        )
    assert reply.usage is not None
    assert reply.usage.completion_tokens == 2
    assert httpx.get(f"{user_url}/api/core/version", timeout=10).status_code == 200


def test_basic_auth_refuses_the_rest(guarded: Server) -> None:
    for auth in (None, ("sakura", "wrong"), ("other", "s3cret-Pa55")):
        response = httpx.get(f"{guarded.url}/v1/models", auth=auth, timeout=10)
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Basic")
    wrong_url = guarded.url.replace("http://", "http://sakura:nope@")
    with _client(wrong_url, "sk-sakura") as client, pytest.raises(openai.AuthenticationError):
        client.models.list()
    assert guarded.health().status_code == 200
    log = guarded.log
    assert "GET /v1/models" in log  # debug logging is on: requests are logged
    assert BASIC.split(":")[1] not in log
    assert base64.b64encode(BASIC.encode()).decode() not in log


def test_auto_novel_replay(sakura: Server) -> None:
    """Model list with its browser-warning header, then non-streamed segments it checks
    for runaway output by comparing usage.completion_tokens with max_tokens."""
    models = httpx.get(
        f"{sakura.url}/v1/models",
        headers={"ngrok-skip-browser-warning": "69420", "Authorization": "Bearer no-key"},
        timeout=10,
    ).json()["data"]
    assert models[0]["id"] == NAME
    assert set(models[0]["meta"]) >= {
        "vocab_type",
        "n_vocab",
        "n_ctx_train",
        "n_embd",
        "n_params",
        "size",
    }
    segment = "吾輩は猫である。名前はまだ無い。"
    max_tokens = max(-(-len(segment) * 17 // 10), 100)
    for frequency_penalty in (0.0, 0.2):  # its retry after a suspected degeneration
        body = {
            "model": "",
            "messages": [*MESSAGES, {"role": "assistant", "content": "前の段落。"}],
            "temperature": 0.1,
            "top_p": 0.3,
            "max_tokens": max_tokens,
            "frequency_penalty": frequency_penalty,
            "stream": False,
        }
        reply = _post(
            sakura, "/v1/chat/completions", body, headers={"Authorization": "Bearer no-key"}
        )
        assert reply.status_code == 200
        usage, choice = reply.json()["usage"], reply.json()["choices"][0]
        assert 0 < usage["completion_tokens"] <= max_tokens
        if usage["completion_tokens"] == max_tokens:  # what auto-novel reads as runaway
            assert choice["finish_reason"] == "length"
        else:  # a natural stop, or the degeneration guard cutting a loop short
            assert choice["finish_reason"] in {"stop", "length"}
