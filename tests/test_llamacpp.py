"""The llamacpp adapter's own rules: chat templates, token counting, load failures."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from engines import ChatMessage, Finish, GenerateRequest, StreamItem, TextDelta, Unsupported
from engines.llamacpp import LlamaCppOptions
from engines.llamacpp._runner import LoadError, ModelRunner

HELLO = GenerateRequest(messages=(ChatMessage(role="user", content="Hello"),), temperature=0)


@pytest.fixture(scope="module")
def runner(model_path: Path) -> ModelRunner:
    return ModelRunner(model_path, LlamaCppOptions(n_ctx=512))


def _text(runner: ModelRunner, tokens: list[int]) -> str:
    rendered: bytes = runner._llm.detokenize(tokens, special=True)
    return rendered.decode()


def test_chat_template_comes_from_the_gguf(runner: ModelRunner) -> None:
    rendered = _text(runner, runner.prompt_tokens(HELLO))
    # SmolLM2 ships a ChatML template in its metadata.
    assert rendered.endswith("<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n")


def test_registry_template_overrides_the_gguf(model_path: Path) -> None:
    template = "{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}[assistant]"
    custom = ModelRunner(model_path, LlamaCppOptions(n_ctx=256, chat_template=template))
    try:
        assert _text(custom, custom.prompt_tokens(HELLO)) == "[user] Hello\n[assistant]"
    finally:
        custom.close()


def test_completion_tokens_count_every_generated_token(runner: ModelRunner) -> None:
    items: list[StreamItem] = []
    runner.generate(
        GenerateRequest(prompt="Once upon a time", temperature=0, max_tokens=9),
        items.append,
        threading.Event(),
    )
    finish = items[-1]
    assert isinstance(finish, Finish)
    assert finish.finish_reason == "length"
    assert finish.usage.completion_tokens == 9
    text = "".join(i.text for i in items if isinstance(i, TextDelta))
    # Re-tokenizing the text gives the same count for this plain English output.
    assert len(runner._llm.tokenize(text.encode(), add_bos=False)) == 9
    assert finish.usage.prompt_tokens == len(
        runner.prompt_tokens(GenerateRequest(prompt="Once upon a time"))
    )


def test_a_set_cancel_flag_stops_at_once(runner: ModelRunner) -> None:
    cancelled = threading.Event()
    items: list[StreamItem] = []

    def emit(item: StreamItem) -> None:
        items.append(item)
        if len(items) == 3:
            cancelled.set()

    runner.generate(
        GenerateRequest(prompt="Once upon a time", temperature=0, max_tokens=200), emit, cancelled
    )
    assert len(items) == 3
    assert not any(isinstance(i, Finish) for i in items)


def test_template_less_models_refuse_chat(model_path: Path) -> None:
    bare = ModelRunner(model_path, LlamaCppOptions(n_ctx=256))
    try:
        bare._formatter = None
        with pytest.raises(Unsupported):
            bare.prompt_tokens(HELLO)
    finally:
        bare.close()


@pytest.mark.parametrize(
    ("content", "message"), [(None, "model file not found"), (b"GGML....", "bad magic")]
)
def test_missing_or_foreign_files_fail_with_a_clear_message(
    tmp_path: Path, content: bytes | None, message: str
) -> None:
    path = tmp_path / "model.gguf"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(LoadError, match=message):
        ModelRunner(path, LlamaCppOptions())
