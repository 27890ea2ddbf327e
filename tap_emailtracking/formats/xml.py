"""Streaming XML that is fast and safe on large, untrusted vendor files.

Exports hold millions of elements, of which a caller needs a few small subtrees (one subscriber,
one job summary) and a few leaf values (ids). `iter_xml_items` runs expat directly and builds
`Element` objects only inside the subtrees asked for, so memory stays flat in the file size and the
parse is about twice as fast as `ElementTree.iterparse` (which builds every element).

Safety: a document with a DTD is refused outright, so no entity can be declared and none can be
expanded (billion laughs, external entities); an undefined entity is a parse error. Any parse error
becomes `CorruptFileError` with the line and column. XML cannot hold NUL (expat refuses the byte
and `&#0;`), so a NUL makes the file malformed.

Size: one text node, tag or comment, and one captured subtree (a subscriber with its events),
may not exceed `Limits.max_field_bytes`. Character data reaches C code only (a list's `append`,
the C `TreeBuilder`), so rather than a Python call per piece of text or per element, three sizes
are checked after each chunk fed to expat: the bytes since the captured subtree began (noted once
per subtree), the text gathered outside subtrees, and the bytes since expat's last event (a token
it is still reading). Whatever is too big is caught within one chunk of the limit.

Depth: expat keeps every open element on its stack (about 130 bytes each: ten million nested
`<a>` cost 1.3 GB), so nesting deeper than `Limits.max_xml_depth` is refused. Outside captured
subtrees the Python handlers already run per element and keep a counter; inside one, the open
elements are the newest child of the newest child... of its root, walked after each chunk (at
most `max_xml_depth` steps, never a Python call per element). Both are checked after each chunk.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Any
from xml.etree.ElementTree import Element, TreeBuilder
from xml.parsers import expat

from tap_emailtracking.errors import CorruptFileError
from tap_emailtracking.limits import Limits

_CHUNK = 1 << 18

# One parsed item: ("tree", tag, subtree) when a captured element closes, ("leaf", tag, text)
# for a tracked leaf, ("end", tag, None) when a tracked structural element closes.
XmlItem = tuple[str, str, Any]


class _RefusedDtdError(Exception):
    """Raised from inside expat when a document declares a DTD."""


def iter_xml_items(
    stream: IO[bytes],
    *,
    capture: frozenset[str],
    leaves: frozenset[str],
    ends: frozenset[str],
    vendor: str,
    stream_name: str | None,
    subject: str,
    limits: Limits | None = None,
    next_run: str | None = None,
) -> Iterator[list[XmlItem]]:
    """Yield the items of a byte stream, a list per chunk read (cheaper than one per item)."""
    bounds = limits or Limits()
    cap = bounds.max_field_bytes
    max_depth = bounds.max_xml_depth
    parser = expat.ParserCreate()
    parser.buffer_text = True
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    out: list[XmlItem] = []
    text: list[str] = []
    # Inside a captured subtree, expat calls the C TreeBuilder's start/data directly (no Python
    # frame per element); only `end_inside` runs Python, to notice when the subtree closes.
    builder = TreeBuilder()
    root: Element | None = None
    capture_start = -1  # byte index where the captured subtree being built began
    depth = 0  # open elements outside captured subtrees, and the captured root itself

    def start_outside(tag: str, attrs: dict[str, str]) -> None:
        nonlocal builder, root, capture_start, depth
        depth += 1
        if tag in capture:
            capture_start = parser.CurrentByteIndex
            builder = TreeBuilder()
            root = builder.start(tag, attrs)
            parser.StartElementHandler = builder.start
            parser.EndElementHandler = end_inside
            parser.CharacterDataHandler = builder.data
        else:
            text.clear()

    def end_inside(tag: str) -> None:
        nonlocal capture_start, depth
        if builder.end(tag) is root:
            depth -= 1
            capture_start = -1
            out.append(("tree", tag, root))
            parser.StartElementHandler = start_outside
            parser.EndElementHandler = end_outside
            parser.CharacterDataHandler = text.append
            text.clear()

    def end_outside(tag: str) -> None:
        nonlocal depth
        depth -= 1
        if tag in leaves:
            out.append(("leaf", tag, "".join(text)))
        elif tag in ends:
            out.append(("end", tag, None))
        text.clear()

    def refuse(*_: object) -> None:
        raise _RefusedDtdError

    parser.StartElementHandler = start_outside
    parser.EndElementHandler = end_outside
    parser.CharacterDataHandler = text.append
    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    fed = 0
    try:
        while True:
            chunk = stream.read(_CHUNK)
            parser.Parse(chunk, not chunk)
            fed += len(chunk)
            if (
                fed - max(parser.CurrentByteIndex, 0) > cap
                or (capture_start >= 0 and fed - capture_start > cap)
                or (text and sum(map(len, text)) > cap)
            ):
                raise bounds.exceeded(
                    "max_field_bytes",
                    f"a text node, tag or record element near line {parser.CurrentLineNumber} "
                    f"is longer than {cap:,} bytes",
                    vendor=vendor,
                    stream=stream_name,
                    subject=subject,
                    next_run=next_run,
                )
            if depth > max_depth or (
                capture_start >= 0 and depth + _open_below(root, max_depth) > max_depth
            ):
                raise bounds.exceeded(
                    "max_xml_depth",
                    f"elements near line {parser.CurrentLineNumber} are nested more than "
                    f"{max_depth:,} deep",
                    vendor=vendor,
                    stream=stream_name,
                    subject=subject,
                    next_run=next_run,
                )
            if out:
                yield out
                out = []
            if not chunk:
                break
    except _RefusedDtdError:
        raise CorruptFileError(
            "the XML declares a DTD, which this tap refuses to parse",
            vendor=vendor,
            stream=stream_name,
            subject=subject,
            action="the file is not a vendor export; check the file site and folder",
        ) from None
    except expat.ExpatError as exc:
        raise CorruptFileError(
            f"malformed XML at line {exc.lineno}, column {exc.offset}: "
            f"{expat.ErrorString(exc.code)}",
            vendor=vendor,
            stream=stream_name,
            subject=subject,
            action="re-run the sync: a new export is requested; if the error repeats, the vendor "
            "produced a broken file, ask them to regenerate it (state was not advanced)",
        ) from None


def _open_below(root: Element | None, most: int) -> int:
    """Levels below `root` along its newest children (where open elements are), up to `most`+1."""
    levels = 0
    element = root
    while element is not None and len(element) and levels <= most:
        element = element[-1]
        levels += 1
    return levels
