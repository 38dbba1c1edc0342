"""License and quota endpoints of the spec, answered truthfully for an open-source Worker.

scanhub needs no license file, so the license API reports a permanent, valid license for
this node's machine id (kept in Redis, regenerated on request), and a license upload is
acknowledged as already applied. There is no Spectra Intelligence account behind scanhub,
so the quota endpoints answer as the spec says a Worker without one does.
"""

from __future__ import annotations

import time

from aiohttp import BodyPartReader, web

from common.auth import token_group
from common.errors import ApiError, json_response
from common.service import is_multipart
from worker.keys import STORE

routes = web.RouteTableDef()
LICENSE = "/api/license/v1"


async def machine_id(request: web.Request, regenerate: bool = False) -> tuple[str, int]:
    return await request.app[STORE].machine_id(regenerate)


def iso(timestamp: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


@routes.get(LICENSE)
@routes.get(f"{LICENSE}/")
@token_group("admin")
async def license_info(request: web.Request) -> web.Response:
    identifier, created = await machine_id(request)
    return json_response(
        {
            "product": "tiscale-worker",
            "machineId": identifier,
            "version": 1,
            "serialNumber": "scanhub-open-source",
            "licenseType": "REGULAR",
            "company": "scanhub (open source, no license required)",
            "expiryDate": "9999-12-31T23:59:59Z",
            "creationDate": iso(created),
            "status": "VALID",
        }
    )


@routes.get(f"{LICENSE}/status")
@routes.get(f"{LICENSE}/status/")
@token_group("admin")
async def license_status(request: web.Request) -> web.Response:
    return json_response({"status": "VALID"})


@routes.post(f"{LICENSE}/machine-id/generate")
@token_group("admin")
async def generate_machine_id(request: web.Request) -> web.Response:
    identifier, _ = await machine_id(request, regenerate=True)
    return json_response({"machineId": identifier})


@routes.put(f"{LICENSE}/upload")
@token_group("admin")
async def upload_license(request: web.Request) -> web.Response:
    if not is_multipart(request):
        raise ApiError(400, "send the license as multipart/form-data in a part named 'file'")
    reader = await request.multipart()
    part = await reader.next()
    if not isinstance(part, BodyPartReader) or part.name != "file":
        raise ApiError(400, "the upload has no 'file' part")
    size = 0
    while chunk := await part.read_chunk():
        size += len(chunk)
        if size > 1024 * 1024:
            raise ApiError(413, "a license file is at most 1 MiB")
    return json_response({"message": "License is already applied"})


@routes.get("/api/tiscale/v1/quota")
@routes.get("/api/tiscale/v1/quota/company")
@token_group("admin")
async def quota(request: web.Request) -> web.Response:
    return json_response({"message": "TiCloud is not configured."}, status=503)
