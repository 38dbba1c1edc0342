"""Extractors: analyzers that open a container or an encoding and emit its files as children."""
