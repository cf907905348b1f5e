"""The chunked-transfer reader of followed logs: any cut of the body gives the same bytes,
chunk extensions and trailers are understood, malformed framing is an error, not data."""

from __future__ import annotations

import random

import pytest

from kubectl_gadget.cluster.logstream import Dechunker, StreamError, status_message


def _chunked(pieces: list[bytes], ext: bool = False) -> bytes:
    out = b""
    for i, p in enumerate(pieces):
        size = b"%x" % len(p)
        if ext and i % 3 == 0:
            size += b";name=value"
        out += size + b"\r\n" + p + b"\r\n"
    return out + b"0\r\nTrailer: x\r\n\r\n"


def _feed(body: bytes, cuts: list[int]) -> tuple[bytes, bool]:
    d, got, pos = Dechunker(), b"", 0
    for cut in [*cuts, len(body)]:
        got += d.feed(body[pos:cut])
        pos = cut
    return got, d.done


@pytest.mark.parametrize("seed", range(20))
def test_any_cut_of_a_chunked_body_gives_the_same_bytes(seed: int) -> None:
    rng = random.Random(seed)
    # Lines that contain CRLF and hex-looking text must not confuse the framing.
    pieces = [rng.choice([b'{"a":1}\n', b"1a\r\n\r\n", b"\r\n", b"x" * 7000, b"0\r\n"])
              for _ in range(rng.randint(1, 40))]
    body = _chunked(pieces, ext=bool(seed % 2))
    cuts = sorted(rng.sample(range(1, len(body)), min(len(body) - 1, rng.randint(0, 30))))
    got, done = _feed(body, cuts)
    assert got == b"".join(pieces)
    assert done
    if len(body) < 5000:
        one_byte, done = _feed(body, list(range(1, len(body))))
        assert one_byte == got and done


def test_nothing_after_the_last_chunk_is_data() -> None:
    d = Dechunker()
    assert d.feed(b"3\r\nabc\r\n0\r\n\r\n3\r\nxyz\r\n") == b"abc"
    assert d.done


@pytest.mark.parametrize("body", [b"zz\r\nabc\r\n", b"3\r\nabcX\r\n", b"-3\r\nabc\r\n",
                                  b"\r\nabc\r\n", b"9" * 5000])
def test_malformed_framing_is_an_error(body: bytes) -> None:
    with pytest.raises(StreamError):
        Dechunker().feed(body)


def test_status_bodies_give_the_api_message() -> None:
    body = b'{"kind":"Status","message":"pods \\"x\\" not found","reason":"NotFound"}'
    assert status_message(body, "Not Found") == ('pods "x" not found', "NotFound")
    assert status_message(b"<html>", "Bad Gateway") == ("Bad Gateway", "")
    assert status_message(b"[1]", "") == ("error", "")
