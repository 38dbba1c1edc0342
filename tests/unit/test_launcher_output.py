"""What `make run` prints: the processes' logs with --verbose, the banner."""

from __future__ import annotations

import io
from pathlib import Path

from deploy.launcher import LocalCluster, LogFollower, banner
from deploy.processes import WorkerNode


def test_verbose_streams_each_log_line_once_with_its_file_name_including_files_that_appear_later(tmp_path):
    out = io.StringIO()
    follower = LogFollower(tmp_path, out=out)
    (tmp_path / "hub.log").write_text("serving on http://127.0.0.1:8080\npartial")
    follower.poll()
    with (tmp_path / "hub.log").open("a") as log:
        log.write(" line, finished\n")
    (tmp_path / "worker1-api.log").write_text("ready\n")
    follower.poll()
    follower.poll()
    assert out.getvalue().splitlines() == [
        "hub | serving on http://127.0.0.1:8080",
        "hub | partial line, finished",
        "worker1-api | ready",
    ]


def cluster(tmp_path: Path, hub_port: int, tls: bool = False) -> LocalCluster:
    environment = {"SCANHUB_TLS": "on"} if tls else {}
    made = LocalCluster(tmp_path, 2, hub_port, 8081, environment=environment, log_dir=tmp_path / "logs")
    scheme = "https" if tls else "http"
    made.nodes = [WorkerNode(f"worker{n}", f"{scheme}://127.0.0.1:{8080 + n}", {}, None) for n in (1, 2)]
    return made


def test_the_banner_links_every_status_page_and_says_where_logs_and_state_are(tmp_path):
    text = banner(cluster(tmp_path, 8080), temporary=True)
    assert text.rstrip().endswith("Ctrl-C stops everything.")
    for url in ("http://127.0.0.1:8080/ ", "http://127.0.0.1:8081/", "http://127.0.0.1:8082/"):
        assert url in text
    assert "$ .venv/bin/scanhub scan samples/files/" in text  # the default Hub: no --url needed
    assert f"Logs:  {tmp_path / 'logs'}" in text and "removed when scanhub stops" in text


def test_the_banners_commands_name_a_hub_elsewhere_and_scanhubs_ca(tmp_path):
    text = banner(cluster(tmp_path, 9080, tls=True), temporary=False)
    ca = tmp_path / "tls" / "ca.pem"
    assert f"$ .venv/bin/scanhub scan --url https://127.0.0.1:9080 --ca-file {ca} samples/files/" in text
    assert f"$ curl --cacert {ca} -F file=@/bin/ls https://127.0.0.1:9080/api/tiscale/v1/upload" in text
    assert "kept: start again with the same --state-dir" in text
