"""Reading tool calls out of a model's text as it streams.

Each template family writes calls its own way:

- ``hermes`` (Hermes, Qwen): ``<tool_call>{"name": …, "arguments": {…}}</tool_call>``,
  anywhere in the answer, one or more;
- ``llama3``: the whole answer is ``{"name": …, "parameters": {…}}``, perhaps after
  ``<|python_tag|>``;
- ``mistral``: ``[TOOL_CALLS][{"name": …, "arguments": {…}}, …]``, or the newer
  ``[TOOL_CALLS]name[ARGS]{…}``;
- ``generic``, ours for templates that know no tools: the whole answer is
  ``{"tool_calls": [{"name": …, "arguments": {…}}, …]}``.

Text outside calls is the answer's text. A call's arguments are sent as they are
generated, fragment by fragment. Whitespace alone between calls is dropped.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from typing import Literal

from .._calls import TokenLogprob
from .._contract import StreamItem, TextDelta, ToolCallDelta
from .._ids import new_call_id
from .._markers import partial_suffix
from ._toolscan import (
    CallScan,
    Malformed,
    ValueCursor,
    expect_key,
    scan_array,
    scan_call,
    scan_value,
    skip_space,
)

__all__ = ["FORMATS", "CallParser", "ToolFormat", "mistral_call_id"]

ToolFormat = Literal["hermes", "llama3", "mistral", "generic"]
FORMATS: tuple[ToolFormat, ...] = ("hermes", "llama3", "mistral", "generic")

_HERMES_OPEN, _HERMES_CLOSE = "<tool_call>", "</tool_call>"
_MISTRAL_OPEN, _MISTRAL_ARGS = "[TOOL_CALLS]", "[ARGS]"
_PYTHON_TAG = "<|python_tag|>"
_ARG_KEYS = ("arguments", "parameters")
# The first key of a JSON answer, and a head that may still become one.
_FIRST_KEY = re.compile(r'\{\s*"((?:[^"\\]|\\.)*)"')
_MAY_BE_KEY = re.compile(r'\{\s*(?:"(?:[^"\\]|\\.)*)?')
_CALL_KEYS = {"llama3": ("name", "type", "function"), "generic": ("tool_calls",)}
_FUNCTION_NAME = re.compile(r"[A-Za-z0-9_.\-]+")


def mistral_call_id() -> str:
    """Mistral's templates refuse any id but nine letters and digits."""
    return uuid.uuid4().hex[:9]


class CallParser:
    """Feeds answer text in; gives text and tool-call deltas out.

    ``single``: only the first call counts (``parallel_tool_calls: false``); what
    the model writes after it is dropped. ``names``: the functions offered. A JSON
    answer of an anchored format (llama3, generic) is a call only if it names one
    of them and gives arguments; otherwise it is the answer's text, a JSON answer.
    """

    def __init__(
        self,
        fmt: ToolFormat,
        *,
        single: bool = False,
        names: frozenset[str] | None = None,
        new_id: Callable[[], str] | None = None,
    ) -> None:
        self._names = names
        self._fmt = fmt
        self._single = single
        self._new_id = new_id or (mistral_call_id if fmt == "mistral" else new_call_id)
        self._anchored = fmt in _CALL_KEYS
        self._markers = {"hermes": (_HERMES_OPEN,), "mistral": (_MISTRAL_OPEN,)}.get(fmt, ())
        self._pending = ""
        self._space = ""  # whitespace-only text, held until text or a call follows
        self._decided = False  # for anchored formats: whether the answer began as text
        self._region: str | None = None  # the text of the calls being read
        self._head = ""  # the marker that opened the region
        self._base = 0  # the index of the region's first call
        self._sent: dict[int, int] = {}  # call index -> argument characters sent
        self._started = 0  # calls of the current region that went out (or were dropped)
        # The arguments being streamed: their call, where they start, and how far
        # their end has been looked for.
        self._streaming: tuple[int, int, ValueCursor] | None = None
        # What to drop until (a closing marker), or "" to drop the rest of the output.
        self._dropping: str | None = None
        self._logprobs: list[TokenLogprob] = []
        self._after_call = False
        self.calls = 0

    def feed(self, delta: TextDelta) -> list[StreamItem]:
        self._logprobs.extend(delta.logprobs)
        out: list[StreamItem] = []
        if self._dropping is not None:
            self._pending += delta.text
            self._drop(out)
        elif self._region is not None:
            self._region += delta.text
            self._read_region(out)
        else:
            self._pending += delta.text
            self._read_text(out)
        return out

    def flush(self) -> list[StreamItem]:
        out: list[StreamItem] = []
        if self._dropping is not None:
            self._pending = ""
        elif self._region is not None:
            region, head = self._region, self._head
            self._region = self._streaming = None
            if not self._started:  # the marker led to no call: it was text after all
                self._text(out, head + region)
        else:
            self._text(out, self._pending)
            self._pending = ""
        if self._space and not self.calls:
            out.append(TextDelta(text=self._space))
        self._space = ""
        return out

    # -- text ---------------------------------------------------------------------

    def _read_text(self, out: list[StreamItem]) -> None:
        if self._anchored and not self._decided:
            head = self._pending.lstrip()
            if not head:
                return
            opened = self._anchored_head(head)
            if opened is None:
                return  # undecided yet
            self._decided = True
            if opened:
                self._pending = ""
                self._open(out, "", head)
                return
        if not self._markers:
            text, self._pending = self._pending, ""
            self._text(out, text)
            return
        found = [(i, m) for m in self._markers if (i := self._pending.find(m)) >= 0]
        if found:
            at, marker = min(found)
            before, rest = self._pending[:at], self._pending[at + len(marker) :]
            self._pending = ""
            self._text(out, before)
            self._open(out, marker, rest)
            return
        keep = partial_suffix(self._pending, self._markers)
        split = len(self._pending) - keep
        text, self._pending = self._pending[:split], self._pending[split:]
        self._text(out, text)

    def _anchored_head(self, head: str) -> bool | None:
        """Whether an anchored answer opens a call (None: cannot tell yet)."""
        if self._fmt == "llama3":
            if head.startswith(_PYTHON_TAG):
                return True
            if _PYTHON_TAG.startswith(head):
                return None
        if not head.startswith("{"):
            return False
        match = _FIRST_KEY.match(head)
        if match is None:
            return None if _MAY_BE_KEY.fullmatch(head) else False
        return match.group(1) in _CALL_KEYS[self._fmt]

    def _text(self, out: list[StreamItem], text: str) -> None:
        if self._after_call:
            # Text that follows a call starts at its first visible character.
            text = text.lstrip()
            if text:
                self._after_call = False
        if not text:
            return
        if not text.strip():
            self._space += text
            return
        # Trailing whitespace waits too: before a call, it is dropped.
        body = text.rstrip()
        text, self._space = self._space + body, text[len(body) :]
        logprobs, self._logprobs = tuple(self._logprobs), []
        out.append(TextDelta(text=text, logprobs=logprobs))

    def _drop(self, out: list[StreamItem]) -> None:
        """Skip to the end marker being dropped to, then read on as text."""
        marker = self._dropping
        assert marker is not None
        at = self._pending.find(marker) if marker else -1
        if at < 0:
            # Keep what could be the start of the marker.
            keep = partial_suffix(self._pending, (marker,)) if marker else 0
            self._pending = self._pending[len(self._pending) - keep :]
            return
        self._dropping = None
        self._pending = self._pending[at + len(marker) :]
        self._read_text(out)

    # -- calls --------------------------------------------------------------------

    def _open(self, out: list[StreamItem], marker: str, text: str) -> None:
        self._logprobs.clear()
        if self._single and self.calls:
            # One call is all that was asked for: the next one is dropped whole.
            self._dropping = _HERMES_CLOSE if self._fmt == "hermes" else ""
            self._pending = text
            self._drop(out)
            return
        self._head, self._region, self._base = marker, text, self.calls
        self._started = 0
        self._read_region(out)

    def _read_region(self, out: list[StreamItem]) -> None:
        assert self._region is not None
        region = self._region
        self._logprobs.clear()
        if self._streaming is not None:
            index, start, cursor = self._streaming
            if cursor.advance(region) is None:
                self._send_arguments(out, index, start, len(region), region)
                return
            self._streaming = None  # they ended: see what follows them
        try:
            calls, end = self._scan(region)
            for k, scan in enumerate(calls):
                self._emit(out, self._base + k, scan, region)
        except Malformed:
            calls, end = [], -1
        if end is None:
            return
        self._region = self._streaming = None
        if end < 0 and self._started:
            # Malformed after a call: the calls stand, the rest of this region goes.
            self._dropping = _HERMES_CLOSE if self._fmt == "hermes" else ""
            # From the end of what was read: the closing marker may be in already.
            self._pending = region[
                max((c.end or c.args_end or 0 for c in calls), default=len(region)) :
            ]
            self._drop(out)
            return
        if not self._started:
            # No call came of it: what looked like one was text.
            text_end = len(region) if end < 0 else end
            if self._head:
                self._text(out, self._head)
                self._pending = region
            else:
                self._text(out, region[:text_end])
                self._pending = region[text_end:]
            self._decided = True
            self._read_text(out)
            return
        self._pending = region[end:]
        self._read_text(out)

    def _emit(self, out: list[StreamItem], index: int, scan: CallScan, region: str) -> None:
        sent = self._sent.get(index, -1)
        if sent < 0:
            if scan.name is None or (scan.args_start is None and scan.end is None):
                return  # no name yet, or the arguments may still come
            if self._anchored and (
                scan.args_start is None
                or (self._names is not None and scan.name not in self._names)
            ):
                raise Malformed(f"{scan.name!r} with no arguments, or not a function offered")
            if scan.args_start is not None and scan.args_end is None and scan.args_string:
                return  # string arguments go out decoded, once whole
            self._started += 1
            self._sent[index] = sent = 0
            if self._single and index > 0:
                return
            self.calls += 1
            self._space = ""
            self._after_call = True
            out.append(ToolCallDelta(index=index, id=self._new_id(), name=scan.name))
        if self._single and index > 0:
            return
        if scan.args_start is None:
            if scan.end is not None and sent == 0:
                out.append(ToolCallDelta(index=index, arguments="{}"))  # no arguments given
                self._sent[index] = 2
            return
        if scan.args_string:
            if scan.args_end is not None and sent == 0:
                raw = region[scan.args_start : scan.args_end]
                try:
                    decoded = json.loads(raw)
                except (ValueError, RecursionError):
                    decoded = raw  # not valid JSON after all: as written
                text = decoded if isinstance(decoded, str) else json.dumps(decoded)
                out.append(ToolCallDelta(index=index, arguments=text))
                self._sent[index] = max(1, len(text))
            return
        if scan.args_end is None:
            cursor = ValueCursor(scan.args_start)
            if cursor.advance(region) is None:
                self._streaming = (index, scan.args_start, cursor)
            end = len(region)
        else:
            end = scan.args_end
        self._send_arguments(out, index, scan.args_start, end, region)

    def _send_arguments(
        self, out: list[StreamItem], index: int, start: int, end: int, region: str
    ) -> None:
        sent = self._sent[index]
        fragment = region[start + sent : end]
        if fragment:
            out.append(ToolCallDelta(index=index, arguments=fragment))
            self._sent[index] = sent + len(fragment)

    def _scan(self, region: str) -> tuple[list[CallScan], int | None]:
        """The calls of a region so far, and where it ends (None: not yet; -1: it
        turned out malformed after the calls returned)."""
        if self._fmt == "hermes":
            scan = scan_call(region, 0, _ARG_KEYS)
            if scan.malformed:
                return [scan], -1
            if scan.end is None:
                return [scan], None
            i = skip_space(region, scan.end)
            rest = region[i:]
            if rest.startswith(_HERMES_CLOSE):
                return [scan], i + len(_HERMES_CLOSE)
            if _HERMES_CLOSE.startswith(rest):
                return [scan], None
            return [scan], scan.end  # no closing tag: the call stands, the rest is text
        if self._fmt == "llama3":
            start = len(_PYTHON_TAG) if region.startswith(_PYTHON_TAG) else 0
            scan = scan_call(region, start, _ARG_KEYS)
            return [scan], -1 if scan.malformed else scan.end
        if self._fmt == "mistral":
            return self._scan_mistral(region)
        at = expect_key(region, 0, "tool_calls")
        if at is None:
            return [], None
        calls, end = scan_array(region, at, _ARG_KEYS)
        if end is None or end < 0:
            return calls, end
        i = skip_space(region, end)
        if i >= len(region):
            return calls, None
        # Anything but the object's end after the array: the calls stand.
        return calls, i + 1 if region[i] == "}" else -1

    def _scan_mistral(self, region: str) -> tuple[list[CallScan], int | None]:
        i = skip_space(region, 0)
        if i >= len(region):
            return [], None
        if region[i] == "[":
            return scan_array(region, i, _ARG_KEYS)
        at = region.find(_MISTRAL_ARGS, i)
        if at < 0:
            name = region[i:]
            name = name[: len(name) - partial_suffix(name, (_MISTRAL_ARGS,))]
            if name and not _FUNCTION_NAME.fullmatch(name):
                raise Malformed("expected a function name after [TOOL_CALLS]")
            return [], None
        name = region[i:at]
        if not _FUNCTION_NAME.fullmatch(name):
            raise Malformed("expected a function name after [TOOL_CALLS]")
        scan = CallScan()
        scan.name = name
        scan.args_start = start = skip_space(region, at + len(_MISTRAL_ARGS))
        if start >= len(region):
            scan.args_start = None
            return [scan], None
        scan.args_string = region[start] == '"'
        scan.args_end = scan.end = scan_value(region, start)
        return [scan], scan.end
