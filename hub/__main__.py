"""Runs the Hub: `python -m hub` (settings from SCANHUB_* variables, see common/settings.py)."""

from __future__ import annotations

from common.service import serve
from common.settings import load_hub_settings
from hub.api import create_app


def main() -> None:
    settings = load_hub_settings()
    serve(create_app(settings), settings, "hub")


if __name__ == "__main__":
    main()
