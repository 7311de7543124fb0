"""One request's sampler: llama.cpp's sampler chain, driven so that it cannot abort.

``llama_sampler_sample`` would apply the chain and accept the token in one call, but
accepting a token the grammar forbids aborts the whole process (a C++ exception
through ctypes, or ``GGML_ABORT`` for an end-of-generation token). So the chain is
applied here to a candidates array, the chosen token is checked, and only an allowed
token is accepted. Every sequence in the batch samples at its own logits row.
"""

from __future__ import annotations

import ctypes
import json
from typing import Any

import numpy as np
import numpy.typing as npt

from .._contract import GenerateRequest
from .._errors import InvalidRequest

__all__ = ["Candidates", "Sampler", "gbnf_for"]

# llama.cpp reads this seed as "pick a random one".
_RANDOM_SEED = 0xFFFFFFFF
# How far back the repetition penalties look, as llama-cpp-python's Llama does.
_PENALTY_LAST_N = 64


def gbnf_for(request: GenerateRequest) -> str | None:
    """The GBNF grammar that enforces the request's ``response_format``, if any."""
    fmt = request.response_format
    if fmt is None or fmt.type == "text":
        return None
    from llama_cpp import llama_grammar

    if fmt.type == "json_object" or fmt.json_schema is None:
        return llama_grammar.JSON_GBNF
    try:
        grammar = llama_grammar.LlamaGrammar.from_json_schema(
            json.dumps(fmt.json_schema), verbose=False
        )
    except Exception as exc:  # the schema converter raises bare exceptions
        raise InvalidRequest(
            f"response_format cannot be enforced: {exc}", param="response_format"
        ) from exc
    return str(grammar._grammar)


class Candidates:
    """The candidates array the chains are applied to: one per decode thread, reused.

    Filling it is two numpy copies of the vocabulary, far cheaper than the decode.
    """

    def __init__(self, llama_cpp: Any, n_vocab: int) -> None:
        self.n_vocab = n_vocab
        dtype = np.dtype([("id", np.intc), ("logit", np.single), ("p", np.single)], align=True)
        self.data: npt.NDArray[Any] = np.zeros(n_vocab, dtype=dtype)
        self._ids = np.arange(n_vocab, dtype=np.intc)
        self._row_type = ctypes.c_float * n_vocab
        self.array = llama_cpp.llama_token_data_array(
            data=self.data.ctypes.data_as(llama_cpp.llama_token_data_p),
            size=n_vocab,
            selected=-1,
            sorted=False,
        )
        self.pointer = ctypes.byref(self.array)

    def row(self, logits: Any) -> npt.NDArray[np.float32]:
        """A logits row as a numpy view (np.ctypeslib.as_array builds a ctypes type
        per call, which costs more than the sampling)."""
        address = ctypes.cast(logits, ctypes.c_void_p).value or 0  # checked non-NULL
        view = memoryview(self._row_type.from_address(address)).cast("B")
        return np.frombuffer(view, dtype=np.float32)

    def fill(self, logits: Any) -> None:
        row = self.row(logits)
        self.data["id"] = self._ids
        self.data["logit"] = row
        self.data["p"] = 0.0
        self.array.size = self.n_vocab
        self.array.selected = -1
        self.array.sorted = False


class Sampler:
    """The request's sampler chain and grammar; free it when the request ends."""

    def __init__(self, llama_cpp: Any, vocab: Any, request: GenerateRequest, gbnf: str | None):
        self._llama_cpp = lc = llama_cpp
        self._grammar: Any = None
        self._chain: Any = None
        if gbnf is not None:
            self._grammar = lc.llama_sampler_init_grammar(vocab, gbnf.encode("utf-8"), b"root")
            if not self._grammar:
                raise InvalidRequest(
                    "response_format cannot be enforced: llama.cpp rejected its grammar",
                    param="response_format",
                )
        self._chain = lc.llama_sampler_chain_init(lc.llama_sampler_chain_default_params())

        def add(sampler: Any) -> None:
            lc.llama_sampler_chain_add(self._chain, sampler)  # the chain owns it now

        repeat = request.repetition_penalty or 1.0
        frequency = request.frequency_penalty or 0.0
        presence = request.presence_penalty or 0.0
        self._penalized = (repeat, frequency, presence) != (1.0, 0.0, 0.0)
        temperature = 1.0 if request.temperature is None else request.temperature
        # Greedy and nothing else: the arg-max, which numpy finds far faster than
        # llama.cpp's sampler builds its candidates (the same token: the first best).
        self._argmax = temperature <= 0.0 and not self._penalized and gbnf is None
        if self._penalized:
            n_vocab = lc.llama_vocab_n_tokens(vocab)
            penalties = (_PENALTY_LAST_N, repeat, frequency, presence)
            add(lc.llama_sampler_init_penalties(n_vocab, *penalties))
        if temperature <= 0.0:
            add(lc.llama_sampler_init_greedy())
        else:
            # The order llama-cpp-python's Llama uses, so a seeded request samples alike.
            if request.top_k:
                add(lc.llama_sampler_init_top_k(request.top_k))
            if request.top_p is not None and request.top_p < 1.0:
                add(lc.llama_sampler_init_top_p(request.top_p, 1))
            if request.min_p:
                add(lc.llama_sampler_init_min_p(request.min_p, 1))
            add(lc.llama_sampler_init_temp(temperature))
            seed = request.seed
            seed = _RANDOM_SEED if seed is None or seed < 0 else seed % 2**32
            add(lc.llama_sampler_init_dist(seed))

    def remember(self, tokens: list[int]) -> None:
        """Let the penalties see the prompt's tail, as llama-server's sampler does.

        Only the penalties keep a history; the chain's other samplers ignore accepts.
        """
        if self._penalized:
            for token in tokens[-_PENALTY_LAST_N:]:
                self._llama_cpp.llama_sampler_accept(self._chain, token)

    def _pick(self, candidates: Candidates, logits: Any, grammar: bool) -> int | None:
        lc = self._llama_cpp
        candidates.fill(logits)
        if grammar:
            lc.llama_sampler_apply(self._grammar, candidates.pointer)
        lc.llama_sampler_apply(self._chain, candidates.pointer)
        index = candidates.array.selected
        if not 0 <= index < candidates.array.size:
            return None
        # Through the array's own pointer: a sampler may have moved its data.
        chosen = candidates.array.data[index]
        if not np.isfinite(chosen.logit):
            return None
        return int(chosen.id)

    def _grammar_allows(self, token: int) -> bool:
        lc = self._llama_cpp
        one = (lc.llama_token_data * 1)(lc.llama_token_data(id=token, logit=0.0, p=0.0))
        array = lc.llama_token_data_array(data=one, size=1, selected=-1, sorted=False)
        lc.llama_sampler_apply(self._grammar, ctypes.byref(array))
        return bool(np.isfinite(one[0].logit))

    def sample(self, candidates: Candidates, ctx: Any, row: int, logits: Any) -> int | None:
        """The next token, or None when no token is allowed (the grammar's dead end).

        ``logits`` is the checked, non-NULL logits row ``row`` of ``ctx`` (banned
        tokens already at minus infinity in it). Without a grammar, llama.cpp samples
        and accepts in one call (nothing there can abort); a ban leaves thousands of
        tokens to choose from. With a grammar the chain is applied here: the
        token is first sampled freely and only checked against it; the grammar masks
        the whole vocabulary only when that token is refused, as llama.cpp's common
        sampler does (masking costs more than a decode step).
        """
        lc = self._llama_cpp
        if self._argmax:
            return int(np.argmax(candidates.row(logits)))
        if self._grammar is None:
            return int(lc.llama_sampler_sample(self._chain, ctx, row))
        token = self._pick(candidates, logits, grammar=False)
        if token is None or not self._grammar_allows(token):
            token = self._pick(candidates, logits, grammar=True)
        if token is None:
            return None
        if self._grammar is not None:
            lc.llama_sampler_accept(self._grammar, token)
        lc.llama_sampler_accept(self._chain, token)
        return token

    def free(self) -> None:
        lc = self._llama_cpp
        for handle in (self._grammar, self._chain):
            if handle:
                lc.llama_sampler_free(handle)
        self._grammar = self._chain = None
