"""Encoders for the PKZIP 1.x methods shrink and implode and the ZIP files that hold them.

They made the samples shipped in samples/files/legacyzip/ (checked with Info-ZIP unzip and
7-Zip when they were made); the tests read those files, and use this module only for
streams that need no outside check (a bomb, a damaged stream).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from pathlib import Path

from samples.basic import EICAR

SAMPLES = Path(__file__).resolve().parent / "files" / "legacyzip"

PADDING = b"".join(
    b"Line %d of the padding text: the quick brown fox jumps over the lazy dog, again and again.\r\n" % n
    for n in range(40)
)
EICAR_MEMBER = EICAR + b"\r\n" + PADDING
TEXT_MEMBER = b"A second member, plain text, repeated so that it compresses. " * 30


class BitWriter:
    """Bits least significant first, as every PKZIP 1.x method stores them."""

    def __init__(self) -> None:
        self.value = 0
        self.count = 0

    def put(self, value: int, bits: int) -> None:
        self.value |= (value & ((1 << bits) - 1)) << self.count
        self.count += bits

    def put_code(self, code: int, bits: int) -> None:
        """A Shannon-Fano code, its most significant bit first."""
        for shift in range(bits - 1, -1, -1):
            self.put(code >> shift, 1)

    def data(self) -> bytes:
        return self.value.to_bytes((self.count + 7) // 8, "little")


def shrink(data: bytes) -> bytes:
    """LZW with 9 to 13-bit codes; code size increases are signalled by 256,1 (no partial clear)."""
    out = BitWriter()
    table = {bytes([byte]): byte for byte in range(256)}
    next_code = 257
    code_size = 9
    current = b""
    for byte in data:
        candidate = current + bytes([byte])
        if candidate in table:
            current = candidate
            continue
        out.put(table[current], code_size)
        if next_code < 1 << 13:
            if next_code >= 1 << code_size:
                out.put(256, code_size)
                out.put(1, code_size)
                code_size += 1
            table[candidate] = next_code
            next_code += 1
        current = bytes([byte])
    if current:
        out.put(table[current], code_size)
    return out.data()


def longest_match(data: bytes, position: int, window: int, longest: int) -> tuple[int, int]:
    best_distance = best_length = 0
    for start in range(max(0, position - window), position):
        length = 0
        while (
            length < longest
            and position + length < len(data)
            and data[start + length] == data[position + length]
        ):
            length += 1
        if length >= best_length:
            best_distance, best_length = position - start, length
    return best_distance, best_length


def shannon_fano_codes(lengths: list[int]) -> dict[int, tuple[int, int]]:
    """value -> (code, bits), as APPNOTE's Shannon-Fano construction assigns them."""
    order = sorted(range(len(lengths)), key=lambda value: lengths[value])
    codes = {}
    code = increment = last = 0
    for value in reversed(order):
        code += increment
        if lengths[value] != last:
            last = lengths[value]
            increment = 1 << (16 - last)
        codes[value] = (code >> (16 - last), last)
    return codes


def tree_description(lengths: list[int]) -> bytes:
    runs: list[int] = []
    index = 0
    while index < len(lengths):
        count = 1
        while count < 16 and index + count < len(lengths) and lengths[index + count] == lengths[index]:
            count += 1
        runs.append(((count - 1) << 4) | (lengths[index] - 1))
        index += count
    return bytes([len(runs) - 1, *runs])


# Complete codes with several lengths: printable ASCII is cheap.
LITERAL_LENGTHS = [9] * 32 + [7] * 96 + [9] * 64 + [10] * 64
SIXTY_FOUR_LENGTHS = [5] * 16 + [6] * 16 + [7] * 32


def implode(data: bytes, large_window: bool, literal_tree: bool) -> bytes:
    out = BitWriter()
    descriptions = ([LITERAL_LENGTHS] if literal_tree else []) + [SIXTY_FOUR_LENGTHS] * 2
    for lengths in descriptions:
        for byte in tree_description(lengths):
            out.put(byte, 8)
    literals = shannon_fano_codes(LITERAL_LENGTHS)
    sixty_four = shannon_fano_codes(SIXTY_FOUR_LENGTHS)
    low_bits = 7 if large_window else 6
    minimum = 3 if literal_tree else 2
    window = 8192 if large_window else 4096
    position = 0
    while position < len(data):
        distance, length = longest_match(data, position, window, minimum + 63 + 255)
        if length >= minimum + 1:
            out.put(0, 1)
            out.put(distance - 1, low_bits)
            out.put_code(*sixty_four[(distance - 1) >> low_bits])
            coded = length - minimum
            out.put_code(*sixty_four[min(coded, 63)])
            if coded >= 63:
                out.put(coded - 63, 8)
            position += length
            continue
        out.put(1, 1)
        if literal_tree:
            out.put_code(*literals[data[position]])
        else:
            out.put(data[position], 8)
        position += 1
    return out.data()


def zipcrypto(data: bytes, password: bytes, crc: int) -> bytes:
    """Traditional PKWARE encryption; the header's last byte is the CRC's high byte."""
    keys = [0x12345678, 0x23456789, 0x34567890]

    def update(byte: int) -> None:
        keys[0] = zlib.crc32(bytes([byte]), keys[0] ^ 0xFFFFFFFF) ^ 0xFFFFFFFF
        keys[1] = ((keys[1] + (keys[0] & 0xFF)) * 134775813 + 1) & 0xFFFFFFFF
        keys[2] = zlib.crc32(bytes([keys[1] >> 24]), keys[2] ^ 0xFFFFFFFF) ^ 0xFFFFFFFF

    for byte in password:
        update(byte)
    header = bytes(range(11)) + bytes([crc >> 24])
    encrypted = bytearray()
    for byte in header + data:
        temp = (keys[2] | 2) & 0xFFFF
        encrypted.append(byte ^ (((temp * (temp ^ 1)) >> 8) & 0xFF))
        update(byte)
    return bytes(encrypted)


def zip_with_method(
    members: dict[str, tuple[bytes, bytes]], method: int, flags: int = 0, password: bytes = b""
) -> bytes:
    """A ZIP of members given as name -> (plain data, compressed data), all with `method`."""
    body = bytearray()
    directory = bytearray()
    if password:
        flags |= 0x1
    for name, (plain, packed) in members.items():
        crc = zlib.crc32(plain)
        if password:
            packed = zipcrypto(packed, password, crc)
        encoded = name.encode()
        offset = len(body)
        fields = (10, flags, method, 0, 0x21, crc, len(packed), len(plain), len(encoded), 0)
        body += struct.pack("<IHHHHHIIIHH", 0x04034B50, *fields) + encoded + packed
        directory += struct.pack("<IH", 0x02014B50, 10) + struct.pack("<HHHHHIIIHH", *fields)
        directory += struct.pack("<HHHII", 0, 0, 0, 0, offset) + encoded
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(directory), len(body), 0)
    return bytes(body + directory + end)


def shrink_bomb(repeats: int) -> bytes:
    """A shrunk run of zeros: the table fills with ever longer runs (about 32 MiB from 13 KiB),
    then its longest code is repeated; the header claims 1 GiB and a made-up CRC."""
    out = BitWriter()
    out.put(0, 9)
    code_size = 9
    for code in range(257, 1 << 13):
        out.put(code, code_size)
        if code + 1 < 1 << 13 and code + 1 >= 1 << code_size:
            out.put(256, code_size)
            out.put(1, code_size)
            code_size += 1
    for _ in range(repeats):
        out.put((1 << 13) - 1, 13)
    packed = out.data()
    name = b"zeros.bin"
    fields = (10, 0, 1, 0, 0x21, 0x12345678, len(packed), 1024**3, len(name), 0)
    body = struct.pack("<IHHHHHIIIHH", 0x04034B50, *fields) + name + packed
    directory = struct.pack("<IH", 0x02014B50, 10) + struct.pack("<HHHHHIIIHH", *fields)
    directory += struct.pack("<HHHII", 0, 0, 0, 0, 0) + name
    return body + directory + struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(directory), len(body), 0)


def sample(method: int, flags: int, encode: Callable[[bytes], bytes], password: bytes = b"") -> bytes:
    plain = {"eicar.com": EICAR_MEMBER, "readme.txt": TEXT_MEMBER}
    members = {name: (data, encode(data)) for name, data in plain.items()}
    return zip_with_method(members, method, flags, password)


BUILDERS = {
    "shrink.zip": lambda: sample(1, 0, shrink),
    "implode-8k-3trees.zip": lambda: sample(6, 0x6, lambda data: implode(data, True, True)),
    "implode-8k-2trees.zip": lambda: sample(6, 0x2, lambda data: implode(data, True, False)),
    "implode-4k-3trees.zip": lambda: sample(6, 0x4, lambda data: implode(data, False, True)),
    "implode-4k-2trees.zip": lambda: sample(6, 0x0, lambda data: implode(data, False, False)),
    "implode-8k-3trees-zipcrypto.zip": lambda: sample(
        6, 0x6, lambda data: implode(data, True, True), password=b"infected"
    ),
    "shrink-zipcrypto.zip": lambda: sample(1, 0, shrink, password=b"infected"),
}


if __name__ == "__main__":
    SAMPLES.mkdir(parents=True, exist_ok=True)
    for filename, build in BUILDERS.items():
        (SAMPLES / filename).write_bytes(build())
