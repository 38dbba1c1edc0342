"""Archives whose directories are hostile: bounded memory, bounded reports, nothing left on disk."""

from __future__ import annotations

import io
import tarfile

import pytest

from samples.basic import EICAR
from tests.support.memory import peak_memory
from worker.analysis import registry
from worker.analysis.context import MAX_SKIPPED_LISTED, AnalysisTimeout, Analyzer
from worker.analysis.engine import Submission, analyze_file


def tar_of_links(count: int) -> bytes:
    """`count` symbolic links (one 512-byte header each), then one real member."""
    buffer = io.BytesIO()
    link = tarfile.TarInfo("link")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    header = link.tobuf(format=tarfile.USTAR_FORMAT)
    buffer.write(header * count)
    member = tarfile.TarInfo("eicar.com")
    member.size = len(EICAR)
    buffer.write(member.tobuf(format=tarfile.USTAR_FORMAT))
    buffer.write(EICAR.ljust(tarfile.BLOCKSIZE, b"\0"))
    buffer.write(b"\0" * 2 * tarfile.BLOCKSIZE)  # end of archive
    return buffer.getvalue()


def test_a_tar_of_30k_links_is_walked_in_bounded_memory_with_a_bounded_skipped_list(analyze):
    links = 30_000
    data = tar_of_links(links)
    report, peak = peak_memory(lambda: analyze(data, "links.tar"))
    archive = report[0]["metadata"]["archive"]
    print(f"\n{links} links: peak Python memory {peak / 1024**2:.1f} MB")
    assert peak < 64 * 1024**2, f"peak Python memory {peak} bytes"
    assert len(archive["skipped"]) == MAX_SKIPPED_LISTED
    assert archive["skipped_unlisted"] == links - MAX_SKIPPED_LISTED
    assert archive["skipped"][0] == {"file_path": "link", "reason": "link"}
    # The member after the links is still reached and analyzed.
    assert any(entry["info"]["file"]["file_path"] == "eicar.com" for entry in report)


def test_a_timeout_while_a_library_writes_a_child_leaves_no_file_behind(engine_settings, spool_dir):
    """An extractor that pushes data (as 7-Zip's library does) is interrupted mid-child: the
    half-written child and the children already extracted are removed at once."""

    def interrupted(context):
        context.extract("first.bin", b"complete child")
        writer = context.child_writer("second.bin")
        writer.write(b"half of a child")
        raise AnalysisTimeout("the job's soft time limit was reached")

    pusher = Analyzer("pusher", "1", interrupted, accepts=("Text",), extracts=True)
    path = spool_dir / "1"
    path.write_bytes(b"plain text that the pusher unpacks\n")
    with pytest.raises(AnalysisTimeout):
        analyze_file(Submission(path, "a.txt", settings=engine_settings), (pusher, *registry.ANALYZERS))
    assert sorted(item.name for item in spool_dir.iterdir()) == ["1"]
