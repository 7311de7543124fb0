from __future__ import annotations

from pathlib import Path

import pytest

from engines.llamacpp import LlamaCppOptions
from gateway.registry import ConfigError, load_registry, parse_registry

from .server import ROOT

GOOD = """
models:
  - name: chat
    aliases: [chat-latest]
    fallbacks: [backup]
    defaults: {temperature: 0.2, max_tokens: 64}
    limits: {max_tokens: 512}
    deployments:
      - engine: llamacpp
        path: weights/a.gguf
        llamacpp: {n_ctx: 1024, n_threads: 2, tensor_split: [0.5, 0.5], max_queue: 3}
      - engine: llamacpp
        name: chat-replica
        path: /abs/b.gguf
  - name: backup
    deployments:
      - engine: llamacpp
        path: c.gguf
"""


def _error(text: str, env: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        parse_registry(text, file="r.yaml", base=Path("/cfg"), env=env or {})
    return caught.value


def test_a_full_registry_decodes() -> None:
    registry = parse_registry(GOOD, file="r.yaml", base=Path("/cfg"), env={})
    chat, backup = registry.models
    assert chat.aliases == ("chat-latest",)
    assert chat.fallbacks == ("backup",)
    assert chat.defaults.temperature == 0.2
    assert chat.limits.max_tokens == 512
    first, second = chat.deployments
    assert first.name == "chat-1"
    assert first.path == "/cfg/weights/a.gguf"
    assert first.options == LlamaCppOptions(
        n_ctx=1024, n_threads=2, tensor_split=(0.5, 0.5), max_queue=3
    )
    assert second.name == "chat-replica"
    assert second.path == "/abs/b.gguf"
    assert second.options == LlamaCppOptions()
    assert backup.deployments[0].name == "backup"


def test_env_interpolation() -> None:
    text = (
        "models:\n  - name: ${NAME}\n    deployments:\n"
        "      - {engine: llamacpp, path: m.gguf, llamacpp: {n_ctx: ${CTX:-2048}}}\n"
    )
    registry = parse_registry(text, base=Path("/x"), env={"NAME": "from-env"})
    assert registry.models[0].name == "from-env"
    assert registry.models[0].deployments[0].options.n_ctx == 2048
    registry = parse_registry(text, base=Path("/x"), env={"NAME": "n", "CTX": "512"})
    assert registry.models[0].deployments[0].options.n_ctx == 512


@pytest.mark.parametrize(
    ("text", "line", "key", "fragment"),
    [
        (
            "models:\n  - name: a\n    colour: red\n    deployments: []\n",
            3,
            "models[0].colour",
            "unknown key",
        ),
        (
            "models:\n  - name: a\n    deployments:\n      - engine: llamacpp\n"
            "        llamacpp:\n          n_ctx: big\n",
            6,
            "models[0].deployments[0].llamacpp.n_ctx",
            "Expected int",
        ),
        (
            "models:\n  - name: a\n    deployments:\n      - engine: llamacpp\n"
            "        llamacpp: {n_ctxx: 5}\n",
            5,
            "models[0].deployments[0].llamacpp.n_ctxx",
            "unknown key",
        ),
        (
            "models:\n  - name: a\n    deployments:\n      - engine: warp-drive\n",
            4,
            "models[0].deployments[0].engine",
            "unknown engine 'warp-drive'",
        ),
        ("models:\n  - name: a\n    deployments: []\n", 2, "models[0]", "at least one deployment"),
        ("models:\n  - deployments: []\n", 2, "models[0].name", "missing required field"),
        (
            "models:\n  - name: a\n    deployments: [{engine: llamacpp, path: x}]\n"
            "  - name: b\n    aliases: [a]\n"
            "    deployments: [{engine: llamacpp, path: x}]\n",
            5,
            "models[1].aliases[0]",
            "'a' is already used at models[0].name",
        ),
        (
            "models:\n  - name: a\n    fallbacks: [zzz]\n"
            "    deployments: [{engine: llamacpp, path: x}]\n",
            3,
            "models[0].fallbacks[0]",
            "'zzz' is not another model",
        ),
        (
            "models:\n  - name: a\n"
            "    deployments: [{engine: llamacpp, llamacpp: {max_queue: -1}}]\n",
            3,
            "models[0].deployments[0].llamacpp",
            "max_queue must be >= 0",
        ),
        ("models:\n  - name: ${MISSING}\n", 2, "MISSING", "environment variable is not set"),
        (
            "models:\n  - name: a\n    deployments:\n      - engine: llamacpp\n",
            4,
            "models[0].deployments[0]",
            "the llamacpp engine needs `path`",
        ),
        (
            "models:\n  - name: a\n    aliases: [b]\n    fallbacks: [b]\n"
            "    deployments: [{engine: llamacpp, path: x}]\n",
            4,
            "models[0].fallbacks[0]",
            "'b' is not another model",
        ),
        (
            "models:\n  - name: a\n    defaults: {temperature: 9}\n"
            "    deployments: [{engine: llamacpp, path: x}]\n",
            3,
            "models[0].defaults.temperature",
            "<= 2.0",
        ),
        ("models: [\n", 2, None, "invalid YAML"),
        ("- just\n- a list\n", 1, None, "must be a mapping"),
    ],
)
def test_errors_name_file_line_and_key(
    text: str, line: int, key: str | None, fragment: str
) -> None:
    error = _error(text)
    assert error.file == "r.yaml"
    assert error.line == line
    assert error.key == key
    assert fragment in error.message
    assert str(error).startswith(f"r.yaml:{line}: ")


def test_comments_are_not_interpolated() -> None:
    text = (
        "# set ${UNSET_THING} to taste\n"
        "models:\n  - name: a\n    deployments: [{engine: llamacpp, path: x}]\n"
    )
    assert parse_registry(text, base=Path("/x"), env={}).names() == ["a"]


def test_the_shipped_configs_load() -> None:
    registry = load_registry(ROOT / "configs" / "default.yaml", env={})
    assert registry.names() == ["smollm2"]
    deployment = registry.models[0].deployments[0]
    assert deployment.path == str(ROOT / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf")


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match="cannot read the registry"):
        load_registry(Path("/nonexistent/registry.yaml"))
