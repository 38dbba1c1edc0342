"""YARA: match the node's compiled ruleset against a file, with its external variables; meta gives verdicts.

Rules carry meta `threat_name`, `classification` (malicious / suspicious / goodware) and
`factor` (0-5). A rule without a classification is reported as an indicator only.

Each scan sets the external variables community rule sets expect (declared with empty
defaults by `worker.analysis.ruleset.EXTERNALS`), with the values LOKI and THOR give them:

- `filename`: the file's name (for an unpacked file, the last part of its name in the container);
- `filepath`: its path inside its container, as the report's `file_path` shows it;
- `extension`: the name's extension, lower case, without the dot (`"exe"`, `"js"`; `""` if none);
- `filetype`: the upper-case header type LOKI / THOR compute from the first bytes (`"EXE"`,
  `"ELF"`, `"ZIP"`, `"PDF"`, `"Office"`, ...; `"UNKNOWN"` otherwise), so `filetype == "EXE"`
  means what signature-base's authors meant;
- `owner`: always empty (a submitted file has no owner);
- `scanhub_filetype`: scanhub's own identification, `file_type/file_subtype` (`"PE/Exe"`).
"""

from __future__ import annotations

import threading
from pathlib import PurePosixPath
from typing import Any

from worker.analysis.context import CLASSIFICATION_CODES, Analyzer, FileContext, Findings, indicator, verdict

ENGINE = "YARA"
# (prefix, type) in the order they are tried; longer prefixes of a family come first. The
# names are those of the magic-header table LOKI and THOR use for the `filetype` variable.
HEADER_TYPES: tuple[tuple[bytes, str], ...] = (
    (bytes.fromhex("504B030414000600"), "Office"),
    (bytes.fromhex("504B030414000800"), "JAR"),
    (bytes.fromhex("504B537058"), "PKSFX"),
    (bytes.fromhex("D0CF11E0A1B11AE1"), "OLE"),
    (bytes.fromhex("4C0000000114020000"), "LNK"),
    (bytes.fromhex("377ABCAF271C"), "7Zip"),
    (bytes.fromhex("526172211A07"), "RAR"),
    (bytes.fromhex("7B5C72746631"), "RTF"),
    (b"<?php", "PHP"),
    (b"<?xm", "XML"),
    (b"<?XM", "XML"),
    (bytes.fromhex("1F8B08"), "GZIP"),
    (b"%PDF", "PDF"),
    (b"BZh", "BZip2"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF", "GIF"),
    (b"PK\x05\x06", "PKZIP"),
    (b"PK\x03\x04", "ZIP"),
    (b"MSCF", "CAB"),
    (b"MDMP", "MDMP"),
    (b"regf", "Registry Hive"),
    (bytes.fromhex("CAFEBABE"), "Class"),
    (b"CWS", "CWS"),
    (b"ZWS", "ZWS"),
    (b"FWS", "FWS (Flash)"),
    (b"#!/", "UNIX SCRIPT"),
    (b"#!", "Script"),
    (b"\x7fE", "ELF"),
    (b"MZ", "EXE"),
)
UNKNOWN_TYPE = "UNKNOWN"


def header_type(head: bytes) -> str:
    """The LOKI / THOR `filetype` of a file from its first bytes."""
    for prefix, name in HEADER_TYPES:
        if head.startswith(prefix):
            return name
    return UNKNOWN_TYPE


def text(value: str) -> str:
    """A value libyara and YARA-X accept: valid UTF-8 (odd bytes in names become U+FFFD)."""
    return value.encode("utf-8", "replace").decode("utf-8")


def file_externals(context: FileContext) -> dict[str, str]:
    name = PurePosixPath(context.file_name.replace("\\", "/")).name or context.file_name
    suffix = PurePosixPath(name).suffix
    identity = context.identity
    return {
        "filename": text(name),
        "filepath": text(context.file_path),
        "extension": text(suffix[1:].lower()),
        "filetype": header_type(context.head),
        "owner": "",
        "scanhub_filetype": f"{identity.get('file_type', '')}/{identity.get('file_subtype', '')}",
    }


def meta_text(meta: dict[str, Any], name: str, default: str = "") -> str:
    value = meta.get(name, default)
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def has_rules(context: FileContext) -> bool:
    return context.ruleset is not None and context.ruleset.rules is not None


_local = threading.local()


def yara_x_scanner(rules: Any) -> Any:
    """One YARA-X scanner per thread and ruleset: building one per file costs more than a scan."""
    import yara_x

    cached = getattr(_local, "scanner", None)
    if cached is None or cached[0] is not rules:
        cached = (rules, yara_x.Scanner(rules))
        _local.scanner = cached
    return cached[1]


def matches(context: FileContext, timeout: int) -> list[tuple[str, str, dict[str, Any]]]:
    """(namespace, rule, meta) of every rule that matches the file."""
    ruleset = context.ruleset
    externals = file_externals(context)
    if ruleset.engine == "yara-x":
        scanner = yara_x_scanner(ruleset.rules)
        for name, value in externals.items():
            scanner.set_global(name, value)
        scanner.set_timeout(timeout)
        results = scanner.scan_file(str(context.path))
        return [(rule.namespace, rule.identifier, dict(rule.metadata)) for rule in results.matching_rules]
    found = ruleset.rules.match(str(context.path), timeout=timeout, externals=externals)
    return [(match.namespace, match.rule, match.meta) for match in found]


def analyze(context: FileContext) -> Findings:
    ruleset = context.ruleset
    timeout = max(1, int(min(context.settings.yara_scan_timeout_seconds, context.time_left())))
    found = matches(context, timeout)
    if not found:
        return {}
    indicators, verdicts, tags = [], [], []
    for namespace, rule, meta in found:
        name = f"{namespace}:{rule}" if namespace != "default" else rule
        classification = meta_text(meta, "classification").lower()
        threat_name = meta_text(meta, "threat_name", rule)
        try:
            factor = int(meta.get("factor", 1))
        except (TypeError, ValueError):
            factor = 1
        description = meta_text(meta, "description", f"matches YARA rule {rule}")
        indicators.append(indicator(f"yara:{name}", "yara", description, 5 + factor, [f"YARA rule {name}"]))
        tags.append(f"yara:{rule}")
        if classification in CLASSIFICATION_CODES:
            verdicts.append(
                verdict(
                    ENGINE, "yara", classification, factor, threat_name, f"rule {name}", ruleset.ruleset_id
                )
            )
    return {"indicators": indicators, "scan_results": verdicts, "tags": tags}


ANALYZER = Analyzer(name="yara", version="1", run=analyze, when=has_rules)
