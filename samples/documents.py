"""Document samples built by the tests: OLE1 Packages in compound files, OOXML, OpenDocument, RTF, PDF.

Every structure follows its specification (MS-OLEDS for OLE1 objects and Packages, MS-PPT
for PowerPoint records, ODF 1.2 for the package layout, the PDF reference for streams and
file specifications), at the smallest size the parsers accept.
"""

from __future__ import annotations

import hashlib
import io
import struct
import zipfile
import zlib
from collections.abc import Callable

from samples.basic import EICAR, MINI_SECTOR, build_pdf, ole_bytes, zeros_deflate_stream, zip_bytes

COMPOBJ_PACKAGE = (
    b"\x01\x00\xfe\xff\x03\x0a\x00\x00\xff\xff\xff\xff\x0c\x00\x03\x00\x00\x00\x00\x00"
    b"\xc0\x00\x00\x00\x00\x00\x00\x46\x08\x00\x00\x00Package\x00\x00\x00\x00\x00"
    b"\x08\x00\x00\x00Package\x00\x00\x00\x00\x00"
)


def package_native_data(filename: str, data: bytes) -> bytes:
    """An OLE1 Package's native data: the header naming the file, then the file (no size prefix)."""
    name = filename.encode("latin-1") + b"\0"
    source = f"C:\\Users\\user\\Desktop\\{filename}".encode("latin-1") + b"\0"
    temp = f"C:\\Users\\user\\AppData\\Local\\Temp\\{filename}".encode("latin-1") + b"\0"
    return (
        struct.pack("<H", 2)
        + name
        + source
        + struct.pack("<HH", 0, 3)
        + struct.pack("<I", len(temp))
        + temp
        + struct.pack("<I", len(data))
        + data
    )


def ole10native_stream(filename: str, data: bytes) -> bytes:
    """A `\\x01Ole10Native` stream: the Package's native data, prefixed by its size."""
    native = package_native_data(filename, data)
    return struct.pack("<I", len(native)) + native


def reverse_mini_sectors(ole: bytes) -> bytes:
    """The same compound file with its mini stream's sectors stored in reverse order.

    A stream's bytes then lie out of order in the file, so a signature it holds (EICAR spans
    two 64-byte mini sectors) is not found in the container by a plain byte scan: a verdict
    on the container can only come from the extracted child.
    """
    data = bytearray(ole)
    sector = 1 << struct.unpack_from("<H", data, 0x1E)[0]
    first_directory, _, _, first_minifat = struct.unpack_from("<IIII", data, 0x30)

    def offset(number: int) -> int:
        return (number + 1) * sector

    root = offset(first_directory)
    mini_start, mini_size = struct.unpack_from("<IQ", data, root + 0x74)
    count = -(-mini_size // MINI_SECTOR)
    moved = {old: count - 1 - old for old in range(count)}
    mini = offset(mini_start)
    old_sectors = [bytes(data[mini + n * MINI_SECTOR : mini + (n + 1) * MINI_SECTOR]) for n in range(count)]
    for old, new in moved.items():
        data[mini + new * MINI_SECTOR : mini + (new + 1) * MINI_SECTOR] = old_sectors[old]
    old_fat = struct.unpack_from(f"<{count}I", data, offset(first_minifat))
    for old, new in moved.items():
        struct.pack_into("<I", data, offset(first_minifat) + 4 * new, moved.get(old_fat[old], old_fat[old]))
    for entry in range(root + 128, offset(first_minifat), 128):
        if data[entry + 0x42] == 2:  # a stream: all of these sit in the mini stream
            start = struct.unpack_from("<I", data, entry + 0x74)[0]
            struct.pack_into("<I", data, entry + 0x74, moved.get(start, start))
    return bytes(data)


def ole_package_object(filename: str = "eicar.com", data: bytes = EICAR) -> bytes:
    """An embedded-object compound file (what OOXML keeps as `oleObject1.bin`) holding a Package."""
    streams = {"\x01CompObj": COMPOBJ_PACKAGE, "\x01Ole10Native": ole10native_stream(filename, data)}
    return reverse_mini_sectors(ole_bytes(streams))


def doc_with_package(filename: str = "eicar.com", data: bytes = EICAR) -> bytes:
    """A Word-97-style compound file whose ObjectPool holds an OLE1 Package of `filename`."""
    return reverse_mini_sectors(
        ole_bytes(
            {
                "WordDocument": b"\xec\xa5\xc1\x00" + b"\0" * 60,
                "1Table": b"\0" * 64,
                "ObjectPool/_1712345678/\x01CompObj": COMPOBJ_PACKAGE,
                "ObjectPool/_1712345678/\x01Ole10Native": ole10native_stream(filename, data),
                "ObjectPool/_1712345678/\x03ObjInfo": b"\x00\x00\x03\x00\x04\x00",
            }
        )
    )


def xls_with_embedded_storage(data: bytes = EICAR) -> bytes:
    """An Excel-97-style compound file whose MBD storage holds an embedded object's CONTENTS and streams."""
    streams = {
        "Workbook": b"\x09\x08\x10\x00" + b"\0" * 60,
        "MBD0001A2B3/\x01CompObj": b"\0" * 32,
        "MBD0001A2B3/CONTENTS": b"native data of the embedded object",
        "MBD0001A2B3/Payload": data,
    }
    return reverse_mini_sectors(ole_bytes(streams))


def ppt_with_compressed_object(inner: bytes) -> bytes:
    """A PowerPoint-97-style compound file whose ExOleObjStg record holds `inner`, zlib-compressed."""
    payload = struct.pack("<I", len(inner)) + zlib.compress(inner, 9)
    record = struct.pack("<HHI", 0x0 | (1 << 4), 0x1011, len(payload)) + payload
    return ole_bytes({"PowerPoint Document": record, "Current User": b"\0" * 32})


def docx_with_embedding(
    embedded: bytes, part: str = "word/embeddings/oleObject1.bin", thumbnail: bool = False
) -> bytes:
    # A thumbnail of incompressible bytes makes the package larger than 4 KiB when wanted.
    extra = {"docProps/thumbnail.jpeg": noise(8192)} if thumbnail else {}
    return zip_bytes(
        {
            **extra,
            "[Content_Types].xml": b'<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/'
            b'package/2006/content-types"><Default Extension="bin" ContentType="application/'
            b'vnd.openxmlformats-officedocument.oleObject"/></Types>',
            "_rels/.rels": b'<?xml version="1.0"?><Relationships/>',
            "word/document.xml": b'<?xml version="1.0"?><w:document/>',
            "word/_rels/document.xml.rels": b'<?xml version="1.0"?><Relationships/>',
            part: embedded,
        }
    )


def noise(size: int) -> bytes:
    """Incompressible, reproducible bytes."""
    out = bytearray()
    while len(out) < size:
        out += hashlib.sha256(len(out).to_bytes(8, "little")).digest()
    return bytes(out[:size])


def encrypted_ooxml(plain: bytes, password: str) -> bytes:
    """An OOXML package encrypted as Office does (ECMA-376 agile: a compound file), by msoffcrypto.

    msoffcrypto misplaces streams under 4 KiB in the file it writes: give it a larger package.
    """
    from msoffcrypto.format.ooxml import OOXMLFile

    assert len(plain) > 4096, "msoffcrypto writes packages under 4 KiB wrongly"
    encrypted = io.BytesIO()
    OOXMLFile(io.BytesIO(plain)).encrypt(password, encrypted)
    return encrypted.getvalue()


ODF_MIMETYPES = {
    "ODT": "application/vnd.oasis.opendocument.text",
    "ODS": "application/vnd.oasis.opendocument.spreadsheet",
    "ODP": "application/vnd.oasis.opendocument.presentation",
    "ODF": "application/vnd.oasis.opendocument.graphics",
}


def odf_bytes(
    kind: str = "ODT", members: dict[str, bytes] | None = None, mimetype_first: bool = True
) -> bytes:
    """An OpenDocument package: `mimetype` stored first (as ODF requires, unless told otherwise)."""
    buffer = io.BytesIO()
    body = {
        "content.xml": b'<?xml version="1.0"?><office:document-content/>',
        "META-INF/manifest.xml": b'<?xml version="1.0"?><manifest:manifest/>',
        **(members or {}),
    }
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        if mimetype_first:
            archive.writestr("mimetype", ODF_MIMETYPES[kind], compress_type=zipfile.ZIP_STORED)
        for name, data in body.items():
            archive.writestr(name, data)
        if not mimetype_first:
            archive.writestr("mimetype", ODF_MIMETYPES[kind])
    return buffer.getvalue()


def ole1_object(class_name: bytes, native: bytes) -> bytes:
    """An OLE1 embedded object (MS-OLEDS ObjectHeader + EmbeddedObject), as RTF's \\objdata holds."""
    name = class_name + b"\0"
    return (
        struct.pack("<II", 0x0501, 2)
        + struct.pack("<I", len(name))
        + name
        + struct.pack("<III", 0, 0, len(native))
        + native
    )


def rtf_with_objects(*objects: bytes, picture: bytes | None = None) -> bytes:
    parts = [b"{\\rtf1\\ansi\\deff0{\\fonttbl{\\f0 Arial;}}\\pard Invoice attached.\\par"]
    for data in objects:
        hexdata = data.hex().encode()
        lines = b"\n".join(hexdata[i : i + 128] for i in range(0, len(hexdata), 128))
        parts.append(
            b"{\\object\\objemb\\objw1000\\objh1000{\\*\\objclass Package}{\\*\\objdata\n" + lines + b"\n}}"
        )
    if picture is not None:
        parts.append(b"{\\pict\\pngblip\\picw10\\pich10\n" + picture.hex().encode() + b"\n}")
    parts.append(b"}")
    return b"\n".join(parts)


def rtf_with_package(filename: str = "eicar.com", data: bytes = EICAR) -> bytes:
    return rtf_with_objects(ole1_object(b"Package", package_native_data(filename, data)))


def pdf_with_attachment(name: str = "eicar.com", data: bytes = EICAR) -> bytes:
    import pypdf

    writer = pypdf.PdfWriter()
    writer.add_blank_page(612, 792)
    writer.add_attachment(name, data)
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def stream_object(dictionary: bytes, data: bytes) -> bytes:
    return b"<< " + dictionary + b" /Length %d >>\nstream\n" % len(data) + data + b"\nendstream"


def pdf_with_streams(*streams: bytes) -> bytes:
    """A one-page PDF with extra stream objects (each given as a whole object body)."""
    return build_pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>",
            *streams,
        ]
    )


def pdf_with_embedded_file(name: bytes = b"eicar.com", data: bytes = EICAR) -> bytes:
    """A PDF whose /EmbeddedFiles name tree names a FlateDecode embedded-file stream."""
    return build_pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R /Names << /EmbeddedFiles << /Names [(%s) 4 0 R] >> >> >>" % name,
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>",
            b"<< /Type /Filespec /F (%s) /UF (%s) /EF << /F 5 0 R >> >>" % (name, name),
            stream_object(b"/Type /EmbeddedFile /Filter /FlateDecode", zlib.compress(data)),
        ]
    )


def pdf_with_attachment_annotation(
    name: bytes, data: bytes, filters: bytes = b"/Filter /FlateDecode"
) -> bytes:
    """A PDF whose page has a FileAttachment annotation; the stream does not declare its /Type."""
    encoded = zlib.compress(data) if b"Flate" in filters else data
    return build_pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Annots [4 0 R] >>",
            b"<< /Type /Annot /Subtype /FileAttachment /Rect [0 0 10 10] "
            b"/FS << /Type /Filespec /F (%s) /EF << /F 5 0 R >> >> >>" % name,
            stream_object(filters, encoded),
        ]
    )


def pdf_with_hidden_zip(data: bytes = EICAR) -> bytes:
    """A PDF whose FlateDecode stream (not declared an embedded file) is a ZIP holding `data`."""
    payload = zlib.compress(zip_bytes({"eicar.com": data}))
    return pdf_with_streams(stream_object(b"/Filter /FlateDecode", payload))


def pdf_stream_bomb(total_bytes: int = 1024**3) -> bytes:
    """A PDF whose embedded-file stream inflates to `total_bytes` zeros from about 1/1000 of that."""
    # A zlib header before a raw deflate stream; the checksum is never reached.
    payload = b"\x78\xda" + zeros_deflate_stream(total_bytes)
    return pdf_with_streams(stream_object(b"/Type /EmbeddedFile /Filter /FlateDecode", payload))


IDENTIFICATION_SAMPLES: list[tuple[str, str, Callable[[], bytes]]] = [
    ("Document", "ODT", lambda: odf_bytes("ODT")),
    ("Document", "ODS", lambda: odf_bytes("ODS")),
    ("Document", "ODP", lambda: odf_bytes("ODP")),
    ("Document", "ODF", lambda: odf_bytes("ODF")),
]
