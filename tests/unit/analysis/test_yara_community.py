"""Community rule sets as users bring them: per-file external variables, modules, broken files left out."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from samples.basic import EICAR, zip_bytes
from samples.yara import EXTERNALS_RULES, MODULE_RULES, SYNTAX_ERROR_RULE, minimal_pe
from tests.unit.analysis.conftest import by_path
from worker.analysis import ruleset, yara_scan


def yara_tags(entry) -> set[str]:
    return {tag.removeprefix("yara:") for tag in entry["tags"] if tag.startswith("yara:")}


def test_external_variables_fire_on_the_right_file_inside_a_zip_and_on_no_other(rules_dir: Path, analyze):
    (rules_dir / "externals.yar").write_text(EXTERNALS_RULES)
    bundle = zip_bytes(
        {"inner/dropper.exe": minimal_pe(), "inner/app.js": b"console.log('hi');\n", "readme.txt": b"hello\n"}
    )
    report = analyze(bundle, "bundle.zip")
    top = report[0]
    exe, script, readme = (
        by_path(report, name) for name in ("inner/dropper.exe", "inner/app.js", "readme.txt")
    )
    assert yara_tags(exe) == {"Name_Ends_In_Exe", "Path_Inside_Inner", "Header_Type_Exe", "Scanhub_Type_Pe"}
    assert yara_tags(script) == {"Extension_Is_Js", "Path_Inside_Inner"}
    assert yara_tags(readme) == {"No_Owner"}
    assert yara_tags(top) == {"Header_Type_Zip"}


def test_externals_of_a_file_are_its_name_path_lower_case_extension_and_header_type():
    context: Any = SimpleNamespace(
        file_name="Invoice.PDF.EXE",
        file_path="mail/attachments/Invoice.PDF.EXE",
        head=minimal_pe()[:64],
        identity={"file_type": "PE", "file_subtype": "Exe"},
    )
    assert yara_scan.file_externals(context) == {
        "filename": "Invoice.PDF.EXE",
        "filepath": "mail/attachments/Invoice.PDF.EXE",
        "extension": ".exe",
        "filetype": "EXE",
        "owner": "",
        "scanhub_filetype": "PE/Exe",
    }
    assert set(yara_scan.file_externals(context)) == set(ruleset.EXTERNALS)


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"MZ\x90\x00", "EXE"),
        (b"\x7fELF\x02", "ELF"),
        (b"PK\x03\x04\x14\x00\x06\x00", "Office"),
        (b"PK\x03\x04\x0a\x00\x00\x00", "ZIP"),
        (b"%PDF-1.7", "PDF"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "OLE"),
        (b"Rar!\x1a\x07\x00", "RAR"),
        (b"#!/bin/sh", "UNIX SCRIPT"),
        (b"hello", "UNKNOWN"),
        (b"", "UNKNOWN"),
    ],
)
def test_filetype_is_the_upper_case_header_type_of_loki_and_thor(head: bytes, expected: str):
    assert yara_scan.header_type(head) == expected


def test_a_rule_set_using_pe_math_hash_elf_dotnet_and_externals_compiles_whole(tmp_path: Path):
    for name, text in MODULE_RULES.items():
        (tmp_path / name).write_text(text)
    compiled = ruleset.compile_ruleset(tmp_path)
    assert [item.key for item in compiled.files if item.errors] == []
    assert compiled.rule_count == 8


def test_a_rule_file_with_a_syntax_error_is_left_out_alone_with_its_error(tmp_path: Path):
    for name, text in MODULE_RULES.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "broken.yar").write_text(SYNTAX_ERROR_RULE)
    compiled = ruleset.compile_ruleset(tmp_path)
    status = ruleset.sync_status(compiled, errors_only=True)
    assert [item["key"] for item in status["rulesets"]] == ["broken.yar"]
    assert "syntax error" in status["rulesets"][0]["errors"][0]
    assert compiled.rule_count == 8


def test_rule_files_in_subdirectories_are_read_and_keyed_by_their_relative_path(rules_dir: Path, analyze):
    (rules_dir / "malware" / "apt").mkdir(parents=True)
    (rules_dir / "malware" / "apt" / "marker.yara").write_text(
        'rule Deep_Marker { meta: classification = "suspicious" threat_name = "Deep.Marker" '
        'strings: $a = "deep-marker-51c2" condition: $a }\n'
    )
    (rules_dir / ".git").mkdir()
    (rules_dir / ".git" / "ignored.yar").write_text("rule Ignored { condition: true }\n")
    compiled = ruleset.current_ruleset(rules_dir, check_interval=0)
    keys = [item.key for item in compiled.files]
    assert "malware/apt/marker.yara" in keys and not any(key.startswith(".git") for key in keys)
    report = analyze(b"xx deep-marker-51c2 xx", "note.txt")
    assert report[0]["classification"]["result"] == "Deep.Marker"


def test_an_unknown_module_leaves_its_file_out_and_the_rest_still_matches(rules_dir: Path, analyze):
    (rules_dir / "needs_magic.yar").write_text(
        'import "magic"\nrule Needs_Magic { condition: magic.mime_type() == "text/plain" }\n'
    )
    compiled = ruleset.current_ruleset(rules_dir, check_interval=0)
    broken = {item.key: item.errors for item in compiled.files if item.errors}
    assert list(broken) == ["needs_magic.yar"]
    assert "magic" in broken["needs_magic.yar"][0] or "mime_type" in broken["needs_magic.yar"][0]
    assert analyze(EICAR, "eicar.com")[0]["classification"]["result"] == "Text.Test.EICAR"
