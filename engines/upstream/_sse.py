"""An incremental decoder for the server-sent events of OpenAI-style streams.

Network chunks split lines and events anywhere, so bytes are buffered until a line
ends; an event is dispatched at the blank line that closes it. Only ``data`` matters
here: comments (``: ping``) and the other fields (``event``, ``id``, ``retry``) are
skipped.
"""

from __future__ import annotations

__all__ = ["SSEDecoder"]


class SSEDecoder:
    def __init__(self) -> None:
        self._buffer = b""
        self._data: list[str] = []
        # A chunk that ended on CR: a LF opening the next chunk belongs to it.
        self._after_cr = False

    def feed(self, chunk: bytes) -> list[str]:
        """Take the next bytes; return the data of every event they completed."""
        if self._after_cr and chunk.startswith(b"\n"):
            chunk = chunk[1:]
        self._after_cr = chunk.endswith(b"\r")
        self._buffer += chunk
        # CRLF, CR and LF all end a line; never inside a UTF-8 sequence, so it is
        # safe to split bytes before decoding.
        *lines, self._buffer = (
            self._buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
        )
        events: list[str] = []
        for line in lines:
            event = self._line(line.decode("utf-8", errors="replace"))
            if event is not None:
                events.append(event)
        return events

    def close(self) -> list[str]:
        """The stream ended: flush a last event whose closing blank line never came.

        Some servers close right after ``data: [DONE]`` without the blank line; a
        truncated JSON event flushed here fails to parse, which is an error anyway.
        """
        if self._buffer:
            self._line(self._buffer.decode("utf-8", errors="replace"))
            self._buffer = b""
        event = self._dispatch()
        return [event] if event is not None else []

    def _line(self, line: str) -> str | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        field, _, value = line.partition(":")
        if field == "data":
            self._data.append(value.removeprefix(" "))
        return None

    def _dispatch(self) -> str | None:
        if not self._data:
            return None
        data, self._data = "\n".join(self._data), []
        return data
