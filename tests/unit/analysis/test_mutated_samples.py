"""Garbage in: every sample of every identification row, truncated and corrupted, is analyzed
without the task failing, without leftovers in the spool, and within the file's time limit."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from samples import identification_samples

MUTATIONS_PER_SAMPLE = 6
LENGTH_FIELDS = (b"\xff\xff\xff\x7f", b"\x00\x00\x00\x00", b"\xff\xff\xff\xff")


def all_samples() -> list[tuple[str, Callable[[], bytes]]]:
    samples = identification_samples()
    assert samples, "no identification samples found"
    return [(f"{module}:{file_type}/{subtype}", builder) for module, (file_type, subtype, builder) in samples]


def mutate(data: bytes, number: int, rng: random.Random) -> bytes:
    """Truncated, bytes flipped here and there, or a length-like field set to an extreme."""
    mutated = bytearray(data)
    kind = number % 3
    if kind == 0 and len(mutated) > 8:
        return bytes(mutated[: rng.randrange(4, len(mutated))])
    if kind == 1:
        for _ in range(max(1, len(mutated) // 200)):
            if mutated:
                mutated[rng.randrange(len(mutated))] = rng.randrange(256)
        return bytes(mutated)
    if len(mutated) > 16:
        offset = rng.randrange(len(mutated) - 8)
        mutated[offset : offset + 4] = rng.choice(LENGTH_FIELDS)
    return bytes(mutated)


@pytest.mark.parametrize(("name", "builder"), all_samples(), ids=[name for name, _ in all_samples()])
def test_a_truncated_or_corrupted_file_of_each_type_never_fails_the_task(analyze, name, builder):
    rng = random.Random(name)  # the same mutations on every run
    data = builder()
    for number in range(MUTATIONS_PER_SAMPLE):
        report = analyze(
            mutate(data, number, rng), name.rsplit("/", 1)[-1].lower(), analysis_file_time_limit_seconds=5
        )
        assert report[0]["info"]["file"]["size"] >= 0
        assert report[0]["story"], "every entry gets its summary"
