from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from .server import MODEL, Server
from .upstream import Upstream

REGISTRY = """
models:
  - name: smollm2
    aliases: [smol]
    preload: true
    deployments:
      - engine: llamacpp
        path: {model}
        llamacpp: {{n_ctx: 2048, max_queue: 8}}
    limits: {{max_tokens: 1024}}
  - name: single-slot
    preload: true
    deployments:
      - engine: llamacpp
        path: {model}
        llamacpp: {{n_ctx: 1024, parallel: 1, max_queue: 2, embeddings: false}}
  - name: missing
    preload: true
    deployments:
      - engine: llamacpp
        path: does-not-exist.gguf
  - name: corrupt
    preload: true
    deployments:
      - engine: llamacpp
        path: corrupt.gguf
"""


@pytest.fixture(scope="session")
def model_path() -> Path:
    if not MODEL.is_file():
        pytest.fail(f"{MODEL} is missing: run the tests through `make test`, which fetches it")
    return MODEL


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory, model_path: Path) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("registry")
    (folder / "corrupt.gguf").write_bytes(b"GGUF" + b"\x00" * 64)
    config = folder / "registry.yaml"
    config.write_text(REGISTRY.format(model=model_path))
    with Server(config, env={"ROUNDHOUSE_MAX_BODY_BYTES": str(1024 * 1024)}) as srv:
        yield srv


@pytest.fixture
def client(server: Server) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=f"{server.url}/v1", api_key="none", max_retries=0, timeout=120
    ) as c:
        yield c


@pytest.fixture(scope="session")
def upstream(model_path: Path) -> Iterator[Upstream]:
    """A llama_cpp.server process shared by every test that needs an upstream."""
    srv = Upstream(model_path)
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="session")
def upstream_url(upstream: Upstream) -> str:
    return upstream.url


OLLAMA_PEER_REGISTRY = """
models:
  - name: smollm2
    preload: true
    deployments:
      - engine: llamacpp
        path: {model}
        llamacpp: {{n_ctx: 2048}}
  - name: endless
    preload: true
    deployments:
      - engine: openai
        url: {upstream}
        model: {alias}
        openai: {{extra_body: {{logit_bias: {no_eos}}}}}
  - name: agent
    preload: true
    # Ollama's API has no tool_choice; this is how its clients get forced calls.
    defaults: {{tool_choice: required}}
    deployments:
      - engine: llamacpp
        path: {model}
        llamacpp: {{n_ctx: 1024, parallel: 2, embeddings: false}}
  - name: lazy
    deployments:
      - engine: llamacpp
        path: {model}
        llamacpp: {{n_ctx: 512, embeddings: false}}
"""


@pytest.fixture(scope="session")
def ollama_peer(
    tmp_path_factory: pytest.TempPathFactory, model_path: Path, upstream_url: str
) -> Iterator[Server]:
    """A Roundhouse serving Ollama's API: the daemon the ollama engine is tested against.

    ``endless`` never emits EOS (it runs through llama_cpp.server with EOS banned),
    for tests that need an answer still streaming when its client leaves.
    """
    import json

    from .upstream import ALIAS, NO_EOS

    config = tmp_path_factory.mktemp("ollama-peer") / "registry.yaml"
    config.write_text(
        OLLAMA_PEER_REGISTRY.format(
            model=model_path, upstream=upstream_url, alias=ALIAS, no_eos=json.dumps(NO_EOS)
        )
    )
    with Server(config) as srv:
        yield srv
