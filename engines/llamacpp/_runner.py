"""The blocking side of the llamacpp engine: loading, prompts, tokens and embeddings.

Generation runs on the decode loop's own thread (_loop.py), which owns the batched
context. What is here is called from the engine's other threads: rendering and
tokenizing prompts (llama.cpp's tokenizer only reads the vocabulary and is
documented thread-safe), and embeddings, which have a context of their own.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from .._contract import (
    Embeddings,
    EmbedRequest,
    GenerateRequest,
    ModelInfo,
    StreamItem,
)
from .._errors import ContextLengthExceeded, EngineUnavailable, InvalidRequest, Unsupported
from ._cpu import physical_cores
from ._job import Channel, Sink, Work
from ._loop import DecodeLoop, Decoder
from ._options import LlamaCppOptions
from ._sampler import gbnf_for
from ._shape import OutputShaper
from ._tools import detect_format, template_messages, tools_gbnf
from ._vocab import Vocab

__all__ = ["LoadError", "ModelRunner", "check_gguf"]

_GGUF_MAGIC = b"GGUF"
# The Llama object only holds the model, its metadata and its tokenizer; its own
# context is never decoded on, so it gets the smallest one.
_HOLDER_CTX = 32
# A prompt is counted (count_tokens) up to this many contexts long; past that, only
# a lower bound is given, as for one that is refused.
_COUNTABLE_CONTEXTS = 4

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
    """One loaded model: its batched context and decode loop, tokenizer and embedder."""

    def __init__(
        self,
        path: Path,
        options: LlamaCppOptions,
        *,
        name: str = "llamacpp",
        decode: Decoder | None = None,
    ) -> None:
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
        self.n_threads = options.n_threads or physical_cores()
        self.n_threads_batch = options.n_threads_batch or self.n_threads
        kwargs: dict[str, Any] = {
            "n_ctx": _HOLDER_CTX,
            "n_batch": _HOLDER_CTX,
            "n_ubatch": _HOLDER_CTX,
            "n_gpu_layers": options.n_gpu_layers,
            "main_gpu": options.main_gpu,
            "n_threads": self.n_threads,
            "n_threads_batch": self.n_threads_batch,
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
        self.vocab = Vocab(llama_cpp, model.vocab)
        n_ctx_train = model.n_ctx_train()
        self.n_ctx: int = options.n_ctx or n_ctx_train
        self.parallel = options.parallel
        self._ctx = self._new_context(model.model)
        # llama.cpp rounds each slot's share up to a multiple of 256; never offer more
        # than it gives (kv_unified: one pool, any request up to n_ctx).
        if not options.kv_unified:
            self.n_ctx = min(self.n_ctx, int(llama_cpp.llama_n_ctx_seq(self._ctx)))
        self.loop = DecodeLoop(
            llama_cpp=llama_cpp,
            ctx=self._ctx,
            vocab=self.vocab,
            n_slots=self.parallel,
            n_ctx=self.n_ctx,
            n_batch=options.n_batch,
            unified=options.kv_unified,
            name=name,
            decode=decode,
        )
        self.info = ModelInfo(
            n_ctx=self.n_ctx,
            n_ctx_train=n_ctx_train,
            n_vocab=model.n_vocab(),
            n_embd=model.n_embd(),
            n_params=model.n_params(),
            size=model.size(),
            vocab_type=model.vocab_type(),
            chat_template=options.chat_template
            or self._llm.metadata.get("tokenizer.chat_template"),
        )
        template = self.info.chat_template
        self.tool_format, self.native_tools = detect_format(template)
        if options.tool_format != "auto":
            self.tool_format = options.tool_format
        self._formatter: Any = None
        if template:
            eos, bos = model.token_eos(), model.token_bos()
            self._formatter = llama_chat_format.Jinja2ChatFormatter(
                template=template,
                eos_token=model.token_get_text(eos) if eos != -1 else "",
                bos_token=model.token_get_text(bos) if bos != -1 else "",
            )

    def _new_context(self, model: Any) -> Any:
        lc, options = self._llama_cpp, self._options
        params = lc.llama_context_default_params()
        # Unified: one pool of n_ctx cells that the slots share, as llama-server's
        # -c with -kvu; otherwise n_ctx cells for each slot.
        params.n_ctx = self.n_ctx if options.kv_unified else self.n_ctx * self.parallel
        params.n_batch = options.n_batch
        params.n_ubatch = options.n_batch
        params.n_seq_max = self.parallel
        params.kv_unified = options.kv_unified
        params.n_threads = self.n_threads
        params.n_threads_batch = self.n_threads_batch
        if options.flash_attn == "auto":
            params.flash_attn_type = lc.LLAMA_FLASH_ATTN_TYPE_AUTO
        elif options.flash_attn:
            params.flash_attn_type = lc.LLAMA_FLASH_ATTN_TYPE_ENABLED
        else:
            params.flash_attn_type = lc.LLAMA_FLASH_ATTN_TYPE_DISABLED
        params.no_perf = True
        with LOAD_LOCK:
            ctx = lc.llama_init_from_model(model, params)
        if not ctx:
            raise LoadError(
                f"llama.cpp could not create a context of {self.parallel} slots x "
                f"{self.n_ctx} tokens for {self._path} (not enough memory?)"
            )
        return ctx

    def close(self) -> None:
        self.loop.close()
        self._llama_cpp.llama_free(self._ctx)
        self._llm.close()
        if self._embedder is not None:
            self._embedder.close()

    # -- prompts ----------------------------------------------------------------

    def _refuse_unfittable(self, n_bytes: int, request: GenerateRequest, *, fit: bool) -> None:
        """Refuse a prompt that cannot fit from its size alone, before tokenizing it.

        llama.cpp's tokenizer is superlinear on text full of special-token strings,
        so a huge body must never reach it. ``fit`` false: the prompt is only
        counted, so it may be longer than the context, up to a few contexts.
        """
        fewest = self.vocab.fewest_tokens(n_bytes)
        wanted = request.max_tokens or 1
        room = self.n_ctx if fit else _COUNTABLE_CONTEXTS * self.n_ctx
        if fewest + (wanted if fit else 0) > room:
            raise ContextLengthExceeded(
                prompt_tokens=fewest,
                max_tokens=request.max_tokens,
                n_ctx=self.n_ctx,
                param="messages" if request.messages is not None else "prompt",
                at_least=True,
            )

    def _render(self, request: GenerateRequest, *, fit: bool = True) -> tuple[str, bool]:
        """The prompt text, and whether the tokenizer must add BOS to it."""
        if request.messages is None:
            return request.prompt or "", True
        if self._formatter is None:
            raise Unsupported(
                "this model has no chat template; set llamacpp.chat_template "
                "in the registry or use /v1/completions",
                param="messages",
            )
        # A template renders every message's content, so content alone bounds it.
        self._refuse_unfittable(
            sum(len(m.content.encode("utf-8")) for m in request.messages), request, fit=fit
        )
        extra: dict[str, Any] = {}
        if request.reasoning_effort is not None:
            # The names templates read: gpt-oss's effort, Qwen 3's switch.
            extra["reasoning_effort"] = request.reasoning_effort
            extra["enable_thinking"] = request.reasoning_effort != "none"
        # Some templates (Gemma's) refuse a system turn: the tools' prompt then goes
        # into the first user turn instead.
        for system in (True, False):
            messages, tools = template_messages(
                request, self.tool_format, native=self.native_tools, system=system
            )
            try:
                rendered = self._formatter(messages=messages, tools=tools, **extra)
                break
            except Exception as exc:  # noqa: BLE001 - a template raises any kind, for the request
                error = exc
        else:
            raise InvalidRequest(
                f"the chat template rejected these messages: {error}", param="messages"
            ) from error
        return rendered.prompt, not rendered.added_special

    def prompt_tokens(self, request: GenerateRequest, *, fit: bool = True) -> list[int]:
        """The prompt's tokens; ``fit`` false counts one that the context cannot hold."""
        text, add_bos = self._render(request, fit=fit)
        return self._tokens(text, add_bos, request, fit=fit)

    def _tokens(
        self, text: str, add_bos: bool, request: GenerateRequest, *, fit: bool = True
    ) -> list[int]:
        data = text.encode("utf-8")
        self._refuse_unfittable(len(data), request, fit=fit)
        tokens: list[int] = self._llm.tokenize(data, add_bos=add_bos, special=True)
        if not tokens:
            raise InvalidRequest("the prompt is empty", param="prompt")
        return tokens

    def budget(self, request: GenerateRequest, n_prompt: int) -> int:
        """The request's completion limit; raises when prompt plus max_tokens cannot fit."""
        room = self.n_ctx - n_prompt
        if room < 1 or (request.max_tokens is not None and request.max_tokens > room):
            raise ContextLengthExceeded(
                prompt_tokens=n_prompt,
                max_tokens=request.max_tokens,
                n_ctx=self.n_ctx,
                param="messages" if request.messages is not None else "prompt",
            )
        if request.max_tokens is not None:
            return request.max_tokens
        return room if request.token_budget is None else min(request.token_budget, room)

    def prepare(self, request: GenerateRequest, job: Channel) -> Work:
        """The request as the decode loop takes it: tokens, limit and grammar.

        Raises the request's own errors (too long, bad schema) before any decoding.
        """
        text, add_bos = self._render(request)
        tokens = self._tokens(text, add_bos, request)
        tags = request.reasoning
        gbnf = tools_gbnf(request, self.tool_format) or gbnf_for(request)
        # A grammar forces the answer at once, thinking opened by the template or not.
        opened = gbnf is None and tags is not None and text.rstrip().endswith(tags.start)
        return Work(
            job=job,
            request=request,
            tokens=tokens,
            max_tokens=self.budget(request, len(tokens)),
            gbnf=gbnf,
            shaper=OutputShaper(request, self.tool_format, opened=opened),
        )

    def generate_blocking(self, request: GenerateRequest) -> list[StreamItem | BaseException]:
        """One generation from a plain thread, to its end (the doctor's decode probe)."""
        sink = Sink()
        self.loop.submit(self.prepare(request, sink))
        sink.done.wait()
        return sink.items

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
                        n_threads=self.n_threads,
                        n_threads_batch=self.n_threads_batch,
                        verbose=False,
                    )
            except (ValueError, RuntimeError, OSError) as exc:
                raise EngineUnavailable(f"could not load the embedding context: {exc}") from exc
        total = 0
        for index, item in enumerate(request.inputs):
            data = item.encode("utf-8")
            if (fewest := self.vocab.fewest_tokens(len(data))) > self.n_ctx:
                raise ContextLengthExceeded(
                    prompt_tokens=fewest,
                    max_tokens=None,
                    n_ctx=self.n_ctx,
                    param="input",
                    at_least=True,
                )
            count = len(self._embedder.tokenize(data, add_bos=True, special=True))
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
