"""The OpenAPI document, and schemathesis fuzzing every route of every face from it.

The fuzzed gateway is real: ``roundhouse serve`` over the real model, keys and the
admin API on, tight generation limits so that every positive example finishes in
a few tokens. For each operation schemathesis generates valid and invalid requests
(derandomized: the same ones every run) and checks that none gets a 5xx, that each
status is one the document lists, and that each body matches its documented schema.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from litestar import Litestar
from litestar.routes import HTTPRoute
from schemathesis import GenerationMode
from schemathesis.checks import (
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from gateway import Settings
from gateway.app import all_operations

from .fakes import fake_app
from .server import Server

KEY = "fuzz-key"
ADMIN = "fuzz-admin"

REGISTRY = """
models:
  - name: smollm2
    preload: true
    deployments:
      - engine: llamacpp
        path: {model}
        llamacpp: {{n_ctx: 512, parallel: 2, max_queue: 16}}
    defaults: {{max_tokens: 4}}
    limits: {{max_tokens: 8}}
"""

# Every route, admin included: the parametrization comes from the same lists the
# document is built from, and test_every_route_is_documented ties those to the app.
OPERATIONS = [op for op in all_operations(admin=True) if op.method != "head"]


@schemathesis.deserializer("application/x-ndjson")
def _ndjson(_: Any, response: Any) -> Any:
    # Ollama's streams: the last line, which carries the answer's counts and reason.
    lines = [line for line in response.content.splitlines() if line.strip()]
    return json.loads(lines[-1]) if lines else None


def _fake_app(*, keys: bool) -> Litestar:
    app: Litestar = fake_app(Settings(api_keys=(KEY,) if keys else (), admin_key=ADMIN))
    return app


def _template(path: str) -> str:
    return re.sub(r"\{(\w+):\w+\}", r"{\1}", path)


def test_every_route_is_documented_and_every_operation_is_a_route() -> None:
    app = _fake_app(keys=True)
    served = {
        (method.lower(), _template(route.path))
        for route in app.routes
        if isinstance(route, HTTPRoute)
        for method in route.methods
        if method != "OPTIONS"
    }
    documented = {(op.method, op.path) for op in all_operations(admin=True)}
    assert served == documented


def test_the_document_is_openapi_3_1_with_every_schema_resolvable() -> None:
    from litestar.testing import TestClient

    with TestClient(_fake_app(keys=True)) as client:
        reply = client.get("/openapi.json")
        assert reply.status_code == 200
        document = reply.json()
        assert client.get("/docs").status_code == 200
        assert "openapi.json" in client.get("/docs").text
        assert client.get("/docs/swagger").status_code == 200
    assert document["openapi"] == "3.1.0"
    schemas = document["components"]["schemas"]
    refs = re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', json.dumps(document))
    assert refs
    assert set(refs) <= set(schemas)
    # No module paths leak into names: each face's own types read as such.
    assert not [name for name in schemas if "." in name]
    for path, item in document["paths"].items():
        for method, operation in item.items():
            assert operation["operationId"], (method, path)
            assert operation["responses"], (method, path)
            # Every POST but those that take no JSON: admin actions and a blob upload.
            if method == "post" and not path.startswith(("/admin/", "/api/blobs/")):
                assert "requestBody" in operation, (method, path)
    chat = document["paths"]["/v1/chat/completions"]["post"]
    assert chat["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ChatRequest"
    }
    assert set(chat["responses"]) >= {"200", "400", "401", "404", "429", "503"}
    assert document["paths"]["/health"]["get"]["security"] == []


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory, model_path: Path) -> Iterator[Server]:
    config = tmp_path_factory.mktemp("fuzz") / "registry.yaml"
    config.write_text(REGISTRY.format(model=model_path))
    env = {"ROUNDHOUSE_API_KEYS": KEY, "ROUNDHOUSE_ADMIN_KEY": ADMIN}
    with Server(config, env=env) as server:
        yield server


@pytest.fixture(scope="module")
def api(fuzzed: Server) -> Any:
    schema = schemathesis.openapi.from_url(f"{fuzzed.url}/openapi.json")
    schema.config.update(base_url=fuzzed.url)
    return schema


CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]


@pytest.mark.parametrize("operation_id", [op.operation_id for op in OPERATIONS])
def test_fuzzing_finds_no_5xx_and_no_schema_mismatch(
    api: Any, fuzzed: Server, operation_id: str
) -> None:
    operation = api.find_operation_by_id(operation_id)
    admin = operation.path.startswith("/admin")
    headers = {"Authorization": f"Bearer {ADMIN if admin else KEY}"}
    strategy = operation.as_strategy(generation_mode=GenerationMode.POSITIVE) | (
        operation.as_strategy(generation_mode=GenerationMode.NEGATIVE)
    )

    @given(case=strategy)
    @settings(
        max_examples=50,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    def check(case: Any) -> None:
        if admin and case.path_parameters and "name" in case.path_parameters:
            # Unloading the fuzzed model would only slow the rest down.
            case.path_parameters["name"] = "x" + str(case.path_parameters["name"])
        case.call_and_validate(headers=headers, checks=CHECKS, timeout=60)

    check()
    # And the gateway is still whole.
    assert httpx.get(f"{fuzzed.url}/health", timeout=10).status_code == 200
