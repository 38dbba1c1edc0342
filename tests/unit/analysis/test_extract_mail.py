"""Mail and encodings through the engine: EICAR hidden in MIME, mbox, .msg, TNEF, uuencode, BinHex, blobs."""

from __future__ import annotations

import hashlib
import time
import tracemalloc

import pytest

from tests.support.samples import EICAR
from tests.support.samples_mail import (
    IDENTIFICATION_SAMPLES,
    cfb_with_many_entries,
    eml_bytes,
    eml_with_eicar,
    mbox_bytes,
    mbox_with_eicar_in_third,
    msg_bytes,
    msg_with_eicar,
    msg_with_embedded_message,
    msg_with_zipped_eicar,
    rtf_compressed,
    tnef_bytes,
    tnef_with_eicar,
)
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
    started = time.monotonic()
    report = analyze(data, "bomb.eml", unpack_max_children=20)
    assert time.monotonic() - started < 20
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
    run = next(run for run in report[0]["info"]["analyzers"] if run["name"] == "outlook")
    assert run["duration_ms"] < 1000
    path = tmp_path / "huge.msg"
    path.write_bytes(data)
    tracemalloc.start()
    try:
        with pytest.raises(outlook.DirectoryTooLarge):
            outlook.BoundedOleFile(str(path))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
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
