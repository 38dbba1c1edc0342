"""ISO 9660 and UDF image extractor (pycdlib): the image's files through its richest directory tree.

pycdlib is pure Python, reads from the file (never the whole image) and streams each file
out; it needs an ISO 9660 volume descriptor, so UDF bridge images are read but a UDF-only
image is reported as an error. The tree used is UDF, else Rock Ridge, else Joliet, else
plain ISO 9660, so names are the long ones a user would see. Links are reported, not followed.
"""

from __future__ import annotations

import re

import pycdlib
import pycdlib.pycdlibexception

from worker.analysis.context import Analyzer, FileContext, Findings

VERSION_SUFFIX = re.compile(r";\d+$")


def richest_tree(image: pycdlib.PyCdlib) -> str:
    if image.has_udf():
        return "udf_path"
    if image.has_rock_ridge():
        return "rr_path"
    if image.has_joliet():
        return "joliet_path"
    return "iso_path"


def extract(context: FileContext) -> Findings:
    errors: list[str] = []
    image = pycdlib.PyCdlib()
    with context.path.open("rb") as handle:
        image.open_fp(handle)
        try:
            tree = richest_tree(image)
            for directory, _, files in image.walk(**{tree: "/"}):
                for file_name in files:
                    path = f"{directory.rstrip('/')}/{file_name}"
                    name = (
                        VERSION_SUFFIX.sub("", path.lstrip("/")) if tree == "iso_path" else path.lstrip("/")
                    )
                    context.extraction.members += 1
                    try:
                        record = image.get_record(**{tree: path})
                        if record.is_symlink():
                            context.skip(name, "link")
                            continue
                        with image.open_file_from_iso(**{tree: path}) as member:
                            # Files are stored as they are: the ratio is judged on the whole image.
                            context.extract(name, member)
                    except pycdlib.pycdlibexception.PyCdlibException as error:
                        context.skip(name, f"unreadable: {error}")
                        errors.append(f"image: {name}: {error}")
        finally:
            image.close()
    return {"errors": errors} if errors else {}


ANALYZER = Analyzer(
    name="disk-image", version="1", run=extract, accepts=("Archive/ISO", "Archive/UDF"), extracts=True
)
