"""One gzip member made of parts deflated separately, so that a part shared by many responses is
compressed once and only the parts that change are compressed per response.

Each part is raw deflate ending on a byte boundary without a final block (a sync flush), so parts
written one after the other are one valid deflate stream: the technique of pigz, which compresses a
file's blocks in parallel. The result is a single gzip member, not several concatenated ones: every
gzip reader accepts it (some HTTP clients, httpx among them, read only the first member of a
multi-member body). The member's CRC-32 is combined from the parts' own (zlib's ``crc32_combine``,
which Python's zlib does not expose), so that no shared part is read again per response.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

#: CRC-32's polynomial, reflected (as zlib writes it).
_POLY = 0xEDB88320
#: The gzip header: deflate, no flags, no time (as Go writes it), fastest compression (XFL 4), OS unknown.
GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x04\xff"
#: An empty final block (fixed Huffman, end of block): closes a stream of sync-flushed parts.
_FINAL_BLOCK = b"\x03\x00"
#: zlib level 1: the fastest (what the server used before; a tenth of the text's size for an exposition).
LEVEL = 1


def _multmodp(a: int, b: int) -> int:
    """a times b modulo the CRC polynomial (bit-reflected), as zlib's ``multmodp``."""
    m = 1 << 31
    product = 0
    while True:
        if a & m:
            product ^= b
            if not a & (m - 1):
                return product
        m >>= 1
        b = (b >> 1) ^ _POLY if b & 1 else b >> 1


def _powers() -> tuple[int, ...]:
    """x^(2^k) modulo the polynomial, for k = 0..31."""
    powers = [1 << 30]  # x^1
    for _ in range(31):
        powers.append(_multmodp(powers[-1], powers[-1]))
    return tuple(powers)


_X2N = _powers()


def crc32_shift(length: int) -> int:
    """x^(8 * length) modulo the polynomial: what moves a CRC-32 across ``length`` bytes."""
    product, k = 1 << 31, 3  # x^0; bytes are 2^3 bits
    while length:
        if length & 1:
            product = _multmodp(_X2N[k & 31], product)
        length >>= 1
        k += 1
    return product


def crc32_combine(crc1: int, crc2: int, length2: int) -> int:
    """The CRC-32 of A + B from A's CRC-32, B's and B's length."""
    return _multmodp(crc32_shift(length2), crc1) ^ crc2


#: Small pieces are compressed this many bytes at a time (one call per piece would cost more than zlib).
_BATCH = 64 * 1024


@dataclass(frozen=True, slots=True)
class Part:
    """Some bytes of a body, as the pieces they are made of (not joined: they may be shared), with their
    deflate stream (raw, sync-flushed, no final block), their CRC-32 and size, and the operator that moves
    a CRC-32 across them."""

    pieces: tuple[bytes, ...]
    size: int
    deflated: bytes
    crc: int
    shift: int

    @classmethod
    def of(cls, *pieces: bytes) -> Part:
        compressor = zlib.compressobj(LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
        out: list[bytes] = []
        crc = size = 0
        batch: list[bytes] = []
        batched = 0
        for piece in (*pieces, b""):
            if piece and len(piece) < _BATCH and batched + len(piece) <= _BATCH:
                batch.append(piece)
                batched += len(piece)
                continue
            for data in (b"".join(batch), piece):
                if data:
                    out.append(compressor.compress(data))
                    crc = zlib.crc32(data, crc)
                    size += len(data)
            batch, batched = [], 0
        if not size:
            return _EMPTY
        out.append(compressor.flush(zlib.Z_SYNC_FLUSH))
        return cls(tuple(p for p in pieces if p), size, b"".join(out), crc, crc32_shift(size))


_EMPTY = Part((), 0, b"", 0, 1 << 31)


def gzip_chunks(parts: Iterable[Part]) -> Iterator[bytes]:
    """A gzip member of the parts' bytes, in order, as the chunks to send (no part is copied)."""
    crc = size = 0
    yield GZIP_HEADER
    for part in parts:
        if part.deflated:
            yield part.deflated
        crc = _multmodp(part.shift, crc) ^ part.crc
        size += part.size
    yield _FINAL_BLOCK + struct.pack("<II", crc, size & 0xFFFFFFFF)


__all__ = ["GZIP_HEADER", "Part", "crc32_combine", "crc32_shift", "gzip_chunks"]
