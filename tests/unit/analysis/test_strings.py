"""The interesting-strings pass: the token-based scan finds exactly what scanning the whole
text with each pattern finds, in the same order, capped the same way."""

from __future__ import annotations

import random

import pytest

from bench.corpus import generate
from worker.analysis import strings
from worker.analysis.strings import DOMAIN, EMAIL, KNOWN_TLDS, URL, host_of

pytestmark = pytest.mark.unit


def reference(data: bytes, cap: int) -> dict[str, list[str]]:
    """The plain way: each pattern over the whole text, every match checked in order, with
    the same checks of a candidate address as the analyzer's."""
    found: dict[str, list[str]] = {category: [] for category in strings.CATEGORIES}
    hosts = []
    for match in URL.finditer(data):
        url = match.group(0).decode("ascii", "replace").rstrip(".,;:'\")]")
        found[match.group(1).decode().lower()].append(url)
        host = host_of(url)
        if host and not host[0].isdigit() and "." in host:
            hosts.append(host.lower())
    found["mailto"] = [match.group(0).decode("ascii", "replace") for match in EMAIL.finditer(data)]
    strings.ipv4_in(data, found["ipv4"])
    strings.ipv6_in(data, found["ipv6"])
    domains = [
        m.group(0).decode().lower()
        for m in DOMAIN.finditer(data)
        if m.group(1).decode().lower() in KNOWN_TLDS
    ]
    found["domain"] = hosts + domains
    return {category: strings.ordered_unique(values, cap) for category, values in found.items()}


PIECES = [
    b"http://203.0.113.9/payload.sh",
    b"https://evil.example.com:8443/a.ps1?x=1#frag",
    b"ftp://files.example.org/pub",
    b"hxxp://not.a.url",
    b"user.name+tag@mail.example.co.uk",
    b"a@b.cc",
    b"192.168.1.1",
    b"10.0.0.256",
    b"1.2.3.4.5",
    b"v2.31.4.1",
    b"0.0.0.0",
    b"255.255.255.255",
    b"fe80::1",
    b"2001:db8::8a2e:370:7334",
    b"::1",
    b"12:34:56",
    b"os.path.join",
    b"update.microsoft.com",
    b"self.data",
    b"www.example.xyz.",
    b"(http://x.example.com/q)",
    b"'mailto:ops@corp.example.net'",
    b"C:\\Windows\\System32\\cmd.exe",
    b'"http://quoted.example.io/"',
    b"<a href=https://tag.example.ru/x>",
]
SEPARATORS = [b" ", b"\n", b"\t", b'"', b"<", b">", b"|", b"{", b"}", b"^", b"`", b"\\", b"\x01", b""]


def mixtures(count: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    return [
        b"".join(rng.choice(PIECES) + rng.choice(SEPARATORS) for _ in range(rng.randint(1, 60)))
        for _ in range(count)
    ]


@pytest.mark.parametrize("cap", [3, 50])
def test_token_scan_matches_the_whole_text_scan_on_mixed_fragments(cap):
    for data in mixtures(300, seed=cap):
        assert strings.extract(data, cap) == reference(data, cap), data


def test_token_scan_matches_the_whole_text_scan_on_the_bench_corpora():
    for kind in ("small", "medium"):
        for sample in generate(kind, 40, 5, 0.2):
            text = strings.readable_text(sample.content)
            assert strings.extract(text, 50) == reference(text, 50), sample.name


def test_a_dotted_number_does_not_hide_the_same_address_standing_alone():
    data = b"version 1.2.3.4.5 then the host 1.2.3.4 itself"
    assert strings.extract(data, 50)["ipv4"] == ["1.2.3.4"]


def test_utf16_text_is_scanned_and_text_without_nuls_skips_that_scan():
    wide = "see http://wide.example.com/x now".encode("utf-16-le")
    assert b"http://wide.example.com/x" in strings.readable_text(b"\x00\x01" + wide)
    assert strings.readable_text(b"plain text only") == b"plain text only"
