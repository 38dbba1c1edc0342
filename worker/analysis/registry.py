"""The analyzers of the engine, in the order they run on each file.

`identify` comes first so the others are routed by the refined type; format analyzers come
before the extractors, whose children are analyzed after their parent. Adding an analyzer
is one module declaring `ANALYZER = Analyzer(...)` and one line here.
"""

from __future__ import annotations

from worker.analysis import elf, fuzzy, identify, office, pdf, pe, strings, yara_scan
from worker.analysis.context import Analyzer
from worker.analysis.extractors import (
    ar,
    arj,
    binhex,
    cabinet,
    chm,
    compressed,
    cpio,
    diskimage,
    encoded,
    installers,
    lzh,
    mbox,
    mime,
    mscompress,
    officepackage,
    olecompound,
    outlook,
    pdfobjects,
    pe_payloads,
    pyinstaller,
    rar,
    rpm,
    rtf,
    sevenzip,
    tar,
    tnef,
    upx,
    uuencode,
    ziparchive,
)

ANALYZERS: tuple[Analyzer, ...] = (
    identify.ANALYZER,
    fuzzy.ANALYZER,
    strings.ANALYZER,
    yara_scan.ANALYZER,
    pe.ANALYZER,
    elf.ANALYZER,
    office.ANALYZER,
    pdf.ANALYZER,
    # Extractors
    ziparchive.ANALYZER,
    tar.ANALYZER,
    compressed.ANALYZER,
    sevenzip.ANALYZER,
    lzh.ANALYZER,
    arj.ANALYZER,
    rar.ANALYZER,
    cabinet.ANALYZER,
    chm.ANALYZER,
    diskimage.ANALYZER,
    cpio.ANALYZER,
    ar.ANALYZER,
    rpm.ANALYZER,
    mscompress.ANALYZER,
    officepackage.ANALYZER,
    olecompound.ANALYZER,
    rtf.ANALYZER,
    pdfobjects.ANALYZER,
    upx.ANALYZER,
    # Before pe_payloads, which leaves the overlays these unpack to them (by their tags).
    pyinstaller.ANALYZER,
    installers.ANALYZER,
    pe_payloads.ANALYZER,
    mime.ANALYZER,
    mbox.ANALYZER,
    outlook.ANALYZER,
    tnef.ANALYZER,
    uuencode.ANALYZER,
    binhex.ANALYZER,
    encoded.ANALYZER,
)
