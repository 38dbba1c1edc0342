"""`python -m deploy.healthcheck celery` fails while the Celery worker is frozen, passes once it thaws."""

from __future__ import annotations

import os
import signal

from deploy import healthcheck
from deploy.processes import wait_until


def test_celery_probe_fails_while_the_worker_is_frozen(worker_nodes, monkeypatch):
    node = worker_nodes()  # heartbeat every 0.5 s, so the key lapses 1.5 s after the last one
    for name, value in node.env.items():
        if name.startswith("SCANHUB_"):
            monkeypatch.setenv(name, value)
    assert node.celery is not None
    assert healthcheck.main(["celery"]) == 0
    os.killpg(node.celery.pid, signal.SIGSTOP)  # hung: alive, but its main loop does not run
    try:
        wait_until(lambda: healthcheck.main(["celery"]) == 1, 10, interval=0.2, what="the probe to fail")
        assert healthcheck.check(["celery"]) is healthcheck.Result.UNRESPONSIVE
    finally:
        os.killpg(node.celery.pid, signal.SIGCONT)
    wait_until(lambda: healthcheck.main(["celery"]) == 0, 10, interval=0.2, what="the probe to pass again")


def test_celery_probe_with_redis_gone_is_unhealthy_not_unresponsive(monkeypatch):
    monkeypatch.setenv("SCANHUB_REDIS_URL", "redis://127.0.0.1:9/0")
    assert healthcheck.check(["celery"]) is healthcheck.Result.UNHEALTHY
