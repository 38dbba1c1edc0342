"""Benchmarks: a seeded corpus, the engine alone, and the cluster end to end."""
