"""Limits on what one vendor file may expand to, so a hostile or broken export stays small.

A 2 MB ZIP can expand to gigabytes, one XML text node or one delimited line can be a whole file,
and a few MB of `<a>` nest millions of elements deep.
Every container and parser checks these limits as it streams; crossing one is a damaged result
(`CorruptFileError` naming the limit and its setting), so the job is forgotten and the next run
asks for a new export. The defaults sit far above what real exports need.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from decimal import Decimal
from typing import Any

from singer_sdk import typing as th

from tap_emailtracking.errors import ConfigurationError, CorruptFileError

GIB = 1 << 30
MIB = 1 << 20


@dataclass(frozen=True)
class Limits:
    """Expansion limits applied to every downloaded result, whatever the vendor."""

    max_member_bytes: int = 64 * GIB
    max_expansion_ratio: float = 500.0
    max_field_bytes: int = 1 * MIB
    max_line_bytes: int = 4 * MIB
    max_xml_depth: int = 100

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Limits:
        """The limits set at the top level of the config (each positive, at most 2**62).

        The upper bound is far above any disk; a larger value overflowed mid-sync.
        """
        most = 1 << 62
        values: dict[str, Any] = {}
        for item in fields(cls):
            raw = config.get(item.name)
            if raw is None:
                continue
            number = (
                raw
                if isinstance(raw, int)
                else float(raw)
                if isinstance(raw, float | Decimal)
                else -1
            )
            if isinstance(raw, bool) or not 0 < number <= most:  # NaN too
                raise ConfigurationError(
                    f"{item.name} is {raw!r}, not a positive number up to 2**62",
                    vendor="tap-emailtracking",
                    action=f"set {item.name} to a positive number up to 2**62 or leave it out "
                    f"(default {getattr(cls, item.name)!r})",
                )
            values[item.name] = float(raw) if item.name == "max_expansion_ratio" else int(raw)
        return cls(**values)

    def exceeded(
        self,
        setting: str,
        what: str,
        *,
        vendor: str,
        stream: str | None,
        subject: str,
        next_run: str | None = None,
    ) -> CorruptFileError:
        """The error for a result that crossed a limit: damaged, so its job is forgotten.

        `next_run` says what the next run does with this result when it is not a job that is
        requested again (a standing export's file is read again).
        """
        return CorruptFileError(
            f"{what}, over the limit {setting}={getattr(self, setting)!r}",
            vendor=vendor,
            stream=stream,
            subject=subject,
            action=f"{next_run or 'the export is requested again on the next run'}; if the file "
            f"is genuine, raise {setting} in the config",
        )


LIMIT_PROPERTIES = [
    th.Property(
        "max_member_bytes",
        th.IntegerType,
        default=Limits.max_member_bytes,
        description="Largest expanded size of one result file or archive member, in bytes "
        "(default 64 GiB). A larger one is treated as a damaged export.",
    ),
    th.Property(
        "max_expansion_ratio",
        th.NumberType,
        default=Limits.max_expansion_ratio,
        description="Largest ratio of expanded to compressed size of a ZIP member or gzip file "
        "(default 500; real exports compress 5-50x; members that expand to under 1 MiB are "
        "exempt). A higher one is treated as a damaged export.",
    ),
    th.Property(
        "max_field_bytes",
        th.IntegerType,
        default=Limits.max_field_bytes,
        description="Largest single XML text node or tag, in bytes, or field of a delimited "
        "file, in characters (default 1 MiB).",
    ),
    th.Property(
        "max_line_bytes",
        th.IntegerType,
        default=Limits.max_line_bytes,
        description="Longest line of a delimited file, in bytes before its line feed, and "
        "longest row whose quoted fields span lines, in bytes (default 4 MiB).",
    ),
    th.Property(
        "max_xml_depth",
        th.IntegerType,
        default=Limits.max_xml_depth,
        description="Deepest nesting of XML elements (default 100; real exports nest under 10).",
    ),
]
