"""Facts about a model's vocabulary that the batch loop and the prompt bound need."""

from __future__ import annotations

import ctypes
from typing import Any

__all__ = ["Vocab"]

# Special tokens whose text the output must keep: they mark tool calls and thinking,
# which are read out of the text (_toolparse.py, engines/_reasoning.py).
_MARKERS = frozenset(
    b"<tool_call> </tool_call> [TOOL_CALLS] [ARGS] <|python_tag|> <think> </think>".split()
)


class Vocab:
    """Pieces of tokens as bytes, the end-of-generation ids and the longest piece.

    Built once per load. ``piece`` reuses one buffer, so it belongs to one thread.
    """

    def __init__(self, llama_cpp: Any, vocab: Any) -> None:
        self._llama_cpp = llama_cpp
        self.handle = vocab
        self.n_vocab: int = llama_cpp.llama_vocab_n_tokens(vocab)
        self._buffer = ctypes.create_string_buffer(256)
        eog: list[int] = []
        longest = 1
        shown: list[int] = []
        for token in range(self.n_vocab):
            if llama_cpp.llama_vocab_is_eog(vocab, token):
                eog.append(token)
            # Rendered as tokenizing with special=True parses it: "<|im_start|>" is one
            # token of 12 bytes.
            text = self._render(token, special=True)
            longest = max(longest, len(text))
            if text in _MARKERS:
                shown.append(token)
        self._shown = frozenset(shown)
        self.eog_ids: tuple[int, ...] = tuple(eog)
        self._eog = frozenset(eog)
        # No token stands for more bytes than this, so a text of B bytes has at
        # least ceil(B / longest_piece) tokens.
        self.longest_piece = longest

    def is_eog(self, token: int) -> bool:
        return token in self._eog

    def _render(self, token: int, *, special: bool) -> bytes:
        buf = self._buffer
        n = self._llama_cpp.llama_token_to_piece(self.handle, token, buf, len(buf), 0, special)
        if n < 0:  # longer than the buffer: grow it once and retry
            self._buffer = buf = ctypes.create_string_buffer(-n)
            n = self._llama_cpp.llama_token_to_piece(self.handle, token, buf, len(buf), 0, special)
        return buf.raw[:n]

    def piece(self, token: int) -> bytes:
        """The bytes a generated token stands for (special tokens render as nothing,
        except those that mark calls and thinking)."""
        return self._render(token, special=token in self._shown)

    def fewest_tokens(self, n_bytes: int) -> int:
        """A lower bound on the tokens of a text of ``n_bytes`` bytes."""
        return -(-n_bytes // self.longest_piece)
