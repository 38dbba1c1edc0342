"""Runs a Worker node's API process: `python -m worker`."""

from __future__ import annotations

import sys

from common.service import serve
from worker.api import create_app
from worker.settings import load_worker_settings


def main() -> None:
    settings = load_worker_settings()
    if problem := settings.open_exposure():
        sys.exit(problem)
    serve(create_app(settings), settings, "worker")


if __name__ == "__main__":
    main()
