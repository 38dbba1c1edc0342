"""One auth rule for every route: open with no tokens, closed once any token is set."""

from __future__ import annotations

import subprocess
import sys

import pytest

from common.auth import TOKEN_PATH
from tests.unit.conftest import TOKEN_SUBMIT, TOKEN_TASKS

pytestmark = pytest.mark.unit

API = "/api/tiscale/v1"
TOKEN_ADMIN = "A" * 40


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Token {token}"}


async def test_with_only_submit_tokens_every_route_but_health_needs_a_token(make_worker_api):
    api = await make_worker_api(submit_tokens=TOKEN_SUBMIT)
    client = api.client
    for method, path in [
        ("GET", f"{API}/task"),
        ("GET", f"{API}/task/1"),
        ("DELETE", f"{API}/task?age=0"),
        ("GET", "/metrics"),
        ("GET", "/openapi.json"),
        ("GET", "/no/such/route"),
    ]:
        response = await client.request(method, path)
        assert response.status == 401, (method, path)
        assert "authorization required" in (await response.json())["message"]
    assert (await client.get("/health")).status in (200, 503)  # probes need no token
    # The submit token serves the groups without tokens of their own, but not admin.
    assert (await client.get(f"{API}/task", headers=auth(TOKEN_SUBMIT))).status == 200
    assert (await client.get("/metrics", headers=auth(TOKEN_SUBMIT))).status == 200
    for headers in ({}, auth(TOKEN_SUBMIT)):
        generate = await client.post("/api/license/v1/machine-id/generate", headers=headers)
        assert generate.status == 403
        assert "SCANHUB_ADMIN_TOKENS" in (await generate.json())["message"]


async def test_groups_without_tokens_of_their_own_accept_the_admin_tokens(make_worker_api):
    api = await make_worker_api(submit_tokens=TOKEN_SUBMIT, admin_tokens=TOKEN_ADMIN)
    client = api.client
    assert (await client.get(f"{API}/task", headers=auth(TOKEN_ADMIN))).status == 200
    assert (await client.get(f"{API}/task", headers=auth(TOKEN_SUBMIT))).status == 403
    assert (await client.post("/api/license/v1/machine-id/generate", headers=auth(TOKEN_ADMIN))).status == 200


async def test_a_bearer_token_of_any_group_reads_metrics_but_not_another_groups_routes(make_worker_api):
    api = await make_worker_api(submit_tokens=TOKEN_SUBMIT, tasks_tokens=TOKEN_TASKS)
    form = {"grant_type": "client_credentials", "client_id": "c", "client_secret": TOKEN_SUBMIT}
    issued = await api.client.post(TOKEN_PATH, data=form)  # the token endpoint is public
    bearer = {"Authorization": f"Bearer {(await issued.json())['access_token']}"}
    assert (await api.client.get("/metrics", headers=bearer)).status == 200
    assert (await api.client.get(f"{API}/task", headers=bearer)).status == 403


async def test_with_no_token_anywhere_the_api_is_open(make_worker_api):
    api = await make_worker_api()
    assert (await api.client.get(f"{API}/task")).status == 200
    assert (await api.client.get("/metrics")).status == 200


@pytest.mark.parametrize("service", ["worker", "hub"])
def test_a_service_with_no_tokens_refuses_to_start_on_a_public_address(service, tmp_path):
    environment = {
        "PATH": "/usr/bin:/bin",
        "SCANHUB_HOST": "0.0.0.0",
        "SCANHUB_PORT": "1",  # never bound: the refusal comes first
        "SCANHUB_SPOOL_DIR": str(tmp_path),
        "SCANHUB_WORKER_URLS": "http://127.0.0.1:9",
    }
    result = subprocess.run(
        [sys.executable, "-m", service], env=environment, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "refusing to serve on 0.0.0.0 with no token configured" in result.stderr


@pytest.mark.parametrize(
    ("host", "tokens", "allow_open", "refused"),
    [
        ("0.0.0.0", "", False, True),
        ("10.1.2.3", "", False, True),
        ("0.0.0.0", "", True, False),
        ("0.0.0.0", TOKEN_SUBMIT, False, False),
        ("127.0.0.1", "", False, False),
        ("::1", "", False, False),
        ("localhost", "", False, False),
    ],
)
def test_open_exposure_rule(host, tokens, allow_open, refused):
    from worker.settings import WorkerSettings

    settings = WorkerSettings(host=host, submit_tokens=tokens, allow_open=allow_open)
    assert (settings.open_exposure() is not None) == refused
