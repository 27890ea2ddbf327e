"""Secrets are scrubbed from the final text of every log line, tracebacks included."""

from __future__ import annotations

import base64
import html
import io
import json
import logging
from urllib.parse import quote, quote_plus
from xml.sax.saxutils import escape

import pytest

from tap_emailtracking import redaction


def test_secrets_are_found_by_setting_name_anywhere_in_the_config() -> None:
    config = {
        "start_date": "2024-01-01",
        "exacttarget": {"username": "u", "password": "p-1", "file_password": "p-2"},
        "acoustic": {"client_secret": "p-3", "refresh_token": "p-4", "pod": "1"},
    }
    assert sorted(map(str, redaction.secrets_in_config(config))) == ["p-1", "p-2", "p-3", "p-4"]


def test_log_lines_and_tracebacks_are_redacted() -> None:
    redaction.register_secrets(["hunter2-secret", 31337000])
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("test_redaction")
    logger.addHandler(handler)
    logger.propagate = False
    redaction.install_log_redaction()
    try:
        logger.error("value %s and %s", "hunter2-secret", 31337000)
        try:
            raise ValueError("login with hunter2-secret failed")
        except ValueError:
            logger.exception("boom")
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert "hunter2-secret" not in text
    assert "31337000" not in text
    assert text.startswith(f"value {redaction.MASK} and {redaction.MASK}\n")
    assert "ValueError: login with ***REDACTED*** failed" in text


SECRET = "hunter3 &<pass\"word'>%+/="


@pytest.mark.parametrize(
    "spelling",
    [
        SECRET,
        quote(SECRET),
        quote(SECRET, safe=""),
        quote(SECRET, safe="").lower(),
        quote_plus(SECRET),
        escape(SECRET),
        escape(SECRET, {'"': "&quot;", "'": "&apos;"}),
        html.escape(SECRET),
        "".join(f"&#{ord(c)};" if not c.isalnum() else c for c in SECRET),
        "".join(f"&#x{ord(c):X};" if not c.isalnum() else c for c in SECRET),
        json.dumps(SECRET)[1:-1],
        "".join(f"\\u{ord(c):04x}" if not c.isalnum() else c for c in SECRET),
        quote_plus(escape(SECRET)),  # an XML envelope in a form body
        json.dumps(quote(SECRET))[1:-1],
        base64.b64encode(SECRET.encode()).decode(),
        base64.urlsafe_b64encode(SECRET.encode()).decode().rstrip("="),
    ],
)
def test_every_spelling_of_a_secret_is_masked(spelling: str) -> None:
    redaction.register_secrets([SECRET])
    assert redaction.redact(f"seen: {spelling}.") == f"seen: {redaction.MASK}."


@pytest.mark.parametrize("user", ["u", "us", "usr", "a-longer-user"])
def test_a_secret_inside_base64_is_masked_at_every_alignment(user: str) -> None:
    """HTTP Basic auth: base64 of `user:secret`, whatever the user's length."""
    redaction.register_secrets([SECRET])
    basic = base64.b64encode(f"{user}:{SECRET}".encode()).decode()
    masked = redaction.redact(f"Authorization: Basic {basic}")
    assert masked.count(redaction.MASK) == 1
    # Left around the mask: the user's part and at most a few characters of mixed bits.
    left = masked.replace(redaction.MASK, "")
    assert len(left) <= len("Authorization: Basic ") + (len(user) + 1) * 4 // 3 + 4


def test_short_or_plain_text_is_not_masked_by_accident() -> None:
    redaction.register_secrets([SECRET])
    text = "hunter3 went home & came back; 100% + 2 = /x"
    assert redaction.redact(text) == text
