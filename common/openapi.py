"""An OpenAPI 3.1 document of everything a service serves, built from its own router.

Built at request time from the routes and their handlers' docstrings, so the document can
never drift from the code: a route exists in the document exactly when it is served.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

from aiohttp import web

from common.auth import ANY, GROUP_ATTRIBUTE, PUBLIC
from common.errors import json_response

PATH_PARAMETER = re.compile(r"{([^}:]+)(:[^}]*)?}")


def _summary(handler: Any) -> tuple[str, str]:
    doc = inspect.getdoc(handler) or ""
    first, _, rest = doc.partition("\n")
    name = getattr(handler, "__name__", "handler").replace("_", " ")
    return first.strip() or name, rest.strip()


def openapi_document(app: web.Application, title: str, version: str) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    security_groups: set[str] = set()
    for route in app.router.routes():
        if route.method in ("HEAD", "*") or route.resource is None:
            continue
        if route.resource.canonical.endswith("/") and route.resource.canonical != "/":
            continue  # a trailing-slash alias (common.service.accept_trailing_slashes)
        path = PATH_PARAMETER.sub(r"{\1}", route.resource.canonical)
        summary, description = _summary(route.handler)
        operation: dict[str, Any] = {
            "summary": summary,
            "operationId": f"{route.method.lower()}_{re.sub(r'[^A-Za-z0-9]+', '_', path).strip('_')}",
            "responses": {
                "200": {"description": "success"},
                "default": {"description": 'error: {"message": ...}'},
            },
        }
        if description:
            operation["description"] = description
        parameters = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name, _ in PATH_PARAMETER.findall(route.resource.canonical)
        ]
        if parameters:
            operation["parameters"] = parameters
        group = getattr(route.handler, GROUP_ATTRIBUTE, ANY)
        if group != PUBLIC:
            security_groups.add(group)
            operation["security"] = [{"token": [group]}, {"bearer": [group]}]
        paths.setdefault(path, {})[route.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": dict(sorted(paths.items())),
        "components": {
            "securitySchemes": {
                "token": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authorization",
                    "description": "'Token <token>'; groups: " + ", ".join(sorted(security_groups)),
                },
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
            }
        },
    }


def openapi_route(title: str, version: str = "1") -> web.RouteDef:
    async def openapi(request: web.Request) -> web.Response:
        """This document: every path, method and token group the service serves."""
        return json_response(openapi_document(request.app, title, version))

    return web.get("/openapi.json", openapi)
