"""Executables as containers: UPX-packed files, PE overlays and resources, installers, PyInstaller, AutoIt."""

from __future__ import annotations

import shutil

import pytest

from samples.basic import EICAR, distlib_launcher, python_elf, zip_bytes
from samples.executables import (
    IDENTIFICATION_SAMPLES,
    autoit_a3x,
    autoit_pe,
    carchive,
    inno_marked_pe,
    installshield_setup,
    minimal_pe,
    nsis_installer,
    pe_with_zip_resource,
    pyinstaller_entries,
    pyinstaller_pe,
    upx_marked_elf,
    upx_marked_pe,
    upx_packed_elf,
)
from tests.support.memory import peak_memory
from tests.unit.analysis.conftest import by_path

MALICIOUS = 3


def indicator_ids(entry) -> set[str]:
    return {item["id"] for item in entry["indicators"]}


def errors_of(entry, analyzer: str) -> list[str]:
    return [item["error"] for item in entry.get("errors", []) if item["analyzer"] == analyzer]


def assert_found_inside(report, file_path: str) -> None:
    child = by_path(report, file_path)
    assert child["classification"]["classification"] == MALICIOUS
    assert report[0]["classification"]["classification"] == MALICIOUS
    assert report[0]["classification"]["propagated"] is True


# --- UPX ---------------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("upx") is None or shutil.which("cc") is None, reason="needs upx and cc")
def test_upx_packed_elf_is_unpacked_by_the_tool_and_eicar_inside_is_found(analyze):
    packed = upx_packed_elf()
    assert packed is not None and EICAR not in packed
    report = analyze(packed, "packed-eicar")
    assert report[0]["info"]["file"]["file_type"] == "ELF"
    assert {"elf:upx"} <= indicator_ids(report[0])
    assert {"packed", "upx"} <= set(report[0]["tags"])
    assert report[0]["metadata"]["archive"]["format"] == "upx"
    assert_found_inside(report, "packed-eicar.unpacked")
    unpacked = by_path(report, "packed-eicar.unpacked")
    assert unpacked["info"]["file"]["file_type"] == "ELF"
    assert "elf:upx" not in indicator_ids(unpacked)


@pytest.mark.skipif(shutil.which("upx") is None or shutil.which("cc") is None, reason="needs upx and cc")
def test_upx_output_over_the_ratio_limit_is_not_kept_and_the_limit_is_reported(analyze):
    packed = upx_packed_elf()
    assert packed is not None
    # 1 MiB is always allowed (the ratio floor); a tiny total-bytes budget stops the ~80 KB output.
    report = analyze(packed, "packed", unpack_max_total_bytes=4096)
    assert len(report) == 1
    assert [limit["limit"] for limit in report[0]["metadata"]["archive"]["limits_hit"]] == ["total_bytes"]


@pytest.mark.skipif(shutil.which("upx") is None, reason="needs upx")
def test_file_with_upx_markers_that_upx_cannot_unpack_ends_as_an_error_item(analyze):
    report = analyze(upx_marked_elf(), "fake-upx")
    assert "elf:upx" in indicator_ids(report[0])
    [error] = errors_of(report[0], "upx")
    assert error.startswith("upx could not unpack the file")
    assert len(report) == 1


@pytest.mark.parametrize(("sample", "heuristic"), [(upx_marked_pe, "pe:upx"), (upx_marked_elf, "elf:upx")])
def test_without_the_upx_tool_a_upx_file_is_flagged_and_reported_tool_missing(
    analyze, monkeypatch, tmp_path, sample, heuristic
):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no upx on the PATH
    report = analyze(sample(), "packed.bin")
    entry = report[0]
    assert {heuristic, "unpack:tool-missing"} <= indicator_ids(entry)
    assert {"upx", "tool-missing"} <= set(entry["tags"])
    assert errors_of(entry, "upx") == ["upx is not installed: the UPX-packed file was not unpacked"]
    assert len(report) == 1


def test_plain_pe_and_elf_are_not_taken_for_upx(analyze):
    for data in (minimal_pe(), distlib_launcher().read_bytes(), python_elf().read_bytes()):
        entry = analyze(data, "plain")[0]
        assert not {"pe:upx", "elf:upx", "unpack:tool-missing"} & indicator_ids(entry)
        assert "upx" not in [run["name"] for run in entry["info"]["analyzers"]]


async def test_worker_health_shows_whether_the_upx_tool_is_installed(worker_api, monkeypatch, tmp_path):
    body = await (await worker_api.client.get("/health")).json()
    expected = "ok" if shutil.which("upx") else "missing (needed for unpacking UPX-packed PE and ELF files)"
    assert body["checks"]["tools"] == {"upx": expected}
    monkeypatch.setenv("PATH", str(tmp_path))
    body = await (await worker_api.client.get("/health")).json()
    assert body["checks"]["tools"]["upx"].startswith("missing")


# --- PE overlays and resources -----------------------------------------------------------


def test_distlib_launcher_with_a_script_and_zip_appended_yields_the_zip_and_eicar_in_it(analyze):
    launcher = distlib_launcher().read_bytes()
    # The layout distlib gives Windows console scripts: launcher, shebang line, ZIP.
    data = launcher + b"#!python.exe\r\n" + zip_bytes({"__main__.py": b"print(1)\n", "eicar.com": EICAR})
    report = analyze(data, "tool.exe")
    overlay = report[1]
    assert overlay["info"]["file"]["file_path"] == f"overlay@{len(launcher) + 14:#x}.zip"
    assert overlay["info"]["file"]["file_type"] == "Archive"
    assert_found_inside(report, "eicar.com")
    source = report[0]["classification"]["propagation_source"]
    assert source["file_path"] == overlay["info"]["file"]["file_path"]


def test_overlay_starting_with_a_known_signature_is_a_child(analyze):
    pe = minimal_pe(overlay=zip_bytes({"dropped/eicar.com": EICAR}))
    report = analyze(pe, "dropper.exe")
    assert report[1]["info"]["file"]["file_path"] == f"overlay@{len(minimal_pe()):#x}.zip"
    assert_found_inside(report, "dropped/eicar.com")


def test_small_overlay_without_a_signature_is_left_in_the_pe(analyze):
    report = analyze(minimal_pe(overlay=b"some trailing configuration bytes" * 10), "app.exe")
    assert len(report) == 1
    assert "archive" not in report[0]["metadata"]


def test_resource_holding_a_zip_is_a_child_named_by_type_name_and_language(analyze):
    report = analyze(pe_with_zip_resource(), "dropper.exe")
    assert [entry["info"]["file"]["file_path"] for entry in report[1:]] == [
        "resources/RCDATA/101/1033.zip",
        "payload/eicar.com",
    ]
    assert_found_inside(report, "payload/eicar.com")
    assert report[0]["metadata"]["archive"]["format"] == "pe-payloads"


def test_resource_pointing_past_the_end_of_a_truncated_pe_is_skipped_and_the_report_intact(analyze):
    data = pe_with_zip_resource()
    truncated = data[: data.index(b"PK\x03\x04") + 10]
    report = analyze(truncated, "truncated.exe")
    assert len(report) == 1
    assert report[0]["info"]["file"]["file_type"] == "PE"


def test_overlay_payloads_count_against_the_children_limit(analyze):
    resources = {(10, 100 + n): zip_bytes({f"f{n}.txt": b"x"}) for n in range(5)}
    report = analyze(minimal_pe(resources=resources), "many.exe", unpack_max_children=3)
    assert len(report) == 1 + 3
    assert "children" in [limit["limit"] for limit in report[0]["metadata"]["archive"]["limits_hit"]]


# --- PyInstaller -------------------------------------------------------------------------


def test_pyinstaller_pe_members_are_extracted_by_toc_name_and_eicar_in_data_is_found(analyze):
    report = analyze(pyinstaller_pe(), "bundle.exe")
    entry = report[0]
    assert "pyinstaller" in entry["tags"]
    assert entry["metadata"]["application"]["pyinstaller"] == {
        "python_version": 311,
        "python_library": "libpython3.11.so.1.0",
        "toc_entries": 5,
    }
    paths = [child["info"]["file"]["file_path"] for child in report[1:]]
    # The run-time option has no content; the overlay is left to this extractor, not emitted again.
    assert paths == ["struct", "hello", "PYZ.pyz", "data/eicar.com"]
    assert by_path(report, "hello")["info"]["file"]["size"] == len(pyinstaller_entries()[2][2])
    assert_found_inside(report, "data/eicar.com")


def test_bare_carchive_with_stored_members_is_extracted(analyze):
    report = analyze(carchive(pyinstaller_entries(), compress=False), "archive.pkg")
    assert "pyinstaller" in report[0]["tags"]
    assert by_path(report, "data/eicar.com")["classification"]["classification"] == MALICIOUS


def test_truncated_pyinstaller_toc_ends_as_an_error_item_with_the_report_intact(analyze):
    archive = bytearray(carchive(pyinstaller_entries()))
    toc_start = int.from_bytes(archive[-88 + 12 : -88 + 16], "big")
    archive[toc_start : toc_start + 4] = (5).to_bytes(4, "big")  # an entry shorter than its header
    report = analyze(minimal_pe(overlay=bytes(archive)), "broken.exe")
    assert errors_of(report[0], "pyinstaller") == [
        f"malformed CArchive TOC entry at offset {len(minimal_pe()) + toc_start}"
    ]
    assert report[0]["info"]["file"]["file_type"] == "PE"


def test_cookie_pointing_outside_the_file_is_an_error_not_a_failure(analyze):
    archive = bytearray(carchive(pyinstaller_entries()))
    archive[-88 + 8 : -88 + 12] = (10**9).to_bytes(4, "big")
    report = analyze(bytes(archive), "broken.pkg")
    assert errors_of(report[0], "pyinstaller") == ["ValueError: CArchive cookie points outside the file"]


def test_pyinstaller_member_bomb_stops_at_the_ratio_limit_in_bounded_memory(analyze):
    bomb = b"\0" * (64 * 1024 * 1024)
    archive = carchive([("zeros.bin", b"x", bomb), ("data/eicar.com", b"x", EICAR)])
    del bomb
    report, peak = peak_memory(lambda: analyze(archive, "bomb.pkg", unpack_max_ratio=10))
    assert peak < 32 * 1024**2
    assert "ratio" in [limit["limit"] for limit in report[0]["metadata"]["archive"]["limits_hit"]]
    assert_found_inside(report, "data/eicar.com")


# --- Installers and AutoIt (binary-refinery in a child process) --------------------------


def test_nsis_installer_made_by_makensis_yields_its_files_and_script_and_eicar_is_found(analyze):
    report = analyze(nsis_installer(), "setup.exe")
    entry = report[0]
    assert (entry["info"]["file"]["file_type"], entry["info"]["file"]["file_subtype"]) == ("PE", "Exe")
    assert "installer:nsis" in entry["tags"]
    assert entry["metadata"]["archive"]["format"] == "installer"
    paths = [child["info"]["file"]["file_path"] for child in report[1:]]
    assert paths == ["$INSTDIR\\eicar.com", "setup.bin", "setup.nsis"]
    assert by_path(report, "$INSTDIR\\eicar.com")["info"]["file"]["file_name"] == "eicar.com"
    assert by_path(report, "setup.nsis")["info"]["file"]["size"] > 1000  # the decompiled script
    assert_found_inside(report, "$INSTDIR\\eicar.com")


def test_truncated_nsis_installer_ends_as_an_error_item_with_the_report_intact(analyze):
    data = nsis_installer()
    report = analyze(data[: len(data) - 300], "setup.exe")  # the NSIS data ends the file
    assert "installer:nsis" in report[0]["tags"]
    [error] = errors_of(report[0], "installer")
    assert error.startswith("nsis: ")
    assert report[0]["info"]["file"]["file_type"] == "PE"


def test_standalone_a3x_is_identified_and_its_script_and_file_install_members_extracted(analyze):
    report = analyze(autoit_a3x(), "script.a3x")
    entry = report[0]
    assert (entry["info"]["file"]["file_type"], entry["info"]["file"]["file_subtype"]) == ("Binary", "AutoIt")
    assert "autoit" in entry["tags"]
    script = by_path(report, "unicode-script.au3")
    assert script["info"]["file"]["file_type"] == "Text"
    # A FileInstall'd file is named by the path it was compiled from.
    assert_found_inside(report, "C:\\build\\eicar.com")
    assert by_path(report, "C:\\build\\eicar.com")["info"]["file"]["file_name"] == "eicar.com"


def test_autoit_compiled_pe_with_the_script_in_a_resource_is_unpacked(analyze):
    report = analyze(autoit_pe(), "compiled.exe")
    assert "autoit" in report[0]["tags"]
    assert_found_inside(report, "C:\\build\\eicar.com")


def test_truncated_a3x_ends_as_an_error_item_with_the_report_intact(analyze):
    report = analyze(autoit_a3x(truncated=True), "broken.a3x")
    assert report[0]["info"]["file"]["file_subtype"] == "AutoIt"
    assert errors_of(report[0], "installer")
    assert len(report) == 1


def test_installshield_stream_is_unpacked_and_eicar_is_found(analyze):
    report = analyze(installshield_setup(), "setup.exe")
    assert "installer:installshield" in report[0]["tags"]
    assert [child["info"]["file"]["file_path"] for child in report[1:]] == ["eicar.com"]
    assert_found_inside(report, "eicar.com")


def test_installshield_member_over_the_ratio_limit_is_dropped_and_the_next_member_kept(analyze):
    setup = installshield_setup({"zeros.bin": b"\0" * (8 * 1024 * 1024), "eicar.com": EICAR})
    report = analyze(setup, "setup.exe", unpack_max_ratio=2)
    archive = report[0]["metadata"]["archive"]
    assert [limit["limit"] for limit in archive["limits_hit"]] == ["ratio"]
    assert [child["info"]["file"]["file_path"] for child in report[1:]] == ["eicar.com"]
    assert_found_inside(report, "eicar.com")


def test_installer_members_count_against_the_children_limit_and_the_unpacker_is_stopped(analyze):
    setup = installshield_setup({f"file{n}.txt": b"x" * n for n in range(1, 8)})
    report = analyze(setup, "setup.exe", unpack_max_children=3)
    assert len(report) == 1 + 3
    assert "children" in [limit["limit"] for limit in report[0]["metadata"]["archive"]["limits_hit"]]


def test_inno_setup_markers_are_recognised_and_unparsable_setup_data_is_an_error_item(analyze):
    report = analyze(inno_marked_pe(), "setup.exe")
    assert "installer:inno" in report[0]["tags"]
    [error] = errors_of(report[0], "installer")
    assert error.startswith("inno: ")
    assert len(report) == 1


def test_installer_overlay_is_not_emitted_again_by_the_pe_payload_extractor(analyze):
    report = analyze(nsis_installer(), "setup.exe")
    assert not [e for e in report[1:] if e["info"]["file"]["file_path"].startswith("overlay@")]


@pytest.mark.parametrize(("file_type", "file_subtype", "builder"), IDENTIFICATION_SAMPLES)
def test_identification_rows_of_the_executables_family_match_their_samples(
    analyze, file_type, file_subtype, builder
):
    info = analyze(builder(), "sample")[0]["info"]["file"]
    assert (info["file_type"], info["file_subtype"]) == (file_type, file_subtype)


def test_an_unpacker_over_its_memory_limit_fails_alone_and_the_report_is_intact(analyze, monkeypatch):
    from worker.analysis.extractors import installers

    # Too little address space for the child to even load refinery.
    monkeypatch.setattr(installers, "MEMORY_BASE_BYTES", 32 * 1024 * 1024)
    monkeypatch.setattr(installers, "MEMORY_PER_INPUT_BYTE", 0)
    report = analyze(installshield_setup(), "setup.exe")
    [error] = errors_of(report[0], "installer")
    assert error.startswith("installshield: ")
    assert "installer:installshield" in report[0]["tags"]
    assert len(report) == 1


def test_broken_pe_headers_are_reported_once_by_the_pe_analyzer_not_again_by_the_payload_extractor(analyze):
    report = analyze(b"MZ" + b"\xff" * 5000, "broken.exe")
    assert errors_of(report[0], "pe") and not errors_of(report[0], "pe-payloads")
