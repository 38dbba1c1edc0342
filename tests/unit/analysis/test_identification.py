"""Identification: every row of the table has a sample, and every sample is identified as its row says."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from samples import IdentificationSample, identification_samples
from samples import identify as samples_identify
from samples.identify import (
    MSI_CLSID,
    POWERPOINT_CLSID,
    ole_with_clsid,
    pe_bytes,
)
from worker.analysis import content, filetypes, identify
from worker.analysis.context import FileContext
from worker.settings import WorkerSettings

Sample = IdentificationSample
SAMPLES = identification_samples()


def sample_id(item: tuple[str, Sample]) -> str:
    module, (file_type, file_subtype, builder) = item
    return f"{module}:{file_type}/{file_subtype}:{getattr(builder, '__name__', 'sample')}"


def identified(data: bytes, tmp_path: Path, file_name: str = "sample") -> dict[str, str]:
    """What the engine's first two steps say: `identify` on the head, then the `refine` analyzer."""
    path = tmp_path / "sample"
    path.write_bytes(data)
    identity = identify.identify(data[: content.HEAD_BYTES])
    context = FileContext(
        path=path,
        file_name=file_name,
        file_path=file_name,
        depth=0,
        size=len(data),
        head=data[: 64 * 1024],
        identity=dict(identity),
        settings=WorkerSettings(spool_dir=tmp_path),
        deadline=time.monotonic() + 30,
    )
    findings = identify.refine(context)
    return {**identity, **findings.get("identity", {})}


@pytest.mark.parametrize("item", SAMPLES, ids=[sample_id(item) for item in SAMPLES])
def test_each_sample_is_identified_as_its_type_and_subtype_with_libmagic_description_kept(item, tmp_path):
    _, (file_type, file_subtype, builder) = item
    data = builder()
    identity = identified(data, tmp_path)
    assert (identity["file_type"], identity["file_subtype"]) == (file_type, file_subtype)
    assert identity["description"], "libmagic's description is reported"
    assert identity["mime_type"]


def test_every_row_of_the_table_has_a_sample():
    sampled = {(file_type, file_subtype) for _, (file_type, file_subtype, _) in SAMPLES}
    missing = [
        f"{kind.file_type}/{kind.file_subtype}"
        for kind in filetypes.KINDS
        if (kind.file_type, kind.file_subtype) not in sampled
    ]
    assert not missing, f"rows without an identification sample: {missing}"


def test_every_signature_row_matches_a_sample_by_its_bytes_alone():
    """Rows with byte signatures or header patterns hold without libmagic (whatever its version)."""
    by_pair: dict[tuple[str, str], list[bytes]] = {}
    for _, (file_type, file_subtype, builder) in SAMPLES:
        by_pair.setdefault((file_type, file_subtype), []).append(builder()[: content.HEAD_BYTES])
    unmatched = [
        f"{kind.file_type}/{kind.file_subtype}"
        for kind in filetypes.KINDS
        if (kind.magic or kind.header)
        and not any(
            kind.matches(head, "", "") for head in by_pair.get((kind.file_type, kind.file_subtype), [])
        )
    ]
    assert not unmatched, f"signature rows no sample matches by bytes: {unmatched}"


def test_the_table_names_at_least_150_distinct_types():
    pairs = {(kind.file_type, kind.file_subtype) for kind in filetypes.KINDS}
    assert len(pairs) >= 150


def test_bytes_matching_no_row_are_binary_none():
    assert filetypes.classify_kind(b"\x00\x13\x37" * 50, "application/octet-stream", "data") == (
        "Binary",
        "None",
    )


@pytest.mark.parametrize(
    ("file_name", "content", "subtype"),
    [
        ("README.md", b"# Title\n\nSome *text*.\n", "Markdown"),
        ("settings.ini", b"[section]\nkey = value\n", "INI"),
        ("dirmngr.service", b"[Unit]\nDescription=x\n\n[Service]\nExecStart=/bin/true\n", "INI"),
        ("style.css", b"body { color: red; }\n.note { margin: 0 }\n", "CSS"),
        ("CONTRIBUTING.rst", b"Contributing\n============\n\nSee ``docs``.\n", "RST"),
        ("pyproject.toml", b'[project]\nname = "x"\n', "TOML"),
        ("schema.sql", b"SELECT name FROM users WHERE id = 1;\n", "SQL"),
        ("compose.yml", b"services:\n  web:\n    image: nginx\n", "YAML"),
        ("run.ps1", b"Write-Output 'hello'\n", "PowerShell"),
        ("job.vbs", b'MsgBox "hello"\n', "VBScript"),
        ("go.cmd", b"echo hello\r\n", "Batch"),
        ("tool.pl", b"print 'hello';\n", "Perl"),
    ],
)
def test_generic_text_is_refined_by_the_file_name_suffix(file_name, content, subtype, tmp_path):
    identity = identified(content, tmp_path, file_name)
    assert (identity["file_type"], identity["file_subtype"]) == ("Text", subtype)


def test_a_suffix_does_not_override_what_libmagic_recognised(tmp_path):
    identity = identified(samples_identify.C_SOURCE, tmp_path, "notes.md")
    assert identity["file_subtype"] == "C"


@pytest.mark.parametrize(
    ("line", "subtype"),
    [
        (b"#!/usr/bin/env python3.11", "Python"),
        (b"#!/usr/bin/env -S node --no-warnings", "JavaScript"),
        (b"#!/bin/bash", "Shell"),
        (b"#!/usr/bin/tclsh8.6", "Tcl"),
        (b"#!/usr/local/bin/pwsh -NoProfile", "PowerShell"),
        (b"#!/opt/unknown/interpreter", "Shell"),
    ],
)
def test_shebang_names_the_script_language_in_table_and_refine_alike(line, subtype, tmp_path):
    script = line + b"\nhello\n"
    assert identified(script, tmp_path)["file_subtype"] == subtype
    assert identify.shebang_subtype(line) == subtype


@pytest.mark.parametrize(
    ("clsid", "expected"),
    [(MSI_CLSID, ("Installer", "MSI")), (POWERPOINT_CLSID, ("Document", "PowerPoint"))],
)
def test_ole_file_is_named_by_its_root_class_id_without_summary_information(clsid, expected, tmp_path):
    data = ole_with_clsid({"Contents": b"\0" * 64}, clsid)
    identity = identified(data, tmp_path)
    assert (identity["file_type"], identity["file_subtype"]) == expected


def test_pe_refine_tags_driver_and_dotnet(tmp_path):
    from worker.analysis.identify import pe_subtype

    assert pe_subtype(pe_bytes(pe32plus=True, subsystem=1)) == ("Driver", ["exe", "driver"])
    assert pe_subtype(pe_bytes(dll=True, dotnet=True)) == (".NET DLL", ["dll", "dotnet"])


@pytest.mark.parametrize(
    ("builder", "expected"),
    [
        (lambda: pe_bytes(dll=True, dotnet=True), ("PE", ".NET DLL")),
        (samples_identify.msi_installer, ("Installer", "MSI")),
        (samples_identify.png, ("Image", "PNG")),
        (samples_identify.pem("CERTIFICATE"), ("Certificate", "PEM")),
        (samples_identify.sqlite_database, ("Database", "SQLite")),
    ],
)
def test_engine_reports_the_identified_type_with_libmagic_description(analyze, builder, expected):
    entry = analyze(builder(), "sample")[0]
    info = entry["info"]["file"]
    assert (info["file_type"], info["file_subtype"]) == expected
    assert info["description"] and info["mime_type"]
    assert not entry.get("errors")


NO_SYSTEM_LIBMAGIC = """
import ctypes, ctypes.util, json, sys
ctypes.util.find_library = lambda name: None
original = ctypes.CDLL.__init__
def without_system_libmagic(self, name, *args, **kwargs):
    if name and "magic" in str(name) and "/" not in str(name):
        raise OSError("no system libmagic")
    original(self, name, *args, **kwargs)
ctypes.CDLL.__init__ = without_system_libmagic
from worker.analysis import identify
from samples.identify import png
json.dump(identify.identify(png()), sys.stdout)
"""


def test_without_a_system_libmagic_the_pylibmagic_copy_identifies(tmp_path):
    import json
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[3]
    done = subprocess.run(
        [sys.executable, "-c", NO_SYSTEM_LIBMAGIC], cwd=root, capture_output=True, check=True, timeout=60
    )
    identity = json.loads(done.stdout)
    assert (identity["file_type"], identity["file_subtype"]) == ("Image", "PNG")
    assert identity["description"].startswith("PNG image data")


def text_varieties() -> dict[str, bytes]:
    """Text libmagic names only by its encoding, and text its database names."""
    words = b"invoice payment account update please open the attached document " * 300
    lines = b"\n".join(words[i : i + 72] for i in range(0, len(words), 72))
    return {
        "ascii, one long line": words,
        "ascii, lines": lines,
        "crlf lines": lines.replace(b"\n", b"\r\n"),
        "utf-8": "Größe, naïve café, ünïcödé\n".encode() * 200,
        "utf-8 with bom": b"\xef\xbb\xbf" + lines,
        "utf-16le": "plain words in utf-16\r\n".encode("utf-16-le") * 200,
        "latin-1": "caf\xe9 cr\xe8me br\xfbl\xe9e\n".encode("latin-1") * 300,
        "json": b'{"a": [' + b",".join(b'"%d"' % n for n in range(2000)) + b"]}",
        "csv": b"name,amount,date\n" + b"alice,10,2024-01-01\n" * 400,
        "html": b"<!DOCTYPE html><html><head><title>x</title></head><body>" + words + b"</body></html>",
        "xml": b'<?xml version="1.0"?>\n<root>' + lines + b"</root>",
        "php": b"<?php echo 'x'; ?>\n" + lines,
        "shell": b"#!/bin/sh\necho hi\n" + lines,
        "python": b"import os\n\ndef main():\n    return os.getcwd()\n" * 100,
        "c source": b"#include <stdio.h>\nint main(void) { return 0; }\n" + lines,
        "very short": b"hi",
        "binary noise": bytes(range(256)) * 64,
    }


def test_libmagic_answers_as_two_full_calls_would_on_every_sample():
    """The cheap path (no database tests once the description shows none matched) gives what
    asking libmagic twice in full gives, on every identification sample and text variety."""
    libmagic = identify._magic()
    heads = {sample_id(item): item[1][2]()[: identify.MAGIC_BYTES] for item in SAMPLES}
    heads.update(text_varieties())

    def two_full_calls(head: bytes) -> tuple[str, str]:
        if not head:  # never given to libmagic
            return "inode/x-empty", "empty"
        return libmagic.mime.from_buffer(head), libmagic.description.from_buffer(head)

    differ = {
        name: (full, identify.libmagic_answers(head))
        for name, head in heads.items()
        if (full := two_full_calls(head)) != identify.libmagic_answers(head)
    }
    assert len(heads) > 150 and not differ


class CountingMagic:
    def __init__(self, inner, calls: list[str], name: str):
        self.inner, self.calls, self.name = inner, calls, name

    def from_buffer(self, head: bytes) -> str:
        self.calls.append(self.name)
        return self.inner.from_buffer(head)


def test_plain_text_asks_the_database_once_and_a_file_it_names_twice(monkeypatch):
    real = identify._magic()
    calls: list[str] = []
    counting = identify.Libmagic(
        **{name: CountingMagic(getattr(real, name), calls, name) for name in vars(real)}
    )
    monkeypatch.setattr(identify, "_magic", lambda: counting)
    assert identify.libmagic_answers(text_varieties()["ascii, lines"]) == ("text/plain", "ASCII text")
    assert calls == ["description", "builtin_description", "builtin_mime"]
    calls.clear()
    mime, description = identify.libmagic_answers(text_varieties()["shell"])
    assert mime == "text/x-shellscript" and "shell script" in description
    assert calls[0] == "description" and calls[-1] == "mime" and "builtin_mime" not in calls
