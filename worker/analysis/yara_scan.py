"""YARA: match the node's compiled ruleset against a file, with its external variables; meta gives verdicts.

Rules carry meta `threat_name`, `classification` (malicious / suspicious / goodware) and
`factor` (0-5). A rule without a classification is reported as an indicator only.

Each scan sets the external variables community rule sets expect (declared with empty
defaults by `worker.analysis.ruleset.EXTERNALS`), with the values LOKI and THOR give them:

- `filename`: the file's name (for an unpacked file, the last part of its name in the container);
- `filepath`: its path inside its container, as the report's `file_path` shows it;
- `extension`: the name's extension, lower case, with its dot as LOKI gives it (`".exe"`,
  `".js"`; `""` if none), so signature-base's `extension == ".jsp"` means what it says;
- `filetype`: the upper-case header type LOKI / THOR compute from the first bytes (`"EXE"`,
  `"ELF"`, `"ZIP"`, `"PDF"`, `"Office"`, ...; `"UNKNOWN"` otherwise), so `filetype == "EXE"`
  means what signature-base's authors meant;
- `owner`: always empty (a submitted file has no owner);
- `scanhub_filetype`: scanhub's own identification, `file_type/file_subtype` (`"PE/Exe"`).
"""

from __future__ import annotations

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
    """A value yara-python accepts: valid UTF-8 (undecodable bytes of a name become U+FFFD)."""
    return value.encode("utf-8", "replace").decode("utf-8")


def file_externals(context: FileContext) -> dict[str, str]:
    name = PurePosixPath(context.file_name.replace("\\", "/")).name or context.file_name
    suffix = PurePosixPath(name).suffix
    identity = context.identity
    return {
        "filename": text(name),
        "filepath": text(context.file_path),
        "extension": text(suffix.lower()),
        "filetype": header_type(context.head),
        "owner": "",
        "scanhub_filetype": f"{identity.get('file_type', '')}/{identity.get('file_subtype', '')}",
    }


def meta_text(meta: dict[str, Any], name: str, default: str = "") -> str:
    value = meta.get(name, default)
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def has_rules(context: FileContext) -> bool:
    return context.ruleset is not None and context.ruleset.rules is not None


def analyze(context: FileContext) -> Findings:
    ruleset = context.ruleset
    timeout = max(1, int(min(context.settings.yara_scan_timeout_seconds, context.time_left())))
    matches = ruleset.rules.match(str(context.path), timeout=timeout, externals=file_externals(context))
    if not matches:
        return {}
    indicators, verdicts, tags = [], [], []
    for match in matches:
        name = f"{match.namespace}:{match.rule}" if match.namespace != "default" else match.rule
        classification = meta_text(match.meta, "classification").lower()
        threat_name = meta_text(match.meta, "threat_name", match.rule)
        try:
            factor = int(match.meta.get("factor", 1))
        except (TypeError, ValueError):
            factor = 1
        description = meta_text(match.meta, "description", f"matches YARA rule {match.rule}")
        indicators.append(indicator(f"yara:{name}", "yara", description, 5 + factor, [f"YARA rule {name}"]))
        tags.append(f"yara:{match.rule}")
        if classification in CLASSIFICATION_CODES:
            verdicts.append(
                verdict(
                    ENGINE, "yara", classification, factor, threat_name, f"rule {name}", ruleset.ruleset_id
                )
            )
    return {"indicators": indicators, "scan_results": verdicts, "tags": tags}


ANALYZER = Analyzer(name="yara", version="1", run=analyze, when=has_rules)
