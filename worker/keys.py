"""The Worker API's application keys: what its handlers find on `request.app`.

Every route module reads the node's shared objects through these keys, so none of them
imports another route module (or the app factory) to reach them.
"""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web

from worker.admission import Admission
from worker.publisher import JobPublisher
from worker.settings import WorkerSettings
from worker.store import TaskStore

SETTINGS = web.AppKey("settings", WorkerSettings)
STORE = web.AppKey("store", TaskStore)
PUBLISHER = web.AppKey("publisher", JobPublisher)
ADMISSION = web.AppKey("admission", Admission)
# The submit-url downloader's HTTP client, with the outbound guard on its resolver.
FETCH_SESSION = web.AppKey("fetch_session", aiohttp.ClientSession)
# submit-url downloads in progress, cancelled when the API stops.
DOWNLOADS = web.AppKey("downloads", set[asyncio.Task[None]])
