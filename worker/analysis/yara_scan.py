"""YARA: match the node's compiled ruleset against a file; rule meta gives the verdict.

Rules carry meta `threat_name`, `classification` (malicious / suspicious / goodware) and
`factor` (0-5). A rule without a classification is reported as an indicator only.
"""

from __future__ import annotations

from typing import Any

from worker.analysis.context import CLASSIFICATION_CODES, Analyzer, FileContext, Findings, indicator, verdict

ENGINE = "YARA"


def meta_text(meta: dict[str, Any], name: str, default: str = "") -> str:
    value = meta.get(name, default)
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def has_rules(context: FileContext) -> bool:
    return context.ruleset is not None and context.ruleset.rules is not None


def analyze(context: FileContext) -> Findings:
    ruleset = context.ruleset
    timeout = max(1, int(min(context.settings.yara_scan_timeout_seconds, context.time_left())))
    matches = ruleset.rules.match(str(context.path), timeout=timeout)
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
