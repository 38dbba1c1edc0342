"""Search by hash, shared by the Worker (its own tasks) and the Hub (every Worker's).

`GET /api/scanhub/v1/samples/{hash}` names a sample by its MD5, SHA1 or SHA256, told
apart by length; anything else is refused with 400.
"""

from __future__ import annotations

from common.errors import ApiError

SEARCH_PATH = "/api/scanhub/v1/samples/{hash}"
HASH_KINDS = {32: "md5", 40: "sha1", 64: "sha256"}


def parse_hash(text: str) -> tuple[str, str]:
    """(kind, lower-case hex) of an MD5, SHA1 or SHA256; 400 for anything else."""
    digest = text.strip().lower()
    kind = HASH_KINDS.get(len(digest))
    if kind is None or any(character not in "0123456789abcdef" for character in digest):
        raise ApiError(400, "give an MD5, SHA1 or SHA256 as hex (32, 40 or 64 characters)")
    return kind, digest
