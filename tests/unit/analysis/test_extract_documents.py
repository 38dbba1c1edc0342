"""Document extractors through the whole engine: OLE2 compound files, OOXML and ODF, RTF, PDF."""

from __future__ import annotations

import time
import zipfile
import zlib

import pytest

from samples.basic import EICAR, zip_bytes
from samples.documents import (
    IDENTIFICATION_SAMPLES,
    doc_with_package,
    docx_with_embedding,
    encrypted_ooxml,
    odf_bytes,
    ole1_object,
    ole_package_object,
    package_native_data,
    pdf_stream_bomb,
    pdf_with_attachment,
    pdf_with_attachment_annotation,
    pdf_with_embedded_file,
    pdf_with_hidden_zip,
    pdf_with_streams,
    ppt_with_compressed_object,
    rtf_with_objects,
    rtf_with_package,
    stream_object,
    xls_with_embedded_storage,
)
from tests.support.memory import peak_memory
from tests.unit.analysis.conftest import by_path
from worker.analysis.context import Budget, FileContext, LimitReached
from worker.analysis.extractors import olecompound, rtf
from worker.analysis.extractors.signatures import file_kind

MALICIOUS = 3


def kind(entry) -> tuple[str, str]:
    return entry["info"]["file"]["file_type"], entry["info"]["file"]["file_subtype"]


def errors_of(entry, analyzer: str) -> list[str]:
    return [item["error"] for item in entry.get("errors", []) if item["analyzer"] == analyzer]


def indicator_ids(entry) -> list[str]:
    return [item["id"] for item in entry["indicators"]]


def limits_hit(entry) -> list[str]:
    return [limit["limit"] for limit in entry["metadata"]["archive"]["limits_hit"]]


def assert_found_through_a_child(report, file_path: str) -> dict:
    top = report[0]["classification"]
    assert top["classification"] == MALICIOUS
    assert top["propagated"] is True
    child = by_path(report, file_path)
    assert child["classification"]["classification"] == MALICIOUS
    return child


# --- Signatures of hidden files ----------------------------------------------------------


def test_mz_counts_as_a_hidden_executable_only_with_the_pe_header_it_points_to():
    pe = bytearray(
        b"MZ" + b"\0" * 0x3A + (0x80).to_bytes(4, "little") + b"\0" * 0x40 + b"PE\0\0" + b"\0" * 64
    )
    assert file_kind(bytes(pe)) == "PE"
    pe[0x80:0x84] = b"XX\0\0"
    assert file_kind(bytes(pe)) is None
    assert file_kind(b"MZ") is None
    assert file_kind(b"PK\x03\x04rest") == "ZIP"
    assert file_kind(b"\x89PNG") is None


# --- Identification --------------------------------------------------------------------


@pytest.mark.parametrize(("file_type", "file_subtype", "builder"), IDENTIFICATION_SAMPLES)
def test_each_document_identification_row_has_a_sample_identified_by_it(
    analyze, file_type, file_subtype, builder
):
    assert kind(analyze(builder(), "sample")[0]) == (file_type, file_subtype)


def test_opendocument_is_identified_by_its_mimetype_member_even_when_libmagic_sees_a_zip(analyze):
    report = analyze(odf_bytes("ODS", mimetype_first=False), "late.ods")
    assert kind(report[0]) == ("Document", "ODS")
    assert "odf" in report[0]["tags"]


# --- OLE2 compound files ---------------------------------------------------------------


def test_eicar_in_an_ole1_package_of_a_doc_is_found_under_the_packaged_file_name(analyze):
    report = analyze(doc_with_package(), "invoice.doc")
    assert kind(report[0]) == ("Document", "Word")
    child = assert_found_through_a_child(report, "eicar.com")
    assert child["parent_relationship"] == {"parent_index": 0, "relationship": "embedded"}
    assert child["info"]["file"]["file_name"] == "eicar.com"
    assert "office:embedded-object" in indicator_ids(report[0])
    assert "embedded" in report[0]["tags"]
    assert report[0]["metadata"]["archive"]["format"] == "ole"


def test_embedded_storage_streams_of_an_xls_are_children_named_by_their_stream_paths(analyze):
    report = analyze(xls_with_embedded_storage(), "book.xls")
    paths = [entry["info"]["file"]["file_path"] for entry in report[1:]]
    assert paths == ["MBD0001A2B3/CONTENTS", "MBD0001A2B3/Payload"]  # not \x01CompObj, not Workbook
    assert_found_through_a_child(report, "MBD0001A2B3/Payload")


def test_ole10native_stream_of_another_ole1_class_is_given_as_its_native_data(analyze):
    from samples.basic import ole_bytes

    native = b"\x01\x00\x00\x00" + b"not a package header at all" * 3
    report = analyze(ole_bytes({"\x01Ole10Native": native}), "object.bin")
    child = by_path(report, "\x01Ole10Native")
    assert child["info"]["file"]["size"] == len(native) - 4


def test_powerpoint_compressed_ole_object_is_inflated_and_its_package_extracted(analyze):
    report = analyze(ppt_with_compressed_object(ole_package_object()), "deck.ppt")
    storage = by_path(report, "PowerPoint Document/ExOleObjStg-1")
    assert kind(storage) == ("Document", "OLE")
    child = assert_found_through_a_child(report, "eicar.com")
    assert child["parent_relationship"]["parent_index"] == storage["index"]


def test_truncated_compound_file_ends_as_an_error_item_with_the_report_intact(analyze):
    data = doc_with_package()
    report = analyze(data[:1100], "broken.doc")
    assert len(report) == 1
    assert errors_of(report[0], "ole")
    assert report[0]["classification"]["classification"] == 0


def test_compound_file_above_office_max_bytes_is_refused_with_an_error(analyze):
    report = analyze(doc_with_package(), "big.doc", office_max_bytes=1024)
    assert len(report) == 1
    assert any("larger than 1024 bytes" in error for error in errors_of(report[0], "ole"))


def test_compound_file_directory_beyond_the_entry_limit_is_refused_before_olefile_builds_it(
    analyze, monkeypatch
):
    monkeypatch.setattr(olecompound, "MAX_DIRECTORY_ENTRIES", 3)
    report = analyze(doc_with_package(), "many-entries.doc")
    assert len(report) == 1
    assert any("directory of" in error for error in errors_of(report[0], "ole"))


def test_children_limit_stops_a_compound_file_with_many_packages(analyze):
    from samples.basic import ole_bytes
    from samples.documents import ole10native_stream

    streams = {f"ObjectPool/_{n}/\x01Ole10Native": ole10native_stream(f"file{n}.txt", b"x") for n in range(6)}
    report = analyze(ole_bytes(streams), "many.doc", unpack_max_children=3)
    assert len(report) == 1 + 3
    assert "children" in limits_hit(report[0])


def test_encrypted_docx_is_decrypted_with_a_listed_password_and_its_embedded_eicar_found(analyze):
    document = encrypted_ooxml(docx_with_embedding(ole_package_object(), thumbnail=True), "infected")
    report = analyze(document, "locked.docx")
    package = by_path(report, "EncryptedPackage")
    assert kind(package) == ("Document", "Word")
    assert report[0]["metadata"]["archive"]["password_source"] == "default_password_list"
    assert "archive:encrypted" in indicator_ids(report[0])
    child = assert_found_through_a_child(report, "eicar.com")
    assert report[0]["classification"]["propagation_source"]["index"] == package["index"]
    assert child["info"]["file"]["file_path"] == "eicar.com"


def test_workbook_encrypted_with_excel_default_password_is_decrypted_first(analyze):
    document = encrypted_ooxml(
        docx_with_embedding(b"data", "xl/embeddings/data.bin", True), "VelvetSweatshop"
    )
    report = analyze(document, "book.xlsx")
    assert report[0]["metadata"]["archive"]["password_source"] == "Excel's default password"


def test_encrypted_docx_with_unknown_password_is_reported_skipped(analyze):
    report = analyze(
        encrypted_ooxml(docx_with_embedding(b"data", thumbnail=True), "nobody-knows"), "locked.docx"
    )
    assert len(report) == 1
    assert report[0]["metadata"]["archive"]["skipped"] == [
        {"file_path": "locked.docx", "reason": "no password matched"}
    ]
    assert "archive:password-unknown" in indicator_ids(report[0])


def test_encrypted_docx_with_a_huge_spin_count_is_not_tried(analyze):
    document = encrypted_ooxml(docx_with_embedding(b"data", thumbnail=True), "infected")
    document = document.replace(b'spinCount="100000"', b'spinCount="900000"', 1)
    report = analyze(document, "slow.docx")
    assert len(report) == 1
    assert any("spin count 900000" in error for error in errors_of(report[0], "ole"))


# --- OOXML and OpenDocument ------------------------------------------------------------


def test_eicar_in_a_package_in_an_ole_object_embedded_in_a_docx_is_found_at_entry_0(analyze):
    report = analyze(docx_with_embedding(ole_package_object()), "letter.docx")
    assert kind(report[0]) == ("Document", "Word")
    ole = by_path(report, "word/embeddings/oleObject1.bin")
    assert ole["parent_relationship"] == {"parent_index": 0, "relationship": "embedded"}
    assert kind(ole) == ("Document", "OLE")
    child = assert_found_through_a_child(report, "eicar.com")
    assert child["parent_relationship"]["parent_index"] == ole["index"]
    assert report[0]["classification"]["propagation_source"]["file_path"] == "word/embeddings/oleObject1.bin"
    assert by_path(report, "word/document.xml")["parent_relationship"]["relationship"] == "container"
    assert "office:embedded-object" in indicator_ids(report[0])


def test_odt_object_parts_and_basic_macros_are_extracted_and_labelled_embedded(analyze):
    members = {
        "Object 1/content.xml": b"<office:document-content/>",
        "Object 1/payload.com": EICAR,
        "Basic/script-lc.xml": b"<library:libraries/>",
        "Basic/Standard/script-lb.xml": b"<library:library/>",
        "Basic/Standard/Module1.xml": b'<script:module script:name="M">Sub Main\nEnd Sub</script:module>',
    }
    report = analyze(odf_bytes("ODT", members), "letter.odt")
    assert kind(report[0]) == ("Document", "ODT")
    child = assert_found_through_a_child(report, "Object 1/payload.com")
    assert child["parent_relationship"]["relationship"] == "embedded"
    assert by_path(report, "content.xml")["parent_relationship"]["relationship"] == "container"
    assert by_path(report, "Basic/Standard/Module1.xml")["parent_relationship"]["relationship"] == "embedded"
    macros = next(item for item in report[0]["indicators"] if item["id"] == "office:macros")
    assert macros["reasons"] == ["Basic/Standard/Module1.xml"]
    assert report[0]["metadata"]["archive"]["format"] == "office-package"


def test_odt_parts_encrypted_with_the_document_password_are_reported_skipped(analyze):
    manifest = (
        b'<?xml version="1.0"?><manifest:manifest>'
        b'<manifest:file-entry manifest:full-path="/" manifest:media-type="text/plain"/>'
        b'<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml">'
        b'<manifest:encryption-data manifest:checksum-type="SHA1/1K" manifest:checksum="AAAA">'
        b'<manifest:algorithm manifest:algorithm-name="Blowfish CFB" manifest:initialisation-vector="AAAA"/>'
        b"</manifest:encryption-data></manifest:file-entry></manifest:manifest>"
    )
    report = analyze(odf_bytes("ODT", {"META-INF/manifest.xml": manifest}), "secret.odt")
    skipped = report[0]["metadata"]["archive"]["skipped"]
    assert skipped == [
        {"file_path": "content.xml", "reason": "encrypted with the document's password (not decrypted)"}
    ]
    assert "mimetype" in [entry["info"]["file"]["file_path"] for entry in report[1:]]


def test_ooxml_parts_are_extracted_once_by_the_zip_extractor_not_again_by_the_package_analyzer(analyze):
    report = analyze(docx_with_embedding(b"plain bytes", "word/embeddings/data.bin"), "letter.docx")
    paths = [entry["info"]["file"]["file_path"] for entry in report[1:]]
    assert len(paths) == len(set(paths)) == 5
    assert report[0]["metadata"]["archive"]["format"] == "zip"


def test_truncated_odt_ends_as_an_error_item_with_the_report_intact(analyze):
    data = odf_bytes("ODT", {"Object 1/payload.com": EICAR})
    report = analyze(data[: len(data) - 30], "broken.odt")
    assert report[0]["info"]["file"]["file_name"] == "broken.odt"
    assert errors_of(report[0], "office-package")


def test_compressed_bomb_in_an_odt_stops_at_the_ratio_limit(analyze):
    data = odf_bytes("ODT", {"Object 1/zeros.bin": bytes(64 * 1024**2)})
    report = analyze(data, "bomb.odt")
    assert "ratio" in limits_hit(report[0])


# --- RTF -------------------------------------------------------------------------------


def test_eicar_in_an_rtf_ole1_package_is_found_under_the_packaged_file_name(analyze):
    report = analyze(rtf_with_package(), "invoice.rtf")
    assert kind(report[0]) == ("Document", "RTF")
    child = assert_found_through_a_child(report, "eicar.com")
    assert child["parent_relationship"]["relationship"] == "embedded"
    assert "office" not in [item["name"] for item in report[0]["info"]["analyzers"]]
    assert not report[0].get("errors")


def test_rtf_object_of_another_class_is_given_as_its_compound_file_then_opened(analyze):
    document = rtf_with_objects(ole1_object(b"Word.Document.8", ole_package_object()))
    report = analyze(document, "letter.rtf")
    storage = by_path(report, "objdata-1-Word.Document.8")
    assert kind(storage) == ("Document", "OLE")
    child = assert_found_through_a_child(report, "eicar.com")
    assert child["parent_relationship"]["parent_index"] == storage["index"]


def test_zip_hidden_in_an_rtf_picture_is_extracted_and_its_eicar_found(analyze):
    report = analyze(rtf_with_objects(picture=zip_bytes({"eicar.com": EICAR})), "picture.rtf")
    hidden = by_path(report, "pict-1.zip")
    assert kind(hidden) == ("Archive", "ZIP")
    assert_found_through_a_child(report, "eicar.com")


def test_rtf_objdata_obfuscated_as_word_reads_it_still_yields_the_package(analyze):
    document = rtf_with_package()
    start = document.index(b"objdata\n") + len(b"objdata\n")
    # Word drops an odd hex digit left pending before \'hh; so does the parser.
    obfuscated = document[: start + 10] + b"f\\'4a" + document[start + 10 :]
    report = analyze(obfuscated, "obfuscated.rtf")
    assert_found_through_a_child(report, "eicar.com")


def test_large_plain_text_rtf_parses_in_linear_time(analyze):
    document = b"{\\rtf1 " + b"Lorem ipsum dolor sit amet \\par\n" * 200_000 + b"}"
    # Quadratic concatenation took 15 s for this: it would end at the time limit, with an error.
    report = analyze(document, "long.rtf", analysis_file_time_limit_seconds=10)
    assert not report[0].get("errors")


def test_rtf_parse_stops_at_the_file_deadline(engine_settings, tmp_path):
    rtf_data = b"{\\rtf1 " + b"Lorem ipsum dolor sit amet \\par\n" * 200_000 + b"}"
    path = tmp_path / "slow.rtf"
    path.write_bytes(rtf_data)
    context = FileContext(
        path=path,
        file_name="slow.rtf",
        file_path="slow.rtf",
        depth=0,
        size=len(rtf_data),
        head=rtf_data[:4096],
        identity={"file_type": "Document", "file_subtype": "RTF"},
        settings=engine_settings,
        deadline=time.monotonic() + 0.01,
        budget=Budget.from_settings(engine_settings),
    )
    with pytest.raises(LimitReached) as stopped:
        rtf.extract(context)
    assert stopped.value.limit == "time"


def test_rtf_picture_that_is_an_image_is_not_extracted(analyze):
    png = b"\x89PNG\r\n\x1a\n" + b"\0\0\0\rIHDR" + b"\0" * 200
    report = analyze(rtf_with_objects(picture=png), "image.rtf")
    assert len(report) == 1


def test_malformed_rtf_objdata_is_given_raw_with_an_error_item(analyze):
    report = analyze(rtf_with_objects(b"\x01\x05\x00\x00garbage"), "odd.rtf")
    assert by_path(report, "objdata-1")["info"]["file"]["size"] == 11
    assert any("not an OLE1 object" in error for error in errors_of(report[0], "rtf"))


def test_truncated_rtf_ends_without_failing_the_task(analyze):
    data = rtf_with_package()
    report = analyze(data[: len(data) // 2], "cut.rtf")
    assert report[0]["info"]["file"]["file_name"] == "cut.rtf"
    assert errors_of(report[0], "rtf")


def test_rtf_above_office_max_bytes_is_refused_with_an_error(analyze):
    report = analyze(rtf_with_package(), "big.rtf", office_max_bytes=100)
    assert len(report) == 1
    assert any("larger than 100 bytes" in error for error in errors_of(report[0], "rtf"))


def test_children_limit_stops_an_rtf_with_many_objects(analyze):
    objects = [ole1_object(b"Package", package_native_data(f"f{n}.txt", b"x")) for n in range(5)]
    report = analyze(rtf_with_objects(*objects), "many.rtf", unpack_max_children=2)
    assert len(report) == 3
    assert "children" in limits_hit(report[0])


# --- PDF -------------------------------------------------------------------------------


def test_eicar_embedded_in_a_pdf_is_found_under_its_file_name(analyze):
    report = analyze(pdf_with_embedded_file(), "report.pdf")
    child = assert_found_through_a_child(report, "eicar.com")
    assert child["parent_relationship"]["relationship"] == "embedded"
    embedded = [item for item in report[0]["indicators"] if item["id"] == "pdf:embedded-file"]
    assert len(embedded) == 1 and embedded[0]["reasons"] == ["eicar.com"]
    assert report[0]["metadata"]["document"]["pdf"]["embedded_files"] == 1


def test_attachment_written_by_pypdf_is_extracted(analyze):
    report = analyze(pdf_with_attachment("notes.txt", b"attached words"), "attached.pdf")
    assert by_path(report, "notes.txt")["info"]["file"]["size"] == len(b"attached words")


def test_file_attachment_annotation_stream_without_type_is_an_embedded_file(analyze):
    report = analyze(pdf_with_attachment_annotation(b"dropper.com", EICAR), "annotated.pdf")
    assert_found_through_a_child(report, "dropper.com")


def test_zip_hidden_in_a_flate_stream_of_a_pdf_is_extracted_and_its_eicar_found(analyze):
    report = analyze(pdf_with_hidden_zip(), "hidden.pdf")
    hidden = next(entry for entry in report[1:] if entry["info"]["file"]["file_path"].endswith(".zip"))
    assert kind(hidden) == ("Archive", "ZIP")
    assert_found_through_a_child(report, "eicar.com")
    assert "document:hidden-file" in indicator_ids(report[0])
    assert "pdf:embedded-file" not in indicator_ids(report[0])


def test_ordinary_streams_are_not_extracted(analyze):
    content = stream_object(b"/Filter /FlateDecode", zlib.compress(b"BT /F1 12 Tf (Hello) Tj ET"))
    report = analyze(pdf_with_streams(content), "plain.pdf")
    assert len(report) == 1
    assert report[0]["metadata"]["document"]["pdf"]["hidden_files"] == 0


def test_embedded_file_with_an_unsupported_filter_is_reported_skipped(analyze):
    report = analyze(
        pdf_with_attachment_annotation(b"photo.jpg", b"\xff\xd8\xff", b"/Filter /DCTDecode"), "x.pdf"
    )
    skipped = report[0]["metadata"]["archive"]["skipped"]
    assert skipped == [{"file_path": "photo.jpg", "reason": "not decoded: filter /DCTDecode"}]


def test_pdf_stream_bomb_stops_at_the_ratio_limit_quickly_in_bounded_memory(analyze, engine_settings):
    data = pdf_stream_bomb(1024**3)
    report, peak = peak_memory(lambda: analyze(data, "bomb.pdf"))
    assert peak < 64 * 1024**2, f"peak Python memory {peak} bytes"
    assert limits_hit(report[0]) == ["ratio"]
    assert len(report) == 1


def test_pdf_stream_bomb_stops_at_the_total_bytes_limit_with_a_permissive_ratio(analyze):
    report = analyze(
        pdf_stream_bomb(256 * 1024**2), "bomb.pdf", unpack_max_ratio=1e9, unpack_max_total_bytes=32 * 1024**2
    )
    assert limits_hit(report[0]) == ["total_bytes"]


def test_encrypted_pdf_opens_with_a_listed_password_and_is_skipped_without_one(analyze):
    import io

    import pypdf

    def encrypted(password: str) -> bytes:
        reader = pypdf.PdfReader(io.BytesIO(pdf_with_embedded_file()))
        writer = pypdf.PdfWriter(clone_from=reader)
        writer.encrypt(user_password=password, owner_password="owner", algorithm="AES-256")
        buffer = io.BytesIO()
        writer.write(buffer)
        return buffer.getvalue()

    report = analyze(encrypted("infected"), "locked.pdf")
    assert report[0]["metadata"]["archive"]["password_source"] == "default_password_list"
    assert_found_through_a_child(report, "eicar.com")
    report = analyze(encrypted("nobody-knows"), "locked.pdf")
    assert len(report) == 1
    assert "archive:password-unknown" in indicator_ids(report[0])


def test_malformed_pdf_ends_as_an_error_item_with_the_report_intact(analyze):
    report = analyze(b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog /Pages", "broken.pdf")
    assert len(report) == 1
    assert errors_of(report[0], "pdf-files")
    assert "pdf:embedded-file" not in indicator_ids(report[0])


def test_unparseable_pdf_naming_an_embedded_file_still_raises_the_heuristic(analyze):
    report = analyze(b"%PDF-1.7\n1 0 obj\n<< /Type /EmbeddedFile /Length 5 >>", "broken.pdf")
    assert errors_of(report[0], "pdf-files")
    assert indicator_ids(report[0]).count("pdf:embedded-file") == 1


def test_pdf_analyzer_leaves_embedded_files_to_the_extractor_unless_it_does_not_look(analyze):
    report = analyze(pdf_with_embedded_file(), "deep.pdf", unpack_max_depth=0)
    assert indicator_ids(report[0]).count("pdf:embedded-file") == 1
    assert report[0]["metadata"]["document"]["pdf"]["embedded_files"] == 1
    assert len(report) == 1


def test_pdf_inside_a_zip_reports_its_attachment_at_the_top(analyze):
    data = zip_bytes({"mail/report.pdf": pdf_with_embedded_file()}, method=zipfile.ZIP_STORED)
    report = analyze(data, "mail.zip")
    assert_found_through_a_child(report, "eicar.com")
