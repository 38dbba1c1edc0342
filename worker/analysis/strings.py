"""Interesting strings: URLs, e-mail addresses, IPv4/IPv6 addresses and domains, capped per category.

Reads at most `strings_scan_bytes` of a file, as bytes and once more with NULs dropped so
UTF-16 text (common in Windows binaries and documents) is found too.
"""

from __future__ import annotations

import ipaddress
import re

from worker.analysis.context import FileContext, Findings

URL = re.compile(rb"\b(https?|ftp)://[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]{3,2048}")
EMAIL = re.compile(rb"\b[A-Za-z0-9._%+\-]{1,64}@(?:[A-Za-z0-9\-]{1,63}\.){1,8}[A-Za-z]{2,24}\b")
IPV4 = re.compile(
    rb"(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?![\d.])"
)
IPV6 = re.compile(rb"(?<![0-9A-Fa-f:.])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![0-9A-Fa-f:.])")
DOMAIN = re.compile(rb"\b(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.){1,8}([A-Za-z]{2,24})\b")
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
CATEGORIES = ("http", "https", "ftp", "mailto", "ipv4", "ipv6", "domain")


def add(found: dict[str, list[str]], category: str, value: str, cap: int) -> None:
    values = found[category]
    if len(values) < cap and value not in values:
        values.append(value)


def host_of(url: str) -> str:
    rest = url.split("://", 1)[1]
    host = re.split(r"[/?#]", rest, maxsplit=1)[0].rsplit("@", 1)[-1]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def extract(data: bytes, cap: int) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {category: [] for category in CATEGORIES}
    for match in URL.finditer(data):
        url = match.group(0).decode("ascii", "replace").rstrip(".,;:'\")]")
        add(found, match.group(1).decode().lower(), url, cap)
        host = host_of(url)
        if host and not host[0].isdigit() and "." in host:
            add(found, "domain", host.lower(), cap)
    for match in EMAIL.finditer(data):
        add(found, "mailto", match.group(0).decode("ascii", "replace"), cap)
    for match in IPV4.finditer(data):
        text = match.group(0).decode()
        if text not in ("0.0.0.0", "255.255.255.255") and not text.startswith("0."):
            add(found, "ipv4", text, cap)
    for match in IPV6.finditer(data):
        text = match.group(0).decode()
        if text.count(":") < 2 or text in ("::", "::1") or len(text) < 6:
            continue
        try:
            add(found, "ipv6", str(ipaddress.IPv6Address(text)), cap)
        except ValueError:
            continue
    for match in DOMAIN.finditer(data):
        if match.group(1).decode().lower() in KNOWN_TLDS:
            add(found, "domain", match.group(0).decode().lower(), cap)
    return found


def analyze(context: FileContext) -> Findings:
    with context.path.open("rb") as handle:
        data = handle.read(context.settings.strings_scan_bytes)
    cap = context.settings.strings_max_per_category
    found = extract(data, cap)
    if b"\x00" in data:
        for category, values in extract(data.replace(b"\x00", b""), cap).items():
            for value in values:
                add(found, category, value, cap)
    strings = [{"category": category, "values": values} for category, values in found.items() if values]
    tags = ["network-strings"] if any(found[c] for c in ("http", "https", "ftp", "ipv4", "ipv6")) else []
    return {"interesting_strings": strings, "tags": tags}
