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


def add(found: dict[str, list[str]], category: str, value: str, cap: int) -> None:
    values = found[category]
    if len(values) < cap and value not in values:
        values.append(value)


def candidates(pattern: re.Pattern[bytes], data: bytes, limit: int = 20_000):
    """Distinct matches, at most `limit` of them: repeated text costs one check."""
    seen: set[bytes] = set()
    for match in pattern.finditer(data):
        text = match.group(0)
        if text in seen:
            continue
        seen.add(text)
        if len(seen) > limit:
            return
        yield match


def host_of(url: str) -> str:
    rest = url.split("://", 1)[1]
    host = re.split(r"[/?#]", rest, maxsplit=1)[0].rsplit("@", 1)[-1]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def extract(data: bytes, cap: int) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {category: [] for category in CATEGORIES}
    for match in candidates(URL, data):
        url = match.group(0).decode("ascii", "replace").rstrip(".,;:'\")]")
        add(found, match.group(1).decode().lower(), url, cap)
        host = host_of(url)
        if host and not host[0].isdigit() and "." in host:
            add(found, "domain", host.lower(), cap)
    for match in candidates(EMAIL, data):
        add(found, "mailto", match.group(0).decode("ascii", "replace"), cap)
    for match in candidates(IPV4, data):
        if data[match.start() - 1 : match.start()] in (b".", *DIGITS) or data[
            match.end() : match.end() + 1
        ] in (b".", *DIGITS):
            continue  # part of a longer dotted number (a version string, an OID)
        try:
            address = ipaddress.IPv4Address(match.group(0).decode())
        except ValueError:
            continue
        if not (address.is_unspecified or str(address) == "255.255.255.255"):
            add(found, "ipv4", str(address), cap)
    for match in candidates(IPV6, data):
        text = match.group(0).decode()
        if text.count(":") < 2 or len(text) < 6 or ("::" not in text and text.count(":") != 7):
            continue
        try:
            address6 = ipaddress.IPv6Address(text)
        except ValueError:
            continue
        if not address6.is_loopback and not address6.is_unspecified:
            add(found, "ipv6", str(address6), cap)
    for match in candidates(DOMAIN, data):
        if match.group(1).decode().lower() in KNOWN_TLDS:
            add(found, "domain", match.group(0).decode().lower(), cap)
    return found


def readable_text(data: bytes) -> bytes:
    """Printable runs and UTF-16 runs (NULs dropped), one per line: far less to search in a binary."""
    runs = PRINTABLE_RUN.findall(data)
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
