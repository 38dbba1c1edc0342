"""Microsoft Cabinet extractor (refinery): stored, MSZIP, LZX and Quantum folders.

binary-refinery rather than cabarchive because cabarchive reads MSZIP only, and the CABs
malware ships (and Windows updates) are often LZX. A CAB lists at most 65535 files and its
directory is parsed up front; each file is decoded from its folder only when its declared
size passes the limits, so a file that lies about its size gets at most what it declared.
"""

from __future__ import annotations

from refinery.lib.cab import Cabinet

from worker.analysis.context import Analyzer, FileContext, Findings
from worker.analysis.extractors.inmemory import admit, mapped

CAB_ERRORS = (ValueError, LookupError, RuntimeError, EOFError, OSError)


def extract(context: FileContext) -> Findings:
    errors: list[str] = []
    with mapped(context.path) as view:
        cabinet = Cabinet()
        cabinet.append(view)
        cabinet.process()
        for files in cabinet.files.values():
            for file in files:
                context.extraction.members += 1
                # Files share their folder's compressed blocks: the ratio is judged on the whole CAB.
                if not admit(context, file.name, file.size, context.size):
                    continue
                try:
                    data = file.decompress()
                except CAB_ERRORS as error:
                    context.skip(file.name, f"{type(error).__name__}: {error}")
                    errors.append(f"cab: {file.name}: {error}")
                    continue
                context.extract(file.name, data)
        if cabinet.needs_more_disks():
            errors.append("cab: part of a multi-cabinet set; files continued in other cabinets are missing")
    return {"errors": errors} if errors else {}


ANALYZER = Analyzer(name="cab", version="1", run=extract, accepts=("Archive/CAB",), extracts=True)
