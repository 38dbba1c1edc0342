"""Deployment helpers: the local cluster launcher used by `make run`, the tests and the bench."""
