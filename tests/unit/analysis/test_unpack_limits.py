"""Unpacking limits and path safety: bombs stop fast in bounded memory, names never reach the disk."""

from __future__ import annotations

import io
import tarfile
import time
import zipfile
from pathlib import Path

from samples.basic import EICAR, tar_bytes, zip_bomb_bytes, zip_bytes
from tests.support.memory import peak_memory
from tests.unit.analysis.conftest import by_path
from worker.analysis import registry
from worker.analysis.context import Analyzer
from worker.analysis.engine import Submission, analyze_file


def limits_hit(entry) -> list[str]:
    return [limit["limit"] for limit in entry["metadata"]["archive"]["limits_hit"]]


def test_nested_zip_bomb_of_10_gib_stops_at_limits_quickly_in_bounded_memory(analyze, engine_settings):
    inner = zip_bomb_bytes(members=10, member_bytes=1024**3)  # 10 GiB of zeros
    outer = zip_bytes({"bomb.zip": inner, "eicar.com": EICAR}, method=zipfile.ZIP_STORED)
    report, peak = peak_memory(lambda: analyze(outer, "outer.zip"))
    assert peak < 64 * 1024**2, f"peak Python memory {peak} bytes"
    bomb = by_path(report, "bomb.zip")
    assert "ratio" in limits_hit(bomb)
    assert bomb["metadata"]["archive"]["extracted"] == 0
    assert any(item["id"] == "unpack:limit:ratio" for item in bomb["indicators"])
    assert "ratio limit" in bomb["story"][0]["content"]
    # The rest of the outer archive is still analyzed.
    assert by_path(report, "eicar.com")["classification"]["classification"] == 3


def test_total_expanded_bytes_limit_stops_a_bomb_even_with_a_permissive_ratio(analyze):
    bomb = zip_bomb_bytes(members=4, member_bytes=64 * 1024**2)
    report = analyze(bomb, "bomb.zip", unpack_max_ratio=1e9, unpack_max_total_bytes=100 * 1024**2)
    assert limits_hit(report[0]) == ["total_bytes"]
    assert report[0]["metadata"]["archive"]["extracted"] == 1  # the first 64 MiB fitted


def test_per_file_time_limit_stops_unpacking_and_the_report_says_so(analyze):
    bomb = zip_bomb_bytes(members=10, member_bytes=256 * 1024**2)
    report = analyze(
        bomb,
        "slow.zip",
        unpack_max_ratio=1e9,
        unpack_max_total_bytes=10 * 1024**3,
        analysis_file_time_limit_seconds=0.5,
    )
    assert limits_hit(report[0]) == ["time"]


def test_a_container_whose_time_ran_out_before_unpacking_reports_the_time_limit(analyze):
    """On a loaded machine the file's time can end in identification or YARA, before the
    extractor starts: the archive still says it was not unpacked, and why."""
    report = analyze(
        zip_bytes({"a.txt": b"a", "b.txt": b"b"}), "late.zip", analysis_file_time_limit_seconds=1e-9
    )
    assert len(report) == 1  # no member analyzed
    archive = report[0]["metadata"]["archive"]
    assert archive["format"] == "zip" and archive["extracted"] == 0
    assert limits_hit(report[0]) == ["time"]
    assert archive["limits_hit"][0]["detail"] == "the file's time limit of 1e-09 s was reached before zip ran"
    assert any(item["id"] == "unpack:limit:time" for item in report[0]["indicators"])


def test_the_time_limit_is_reported_once_when_an_extractor_ran_out_and_another_was_to_follow(
    engine_settings, spool_dir
):
    def runs_out(context):
        time.sleep(max(0.0, context.time_left()) + 0.05)  # unpacking until past the file's deadline
        context.check_time("unpacking")

    first = Analyzer("first", "1", runs_out, accepts=("Text",), extracts=True)
    second = Analyzer("second", "1", lambda context: {}, accepts=("Text",), extracts=True)
    path = spool_dir / "1"
    path.write_bytes(b"plain text two extractors look inside\n")
    settings = engine_settings.model_copy(update={"analysis_file_time_limit_seconds": 1})
    report = analyze_file(
        Submission(path, "a.txt", settings=settings), (*registry.ANALYZERS[:1], first, second)
    )
    assert limits_hit(report[0]) == ["time"]
    assert report[0]["metadata"]["archive"]["limits_hit"][0]["detail"].startswith("unpacking exceeded")
    assert [item["id"] for item in report[0]["indicators"]].count("unpack:limit:time") == 1


def test_lying_zip_header_sizes_do_not_get_past_the_ratio_limit(analyze):
    bomb = bytearray(zip_bomb_bytes(members=1, member_bytes=256 * 1024**2))
    # Claim the member is tiny both in the local header and the central directory.
    central = bomb.rindex(b"PK\x01\x02")
    bomb[central + 24 : central + 28] = (10).to_bytes(4, "little")  # uncompressed size
    bomb[22:26] = (10).to_bytes(4, "little")
    report = analyze(bytes(bomb), "liar.zip", unpack_max_ratio=2)
    archive = report[0]["metadata"]["archive"]
    # Either zipfile stops at the claimed size (10 bytes) or our limit stops it: never 256 MiB.
    assert all(entry["info"]["file"]["size"] <= 2 * len(bomb) for entry in report[1:])
    assert archive["extracted"] + len(archive["skipped"]) + len(archive["limits_hit"]) >= 1


def test_children_limit_counts_files_across_all_levels(analyze):
    inner = zip_bytes({f"inner-{n}.txt": b"x" for n in range(5)})
    outer = zip_bytes({"inner.zip": inner, **{f"outer-{n}.txt": b"y" for n in range(5)}})
    report = analyze(outer, "many.zip", unpack_max_children=4)
    assert len(report) == 1 + 4
    assert "children" in limits_hit(report[0])


def test_depth_limit_leaves_deeper_archives_packed_and_says_so(analyze):
    nested = EICAR
    for level in range(4):
        nested = zip_bytes({f"level{level}.bin": nested})
    report = analyze(nested, "deep.zip", unpack_max_depth=2)
    deepest = report[-1]
    assert deepest["info"]["file"]["file_type"] == "Archive"
    assert limits_hit(deepest) == ["depth"]
    assert len(report) == 3


def test_tar_with_traversal_names_writes_nothing_outside_the_spool(analyze, spool_dir: Path, tmp_path: Path):
    escape_target = tmp_path / "escaped.txt"
    members = {
        "../../etc/passwd": b"root:x:0:0::/root:/bin/bash\n",
        f"../../../../../../{escape_target}": b"escaped",
        "/tmp/absolute-scanhub-test": b"absolute",
        "normal/file.txt": EICAR,
    }
    buffer = io.BytesIO(tar_bytes(members))
    with tarfile.open(fileobj=io.BytesIO(buffer.getvalue())) as check:
        assert "../../etc/passwd" in check.getnames()
    # A symlink member pointing outside: reported, never created.
    with tarfile.open(fileobj=buffer, mode="a") as archive:
        link = tarfile.TarInfo("link-to-root")
        link.type, link.linkname = tarfile.SYMTYPE, "/"
        archive.addfile(link)
    before = set(tmp_path.rglob("*"))
    report = analyze(buffer.getvalue(), "evil.tar")
    paths = [entry["info"]["file"]["file_path"] for entry in report[1:]]
    assert "../../etc/passwd" in paths and "/tmp/absolute-scanhub-test" in paths
    assert by_path(report, "../../etc/passwd")["info"]["file"]["file_name"] == "passwd"
    assert not escape_target.exists()
    assert not Path("/tmp/absolute-scanhub-test").exists()
    assert set(tmp_path.rglob("*")) - {spool_dir / "1"} == before
    skipped = report[0]["metadata"]["archive"]["skipped"]
    assert skipped == [{"file_path": "link-to-root", "reason": "link"}]
    assert report[0]["classification"]["classification"] == 3


def test_zip_with_traversal_names_writes_nothing_outside_the_spool(analyze, spool_dir: Path, tmp_path: Path):
    before = set(tmp_path.rglob("*"))
    report = analyze(
        zip_bytes({"../../../evil.sh": b"#!/bin/sh\necho hi\n", "..\\..\\win.bat": b"echo"}), "z.zip"
    )
    assert {e["info"]["file"]["file_path"] for e in report[1:]} == {"../../../evil.sh", "..\\..\\win.bat"}
    assert set(tmp_path.rglob("*")) - {spool_dir / "1"} == before


def test_corrupt_archive_is_reported_as_an_error_not_a_failed_task(analyze):
    report = analyze(b"PK\x03\x04" + b"\xff" * 200, "broken.zip")
    assert len(report) == 1
    assert report[0]["classification"]["classification"] == 0


def test_password_list_is_cut_at_password_list_max_so_a_huge_list_cannot_stall_a_worker(analyze):
    from samples.basic import aes_zip_bytes

    archive = aes_zip_bytes({"eicar.com": EICAR}, b"secret-50")
    decoys = [f"wrong-{n}" for n in range(200)]
    found = analyze(archive, "a.zip", user_data={"password_list": [*decoys[:49], "secret-50"]})
    assert found[0]["metadata"]["archive"]["password_source"] == "user_data.password_list"
    too_far = analyze(
        aes_zip_bytes({"eicar.com": EICAR}, b"secret-150"),
        "b.zip",
        user_data={"password_list": [*decoys[:149], "secret-150"]},
    )
    assert too_far[0]["metadata"]["archive"]["skipped"] == [
        {"file_path": "eicar.com", "reason": "no password matched"}
    ]
    assert "password-unknown" in too_far[0]["tags"]
    assert any(item["id"] == "archive:password-unknown" for item in too_far[0]["indicators"])


def test_the_file_time_limit_is_checked_between_password_attempts(analyze):
    from samples.basic import aes_zip_bytes

    archive = aes_zip_bytes({f"m{n}.bin": b"x" for n in range(50)}, b"nobody-knows")
    report = analyze(
        archive,
        "slow.zip",
        user_data={"password_list": [f"wrong-{n}" for n in range(100)]},
        analysis_file_time_limit_seconds=0.01,
    )
    assert limits_hit(report[0]) == ["time"]


def test_a_zip_directory_of_200k_entries_stops_at_the_children_limit_without_parsing_it_all(analyze):
    from samples.basic import many_entries_zip_bytes

    archive = many_entries_zip_bytes(200_000)
    report, peak = peak_memory(lambda: analyze(archive, "many.zip", unpack_max_children=50))
    # Parsing the whole directory up front costs ~100 MB of ZipInfo objects for this file.
    assert peak < 32 * 1024**2, f"peak Python memory {peak} bytes"
    assert len(report) == 1 + 50
    assert limits_hit(report[0]) == ["children"]
