"""Keep secrets out of every byte the tap writes to stderr.

The SDK and libraries log exception messages, tracebacks, config-validation errors (which quote
the offending value) and retry notices. Rather than trusting every call site, the tap registers
every secret it is given and wraps every logging handler's formatter so the *final* text of each
log line, tracebacks included, has those values replaced. Secrets are found by setting name
anywhere in the config (nested vendor objects included) and in the tap's environment variables.

A secret is caught in every spelling it can reach output in: vendors and proxies echo requests
back, so a password may come back URL-encoded (a form body), XML- or HTML-escaped (an envelope),
JSON-escaped, in numeric character references, or base64-encoded (HTTP Basic auth), and in
stacks of these (a URL-encoded XML envelope). Escaping works character by character, so each
character of a secret matches any of its spellings; base64 is matched by the stretch of its
encoding that depends on the secret alone, at each of the three byte alignments.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import os
import re
from collections.abc import Callable, Iterable, Mapping
from functools import cache
from typing import Any
from urllib.parse import quote, quote_plus

from typing_extensions import override

MASK = "***REDACTED***"

# Setting names whose values are secrets, wherever they appear in the config tree.
SECRET_SETTING_NAMES = frozenset(
    {
        "password",
        "file_password",
        "client_secret",
        "refresh_token",
        "access_token",
        "api_key",
        "auth_token",
        "token",
        "md5_key",
        "private_key",
        "secret",
    }
)

_secrets: set[str] = set()
_pattern: re.Pattern[str] | None = None


def is_secret_setting(name: str) -> bool:
    """Say whether a setting name holds a secret."""
    lowered = name.lower()
    return lowered in SECRET_SETTING_NAMES or lowered.endswith(("_password", "_secret", "_token"))


def forget_secrets() -> None:
    """Forget every registered secret (a new run in the same process, as tests do)."""
    global _pattern  # noqa: PLW0603 - one process-wide registry is the point
    _secrets.clear()
    _pattern = None


def register_secrets(values: Iterable[object]) -> None:
    """Add values to the set scrubbed from all log output."""
    global _pattern  # noqa: PLW0603 - one process-wide registry is the point
    added = False
    for value in values:
        if value is None or isinstance(value, bool):
            continue
        text = str(value)
        if text and text not in _secrets:
            _secrets.add(text)
            added = True
    if added:
        # Longest first so a secret that contains another is masked whole.
        ordered = sorted(_secrets, key=len, reverse=True)
        spelled = [_spelled(form) for secret in ordered for form in _forms(secret)]
        _pattern = re.compile("|".join(spelled))


# Character-wise encodings a secret may pass through on its way out (each one, or two stacked).
_ESCAPES: tuple[Callable[[str], str], ...] = (
    lambda c: quote(c, safe=""),
    lambda c: quote(c, safe="").lower(),
    lambda c: quote_plus(c, safe=""),
    lambda c: html.escape(c, quote=True),
    lambda c: html.escape(c, quote=False).replace("'", "&apos;").replace('"', "&quot;"),
    lambda c: "".join(f"&#{ord(x)};" for x in c),
    lambda c: "".join(f"&#x{ord(x):x};" for x in c),
    lambda c: "".join(f"&#x{ord(x):X};" for x in c),
    lambda c: json.dumps(c)[1:-1],
    lambda c: json.dumps(c, ensure_ascii=False)[1:-1].replace("/", "\\/"),
    lambda c: "".join(f"\\u{ord(x):04x}" for x in c),
    lambda c: "".join(f"\\u{ord(x):04X}" for x in c),
    lambda c: repr(c)[1:-1],
)


@cache
def _spellings_of(char: str) -> tuple[str, ...]:
    """Every way one character can be written: itself, each escape, and two escapes stacked."""
    if char.isascii() and char.isalnum():
        return (char,)
    once = {escape(char) for escape in _ESCAPES} | {char}
    twice = {escape(form) for form in once for escape in _ESCAPES}
    return tuple(sorted(once | twice, key=len, reverse=True))


def _spelled(text: str) -> str:
    """A pattern matching `text` with each character in any of its spellings."""
    parts = []
    for char in text:
        forms = _spellings_of(char)
        parts.append(
            re.escape(char) if len(forms) == 1 else "(?:" + "|".join(map(re.escape, forms)) + ")"
        )
    return "".join(parts)


def _forms(secret: str) -> list[str]:
    """The secret and the base64 stretches that give it away, standard and URL-safe."""
    forms = [secret]
    raw = secret.encode("utf-8")
    if len(raw) < 6:
        return forms  # too short for a base64 stretch that could not occur by chance
    for whole in (base64.b64encode(raw), base64.urlsafe_b64encode(raw)):
        forms += [whole.decode("ascii"), whole.decode("ascii").rstrip("=")]
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + raw).decode("ascii")
        # Keep the characters whose six bits all come from the secret.
        first = -(-8 * offset // 6)
        last = 8 * (offset + len(raw)) // 6
        stretch = encoded[first:last]
        forms += [stretch, stretch.replace("+", "-").replace("/", "_")]
    return forms


def secrets_in_config(config: Mapping[str, Any]) -> list[object]:
    """Collect the values of secret settings anywhere in a config tree."""
    found: list[object] = []

    def walk(node: object) -> None:
        if isinstance(node, Mapping):
            for key, value in node.items():
                if is_secret_setting(str(key)) and not isinstance(value, Mapping | list):
                    found.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(config)
    return found


def secrets_in_environment(prefix: str) -> list[str]:
    """Collect secret values the SDK may read from `<PREFIX>_*` environment variables.

    A whole vendor object may be passed as JSON in one variable, so every variable under the
    prefix that names a secret, or that holds JSON with secret keys, counts.
    """
    found: list[str] = []
    for name, value in os.environ.items():
        if not name.startswith(prefix):
            continue
        if is_secret_setting(name[len(prefix) :].lstrip("_").split("__")[-1]):
            found.append(value)
            continue
        if value.startswith("{"):
            try:
                parsed = json.loads(value)
            except ValueError:
                continue
            found.extend(str(v) for v in secrets_in_config({"x": parsed}))
    return found


def redact(text: str) -> str:
    """Replace every registered secret in `text`."""
    if _pattern is None or not text:
        return text
    return _pattern.sub(MASK, text)


class RedactingFormatter(logging.Formatter):
    """Wrap another formatter and scrub its whole output, traceback included."""

    def __init__(self, inner: logging.Formatter | None) -> None:
        super().__init__()
        self.inner = inner or logging.Formatter()

    @override
    def format(self, record: logging.LogRecord) -> str:
        return redact(self.inner.format(record))


def install_log_redaction() -> None:
    """Wrap the formatter of every handler that exists now (root and named loggers)."""
    loggers: list[logging.Logger] = [logging.getLogger()]
    loggers += [
        lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger)
    ]
    for logger in loggers:
        for handler in logger.handlers:
            if not isinstance(handler.formatter, RedactingFormatter):
                handler.setFormatter(RedactingFormatter(handler.formatter))
