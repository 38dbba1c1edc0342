"""Streaming decoders for compression methods no maintained library covers, each yielding bounded blocks."""
