"""What a run skipped, cleaned or repeated, counted as it happens and logged once at the end.

Anything the tap decides not to load, or to load changed (a skipped malformed row, a hostile
file-site entry, a NUL character removed, a job submitted again), is a fact the user must be able
to find without reading every log line. Code anywhere records it with `note`; the tap logs one
summary line per vendor when the sync ends, successful or not.
"""

from __future__ import annotations

import logging
from collections import Counter

LOGGER = logging.getLogger("tap_emailtracking.summary")

_counts: Counter[tuple[str, str]] = Counter()


def note(vendor: str, what: str, count: int = 1) -> None:
    """Count `count` occurrences of `what` (a plural noun phrase) for a vendor."""
    if count:
        _counts[(vendor, what)] += count


def counts() -> dict[tuple[str, str], int]:
    """Everything counted so far in this process."""
    return dict(_counts)


def reset() -> None:
    """Forget every count (a new run in the same process, as tests do)."""
    _counts.clear()


def log_summary() -> None:
    """One WARNING line per vendor that skipped or changed anything; nothing when all was clean."""
    vendors = sorted({vendor for vendor, _ in _counts})
    for vendor in vendors:
        parts = [f"{n} {what}" for (v, what), n in sorted(_counts.items()) if v == vendor]
        LOGGER.warning("%s: end-of-run summary: %s", vendor, ", ".join(parts))
