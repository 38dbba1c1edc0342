"""PE metadata (pefile): machine, timestamp, sections with entropy, imports, imphash, exports,
resources, overlay and signature presence; plus a few format heuristics."""

from __future__ import annotations

import datetime
import math
import mmap
from collections import Counter
from typing import Any

import pefile

from worker.analysis.context import Analyzer, FileContext, Findings, HeuristicHit, hit

MAX_IMPORTED_FUNCTIONS = 200
MAX_EXPORTS = 200
MAX_RESOURCES = 5000
SECURITY_DIRECTORY = pefile.DIRECTORY_ENTRY["IMAGE_DIRECTORY_ENTRY_SECURITY"]
COM_DIRECTORY = pefile.DIRECTORY_ENTRY["IMAGE_DIRECTORY_ENTRY_COM_DESCRIPTOR"]
INJECTION_APIS = {"VirtualAllocEx", "WriteProcessMemory", "CreateRemoteThread"}


def entropy_of(data: bytes) -> float:
    if not data:
        return 0.0
    counts = Counter(data)
    total = len(data)
    return -sum(count / total * math.log2(count / total) for count in counts.values())


def text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode("latin-1").rstrip("\0") if isinstance(value, bytes) else value


def sections(pe: pefile.PE) -> list[dict[str, Any]]:
    items = []
    for section in pe.sections:
        flags = section.Characteristics
        items.append(
            {
                "name": text(section.Name),
                "virtual_address": section.VirtualAddress,
                "virtual_size": section.Misc_VirtualSize,
                "raw_size": section.SizeOfRawData,
                "entropy": round(section.get_entropy(), 4),
                "executable": bool(flags & 0x20000000),
                "writable": bool(flags & 0x80000000),
            }
        )
    return items


def imports(pe: pefile.PE) -> list[dict[str, Any]]:
    items = []
    for library in getattr(pe, "DIRECTORY_ENTRY_IMPORT", []):
        functions = [
            text(symbol.name) if symbol.name else f"ordinal_{symbol.ordinal}"
            for symbol in library.imports[:MAX_IMPORTED_FUNCTIONS]
        ]
        items.append({"name": text(library.dll), "functions": functions, "count": len(library.imports)})
    return items


def exports(pe: pefile.PE) -> list[str]:
    directory = getattr(pe, "DIRECTORY_ENTRY_EXPORT", None)
    if directory is None:
        return []
    return [
        text(symbol.name) if symbol.name else f"ordinal_{symbol.ordinal}"
        for symbol in directory.symbols[:MAX_EXPORTS]
    ]


def resources(pe: pefile.PE) -> dict[str, Any]:
    by_type: Counter[str] = Counter()
    total_size = 0
    seen = 0
    for resource_type in getattr(getattr(pe, "DIRECTORY_ENTRY_RESOURCE", None), "entries", []):
        type_name = (
            text(resource_type.name.string)
            if resource_type.name is not None
            else pefile.RESOURCE_TYPE.get(resource_type.struct.Id, str(resource_type.struct.Id))
        )
        for entry in getattr(getattr(resource_type, "directory", None), "entries", []):
            for language in getattr(getattr(entry, "directory", None), "entries", []):
                seen += 1
                if seen > MAX_RESOURCES:
                    break
                by_type[type_name] += 1
                data = getattr(language, "data", None)
                if data is not None:
                    total_size += data.struct.Size
    return {"count": sum(by_type.values()), "total_size": total_size, "by_type": dict(by_type)}


def overlay(pe: pefile.PE, context: FileContext) -> dict[str, Any] | None:
    start = pe.get_overlay_data_start_offset()
    if start is None or start >= context.size:
        return None
    size = context.size - start
    with context.path.open("rb") as handle:
        handle.seek(start)
        sample = handle.read(min(size, 8 * 1024 * 1024))
    return {"offset": start, "size": size, "entropy": round(entropy_of(sample), 4)}


def analyze(context: FileContext) -> Findings:
    # pefile reads a mapping of ours: its own close() runs a full gc.collect() (tens of ms).
    with context.path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as view:
        metadata = pe_metadata(pefile.PE(data=view, fast_load=True), context)
    findings: Findings = {"metadata": {"application": {"pe": metadata}}, "heuristics": heuristics(metadata)}
    if metadata["imphash"]:
        findings["hashes"] = [{"name": "imphash", "value": metadata["imphash"]}]
    return findings


def pe_metadata(pe: pefile.PE, context: FileContext) -> dict[str, Any]:
    pe.parse_data_directories(
        directories=[
            pefile.DIRECTORY_ENTRY["IMAGE_DIRECTORY_ENTRY_IMPORT"],
            pefile.DIRECTORY_ENTRY["IMAGE_DIRECTORY_ENTRY_EXPORT"],
            pefile.DIRECTORY_ENTRY["IMAGE_DIRECTORY_ENTRY_RESOURCE"],
        ]
    )
    timestamp = pe.FILE_HEADER.TimeDateStamp
    security = pe.OPTIONAL_HEADER.DATA_DIRECTORY[SECURITY_DIRECTORY]
    com = (
        pe.OPTIONAL_HEADER.DATA_DIRECTORY[COM_DIRECTORY]
        if len(pe.OPTIONAL_HEADER.DATA_DIRECTORY) > COM_DIRECTORY
        else None
    )
    section_list = sections(pe)
    import_list = imports(pe)
    imphash = pe.get_imphash() if import_list else ""
    metadata = {
        "machine": pefile.MACHINE_TYPE.get(pe.FILE_HEADER.Machine, hex(pe.FILE_HEADER.Machine)),
        "timestamp": timestamp,
        "timestamp_utc": datetime.datetime.fromtimestamp(timestamp, datetime.UTC).isoformat(),
        "is_dll": pe.is_dll(),
        "is_dotnet": bool(com and com.VirtualAddress),
        "subsystem": pefile.SUBSYSTEM_TYPE.get(
            pe.OPTIONAL_HEADER.Subsystem, str(pe.OPTIONAL_HEADER.Subsystem)
        ),
        "entry_point": pe.OPTIONAL_HEADER.AddressOfEntryPoint,
        "image_base": pe.OPTIONAL_HEADER.ImageBase,
        "sections": section_list,
        "imports": import_list,
        "imphash": imphash,
        "exports": exports(pe),
        "resources": resources(pe),
        "overlay": overlay(pe, context),
        "signature": {"present": security.Size > 0, "size": security.Size},
    }
    return metadata


def heuristics(metadata: dict[str, Any]) -> list[HeuristicHit]:
    hits: list[HeuristicHit] = []
    wx = [s["name"] for s in metadata["sections"] if s["executable"] and s["writable"]]
    if wx:
        hits.append(hit("pe:wx-section", *wx))
    packed = [s["name"] for s in metadata["sections"] if s["entropy"] > 7.2 and s["raw_size"] > 1024]
    if packed:
        hits.append(hit("pe:packed", *packed))
    overlay_info = metadata["overlay"]
    if overlay_info and overlay_info["entropy"] > 7.5 and overlay_info["size"] >= 4096:
        hits.append(hit("pe:overlay", f"{overlay_info['size']} bytes"))
    if not metadata["imports"] and not metadata["is_dotnet"]:
        hits.append(hit("pe:no-imports"))
    functions = {f for library in metadata["imports"] for f in library["functions"]}
    injection = sorted(INJECTION_APIS & functions)
    if len(injection) == len(INJECTION_APIS):
        hits.append(hit("pe:injection", *injection))
    if metadata["signature"]["present"]:
        hits.append(hit("pe:signed"))
    return hits


ANALYZER = Analyzer(name="pe", version="1", run=analyze, accepts=("PE",))
