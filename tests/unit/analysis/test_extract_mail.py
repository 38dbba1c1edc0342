"""Mail and encodings through the engine: EICAR hidden in MIME, mbox, .msg, TNEF, uuencode, BinHex, blobs."""

from __future__ import annotations

import base64
import binascii
import hashlib
import random
from urllib.parse import quote

from samples.basic import EICAR, zip_bytes
from samples.mail import (
    IDENTIFICATION_SAMPLES,
    PADDED_EICAR,
    binhex,
    binhex_with_eicar,
    cfb_with_many_entries,
    eml_bytes,
    eml_with_eicar,
    html_with_data_uri,
    mbox_bytes,
    mbox_with_eicar_in_third,
    msg_bytes,
    msg_with_eicar,
    msg_with_embedded_message,
    msg_with_zipped_eicar,
    powershell_with_base64_zip,
    rtf_compressed,
    stored_zip_with_eicar,
    text_with_uuencoded_eicar,
    tnef_bytes,
    tnef_with_eicar,
    uuencode,
)
from tests.support.memory import peak_memory
from tests.unit.analysis.conftest import by_path, hashes
from worker.analysis.extractors import outlook
from worker.analysis.extractors.outlook import decompress_rtf
from worker.analysis.identify import identify

MALICIOUS = 3


def paths(report) -> list[str]:
    return [entry["info"]["file"]["file_path"] for entry in report]


def kind(entry) -> tuple[str, str]:
    return entry["info"]["file"]["file_type"], entry["info"]["file"]["file_subtype"]


def assert_found_in_top(report, child_path: str, stored_raw: bool = False) -> dict:
    """EICAR is the child at `child_path`, and the top file is malicious because of it.

    A container that stores its members as they are (`stored_raw`: .msg, TNEF) also holds
    the EICAR string itself, so its own YARA match comes first and nothing is propagated.
    """
    child = by_path(report, child_path)
    assert child["classification"]["classification"] == MALICIOUS
    assert hashes(child)["sha256"] == hashlib.sha256(EICAR).hexdigest()
    top = report[0]["classification"]
    assert top["classification"] == MALICIOUS
    assert top["propagated"] is not stored_raw
    return child


def error_texts(entry, analyzer: str) -> list[str]:
    return [item["error"] for item in entry.get("errors", []) if item["analyzer"] == analyzer]


def limits_hit(entry) -> list[str]:
    return [limit["limit"] for limit in entry["metadata"]["archive"]["limits_hit"]]


def test_every_mail_identification_sample_is_identified_as_its_row():
    for file_type, file_subtype, build in IDENTIFICATION_SAMPLES:
        identity = identify(build()[:16384])
        assert (identity["file_type"], identity["file_subtype"]) == (file_type, file_subtype), build.__name__


# --- MIME ---------------------------------------------------------------------------------


def test_eicar_attached_to_an_eml_is_found_and_bodies_become_named_children(analyze):
    report = analyze(eml_with_eicar(), "invoice.eml")
    assert kind(report[0]) == ("Email", "EML")
    assert paths(report)[1:] == ["body.txt", "body.html", "invoice.com"]
    assert_found_in_top(report, "invoice.com")
    assert kind(by_path(report, "body.html")) == ("Text", "HTML")
    email = report[0]["metadata"]["email"]
    assert email["subject"] == "Invoice 2024-001"
    assert email["attachments"] == ["invoice.com"]
    assert "errors" not in report[0]


def test_an_encoded_non_ascii_attachment_name_is_reported_decoded(analyze):
    report = analyze(eml_bytes({"Rechnung März.com": EICAR}, html=None), "rechnung.eml")
    assert_found_in_top(report, "Rechnung März.com")


def test_a_forwarded_message_is_a_child_message_whose_attachment_is_its_own_child(analyze):
    report = analyze(eml_bytes(nested=eml_with_eicar(), html=None), "fwd.eml")
    forwarded = by_path(report, "forwarded.eml")
    assert kind(forwarded) == ("Email", "EML")
    assert forwarded["parent_relationship"]["parent_index"] == 0
    payload = by_path(report, "invoice.com")
    assert payload["parent_relationship"]["parent_index"] == forwarded["index"]
    assert forwarded["classification"]["propagated"] is True
    assert report[0]["classification"]["classification"] == MALICIOUS


def test_truncated_eml_keeps_its_report_and_says_the_mime_structure_is_damaged(analyze):
    data = eml_with_eicar()
    report = analyze(data[: data.index(b"Content-Disposition: attachment") + 80], "cut.eml")
    assert report[0]["classification"]["classification"] == 0
    assert any("malformed MIME structure" in text for text in error_texts(report[0], "mime"))
    assert paths(report)[1:3] == ["body.txt", "body.html"]


def test_a_mail_of_10000_tiny_parts_stops_at_the_children_limit_quickly(analyze):
    boundary = "b0undary"
    parts = "".join(
        f"--{boundary}\nContent-Type: application/octet-stream\nContent-Disposition: attachment; "
        f'filename="p{number}.bin"\n\nx\n'
        for number in range(10_000)
    )
    data = (
        f"From: a@example.com\nTo: b@example.com\nSubject: many\nMIME-Version: 1.0\n"
        f'Content-Type: multipart/mixed; boundary="{boundary}"\n\n{parts}--{boundary}--\n'
    ).encode()
    report = analyze(data, "bomb.eml", unpack_max_children=20)
    assert len(report) == 1 + 20
    assert limits_hit(report[0]) == ["children"]


def test_oversized_message_is_refused_with_an_error_not_parsed(analyze, monkeypatch):
    from worker.analysis.extractors import mime

    monkeypatch.setattr(mime, "MAX_MESSAGE_BYTES", 100)
    report = analyze(eml_with_eicar(), "big.eml")
    assert len(report) == 1
    assert any("not parsed" in text for text in error_texts(report[0], "mime"))


# --- mbox ---------------------------------------------------------------------------------


def test_mbox_of_three_messages_gives_three_message_children_and_eicar_in_the_third(analyze):
    report = analyze(mbox_with_eicar_in_third(), "inbox.mbox")
    assert kind(report[0]) == ("Email", "MBOX")
    messages = [entry for entry in report if entry.get("parent_relationship", {}).get("parent_index") == 0]
    assert [entry["info"]["file"]["file_path"] for entry in messages] == [
        "message-1.eml",
        "message-2.eml",
        "message-3.eml",
    ]
    assert all(kind(entry) == ("Email", "EML") for entry in messages)
    third = by_path(report, "message-3.eml")
    assert third["classification"]["classification"] == MALICIOUS
    assert by_path(report, "eicar.com")["parent_relationship"]["parent_index"] == third["index"]
    assert by_path(report, "message-1.eml")["classification"]["classification"] == 0
    assert report[0]["classification"]["propagated"] is True
    assert report[0]["metadata"]["email"]["mbox_messages"] == 3


def test_an_unquoted_body_line_starting_with_from_does_not_split_the_message(analyze):
    message = eml_bytes(text="From the desk of the manager, at 10:00\n\nFrom here on, read carefully.\n")
    data = b"From a@example.com Mon Jan  1 10:00:00 2024\n" + message.replace(b"\r\n", b"\n")
    report = analyze(data, "one.mbox")
    assert report[0]["metadata"]["email"]["mbox_messages"] == 1


def test_text_starting_with_from_that_is_not_an_mbox_is_reported_and_treated_as_text(analyze):
    report = analyze(b"From the desk of the manager:\nall good.\n", "memo.txt")
    assert kind(report[0]) == ("Text", "None")
    assert any("not an mbox" in text for text in error_texts(report[0], "mbox"))


def test_mbox_children_limit_stops_a_mailbox_of_many_messages(analyze):
    data = mbox_bytes([eml_bytes(subject=f"m{n}", html=None) for n in range(50)])
    report = analyze(data, "many.mbox", unpack_max_children=5)
    assert limits_hit(report[0]) == ["children"]
    assert len(report) == 1 + 5


# --- Outlook .msg -------------------------------------------------------------------------


def test_eicar_attached_to_an_outlook_msg_is_found_under_its_long_filename(analyze):
    report = analyze(msg_with_eicar(), "invoice.msg")
    assert kind(report[0]) == ("Email", "MSG")
    assert paths(report)[1:] == ["body.txt", "invoice.com"]
    assert_found_in_top(report, "invoice.com", stored_raw=True)
    assert by_path(report, "body.txt")["info"]["file"]["size"] == len("Invoice attached.".encode("utf-16-le"))
    assert report[0]["metadata"]["email"]["subject"] == "Invoice"


def test_a_message_embedded_in_a_msg_is_walked_and_its_attachment_named_under_it(analyze):
    report = analyze(msg_with_embedded_message(), "fwd.msg")
    assert "Fwd: payment/payload.com" in paths(report)
    assert_found_in_top(report, "Fwd: payment/payload.com", stored_raw=True)


def test_zipped_eicar_attached_to_a_msg_propagates_to_the_message(analyze):
    report = analyze(msg_with_zipped_eicar(), "invoice.msg")
    assert by_path(report, "eicar.com")["classification"]["classification"] == MALICIOUS
    assert report[0]["classification"]["propagation_source"]["file_path"] == "invoice.zip"
    assert report[0]["classification"]["propagated"] is True


def test_msg_rtf_body_is_decompressed_to_body_rtf(analyze):
    rtf = b"{\\rtf1\\ansi\\ansicpg1252\\pard hello world}\r\n"
    report = analyze(msg_bytes({}, {"__substg1.0_10090102": rtf_compressed(rtf)}), "rtf.msg")
    body = by_path(report, "body.rtf")
    assert hashes(body)["sha256"] == hashlib.sha256(rtf).hexdigest()


def test_compressed_rtf_decoder_reads_the_specification_example():
    # MS-OXRTFCP 3.1.1: "{\rtf1\ansi\ansicpg1252\pard hello world}\r\n", compressed.
    example = bytes.fromhex(
        "2d0000002b0000004c5a4675f1c5c7a703000a00726366317e726e7465"
        "6d7067756e636d656d7067326b20726b6c687720686f2e202062706f6c6c"
    )
    assert example[8:12] == b"LZFu"
    rtf = b"{\\rtf1\\ansi\\ansicpg1252\\pard hello world}\r\n"
    assert b"".join(decompress_rtf(rtf_compressed(rtf))) == rtf


def test_damaged_msg_is_an_error_item_with_the_report_intact(analyze):
    data = bytearray(msg_bytes({"notes.txt": b"nothing"}))
    data[48:52] = b"\xff\xff\xff\x7f"  # first directory sector far beyond the file
    report = analyze(bytes(data), "broken.msg")
    assert report[0]["classification"]["classification"] == 0
    assert error_texts(report[0], "outlook")


def test_a_compound_file_of_a_huge_directory_is_refused_before_olefile_builds_it(analyze, tmp_path):
    data = cfb_with_many_entries(outlook.MAX_DIRECTORY_ENTRIES + 5000)
    report = analyze(data, "huge.msg")
    assert any("directory entries" in text for text in error_texts(report[0], "outlook"))
    path = tmp_path / "huge.msg"
    path.write_bytes(data)

    def refused() -> Exception:
        try:
            outlook.BoundedOleFile(str(path))
        except outlook.DirectoryTooLarge as error:
            return error
        raise AssertionError("a directory over the limit was read")

    _, peak = peak_memory(refused)
    assert peak < 4 * len(data), f"peak Python memory {peak} bytes"


def test_a_compound_file_below_the_directory_limit_is_read(analyze):
    report = analyze(cfb_with_many_entries(500), "many-properties.msg")
    assert kind(report[0]) == ("Email", "MSG")
    assert not error_texts(report[0], "outlook")


def test_msg_children_limit_stops_a_message_of_many_attachments(analyze):
    data = msg_bytes({f"file{number}.txt": b"x" for number in range(30)})
    report = analyze(data, "many.msg", unpack_max_children=4)
    assert limits_hit(report[0]) == ["children"]
    assert len(report) == 1 + 4


# --- TNEF ---------------------------------------------------------------------------------


def test_eicar_in_winmail_dat_is_found_under_its_long_filename(analyze):
    report = analyze(tnef_with_eicar(), "winmail.dat")
    assert kind(report[0]) == ("Email", "TNEF")
    assert paths(report)[1:] == ["body.txt", "payload-with-a-long-name.com"]
    assert_found_in_top(report, "payload-with-a-long-name.com", stored_raw=True)
    assert report[0]["metadata"]["email"]["tnef_attachments"] == ["payload-with-a-long-name.com"]


def test_truncated_tnef_salvages_what_it_can_and_reports_the_damage(analyze):
    data = tnef_with_eicar()
    # Cut inside the last attribute, the attachment's properties holding its long name.
    report = analyze(data[:-40], "winmail.dat")
    assert any("TNEF damaged" in text for text in error_texts(report[0], "tnef"))
    assert_found_in_top(report, "payload-", stored_raw=True)  # named by its short title instead


def test_tnef_with_a_wrong_signature_is_an_error_item(analyze, monkeypatch):
    from worker.analysis.extractors import tnef

    monkeypatch.setattr(tnef, "SIGNATURE", 0x12345678)
    report = analyze(tnef_with_eicar(), "winmail.dat")
    assert error_texts(report[0], "tnef") == ["not a TNEF stream: wrong signature"]


def test_tnef_children_limit_stops_many_attachments(analyze):
    data = tnef_bytes({f"f{number}.bin": b"data" for number in range(30)})
    report = analyze(data, "winmail.dat", unpack_max_children=3)
    assert limits_hit(report[0]) == ["children"]


# --- uuencode -----------------------------------------------------------------------------


def test_uuencoded_eicar_inside_a_text_is_decoded_under_its_name(analyze):
    report = analyze(text_with_uuencoded_eicar(), "mail.txt")
    assert paths(report)[1:] == ["eicar.com"]
    assert_found_in_top(report, "eicar.com")


def test_uuencoded_block_in_an_email_body_is_decoded_two_levels_down(analyze):
    report = analyze(eml_bytes(text=text_with_uuencoded_eicar().decode(), html=None), "old.eml")
    eicar = by_path(report, "eicar.com")
    assert by_path(report, "body.txt")["index"] == eicar["parent_relationship"]["parent_index"]
    assert report[0]["classification"]["classification"] == MALICIOUS


def test_base64_form_of_uuencode_is_decoded(analyze):
    data = b"begin-base64 644 eicar.com\n" + base64.encodebytes(EICAR) + b"====\n"
    report = analyze(data, "eicar.b64")
    assert kind(report[0]) == ("Text", "UUE")
    assert_found_in_top(report, "eicar.com")


def test_truncated_uuencoded_block_keeps_the_decoded_part_and_says_it_has_no_end(analyze):
    data = uuencode(EICAR + b"tail" * 40, "cut.bin")
    report = analyze(data[: data.index(b"`\nend")], "cut.uue")
    assert "cut.bin" in paths(report)
    assert any("no end line" in text for text in error_texts(report[0], "uudecode"))


def test_uuencoded_blocks_stop_at_the_children_limit(analyze):
    data = b"".join(uuencode(b"block %d\n" % number, f"f{number}.txt") for number in range(5))
    report = analyze(data, "many.uue", unpack_max_children=2)
    assert limits_hit(report[0]) == ["children"]
    assert paths(report)[1:] == ["f0.txt", "f1.txt"]


def test_garbage_in_a_uuencoded_block_is_an_error_item(analyze):
    data = b"begin 644 bad.bin\n" + binascii.b2a_uu(b"x" * 45) + b"M\x7f\x7f\x7f\x7f\n`\nend\n"
    report = analyze(data, "bad.uue")
    assert any("damaged" in text for text in error_texts(report[0], "uudecode"))


# --- BinHex -------------------------------------------------------------------------------


def test_binhex_eicar_is_decoded_with_its_name_and_correct_crcs(analyze):
    report = analyze(binhex_with_eicar(), "eicar.hqx")
    assert kind(report[0]) == ("Text", "BinHex")
    child = by_path(report, "eicar.com")
    assert hashes(child)["sha256"] == hashlib.sha256(EICAR + b"\0" * 40 + b"\x90\n").hexdigest()
    assert child["classification"]["classification"] == MALICIOUS
    assert report[0]["classification"]["propagated"] is True
    assert "errors" not in report[0]
    assert report[0]["metadata"]["encoding"]["binhex"]["type"] == "TEXT"


def test_binhex_resource_fork_is_a_second_child(analyze):
    report = analyze(binhex(b"data fork", "file", resource=b"resource fork"), "file.hqx")
    assert paths(report)[1:] == ["file", "file.rsrc"]


def test_truncated_binhex_is_an_error_item_with_the_report_intact(analyze):
    data = binhex_with_eicar()
    report = analyze(data[: len(data) // 2], "cut.hqx")
    assert len(report) == 1
    assert any("BinHex damaged" in text for text in error_texts(report[0], "binhex"))


def test_binhex_with_a_bad_crc_still_gives_the_data_and_says_so(analyze):
    data = bytearray(binhex(EICAR, "eicar.com"))
    # Flip one character in the middle of the data (same alphabet, different value).
    middle = data.index(b":") + 60
    data[middle] = ord("A") if data[middle] != ord("A") else ord("B")
    report = analyze(bytes(data), "bad.hqx")
    assert any("CRC" in text for text in error_texts(report[0], "binhex"))


def test_binhex_run_length_bomb_stops_at_the_ratio_limit(analyze):
    report = analyze(binhex(b"\0" * 2_000_000, "zeros.bin"), "bomb.hqx", unpack_max_ratio=2)
    assert limits_hit(report[0]) == ["ratio"]


# --- Blobs in text, scripts and HTML --------------------------------------------------------


def test_powershell_base64_blob_holding_a_zip_holding_eicar_is_found_three_levels_down(analyze):
    report = analyze(powershell_with_base64_zip(), "dropper.ps1")
    assert kind(report[0]) == ("Text", "PowerShell")
    blob = report[1]
    assert blob["info"]["file"]["file_path"].startswith("base64@")
    assert kind(blob) == ("Archive", "ZIP")
    eicar = by_path(report, "eicar.com")
    assert eicar["parent_relationship"]["parent_index"] == blob["index"]
    assert eicar["classification"]["classification"] == MALICIOUS
    assert report[0]["classification"]["propagated"] is True


def test_zip_in_a_hex_string_and_in_a_byte_list_is_decoded(analyze):
    payload = stored_zip_with_eicar()
    script = b"var payload = '" + payload.hex().encode() + b"';\n"
    report = analyze(b"// loader\n" + script, "loader.js")
    assert report[0]["classification"]["classification"] == MALICIOUS
    assert any(path.startswith("hex@") for path in paths(report))
    byte_list = b"[Byte[]] $b = " + b",".join(b"0x%02x" % byte for byte in payload) + b"\n"
    report = analyze(byte_list, "loader.ps1")
    assert report[0]["classification"]["classification"] == MALICIOUS
    assert any(path.startswith("hex@") for path in paths(report))


def test_html_data_uri_holding_eicar_is_a_child(analyze):
    report = analyze(html_with_data_uri(), "shared.html")
    assert kind(report[0]) == ("Text", "HTML")
    children = [path for path in paths(report)[1:] if path.startswith("data-uri@")]
    assert len(children) == 1  # the tiny logo is under the minimum
    assert_found_in_top(report, children[0])


def test_atob_string_in_a_script_tag_is_decoded(analyze):
    payload = base64.b64encode(stored_zip_with_eicar())
    page = b"<html><head><script>\nvar blob = atob('" + payload + b"');\n</script></head></html>\n"
    report = analyze(page, "lure.html")
    assert any(path.startswith("base64@") for path in paths(report))
    assert by_path(report, "eicar.com")["classification"]["classification"] == MALICIOUS
    assert report[0]["classification"]["propagated"] is True


def test_percent_encoded_data_uri_is_decoded(analyze):
    page = b'<html><body><iframe src="data:text/html,' + quote(EICAR + b" <b>x</b>").encode() + b'"></iframe>'
    report = analyze(page + b"</body></html>\n", "frame.html")
    child = by_path(report, "data-uri@25.html")
    assert child["classification"]["classification"] == MALICIOUS
    assert report[0]["classification"]["propagated"] is True


def test_a_data_uri_with_a_stray_base64_character_is_decoded_leniently_without_errors(analyze):
    page = b'<a href="data:application/octet-stream;base64,' + b"QUJD" * 40 + b'Q">x</a>\n'
    report = analyze(b"<html><body>" + page + b"</body></html>\n", "broken.html")
    assert "errors" not in report[0]
    assert len(report) == 2 and report[1]["info"]["file"]["size"] == 120


def test_plain_prose_and_short_base64_make_no_children(analyze):
    text = b"The quick brown fox jumps over the lazy dog.\n" * 200 + b"token=QUJDREVGR0g=\n"
    report = analyze(text, "notes.txt")
    assert len(report) == 1


def test_base64_of_text_is_not_a_child_unless_large(analyze):
    prose = base64.b64encode(b"just an ordinary sentence, repeated. " * 20)
    report = analyze(b"value: " + prose + b"\n", "config.txt")
    assert len(report) == 1


def test_blobs_per_file_are_capped(analyze):
    from worker.analysis.extractors import encoded

    blob = base64.b64encode(bytes(range(256)) * 2)
    text = b"".join(b"item%d = %s\n" % (number, blob) for number in range(encoded.MAX_BLOBS + 5))
    report = analyze(text, "many.txt")
    assert len(report) == 1 + encoded.MAX_BLOBS
    assert any("only the first" in text for text in error_texts(report[0], "embedded-blobs"))


def test_base64_nested_in_base64_is_bounded_by_the_depth_limit(analyze):
    data = zip_bytes({"eicar.com": PADDED_EICAR, "noise.bin": random.randbytes(80 * 1024)})
    for _ in range(6):
        data = b"x = '" + base64.b64encode(data) + b"'\n"  # each level large enough to be a child
    report = analyze(data, "nested.txt", unpack_max_depth=3)
    assert len(report) == 4
    assert limits_hit(report[-1]) == ["depth"]


def test_blob_scan_of_a_large_text_file_is_fast(analyze):
    line = b"abcdefghijklmnop" * 20 + b" qrstuvwxyz0123456789+/" * 3 + b"\n"
    text = line * (8 * 1024**2 // len(line))
    report = analyze(text, "big.txt", analysis_file_time_limit_seconds=10)
    # A slow scan ends at the time limit, which the report names.
    assert not any("time limit" in item["error"] for item in report[0].get("errors", []))
    assert [run["outcome"] for run in report[0]["info"]["analyzers"] if run["name"] == "embedded-blobs"] == [
        "ok"
    ]
    assert report[0]["info"]["file"]["size"] >= 8 * 1024**2 - len(line)
