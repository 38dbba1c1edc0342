"""OAuth2 client-credentials bearer tokens, accepted wherever a static token is."""

from __future__ import annotations

import base64
import time

import jwt
import pytest

from tests.unit.conftest import TOKEN_SUBMIT, TOKEN_TASKS

TOKEN_PATH = "/api/auth/v1/token"
SIGNING_SECRET = "test-signing-secret-0123456789abcdefghij"
API = "/api/tiscale/v1"


@pytest.fixture
async def secured(make_worker_api):
    return await make_worker_api(
        submit_tokens=TOKEN_SUBMIT, tasks_tokens=TOKEN_TASKS, bearer_secret=SIGNING_SECRET
    )


async def fetch_bearer(api, secret: str, basic: bool = False):
    if basic:
        credentials = base64.b64encode(f"my-connector:{secret}".encode()).decode()
        return await api.client.post(
            TOKEN_PATH,
            data={"grant_type": "client_credentials"},
            headers={"Authorization": f"Basic {credentials}"},
        )
    return await api.client.post(
        TOKEN_PATH,
        data={"grant_type": "client_credentials", "client_id": "my-connector", "client_secret": secret},
    )


@pytest.mark.parametrize("basic", [False, True])
async def test_client_credentials_grant_issues_a_five_minute_bearer_token(secured, basic):
    response = await fetch_bearer(secured, TOKEN_SUBMIT, basic=basic)
    assert response.status == 200
    body = await response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 300
    assert body["scope"] == "submit"
    assert response.headers["Cache-Control"] == "no-store"


async def test_bearer_token_is_accepted_where_its_static_token_is(secured):
    bearer = (await (await fetch_bearer(secured, TOKEN_SUBMIT)).json())["access_token"]
    assert (await secured.upload(headers={"Authorization": f"Bearer {bearer}"})).status == 200
    # ... and only there: a submit token grants nothing on the tasks group.
    response = await secured.client.get(f"{API}/task/1", headers={"Authorization": f"Bearer {bearer}"})
    assert response.status == 403


async def test_expired_bearer_token_is_401(secured):
    now = int(time.time())
    expired = jwt.encode(
        {"sub": "x", "scope": "submit", "iat": now - 600, "exp": now - 300}, SIGNING_SECRET, "HS256"
    )
    response = await secured.upload(headers={"Authorization": f"Bearer {expired}"})
    assert response.status == 401
    assert "expired" in (await response.json())["message"]


async def test_bearer_token_signed_with_another_secret_is_403(secured):
    now = int(time.time())
    forged = jwt.encode({"sub": "x", "scope": "submit tasks", "iat": now, "exp": now + 60}, "g" * 40, "HS256")
    assert (await secured.upload(headers={"Authorization": f"Bearer {forged}"})).status == 403
    unsigned = jwt.encode({"scope": "submit", "iat": now, "exp": now + 60}, None, "none")  # type: ignore[arg-type]
    assert (await secured.upload(headers={"Authorization": f"Bearer {unsigned}"})).status == 403


async def test_wrong_client_secret_is_401_and_wrong_grant_type_is_400(secured):
    assert (await fetch_bearer(secured, "X" * 40)).status == 401
    response = await secured.client.post(
        TOKEN_PATH, data={"grant_type": "password", "client_secret": TOKEN_SUBMIT}
    )
    assert response.status == 400
    assert "unsupported_grant_type" in (await response.json())["message"]
