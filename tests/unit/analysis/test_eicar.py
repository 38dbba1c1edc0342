"""EICAR through the whole engine: alone, zipped, AES-encrypted, nested, in a tar.gz."""

from __future__ import annotations

import hashlib

from samples.basic import EICAR, aes_zip_bytes, compressed, tar_gz_bytes, zip_bytes
from tests.unit.analysis.conftest import by_path, hashes

MALICIOUS = 3


def test_eicar_file_is_malicious_by_its_yara_rule_with_threat_name(analyze):
    report = analyze(EICAR, "eicar.com")
    assert len(report) == 1
    verdict = report[0]["classification"]
    assert verdict["classification"] == MALICIOUS
    assert verdict["result"] == "Text.Test.EICAR"
    assert 1 <= verdict["factor"] <= 5 and verdict["rca_factor"] == 2 * verdict["factor"]
    assert "EICAR_Test_File" in verdict["reason"]
    assert verdict["propagated"] is False
    yara = next(result for result in verdict["scan_results"] if result["name"] == "YARA")
    assert yara["classification"] == MALICIOUS
    assert {"name", "type", "classification", "factor", "result", "version"} <= set(yara)
    assert any(item["id"].endswith("EICAR_Test_File") for item in report[0]["indicators"])


def test_top_file_reuses_upload_digests_and_adds_a_fuzzy_hash(analyze):
    report = analyze(EICAR + b" padding to give tlsh enough bytes to work with " * 3, "eicar.txt")
    values = hashes(report[0])
    assert (
        values["sha256"]
        == hashlib.sha256(EICAR + b" padding to give tlsh enough bytes to work with " * 3).hexdigest()
    )
    assert values["tlsh"].startswith("T1")
    assert set(values) >= {"md5", "sha1", "sha256", "sha512", "tlsh"}


def test_eicar_in_zip_makes_the_zip_malicious_naming_the_child(analyze):
    report = analyze(zip_bytes({"docs/readme.txt": b"hello", "tools/eicar.com": EICAR}), "bundle.zip")
    assert [entry["index"] for entry in report] == [0, 1, 2]
    child = by_path(report, "tools/eicar.com")
    assert child["parent_relationship"] == {"parent_index": 0, "relationship": "container"}
    assert child["info"]["file"]["file_name"] == "eicar.com"
    assert hashes(child)["md5"] == hashlib.md5(EICAR).hexdigest()
    top = report[0]["classification"]
    assert top["classification"] == MALICIOUS
    assert top["propagated"] is True
    assert top["propagation_source"]["index"] == child["index"]
    assert top["propagation_source"]["file_path"] == "tools/eicar.com"
    assert report[0]["metadata"]["archive"]["extracted"] == 2
    stats = {(s["type"], s["subtype"]): s["count"] for s in report[0]["info"]["statistics"]["file_stats"]}
    assert stats[("Archive", "ZIP")] == 1


def test_eicar_in_aes_zip_is_found_with_a_password_from_password_list(analyze):
    archive = aes_zip_bytes({"eicar.com": EICAR}, b"s3cret-from-user")
    report = analyze(archive, "locked.zip", user_data={"password_list": ["wrong", "s3cret-from-user"]})
    assert report[0]["metadata"]["archive"]["password_source"] == "user_data.password_list"
    assert by_path(report, "eicar.com")["classification"]["classification"] == MALICIOUS
    assert report[0]["classification"]["classification"] == MALICIOUS


def test_aes_zip_opens_with_the_default_password_list(analyze):
    report = analyze(aes_zip_bytes({"eicar.com": EICAR}, b"infected"), "sample.zip")
    assert report[0]["metadata"]["archive"]["password_source"] == "default_password_list"
    assert report[0]["classification"]["classification"] == MALICIOUS


def test_aes_zip_with_unknown_password_reports_the_member_skipped_not_a_failure(analyze):
    report = analyze(aes_zip_bytes({"eicar.com": EICAR}, b"nobody-knows-this"), "sample.zip")
    archive = report[0]["metadata"]["archive"]
    assert archive["extracted"] == 0
    assert archive["skipped"] == [{"file_path": "eicar.com", "reason": "no password matched"}]
    assert report[0]["classification"]["classification"] == 0


def test_eicar_three_archives_deep_propagates_to_the_top_through_each_level(analyze):
    level1 = zip_bytes({"eicar.com": EICAR})
    level2 = tar_gz_bytes({"inner.zip": level1})
    level3 = zip_bytes({"middle.tar.gz": level2})
    report = analyze(level3, "outer.zip")
    paths = [entry["info"]["file"]["file_path"] for entry in report]
    # A compressed tarball is one level: its members are its children.
    assert paths == ["outer.zip", "middle.tar.gz", "inner.zip", "eicar.com"]
    for entry in report[1:]:
        assert entry["parent_relationship"]["parent_index"] == entry["index"] - 1
    for entry in report[:-1]:
        assert entry["classification"]["classification"] == MALICIOUS
        assert entry["classification"]["propagated"] is True
        assert entry["classification"]["propagation_source"]["index"] == entry["index"] + 1
    assert report[-1]["classification"]["propagated"] is False


def test_eicar_in_tar_gz_is_one_level_the_tarball_members_are_its_children(analyze):
    report = analyze(tar_gz_bytes({"a/b/eicar.txt": EICAR, "a/notes.txt": b"nothing"}), "files.tar.gz")
    assert (report[0]["info"]["file"]["file_type"], report[0]["info"]["file"]["file_subtype"]) == (
        "Archive",
        "GZIP",
    )
    assert "compressed-tar" in report[0]["tags"]
    assert report[0]["metadata"]["archive"]["format"] == "tar"
    assert {entry["parent_relationship"]["parent_index"] for entry in report[1:]} == {0}
    assert by_path(report, "a/b/eicar.txt")["classification"]["classification"] == MALICIOUS
    assert report[0]["classification"]["result"] == "Text.Test.EICAR"


def test_eicar_in_bz2_and_xz_streams_is_found(analyze):
    for kind, name in (("bz2", "eicar.com.bz2"), ("xz", "eicar.com.xz")):
        report = analyze(compressed(kind, EICAR), name)
        assert report[1]["info"]["file"]["file_path"] == "eicar.com"
        assert report[0]["classification"]["classification"] == MALICIOUS


def test_eicar_in_7z_including_password_protected_ones_with_encrypted_names_is_found(analyze, tmp_path):
    import py7zr

    for password, encrypted_names in ((None, False), ("infected", False), ("infected", True)):
        target = tmp_path / f"sample-{password}-{encrypted_names}.7z"
        with py7zr.SevenZipFile(target, "w", password=password, header_encryption=encrypted_names) as archive:
            archive.writestr(EICAR, "dir/eicar.com")
        report = analyze(target.read_bytes(), "sample.7z")
        assert by_path(report, "dir/eicar.com")["classification"]["classification"] == MALICIOUS
        assert report[0]["classification"]["classification"] == MALICIOUS


def test_clean_text_is_unknown_with_a_story(analyze):
    report = analyze(b"just some harmless words\n" * 10, "notes.txt")
    assert report[0]["classification"]["classification"] == 0
    assert report[0]["classification"]["result"] == ""
    assert report[0]["story"][0]["caption"] == "Summary"
    assert "notes.txt" in report[0]["story"][0]["content"]


def test_every_zip_based_format_is_unpacked_whatever_it_is_identified_as(analyze):
    import zipfile

    epub = zip_bytes({"mimetype": b"application/epub+zip", "OEBPS/payload.exe": EICAR}, zipfile.ZIP_STORED)
    wheel = zip_bytes({"pkg/__init__.py": b"", "pkg/data/eicar.com": EICAR})
    for data, name in ((epub, "book.epub"), (wheel, "pkg-1.0-py3-none-any.whl")):
        report = analyze(data, name)
        assert report[0]["metadata"]["archive"]["format"] == "zip", name
        assert any(entry["info"]["file"]["file_name"] in ("payload.exe", "eicar.com") for entry in report[1:])
        assert report[0]["classification"]["classification"] == MALICIOUS
