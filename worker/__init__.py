"""The Worker node: an aiohttp API, a Celery analysis worker, and their shared pieces."""
