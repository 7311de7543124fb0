"""The llamacpp adapter's own rules: chat templates, token counting, load failures."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from engines import ChatMessage, Finish, GenerateRequest, StreamItem, TextDelta, Unsupported
from engines.llamacpp import LlamaCppOptions
from engines.llamacpp._job import Sink, Work
from engines.llamacpp._runner import LoadError, ModelRunner

HELLO = GenerateRequest(messages=(ChatMessage(role="user", content="Hello"),), temperature=0)


@pytest.fixture(scope="module")
def runner(model_path: Path) -> Iterator[ModelRunner]:
    loaded = ModelRunner(model_path, LlamaCppOptions(n_ctx=512))
    yield loaded
    loaded.close()


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
    items = runner.generate_blocking(
        GenerateRequest(prompt="Once upon a time", temperature=0, max_tokens=9)
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


class _LeavesAfter(Sink):
    """A consumer that goes away after ``n`` items."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self._n = n

    def emit(self, item: StreamItem | BaseException) -> None:
        super().emit(item)
        if len(self.items) == self._n:
            self.cancelled.set()
            self.done.set()


def test_a_set_cancel_flag_frees_the_slot_within_a_step(runner: ModelRunner) -> None:
    request = GenerateRequest(prompt="Once upon a time", temperature=0, max_tokens=200)
    tokens = runner.prompt_tokens(request)
    sink = _LeavesAfter(3)
    runner.loop.submit(Work(job=sink, request=request, tokens=tokens, max_tokens=200, gbnf=None))
    assert sink.done.wait(60)
    deadline = time.monotonic() + 30
    while any(s.processing for s in runner.loop.slots()):
        assert time.monotonic() < deadline, "the slot stayed busy after its consumer left"
        time.sleep(0.01)  # polling, bounded by the deadline
    # At most the step in progress when the flag was set emitted one more item.
    assert 3 <= len(sink.items) <= 4
    assert not any(isinstance(i, Finish) for i in sink.items)


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
