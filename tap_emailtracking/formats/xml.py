"""Streaming XML that is safe on untrusted vendor files.

Files are parsed incrementally (`XMLPullParser`), so callers see elements as they close and must
clear what they have used; memory then stays flat in the file size. Documents with a DTD are refused
outright: without a DTD no entity can be declared, so no entity expansion (billion laughs, external
entities) can happen. A parse error becomes `CorruptFileError` with the line and column.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import IO
from xml.etree.ElementTree import Element, ParseError, XMLPullParser

from tap_emailtracking.errors import CorruptFileError

_CHUNK = 1 << 18
_DOCTYPE = re.compile(rb"<!DOCTYPE", re.IGNORECASE)
_ROOT_START = re.compile(rb"<[A-Za-z_]")


def iter_xml_events(
    stream: IO[bytes],
    *,
    vendor: str,
    stream_name: str | None,
    subject: str,
    events: tuple[str, ...] = ("start", "end"),
) -> Iterator[tuple[str, Element]]:
    """Yield `(event, element)` pairs from a byte stream."""
    parser = XMLPullParser(events=events)
    prolog_checked = False
    pending = b""
    try:
        while True:
            chunk = stream.read(_CHUNK)
            if not prolog_checked:
                pending += chunk
                root = _ROOT_START.search(pending)
                if root is None and chunk:
                    continue
                head = pending if root is None else pending[: root.start()]
                if _DOCTYPE.search(head):
                    raise CorruptFileError(
                        f"{subject} declares a DTD, which this tap refuses to parse",
                        vendor=vendor,
                        stream=stream_name,
                        subject=subject,
                        action="the export is not a vendor export; check the file site and folder",
                    )
                prolog_checked = True
                chunk, pending = pending, b""
            if not chunk:
                break
            parser.feed(chunk)
            yield from parser.read_events()
        parser.close()
        yield from parser.read_events()
    except ParseError as exc:
        line, column = getattr(exc, "position", (0, 0))
        raise CorruptFileError(
            f"malformed XML in {subject} at line {line}, column {column}",
            vendor=vendor,
            stream=stream_name,
            subject=subject,
            action="re-run the sync to download the export again; if the error repeats, the "
            "vendor produced a broken file: ask them to regenerate it (state was not advanced)",
        ) from None
