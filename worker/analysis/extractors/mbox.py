"""mbox extractor: every message of a Unix mailbox as a child, split on "From " lines while streaming.

A message starts at a line beginning with "From " that opens the file or follows an empty
line (the separator that mbox writers quote in bodies as ">From "). The separator line is
not part of the child, so each child is a plain RFC 822 message. Bytes are copied as they
are (no ">From " unquoting), through the extraction budget, one buffer at a time.
"""

from __future__ import annotations

import re

from worker.analysis.context import Analyzer, ChildWriter, FileContext, Findings

# "From sender date": the sender is one word, and the date has a time ("Mon Jan  1 10:00:00 2024")
# which tells a separator from a body line an mbox writer forgot to quote.
SEPARATOR = re.compile(rb"From \S+ +[^\r\n]*?\b\d{1,2}:\d{2}:\d{2}")
MAX_LINE = 1024 * 1024
FLUSH_BYTES = 1024 * 1024
BLANK_LINES = (b"\n", b"\r\n")


def message_name(number: int) -> str:
    return f"message-{number}.eml"


def extract(context: FileContext) -> Findings:
    if not SEPARATOR.match(context.head):
        return {
            "identity": {"file_type": "Text", "file_subtype": "None"},
            "errors": ["not an mbox: the first line is not a 'From sender date' separator"],
        }
    writer: ChildWriter | None = None
    pending = bytearray()
    number = 0
    at_line_start, after_blank = True, True

    def finish() -> None:
        if writer is not None:
            writer.write(pending)
            pending.clear()
            writer.keep()

    try:
        with context.path.open("rb") as handle:
            while line := handle.readline(MAX_LINE):
                if at_line_start and after_blank and line.startswith(b"From ") and SEPARATOR.match(line):
                    finish()
                    number += 1
                    context.extraction.members = number
                    writer = context.child_writer(message_name(number))
                elif writer is not None:
                    pending += line
                    if len(pending) >= FLUSH_BYTES:
                        writer.write(pending)
                        pending.clear()
                ended = line.endswith(b"\n")
                after_blank = at_line_start and line in BLANK_LINES
                at_line_start = ended
            finish()
    except BaseException:
        if writer is not None and not writer.handle.closed:
            writer.drop()
        raise
    return {"metadata": {"email": {"mbox_messages": number}}}


ANALYZER = Analyzer(name="mbox", version="1", run=extract, accepts=("Email/MBOX",), extracts=True)
