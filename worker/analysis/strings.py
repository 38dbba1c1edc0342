"""Interesting strings: URLs, e-mail addresses, IPv4/IPv6 addresses and domains, capped per category.

Reads at most `strings_scan_bytes` of a file, as bytes and once more with NULs dropped so
UTF-16 text (common in Windows binaries and documents) is found too.
"""

from __future__ import annotations

import ipaddress
import re

from worker.analysis.context import Analyzer, FileContext, Findings

# Simple patterns (Python's re is slow with look-arounds over megabytes); candidates are
# checked in Python afterwards.
PRINTABLE_RUN = re.compile(rb"[\x20-\x7e\t]{6,}")
WIDE_RUN = re.compile(rb"(?:[\x20-\x7e]\x00){6,}")
URL = re.compile(rb"(https?|ftp)://[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]{3,2048}")
EMAIL = re.compile(rb"[A-Za-z0-9._%+\-]{1,64}@(?:[A-Za-z0-9\-]{1,63}\.){1,8}[A-Za-z]{2,24}")
IPV4 = re.compile(rb"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}")
IPV6 = re.compile(rb"[0-9A-Fa-f]{0,4}:[0-9A-Fa-f:]{2,38}")
DOMAIN = re.compile(rb"(?:[A-Za-z0-9\-]{1,63}\.){1,8}([A-Za-z]{2,24})")
# Domains outside URLs are only believed with a well-known top-level domain: "os.path" or
# "self.data" would otherwise flood the list.
KNOWN_TLDS = frozenset(
    [
        "com",
        "net",
        "org",
        "info",
        "biz",
        "io",
        "co",
        "ru",
        "cn",
        "de",
        "uk",
        "fr",
        "nl",
        "eu",
        "us",
        "ca",
        "au",
        "jp",
        "kr",
        "br",
        "in",
        "it",
        "es",
        "pl",
        "su",
        "tk",
        "top",
        "xyz",
        "online",
        "site",
        "club",
        "me",
        "tv",
        "cc",
        "ws",
        "pw",
        "onion",
        "gov",
        "edu",
        "mil",
        "int",
        "app",
        "dev",
        "cloud",
        "link",
        "live",
    ]
)
DIGITS = tuple(bytes([digit]) for digit in b"0123456789")
CATEGORIES = ("http", "https", "ftp", "mailto", "ipv4", "ipv6", "domain")


# Every character any of the patterns above can match: a match never crosses a run of these,
# so the patterns only ever need to look inside such runs ("tokens"). Everything else becomes
# a space (bytes.translate), and bytes.split cuts the tokens out, both at C speed.
TOKEN_CHARACTERS = frozenset(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~:/?#[]@!$&'()*+,;=%"
)
TO_TOKENS = bytes(code if code in TOKEN_CHARACTERS else 0x20 for code in range(256))
# The shortest match of any pattern ("a.co") is 4 bytes long.
MIN_TOKEN = 4
# Distinct tokens examined per file at most: bounds the work on hostile text.
MAX_TOKENS = 50_000


def ordered_unique(values: list[str], cap: int) -> list[str]:
    return list(dict.fromkeys(values))[:cap]


def host_of(url: str) -> str:
    rest = url.split("://", 1)[1]
    host = re.split(r"[/?#]", rest, maxsplit=1)[0].rsplit("@", 1)[-1]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def ipv4_in(token: bytes, found: list[str]) -> None:
    for match in IPV4.finditer(token):
        start, end = match.span()
        if token[start - 1 : start] in (b".", *DIGITS) or token[end : end + 1] in (b".", *DIGITS):
            continue  # part of a longer dotted number (a version string, an OID)
        try:
            address = ipaddress.IPv4Address(match.group(0).decode())
        except ValueError:
            continue
        if not (address.is_unspecified or str(address) == "255.255.255.255"):
            found.append(str(address))


def ipv6_in(token: bytes, found: list[str]) -> None:
    for match in IPV6.finditer(token):
        text = match.group(0).decode()
        if text.count(":") < 2 or len(text) < 6 or ("::" not in text and text.count(":") != 7):
            continue
        try:
            address6 = ipaddress.IPv6Address(text)
        except ValueError:
            continue
        if not address6.is_loopback and not address6.is_unspecified:
            found.append(str(address6))


def extract(data: bytes, cap: int) -> dict[str, list[str]]:
    """Each category's values in the order they first appear, at most `cap` of each.

    The text is cut into tokens at C speed (translate, split); repeated tokens are dropped
    before any Python runs; each pattern then looks only at the
    distinct tokens that hold its anchor (`://`, `@`, `.`, `:`), which are short.
    """
    found: dict[str, list[str]] = {category: [] for category in CATEGORIES}
    url_hosts: list[str] = []
    domains: list[str] = []
    tokens = dict.fromkeys(data.translate(TO_TOKENS).split())
    for count, token in enumerate(tokens):
        if count >= MAX_TOKENS:
            break
        if len(token) < MIN_TOKEN:
            continue
        has_dot = b"." in token
        if b"://" in token:
            for match in URL.finditer(token):
                url = match.group(0).decode("ascii", "replace").rstrip(".,;:'\")]")
                found[match.group(1).decode().lower()].append(url)
                host = host_of(url)
                if host and not host[0].isdigit() and "." in host:
                    url_hosts.append(host.lower())
        if b"@" in token and has_dot:
            found["mailto"].extend(text.decode("ascii", "replace") for text in EMAIL.findall(token))
        if has_dot:
            ipv4_in(token, found["ipv4"])
            for match in DOMAIN.finditer(token):
                if match.group(1).decode().lower() in KNOWN_TLDS:
                    domains.append(match.group(0).decode().lower())
        if token.count(b":") >= 2:
            ipv6_in(token, found["ipv6"])
    found["domain"] = url_hosts + domains
    return {category: ordered_unique(values, cap) for category, values in found.items()}


def readable_text(data: bytes) -> bytes:
    """Printable runs and UTF-16 runs (NULs dropped), one per line: far less to search in a binary."""
    runs = PRINTABLE_RUN.findall(data)
    if b"\x00" in data:  # no UTF-16 text without NULs: text files skip that scan
        runs.extend(run.replace(b"\x00", b"") for run in WIDE_RUN.findall(data))
    return b"\n".join(runs)


def analyze(context: FileContext) -> Findings:
    with context.path.open("rb") as handle:
        data = handle.read(context.settings.strings_scan_bytes)
    found = extract(readable_text(data), context.settings.strings_max_per_category)
    strings = [{"category": category, "values": values} for category, values in found.items() if values]
    tags = ["network-strings"] if any(found[c] for c in ("http", "https", "ftp", "ipv4", "ipv6")) else []
    return {"interesting_strings": strings, "tags": tags}


ANALYZER = Analyzer(name="strings", version="1", run=analyze)
