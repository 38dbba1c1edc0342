"""RAR, CAB, CHM, ISO/UDF, cpio, ar/deb, RPM, SZDD and KWAJ: EICAR found inside each through the
engine, damaged samples ending as errors, and the limits holding against hostile ones."""

from __future__ import annotations

import gzip

import pytest

from samples.archives import (
    IDENTIFICATION_SAMPLES,
    ar_bytes,
    cab_bytes,
    chm_bytes,
    cpio_bytes,
    deb_bytes,
    iso_bytes,
    kwaj_bytes,
    rar4_bytes,
    rar5_bytes,
    rpm_bytes,
    szdd_bytes,
)
from samples.basic import EICAR
from tests.support.memory import peak_memory
from tests.unit.analysis.conftest import by_path

MALICIOUS = 3
# A stored container shows EICAR's bytes itself; gzipped inside it, EICAR is found only by
# unpacking, so the verdict must reach the top by propagation.
EICAR_GZ = gzip.compress(EICAR, mtime=0)


def assert_eicar_found_at(report, file_path: str) -> None:
    child = by_path(report, file_path)
    assert child["classification"]["classification"] == MALICIOUS
    assert report[0]["classification"]["classification"] == MALICIOUS
    assert report[0]["classification"]["propagated"] is True


def identity(entry) -> tuple[str, str]:
    return entry["info"]["file"]["file_type"], entry["info"]["file"]["file_subtype"]


def errors(entry) -> list[str]:
    return [item["error"] for item in entry.get("errors", [])]


def limits_hit(entry) -> list[str]:
    return [limit["limit"] for limit in entry["metadata"]["archive"]["limits_hit"]]


@pytest.mark.parametrize(("file_type", "file_subtype", "build"), IDENTIFICATION_SAMPLES)
def test_each_archive_format_is_identified_by_its_row(analyze, file_type, file_subtype, build):
    assert identity(analyze(build(), "sample")[0]) == (file_type, file_subtype)


# --- RAR -------------------------------------------------------------------------------


@pytest.mark.parametrize("build", [rar4_bytes, rar5_bytes], ids=["rar4", "rar5"])
def test_eicar_in_a_stored_rar_is_found_under_its_name_in_the_archive(analyze, build):
    report = analyze(build({"docs/readme.txt": b"hello", "tools/eicar.com.gz": EICAR_GZ}), "bundle.rar")
    assert report[0]["metadata"]["archive"]["format"] == "rar"
    assert report[0]["metadata"]["archive"]["extracted"] == 2
    assert_eicar_found_at(report, "tools/eicar.com.gz")


def test_eicar_in_an_encrypted_rar5_opens_with_a_password_from_the_list(analyze):
    archive = rar5_bytes({"eicar.com": EICAR}, password=b"s3cret")
    report = analyze(archive, "locked.rar", user_data={"password_list": ["wrong", "s3cret"]})
    assert report[0]["metadata"]["archive"]["password_source"] == "user_data.password_list"
    assert any(item["id"] == "archive:encrypted" for item in report[0]["indicators"])
    assert_eicar_found_at(report, "eicar.com")


def test_encrypted_rar5_with_an_unknown_password_is_reported_skipped_not_failed(analyze):
    report = analyze(rar5_bytes({"eicar.com": EICAR}, password=b"nobody-knows"), "locked.rar")
    archive = report[0]["metadata"]["archive"]
    assert archive["extracted"] == 0
    assert archive["skipped"] == [{"file_path": "eicar.com", "reason": "no password matched"}]
    assert any(item["id"] == "archive:password-unknown" for item in report[0]["indicators"])
    assert "password-unknown" in report[0]["tags"]
    assert "errors" not in report[0]


def test_rar5_with_encrypted_headers_is_listed_and_unpacked_with_a_password_from_the_list(analyze):
    archive = rar5_bytes({"dir/eicar.com.gz": EICAR_GZ}, header_password=b"infected")
    report = analyze(archive, "hidden.rar")
    assert report[0]["metadata"]["archive"]["password_source"] == "default_password_list"
    assert_eicar_found_at(report, "dir/eicar.com.gz")


def test_rar5_with_encrypted_headers_and_an_unknown_password_is_reported_as_such(analyze):
    report = analyze(rar5_bytes({"eicar.com.gz": EICAR_GZ}, header_password=b"nobody-knows"), "hidden.rar")
    assert report[0]["metadata"]["archive"]["skipped"] == [
        {"file_path": "hidden.rar", "reason": "no password matched"}
    ]
    assert any(item["id"] == "archive:password-unknown" for item in report[0]["indicators"])
    assert len(report) == 1


def test_truncated_rar_ends_as_an_error_with_the_report_intact(analyze):
    whole = rar5_bytes({"eicar.com": EICAR, "second.txt": b"x" * 500})
    report = analyze(whole[: len(whole) - 300], "cut.rar")
    assert len(report) >= 1 and identity(report[0]) == ("Archive", "RAR")
    assert errors(report[0]) or report[0]["metadata"]["archive"]["skipped"]


def test_rar_of_thousands_of_members_parses_no_more_headers_than_the_children_limit_allows(analyze):
    archive = rar5_bytes({f"f{number}.txt": b"x" for number in range(20000)})
    report = analyze(archive, "many.rar", unpack_max_children=50)
    assert len(report) == 51
    assert "children" in limits_hit(report[0])


# --- CAB -------------------------------------------------------------------------------


def test_eicar_in_an_mszip_cab_is_found(analyze):
    report = analyze(cab_bytes({"setup.inf": b"[Version]\n", "bin\\eicar.com": EICAR}), "a.cab")
    assert report[0]["metadata"]["archive"]["format"] == "cab"
    assert_eicar_found_at(report, "bin\\eicar.com")


def test_eicar_in_a_stored_cab_is_found(analyze):
    report = analyze(cab_bytes({"setup.inf": b"[Version]\n", "eicar.com.gz": EICAR_GZ}, mszip=False), "a.cab")
    assert_eicar_found_at(report, "eicar.com.gz")


def test_cab_whose_file_declares_more_than_the_ratio_allows_is_not_decoded(analyze):
    cab = cab_bytes({"eicar.com": EICAR, "huge.bin": b"\0" * 100}, declared={"huge.bin": 3 * 1024**3})
    report = analyze(cab, "liar.cab")
    assert limits_hit(report[0]) in (["total_bytes"], ["ratio"])
    assert_eicar_found_at(report, "eicar.com")
    assert all(entry["info"]["file"]["size"] < 1024 for entry in report[1:])


def test_cab_whose_file_declares_more_than_its_folder_holds_is_skipped_with_an_error(analyze):
    report = analyze(cab_bytes({"short.bin": b"abc"}, declared={"short.bin": 5000}), "short.cab")
    assert report[0]["metadata"]["archive"]["skipped"][0]["file_path"] == "short.bin"
    assert any("short.bin" in error for error in errors(report[0]))


def test_damaged_cab_ends_as_an_error_with_the_report_intact(analyze):
    report = analyze(b"MSCF\0\0\0\0" + b"\xff" * 100, "broken.cab")
    assert len(report) == 1 and identity(report[0]) == ("Archive", "CAB")
    assert errors(report[0])


# --- CHM -------------------------------------------------------------------------------


def test_eicar_in_a_chm_is_found_and_its_bookkeeping_is_not_emitted(analyze):
    report = analyze(chm_bytes({"/index.htm": b"<html>hi</html>", "/files/eicar.gz": EICAR_GZ}), "help.chm")
    assert [entry["info"]["file"]["file_path"] for entry in report[1:3]] == ["/index.htm", "/files/eicar.gz"]
    assert_eicar_found_at(report, "/files/eicar.gz")


def test_truncated_chm_ends_as_an_error_with_the_report_intact(analyze):
    report = analyze(chm_bytes({"/eicar.com": EICAR})[:300], "cut.chm")
    assert len(report) == 1 and errors(report[0])


# --- ISO 9660 and UDF ------------------------------------------------------------------


@pytest.mark.parametrize("udf", [False, True], ids=["iso9660", "udf"])
def test_eicar_in_a_disk_image_is_found_under_its_long_name(analyze, udf):
    members = {"setup/readme.txt": b"hello", "setup/Eicar Test.com.gz": EICAR_GZ}
    report = analyze(iso_bytes(members, udf=udf), "disc.iso")
    assert identity(report[0]) == ("Archive", "UDF" if udf else "ISO")
    assert_eicar_found_at(report, "setup/Eicar Test.com.gz")


def test_truncated_disk_image_ends_as_an_error_with_the_report_intact(analyze):
    report = analyze(iso_bytes({"eicar.com": EICAR})[:0x8800], "cut.iso")
    assert len(report) == 1 and errors(report[0])


# --- cpio ------------------------------------------------------------------------------


@pytest.mark.parametrize("flavour", ["newc", "crc", "odc", "bin-le", "bin-be"])
def test_eicar_in_every_cpio_flavour_is_found(analyze, flavour):
    report = analyze(
        cpio_bytes({"etc/motd": b"hello!", "usr/bin/eicar.gz": EICAR_GZ}, flavour), "initrd.cpio"
    )
    assert identity(report[0]) == ("Archive", "CPIO")
    assert [entry["info"]["file"]["file_path"] for entry in report[1:3]] == ["etc/motd", "usr/bin/eicar.gz"]
    assert_eicar_found_at(report, "usr/bin/eicar.gz")


def test_truncated_cpio_keeps_the_members_before_the_damage_and_says_so(analyze):
    whole = cpio_bytes({"usr/bin/eicar.gz": EICAR_GZ, "second.bin": b"y" * 400})
    report = analyze(whole[:-200], "cut.cpio")
    assert any("truncated" in error for error in errors(report[0]))
    assert_eicar_found_at(report, "usr/bin/eicar.gz")


def test_cpio_of_100k_entries_stops_at_the_children_limit_quickly_in_bounded_memory(analyze):
    archive = cpio_bytes({f"f{number}": b"x" for number in range(100_000)})
    report, peak = peak_memory(lambda: analyze(archive, "many.cpio"))
    assert peak < 64 * 1024**2, f"peak Python memory {peak} bytes"
    assert "children" in limits_hit(report[0])
    assert len(report) == 1 + 1000


# --- ar and deb ------------------------------------------------------------------------


@pytest.mark.parametrize("style", ["gnu", "bsd"])
def test_eicar_in_an_ar_with_long_names_is_found(analyze, style):
    archive = ar_bytes({"short.o": b"\x7fELF", "a-rather-long-member-name.gz": EICAR_GZ}, style)
    report = analyze(archive, "libsample.a")
    assert identity(report[0]) == ("Archive", "AR")
    assert_eicar_found_at(report, "a-rather-long-member-name.gz")


def test_eicar_in_a_deb_is_found_through_its_data_tarball(analyze):
    report = analyze(deb_bytes({"usr/bin/eicar": EICAR}), "sample_1.0_all.deb")
    assert identity(report[0]) == ("Archive", "DEB")
    data = by_path(report, "data.tar.xz")
    eicar = by_path(report, "./usr/bin/eicar")
    assert eicar["parent_relationship"]["parent_index"] == data["index"]
    assert_eicar_found_at(report, "./usr/bin/eicar")


def test_ar_of_100k_entries_stops_at_the_children_limit(analyze):
    archive = ar_bytes({f"m{number}.o": b"x" for number in range(100_000)})
    report = analyze(archive, "huge.a")
    assert "children" in limits_hit(report[0])


def test_damaged_ar_header_ends_as_an_error_keeping_earlier_members(analyze):
    archive = ar_bytes({"eicar.com.gz": EICAR_GZ, "next.o": b"abc"})
    report = analyze(archive[:-64] + b"garbage!!!", "bad.a")
    assert errors(report[0])
    assert_eicar_found_at(report, "eicar.com.gz")


# --- RPM -------------------------------------------------------------------------------


@pytest.mark.parametrize("compression", ["gzip", "xz", "zstd"])
def test_eicar_in_an_rpm_payload_is_a_direct_child_of_the_package(analyze, compression):
    report = analyze(rpm_bytes({"usr/bin/eicar": EICAR}, compression), "sample-1.0-1.noarch.rpm")
    assert identity(report[0]) == ("Archive", "RPM")
    assert report[0]["metadata"]["rpm"]["name"] == "sample"
    assert report[0]["metadata"]["rpm"]["payload_compression"] == compression
    assert by_path(report, "./usr/bin/eicar")["parent_relationship"]["parent_index"] == 0
    assert_eicar_found_at(report, "./usr/bin/eicar")


def test_rpm_with_a_damaged_payload_ends_as_an_error_with_the_report_intact(analyze):
    package = rpm_bytes({"usr/bin/eicar": EICAR * 20}, "gzip")
    report = analyze(package[:-40], "cut.rpm")
    assert errors(report[0])
    assert report[0]["metadata"]["rpm"]["name"] == "sample"


# --- SZDD and KWAJ ---------------------------------------------------------------------


def test_eicar_in_an_szdd_file_is_found_under_its_restored_name(analyze):
    report = analyze(szdd_bytes(EICAR + b" " * 40 + EICAR[:30], missing=b"m"), "eicar.co_")
    assert report[1]["info"]["file"]["file_path"] == "eicar.com"
    assert_eicar_found_at(report, "eicar.com")


@pytest.mark.parametrize("method", [1, 2, 4])
def test_eicar_in_a_kwaj_file_is_found_for_each_supported_method(analyze, method):
    report = analyze(kwaj_bytes(EICAR + b"\n" + EICAR[:40], method), "eicar.co_")
    assert report[1]["info"]["file"]["file_path"] == "EICAR.COM"
    assert_eicar_found_at(report, "EICAR.COM")


def test_eicar_in_a_stored_kwaj_file_is_found(analyze):
    report = analyze(kwaj_bytes(EICAR_GZ, 0, suffix=b"GZ"), "eicar.gz_")
    assert_eicar_found_at(report, "EICAR.GZ")


def test_kwaj_with_the_huffman_method_is_an_error_not_a_failure(analyze):
    sample = bytearray(kwaj_bytes(EICAR, 2))
    sample[8:10] = (3).to_bytes(2, "little")
    report = analyze(bytes(sample), "x.ex_")
    assert len(report) == 1 and any("method 3" in error for error in errors(report[0]))


def test_szdd_truncated_in_a_back_reference_is_an_error(analyze):
    data = b"abcabcabcabcabcabc" * 4
    sample = szdd_bytes(data)
    report = analyze(sample[:-1], "x.tx_")
    assert errors(report[0]) or report[1]["info"]["file"]["size"] < len(data)
