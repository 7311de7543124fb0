"""Turning generated token bytes into text deltas, with stop strings held back."""

from __future__ import annotations

import codecs

from .._markers import partial_suffix

__all__ = ["TextAssembler"]


class TextAssembler:
    """Feeds token bytes in, gives safe-to-send text out.

    Bytes of an unfinished UTF-8 character, and any tail that could still grow into
    a stop string, are held back until the next token decides them.
    """

    def __init__(self, stops: tuple[str, ...]) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._stops = tuple(s for s in stops if s)
        self._pending = ""
        self.stopped = False
        # The stop string that cut the output, once one has.
        self.stop_word: str | None = None

    def feed(self, data: bytes) -> str:
        self._pending += self._decoder.decode(data)
        if not self._stops:
            out, self._pending = self._pending, ""
            return out
        cut = self._earliest_stop()
        if cut is not None:
            self.stopped = True
            out = self._pending[:cut]
            self._pending = ""
            return out
        keep = self._partial_stop_suffix()
        split = len(self._pending) - keep
        out, self._pending = self._pending[:split], self._pending[split:]
        return out

    def flush(self) -> str:
        if self.stopped:
            return ""
        self._pending += self._decoder.decode(b"", final=True)
        out, self._pending = self._pending, ""
        if self._stops:
            cut = self._earliest_stop_in(out)
            if cut is not None:
                self.stopped = True
                return out[:cut]
        return out

    def _earliest_stop(self) -> int | None:
        return self._earliest_stop_in(self._pending)

    def _earliest_stop_in(self, text: str) -> int | None:
        found = [(i, s) for s in self._stops if (i := text.find(s)) >= 0]
        if not found:
            return None
        # Earliest first; of two starting at the same place, the longer one.
        index, word = min(found, key=lambda f: (f[0], -len(f[1])))
        self.stop_word = word
        return index

    def _partial_stop_suffix(self) -> int:
        return partial_suffix(self._pending, self._stops)
