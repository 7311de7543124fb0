"""The blocking side of the llamacpp engine: everything here runs on its worker thread.

llama-cpp-python objects are not thread-safe, so one worker thread owns the model
and runs requests one after another, in the order they were admitted.
"""

from __future__ import annotations

import ctypes
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .._contract import (
    Embeddings,
    EmbedRequest,
    Finish,
    GenerateRequest,
    ModelInfo,
    StreamItem,
    TextDelta,
    Usage,
)
from .._errors import ContextLengthExceeded, EngineUnavailable, InvalidRequest, Unsupported
from ._options import LlamaCppOptions
from ._text import TextAssembler

__all__ = ["LoadError", "ModelRunner", "check_gguf"]

_GGUF_MAGIC = b"GGUF"
# llama.cpp treats this seed as "pick a random one".
_RANDOM_SEED = 0xFFFFFFFF


# llama-cpp-python silences a load by pointing the process's stdout and stderr file
# descriptors at /dev/null and back; two loads interleaved on different threads can
# restore /dev/null for good and mute the whole gateway. Loads therefore take turns.
LOAD_LOCK = threading.Lock()


class LoadError(Exception):
    """The model file could not be loaded; the message is meant for operators."""


def check_gguf(path: Path) -> None:
    if not path.is_file():
        raise LoadError(f"model file not found: {path}")
    with path.open("rb") as fh:
        magic = fh.read(4)
    if magic != _GGUF_MAGIC:
        raise LoadError(f"not a GGUF file (bad magic {magic!r}): {path}")


class ModelRunner:
    """Owns one loaded ``llama_cpp.Llama``; only its worker thread may call it."""

    def __init__(self, path: Path, options: LlamaCppOptions) -> None:
        check_gguf(path)
        # Imported here so that reading a registry never needs llama-cpp-python.
        import llama_cpp
        from llama_cpp import llama_chat_format

        from ._backends import BackendError, load_backends

        try:
            load_backends(path)
        except (BackendError, OSError) as exc:
            raise LoadError(f"llama.cpp cannot run here: {exc}") from exc

        self._llama_cpp = llama_cpp
        self._path = path
        self._options = options
        kwargs: dict[str, Any] = {
            "n_ctx": options.n_ctx,
            "n_batch": options.n_batch,
            "n_ubatch": options.n_batch,
            "n_gpu_layers": options.n_gpu_layers,
            "main_gpu": options.main_gpu,
            "flash_attn": options.flash_attn,
            "n_threads": options.n_threads,
            "n_threads_batch": options.n_threads_batch,
            "verbose": False,
        }
        if options.tensor_split is not None:
            kwargs["tensor_split"] = list(options.tensor_split)
        try:
            with LOAD_LOCK:
                self._llm = llama_cpp.Llama(str(path), **kwargs)
        except (ValueError, RuntimeError, OSError) as exc:
            raise LoadError(f"could not load GGUF {path}: {exc}") from exc
        self._embedder: Any = None
        model = self._llm._model
        self._vocab = model.vocab
        self._piece_buffer = ctypes.create_string_buffer(256)
        self.n_ctx: int = self._llm.n_ctx()
        self.info = ModelInfo(
            n_ctx=self.n_ctx,
            n_ctx_train=model.n_ctx_train(),
            n_vocab=model.n_vocab(),
            n_embd=model.n_embd(),
            n_params=model.n_params(),
            size=model.size(),
            vocab_type=model.vocab_type(),
            chat_template=options.chat_template
            or self._llm.metadata.get("tokenizer.chat_template"),
        )
        template = self.info.chat_template
        self._formatter: Any = None
        if template:
            eos, bos = model.token_eos(), model.token_bos()
            self._formatter = llama_chat_format.Jinja2ChatFormatter(
                template=template,
                eos_token=model.token_get_text(eos) if eos != -1 else "",
                bos_token=model.token_get_text(bos) if bos != -1 else "",
            )

    def close(self) -> None:
        self._llm.close()
        if self._embedder is not None:
            self._embedder.close()

    # -- generation -------------------------------------------------------------

    def prompt_tokens(self, request: GenerateRequest) -> list[int]:
        if request.messages is not None:
            if self._formatter is None:
                raise Unsupported(
                    "this model has no chat template; set llamacpp.chat_template "
                    "in the registry or use /v1/completions",
                    param="messages",
                )
            messages = [
                {"role": m.role, "content": m.content} | ({"name": m.name} if m.name else {})
                for m in request.messages
            ]
            try:
                rendered = self._formatter(messages=messages)
            except Exception as exc:  # Jinja errors carry the template's own complaint.
                raise InvalidRequest(
                    f"the chat template rejected these messages: {exc}", param="messages"
                ) from exc
            text: str = rendered.prompt
            add_bos = not rendered.added_special
        else:
            text = request.prompt or ""
            add_bos = True
        tokens: list[int] = self._llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True)
        if not tokens:
            raise InvalidRequest("the prompt is empty", param="prompt")
        return tokens

    def _grammar(self, request: GenerateRequest) -> Any:
        fmt = request.response_format
        if fmt is None or fmt.type == "text":
            return None
        from llama_cpp import llama_grammar

        try:
            if fmt.type == "json_object" or fmt.json_schema is None:
                return llama_grammar.LlamaGrammar.from_string(
                    llama_grammar.JSON_GBNF, verbose=False
                )
            return llama_grammar.LlamaGrammar.from_json_schema(
                json.dumps(fmt.json_schema), verbose=False
            )
        except Exception as exc:  # the schema converter raises bare exceptions
            raise InvalidRequest(
                f"response_format cannot be enforced: {exc}", param="response_format"
            ) from exc

    def _piece(self, token: int) -> bytes:
        buf = self._piece_buffer
        n = self._llama_cpp.llama_token_to_piece(self._vocab, token, buf, len(buf), 0, False)
        if n < 0:  # the piece is longer than the buffer: grow it once and retry
            self._piece_buffer = buf = ctypes.create_string_buffer(-n)
            n = self._llama_cpp.llama_token_to_piece(self._vocab, token, buf, len(buf), 0, False)
        return buf.raw[:n]

    def generate(
        self,
        request: GenerateRequest,
        emit: Callable[[StreamItem], None],
        cancelled: threading.Event,
        halted: threading.Event | None = None,
    ) -> None:
        tokens = self.prompt_tokens(request)
        n_prompt = len(tokens)
        room = self.n_ctx - n_prompt
        if room < 1 or (request.max_tokens is not None and request.max_tokens > room):
            raise ContextLengthExceeded(
                prompt_tokens=n_prompt,
                max_tokens=request.max_tokens,
                n_ctx=self.n_ctx,
                param="messages" if request.messages is not None else "prompt",
            )
        if request.max_tokens is not None:
            max_tokens = request.max_tokens
        else:
            max_tokens = room if request.token_budget is None else min(request.token_budget, room)
        grammar = self._grammar(request)
        seed = request.seed
        self._llm.set_seed(_RANDOM_SEED if seed is None or seed < 0 else seed % 2**32)
        temperature = 1.0 if request.temperature is None else request.temperature
        steps = self._llm.generate(
            tokens,
            temp=temperature,
            top_p=1.0 if request.top_p is None else request.top_p,
            top_k=0 if request.top_k is None else request.top_k,
            min_p=0.0 if request.min_p is None else request.min_p,
            repeat_penalty=request.repetition_penalty or 1.0,
            frequency_penalty=request.frequency_penalty or 0.0,
            presence_penalty=request.presence_penalty or 0.0,
            grammar=grammar,
        )
        text = TextAssembler(request.stop)
        is_eog = self._llama_cpp.llama_vocab_is_eog
        generated = 0
        finish: str = "length"
        try:
            for token in steps:
                if cancelled.is_set():
                    return
                if halted is not None and halted.is_set():
                    break  # the consumer ended the output: "length", usage still exact
                if is_eog(self._vocab, token):
                    finish = "stop"
                    break
                generated += 1
                delta = text.feed(self._piece(token))
                if delta:
                    emit(TextDelta(text=delta))
                if text.stopped:
                    finish = "stop"
                    break
                if generated >= max_tokens:
                    break
        finally:
            steps.close()
        tail = text.flush()
        if tail:
            emit(TextDelta(text=tail))
        if text.stopped:
            finish = "stop"
        emit(
            Finish(
                finish_reason="stop" if finish == "stop" else "length",
                usage=Usage(prompt_tokens=n_prompt, completion_tokens=generated),
                stop_word=text.stop_word if text.stopped else None,
            )
        )

    # -- tokenizer --------------------------------------------------------------

    def tokenize(self, text: str, add_special: bool) -> list[int]:
        tokens: list[int] = self._llm.tokenize(
            text.encode("utf-8"), add_bos=add_special, special=True
        )
        return [int(t) for t in tokens]

    def detokenize(self, tokens: list[int]) -> str:
        n_vocab = self.info.n_vocab or 0
        for index, token in enumerate(tokens):
            # An id outside the vocabulary would read past llama.cpp's tables.
            if not 0 <= token < n_vocab:
                raise InvalidRequest(
                    f"tokens[{index}]: {token} is not a token id of this model "
                    f"(0 to {n_vocab - 1})",
                    param=f"tokens[{index}]",
                )
        data: bytes = self._llm.detokenize(tokens, special=True)
        return data.decode("utf-8", errors="replace")

    # -- embeddings -------------------------------------------------------------

    def embed(self, request: EmbedRequest) -> Embeddings:
        if not self._options.embeddings:
            raise Unsupported("embeddings are turned off for this model", param="model")
        if self._embedder is None:
            try:
                with LOAD_LOCK:
                    self._embedder = self._llama_cpp.Llama(
                        str(self._path),
                        embedding=True,
                        pooling_type=self._llama_cpp.LLAMA_POOLING_TYPE_MEAN,
                        n_ctx=self.n_ctx,
                        n_batch=max(self._options.n_batch, self.n_ctx),
                        n_ubatch=max(self._options.n_batch, self.n_ctx),
                        n_gpu_layers=self._options.n_gpu_layers,
                        main_gpu=self._options.main_gpu,
                        n_threads=self._options.n_threads,
                        n_threads_batch=self._options.n_threads_batch,
                        verbose=False,
                    )
            except (ValueError, RuntimeError, OSError) as exc:
                raise EngineUnavailable(f"could not load the embedding context: {exc}") from exc
        total = 0
        for index, item in enumerate(request.inputs):
            count = len(self._embedder.tokenize(item.encode("utf-8"), add_bos=True, special=True))
            if count > self.n_ctx:
                raise ContextLengthExceeded(
                    prompt_tokens=count, max_tokens=None, n_ctx=self.n_ctx, param="input"
                )
            if count == 0:
                raise InvalidRequest(f"input[{index}] is empty", param="input")
            total += count
        vectors = self._embedder.embed(list(request.inputs), normalize=True, truncate=False)
        return Embeddings(
            vectors=tuple(tuple(float(x) for x in v) for v in vectors),
            prompt_tokens=total,
        )
