"""Per-key policy on real gateways, two replicas sharing one real Redis.

``redis-server`` is Debian's (``.ci/run`` installs it); two ``roundhouse serve``
processes read the same keys file and the same Redis, so a key's limits hold
across both. Requests that only list models count against rpm as any other does,
which keeps these tests free of generation time where tokens are not the point.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.keys import hash_key

from .server import Server, wait_for

REGISTRY = """
models:
  - name: smollm2
    aliases: [smol]
    preload: true
    deployments:
      - engine: llamacpp
        path: {model}
        llamacpp: {{n_ctx: 512, parallel: 2}}
"""

SECRETS = {
    name: f"rh-test-{name}-0123456789abcdef"
    for name in ("rpm3", "ollama3", "anthropic3", "tokens", "other", "solo", "budget", "admin")
}
LIMITS: dict[str, dict[str, Any]] = {
    "rpm3": {"rpm": 3},
    "ollama3": {"rpm": 3},
    "anthropic3": {"rpm": 3},
    "tokens": {"tpm": 60},
    "other": {"models": ["other-*"]},
    "solo": {"max_parallel": 1},
    "budget": {"budget": {"tokens": 10, "period": "day"}},
    "admin": {"admin": True},
}


def _keys_file(folder: Path) -> Path:
    lines = ["keys:"]
    for name, secret in SECRETS.items():
        lines += [f"  - name: {name}", f"    hash: {hash_key(secret)}"]
        for field, value in LIMITS[name].items():
            if isinstance(value, dict):
                inner = ", ".join(f"{k}: {v}" for k, v in value.items())
                lines.append(f"    {field}: {{{inner}}}")
            elif isinstance(value, list):
                lines.append(f"    {field}: [{', '.join(value)}]")
            else:
                lines.append(f"    {field}: {str(value).lower()}")
    path = folder / "keys.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _redis(port: int, folder: Path) -> subprocess.Popen[bytes]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (Debian's redis-server; .ci/run installs it)")
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=folder)

    def answers() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    wait_for(answers, timeout=20, what="redis-server to answer PING")
    return proc


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = _free_port()
    proc = _redis(port, tmp_path_factory.mktemp("redis"))
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        _stop(proc)


@pytest.fixture(scope="module")
def replicas(
    tmp_path_factory: pytest.TempPathFactory, model_path: Path, redis_url: str
) -> Iterator[tuple[Server, Server]]:
    folder = tmp_path_factory.mktemp("replicas")
    config = folder / "registry.yaml"
    config.write_text(REGISTRY.format(model=model_path))
    env = {"ROUNDHOUSE_KEYS_FILE": str(_keys_file(folder)), "ROUNDHOUSE_REDIS_URL": redis_url}
    with Server(config, env=env) as first, Server(config, env=env) as second:
        yield first, second


def _auth(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {SECRETS[name]}"}


def _models(server: Server, name: str) -> httpx.Response:
    return httpx.get(f"{server.url}/v1/models", headers=_auth(name), timeout=10)


def test_rpm_holds_across_two_replicas_sharing_redis(replicas: tuple[Server, Server]) -> None:
    first, second = replicas
    answers = [_models(s, "rpm3") for s in (first, second, first)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert [a.headers["x-ratelimit-remaining-requests"] for a in answers] == ["2", "1", "0"]
    assert answers[0].headers["x-ratelimit-limit-requests"] == "3"
    refused = _models(second, "rpm3")
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    error = refused.json()["error"]
    assert error["type"] == "rate_limit_error"
    assert error["code"] == "rate_limit_exceeded"
    assert "rpm3" in error["message"]


def test_the_429_is_in_each_face_envelope(replicas: tuple[Server, Server]) -> None:
    first, second = replicas
    for server in (first, second, first, second):
        last = httpx.get(f"{server.url}/api/tags", headers=_auth("ollama3"), timeout=10)
    assert last.status_code == 429
    assert set(last.json()) == {"error"}
    assert isinstance(last.json()["error"], str)
    body = {"model": "smollm2", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
    headers = {"x-api-key": SECRETS["anthropic3"]}
    for server in (first, second, first, second):
        last = httpx.post(f"{server.url}/v1/messages", json=body, headers=headers, timeout=60)
    assert last.status_code == 429
    assert last.json()["type"] == "error"
    assert last.json()["error"]["type"] == "rate_limit_error"
    assert "retry-after" in last.headers


def _chat(server: Server, name: str, max_tokens: int = 8) -> httpx.Response:
    body = {
        "model": "smollm2",
        "messages": [{"role": "user", "content": "Count to ten."}],
        "max_tokens": max_tokens,
        "temperature": 0,
    }
    return httpx.post(
        f"{server.url}/v1/chat/completions", json=body, headers=_auth(name), timeout=60
    )


def _usage(server: Server, name: str) -> dict[str, Any]:
    reply = httpx.get(f"{server.url}/admin/keys/{name}", headers=_auth("admin"), timeout=10)
    assert reply.status_code == 200, reply.text
    usage: dict[str, Any] = reply.json()["usage"]
    return usage


def test_tpm_is_charged_by_exact_usage_and_shared(replicas: tuple[Server, Server]) -> None:
    first, second = replicas
    answer = _chat(first, "tokens")
    assert answer.status_code == 200
    spent = answer.json()["usage"]["total_tokens"]
    assert 0 < spent < 60
    # Charged once the answer is over: poll the shared store rather than race it.
    wait_for(
        lambda: _usage(second, "tokens")["tokens_last_minute"] == spent,
        timeout=10,
        what="the tokens to be charged",
    )
    remaining = _models(second, "tokens")
    assert remaining.headers["x-ratelimit-limit-tokens"] == "60"
    assert remaining.headers["x-ratelimit-remaining-tokens"] == str(60 - spent)
    total = spent
    while total < 60:
        reply = _chat(second, "tokens")
        assert reply.status_code == 200, reply.text
        total += reply.json()["usage"]["total_tokens"]
    wait_for(
        lambda: _usage(first, "tokens")["tokens_last_minute"] == total,
        timeout=10,
        what="every answer's tokens to be charged",
    )
    refused = _models(first, "tokens")
    assert refused.status_code == 429
    assert refused.headers["x-ratelimit-remaining-tokens"] == "0"
    assert "tokens per minute" in refused.json()["error"]["message"]


def test_a_key_sees_and_uses_only_its_models(replicas: tuple[Server, Server]) -> None:
    first, _ = replicas
    assert _models(first, "other").json()["data"] == []
    refused = _chat(first, "other")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "model_not_allowed"
    assert refused.json()["error"]["type"] == "permission_error"
    tags = httpx.get(f"{first.url}/api/tags", headers=_auth("other"), timeout=10)
    assert tags.json() == {"models": []}
    body = {"model": "smol", "prompt": "hi", "stream": False}
    ollama = httpx.post(f"{first.url}/api/generate", json=body, headers=_auth("other"))
    assert ollama.status_code == 403
    assert "may not use model 'smollm2'" in ollama.json()["error"]


def test_max_parallel_holds_while_a_stream_is_open(replicas: tuple[Server, Server]) -> None:
    first, second = replicas
    body = {
        "model": "smollm2",
        "messages": [{"role": "user", "content": "Write a long story."}],
        "max_tokens": 400,
        "stream": True,
    }
    with (
        httpx.Client(timeout=60) as client,
        client.stream(
            "POST", f"{first.url}/v1/chat/completions", json=body, headers=_auth("solo")
        ) as stream,
    ):
        assert stream.status_code == 200
        wait_for(lambda: _usage(second, "solo")["in_flight"] == 1, timeout=10, what="the lease")
        refused = _models(second, "solo")
        assert refused.status_code == 429
        assert "parallel requests" in refused.json()["error"]["message"]
    # The client left: its slot is freed, on every replica.
    wait_for(lambda: _usage(second, "solo")["in_flight"] == 0, timeout=30, what="the release")
    assert _models(second, "solo").status_code == 200


def test_a_spent_budget_is_refused_until_the_period_ends(replicas: tuple[Server, Server]) -> None:
    first, second = replicas
    assert _chat(first, "budget").status_code == 200
    wait_for(lambda: _usage(second, "budget")["budget_used"] > 10, timeout=10, what="the charge")
    refused = _models(second, "budget")
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "insufficient_quota"
    # Until midnight UTC, at most a day.
    assert 0 < int(refused.headers["retry-after"]) <= 86400


def test_keys_are_never_shown_nor_logged(replicas: tuple[Server, Server]) -> None:
    first, second = replicas
    listing = httpx.get(f"{first.url}/admin/keys", headers=_auth("admin"), timeout=10).json()
    assert {k["name"] for k in listing["keys"]} == set(SECRETS)
    assert listing["store"]["store"] == "redis"
    text = str(listing)
    metrics = httpx.get(f"{first.url}/metrics", timeout=10).text
    assert 'roundhouse_key_requests_total{key="rpm3",outcome="admitted"}' in metrics
    for secret in SECRETS.values():
        assert secret not in text
        assert hash_key(secret).split(":")[1] not in text
        assert secret not in metrics
        assert secret not in first.log
        assert secret not in second.log
    # An API key does not open the admin API; an admin key does not skip keys' checks.
    assert httpx.get(f"{first.url}/admin/keys", headers=_auth("rpm3")).status_code == 401


def test_rotation_through_one_replica_holds_on_both(replicas: tuple[Server, Server]) -> None:
    first, second = replicas
    assert _models(second, "admin").status_code == 200
    rotated = httpx.post(f"{first.url}/admin/keys/admin/rotate", headers=_auth("admin"), timeout=10)
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()["key"]
    assert new.startswith("rh-")
    assert rotated.json()["persisted"] is True
    fresh = {"Authorization": f"Bearer {new}"}
    # The new key works at once where it was rotated; a replica that does not know it
    # asks the store (at most once a second, so that wrong keys cannot flood it).
    assert httpx.get(f"{first.url}/admin/keys", headers=fresh).status_code == 200
    wait_for(
        lambda: httpx.get(f"{second.url}/v1/models", headers=fresh).status_code == 200,
        timeout=10,
        what="the other replica to take the new key",
    )
    # The old one stops at once where it was rotated, within seconds on the other.
    assert _models(first, "admin").status_code == 401
    wait_for(
        lambda: _models(second, "admin").status_code == 401,
        timeout=15,
        what="the other replica to drop the old key",
    )
    SECRETS["admin"] = new


def test_a_second_rotation_retires_every_older_key_everywhere(
    replicas: tuple[Server, Server],
) -> None:
    first, second = replicas
    middle = SECRETS["admin"]
    rotated = httpx.post(f"{first.url}/admin/keys/admin/rotate", headers=_auth("admin"), timeout=10)
    assert rotated.status_code == 200, rotated.text
    SECRETS["admin"] = rotated.json()["key"]
    # The second replica's file still holds the first hash: it too takes the newest.
    wait_for(
        lambda: _models(second, "admin").status_code == 200,
        timeout=10,
        what="the other replica to take the newest key",
    )
    wait_for(
        lambda: (
            httpx.get(
                f"{second.url}/v1/models", headers={"Authorization": f"Bearer {middle}"}
            ).status_code
            == 401
        ),
        timeout=15,
        what="the middle key to stop on the other replica",
    )


def _gateway(folder: Path, model_path: Path, **env: str) -> Server:
    config = folder / "registry.yaml"
    config.write_text(REGISTRY.format(model=model_path))
    return Server(config, env={"ROUNDHOUSE_KEYS_FILE": str(_keys_file(folder)), **env})


def test_one_replica_without_redis_keeps_its_own_limits(tmp_path: Path, model_path: Path) -> None:
    with _gateway(tmp_path, model_path) as server:
        assert server.health().json()["limits"]["store"] == "memory"
        statuses = [_models(server, "rpm3").status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]


def test_redis_going_away_fails_closed_then_recovers(tmp_path: Path, model_path: Path) -> None:
    port = _free_port()
    redis = _redis(port, tmp_path)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        with _gateway(
            tmp_path, model_path, ROUNDHOUSE_REDIS_URL=url, ROUNDHOUSE_LIMITS_ON_FAILURE="closed"
        ) as server:
            assert _models(server, "solo").status_code == 200
            _stop(redis)
            refused = _models(server, "solo")
            assert refused.status_code == 503
            assert refused.json()["error"]["code"] == "limits_unavailable"
            # Keys without limits never ask the store.
            assert _models(server, "other").status_code == 200
            limits = server.health().json()["limits"]
            assert limits["reachable"] is False
            assert limits["on_failure"] == "closed"
            assert "limit store (redis) unreachable" in server.log
            redis = _redis(port, tmp_path)
            wait_for(
                lambda: _models(server, "solo").status_code == 200,
                timeout=15,
                what="the store to be asked again",
            )
            assert server.health().json()["limits"]["reachable"] is True
            assert "reachable again" in server.log
    finally:
        if redis.poll() is None:
            _stop(redis)


def test_an_unreachable_redis_fails_open_when_told(tmp_path: Path, model_path: Path) -> None:
    url = f"redis://127.0.0.1:{_free_port()}/0"
    with _gateway(
        tmp_path,
        model_path,
        ROUNDHOUSE_REDIS_URL=url,
        ROUNDHOUSE_LIMITS_ON_FAILURE="open",
        ROUNDHOUSE_API_KEYS="plain-env-key",
    ) as server:
        # A key from the environment cannot be rotated: the environment would undo it.
        refused = httpx.post(f"{server.url}/admin/keys/key-1/rotate", headers=_auth("admin"))
        assert refused.status_code == 400
        assert refused.json()["error"]["code"] == "not_rotatable"
        plain = {"Authorization": "Bearer plain-env-key"}
        assert httpx.get(f"{server.url}/v1/models", headers=plain).status_code == 200
        answers = [_models(server, "rpm3") for _ in range(5)]
        assert [a.status_code for a in answers] == [200] * 5
        assert "x-ratelimit-limit-requests" not in answers[-1].headers
        assert server.health().json()["limits"]["reachable"] is False
        assert "failing open" in server.log


def test_cors_is_off_by_default_and_on_for_the_origins_given(
    tmp_path: Path, model_path: Path, server: Server
) -> None:
    preflight = {
        "Origin": "http://localhost:3000",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    closed = httpx.options(f"{server.url}/v1/chat/completions", headers=preflight)
    assert "access-control-allow-origin" not in closed.headers
    with _gateway(tmp_path, model_path, ROUNDHOUSE_CORS_ORIGINS="http://localhost:3000") as allowed:
        reply = httpx.options(f"{allowed.url}/v1/chat/completions", headers=preflight)
        assert reply.status_code in (200, 204)
        assert reply.headers["access-control-allow-origin"] == "http://localhost:3000"
        other = httpx.options(
            f"{allowed.url}/v1/chat/completions",
            headers={**preflight, "Origin": "http://evil.example"},
        )
        assert other.headers.get("access-control-allow-origin") != "http://evil.example"
        listing = httpx.get(
            f"{allowed.url}/v1/models",
            headers={"Origin": "http://localhost:3000", **_auth("rpm3")},
        )
        assert listing.headers["access-control-allow-origin"] == "http://localhost:3000"
        assert "x-ratelimit-remaining-requests" in listing.headers["access-control-expose-headers"]


def test_a_bad_keys_file_stops_serve_with_one_line(tmp_path: Path) -> None:
    import sys

    keys = tmp_path / "keys.yaml"
    keys.write_text("keys:\n  - name: plain\n    hash: my-password\n")
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "serve", "--port", "0"],
        env={"ROUNDHOUSE_KEYS_FILE": str(keys), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert done.returncode == 2
    assert "hash must be sha256:" in done.stderr
    assert "Traceback" not in done.stderr


def test_an_empty_keys_file_refuses_everyone(tmp_path: Path) -> None:
    from litestar.testing import TestClient

    from gateway import Settings

    from .fakes import fake_app

    keys = tmp_path / "keys.yaml"
    keys.write_text("keys: []\n")
    with TestClient(fake_app(Settings(keys_file=keys))) as client:
        assert client.get("/v1/models").status_code == 401
        assert client.get("/v1/models", headers={"Authorization": "Bearer x"}).status_code == 401
        assert client.get("/health").status_code in (200, 503)
