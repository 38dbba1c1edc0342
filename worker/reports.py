"""Report shaping for GET /task/{id}: report types, views and field filters, as pure functions.

A report (`tc_report`) is a list of file entries, the shape Spectra Detect clients parse.
Shaping never changes what
was stored; it picks what a client sees:

- `report_type`: `small` (verdict and hashes of the file and of flagged children), `medium`
  (default: everything about the file but its bulkiest details, children summarized),
  `large` (everything, children in full). The types are data in `REPORT_TYPES`; a site adds
  its own in a JSON file of the same shape (`SCANHUB_REPORT_TYPES_FILE`).
- `include_fields` / `exclude_fields`: JSON arrays of dotted paths into each entry
  (`["classification", "info.file.hashes"]`); through a list, a path applies to every item.
  Without a `report_type` they apply to the full (large) report.
- `view`: `flat` (each entry's nested keys joined with `_`, hashes keyed by their name,
  list items by their position) or `extended` (each entry names its chain of containers;
  entry 0 gets a `summary` of the whole tree).
- Deprecated, accepted: `full=true|1` means `large`, `full=false|0` means `medium`, unless a
  `report_type` is given; `v13` is accepted and changes nothing, since scanhub's reports
  already carry classifications as the integer codes Worker 1.3 used.
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from common.settings import yes_or_no
from worker.store import VERDICTS, classification_code, entry_verdict, task_view

DEFAULT_REPORT_TYPE = "medium"
VIEWS = ("flat", "extended")

# What "verdict and hashes" means for one entry.
VERDICT_FIELDS = [
    "index",
    "parent_relationship",
    "info.file.file_type",
    "info.file.file_subtype",
    "info.file.file_name",
    "info.file.file_path",
    "info.file.size",
    "info.file.hashes",
    "classification.classification",
    "classification.factor",
    "classification.rca_factor",
    "classification.result",
    "classification.reason",
    "classification.propagated",
    "classification.propagation_source",
]

# Each type: which fields of entry 0 (`file`), which children (`children`: all, flagged or
# none) and which fields of each child (`child`). A field spec is {"include": [...]} or
# {"exclude": [...]} or {} for everything.
REPORT_TYPES: dict[str, dict[str, Any]] = {
    "small": {
        "file": {"include": [*VERDICT_FIELDS, "info.statistics"]},
        "children": "flagged",
        "child": {"include": VERDICT_FIELDS},
    },
    "medium": {
        "file": {
            "exclude": [
                "metadata.application.pe.sections",
                "metadata.application.pe.imports.functions",
                "metadata.application.pe.exports",
                "metadata.application.elf.sections",
                "classification.scan_results.version",
            ]
        },
        "children": "all",
        "child": {"include": [*VERDICT_FIELDS, "indicators", "tags", "classification.scan_results"]},
    },
    "large": {"file": {}, "children": "all", "child": {}},
}


class ReportOptionError(ValueError):
    """A query parameter that does not describe a report; the API answers 400 with it."""


@dataclass(frozen=True)
class ReportOptions:
    report_type: str
    view: str | None = None
    include_fields: tuple[str, ...] | None = None
    exclude_fields: tuple[str, ...] | None = None


@functools.cache
def site_report_types(path: Path | None) -> dict[str, dict[str, Any]]:
    """The built-in report types plus a site's own from a JSON file (read once per process)."""
    types = dict(REPORT_TYPES)
    if path is not None:
        extra = json.loads(Path(path).read_text())
        for name, definition in extra.items():
            check_definition(name, definition)
            types[name] = definition
    return types


def check_definition(name: str, definition: Any) -> None:
    if not isinstance(definition, dict) or definition.get("children", "all") not in (
        "all",
        "flagged",
        "none",
    ):
        raise ValueError(f"report type {name!r}: expected an object with children all|flagged|none")
    for part in ("file", "child"):
        spec = definition.get(part, {})
        lists = spec.values() if isinstance(spec, dict) else []
        if (
            not isinstance(spec, dict)
            or set(spec) - {"include", "exclude"}
            or not all(isinstance(paths, list) and all(isinstance(p, str) for p in paths) for paths in lists)
        ):
            raise ValueError(
                f"report type {name!r}: {part} must be {{'include': [...]}} or {{'exclude': [...]}} of paths"
            )


def parse_flag(name: str, text: str | None) -> bool | None:
    if text is None:
        return None
    flag = yes_or_no(text)
    if flag is not None:
        return flag
    raise ReportOptionError(f"'{name}' must be true or false (1 or 0), not {text[:40]!r}")


# Bounds on a field filter, so that shaping stays cheap whatever a client sends.
MAX_FIELDS = 200
MAX_PATH_SEGMENTS = 16
MAX_FIELDS_TEXT = 16 * 1024


def parse_fields(name: str, text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    problem = f"'{name}' must be a JSON array of at most {MAX_FIELDS} dotted field paths"
    if len(text) > MAX_FIELDS_TEXT:
        raise ReportOptionError(f"{problem}, at most {MAX_FIELDS_TEXT} characters long")
    try:
        value = orjson.loads(text)  # refuses nesting deeper than 1024 instead of recursing
    except orjson.JSONDecodeError:
        raise ReportOptionError(problem) from None
    if not isinstance(value, list) or not all(isinstance(item, str) and item.strip(".") for item in value):
        raise ReportOptionError(problem)
    if len(value) > MAX_FIELDS:
        raise ReportOptionError(f"{problem}, not {len(value)}")
    # Paths may be written from the task view's top (`tc_report.classification`).
    paths = tuple(item.removeprefix("tc_report.") for item in value)
    if any(len(split_path(path)) > MAX_PATH_SEGMENTS for path in paths):
        raise ReportOptionError(f"'{name}': a field path has at most {MAX_PATH_SEGMENTS} dotted parts")
    return paths


def parse_options(query: Mapping[str, str], report_types: Mapping[str, Any] = REPORT_TYPES) -> ReportOptions:
    """Report options from GET /task/{id}'s query string; ReportOptionError when malformed."""
    include = parse_fields("include_fields", query.get("include_fields"))
    exclude = parse_fields("exclude_fields", query.get("exclude_fields"))
    full = parse_flag("full", query.get("full"))
    parse_flag("v13", query.get("v13"))  # accepted, validated, changes nothing (see module doc)
    report_type = query.get("report_type") or None
    if report_type is None:
        if full is not None:
            report_type = "large" if full else DEFAULT_REPORT_TYPE
        elif include is not None or exclude is not None:
            report_type = "large"
        else:
            report_type = DEFAULT_REPORT_TYPE
    if report_type not in report_types:
        names = ", ".join(sorted(report_types))
        raise ReportOptionError(f"unknown report_type {report_type[:40]!r}; use one of {names}")
    view = query.get("view") or None
    if view is not None and view not in VIEWS:
        raise ReportOptionError(f"unknown view {view[:40]!r}; use flat or extended")
    return ReportOptions(report_type, view, include, exclude)


def split_path(path: str) -> list[str]:
    return [part for part in path.split(".") if part]


# A set of dotted paths as a tree: {"info": {"file": {"hashes": ALL}}, "classification": ALL}.
# Selecting or dropping along it visits each entry once, whatever the number of paths.
ALL: dict[str, Any] = {}
PathTree = dict[str, Any]


def path_tree(paths: list[str] | tuple[str, ...]) -> PathTree:
    tree: PathTree = {}
    for path in paths:
        node = tree
        parts = split_path(path)
        for position, part in enumerate(parts):
            if node.get(part) is ALL:
                break  # a shorter path already takes all of it
            if position == len(parts) - 1:
                node[part] = ALL
            else:
                node = node.setdefault(part, {})
    return tree


def select(value: Any, tree: PathTree) -> Any:
    """What of `value` the paths in `tree` name; through a list, each dict item that has one
    of the names (items without any are left out). Returns MISSING when nothing is named."""
    if tree is ALL:
        return copy.deepcopy(value)
    if isinstance(value, list):
        items = [select(item, tree) for item in value if isinstance(item, dict) and tree.keys() & item.keys()]
        return [item for item in items if item is not MISSING]
    if isinstance(value, dict):
        kept = {}
        for key, subtree in tree.items():
            if key in value:
                picked = select(value[key], subtree)
                if picked is not MISSING:
                    kept[key] = picked
        return kept if kept else MISSING
    return MISSING


MISSING: Any = object()


def include_fields(entry: dict[str, Any], paths: list[str] | tuple[str, ...]) -> dict[str, Any]:
    kept = select(entry, path_tree(paths))
    return {} if kept is MISSING else kept


def drop(value: Any, tree: PathTree) -> None:
    if isinstance(value, list):
        for item in value:
            drop(item, tree)
    elif isinstance(value, dict):
        for key, subtree in tree.items():
            if key not in value:
                continue
            if subtree is ALL:
                del value[key]
            else:
                drop(value[key], subtree)


def exclude_fields(entry: dict[str, Any], paths: list[str] | tuple[str, ...]) -> dict[str, Any]:
    kept = copy.deepcopy(entry)
    drop(kept, path_tree(paths))
    return kept


def apply_fields(entry: dict[str, Any], spec: Mapping[str, Any]) -> dict[str, Any]:
    if "include" in spec:
        entry = include_fields(entry, spec["include"])
    if "exclude" in spec:
        entry = exclude_fields(entry, spec["exclude"])
    return entry


def is_flagged(entry: dict[str, Any]) -> bool:
    return classification_code(entry) >= 2


def apply_report_type(report: list[dict[str, Any]], definition: Mapping[str, Any]) -> list[dict[str, Any]]:
    if not report:
        return []
    shaped = [apply_fields(report[0], definition.get("file", {}))]
    children = definition.get("children", "all")
    for entry in report[1:]:
        if children == "none" or (children == "flagged" and not is_flagged(entry)):
            continue
        shaped.append(apply_fields(entry, definition.get("child", {})))
    return shaped


def flatten(value: Any, prefix: str = "", into: dict[str, Any] | None = None) -> dict[str, Any]:
    """Nested keys joined with `_`; hash lists keyed by hash name; other list items by position."""
    flat: dict[str, Any] = {} if into is None else into
    if isinstance(value, dict):
        for key, item in value.items():
            flatten(item, f"{prefix}_{key}" if prefix else str(key), flat)
    elif (
        isinstance(value, list)
        and prefix.endswith("hashes")
        and all(isinstance(item, dict) and "name" in item for item in value)
    ):
        for item in value:
            flat[f"{prefix}_{item['name']}"] = item.get("value")
    elif isinstance(value, list) and value:
        for position, item in enumerate(value):
            flatten(item, f"{prefix}_{position}", flat)
    else:
        flat[prefix] = value
    return flat


def extend(report: list[dict[str, Any]], original: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each entry names its chain of containers; entry 0 summarizes the tree."""
    by_index = {index: entry for entry in original if isinstance(index := entry.get("index"), int)}

    def chain(entry: dict[str, Any]) -> list[str]:
        names: list[str] = []
        seen: set[int] = set()
        while isinstance(relationship := entry.get("parent_relationship"), dict):
            index, parent = entry.get("index"), relationship.get("parent_index")
            if not isinstance(index, int) or index in seen or not isinstance(parent, int):
                break
            seen.add(index)
            entry = by_index.get(parent, {})
            info = entry.get("info")
            file = info.get("file") if isinstance(info, dict) else None
            names.insert(0, str(file.get("file_path", "")) if isinstance(file, dict) else "")
        return names

    extended = []
    for entry in report:
        entry = dict(entry)
        index = entry.get("index")
        entry["container_chain"] = chain(by_index.get(index, entry) if isinstance(index, int) else entry)
        extended.append(entry)
    if extended:
        counts = dict.fromkeys(VERDICTS, 0)
        for entry in original:
            counts[entry_verdict(entry)] += 1
        limits = [limit for entry in original for limit in limits_hit(entry)]
        extended[0]["summary"] = {"files": len(original), "classifications": counts, "limits_hit": limits}
    return extended


def limits_hit(entry: dict[str, Any]) -> list[Any]:
    metadata = entry.get("metadata")
    archive = metadata.get("archive") if isinstance(metadata, dict) else None
    found = archive.get("limits_hit") if isinstance(archive, dict) else None
    return found if isinstance(found, list) else []


def shape_report(
    report: list[dict[str, Any]], options: ReportOptions, report_types: Mapping[str, Any] = REPORT_TYPES
) -> Any:
    """The client's view of a stored report under `options` (see the module doc)."""
    shaped = apply_report_type(report, report_types[options.report_type])
    if options.include_fields is not None:
        shaped = [include_fields(entry, options.include_fields) for entry in shaped]
    if options.exclude_fields is not None:
        shaped = [exclude_fields(entry, options.exclude_fields) for entry in shaped]
    if options.view == "flat":
        return [flatten(entry) for entry in shaped]
    if options.view == "extended":
        return extend(shaped, report)
    return shaped


def render_task(fields: dict[str, str], options: ReportOptions, report_types: Mapping[str, Any]) -> bytes:
    """A task's JSON (as GET /task/{id} answers it), its report shaped as asked."""
    view = task_view(fields)
    if isinstance(view.get("tc_report"), list):
        view["tc_report"] = shape_report(view["tc_report"], options, report_types)
    return orjson.dumps(view)
