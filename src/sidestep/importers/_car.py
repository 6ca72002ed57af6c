"""CAR v1 files and the DAG-CBOR in them, read just far enough for an atproto repository.

A CAR is a varint-prefixed DAG-CBOR header `{version: 1, roots: [CID]}` and then blocks,
each a varint length, a CID and the block's bytes. `CarIndex` records where each block is
(offset and length) in one pass and reads a block only when asked, so a repository of any
size costs memory for the index only. CIDs are kept as their binary form (bytes).

DAG-CBOR is CBOR with definite lengths, string map keys and tag 42 for links (a CID as a
byte string with a leading 0x00). `decode` reads that subset; anything else is CarError.
"""

from __future__ import annotations

import struct
from typing import Any, BinaryIO

MAX_BLOCK_BYTES = 2 << 20  # atproto caps blocks at 2 MiB; a bigger one is not a repository
MAX_DEPTH = 64


class CarError(ValueError):
    """The bytes are not a CAR v1 file of DAG-CBOR blocks as atproto writes them."""


class Link(bytes):
    """A CID found inside a block (CBOR tag 42): binary CID, without the 0x00 prefix."""


def read_varint(stream: BinaryIO) -> int | None:
    """An unsigned LEB128 varint; None at a clean end of stream."""
    shift = result = 0
    while True:
        byte = stream.read(1)
        if not byte:
            if shift == 0:
                return None
            raise CarError("the file ends inside a varint")
        result |= (byte[0] & 0x7F) << shift
        if not byte[0] & 0x80:
            return result
        shift += 7
        if shift > 63:
            raise CarError("varint too long")


def _varint_at(data: bytes, pos: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        if pos >= len(data):
            raise CarError("a CID ends inside a varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise CarError("varint too long")


def cid_length(data: bytes) -> int:
    """How many bytes the CID at the start of `data` takes (CIDv0 or CIDv1)."""
    if data[:2] == b"\x12\x20":
        return 34  # CIDv0: a bare sha2-256 multihash
    version, pos = _varint_at(data, 0)
    if version != 1:
        raise CarError(f"unsupported CID version {version}")
    _codec, pos = _varint_at(data, pos)
    _hash_code, pos = _varint_at(data, pos)
    digest_length, pos = _varint_at(data, pos)
    return pos + digest_length


class CarIndex:
    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        header_length = read_varint(stream)
        if header_length is None or header_length > MAX_BLOCK_BYTES:
            raise CarError("no CAR header")
        header = decode(stream.read(header_length))
        if not isinstance(header, dict) or header.get("version") != 1:
            raise CarError("not a CAR version 1 file")
        self.roots: list[bytes] = [bytes(r) for r in header.get("roots") or []]
        self._blocks: dict[bytes, tuple[int, int]] = {}
        while (length := read_varint(stream)) is not None:
            if length > MAX_BLOCK_BYTES + 64:
                raise CarError(f"a block of {length} bytes; atproto allows 2 MiB")
            start = stream.tell()
            head = stream.read(min(length, 64))
            cid_bytes = cid_length(head)
            self._blocks[head[:cid_bytes]] = (start + cid_bytes, length - cid_bytes)
            stream.seek(start + length)

    def __contains__(self, cid: bytes) -> bool:
        return bytes(cid) in self._blocks

    def __len__(self) -> int:
        return len(self._blocks)

    def get(self, cid: bytes) -> Any:
        """The decoded block; KeyError when the CAR does not hold it."""
        offset, length = self._blocks[bytes(cid)]
        self._stream.seek(offset)
        return decode(self._stream.read(length))


def decode(data: bytes) -> Any:
    value, end = _decode(data, 0, 0)
    if end != len(data):
        raise CarError("trailing bytes after a DAG-CBOR value")
    return value


def _decode(data: bytes, pos: int, depth: int) -> tuple[Any, int]:
    if depth > MAX_DEPTH:
        raise CarError("DAG-CBOR nested too deeply")
    if pos >= len(data):
        raise CarError("DAG-CBOR value cut short")
    initial = data[pos]
    major, info = initial >> 5, initial & 0x1F
    pos += 1
    if major == 7:
        simple = {20: False, 21: True, 22: None}
        if info in simple:
            return simple[info], pos
        sizes = {25: (2, ">e"), 26: (4, ">f"), 27: (8, ">d")}
        if info in sizes:
            size, fmt = sizes[info]
            if pos + size > len(data):
                raise CarError("DAG-CBOR float cut short")
            return struct.unpack(fmt, data[pos:pos + size])[0], pos + size
        raise CarError(f"unsupported CBOR simple value {info}")
    if info < 24:
        argument = info
    elif info in (24, 25, 26, 27):
        size = 1 << (info - 24)
        if pos + size > len(data):
            raise CarError("DAG-CBOR value cut short")
        argument = int.from_bytes(data[pos:pos + size], "big")
        pos += size
    else:
        raise CarError("indefinite lengths are not DAG-CBOR")
    if major == 0:
        return argument, pos
    if major == 1:
        return -1 - argument, pos
    if major in (2, 3):
        end = pos + argument
        if end > len(data):
            raise CarError("DAG-CBOR string cut short")
        chunk = data[pos:end]
        if major == 2:
            return chunk, end
        try:
            return chunk.decode("utf-8"), end
        except UnicodeDecodeError as exc:
            raise CarError("a DAG-CBOR text string is not UTF-8") from exc
    if major == 4:
        items = []
        for _ in range(argument):
            item, pos = _decode(data, pos, depth + 1)
            items.append(item)
        return items, pos
    if major == 5:
        mapping: dict[str, Any] = {}
        for _ in range(argument):
            key, pos = _decode(data, pos, depth + 1)
            if not isinstance(key, str):
                raise CarError("DAG-CBOR map keys must be strings")
            mapping[key], pos = _decode(data, pos, depth + 1)
        return mapping, pos
    # major 6: a tag; DAG-CBOR has only 42, a CID
    value, pos = _decode(data, pos, depth + 1)
    if argument != 42 or not isinstance(value, bytes) or value[:1] != b"\x00":
        raise CarError(f"unsupported CBOR tag {argument}")
    return Link(value[1:]), pos


def cid_text(cid: bytes) -> str:
    """The CID in its usual text form (base32 lower, multibase prefix `b`) for CIDv1."""
    import base64

    if cid[:2] == b"\x12\x20":
        return cid.hex()
    return "b" + base64.b32encode(cid).decode().lower().rstrip("=")
