"""The Worker API's contract (the Spectra Detect Worker API) against fakeredis, tasks captured."""

from __future__ import annotations

import hashlib
import time

import pytest
from aiohttp import FormData

from tests.unit.conftest import TOKEN_SUBMIT, TOKEN_TASKS
from worker.keys import ADMISSION
from worker.store import DONE, done_fields

API = "/api/tiscale/v1"


async def test_upload_spools_file_hashes_it_and_answers_absolute_task_url(worker_api):
    content = b"MZ" + bytes(range(256)) * 100
    # Built by hand, as curl sends it: the file name is not percent-encoded.
    body = (
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="../../evil name.exe"\r\n\r\n'
        + content
        + b"\r\n--b--\r\n"
    )
    response = await worker_api.client.post(
        f"{API}/upload", data=body, headers={"Content-Type": "multipart/form-data; boundary=b"}
    )
    assert response.status == 200
    body = await response.json()
    task_url = body["task_url"]
    assert task_url.startswith("http://127.0.0.1:")
    assert task_url.endswith(f"{API}/task/1")
    assert "?" not in task_url
    assert worker_api.queued == [1]
    # The spool file is named by task id, never by the client's file name.
    assert worker_api.spool_files() == ["1"]
    assert (worker_api.settings.spool_dir / "1").read_bytes() == content
    record = await worker_api.store.get(1)
    assert record["sha1"] == hashlib.sha1(content).hexdigest()
    assert record["sha256"] == hashlib.sha256(content).hexdigest()
    assert record["md5"] == hashlib.md5(content).hexdigest()
    assert record["sha512"] == hashlib.sha512(content).hexdigest()
    assert record["file_name"] == "../../evil name.exe"
    assert record["size"] == str(len(content))


async def test_task_url_uses_configured_public_url(make_worker_api):
    api = await make_worker_api(public_url="https://worker01.example:8443/")
    body = await (await api.upload()).json()
    assert body["task_url"] == "https://worker01.example:8443/api/tiscale/v1/task/1"


async def test_pending_task_is_200_with_processed_null_and_no_custom_data(worker_api):
    await worker_api.upload(custom_data='{"origin": "mail"}')
    response = await worker_api.client.get(f"{API}/task/1?full=true")
    assert response.status == 200
    view = await response.json()
    assert view["task_id"] == 1
    assert view["processed"] is None
    assert view["status"] == "queued"
    assert "custom_data" not in view
    assert view["tc_report"] is None
    assert isinstance(view["submitted"], int)


async def test_done_task_returns_report_and_custom_data_unchanged(worker_api):
    await worker_api.upload(custom_data='{"origin": {"uploader": "analyst"}}')
    report = [{"index": 0, "info": {"file": {"file_name": "sample.txt"}}}]
    fields = done_fields(report, {"worker_hostname": "w1"}, int(time.time()))
    await worker_api.redis.hset(worker_api.store.keys.task(1), mapping=fields)
    view = await (await worker_api.client.get(f"{API}/task/1")).json()
    assert view["status"] == DONE
    assert view["processed"] > 0
    assert view["tc_report"] == report
    assert view["custom_data"] == {"origin": {"uploader": "analyst"}}
    assert view["worker_hostname"] == "w1"


async def test_direct_sender_and_forwarded_for_come_from_the_request(worker_api):
    await worker_api.upload(headers={"X-Forwarded-For": "203.0.113.7, 10.0.0.2"})
    view = await (await worker_api.client.get(f"{API}/task/1")).json()
    assert view["direct_sender"] == "127.0.0.1"
    assert view["forwarded_for"] == ["203.0.113.7", "10.0.0.2"]


async def test_upload_without_file_part_is_400(worker_api):
    form = FormData()
    form.add_field("custom_data", "{}")
    response = await worker_api.client.post(f"{API}/upload", data=form)
    assert response.status == 400
    assert "file" in (await response.json())["message"]
    assert worker_api.queued == []


async def test_upload_that_is_not_multipart_is_400(worker_api):
    response = await worker_api.client.post(f"{API}/upload", json={"file": "x"})
    assert response.status == 400
    assert "multipart" in (await response.json())["message"]


async def test_upload_with_bad_json_user_data_is_400_and_leaves_no_file(worker_api):
    response = await worker_api.upload(user_data="{not json")
    assert response.status == 400
    assert "user_data" in (await response.json())["message"]
    assert worker_api.spool_files() == []
    assert worker_api.queued == []


async def test_custom_data_that_is_not_json_is_accepted_and_left_out_of_the_report(worker_api):
    response = await worker_api.upload(b"analyzed anyway", custom_data="{not json")
    assert response.status == 200
    assert worker_api.queued == [1]
    record = await worker_api.store.get(1)
    assert "custom_data" not in record
    await worker_api.store.redis.hset(worker_api.store.keys.task(1), mapping=done_fields([{}], {}, 1))
    view = await (await worker_api.client.get(f"{API}/task/1")).json()
    assert view["status"] == DONE and "custom_data" not in view


async def test_pending_and_failed_tasks_carry_tc_report_null(worker_api):
    await worker_api.upload(b"one")
    await worker_api.upload(b"two")
    pending = await (await worker_api.client.get(f"{API}/task/1")).json()
    assert pending["status"] == "queued" and pending["tc_report"] is None
    await worker_api.store.fail(2, "analysis failed: broken", 5)
    failed = await (await worker_api.client.get(f"{API}/task/2")).json()
    assert failed["status"] == "failed" and failed["tc_report"] is None
    assert failed["error"] == "analysis failed: broken"


async def test_a_trailing_slash_reaches_the_same_route_without_a_redirect(worker_api):
    form = FormData()
    form.add_field("file", b"slash", filename="s.bin")
    response = await worker_api.client.post(f"{API}/upload/", data=form, allow_redirects=False)
    assert response.status == 200
    assert response.history == ()
    assert worker_api.queued == [1]
    task = await worker_api.client.get(f"{API}/task/1/?full=1")
    assert task.status == 200 and (await task.json())["task_id"] == 1
    assert (await worker_api.client.get(f"{API}/no-such-route/")).status == 404


async def test_upload_over_max_size_is_413_and_leaves_no_file(make_worker_api):
    api = await make_worker_api(max_upload_bytes=1000)
    response = await api.upload(b"x" * 5000)
    assert response.status == 413
    assert "limit" in (await response.json())["message"]
    assert api.spool_files() == []
    assert api.queued == []


async def test_oversized_upload_is_refused_while_streaming_without_content_length(make_worker_api):
    api = await make_worker_api(max_upload_bytes=100_000)

    async def body():
        yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\n'
        for _ in range(50):
            yield b"z" * 10_000
        yield b"\r\n--b--\r\n"

    response = await api.client.post(
        f"{API}/upload", data=body(), headers={"Content-Type": "multipart/form-data; boundary=b"}
    )
    assert response.status == 413
    assert api.spool_files() == []


async def test_integrity_check_mismatch_is_400_with_spec_message_and_sample_discarded(worker_api):
    content = b"integrity"
    sha1 = hashlib.sha1(content).hexdigest()
    response = await worker_api.upload(content, custom_data='{"integrity_check_hash": "abc123"}')
    assert response.status == 400
    assert (await response.json())["message"] == (
        "ERROR: Upload: failed to accept upload integrity check failed, calculated hash "
        f"{sha1} differs from the one passed in custom data abc123."
    )
    assert worker_api.spool_files() == []
    assert worker_api.queued == []


async def test_integrity_check_match_is_accepted(worker_api):
    content = b"integrity"
    sha1 = hashlib.sha1(content).hexdigest().upper()
    response = await worker_api.upload(content, custom_data=f'{{"integrity_check_hash": "{sha1}"}}')
    assert response.status == 200


async def test_upload_over_queue_depth_is_503_with_retry_after(make_worker_api):
    api = await make_worker_api(max_queue_depth=2)
    assert (await api.upload()).status == 200
    assert (await api.upload()).status == 200
    response = await api.upload()
    assert response.status == 503
    assert response.headers["Retry-After"] == str(api.settings.retry_after_seconds)
    assert "overloaded" in (await response.json())["message"]
    assert api.queued == [1, 2]


@pytest.mark.parametrize("task_id", ["abc", "-1", "1.5", "9" * 30, "%C2%B2"])
async def test_non_integer_task_id_is_400(worker_api, task_id):
    for method in ("GET", "DELETE"):
        response = await worker_api.client.request(method, f"{API}/task/{task_id}")
        assert response.status == 400
        assert "task id" in (await response.json())["message"]


async def test_unknown_task_is_404_for_get_and_delete(worker_api):
    for method in ("GET", "DELETE"):
        response = await worker_api.client.request(method, f"{API}/task/42")
        assert response.status == 404
        assert "42" in (await response.json())["message"]


async def test_unknown_path_and_wrong_method_answer_json(worker_api):
    response = await worker_api.client.get("/api/tiscale/v1/nope")
    assert response.status == 404
    assert "message" in await response.json()
    response = await worker_api.client.put(f"{API}/upload")
    assert response.status == 405
    assert "message" in await response.json()


async def test_bulk_delete_without_age_is_400(worker_api):
    response = await worker_api.client.delete(f"{API}/task")
    assert response.status == 400
    assert "age" in (await response.json())["message"]
    response = await worker_api.client.delete(f"{API}/task?age=soon")
    assert response.status == 400


async def test_list_filters_by_age_and_token_with_or_without_token_prefix(worker_api):
    await worker_api.upload(headers={"X-TiScale-Token": "Token custom"})
    await worker_api.upload(headers={"X-TiScale-Token": "other"})
    await worker_api.upload()
    # Make task 1 look ten minutes old.
    await worker_api.redis.hset(worker_api.store.keys.task(1), "submitted", int(time.time()) - 600)
    await worker_api.redis.zadd(worker_api.store.keys.all_tasks, {"1": int(time.time()) - 600})

    async def listed(query: str) -> list[int]:
        response = await worker_api.client.get(f"{API}/task{query}")
        assert response.status == 200
        return [entry["task_id"] for entry in await response.json()]

    assert await listed("") == [1, 2, 3]
    assert await listed("?age=300") == [1]
    assert await listed("?token=custom") == [1]
    assert await listed("?token=Token%20custom") == [1]
    assert await listed("?token=other") == [2]
    assert await listed("?token=custom&age=0") == [1]
    entry = (await (await worker_api.client.get(f"{API}/task?age=300")).json())[0]
    assert set(entry) == {"submitted", "task_id", "processed"}


async def test_delete_task_removes_record_file_and_listing(worker_api):
    await worker_api.upload()
    await worker_api.upload()
    response = await worker_api.client.delete(f"{API}/task/1")
    assert response.status == 200
    assert await response.read() == b""
    assert (await worker_api.client.get(f"{API}/task/1")).status == 404
    assert worker_api.spool_files() == ["2"]
    listed = await (await worker_api.client.get(f"{API}/task")).json()
    assert [entry["task_id"] for entry in listed] == [2]


async def test_bulk_delete_by_age_keeps_younger_tasks_and_age_zero_deletes_all(worker_api):
    for _ in range(3):
        await worker_api.upload()
    await worker_api.redis.zadd(worker_api.store.keys.all_tasks, {"1": int(time.time()) - 1000})
    assert (await worker_api.client.delete(f"{API}/task?age=500")).status == 200
    assert (await worker_api.client.get(f"{API}/task/1")).status == 404
    assert (await worker_api.client.get(f"{API}/task/2")).status == 200
    assert (await worker_api.client.delete(f"{API}/task?age=0")).status == 200
    assert await (await worker_api.client.get(f"{API}/task")).json() == []
    assert worker_api.spool_files() == []


async def test_publish_failure_fails_the_task_and_answers_503(make_worker_api):
    def broken_broker(task_ids: list[int]) -> None:
        raise ConnectionError("broker down")

    api = await make_worker_api(send_jobs=broken_broker)
    response = await api.upload()
    assert response.status == 503
    assert "Retry-After" in response.headers
    view = await (await api.client.get(f"{API}/task/1")).json()
    assert view["status"] == "failed"
    assert "broker down" in view["error"]
    assert api.spool_files() == []


class TestAuth:
    async def test_missing_token_is_401(self, make_worker_api):
        api = await make_worker_api(submit_tokens=TOKEN_SUBMIT, tasks_tokens=TOKEN_TASKS)
        response = await api.upload()
        assert response.status == 401
        assert (await api.client.get(f"{API}/task/1")).status == 401

    async def test_wrong_token_is_403(self, make_worker_api):
        api = await make_worker_api(submit_tokens=TOKEN_SUBMIT, tasks_tokens=TOKEN_TASKS)
        response = await api.upload(headers={"Authorization": "Token " + "X" * 40})
        assert response.status == 403
        assert "message" in await response.json()
        # A token of another group is wrong here.
        response = await api.upload(headers={"Authorization": f"Token {TOKEN_TASKS}"})
        assert response.status == 403
        response = await api.upload(headers={"Authorization": f"Bearer {TOKEN_SUBMIT}"})
        assert response.status == 403

    async def test_right_token_per_group_is_accepted(self, make_worker_api):
        api = await make_worker_api(submit_tokens=TOKEN_SUBMIT, tasks_tokens=TOKEN_TASKS)
        assert (await api.upload(headers={"Authorization": f"Token {TOKEN_SUBMIT}"})).status == 200
        response = await api.client.get(f"{API}/task/1", headers={"Authorization": f"Token {TOKEN_TASKS}"})
        assert response.status == 200

    async def test_header_is_ignored_when_no_tokens_are_configured(self, worker_api):
        response = await worker_api.upload(headers={"Authorization": "Token whatever"})
        assert response.status == 200

    async def test_health_needs_no_token(self, make_worker_api):
        api = await make_worker_api(submit_tokens=TOKEN_SUBMIT, tasks_tokens=TOKEN_TASKS)
        response = await api.client.get("/health")
        assert response.status in (200, 503)
        assert "checks" in await response.json()


async def test_health_is_503_without_a_live_celery_worker(worker_api):
    response = await worker_api.client.get("/health")
    assert response.status == 503
    body = await response.json()
    assert body["checks"]["redis"] == "ok"
    assert body["checks"]["celery"] == "no live Celery worker"


async def test_health_is_200_with_a_celery_heartbeat(worker_api):
    await worker_api.redis.set(worker_api.store.keys.celery_heartbeat("node@host"), "1", px=5000)
    response = await worker_api.client.get("/health")
    assert response.status == 200
    assert (await response.json())["checks"]["celery_workers"] == ["node@host"]


async def test_metrics_expose_requests_queue_depth_and_outcomes(worker_api):
    await worker_api.upload()
    await worker_api.upload()
    await worker_api.client.get(f"{API}/task/99")
    await worker_api.store.fail(1, "test failure", int(time.time()))
    response = await worker_api.client.get("/metrics")
    assert response.status == 200
    text = await response.text()
    upload_line = 'method="POST",route="/api/tiscale/v1/upload",service="worker",status="200"} 2.0'
    assert f"scanhub_http_requests_total{{{upload_line}" in text
    assert 'route="/api/tiscale/v1/task/{task_id}",service="worker",status="404"} 1.0' in text
    assert "scanhub_queue_depth 1.0" in text
    assert 'scanhub_tasks_finished{status="failed"} 1.0' in text


async def test_openapi_document_lists_every_served_route_with_its_token_group(worker_api):
    response = await worker_api.client.get("/openapi.json")
    assert response.status == 200
    document = await response.json()
    assert document["openapi"].startswith("3.")
    served = {
        (route.resource.canonical, route.method.lower())
        for route in worker_api.client.app.router.routes()
        if route.method != "HEAD"
    }
    aliases = {(path, method) for path, method in served if path.endswith("/") and path != "/"}
    documented = {(path, method) for path, item in document["paths"].items() for method in item}
    assert documented == served - aliases
    # Every trailing-slash alias is of a documented API route.
    assert aliases and {(path[:-1], method) for path, method in aliases} <= documented
    upload = document["paths"]["/api/tiscale/v1/upload"]["post"]
    assert upload["security"][0] == {"token": ["submit"]}
    task = document["paths"]["/api/tiscale/v1/task/{task_id}"]["get"]
    assert task["parameters"][0]["name"] == "task_id"
    assert "security" not in document["paths"]["/health"]["get"]


async def test_uploads_are_admitted_again_once_the_queue_drains(make_worker_api):
    api = await make_worker_api(max_queue_depth=1)
    admission = api.client.app[ADMISSION]
    now = [0.0]
    admission.clock = lambda: now[0]
    assert (await api.upload()).status == 200
    assert (await api.upload()).status == 503
    await api.redis.delete(api.store.keys.queued_tasks)  # as if the analysis processes took the job
    now[0] += admission.max_age + 0.01  # past the admission check's refresh interval
    assert (await api.upload()).status == 200


async def test_unicode_digits_in_age_are_400_not_500(worker_api):
    for method in ("GET", "DELETE"):
        response = await worker_api.client.request(method, f"{API}/task?age=%C2%B2")
        assert response.status == 400


async def test_custom_data_comes_back_exactly_as_sent_even_beyond_float_precision(worker_api):
    await worker_api.upload(
        custom_data='{"id": 123456789012345678901234567890, "ratio": 0.1000000000000000055511}'
    )
    fields = done_fields([], {}, int(time.time()))
    await worker_api.redis.hset(worker_api.store.keys.task(1), mapping=fields)
    text = await (await worker_api.client.get(f"{API}/task/1")).text()
    assert '"custom_data":{"id": 123456789012345678901234567890, "ratio": 0.1000000000000000055511}' in text


async def test_a_full_spool_disk_during_an_upload_is_503_and_leaves_no_file(worker_api, monkeypatch):
    import errno

    from common import streaming

    def disk_full(handle, hashers, block):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(streaming, "write_and_hash", disk_full)
    response = await worker_api.upload(b"x" * 1000)
    assert response.status == 503
    assert "Retry-After" in response.headers
    assert worker_api.spool_files() == []
    assert worker_api.queued == []
