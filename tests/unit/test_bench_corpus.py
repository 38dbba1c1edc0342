"""The benchmark corpus is deterministic and shaped as its kinds say."""

from __future__ import annotations

from bench.corpus import SIZES, generate


def test_same_seed_gives_the_same_corpus_and_another_seed_does_not():
    first = generate("mixed", 30, seed=7)
    assert [(s.name, s.content) for s in first] == [
        (s.name, s.content) for s in generate("mixed", 30, seed=7)
    ]
    assert [s.content for s in first] != [s.content for s in generate("mixed", 30, seed=8)]


def test_small_files_stay_within_their_size_band():
    low, high = SIZES["small"]
    for sample in generate("small", 40):
        assert low // 2 <= len(sample.content) <= high * 1.1, sample.name


def test_mixed_corpus_is_mostly_small_with_some_medium():
    names = [sample.name for sample in generate("mixed", 200)]
    small = sum(name.startswith("small") for name in names)
    medium = sum(name.startswith("medium") for name in names)
    assert small > 120
    assert medium > 10
