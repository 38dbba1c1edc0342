"""Classification: a verdict per file from its engines, then parents as bad as their worst child.

Codes: 0 unknown, 1 goodware, 2 suspicious, 3 malicious. `factor` is 0-5
(how sure / how bad); `rca_factor` is the same judgement on 0-10 (twice the factor).
"""

from __future__ import annotations

from typing import Any

from worker.analysis.context import CLASSIFICATION_CODES, CLASSIFICATION_NAMES

SUSPICIOUS = CLASSIFICATION_CODES["suspicious"]


def severity(result: dict[str, Any]) -> tuple[int, int]:
    """Order verdicts worst-last; goodware never outranks unknown when propagating."""
    code = result["classification"]
    return (code if code >= SUSPICIOUS else 0, result["factor"])


def per_engine(scan_results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One item per engine: its worst verdict, with every reason it gave."""
    merged: dict[str, dict[str, Any]] = {}
    for result in scan_results:
        kept = merged.get(result["name"])
        if kept is None:
            merged[result["name"]] = dict(result)
            continue
        reasons = [kept["reason"], *([result["reason"]] if result["reason"] not in kept["reason"] else [])]
        if (result["classification"], result["factor"]) > (kept["classification"], kept["factor"]):
            kept.update({key: result[key] for key in ("classification", "factor", "result")})
        kept["reason"] = "; ".join(reasons)
    return list(merged.values())


def classify(scan_results: list[dict[str, Any]]) -> dict[str, Any]:
    engines = per_engine(scan_results)
    worst = max(engines, key=lambda result: (result["classification"], result["factor"]), default=None)
    classification = worst["classification"] if worst else CLASSIFICATION_CODES["unknown"]
    factor = worst["factor"] if worst else 0
    return {
        "classification": classification,
        "factor": factor,
        "rca_factor": min(10, 2 * factor) if classification >= SUSPICIOUS else 0,
        "result": worst["result"] if worst and classification >= SUSPICIOUS else "",
        "reason": f"{worst['name']}: {worst['reason']}" if worst else "",
        "propagated": False,
        "propagation_source": None,
        "scan_results": engines,
    }


def propagate(entries: list[dict[str, Any]]) -> None:
    """Make every parent at least as bad as its worst child, naming the child.

    Entries are in depth-first order (a child always after its parent), so one pass from
    the end carries a verdict up any number of levels.
    """
    for entry in reversed(entries):
        relationship = entry.get("parent_relationship")
        if not relationship:
            continue
        child = entry["classification"]
        parent_entry = entries[relationship["parent_index"]]
        parent = parent_entry["classification"]
        if severity(child) <= severity(parent):
            continue
        parent.update(
            {
                "classification": child["classification"],
                "factor": child["factor"],
                "rca_factor": child["rca_factor"],
                "result": child["result"],
                "reason": f"child {entry['index']} ({entry['info']['file']['file_path']}): {child['reason']}",
                "propagated": True,
                "propagation_source": {
                    "index": entry["index"],
                    "file_path": entry["info"]["file"]["file_path"],
                    "sha1": next(h["value"] for h in entry["info"]["file"]["hashes"] if h["name"] == "sha1"),
                },
            }
        )


def verdict_sentence(classification: dict[str, Any]) -> str:
    name = CLASSIFICATION_NAMES.get(classification["classification"], "unknown")
    if classification["classification"] < SUSPICIOUS:
        return "No engine found anything malicious or suspicious in it."
    threat = f" as {classification['result']}" if classification["result"] else ""
    how = " because of a file inside it" if classification["propagated"] else ""
    factor = classification["factor"]
    return f"It is classified {name}{threat} (factor {factor}){how}: {classification['reason']}."
