"""Scanning tool-call JSON that is still being generated.

A call is an object with a name and arguments: ``{"name": "f", "arguments": {…}}``
(Llama 3 says ``parameters``). The scan is repeated over the whole call text on
each new piece, which is cheap for calls of a few kilobytes, and says how far it
got: the name once its string is closed, where the arguments begin, and where they
and the object end once they have. What is not JSON of that shape is malformed.
"""

from __future__ import annotations

import json

__all__ = [
    "CallScan",
    "Malformed",
    "ValueCursor",
    "expect_key",
    "scan_array",
    "scan_call",
    "scan_value",
    "skip_space",
]

_SPACE = " \t\r\n"


class Malformed(Exception):
    """The text cannot become a call of the expected shape."""


class _Incomplete(Exception):
    """The text ends before the construct does."""


class CallScan:
    """How much of one call object the text holds so far."""

    __slots__ = ("args_end", "args_start", "args_string", "end", "malformed", "name")

    def __init__(self) -> None:
        self.name: str | None = None
        self.args_start: int | None = None
        self.args_end: int | None = None
        # Some models write the arguments as a JSON string holding the JSON.
        self.args_string = False
        # Just past the object's closing brace, once it has one.
        self.end: int | None = None
        # What follows what was read is not JSON of the expected shape; what was
        # read (a name, whole arguments) still counts, as it would have streamed.
        self.malformed = False


def skip_space(text: str, i: int) -> int:
    while i < len(text) and text[i] in _SPACE:
        i += 1
    return i


def _expect(text: str, i: int, char: str) -> int:
    if i >= len(text):
        raise _Incomplete
    if text[i] != char:
        raise Malformed(f"expected {char!r} at {i}")
    return i + 1


def _string_end(text: str, i: int) -> int:
    j = i + 1
    while j < len(text):
        char = text[j]
        if char == "\\":
            j += 2
            continue
        if char == '"':
            return j + 1
        j += 1
    raise _Incomplete


class ValueCursor:
    """Where one JSON value ends, reading each character once as the text grows.

    A call's arguments may run to many kilobytes (an agent writing a file); they
    are followed with this, piece by piece, instead of scanning the call again.
    """

    __slots__ = ("_depth", "_escape", "_in_string", "_kind", "pos")

    def __init__(self, start: int) -> None:
        self.pos = start
        self._kind = ""
        self._depth = 0
        self._in_string = False
        self._escape = False

    def advance(self, text: str) -> int | None:
        """Past the value's end once ``text`` holds it, else None (call again later)."""
        i, n = self.pos, len(text)
        if not self._kind:
            if i >= n:
                return None
            char = text[i]
            self._kind = "string" if char == '"' else "nested" if char in "{[" else "literal"
            if self._kind == "string":
                self._in_string = True
                i += 1
        while i < n:
            char = text[i]
            i += 1
            if self._in_string:
                if self._escape:
                    self._escape = False
                elif char == "\\":
                    self._escape = True
                elif char == '"':
                    self._in_string = False
                    if self._kind == "string":
                        self.pos = i
                        return i
            elif self._kind == "literal":
                if char in ",}]" + _SPACE:
                    self.pos = i - 1
                    return i - 1
            elif char == '"':
                self._in_string = True
            elif char in "{[":
                self._depth += 1
            elif char in "}]":
                self._depth -= 1
                if self._depth == 0:
                    self.pos = i
                    return i
        self.pos = i
        return None


def _value_end(text: str, i: int) -> int:
    end = ValueCursor(i).advance(text)
    if end is None:
        raise _Incomplete
    if end == i:
        raise Malformed(f"expected a value at {i}")
    return end


def _decode(text: str) -> object:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise Malformed(str(exc)) from None


def _members(text: str, i: int, scan: CallScan, arg_keys: tuple[str, ...]) -> None:
    i = _expect(text, skip_space(text, i), "{")
    while True:
        i = skip_space(text, i)
        if i >= len(text):
            raise _Incomplete
        if text[i] == "}":
            scan.end = i + 1
            return
        if text[i] != '"':
            raise Malformed(f"expected a key at {i}")
        key_end = _string_end(text, i)
        key = _decode(text[i:key_end])
        i = skip_space(text, _expect(text, skip_space(text, key_end), ":"))
        if i >= len(text):
            raise _Incomplete
        if key in arg_keys:
            scan.args_start, scan.args_string = i, text[i] == '"'
            i = scan.args_end = _value_end(text, i)
        elif key == "function" and text[i] == "{":
            # OpenAI's own shape, which some models write: {"type": "function",
            # "function": {"name": ..., "arguments": ...}}.
            _members(text, i, scan, arg_keys)
            assert scan.end is not None
            i, scan.end = scan.end, None
        else:
            end = _value_end(text, i)
            if key == "name":
                name = _decode(text[i:end])
                if not isinstance(name, str) or not name:
                    raise Malformed("a call's name must be a non-empty string")
                scan.name = name
            i = end
        i = skip_space(text, i)
        if i >= len(text):
            raise _Incomplete
        if text[i] == ",":
            i += 1
        elif text[i] != "}":
            raise Malformed(f"expected ',' or '}}' at {i}")


def scan_call(text: str, i: int, arg_keys: tuple[str, ...]) -> CallScan:
    """What the call object starting at ``i`` holds so far."""
    scan = CallScan()
    try:
        _members(text, i, scan, arg_keys)
    except _Incomplete:
        pass
    except Malformed:
        scan.malformed = True
    return scan


def scan_array(text: str, i: int, arg_keys: tuple[str, ...]) -> tuple[list[CallScan], int | None]:
    """The calls of a JSON array of call objects, and the index past its ``]`` if closed
    (-1: malformed after the calls returned)."""
    calls: list[CallScan] = []
    try:
        i = _expect(text, skip_space(text, i), "[")
        while True:
            i = _next(text, i)
            if text[i] == "]" and not calls:
                return calls, i + 1
            scan = scan_call(text, i, arg_keys)
            calls.append(scan)
            if scan.malformed:
                return calls, -1
            if scan.end is None:
                return calls, None
            i = _next(text, scan.end)
            if text[i] == "]":
                return calls, i + 1
            i = _expect(text, i, ",")
    except _Incomplete:
        return calls, None
    except Malformed:
        return calls, -1


def _next(text: str, i: int) -> int:
    """The next character that is not whitespace (_Incomplete if there is none yet)."""
    i = skip_space(text, i)
    if i >= len(text):
        raise _Incomplete
    return i


def expect_key(text: str, i: int, key: str) -> int | None:
    """Past ``{"key":`` at ``i`` (None while incomplete; Malformed if another key)."""
    try:
        i = _expect(text, skip_space(text, i), "{")
        i = skip_space(text, i)
        if i < len(text) and text[i] != '"':
            raise Malformed(f"expected a key at {i}")
        end = _string_end(text, i)
        if _decode(text[i:end]) != key:
            raise Malformed(f"expected the key {key!r}")
        return _expect(text, skip_space(text, end), ":")
    except _Incomplete:
        return None


def scan_value(text: str, i: int) -> int | None:
    """Past the JSON value at ``i``, or None while it is incomplete."""
    return ValueCursor(i).advance(text)
