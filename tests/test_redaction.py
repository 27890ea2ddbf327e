"""Secrets are scrubbed from the final text of every log line, tracebacks included."""

from __future__ import annotations

import io
import logging

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
