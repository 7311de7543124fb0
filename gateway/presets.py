"""Model-family presets: the sampling and prompts a translation model was trained for.

A registry model names one with ``preset:``. Its sampling values fill what the
client left out (below the model's own ``defaults``), and ``POST /v1/translate``
builds its prompt from the preset's system prompt and user template. The strings
are the exact ones the models were trained on (SakuraLLM and GalTransl releases):
a changed character changes the output, so they are data here, not code.

This module imports nothing from the gateway: the registry loader reads it to
validate names, and a cycle would break whichever side is imported first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["PRESETS", "Preset", "PromptStyle"]

# What the models' authors recommend for every SakuraLLM and GalTransl release:
# near-greedy decoding, and a 512-token ceiling that a 14B model's typical segment
# never needs, so a degenerate loop ends there instead of at the context.
_SAMPLING: dict[str, float | int] = {
    "temperature": 0.1,
    "top_p": 0.3,
    "max_tokens": 512,
    "frequency_penalty": 0.0,
}

_SYSTEM_SAKURA = (
    "你是一个轻小说翻译模型，可以流畅通顺地以日本轻小说的风格将日文翻译成简体中文，"  # noqa: RUF001
    "并联系上下文正确使用人称代词，不擅自添加原文中没有的代词。"  # noqa: RUF001
)
_SYSTEM_SAKURA_V010 = (
    "你是一个轻小说翻译模型，可以流畅通顺地使用给定的术语表以日本轻小说的风格将日文翻译成简体中文，"  # noqa: RUF001
    "并联系上下文正确使用人称代词，注意不要混淆使役态和被动态的主语和宾语，"  # noqa: RUF001
    "不要擅自添加原文中没有的代词，也不要擅自增加或减少换行。"  # noqa: RUF001
)
_SYSTEM_GALTRANSL = (
    "你是一个视觉小说翻译模型，可以通顺地使用给定的术语表以指定的风格将日文翻译成简体中文，"  # noqa: RUF001
    "并联系上下文正确使用人称代词，注意不要混淆使役态和被动态的主语和宾语，"  # noqa: RUF001
    "不要擅自添加原文中没有的特殊符号，也不要擅自增加或减少换行。"  # noqa: RUF001
)

_USER_V09 = "将下面的日文文本翻译成中文：{text}"  # noqa: RUF001
_USER_V010 = (
    "根据以下术语表（可以为空）：\n{glossary}\n\n"  # noqa: RUF001
    "将下面的日文文本根据上述术语表的对应关系和备注翻译成中文：{text}"  # noqa: RUF001
)
_USER_V10 = (
    "根据以下术语表（可以为空）：\n{glossary}\n"  # noqa: RUF001
    "将下面的日文文本根据对应关系和备注翻译成中文：{text}"  # noqa: RUF001
)
_USER_GALTRANSL_V3 = (
    "{history}参考以下术语表（可为空，格式为src->dst #备注）：\n{glossary}\n"  # noqa: RUF001
    "根据以上术语表的对应关系和备注，结合历史剧情和上下文，将下面的文本从日文翻译成简体中文：\n"  # noqa: RUF001
    "{text}"
)
# GalTransl's [History] block; absent (no blank line left) when there is none.
HISTORY_GALTRANSL = "历史翻译：{history}\n"  # noqa: RUF001

# How the user message is assembled: "sakura" puts history in an assistant turn
# before it (as auto-novel does); "galtransl" puts it inside the template.
PromptStyle = Literal["sakura", "galtransl"]


@dataclass(frozen=True)
class Preset:
    name: str
    sampling: dict[str, float | int]
    system: str
    # Placeholders: {text}, {glossary}, and {history} for the galtransl style.
    user: str
    # The template used when no glossary entry applies, where the authors say so.
    user_without_glossary: str | None = None
    style: PromptStyle = "sakura"


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(name="sakura-v0.9", sampling=_SAMPLING, system=_SYSTEM_SAKURA, user=_USER_V09),
        Preset(
            name="sakura-v0.10", sampling=_SAMPLING, system=_SYSTEM_SAKURA_V010, user=_USER_V010
        ),
        Preset(
            name="sakura-v1.0",
            sampling=_SAMPLING,
            system=_SYSTEM_SAKURA,
            user=_USER_V10,
            user_without_glossary=_USER_V09,
        ),
        Preset(
            name="galtransl-v3",
            sampling=_SAMPLING,
            system=_SYSTEM_GALTRANSL,
            user=_USER_GALTRANSL_V3,
            style="galtransl",
        ),
    )
}
