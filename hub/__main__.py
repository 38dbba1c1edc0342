"""Runs the Hub: `python -m hub` (settings from SCANHUB_* variables, see common/settings.py)."""

from __future__ import annotations

import logging
import ssl

from aiohttp import web

from common.settings import load_hub_settings
from hub.api import create_app


def main() -> None:
    settings = load_hub_settings()
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    ssl_context = None
    if settings.tls_certificate:
        ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_context.load_cert_chain(settings.tls_certificate, settings.tls_key)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    web.run_app(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        ssl_context=ssl_context,
        access_log=None,
        print=lambda message: logging.getLogger("hub").info(message),
    )


if __name__ == "__main__":
    main()
