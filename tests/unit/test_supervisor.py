"""The launcher's supervisor: which process is restarted when, and what the log says, on a fake clock."""

from __future__ import annotations

import logging
import signal

import pytest

from deploy.launcher import Backoff, Supervisor


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class FakeProcess:
    """Stands in for `Managed`: dies when told to, counts its restarts, gets a new pid each time."""

    def __init__(self, name: str):
        self.name = name
        self.pid = 100
        self.returncode: int | None = None
        self.restarts = 0

    def running(self) -> bool:
        return self.returncode is None

    def die(self, returncode: int = -signal.SIGKILL) -> None:
        self.returncode = returncode

    def restart(self) -> FakeProcess:
        self.restarts += 1
        self.pid += 1
        self.returncode = None
        return self


def test_backoff_doubles_from_half_a_second_to_thirty_and_stays_there_while_deaths_are_quick():
    backoff = Backoff()
    delays = [backoff.next_delay(ran_for=1) for _ in range(10)]
    assert delays == [0.5, 1, 2, 4, 8, 16, 30, 30, 30, 30]


def test_backoff_starts_again_from_the_first_delay_after_a_long_enough_run():
    backoff = Backoff()
    for _ in range(5):
        backoff.next_delay(ran_for=1)
    assert backoff.next_delay(ran_for=60) == 0.5
    assert backoff.next_delay(ran_for=59) == 1


def test_backoff_never_overflows_however_many_deaths():
    backoff = Backoff(quick_deaths=10_000)
    assert backoff.next_delay(ran_for=0) == 30


def test_a_dead_process_is_restarted_once_its_delay_has_passed_and_the_others_are_left_alone():
    clock = FakeClock()
    api, celery = FakeProcess("worker1-api"), FakeProcess("worker1-celery")
    supervisor = Supervisor([api, celery], clock=clock)
    assert supervisor.poll() == float("inf")
    api.die()
    assert supervisor.poll() == 0.5
    clock.sleep(0.4)
    assert supervisor.poll() == pytest.approx(0.1)
    assert api.restarts == 0
    clock.sleep(0.1)
    supervisor.poll()
    assert api.restarts == 1 and api.running()
    assert celery.restarts == 0


def test_each_death_and_restart_is_one_log_line_naming_the_process_its_end_and_the_delay(caplog):
    caplog.set_level(logging.INFO, logger="scanhub.launcher")
    clock = FakeClock()
    hub = FakeProcess("hub")
    supervisor = Supervisor([hub], clock=clock)
    clock.sleep(12)
    hub.die(-signal.SIGKILL)
    supervisor.poll()
    clock.sleep(0.5)
    supervisor.poll()
    assert caplog.messages == [
        "hub (pid 100) was killed by SIGKILL after 12.0 s; restarting in 0.5 s",
        "hub restarted (pid 101)",
    ]


def test_a_process_that_keeps_dying_at_once_is_retried_with_growing_delays_and_the_log_says_so(caplog):
    caplog.set_level(logging.INFO, logger="scanhub.launcher")
    clock = FakeClock()
    api = FakeProcess("worker1-api")
    supervisor = Supervisor([api], clock=clock)
    delays = []
    for _ in range(8):
        clock.sleep(0.1)
        api.die(1)
        delays.append(supervisor.poll())
        clock.sleep(delays[-1])
        supervisor.poll()
    assert delays == [0.5, 1, 2, 4, 8, 16, 30, 30]
    assert api.restarts == 8
    deaths = [message for message in caplog.messages if "exited with code 1" in message]
    assert deaths[0] == "worker1-api (pid 100) exited with code 1 after 0.1 s; restarting in 0.5 s"
    assert deaths[2] == (
        "worker1-api (pid 102) exited with code 1 after 0.1 s, its 3rd death in a row"
        " within 60 s of starting; still retrying: restarting in 2.0 s"
    )


def test_a_process_that_ran_a_while_before_dying_restarts_after_the_first_delay_again():
    clock = FakeClock()
    celery = FakeProcess("worker1-celery")
    supervisor = Supervisor([celery], clock=clock)
    for _ in range(4):
        celery.die()
        clock.sleep(supervisor.poll())
        supervisor.poll()
    clock.sleep(61)
    celery.die()
    assert supervisor.poll() == 0.5


def test_nothing_is_restarted_once_stopping_has_begun():
    clock = FakeClock()
    redis = FakeProcess("redis:6379")
    supervisor = Supervisor([redis], clock=clock)
    redis.die()
    supervisor.poll()
    clock.sleep(1)
    supervisor.poll(stopping=lambda: True)
    assert redis.restarts == 0 and not redis.running()


def test_run_sleeps_until_the_next_restart_is_due_and_returns_when_told_to_stop():
    clock = FakeClock()
    worker = FakeProcess("worker1-celery")
    supervisor = Supervisor([worker], clock=clock)
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.sleep(seconds)
        if len(slept) == 1:
            worker.die()

    supervisor.run(lambda: len(slept) >= 3, sleep, interval=2)
    # Polls every 2 s, but wakes for the restart due 0.5 s after the death rather than 2 s.
    assert slept == [2, 0.5, 2]
    assert worker.restarts == 1


def test_a_process_that_cannot_even_be_started_is_retried_later(caplog):
    caplog.set_level(logging.INFO, logger="scanhub.launcher")
    clock = FakeClock()
    broken = FakeProcess("worker1-api")

    def fail() -> None:
        raise FileNotFoundError("no such file: python")

    broken.restart = fail  # type: ignore[method-assign,assignment]
    supervisor = Supervisor([broken], clock=clock)
    broken.die(1)
    clock.sleep(supervisor.poll())
    assert supervisor.poll() == 1
    assert "worker1-api could not be started: no such file: python; retrying in 1.0 s" in caplog.messages
