"""PKZIP 1.x members (shrink, implode) in ZIP: decoded in bounded blocks, checked, limited."""

from __future__ import annotations

import pytest

from samples.basic import EICAR
from samples.legacyzip import EICAR_MEMBER, SAMPLES, TEXT_MEMBER, shrink_bomb
from tests.support.memory import peak_memory
from tests.unit.analysis.conftest import by_path

MALICIOUS = 3


def assert_eicar_found(report) -> None:
    assert report[0]["classification"]["classification"] == MALICIOUS
    assert report[0]["classification"]["propagated"] is True
    child = by_path(report, "eicar.com")
    assert child["classification"]["classification"] == MALICIOUS
    assert child["info"]["file"]["size"] == len(EICAR_MEMBER)
    assert by_path(report, "readme.txt")["info"]["file"]["size"] == len(TEXT_MEMBER)
    assert not report[0]["metadata"]["archive"]["skipped"]


@pytest.mark.parametrize(
    "sample",
    [
        "shrink.zip",
        "implode-8k-3trees.zip",
        "implode-8k-2trees.zip",
        "implode-4k-3trees.zip",
        "implode-4k-2trees.zip",
    ],
)
def test_eicar_in_a_pkzip1_member_is_found_through_propagation(analyze, sample):
    report = analyze((SAMPLES / sample).read_bytes(), sample)
    assert_eicar_found(report)


@pytest.mark.parametrize("sample", ["shrink-zipcrypto.zip", "implode-8k-3trees-zipcrypto.zip"])
def test_zipcrypto_pkzip1_member_is_decrypted_then_decoded(analyze, sample):
    report = analyze((SAMPLES / sample).read_bytes(), sample)
    assert report[0]["metadata"]["archive"]["password_source"] == "default_password_list"
    assert_eicar_found(report)


@pytest.mark.parametrize("sample", ["shrink.zip", "implode-8k-3trees.zip", "implode-4k-2trees.zip"])
def test_damaged_pkzip1_member_is_skipped_with_the_reason_and_the_report_kept(analyze, sample):
    data = bytearray((SAMPLES / sample).read_bytes())
    start = data.index(b"eicar.com") + len("eicar.com")
    data[start + 20 : start + 60] = b"\xff" * 40
    report = analyze(bytes(data), sample)
    skipped = report[0]["metadata"]["archive"]["skipped"]
    assert [item["file_path"] for item in skipped] == ["eicar.com"]
    assert skipped[0]["reason"].split(":")[0] in {"DecodeError", "BadZipFile"}
    assert by_path(report, "readme.txt")["info"]["file"]["size"] == len(TEXT_MEMBER)


def test_truncated_imploded_member_is_skipped_not_raised(analyze):
    data = bytearray((SAMPLES / "implode-8k-3trees.zip").read_bytes())
    start = data.index(b"eicar.com") + len("eicar.com")
    data[start + 60 : data.index(b"PK\x03\x04", start)] = b""
    report = analyze(bytes(data), "truncated.zip")
    assert report[0]["classification"] is not None
    assert any(item["file_path"] == "eicar.com" for item in report[0]["metadata"]["archive"]["skipped"])


def test_shrunk_run_of_zeros_stops_at_the_ratio_limit_in_bounded_memory(analyze, engine_settings):
    bomb = shrink_bomb(repeats=20000)  # 13 KiB + 32 KiB of codes, 180 MiB of zeros
    report, peak = peak_memory(lambda: analyze(bomb, "bomb.zip"))
    assert peak < 32 * 1024**2, f"peak Python memory {peak} bytes"
    limits = [limit["limit"] for limit in report[0]["metadata"]["archive"]["limits_hit"]]
    assert "ratio" in limits
    assert EICAR not in bomb
