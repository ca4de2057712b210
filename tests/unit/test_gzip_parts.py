"""gzip_parts: parts deflated separately make one gzip member of their joined bytes, whose CRC-32 is
combined from theirs."""

from __future__ import annotations

import gzip
import zlib

from hypothesis import given
from hypothesis import strategies as st

from exporter.web.gzip_parts import GZIP_HEADER, Part, crc32_combine, gzip_chunks

texts = st.lists(st.binary(max_size=3000) | st.text(max_size=2000).map(str.encode), max_size=8)


@given(texts)
def test_parts_make_one_gzip_member_of_their_joined_bytes(raws: list[bytes]) -> None:
    body = b"".join(gzip_chunks(Part.of(raw) for raw in raws))
    assert body.startswith(GZIP_HEADER)
    # One member, read whole (a reader of the first member only sees everything), and a valid trailer.
    reader = zlib.decompressobj(16 + zlib.MAX_WBITS)
    assert reader.decompress(body) == b"".join(raws)
    assert reader.eof
    assert reader.unused_data == b""
    assert gzip.decompress(body) == b"".join(raws)


@given(st.binary(max_size=5000), st.binary(max_size=5000))
def test_combined_crc_is_the_crc_of_the_joined_bytes(first: bytes, second: bytes) -> None:
    assert crc32_combine(zlib.crc32(first), zlib.crc32(second), len(second)) == zlib.crc32(first + second)


def test_a_part_reused_by_many_bodies_is_compressed_once() -> None:
    shared = Part.of(b"northflank_up 1\n" * 10_000)
    one = b"".join(gzip_chunks([shared, Part.of(b"a 1\n")]))
    other = b"".join(gzip_chunks([shared, Part.of(b"b 2\n")]))
    assert gzip.decompress(one).endswith(b"a 1\n")
    assert gzip.decompress(other).endswith(b"b 2\n")
    assert shared.deflated in one
    assert shared.deflated in other
