"""Two real replicas behind one model: losing one mid-test loses no request.

Each replica is a ``python -m llama_cpp.server`` process reached through the
``openai`` engine.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from .server import Server, wait_for
from .upstream import ALIAS, Upstream

REGISTRY = """
routing: {{attempts: 3, failures_before_cooldown: 1, cooldown_seconds: 600}}
models:
  - name: pair
    deployments:
      - {{engine: openai, name: first, url: "{first}", model: {alias}}}
      - {{engine: openai, name: second, url: "{second}", model: {alias}}}
"""

ASK = [{"role": "user", "content": "Name a colour."}]


@pytest.fixture(scope="module")
def replicas(model_path: Path) -> Iterator[tuple[Upstream, Upstream]]:
    first, second = Upstream(model_path), Upstream(model_path)
    try:
        yield first, second
    finally:
        first.stop()
        second.stop()


@pytest.fixture(scope="module")
def front(
    tmp_path_factory: pytest.TempPathFactory, replicas: tuple[Upstream, Upstream]
) -> Iterator[Server]:
    config = tmp_path_factory.mktemp("replicas") / "registry.yaml"
    config.write_text(REGISTRY.format(first=replicas[0].url, second=replicas[1].url, alias=ALIAS))
    with Server(config) as server:
        yield server


def test_killing_a_replica_loses_no_request(
    front: Server, replicas: tuple[Upstream, Upstream]
) -> None:
    served: list[str] = []
    with openai.OpenAI(
        base_url=f"{front.url}/v1", api_key="none", max_retries=0, timeout=60
    ) as client:

        def ask() -> None:
            raw = client.chat.completions.with_raw_response.create(
                model="pair",
                messages=ASK,  # type: ignore[arg-type]
                max_tokens=4,
                temperature=0,
            )
            reply = raw.parse()
            assert reply.usage is not None
            assert reply.usage.completion_tokens > 0
            served.append(raw.headers["x-roundhouse-deployment"])

        for _ in range(4):
            ask()
        assert set(served) == {"first", "second"}  # both replicas take work

        replicas[0].kill()
        served.clear()
        for _ in range(6):
            ask()  # never an error: a refused connection moves on to the other replica
        assert set(served) == {"second"}

    first = front.deployment("first")
    assert first["cooling"] is True
    assert front.deployment("second")["cooling"] is False
    wait_for(
        lambda: "first" in front.log and "failed" in front.log,
        timeout=10,
        what="the failure logged",
    )
