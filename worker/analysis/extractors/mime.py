"""MIME message extractor (stdlib email): every attachment and body part; nested messages as children.

Each leaf part becomes a child under its filename, or under a name for its role when it has
none (`body.txt`, `body.html`, `part-3.bin`); a message/rfc822 part becomes one child
(`message.eml`) that the engine analyzes as a message in turn. The stdlib parser holds the
whole message, so messages above `MAX_MESSAGE_BYTES` are refused with an error item.
"""

from __future__ import annotations

import mimetypes
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from pathlib import PurePosixPath
from typing import Any

from worker.analysis.context import Analyzer, FileContext, Findings

MAX_MESSAGE_BYTES = 64 * 1024**2
# Parts visited per message; the children limit usually stops a part bomb well before.
MAX_PARTS = 10_000
MAX_HEADER_CHARS = 256
BODY_NAMES = {"text/plain": "body.txt", "text/html": "body.html", "text/calendar": "invite.ics"}
SUMMARY_HEADERS = ("subject", "from", "to", "cc", "date", "message-id", "reply-to", "return-path")


class PartNames:
    """Unique reported names for the parts of one message (`body.txt`, `body-2.txt`...)."""

    def __init__(self) -> None:
        self.seen: dict[str, int] = {}

    def unique(self, name: str) -> str:
        count = self.seen.get(name, 0) + 1
        self.seen[name] = count
        if count == 1:
            return name
        path = PurePosixPath(name)
        return f"{path.stem}-{count}{path.suffix}" if path.suffix else f"{name}-{count}"


def part_name(part: Message, number: int) -> str:
    try:
        filename = part.get_filename()
    except (ValueError, LookupError, TypeError):  # undecodable RFC 2231 / encoded words
        filename = None
    if filename:
        return str(filename)
    content_type = part.get_content_type()
    if content_type in BODY_NAMES:
        return BODY_NAMES[content_type]
    if content_type == "message/rfc822":
        return "message.eml"
    extension = mimetypes.guess_extension(content_type, strict=False) or ".bin"
    return f"part-{number}{extension}"


def header_summary(message: Message) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for name in SUMMARY_HEADERS:
        try:
            value = message.get(name)
        except (ValueError, LookupError, TypeError, IndexError):  # a header the parser cannot decode
            continue
        if value is not None:
            summary[name.replace("-", "_")] = str(value)[:MAX_HEADER_CHARS]
    return summary


def nested_message_bytes(part: Message) -> bytes | None:
    payload = part.get_payload()
    inner = payload[0] if isinstance(payload, list) and payload else None
    if isinstance(inner, Message):
        return inner.as_bytes(policy=policy.default)
    # A message/rfc822 part that the parser kept as text (a transfer encoding it does not unwrap).
    decoded = part.get_payload(decode=True)
    return decoded if isinstance(decoded, bytes) else None


def extract_part(
    context: FileContext,
    part: Message,
    is_top: bool,
    number: int,
    names: PartNames,
    stack: list[Message],
    attachments: list[str],
) -> None:
    """Emit one part as a child, or queue its subparts (a nested message is one child)."""
    if part.get_content_type() == "message/rfc822" and not is_top:
        context.extraction.members += 1
        data = nested_message_bytes(part)
        if data:
            context.extract(names.unique(part_name(part, number)), data, len(data))
        return
    if part.is_multipart():
        children = part.get_payload()
        if isinstance(children, list):
            # Reversed onto the stack so that parts come out in document order.
            stack.extend(child for child in reversed(children) if isinstance(child, Message))
        return
    context.extraction.members += 1
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes) or not payload:
        return
    name = names.unique(part_name(part, number))
    if part.get_content_disposition() == "attachment" or part.get_content_type() not in BODY_NAMES:
        attachments.append(name)
    context.extract(name, payload, len(payload))


def extract(context: FileContext) -> Findings:
    if context.size > MAX_MESSAGE_BYTES:
        return {"errors": [f"message of {context.size} bytes not parsed (limit {MAX_MESSAGE_BYTES} bytes)"]}
    with context.path.open("rb") as handle:
        message = BytesParser(policy=policy.default).parse(handle)
    names = PartNames()
    defects: list[str] = []
    attachments: list[str] = []
    errors: list[str] = []
    stack: list[Message] = [message]
    visited = 0
    while stack:
        part = stack.pop()
        visited += 1
        if visited > MAX_PARTS:
            errors.append(f"more than {MAX_PARTS} MIME parts: the rest were not visited")
            break
        context.check_time("reading MIME parts")
        try:
            extract_part(context, part, part is message, visited, names, stack, attachments)
        finally:
            # Decoding a part's payload records its defects (bad base64...) on the part.
            defects.extend(type(defect).__name__ for defect in part.defects)
    summary = header_summary(message)
    summary["parts"] = visited
    if attachments:
        summary["attachments"] = attachments[:100]
    findings: Findings = {"metadata": {"email": summary}}
    if defects:
        unique = sorted(set(defects))
        errors.append(f"malformed MIME structure: {', '.join(unique[:10])}")
    if errors:
        findings["errors"] = errors
    if isinstance(message, EmailMessage) and summary.get("subject"):
        findings["story"] = [f"The message's subject is {summary['subject']!r}."]
    return findings


ANALYZER = Analyzer(name="mime", version="1", run=extract, accepts=("Email/EML",), extracts=True)
