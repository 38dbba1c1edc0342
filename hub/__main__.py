"""Runs the Hub: `python -m hub` (settings from SCANHUB_* variables, see hub/settings.py)."""

from __future__ import annotations

import sys

from common.service import serve
from hub.api import create_app
from hub.settings import load_hub_settings


def main() -> None:
    settings = load_hub_settings()
    if problem := settings.open_exposure():
        sys.exit(problem)
    serve(create_app(settings), settings, "hub")


if __name__ == "__main__":
    main()
