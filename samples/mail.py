"""Mail and encoding samples built by the tests: MIME, mbox, Outlook .msg, TNEF, uuencode, BinHex, blobs.

Every format is written here from its specification (MS-OXMSG stream names over the CFB
writer of samples.py, MS-OXTNEF attributes, MS-OXRTFCP, BinHex 4.0), so nothing is
downloaded and no tool is needed.
"""

from __future__ import annotations

import base64
import binascii
import struct
import zipfile
from collections.abc import Callable
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default

from samples.basic import EICAR, ole_bytes, zip_bytes

# EICAR followed by spaces: still matched by the EICAR rule, and over the blob minimum.
PADDED_EICAR = EICAR + b" " * 300


# --- MIME and mbox -------------------------------------------------------------------------


def eml_bytes(
    attachments: dict[str, bytes] | None = None,
    text: str = "Please see the attached invoice.\n",
    html: str | None = "<html><body><p>Please see the attached invoice.</p></body></html>\n",
    subject: str = "Invoice 2024-001",
    nested: bytes | None = None,
) -> bytes:
    message = EmailMessage()
    message["From"] = "Billing <billing@example.com>"
    message["To"] = "victim@example.org"
    message["Subject"] = subject
    message["Date"] = "Mon, 01 Jan 2024 10:00:00 +0000"
    message["Message-ID"] = "<invoice-1@example.com>"
    message.set_content(text)
    if html is not None:
        message.add_alternative(html, subtype="html")
    for name, data in (attachments or {}).items():
        message.add_attachment(data, maintype="application", subtype="octet-stream", filename=name)
    if nested is not None:
        message.add_attachment(message_from_bytes(nested, policy=default), filename="forwarded.eml")
    return message.as_bytes(policy=default)


def eml_with_eicar() -> bytes:
    return eml_bytes({"invoice.com": EICAR})


def plain_eml() -> bytes:
    return eml_bytes(html=None)


def mbox_bytes(messages: list[bytes]) -> bytes:
    out = bytearray()
    for number, message in enumerate(messages, start=1):
        out += b"From sender%d@example.com Mon Jan  1 10:00:00 2024\n" % number
        body = message.replace(b"\r\n", b"\n").rstrip(b"\n").replace(b"\nFrom ", b"\n>From ")
        out += body + b"\n\n"
    return bytes(out)


def mbox_with_eicar_in_third() -> bytes:
    return mbox_bytes(
        [
            eml_bytes(subject="first", html=None),
            eml_bytes(subject="second", text="From the desk of the manager\n", html=None),
            eml_bytes({"eicar.com": EICAR}, subject="third"),
        ]
    )


def mbox_sample() -> bytes:
    return mbox_bytes([plain_eml()])


# --- Outlook .msg (MS-OXMSG over MS-CFB) ----------------------------------------------------


def utf16(text: str) -> bytes:
    return text.encode("utf-16-le")


def msg_streams(
    attachments: dict[str, bytes], body: str = "Invoice attached.", prefix: str = ""
) -> dict[str, bytes]:
    streams = {
        f"{prefix}__properties_version1.0": b"\0" * 32,
        f"{prefix}__substg1.0_0037001F": utf16("Invoice"),
        f"{prefix}__substg1.0_1000001F": utf16(body),
    }
    for number, (name, data) in enumerate(attachments.items()):
        storage = f"{prefix}__attach_version1.0_#{number:08X}/"
        streams[storage + "__properties_version1.0"] = b"\0" * 16
        streams[storage + "__substg1.0_3707001F"] = utf16(name)
        streams[storage + "__substg1.0_37010102"] = data
    return streams


def msg_bytes(attachments: dict[str, bytes], extra: dict[str, bytes] | None = None) -> bytes:
    return ole_bytes({**msg_streams(attachments), **(extra or {})})


def msg_with_eicar() -> bytes:
    return msg_bytes({"invoice.com": EICAR})


def msg_with_zipped_eicar() -> bytes:
    return msg_bytes({"invoice.zip": zip_bytes({"eicar.com": EICAR})})


def msg_with_embedded_message() -> bytes:
    """A message whose attachment is a message holding EICAR (an attachment storage, MS-OXMSG 2.2.2.1)."""
    storage = "__attach_version1.0_#00000000/"
    inner = msg_streams({"payload.com": EICAR}, body="inner", prefix=storage + "__substg1.0_3701000D/")
    streams = {
        **msg_streams({}),
        storage + "__properties_version1.0": b"\0" * 16,
        storage + "__substg1.0_3001001F": utf16("Fwd: payment"),
        **inner,
    }
    return ole_bytes(streams)


def cfb_with_many_entries(count: int) -> bytes:
    """An MS-CFB v4 file whose root holds `count` empty `__substg1.0_` streams in a balanced tree.

    Balanced, so that a reader that builds the tree recursively reaches every entry.
    """
    sector = 4096
    no_entry, end_of_chain, fat_sector, free = 0xFFFFFFFF, 0xFFFFFFFE, 0xFFFFFFFD, 0xFFFFFFFF
    directory_sectors = -(-(count + 1) // (sector // 128))
    fat_sectors = -(-(directory_sectors + 2) // (sector // 4))
    assert fat_sectors <= 109
    fat = [fat_sector] * fat_sectors
    fat += [fat_sectors + i + 1 for i in range(directory_sectors - 1)] + [end_of_chain]
    fat += [free] * (fat_sectors * sector // 4 - len(fat))
    left, right = [no_entry] * (count + 1), [no_entry] * (count + 1)

    def subtree(low: int, high: int) -> int:
        if low > high:
            return no_entry
        middle = (low + high) // 2
        left[middle], right[middle] = subtree(low, middle - 1), subtree(middle + 1, high)
        return middle

    top = subtree(1, count)

    def entry(name: str, entry_type: int, left_id: int, right_id: int, child: int) -> bytes:
        encoded = name.encode("utf-16-le") + b"\0\0"
        return encoded.ljust(64, b"\0") + struct.pack(
            "<HBBIII16sIQQIQ",
            len(encoded),
            entry_type,
            1,
            left_id,
            right_id,
            child,
            b"\0" * 16,
            0,
            0,
            0,
            end_of_chain if entry_type == 5 else 0,
            0,
        )

    directory = bytearray(entry("Root Entry", 5, no_entry, no_entry, top))
    for number in range(1, count + 1):
        directory += entry(f"__substg1.0_{number:08X}", 2, left[number], right[number], no_entry)
    header = bytearray(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 16)
    header += struct.pack(
        "<HHHHH6sIIIIIIIII",
        0x3E,
        4,
        0xFFFE,
        12,
        6,
        b"\0" * 6,
        directory_sectors,
        fat_sectors,
        fat_sectors,
        0,
        4096,
        end_of_chain,
        0,
        end_of_chain,
        0,
    )
    header += struct.pack("<109I", *range(fat_sectors), *[free] * (109 - fat_sectors))
    return (
        bytes(header.ljust(sector, b"\0"))
        + struct.pack(f"<{len(fat)}I", *fat)
        + bytes(directory.ljust(directory_sectors * sector, b"\0"))
    )


def rtf_compressed(rtf: bytes) -> bytes:
    """MS-OXRTFCP compression: a first reference into the initial dictionary, then literals."""
    prebuffer_length = 207
    assert rtf.startswith(b"{\\rtf1\\ansi")
    tokens: list[tuple[bool, bytes]] = [(True, struct.pack(">H", (0 << 4) | (11 - 2)))]
    tokens += [(False, bytes((byte,))) for byte in rtf[11:]]
    end = (prebuffer_length + len(rtf)) & 0xFFF
    tokens.append((True, struct.pack(">H", end << 4)))
    body = bytearray()
    for start in range(0, len(tokens), 8):
        group = tokens[start : start + 8]
        control = sum(1 << bit for bit, (is_reference, _) in enumerate(group) if is_reference)
        body += bytes((control,)) + b"".join(data for _, data in group)
    header = struct.pack("<II4sI", len(body) + 12, len(rtf), b"LZFu", 0)
    return header + bytes(body)


# --- TNEF (MS-OXTNEF) -----------------------------------------------------------------------


def tnef_attribute(level: int, attribute_id: int, attribute_type: int, data: bytes) -> bytes:
    checksum = sum(data) & 0xFFFF
    return (
        struct.pack("<BHHI", level, attribute_id, attribute_type, len(data))
        + data
        + struct.pack("<H", checksum)
    )


def mapi_properties(properties: list[tuple[int, int, bytes]]) -> bytes:
    """A MAPI property block of one-valued string/binary properties: (type, id, value)."""
    out = struct.pack("<I", len(properties))
    for prop_type, prop_id, value in properties:
        out += struct.pack("<HHII", prop_type, prop_id, 1, len(value)) + value + b"\0" * (-len(value) % 4)
    return out


def tnef_bytes(attachments: dict[str, bytes], body: bytes = b"See attachment.") -> bytes:
    out = bytearray(struct.pack("<IH", 0x223E9F78, 0x0001))
    out += tnef_attribute(1, 0x9006, 0x0008, struct.pack("<I", 0x00010000))  # attTnefVersion
    out += tnef_attribute(1, 0x9007, 0x0006, struct.pack("<II", 1252, 0))  # attOemCodepage
    out += tnef_attribute(1, 0x8008, 0x0007, b"IPM.Microsoft Mail.Note\0")  # attMessageClass
    out += tnef_attribute(1, 0x9003, 0x0006, mapi_properties([(0x001E, 0x1000, body + b"\0")]))
    for name, data in attachments.items():
        short = name[:8].encode() + b"\0"
        out += tnef_attribute(2, 0x9002, 0x0006, b"\x01\x00\xff\xff\xff\xff" + b"\0" * 8)  # attAttachRendData
        out += tnef_attribute(2, 0x8010, 0x0001, short)  # attAttachTitle
        out += tnef_attribute(2, 0x800F, 0x0006, data)  # attAttachData
        properties = mapi_properties([(0x001F, 0x3707, utf16(name) + b"\0\0")])
        out += tnef_attribute(2, 0x9005, 0x0006, properties)  # attAttachment
    return bytes(out)


def tnef_with_eicar() -> bytes:
    return tnef_bytes({"payload-with-a-long-name.com": EICAR})


# --- uuencode and BinHex --------------------------------------------------------------------


def uuencode(data: bytes, name: str, mode: str = "644") -> bytes:
    lines = [binascii.b2a_uu(data[start : start + 45]) for start in range(0, len(data), 45)]
    return f"begin {mode} {name}\n".encode() + b"".join(lines) + b"`\nend\n"


def text_with_uuencoded_eicar() -> bytes:
    return b"Hi,\n\nthe file you asked for:\n\n" + uuencode(EICAR, "eicar.com") + b"\nRegards\n"


def uue_sample() -> bytes:
    return uuencode(b"hello world\n" * 10, "hello.txt")


BINHEX_ALPHABET = b"!\"#$%&'()*+,-012345689@ABCDEFGHIJKLMNPQRSTUVXYZ[`abcdefhijklmpqr"
BASE64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def binhex_run_length(data: bytes) -> bytes:
    out = bytearray()
    position = 0
    while position < len(data):
        byte = data[position]
        run = 1
        while position + run < len(data) and data[position + run] == byte and run < 255:
            run += 1
        out += b"\x90\x00" if byte == 0x90 else bytes((byte,))
        if run >= 3:
            out += bytes((0x90, run))
        else:
            out += (b"\x90\x00" if byte == 0x90 else bytes((byte,))) * (run - 1)
        position += run
    return bytes(out)


def binhex(data: bytes, name: str, resource: bytes = b"") -> bytes:
    encoded_name = name.encode("mac_roman")
    header = bytes((len(encoded_name),)) + encoded_name + b"\0" + b"TEXTttxt" + b"\0\0"
    header += struct.pack(">II", len(data), len(resource))
    stream = header + struct.pack(">H", binascii.crc_hqx(header, 0))
    stream += data + struct.pack(">H", binascii.crc_hqx(data, 0))
    stream += resource + struct.pack(">H", binascii.crc_hqx(resource, 0))
    packed = binhex_run_length(stream)
    text = base64.b64encode(packed).rstrip(b"=").translate(bytes.maketrans(BASE64_ALPHABET, BINHEX_ALPHABET))
    # An unpadded group of n characters holds n*6//8 bytes; base64 without "=" gives exactly that.
    lines = b"\n".join(text[start : start + 64] for start in range(0, len(text), 64))
    return b"(This file must be converted with BinHex 4.0)\n\n:" + lines + b":\n"


def binhex_with_eicar() -> bytes:
    # A run of zeros and a 0x90 byte exercise the run-length decoding.
    return binhex(EICAR + b"\0" * 40 + b"\x90" + b"\n", "eicar.com")


# --- Blobs inside text ----------------------------------------------------------------------


def stored_zip_with_eicar() -> bytes:
    """A zip holding EICAR, stored: over the blob minimum, and the zip is not text."""
    return zip_bytes({"eicar.com": PADDED_EICAR}, method=zipfile.ZIP_STORED)


def powershell_with_base64_zip() -> bytes:
    payload = base64.b64encode(stored_zip_with_eicar())
    return (
        b"$ErrorActionPreference = 'SilentlyContinue'\r\n"
        b'$blob = "' + payload + b'"\r\n'
        b"$bytes = [System.Convert]::FromBase64String($blob)\r\n"
        b'[IO.File]::WriteAllBytes("$env:TEMP\\a.zip", $bytes)\r\n'
    )


def html_with_data_uri() -> bytes:
    payload = base64.b64encode(EICAR).decode()
    return (
        "<!DOCTYPE html>\n<html><head><title>Shared document</title></head><body>\n"
        '<img src="data:image/png;base64,iVBORw0KGgo=" alt="logo">\n'
        f'<a href="data:application/octet-stream;base64,{payload}" download="invoice.com">Download</a>\n'
        "</body></html>\n"
    ).encode()


IDENTIFICATION_SAMPLES: list[tuple[str, str, Callable[[], bytes]]] = [
    ("Email", "EML", eml_with_eicar),
    # As a mail server stores it: trace headers first (the row's own byte signature).
    ("Email", "EML", lambda: b"Received: from mx.example.com by mail.example.org\r\n" + eml_with_eicar()),
    ("Email", "MBOX", mbox_sample),
    ("Email", "MSG", msg_with_eicar),
    ("Email", "TNEF", tnef_with_eicar),
    ("Text", "UUE", uue_sample),
    ("Text", "BinHex", binhex_with_eicar),
]
