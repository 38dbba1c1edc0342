"""ZIP extractor (pyzipper): stored and deflated members, ZipCrypto and AES with the password list.

pyzipper rather than zipfile because it decrypts WinZip AES, the encryption real malware
archives use. The central directory is read one entry at a time (`zipdirectory.py`) and
members one block at a time through the extraction budget, so neither a huge directory nor
a lying header gets past the limits.
"""

from __future__ import annotations

import zipfile
import zlib

import pyzipper

from worker.analysis.context import Analyzer, FileContext, Findings, HeuristicHit, hit
from worker.analysis.extractors.zipdirectory import StreamingZipFile

# pyzipper raises its own BadZipFile, not zipfile's.
BAD_ZIP = (zipfile.BadZipFile, pyzipper.BadZipFile)
OOXML_SUBTYPES = ("Word", "Excel", "PowerPoint", "OOXML")
ACCEPTS = (
    "Archive/ZIP",
    "Archive/JAR",
    "Archive/APK",
    *(f"Document/{kind}" for kind in OOXML_SUBTYPES),
)


def is_zip(context: FileContext) -> bool:
    return context.head.startswith(b"PK\x03\x04")


def extract(context: FileContext) -> Findings:
    hits: list[HeuristicHit] = []
    locked: list[str] = []
    with StreamingZipFile(context.path) as archive:
        for info in archive.entries():
            if info.is_dir():
                continue
            context.extraction.members += 1
            # zipfile reads at most compress_size bytes, and never more than the file has.
            packed = min(info.compress_size, context.size)
            encrypted = bool(info.flag_bits & 0x1)
            candidates = context.passwords() if encrypted else [(b"", "")]
            for number, (password, source) in enumerate(candidates):
                context.check_time(f"trying passwords on {info.filename[:100]}")
                try:
                    with archive.open(info, pwd=password or None) as member:
                        context.extract(info.filename, member, packed)
                except (RuntimeError, *BAD_ZIP, zlib.error, ValueError, EOFError) as error:
                    if encrypted and number + 1 < len(candidates):
                        continue  # wrong password: try the next one
                    reason = "no password matched" if encrypted else f"{type(error).__name__}: {error}"
                    context.skip(info.filename, reason)
                    if encrypted:
                        locked.append(info.filename)
                    break
                except NotImplementedError as error:
                    context.skip(info.filename, f"unsupported: {error}")
                    break
                if encrypted:
                    context.extraction.password_source = source
                break
    if context.extraction.password_source:
        hits.append(hit("archive:encrypted", context.extraction.password_source))
    if locked:
        hits.append(hit("archive:password-unknown", *locked[:5]))
    findings: Findings = {"heuristics": hits}
    if locked:
        findings["story"] = [
            f"{len(locked)} encrypted member(s) could not be opened with any known password."
        ]
    return findings


ANALYZER = Analyzer(name="zip", version="2", run=extract, accepts=ACCEPTS, when=is_zip, extracts=True)
