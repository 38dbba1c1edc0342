"""Compression formats and archives: EICAR found inside, limits held, damage reported in an intact report."""

from __future__ import annotations

import bz2
import hashlib
import io
import lzma
import tarfile
import zipfile

import pytest

from samples.basic import EICAR, aes_zip_bytes, tar_bytes
from samples.compression import (
    COMPRESSORS,
    IDENTIFICATION_SAMPLES,
    SUFFIXES,
    TEXT,
    arj_stored,
    compress_z_bytes,
    compressed_tar,
    deflate64_zip,
    gnu_sparse_tar,
    lz4_bomb,
    lzh_stored,
    shipped,
    tar_format,
    tar_with_corrupt_middle_header,
    v7_tar,
    zip_with_method,
    zstd_bomb,
)
from tests.support.memory import peak_memory
from tests.unit.analysis.conftest import by_path, hashes
from worker.analysis import identify
from worker.analysis.decoders import lzw

MALICIOUS = 3
KINDS = sorted(COMPRESSORS)


# LZ4 has no entropy coding: a lone EICAR would stay readable in the compressed file. Its
# two halves first make the whole string a back-reference, so only the child shows it.
HIDDEN_EICAR = EICAR[:34] + b"\n" + EICAR[34:] + b"\n" + EICAR


def assert_eicar_propagates(report, child_path: str, payload: bytes = EICAR, stored: bool = False) -> None:
    """The child holds the payload and is malicious, and so is the container.

    A container that stores EICAR as it is (a plain tar, a stored member) matches the YARA
    rule itself, so its verdict is its own; otherwise it comes from the child.
    """
    child = by_path(report, child_path)
    assert hashes(child)["md5"] == hashlib.md5(payload).hexdigest()
    assert child["classification"]["classification"] == MALICIOUS
    top = report[0]["classification"]
    assert top["classification"] == MALICIOUS
    assert top["propagated"] is not stored
    if not stored:
        assert top["propagation_source"]["file_path"] == child_path


def error_texts(entry) -> list[str]:
    return [item["error"] for item in entry.get("errors", [])]


def limits_hit(entry) -> list[str]:
    return [limit["limit"] for limit in entry["metadata"]["archive"]["limits_hit"]]


# --- Identification -------------------------------------------------------------------------


@pytest.mark.parametrize(("file_type", "subtype", "build"), IDENTIFICATION_SAMPLES)
def test_each_compression_row_identifies_its_sample(file_type, subtype, build):
    identity = identify.identify(build()[: identify.MAGIC_BYTES])
    assert (identity["file_type"], identity["file_subtype"]) == (file_type, subtype)


@pytest.mark.parametrize("name", ["eicar-m1.arj", "eicar-lh5.lzh", "notes-eicar.txt.Z"])
def test_archives_made_by_the_real_tools_are_identified(name):
    identity = identify.identify(shipped(name)[: identify.MAGIC_BYTES])
    expected = {".arj": "ARJ", ".lzh": "LZH", ".Z": "COMPRESS"}[name[name.rindex(".") :]]
    assert (identity["file_type"], identity["file_subtype"]) == ("Archive", expected)


# --- Single streams ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_eicar_in_a_single_stream_is_found_and_named_after_the_file(analyze, kind):
    report = analyze(COMPRESSORS[kind](HIDDEN_EICAR), f"eicar.com{SUFFIXES[kind]}")
    assert report[0]["info"]["file"]["file_subtype"] == kind
    assert_eicar_propagates(report, "eicar.com", HIDDEN_EICAR)


@pytest.mark.parametrize("kind", sorted(set(KINDS) - {"COMPRESS"}))  # .Z has no end marker
def test_truncated_single_stream_keeps_the_report_and_says_where_it_broke(analyze, kind):
    data = COMPRESSORS[kind](TEXT * 50 + EICAR)
    report = analyze(data[: len(data) // 2], f"cut{SUFFIXES[kind]}")
    assert report[0]["info"]["file"]["file_subtype"] == kind
    assert report[0]["classification"]["classification"] != MALICIOUS
    assert any("damaged" in text for text in error_texts(report[0])), report[0].get("errors")


def test_real_compress_output_decodes_to_the_original(analyze):
    report = analyze(shipped("notes-eicar.txt.Z"), "notes-eicar.txt.Z")
    child = by_path(report, "notes-eicar.txt")
    assert child["info"]["file"]["size"] == 1800 + len(EICAR)
    assert report[0]["classification"]["classification"] == MALICIOUS


@pytest.mark.parametrize("max_bits", [12, 16])
def test_lzw_decoder_round_trips_past_every_code_width_change(max_bits):
    data = bytes(range(256)) * 64 + TEXT * 300 + bytes(i * 7 % 251 for i in range(200_000))
    decoded = b"".join(lzw.decompress(io.BytesIO(compress_z_bytes(data, max_bits)).read))
    assert decoded == data


@pytest.mark.parametrize(("kind", "build"), [("ZSTD", zstd_bomb), ("LZ4", lz4_bomb)])
def test_stream_bomb_stops_at_the_ratio_limit_in_bounded_memory(analyze, kind, build):
    bomb = build(1024)  # 1 GiB of zeros in repeated frames
    report, peak = peak_memory(lambda: analyze(bomb, f"zeros{SUFFIXES[kind]}", unpack_max_ratio=10))
    assert peak < 64 * 1024**2, f"peak Python memory {peak} bytes"
    assert limits_hit(report[0]) == ["ratio"]
    assert report[0]["metadata"]["archive"]["extracted"] == 0


# --- Compressed tarballs ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_compressed_tarball_is_unpacked_in_one_level(analyze, kind):
    data = compressed_tar(kind, {"docs/readme.txt": TEXT, "bin/eicar.com": HIDDEN_EICAR})
    report = analyze(data, f"bundle.tar{SUFFIXES[kind]}")
    assert "compressed-tar" in report[0]["tags"]
    assert report[0]["metadata"]["archive"]["format"] == "tar"
    assert sorted(e["info"]["file"]["file_path"] for e in report[1:]) == ["bin/eicar.com", "docs/readme.txt"]
    assert_eicar_propagates(report, "bin/eicar.com", HIDDEN_EICAR)


def test_holds_tar_recognises_a_v7_tarball_inside_a_stream(tmp_path):
    path = tmp_path / "old.tar.zst"
    path.write_bytes(COMPRESSORS["ZSTD"](v7_tar({"a.txt": TEXT})))
    assert identify.holds_tar(path, "ZSTD")
    path.write_bytes(COMPRESSORS["ZSTD"](TEXT * 20))
    assert not identify.holds_tar(path, "ZSTD")


# --- TAR flavours -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tar_kind", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT], ids=["ustar", "gnu", "pax"]
)
def test_eicar_in_each_tar_flavour_is_found(analyze, tar_kind):
    report = analyze(tar_format({"readme.txt": TEXT, "tools/eicar.com": EICAR}, tar_kind), "x.tar")
    assert report[0]["info"]["file"]["file_subtype"] == "TAR"
    assert_eicar_propagates(report, "tools/eicar.com", stored=True)


@pytest.mark.parametrize("tar_kind", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT], ids=["gnu", "pax"])
def test_long_member_names_of_gnu_and_pax_tarballs_are_reported_whole(analyze, tar_kind):
    name = "a-very-long-directory-name-" * 8 + "/eicar.com"  # over ustar's 100-byte name field
    report = analyze(tar_format({name: EICAR}, tar_kind), "long.tar")
    assert_eicar_propagates(report, name, stored=True)


def test_pax_header_values_such_as_unicode_names_are_honoured(analyze):
    name = "données/пример/eicar.com"
    report = analyze(tar_format({name: EICAR}, tarfile.PAX_FORMAT), "unicode.tar")
    assert_eicar_propagates(report, name, stored=True)


def test_v7_tarball_without_magic_is_identified_and_unpacked(analyze):
    report = analyze(v7_tar({"readme.txt": TEXT, "eicar.com": EICAR}), "old.tar")
    assert report[0]["info"]["file"]["file_subtype"] == "TAR"
    assert_eicar_propagates(report, "eicar.com", stored=True)


def test_gnu_sparse_member_expands_to_its_real_size(analyze):
    data = gnu_sparse_tar("sparse.bin", 4096, EICAR, 8192)
    report = analyze(data, "sparse.tar")
    child = by_path(report, "sparse.bin")
    assert child["info"]["file"]["size"] == 8192
    assert report[0]["classification"]["classification"] == MALICIOUS


def test_corrupt_header_in_the_middle_keeps_members_before_it_and_says_so(analyze):
    data = tar_with_corrupt_middle_header({"first.txt": TEXT, "eicar.com": EICAR}, {"after.txt": TEXT})
    report = analyze(data, "damaged.tar")
    assert sorted(e["info"]["file"]["file_path"] for e in report[1:]) == ["eicar.com", "first.txt"]
    assert report[0]["classification"]["classification"] == MALICIOUS
    assert any("damaged" in text for text in error_texts(report[0])), report[0].get("errors")


def test_truncated_tarball_keeps_earlier_members_and_reports_an_error(analyze):
    data = tar_bytes({"eicar.com": EICAR, "big.bin": TEXT * 20})
    report = analyze(data[: 512 * 4], "cut.tar")
    assert by_path(report, "eicar.com")["classification"]["classification"] == MALICIOUS
    assert error_texts(report[0])


def test_tarball_with_many_entries_is_read_header_by_header(analyze):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for number in range(3000):
            info = tarfile.TarInfo(f"dir-{number}")
            info.type = tarfile.DIRTYPE
            archive.addfile(info)
        info = tarfile.TarInfo("eicar.com")
        info.size = len(EICAR)
        archive.addfile(info, io.BytesIO(EICAR))
    report = analyze(buffer.getvalue(), "many.tar")
    assert_eicar_propagates(report, "eicar.com", stored=True)


# --- ZIP methods ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "build"),
    [
        (9, deflate64_zip),
        (zipfile.ZIP_BZIP2, lambda m: zip_with_method(m, zipfile.ZIP_BZIP2)),
        (zipfile.ZIP_LZMA, lambda m: zip_with_method(m, zipfile.ZIP_LZMA)),
    ],
    ids=["deflate64", "bzip2", "lzma"],
)
def test_eicar_in_zip_members_of_each_method_is_found(analyze, method, build):
    data = build({"readme.txt": TEXT, "tools/eicar.com": EICAR})
    with zipfile.ZipFile(io.BytesIO(data)) as check:
        assert {info.compress_type for info in check.infolist()} == {method}
    report = analyze(data, "methods.zip")
    assert by_path(report, "readme.txt")["info"]["file"]["size"] == len(TEXT)
    assert_eicar_propagates(report, "tools/eicar.com")


@pytest.mark.parametrize(
    ("compression", "password", "user_data", "source"),
    [
        ("ZIP_BZIP2", b"infected", None, "default_password_list"),
        ("ZIP_LZMA", b"s3cret", {"password_list": ["wrong", "s3cret"]}, "user_data.password_list"),
    ],
)
def test_aes_encrypted_member_is_decrypted_with_a_listed_password_then_decoded(
    analyze, compression, password, user_data, source
):
    import pyzipper

    buffer = io.BytesIO()
    method = getattr(pyzipper, compression)
    with pyzipper.AESZipFile(buffer, "w", compression=method, encryption=pyzipper.WZ_AES) as z:
        z.setpassword(password)
        z.writestr("eicar.com", EICAR)
    report = analyze(buffer.getvalue(), f"aes-{compression}.zip", user_data=user_data)
    assert report[0]["metadata"]["archive"]["password_source"] == source
    assert_eicar_propagates(report, "eicar.com")


def test_aes_zips_still_open_and_unknown_passwords_still_skip(analyze):
    opened = analyze(aes_zip_bytes({"eicar.com": EICAR}, b"infected"), "a.zip")
    assert opened[0]["classification"]["classification"] == MALICIOUS
    locked = analyze(aes_zip_bytes({"eicar.com": EICAR}, b"nobody-knows"), "b.zip")
    assert locked[0]["metadata"]["archive"]["skipped"] == [
        {"file_path": "eicar.com", "reason": "no password matched"}
    ]


def test_bzip2_zip_member_is_decoded_in_bounded_blocks_and_stops_at_the_ratio(analyze):
    compressor = bz2.BZ2Compressor(9)
    stream = b"".join(compressor.compress(bytes(1024 * 1024)) for _ in range(64)) + compressor.flush()
    assert len(stream) < 1024  # 64 MiB in a few dozen bytes: decoded unbounded, one call
    report, peak = peak_memory(lambda: analyze(rebuild_with(stream), "bomb.zip"))
    assert peak < 32 * 1024**2, f"peak Python memory {peak} bytes"
    assert "ratio" in limits_hit(report[0])


def rebuild_with(stream: bytes) -> bytes:
    from samples.basic import write_raw_member

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        info = zipfile.ZipInfo("zeros.bin")
        info.compress_type = zipfile.ZIP_BZIP2
        write_raw_member(archive, info, stream, 0, 64 * 1024 * 1024)
    return buffer.getvalue()


def test_damaged_deflate64_member_is_skipped_with_the_reason(analyze):
    data = bytearray(deflate64_zip({"eicar.com": EICAR * 20}))
    start = data.index(b"eicar.com") + len("eicar.com")
    data[start + 5 : start + 40] = b"\xff" * 35
    report = analyze(bytes(data), "bad64.zip")
    assert len(report) == 1
    skipped = report[0]["metadata"]["archive"]["skipped"]
    assert skipped and skipped[0]["file_path"] == "eicar.com"


def test_reduced_member_is_reported_as_unsupported(analyze):
    data = bytearray(zipfile_stored({"old.txt": TEXT}))
    data[8:10] = (2).to_bytes(2, "little")  # method 2: reduced with factor 1 (PKZIP 1.x)
    central = data.rindex(b"PK\x01\x02")
    data[central + 10 : central + 12] = (2).to_bytes(2, "little")
    report = analyze(bytes(data), "old.zip")
    skipped = report[0]["metadata"]["archive"]["skipped"]
    assert skipped[0]["file_path"] == "old.txt" and "unsupported" in skipped[0]["reason"]


def zipfile_stored(members: dict[str, bytes]) -> bytes:
    return zip_with_method(members, zipfile.ZIP_STORED)


# --- ARJ --------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", [1, 2, 3, 4])
def test_eicar_in_arj_made_by_arj_is_found_and_compressed_member_decoded(analyze, method):
    report = analyze(shipped(f"eicar-m{method}.arj"), "sample.arj")
    assert report[0]["info"]["file"]["file_subtype"] == "ARJ"
    assert by_path(report, "notes.txt")["info"]["file"]["size"] == 1800
    assert not report[0].get("errors")
    assert_eicar_propagates(report, "eicar.com", stored=True)


def test_stored_arj_built_here_is_extracted(analyze):
    report = analyze(arj_stored({"docs/readme.txt": TEXT, "eicar.com": EICAR}), "stored.arj")
    assert_eicar_propagates(report, "eicar.com", stored=True)
    assert by_path(report, "docs/readme.txt")["info"]["file"]["size"] == len(TEXT)


def test_arj_with_a_damaged_header_reports_it_and_keeps_earlier_members(analyze):
    data = bytearray(arj_stored({"eicar.com": EICAR, "second.txt": TEXT}))
    second = data.index(b"second.txt")
    data[second] ^= 0xFF  # the header's CRC no longer holds
    report = analyze(bytes(data), "damaged.arj")
    assert [e["info"]["file"]["file_path"] for e in report[1:]] == ["eicar.com"]
    assert any("header" in text for text in error_texts(report[0]))


def test_truncated_compressed_arj_member_is_reported_damaged(analyze):
    data = shipped("eicar-m1.arj")
    start = data.index(b"notes.txt")
    report = analyze(data[: start + 120], "cut.arj")
    assert error_texts(report[0])
    assert report[0]["info"]["file"]["file_subtype"] == "ARJ"


def test_arj_members_stop_at_the_total_bytes_limit(analyze):
    report = analyze(shipped("eicar-m1.arj"), "bytes.arj", unpack_max_total_bytes=1000)
    assert "total_bytes" in limits_hit(report[0])
    assert report[0]["metadata"]["archive"]["extracted"] == 0


# --- LZH --------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", [5, 6, 7])
def test_eicar_in_lzh_made_by_lha_is_found_and_compressed_member_decoded(analyze, method):
    report = analyze(shipped(f"eicar-lh{method}.lzh"), "sample.lzh")
    assert report[0]["info"]["file"]["file_subtype"] == "LZH"
    assert by_path(report, "notes.txt")["info"]["file"]["size"] == 1800
    assert not report[0].get("errors")
    # lha stores the 68-byte EICAR (-lh0-) with -lh6- and -lh7-, and compresses it with -lh5-.
    assert_eicar_propagates(report, "eicar.com", stored=method != 5)


@pytest.mark.parametrize("level", [0, 1, 2])
def test_stored_lzh_of_each_header_level_is_extracted(analyze, level):
    report = analyze(lzh_stored({"readme.txt": TEXT, "eicar.com": EICAR}, level), "stored.lzh")
    assert_eicar_propagates(report, "eicar.com", stored=True)
    assert not report[0].get("errors")


def test_lzh_with_a_damaged_member_reports_the_check_value_mismatch(analyze):
    data = bytearray(lzh_stored({"eicar.com": EICAR, "readme.txt": TEXT}))
    last = data.rindex(b"quick")
    data[last] ^= 0x20
    report = analyze(bytes(data), "damaged.lzh")
    assert any("check value" in text for text in error_texts(report[0]))
    assert report[0]["classification"]["classification"] == MALICIOUS


def test_truncated_lzh_header_is_an_error_with_earlier_members_kept(analyze):
    data = lzh_stored({"eicar.com": EICAR, "readme.txt": TEXT})
    second = data.index(b"-lh0-", 10)
    report = analyze(data[: second + 8], "cut.lzh")
    assert [e["info"]["file"]["file_path"] for e in report[1:]] == ["eicar.com"]
    assert any("unreadable" in text for text in error_texts(report[0]))


def test_lzh_and_arj_limits_count_children(analyze):
    report = analyze(lzh_stored({f"f{n}.txt": TEXT for n in range(5)}), "many.lzh", unpack_max_children=2)
    assert "children" in limits_hit(report[0])
    assert len(report) == 3


def test_xz_stream_still_decompresses(analyze):
    data = lzma.compress(TEXT + EICAR)
    report = analyze(data, "notes.txt.xz")
    assert_eicar_propagates(report, "notes.txt", TEXT + EICAR)


def test_compress_stream_with_an_impossible_code_is_reported_damaged(analyze):
    data = bytearray(compress_z_bytes(TEXT * 10))
    data[3:6] = b"\xff\xff\xff"  # the first codes point past the table
    report = analyze(bytes(data), "bad.Z")
    assert any("damaged" in text for text in error_texts(report[0]))
