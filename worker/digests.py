"""The digests a Worker computes for every file, in the order reports list them."""

from __future__ import annotations

DIGESTS = ("md5", "sha1", "sha256", "sha512")
# A hex digest's length names its algorithm (a submitter's expected `hash`).
DIGEST_BY_HEX_LENGTH = {32: "md5", 40: "sha1", 64: "sha256", 128: "sha512"}
