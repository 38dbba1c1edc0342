"""The Hub's application keys: what its handlers find on `request.app`."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from hub.forward import MemoryBudget
from hub.pool import WorkerPool
from hub.settings import HubSettings

SETTINGS = web.AppKey("settings", HubSettings)
POOL = web.AppKey("pool", WorkerPool)
# The client session the Hub forwards and checks health with (no connection limit).
SESSION = web.AppKey("session", aiohttp.ClientSession)
# Bounds the request bodies held in memory at once.
BODY_MEMORY = web.AppKey("body_memory", MemoryBudget)
