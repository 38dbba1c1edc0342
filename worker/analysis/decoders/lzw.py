"""Unix `compress` (.Z) decoding: LZW with 9 to 16-bit codes, streamed in bounded blocks.

The format is the one `ncompress` writes: magic 1F 9D, a flags byte (maximum code width
in the low five bits, block mode in the top bit: code 256 clears the table), then codes
packed least significant bit first. Codes are written in groups of eight; when the code
width grows or the table is cleared, the rest of the current group is padding.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

MAGIC = b"\x1f\x9d"
BLOCK_MODE = 0x80
CLEAR = 256
OUTPUT_BLOCK = 256 * 1024
INPUT_BLOCK = 64 * 1024


class LZWError(ValueError):
    """The stream is not valid compress data."""


def decompress(read: Callable[[int], bytes]) -> Iterator[bytes]:
    """Decode a .Z stream read through `read`, yielding blocks of at most about 256 KiB."""
    header = read(3)
    if len(header) < 3 or header[:2] != MAGIC:
        raise LZWError("not compress data (bad magic)")
    max_bits = header[2] & 0x1F
    block_mode = bool(header[2] & BLOCK_MODE)
    if not 9 <= max_bits <= 16:
        raise LZWError(f"unsupported maximum code width {max_bits}")
    max_code = 1 << max_bits
    # Each code is a (prefix code, last byte, length) triple; strings are rebuilt by walking
    # prefixes, so the table stays small whatever the strings' lengths.
    prefix = [0] * max_code
    suffix = bytearray(range(256)) + bytearray(max_code - 256)
    length = [1] * 256 + [0] * (max_code - 256)
    first_free = 257 if block_mode else 256
    free = first_free
    bits = 9
    codes_in_group = 0  # codes read since the width last changed, for the group padding
    accumulator = 0
    held = 0  # bits held in the accumulator
    previous = -1
    previous_first = 0
    out = bytearray()
    data = b""
    position = 0
    while True:
        while held < bits:
            if position >= len(data):
                data = read(INPUT_BLOCK)
                position = 0
                if not data:
                    if out:
                        yield bytes(out)
                    return
            accumulator |= data[position] << held
            position += 1
            held += 8
        code = accumulator & ((1 << bits) - 1)
        accumulator >>= bits
        held -= bits
        codes_in_group += 1
        if code == CLEAR and block_mode:
            # Skip the rest of this group of eight codes, then restart at 9 bits.
            skip_bits = ((8 - codes_in_group % 8) % 8) * bits
            accumulator, held, data, position = skip(accumulator, held, data, position, skip_bits, read)
            free, bits, codes_in_group, previous = first_free, 9, 0, -1
            continue
        if code < free:
            entry = code
        elif code == free and previous >= 0:
            entry = -1  # the KwKwK case: previous string plus its own first byte
        else:
            raise LZWError(f"invalid code {code} (table holds {free})")
        if entry >= 0:
            size = length[entry]
            text = bytearray(size)
            walk = entry
            for index in range(size - 1, -1, -1):
                text[index] = suffix[walk]
                walk = prefix[walk]
        else:
            text = rebuild(previous, prefix, suffix, length)
            text.append(previous_first)
        if previous >= 0 and free < max_code:
            prefix[free], suffix[free], length[free] = previous, text[0], length[previous] + 1
            free += 1
        previous, previous_first = code, text[0]
        out += text
        if len(out) >= OUTPUT_BLOCK:
            yield bytes(out)
            out.clear()
        if free >= (1 << bits) and bits < max_bits:
            skip_bits = ((8 - codes_in_group % 8) % 8) * bits
            accumulator, held, data, position = skip(accumulator, held, data, position, skip_bits, read)
            bits += 1
            codes_in_group = 0


def rebuild(code: int, prefix: list[int], suffix: bytearray, length: list[int]) -> bytearray:
    text = bytearray(length[code])
    for index in range(len(text) - 1, -1, -1):
        text[index] = suffix[code]
        code = prefix[code]
    return text


def skip(
    accumulator: int, held: int, data: bytes, position: int, count: int, read: Callable[[int], bytes]
) -> tuple[int, int, bytes, int]:
    """Drop `count` bits of group padding (the stream may end inside the padding)."""
    taken = min(count, held)
    accumulator >>= taken
    held -= taken
    count -= taken
    while count >= 8:
        if position >= len(data):
            data = read(INPUT_BLOCK)
            position = 0
            if not data:
                return 0, 0, data, 0
        whole = min(count // 8, len(data) - position)
        position += whole
        count -= whole * 8
    if count:
        if position >= len(data):
            data = read(INPUT_BLOCK)
            position = 0
            if not data:
                return 0, 0, data, 0
        accumulator = data[position] >> count
        held = 8 - count
        position += 1
    return accumulator, held, data, position
