from __future__ import annotations

from engines.llamacpp._text import TextAssembler


def _run(stops: tuple[str, ...], pieces: list[bytes]) -> tuple[list[str], bool]:
    text = TextAssembler(stops)
    out = [text.feed(p) for p in pieces]
    out.append(text.flush())
    return out, text.stopped


def test_plain_text_passes_straight_through() -> None:
    assert _run((), [b"Hel", b"lo"]) == (["Hel", "lo", ""], False)


def test_split_utf8_is_held_until_complete() -> None:
    e_acute = "é".encode()
    out, _ = _run((), [b"caf", e_acute[:1], e_acute[1:], b"!"])
    assert out == ["caf", "", "é", "!", ""]


def test_stop_string_is_cut_and_not_sent() -> None:
    out, stopped = _run(("END",), [b"abc E", b"N", b"D tail"])
    assert stopped
    assert "".join(out) == "abc "
    # "E" and "EN" could still become "END": they are held back, not sent early.
    assert out[0] == "abc "


def test_a_false_start_is_released() -> None:
    out, stopped = _run(("END",), [b"E", b"N", b"d"])
    assert not stopped
    assert "".join(out) == "ENd"


def test_earliest_of_several_stops_wins() -> None:
    out, stopped = _run(("world", "lo w"), [b"hello world"])
    assert stopped
    assert "".join(out) == "hel"
