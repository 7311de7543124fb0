"""Presets, the translate prompt builder and the degeneration detector, without a server."""

from __future__ import annotations

from pathlib import Path

import pytest

from engines import GenerateRequest
from gateway.apis.sakura.translate import GlossaryEntry, build_messages, glossary_lines
from gateway.guard import Detector
from gateway.policy import apply_policy, effective_defaults
from gateway.presets import PRESETS
from gateway.registry import (
    ConfigError,
    Defaults,
    DegenerationGuard,
    Deployment,
    ModelSpec,
    parse_registry,
)

# ruff: noqa: RUF001 - the prompts are Chinese, full-width punctuation included.
SYSTEM_V1 = (
    "你是一个轻小说翻译模型，可以流畅通顺地以日本轻小说的风格将日文翻译成简体中文，"
    "并联系上下文正确使用人称代词，不擅自添加原文中没有的代词。"
)
TEXT = "ダリヤは魔導具師です"
GLOSSARY = [
    GlossaryEntry(src="ダリヤ", dst="达莉亚", info="女主角"),
    GlossaryEntry(src="魔導具", dst="魔导具"),
    GlossaryEntry(src="東京", dst="东京"),
]


def _model(preset: str | None, defaults: Defaults | None = None) -> ModelSpec:
    return ModelSpec(
        name="m",
        deployments=(Deployment(engine="fake", name="m"),),
        preset=preset,
        defaults=defaults or Defaults(),
    )


def test_preset_sampling_fills_only_what_the_client_left_out() -> None:
    # LinguaGacha sends no sampling fields at all.
    filled = apply_policy(_model("sakura-v1.0"), GenerateRequest(prompt="x"))
    assert (filled.temperature, filled.top_p, filled.frequency_penalty) == (0.1, 0.3, 0.0)
    assert (filled.max_tokens, filled.token_budget) == (None, 512)
    sent = GenerateRequest(prompt="x", temperature=0.7, top_p=0.9, max_tokens=40)
    kept = apply_policy(_model("sakura-v1.0"), sent)
    assert (kept.temperature, kept.top_p, kept.max_tokens, kept.token_budget) == (
        0.7,
        0.9,
        40,
        None,
    )


def test_the_models_own_defaults_win_over_its_preset() -> None:
    model = _model("galtransl-v3", Defaults(temperature=0.3, max_tokens=1024))
    assert effective_defaults(model) == Defaults(
        temperature=0.3, top_p=0.3, max_tokens=1024, frequency_penalty=0.0
    )
    assert effective_defaults(_model(None)) == Defaults()


def test_unknown_preset_is_a_located_error() -> None:
    text = (
        "models:\n  - name: a\n    preset: sakura-v2\n"
        "    deployments: [{engine: llamacpp, path: x}]\n"
    )
    with pytest.raises(ConfigError) as caught:
        parse_registry(text, file="r.yaml", base=Path("/cfg"), env={})
    assert str(caught.value) == (
        "r.yaml:3: models[0].preset: unknown preset 'sakura-v2'; known presets: "
        "sakura-v0.9, sakura-v0.10, sakura-v1.0, galtransl-v3"
    )


def test_guard_block_decodes_with_defaults() -> None:
    text = (
        "models:\n  - name: a\n    degeneration_guard: {repeats: 5}\n"
        "    deployments: [{engine: llamacpp, path: x}]\n"
    )
    guard = parse_registry(text, base=Path("/cfg"), env={}).models[0].degeneration_guard
    assert guard == DegenerationGuard(repeats=5)
    assert guard.retries == (0.1, 0.2)


def test_glossary_keeps_only_terms_in_the_text() -> None:
    assert glossary_lines(GLOSSARY, TEXT) == "ダリヤ->达莉亚 #女主角\n魔導具->魔导具"


def test_sakura_v1_prompt_with_and_without_glossary() -> None:
    system, user = build_messages(PRESETS["sakura-v1.0"], TEXT, GLOSSARY)
    assert (system.role, system.content) == ("system", SYSTEM_V1)
    assert user.content == (
        "根据以下术语表（可以为空）：\nダリヤ->达莉亚 #女主角\n魔導具->魔导具\n"
        "将下面的日文文本根据对应关系和备注翻译成中文：ダリヤは魔導具師です"
    )
    # No entry applies: the v0.9 prompt, as the authors recommend.
    _, plain = build_messages(PRESETS["sakura-v1.0"], TEXT, GLOSSARY[2:])
    assert plain.content == "将下面的日文文本翻译成中文：ダリヤは魔導具師です"


def test_sakura_v010_and_v09_prompts() -> None:
    system, user = build_messages(PRESETS["sakura-v0.10"], TEXT)
    assert system.content.startswith("你是一个轻小说翻译模型，可以流畅通顺地使用给定的术语表")
    assert system.content.endswith("也不要擅自增加或减少换行。")
    assert user.content == (
        "根据以下术语表（可以为空）：\n\n\n"
        "将下面的日文文本根据上述术语表的对应关系和备注翻译成中文：ダリヤは魔導具師です"
    )
    messages = build_messages(PRESETS["sakura-v0.9"], TEXT, GLOSSARY, history="前文")
    assert [m.role for m in messages] == ["system", "assistant", "user"]
    assert messages[0].content == SYSTEM_V1
    assert (messages[1].content, messages[2].content) == (
        "前文",
        f"将下面的日文文本翻译成中文：{TEXT}",
    )


def test_galtransl_prompt_with_history() -> None:
    system, user = build_messages(PRESETS["galtransl-v3"], "ダリヤ「はい」", GLOSSARY, "好的")
    assert system.content.startswith("你是一个视觉小说翻译模型")
    assert user.content == (
        "历史翻译：好的\n"
        "参考以下术语表（可为空，格式为src->dst #备注）：\nダリヤ->达莉亚 #女主角\n"
        "根据以上术语表的对应关系和备注，结合历史剧情和上下文，将下面的文本从日文翻译成简体中文：\n"
        "ダリヤ「はい」"
    )
    _, bare = build_messages(PRESETS["galtransl-v3"], "x")
    assert bare.content.startswith("参考以下术语表")


def _first_loop(text: str, guard: DegenerationGuard | None = None) -> tuple[int, str] | None:
    """Feed ``text`` a character at a time: where the detector fires, and what it saw."""
    detector = Detector(guard or DegenerationGuard())
    for i, char in enumerate(text):
        found = detector.feed(char)
        if found is not None:
            return i + 1, found
    return None


@pytest.mark.parametrize(
    ("text", "fires_by"),
    [
        ("これは" + "の" * 200, 3 + 64),
        ("わぐ" * 100, 64),
        ("Hello, " + "hello, " * 40, 7 * 11),
        ("はっ" * 3 + "ハアハア！\n" * 6, 6 + 6 * 5),  # the same line, 4 times in a row
    ],
)
def test_detector_fires_on_loops(text: str, fires_by: int) -> None:
    found = _first_loop(text)
    assert found is not None
    assert found[0] <= fires_by


@pytest.mark.parametrize(
    "text",
    [
        "The capital of France is Paris. " * 3,
        "啊啊啊啊啊啊啊啊啊啊啊啊！……“不要！”她喊道。" * 2,
        "国境の長いトンネルを抜けると雪国であった。夜の底が白くなった。",
        "「はい」\n\n「いいえ」\n\n「はい」\n",
    ],
)
def test_detector_leaves_healthy_text_alone(text: str) -> None:
    assert _first_loop(text) is None
