"""The recent log lines, for the console's Logs page: a bounded ring, per app."""

from __future__ import annotations

import collections
import logging
import threading

import msgspec

from ..tracing import request_id

__all__ = ["LogBuffer", "LogLine"]


class LogLine(msgspec.Struct, frozen=True, kw_only=True):
    seq: int
    time: float
    level: str
    logger: str
    message: str
    request_id: str | None


class LogBuffer(logging.Handler):
    """Keeps the last ``keep`` records of the ``roundhouse`` loggers, numbered."""

    def __init__(self, keep: int = 1000) -> None:
        super().__init__(level=logging.INFO)
        self._lines: collections.deque[LogLine] = collections.deque(maxlen=keep)
        self._seq = 0
        # Engines log from their own threads.
        self._guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = str(record.msg)
        rid = getattr(record, "request_id", None) or request_id()
        with self._guard:
            self._seq += 1
            self._lines.append(
                LogLine(
                    seq=self._seq,
                    time=record.created,
                    level=record.levelname,
                    logger=record.name,
                    message=message,
                    request_id=None if rid in (None, "-") else rid,
                )
            )

    def after(self, seq: int) -> list[LogLine]:
        with self._guard:
            return [line for line in self._lines if line.seq > seq]

    def attach(self) -> None:
        logging.getLogger("roundhouse").addHandler(self)
        logging.getLogger("uvicorn.error").addHandler(self)

    def detach(self) -> None:
        logging.getLogger("roundhouse").removeHandler(self)
        logging.getLogger("uvicorn.error").removeHandler(self)
