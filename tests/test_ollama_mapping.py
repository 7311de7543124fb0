"""What the ollama engine sends: options, formats, URLs and its registry block."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

from engines import GenerateRequest, ResponseFormat
from engines.ollama import OllamaOptions
from engines.ollama._mapping import request_format, request_options
from engines.ollama._options import DEFAULT_URL, daemon_url


def test_request_fields_become_ollama_options() -> None:
    registry = OllamaOptions(num_ctx=8192, num_gpu=99, options={"mirostat": 2, "top_k": 10})
    request = GenerateRequest(
        prompt="x",
        token_budget=64,
        temperature=0.5,
        top_p=0.9,
        top_k=5,
        min_p=0.05,
        seed=-1,
        stop=("\n",),
        frequency_penalty=0.1,
        presence_penalty=0.2,
        repetition_penalty=1.1,
    )
    assert request_options(request, registry) == {
        "mirostat": 2,
        "num_ctx": 8192,
        "num_gpu": 99,
        "temperature": 0.5,
        "top_p": 0.9,
        "top_k": 5,
        "min_p": 0.05,
        "stop": ["\n"],
        "num_predict": 64,
        "frequency_penalty": 0.1,
        "presence_penalty": 0.2,
        "repeat_penalty": 1.1,
    }
    exact = msgspec.structs.replace(request, max_tokens=7, seed=42)
    assert request_options(exact, registry)["num_predict"] == 7
    assert request_options(exact, registry)["seed"] == 42


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        (None, None),
        (ResponseFormat(type="text"), None),
        (ResponseFormat(type="json_object"), "json"),
        (ResponseFormat(type="json_schema"), "json"),
        (ResponseFormat(type="json_schema", json_schema={"type": "object"}), {"type": "object"}),
    ],
)
def test_response_formats(fmt: ResponseFormat | None, expected: object) -> None:
    assert request_format(GenerateRequest(prompt="x", response_format=fmt)) == expected


@pytest.mark.parametrize(
    ("url", "root"),
    [
        (None, DEFAULT_URL),
        ("http://gpu-box:11434", "http://gpu-box:11434"),
        ("http://gpu-box:11434/", "http://gpu-box:11434"),
        ("http://gpu-box:11434/api", "http://gpu-box:11434"),
        ("https://gpu-box/v1/", "https://gpu-box"),
    ],
)
def test_daemon_urls(url: str | None, root: str) -> None:
    assert daemon_url(url) == root


@pytest.mark.parametrize(
    "options",
    [
        {"num_ctx": 0},
        {"num_gpu": -2},
        {"keep_alive": "5 minutes"},
        {"keep_alive": "-1"},
        {"timeout": 0},
        {"options": {"num_ctx": 4096}},
        {"headers": {"bad name": "x"}},
        {"pull": "yes"},
        {"retries": 3},
    ],
)
def test_bad_options_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert(options, OllamaOptions)


def test_good_options_are_taken() -> None:
    for keep_alive in ("5m", "1h30m", "-1s", "0", 0, -1, 300.5):
        assert msgspec.convert({"keep_alive": keep_alive}, OllamaOptions).keep_alive == keep_alive


def test_registry_needs_a_model(tmp_path: Path) -> None:
    from gateway.registry import ConfigError, parse_registry

    text = "models:\n  - name: m\n    deployments:\n      - engine: ollama\n"
    with pytest.raises(ConfigError, match="the ollama engine needs `model`"):
        parse_registry(text, base=tmp_path, env={})
    registry = parse_registry(
        text + "        model: qwen2.5:7b\n        ollama: {keep_alive: 0, pull: true}\n",
        base=tmp_path,
        env={},
    )
    options = registry.models[0].deployments[0].options
    assert options == OllamaOptions(keep_alive=0, pull=True)
