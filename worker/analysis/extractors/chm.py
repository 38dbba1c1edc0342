"""Compiled HTML Help extractor (refinery): the files of a CHM, from its uncompressed and LZX sections.

The CHM's own bookkeeping (`::DataSpace/...` and the `#`/`$` system files) is not emitted;
the pages, scripts and embedded files are. Each file is decoded only when its declared size
passes the limits.
"""

from __future__ import annotations

from refinery.lib.chm import CHM

from worker.analysis.context import Analyzer, FileContext, Findings
from worker.analysis.extractors.inmemory import admit, mapped

CHM_ERRORS = (ValueError, LookupError, RuntimeError, EOFError, NotImplementedError)


def is_content(name: str) -> bool:
    return not name.startswith(("::", "/#", "/$")) and not name.endswith("/")


def extract(context: FileContext) -> Findings:
    errors: list[str] = []
    with mapped(context.path) as view:
        help_file = CHM.Parse(view)
        for entry in help_file.entries():
            if entry.length <= 0 or not is_content(entry.name):
                continue
            name = entry.name
            context.extraction.members += 1
            if not admit(context, name, entry.length, context.size):
                continue
            try:
                data = help_file.read(entry)
            except CHM_ERRORS as error:
                context.skip(name, f"{type(error).__name__}: {error}")
                errors.append(f"chm: {name}: {error}")
                continue
            context.extract(name, data)
    return {"errors": errors} if errors else {}


ANALYZER = Analyzer(name="chm", version="1", run=extract, accepts=("Archive/CHM",), extracts=True)
