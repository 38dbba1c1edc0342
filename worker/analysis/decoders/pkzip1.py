"""PKZIP 1.x member decoding (shrink and implode), streamed in bounded blocks.

Both methods follow PKWARE's APPNOTE.TXT ("Shrinking", "Imploding"): bits are read least
significant first; shrink is LZW with 9 to 13-bit codes, widened by an explicit escape, and
a partial clear that frees the table's leaves; implode is LZ77 over a 4 or 8 KiB window with
Shannon-Fano coded lengths, distances and, optionally, literals. Like Info-ZIP, references
before the start of the output read zeros. Output comes in blocks of at most
about OUTPUT_BLOCK bytes, so a caller's limits stop a bomb while it expands.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

OUTPUT_BLOCK = 256 * 1024
INPUT_BLOCK = 64 * 1024
SLACK_BYTES = 4  # implode may read a few bits past the data's last byte


class DecodeError(ValueError):
    """The member's compressed data is not valid for its method."""


class BitReader:
    """Bits least significant first from a byte source."""

    def __init__(self, read: Callable[[int], bytes]):
        self.read = read
        self.value = 0
        self.count = 0
        self.overrun = 0
        self.exhausted = False

    def fill(self, wanted: int) -> bool:
        """True if `wanted` bits are available from the data (not counting slack)."""
        while self.count < wanted:
            data = b"" if self.exhausted else self.read(INPUT_BLOCK)
            if not data:
                self.exhausted = True
                return False
            self.value |= int.from_bytes(data, "little") << self.count
            self.count += 8 * len(data)
        return True

    def take(self, bits: int) -> int:
        if self.count < bits and not self.fill(bits):
            self.overrun += bits
            if self.overrun > 8 * SLACK_BYTES:
                raise DecodeError("compressed data ends early")
            self.count += bits  # zeros past the end
        value = self.value & ((1 << bits) - 1)
        self.value >>= bits
        self.count -= bits
        return value


class Window:
    """Output history for back-references, handed out in bounded blocks."""

    def __init__(self, size: int, total: int):
        self.size = size
        self.buffer = bytearray(size)  # zeros before the start, as Info-ZIP reads them
        self.emitted = size
        self.left = total

    def literal(self, byte: int) -> None:
        self.buffer.append(byte)
        self.left -= 1

    def copy(self, distance: int, length: int) -> None:
        length = min(length, self.left)
        if distance > self.size:
            raise DecodeError(f"distance {distance} beyond the {self.size}-byte window")
        start = len(self.buffer) - distance
        if distance >= length:
            self.buffer += self.buffer[start : start + length]
        else:
            pattern = self.buffer[start:]
            self.buffer += (pattern * (length // distance + 1))[:length]
        self.left -= length

    def ready(self) -> bytes | None:
        if len(self.buffer) - self.emitted < OUTPUT_BLOCK and self.left > 0:
            return None
        return self.take()

    def take(self) -> bytes:
        block = bytes(self.buffer[self.emitted :])
        del self.buffer[: len(self.buffer) - self.size]
        self.emitted = len(self.buffer)
        return block


# Shrink ---------------------------------------------------------------------------------

SHRINK_ESCAPE = 256
SHRINK_MAX_BITS = 13
SHRINK_TABLE = 1 << SHRINK_MAX_BITS
FREE = -1


def unshrink(read: Callable[[int], bytes], size: int) -> Iterator[bytes]:
    """Method 1. Ends at `size` bytes or where the codes end."""
    bits = BitReader(read)
    parent = [0] * 256 + [FREE] * (SHRINK_TABLE - 256)
    suffix = bytearray(range(256)) + bytearray(SHRINK_TABLE - 256)
    code_size = 9
    next_free = 257
    previous = -1
    out = bytearray()
    produced = 0
    while produced + len(out) < size and bits.fill(code_size):
        code = bits.take(code_size)
        if code == SHRINK_ESCAPE:
            if not bits.fill(code_size):
                break
            control = bits.take(code_size)
            if control == 1:
                code_size += 1
                if code_size > SHRINK_MAX_BITS:
                    raise DecodeError("shrink code size above 13 bits")
            elif control == 2:
                partial_clear(parent)
                next_free = find_free(parent, 257)
            else:
                raise DecodeError(f"unknown shrink control code {control}")
            continue
        if previous < 0:
            if code > 255:
                raise DecodeError("shrink data starts with a string code")
            out.append(code)
            previous = code
            continue
        if parent[code] == FREE:
            if code != next_free:
                raise DecodeError(f"shrink code {code} not in the table")
            string = spell(previous, parent, suffix)
            string.append(string[0])
        else:
            string = spell(code, parent, suffix)
        if next_free < SHRINK_TABLE:
            parent[next_free] = previous
            suffix[next_free] = string[0]
            next_free = find_free(parent, next_free + 1)
        out += string
        previous = code
        if len(out) >= OUTPUT_BLOCK:
            produced += len(out)
            yield bytes(out)
            out.clear()
    remaining = size - produced
    if out:
        yield bytes(out[:remaining])


def spell(code: int, parent: list[int], suffix: bytearray) -> bytearray:
    string = bytearray()
    steps = 0
    while code > 255:
        string.append(suffix[code])
        code = parent[code]
        steps += 1
        if code == FREE or steps > SHRINK_TABLE:
            raise DecodeError("shrink table refers to a freed code")
    string.append(code)
    string.reverse()
    return string


def find_free(parent: list[int], start: int) -> int:
    code = start
    while code < SHRINK_TABLE and parent[code] != FREE:
        code += 1
    return code


def partial_clear(parent: list[int]) -> None:
    """Free every string code that no other code extends."""
    has_child = [False] * SHRINK_TABLE
    for code in range(257, SHRINK_TABLE):
        if parent[code] > 256:
            has_child[parent[code]] = True
    for code in range(257, SHRINK_TABLE):
        if not has_child[code]:
            parent[code] = FREE


# Implode --------------------------------------------------------------------------------


class ShannonFano:
    """A Shannon-Fano code read from its compressed description (APPNOTE 5.3.7)."""

    def __init__(self, bits: BitReader, values: int):
        lengths: list[int] = []
        for _ in range(bits.take(8) + 1):
            byte = bits.take(8)
            lengths += [(byte & 0x0F) + 1] * ((byte >> 4) + 1)
        if len(lengths) != values:
            raise DecodeError(f"Shannon-Fano tree of {len(lengths)} lengths, {values} expected")
        order = sorted(range(values), key=lambda value: lengths[value])
        self.codes: dict[tuple[int, int], int] = {}
        code = increment = last_length = 0
        for value in reversed(order):
            code += increment
            if lengths[value] != last_length:
                last_length = lengths[value]
                increment = 1 << (16 - last_length)
            if code >= 1 << 16:
                raise DecodeError("oversubscribed Shannon-Fano tree")
            self.codes[(last_length, code >> (16 - last_length))] = value
        self.longest = max(lengths)

    def decode(self, bits: BitReader) -> int:
        code = 0
        for length in range(1, self.longest + 1):
            code = (code << 1) | bits.take(1)
            value = self.codes.get((length, code))
            if value is not None:
                return value
        raise DecodeError("invalid Shannon-Fano code")


def explode(read: Callable[[int], bytes], size: int, flags: int) -> Iterator[bytes]:
    """Method 6; `flags` is the general purpose bit flag (bit 1: 8 KiB window, bit 2: three trees)."""
    bits = BitReader(read)
    large_window = bool(flags & 0x02)
    literal_tree = ShannonFano(bits, 256) if flags & 0x04 else None
    length_tree = ShannonFano(bits, 64)
    distance_tree = ShannonFano(bits, 64)
    low_bits = 7 if large_window else 6
    minimum = 3 if literal_tree else 2
    window = Window(8192 if large_window else 4096, size)
    while window.left > 0:
        if bits.take(1):
            window.literal(literal_tree.decode(bits) if literal_tree else bits.take(8))
        else:
            low = bits.take(low_bits)
            distance = (distance_tree.decode(bits) << low_bits | low) + 1
            length = length_tree.decode(bits)
            if length == 63:
                length += bits.take(8)
            window.copy(distance, length + minimum)
        if block := window.ready():
            yield block
    if block := window.take():
        yield block
