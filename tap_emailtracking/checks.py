"""Checks every vendor's settings share, run when the tap starts, before any data moves.

A bad setting found after an hour of syncing another vendor, or as a raw library error, wastes a
run and explains nothing. `SettingsReader` reads one config object (the top level or a vendor's)
and turns each value into its type while checking it: bounds, ports, URLs, time zones, files that
must exist, folders. A wrong value is a `ConfigurationError` naming the full setting and what to
set, never a ValueError from deep inside a library. Unknown keys are warned about by name, with
the nearest known key, because a misspelt `pasword` would otherwise be silently ignored.
"""

from __future__ import annotations

import difflib
import logging
import math
import os
from collections.abc import Iterable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tap_emailtracking.errors import ConfigurationError
from tap_emailtracking.timestamps import zone

LOGGER = logging.getLogger("tap_emailtracking.checks")

# Upper bounds for settings that name none: a huge value passes a lower bound, then overflows a
# date or a buffer mid-sync, after records went out. Each is far above any real need.
INTEGER_MAX = 2**53  # the largest whole number every JSON reader keeps exactly
DAYS_MAX = 36_500  # a `*_days` setting: a century
SECONDS_MAX = 366 * 86_400  # a duration: a year


def warn_unknown_keys(raw: Mapping[str, Any], known: Iterable[str], prefix: str = "") -> list[str]:
    """Warn once per key the tap does not know (with the nearest known one); return them."""
    names = sorted(known)
    unknown = sorted(str(key) for key in raw if key not in names)
    for key in unknown:
        nearest = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
        hint = f"; did you mean {prefix}{nearest[0]}?" if nearest else ""
        LOGGER.warning("tap-emailtracking: unknown setting %s%s is ignored%s", prefix, key, hint)
    return unknown


def _number(value: object) -> float | None:
    """A JSON number as a float (the SDK reads decimals as Decimal); None for anything else."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        return None
    try:
        return float(value)
    except OverflowError:  # an integer beyond any float
        return math.inf


class SettingsReader:
    """Typed, checked values of one config object; errors name `<prefix><setting>`."""

    def __init__(self, raw: Mapping[str, Any], *, vendor: str, prefix: str = "") -> None:
        if not isinstance(raw, Mapping):
            raise ConfigurationError(
                f"the settings of {prefix.rstrip('.') or 'the tap'} are not an object",
                vendor=vendor,
                action=f"set {prefix.rstrip('.')} to a JSON object of settings, or leave it out",
            )
        self.raw = raw
        self.vendor = vendor
        self.prefix = prefix

    def bad(self, name: str, what: str, action: str) -> ConfigurationError:
        """The error for one setting: `<vendor>: <setting> <what>. What to do: <action>`."""
        return ConfigurationError(f"{self.prefix}{name} {what}", vendor=self.vendor, action=action)

    def present(self, name: str) -> bool:
        """The setting is given (null counts as not given)."""
        return self.raw.get(name) is not None

    def text(self, name: str, default: str | None = None, *, required: bool = False) -> str:
        """A string setting; `required` refuses a missing or empty one."""
        value = self.raw.get(name, default)
        if value is None or (required and value == ""):
            raise self.bad(name, "is missing", f"set {self.prefix}{name}")
        if not isinstance(value, str):
            raise self.bad(name, "is not a string", f'set {self.prefix}{name} to a "string"')
        return value

    def optional_text(self, name: str) -> str | None:
        """A string setting that may be left out."""
        return self.text(name) if self.present(name) else None

    def boolean(self, name: str, default: bool) -> bool:
        """true or false, nothing else ("yes" is a typo, not a yes)."""
        value = self.raw.get(name, default)
        if not isinstance(value, bool):
            raise self.bad(
                name,
                f"is {value!r}, not true or false",
                f"set {self.prefix}{name} to true or false",
            )
        return value

    def integer(
        self, name: str, default: int, low: int | None = None, high: int | None = None
    ) -> int:
        """A whole number within `low..high`; `high` defaults to DAYS_MAX or INTEGER_MAX."""
        if high is None:
            high = DAYS_MAX if name.endswith("_days") else INTEGER_MAX
        value = self.raw.get(name, default)
        number = _number(value)
        if not isinstance(value, int) and number is not None and number.is_integer():
            value = int(number)
        within = (
            f"between {low} and {high}"
            if low is not None and high is not None
            else (f"{low} or more" if low is not None else f"{high} or less")
        )
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.bad(
                name,
                f"is {value!r}, not a whole number",
                f"set {self.prefix}{name} to a whole number {within}",
            )
        if (low is not None and value < low) or (high is not None and value > high):
            bounds = f"{'' if low is None else low}..{'' if high is None else high}"
            raise self.bad(
                name,
                f"is {value}, outside {bounds}",
                f"set {self.prefix}{name} to a whole number {within}",
            )
        return value

    def seconds(self, name: str, default: float, *, zero: bool = False) -> float:
        """A duration above zero (a timeout of 0 fails every call at once); `zero` allows 0.

        At most SECONDS_MAX (a year), which also refuses infinity.
        """
        value = _number(self.raw.get(name, default))
        if (
            value is None
            or math.isnan(value)
            or not (value >= 0 if zero else value > 0)
            or value > SECONDS_MAX
        ):
            least = f"{'0 or more' if zero else 'above 0'} and at most {SECONDS_MAX} (a year)"
            raise self.bad(
                name,
                f"is {value!r}, not a number of seconds {least}",
                f"set {self.prefix}{name} to a number of seconds {least}",
            )
        return value

    def choice(self, name: str, default: str, allowed: Iterable[str]) -> str:
        """One of a fixed set of words."""
        options = list(allowed)
        value = self.text(name, default)
        if value not in options:
            raise self.bad(
                name, f"is {value!r}", f"set {self.prefix}{name} to one of {', '.join(options)}"
            )
        return value

    def words(self, name: str, allowed: Iterable[str] | None = None) -> tuple[str, ...] | None:
        """A list of strings (None when left out), each one of `allowed` if given."""
        value = self.raw.get(name)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.bad(
                name,
                "is not a list of strings",
                f'set {self.prefix}{name} to a list like ["a", "b"]',
            )
        options = None if allowed is None else list(allowed)
        wrong = [v for v in value if options is not None and v not in options]
        if wrong and options is not None:
            raise self.bad(
                name, f"holds {wrong[0]!r}", f"use only {', '.join(options)} in {self.prefix}{name}"
            )
        return tuple(value)

    def port(self, name: str, default: int | None = None) -> int | None:
        """A TCP port, 1 to 65535 (None: the protocol's default)."""
        if not self.present(name):
            return default
        return self.integer(name, 0, 1, 65535)

    def url(self, name: str, default: str) -> str:
        """An http(s) URL with a host."""
        value = self.text(name, default)
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - raises ValueError for a port outside 0..65535
        except ValueError:
            parts = None
        if parts is None or parts.scheme not in {"http", "https"} or not parts.hostname:
            raise self.bad(
                name,
                f"is {value!r}, not an http(s) URL",
                f"set {self.prefix}{name} to a URL like https://host/path",
            )
        return value

    def host(self, name: str, default: str) -> str:
        """A host name or address (no scheme, no path)."""
        value = self.text(name, default, required=True)
        if "/" in value or " " in value or not value.strip():
            raise self.bad(
                name,
                f"is {value!r}, not a host name",
                f"set {self.prefix}{name} to a host name like files.example.com",
            )
        return value

    def timezone(self, name: str, default: str) -> str:
        """An IANA time zone name."""
        value = self.text(name, default)
        try:
            zone(value)
        except ValueError:
            raise self.bad(
                name,
                f"{value!r} is not an IANA time zone",
                f"set {self.prefix}{name} to a name like America/Chicago",
            ) from None
        return value

    def existing_file(self, name: str) -> str | None:
        """A path that must name a readable file, when given."""
        value = self.optional_text(name)
        if value is not None and not os.access(Path(value).expanduser(), os.R_OK):
            raise self.bad(
                name,
                f"names {value!r}, which is not a readable file",
                f"create that file or correct {self.prefix}{name}",
            )
        if value is not None and not Path(value).expanduser().is_file():
            raise self.bad(
                name, f"names {value!r}, which is not a file", f"set {self.prefix}{name} to a file"
            )
        return value

    def writable_folder(self, name: str) -> str | None:
        """A local folder the tap can write to, when given."""
        value = self.optional_text(name)
        if value is None:
            return None
        path = Path(value).expanduser()
        if not path.is_dir():
            raise self.bad(
                name,
                f"names {value!r}, which is not an existing folder",
                f"create that folder or correct {self.prefix}{name}",
            )
        if not os.access(path, os.W_OK | os.X_OK):
            raise self.bad(
                name,
                f"names {value!r}, which the tap cannot write to",
                f"give the tap's user write access or correct {self.prefix}{name}",
            )
        return value
