"""API keys: required when set, compared in constant time, never logged."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from .server import Server

KEYS = "sk-first-secret-key,sk-second-secret-key"


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory, model_path: Path) -> Iterator[Server]:
    config = tmp_path_factory.mktemp("keyed") / "registry.yaml"
    config.write_text(
        "models:\n"
        "  - name: smollm2\n"
        "    deployments:\n"
        f"      - {{engine: llamacpp, path: {model_path}, llamacpp: {{n_ctx: 512}}}}\n"
    )
    with Server(
        config, env={"ROUNDHOUSE_API_KEYS": KEYS, "ROUNDHOUSE_LOG_LEVEL": "debug"}
    ) as server:
        yield server


def test_requests_need_a_valid_key(keyed: Server) -> None:
    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "sk-first-secret-key"},
    ):
        response = httpx.get(f"{keyed.url}/v1/models", headers=headers, timeout=10)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["error"]["type"] == "authentication_error"

    with (
        openai.OpenAI(base_url=f"{keyed.url}/v1", api_key="wrong", max_retries=0) as client,
        pytest.raises(openai.AuthenticationError),
    ):
        client.models.list()


def test_every_configured_key_works(keyed: Server) -> None:
    for key in KEYS.split(","):
        with openai.OpenAI(base_url=f"{keyed.url}/v1", api_key=key, max_retries=0) as client:
            reply = client.chat.completions.create(
                model="smollm2", messages=[{"role": "user", "content": "hi"}], max_tokens=2
            )
            assert reply.usage is not None
            assert reply.usage.completion_tokens == 2


def test_health_stays_open(keyed: Server) -> None:
    assert keyed.health().status_code == 200


def test_keys_never_reach_the_log(keyed: Server) -> None:
    httpx.get(
        f"{keyed.url}/v1/models",
        headers={"Authorization": "Bearer sk-first-secret-key"},
        timeout=10,
    )
    httpx.get(
        f"{keyed.url}/v1/models", headers={"Authorization": "Bearer sk-wrong-key"}, timeout=10
    )
    log = keyed.log
    assert "GET /v1/models" in log  # debug logging is on: requests are logged
    for secret in (*KEYS.split(","), "sk-wrong-key"):
        assert secret not in log
