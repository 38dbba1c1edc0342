"""License and quota endpoints: the spec's shapes, answered for an open-source Worker."""

from __future__ import annotations

from aiohttp import FormData

from tests.unit.conftest import TOKEN_SUBMIT

ADMIN = "A" * 40
AUTH = {"Authorization": f"Token {ADMIN}"}


async def test_license_info_has_the_spec_fields_and_a_stable_machine_id(make_worker_api):
    api = await make_worker_api(admin_tokens=ADMIN)
    first = await (await api.client.get("/api/license/v1/", headers=AUTH)).json()
    assert set(first) == {
        "product", "machineId", "version", "serialNumber", "licenseType",
        "company", "expiryDate", "creationDate", "status",
    }  # fmt: skip
    assert first["product"] == "tiscale-worker"
    assert first["status"] == "VALID"
    again = await (await api.client.get("/api/license/v1", headers=AUTH)).json()
    assert again["machineId"] == first["machineId"]
    status = await (await api.client.get("/api/license/v1/status/", headers=AUTH)).json()
    assert status == {"status": "VALID"}


async def test_generating_a_machine_id_replaces_it(make_worker_api):
    api = await make_worker_api(admin_tokens=ADMIN)
    before = (await (await api.client.get("/api/license/v1/", headers=AUTH)).json())["machineId"]
    response = await api.client.post("/api/license/v1/machine-id/generate", headers=AUTH)
    assert response.status == 200
    generated = (await response.json())["machineId"]
    assert generated != before
    after = (await (await api.client.get("/api/license/v1/", headers=AUTH)).json())["machineId"]
    assert after == generated


async def test_license_upload_is_acknowledged_and_needs_a_file_part(make_worker_api):
    api = await make_worker_api(admin_tokens=ADMIN)
    form = FormData()
    form.add_field("file", b"license", filename="license.lic")
    response = await api.client.put("/api/license/v1/upload", data=form, headers=AUTH)
    assert response.status == 200
    assert (await response.json()) == {"message": "License is already applied"}
    response = await api.client.put("/api/license/v1/upload", data=b"x", headers=AUTH)
    assert response.status == 400


async def test_quota_endpoints_answer_503_ticloud_not_configured(worker_api):
    for path in ("/api/tiscale/v1/quota", "/api/tiscale/v1/quota/company"):
        response = await worker_api.client.get(path)
        assert response.status == 503
        assert await response.json() == {"message": "TiCloud is not configured."}


async def test_license_calls_need_an_admin_token(make_worker_api):
    api = await make_worker_api(admin_tokens=ADMIN, submit_tokens=TOKEN_SUBMIT)
    assert (await api.client.get("/api/license/v1/")).status == 401
    wrong = {"Authorization": f"Token {TOKEN_SUBMIT}"}
    assert (await api.client.get("/api/license/v1/", headers=wrong)).status == 403
