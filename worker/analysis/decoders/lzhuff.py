"""LZ77 with static Huffman blocks: LHA's -lh5-/-lh6-/-lh7- and ARJ's methods 1 to 3, plus ARJ's method 4.

Both archivers descend from Haruhiko Okumura's public-domain `ar002`: blocks of up to 65535
codes, each block starting with three canonical Huffman code-length tables (the pre-table,
the literal/length table of 510 codes, the position table), bits read most significant
first. They differ only in the dictionary size and the width of the position-table count.
ARJ's method 4 has no Huffman tables: lengths and positions are unary-prefixed integers.

Decoding yields blocks of at most about 256 KiB and stops at the original size the header
gives; the caller's limits decide how much of that is accepted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

THRESHOLD = 3  # shortest match
LITERALS = 256
NC = LITERALS + 256 + 2 - THRESHOLD  # 510 literal/length codes
NT = 16 + 3  # pre-table codes
TBIT = 5
CBIT = 9
MAX_CODE_BITS = 16
OUTPUT_BLOCK = 256 * 1024
INPUT_BLOCK = 64 * 1024
# Past the end of the compressed data the bit reader returns zeros, as ar002 does; this
# many spare bytes are tolerated before the stream counts as truncated.
SLACK_BYTES = 8


class DecodeError(ValueError):
    """The compressed data is damaged (a bad table, a match before the start, a short stream)."""


@dataclass(frozen=True)
class Method:
    name: str
    dictionary: int  # bytes of history a match may reach back
    positions: int  # NP: position codes
    position_bits: int  # PBIT: width of the position-table count
    fill: int  # what the history holds before the first byte


LH5 = Method("-lh5-", 1 << 13, 14, 4, 0x20)
LH6 = Method("-lh6-", 1 << 15, 16, 5, 0x20)
LH7 = Method("-lh7-", 1 << 16, 17, 5, 0x20)
ARJ = Method("arj", 26624, 17, 5, 0)


class BitReader:
    """Bits most significant first from a byte source; zeros past its end, up to a little slack."""

    def __init__(self, read: Callable[[int], bytes]):
        self.read = read
        self.data = b""
        self.position = 0
        self.value = 0
        self.count = 0
        self.overrun = 0

    def fill(self, wanted: int) -> None:
        while self.count < wanted:
            if self.position >= len(self.data):
                self.data = self.read(INPUT_BLOCK)
                self.position = 0
                if not self.data:
                    self.overrun += 1
                    if self.overrun > SLACK_BYTES:
                        raise DecodeError("compressed data ends early")
                    self.value = (self.value << 8) & 0xFFFFFFFFFFFF
                    self.count += 8
                    continue
            self.value = ((self.value << 8) | self.data[self.position]) & 0xFFFFFFFFFFFF
            self.position += 1
            self.count += 8

    def peek(self, bits: int) -> int:
        if self.count < bits:
            self.fill(bits)
        return (self.value >> (self.count - bits)) & ((1 << bits) - 1)

    def skip(self, bits: int) -> None:
        if self.count < bits:
            self.fill(bits)
        self.count -= bits

    def take(self, bits: int) -> int:
        if bits == 0:
            return 0
        value = self.peek(bits)
        self.count -= bits
        return value


class Table:
    """A canonical Huffman code as a lookup table indexed by the next `width` bits."""

    def __init__(self, lengths: list[int], single: int | None = None):
        self.lengths = lengths
        if single is not None:
            self.width, self.symbols = 0, [single]
            self.lengths = [0] * len(lengths)
            return
        width = max(lengths)
        if width == 0 or width > MAX_CODE_BITS:
            raise DecodeError("bad Huffman table")
        self.width = width
        symbols = [0] * (1 << width)
        code = 0
        for length in range(1, width + 1):
            for symbol, symbol_length in enumerate(lengths):
                if symbol_length != length:
                    continue
                span = 1 << (width - length)
                start = code << (width - length)
                symbols[start : start + span] = [symbol] * span
                code += 1
            code <<= 1
        if code != 1 << (width + 1):
            raise DecodeError("bad Huffman table (incomplete or oversubscribed)")
        self.symbols = symbols

    def decode(self, bits: BitReader) -> int:
        if self.width == 0:
            return self.symbols[0]
        symbol = self.symbols[bits.peek(self.width)]
        bits.skip(self.lengths[symbol])
        return symbol


def read_pt_len(bits: BitReader, count: int, width: int, special: int) -> Table:
    n = bits.take(width)
    if n == 0:
        single = bits.take(width)
        if single >= count:
            raise DecodeError("bad single-code table")
        return Table([0] * count, single)
    if n > count:
        raise DecodeError("bad table size")
    lengths = [0] * count
    index = 0
    while index < n:
        length = bits.peek(3)
        if length == 7:
            bits.skip(3)
            while bits.take(1):
                length += 1
                if length > MAX_CODE_BITS:
                    raise DecodeError("bad code length")
        else:
            bits.skip(3)
        lengths[index] = length
        index += 1
        if index == special:
            index += bits.take(2)
    return Table(lengths[:count])


def read_c_len(bits: BitReader, pre: Table) -> Table:
    n = bits.take(CBIT)
    if n == 0:
        single = bits.take(CBIT)
        if single >= NC:
            raise DecodeError("bad single-code table")
        return Table([0] * NC, single)
    if n > NC:
        raise DecodeError("bad table size")
    lengths = [0] * NC
    index = 0
    while index < n:
        code = pre.decode(bits)
        if code <= 2:
            run = 1 if code == 0 else bits.take(4) + 3 if code == 1 else bits.take(CBIT) + 20
            index += run
        else:
            lengths[index] = code - 2
            index += 1
    if index > NC:
        raise DecodeError("code lengths overrun the table")
    return Table(lengths)


class History:
    """Output with the last `dictionary` bytes kept for matches; full blocks are handed out."""

    def __init__(self, method: Method):
        self.keep = method.dictionary
        # Pre-filled so that a match reaching before the first byte reads the fill byte.
        self.out = bytearray([method.fill]) * method.dictionary
        self.start = method.dictionary  # where data not yet handed out begins

    def copy(self, distance: int, length: int) -> None:
        out = self.out
        if distance >= self.keep:
            raise DecodeError("match reaches past the dictionary")
        start = len(out) - distance - 1  # the history always holds `keep` bytes
        if distance + 1 >= length:
            out += out[start : start + length]
        else:
            pattern = out[start:]
            out += (pattern * (length // len(pattern) + 1))[:length]

    def ready(self) -> bytes | None:
        if len(self.out) - self.start < OUTPUT_BLOCK:
            return None
        return self.take()

    def take(self) -> bytes:
        block = bytes(self.out[self.start :])
        del self.out[: len(self.out) - self.keep]
        self.start = len(self.out)
        return block


def decode_huffman(read: Callable[[int], bytes], size: int, method: Method) -> Iterator[bytes]:
    """Decode `size` bytes of -lh5-/-lh6-/-lh7- or ARJ 1-3 data read through `read`."""
    bits = BitReader(read)
    history = History(method)
    out = history.out
    produced = 0
    remaining_in_block = 0
    literal_table = position_table = Table([1, 1])
    while produced < size:
        if remaining_in_block == 0:
            remaining_in_block = bits.take(16)
            pre = read_pt_len(bits, NT, TBIT, 3)
            literal_table = read_c_len(bits, pre)
            position_table = read_pt_len(bits, method.positions, method.position_bits, -1)
            if remaining_in_block == 0:
                raise DecodeError("empty block")
        remaining_in_block -= 1
        code = literal_table.decode(bits)
        if code < LITERALS:
            out.append(code)
            produced += 1
        else:
            length = code - (LITERALS - THRESHOLD)
            position_code = position_table.decode(bits)
            distance = (
                position_code
                if position_code <= 1
                else (1 << (position_code - 1)) + bits.take(position_code - 1)
            )
            length = min(length, size - produced)
            history.copy(distance, length)
            produced += length
        if (block := history.ready()) is not None:
            yield block
            out = history.out
    yield history.take()


def unary_integer(bits: BitReader, start: int, stop: int) -> int:
    """ARJ method 4's integers: a unary prefix picks the width, from `start` to `stop` bits."""
    plus, power, width = 0, 1 << start, start
    while width < stop:
        if not bits.take(1):
            break
        plus += power
        power <<= 1
        width += 1
    return bits.take(width) + plus


def decode_fast(read: Callable[[int], bytes], size: int) -> Iterator[bytes]:
    """Decode `size` bytes of ARJ method 4 data read through `read`."""
    bits = BitReader(read)
    history = History(ARJ)
    out = history.out
    produced = 0
    while produced < size:
        length_code = unary_integer(bits, 0, 7)
        if length_code == 0:
            out.append(bits.take(8))
            produced += 1
        else:
            length = min(length_code - 1 + THRESHOLD, size - produced)
            history.copy(unary_integer(bits, 9, 13), length)
            produced += length
        if (block := history.ready()) is not None:
            yield block
            out = history.out
    yield history.take()
