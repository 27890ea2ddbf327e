"""Acoustic's shared pieces without a sandbox: OAuth caching (real local HTTP server), the BEX
file marker, file selection, definition comparison, and row mapping."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from tap_emailtracking.errors import AuthenticationError, CorruptFileError
from tap_emailtracking.timestamps import LocalTimeFormatter, zone
from tap_emailtracking.transports.files import RemoteFile
from tap_emailtracking.transports.http import HttpPolicy, VendorHttp
from tap_emailtracking.transports.oauth import RefreshTokenAuth
from tap_emailtracking.vendors.acoustic.bex import (
    BexFile,
    Definition,
    FileMarker,
    _channel_view,
    candidates,
    desired_channel,
    settled,
    stamp_of,
)
from tap_emailtracking.vendors.acoustic.rows import RowMapper
from tap_emailtracking.vendors.acoustic.settings import AcousticSettings
from vendor_sandbox.servers.http import HttpServer


class TokenServer:
    """/token hands out numbered tokens; /api accepts only the newest, or answers 401."""

    def __init__(self, expires_in: int = 3600, refuse: bool = False) -> None:
        self.expires_in = expires_in
        self.refuse = refuse
        self.issued = 0
        self.api_calls: list[str] = []

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        if environ["PATH_INFO"] == "/oauth/token":
            if self.refuse:
                start_response("400 Bad Request", [("Content-Type", "application/json")])
                return [b'{"error": "invalid_grant"}']
            self.issued += 1
            body = {"access_token": f"tok-{self.issued}", "expires_in": self.expires_in}
            start_response("200 OK", [("Content-Type", "application/json")])
            return [json.dumps(body).encode()]
        auth = environ.get("HTTP_AUTHORIZATION", "")
        self.api_calls.append(auth)
        if auth != f"Bearer tok-{self.issued}":
            start_response("401 Unauthorized", [])
            return [b""]
        start_response("200 OK", [])
        return [b"ok"]


@pytest.fixture
def token_server() -> Iterator[Callable[..., tuple[TokenServer, RefreshTokenAuth, list[float]]]]:
    servers: list[HttpServer] = []

    def start(**kwargs: Any) -> tuple[TokenServer, RefreshTokenAuth, list[float]]:
        app = TokenServer(**kwargs)
        http = HttpServer(app).start()
        servers.append(http)
        now = [0.0]
        auth = RefreshTokenAuth(
            VendorHttp(vendor="Acoustic", policy=HttpPolicy(max_attempts=1)),
            token_url=f"{http.url}/oauth/token",
            client_id="cid",
            client_secret="csecret",
            refresh_token="rtoken",
            endpoint_setting="acoustic.api_host",
            refused_action="set a new acoustic.refresh_token",
            forbidden_action="check the user's rights",
            clock=lambda: now[0],
        )
        return app, auth, now

    yield start
    for server in servers:
        server.stop()


def test_the_token_is_reused_until_it_nearly_expires(token_server: Any) -> None:
    app, auth, now = token_server(expires_in=3600)
    assert auth.token() == "tok-1"
    now[0] = 3000
    assert auth.token() == "tok-1"
    assert app.issued == 1
    now[0] = 3541  # within the 60 s margin
    assert auth.token() == "tok-2"


def test_a_401_gets_one_fresh_token_and_one_retry(token_server: Any) -> None:
    app, auth, _ = token_server()
    url = auth.token_url.replace("/oauth/token", "/api")
    assert auth.request("GET", url, what="call", stream=None, action="x").text == "ok"
    app.issued += 1  # the server revokes the cached token
    response = auth.request("GET", url, what="call", stream=None, action="x")
    assert response.text == "ok"
    assert app.issued == 3
    assert app.api_calls[-2:] == ["Bearer tok-1", "Bearer tok-3"]


def test_a_refused_refresh_token_is_an_authentication_error_without_secrets(
    token_server: Any,
) -> None:
    _, auth, _ = token_server(refuse=True)
    with pytest.raises(AuthenticationError) as caught:
        auth.token(stream="acoustic_email_events")
    message = str(caught.value)
    assert "invalid_grant" in message
    assert "acoustic.refresh_token" in message
    for secret in ("rtoken", "csecret"):
        assert secret not in message


def test_stamps_are_read_from_names_and_invalid_ones_refused() -> None:
    assert stamp_of("_20240101040000_4.csv") == "20240101040000"
    assert stamp_of("_20240101_040000_4.csv") == "20240101040000"
    assert stamp_of("_20241301040000_4.csv") is None
    assert stamp_of("_2024010104_4.csv") is None


def remote(name: str, size: int = 10, minute: int = 0) -> RemoteFile:
    return RemoteFile(name, size, datetime(2024, 1, 1, 0, minute, tzinfo=timezone.utc))


def test_candidates_are_this_definitions_finished_files() -> None:
    definition = Definition("1", {"type": "Email", "exportFileName": "Acme_"})
    listing = [
        remote("Acme_Email_20240101040000_4.csv"),
        remote("ACME_EMAIL_20240101080000_4.CSV"),  # case-insensitive
        remote("Acme_Email_20240101120000_4.csv.tmp"),  # still being written
        remote("Other_Email_20240101040000_4.csv"),  # another definition
        remote("Acme_Email_notime.csv"),
    ]
    assert sorted(candidates(listing, definition)) == [
        "ACME_EMAIL_20240101080000_4.CSV",
        "Acme_Email_20240101040000_4.csv",
    ]


def test_a_file_that_changes_between_listings_is_not_settled() -> None:
    first = [remote("a.csv", 10), remote("b.csv", 10)]
    second = [remote("a.csv", 10), remote("b.csv", 20)]
    assert settled(first, second) == {"a.csv"}


def test_the_marker_notices_late_files_inside_its_history() -> None:
    marker = FileMarker(history_days=2)
    newest = BexFile("20240110000000", "f10.csv", 1)
    marker.mark_done(newest)
    late = BexFile("20240109000000", "f09.csv", 1)
    ancient = BexFile("20240101000000", "f01.csv", 1)
    assert not marker.is_done(late)  # arrived late, inside the history: still read
    assert marker.is_done(ancient)  # older than the history: assumed read long ago
    marker.mark_done(late)
    assert marker.is_done(late)
    restored = FileMarker.from_state(json.loads(json.dumps(marker.to_state())), 2)
    assert restored.is_done(late)
    assert restored.is_done(newest)
    assert restored.watermark == "20240110000000"


def test_history_is_pruned_as_the_watermark_moves() -> None:
    marker = FileMarker(history_days=1)
    for day in range(1, 6):
        marker.mark_done(BexFile(f"202401{day:02d}000000", f"f{day}.csv", 1))
    assert sorted(marker.done) == ["f4.csv", "f5.csv"]


def settings(**overrides: Any) -> AcousticSettings:
    raw = {
        "client_id": "c",
        "client_secret": "s",
        "refresh_token": "r",
        "contact_source_id": "42",
        **overrides,
    }
    return AcousticSettings.from_config(raw)


def test_a_definition_is_compared_by_content_not_order() -> None:
    mine = desired_channel(
        settings(custom_columns=["A", "B"], event_types=["emailOpen", "emailSend"])
    )
    theirs = json.loads(json.dumps(mine))
    theirs["eventTypes"].reverse()
    theirs["columnNames"].reverse()
    theirs["exportFileFormat"] = "csv"
    assert _channel_view(theirs) == _channel_view(mine)
    theirs["jobFrequency"] = 12
    assert _channel_view(theirs) != _channel_view(mine)


HEADER = ["Email", "RECIPIENT_ID", "code", "timestamp", "eventId", "clickUrl", "Region", "Surprise"]


def mapper(kind: str = "bex", header: list[str] = HEADER) -> RowMapper:
    return RowMapper(
        header,
        kind=kind,
        custom_columns=("Region",),
        formatter=LocalTimeFormatter(zone("America/New_York")),
        file_name="f.csv",
        stream="acoustic_email_events",
    )


def test_bex_rows_keep_custom_and_unknown_columns() -> None:
    record = mapper().record(
        2, ["a@x.com", "77", "emailClick", "2024-01-01T04:12:33Z", "ev-1", "http://x", "EU", "?"]
    )
    assert record["event_id"] == "ev-1"
    assert record["event_type"] == "emailClick"
    assert record["occurred_at"] == "2024-01-01T04:12:33+00:00"
    assert record["custom_columns"] == {"Region": "EU"}
    assert record["extra_columns"] == {"Surprise": "?"}
    assert record["source_line"] == 2


def test_rows_without_an_event_id_get_deterministic_keys() -> None:
    row = ["a@x.com", "77", "emailOpen", "2024-01-01T04:12:33Z", "", "", "", ""]
    first, again = mapper(), mapper()
    keys = [first.record(2, row)["event_id"], first.record(3, row)["event_id"]]
    assert keys[0] != keys[1]  # identical rows: ordinals 0 and 1
    assert [again.record(9, row)["event_id"], again.record(10, row)["event_id"]] == keys


def test_rrde_rows_map_types_and_local_times() -> None:
    rrde = mapper(
        "rrde", ["Recipient Id", "Email", "Event Type", "Event Timestamp", "URL", "Region"]
    )
    record = rrde.record(2, ["77", "a@x.com", "Click Through", "07/04/2024 09:30:00", "u", "EU"])
    assert record["event_type"] == "emailClick"
    assert record["raw_event_type"] == "Click Through"
    assert record["occurred_at"] == "2024-07-04T09:30:00-04:00"
    assert record["event_id"].startswith("rrde:")


def test_a_bad_time_or_a_missing_column_fails_with_the_place() -> None:
    with pytest.raises(CorruptFileError, match="unreadable event time 'yesterday' at line 4"):
        mapper().record(4, ["a", "1", "emailOpen", "yesterday", "e", "", "", ""])
    with pytest.raises(CorruptFileError, match="lacks the 'code' or 'timestamp' column"):
        mapper(header=["Email", "eventId"])


def test_event_times_read_from_a_known_minute_equal_a_full_parse() -> None:
    """The per-minute shortcut for `…Z` times gives exactly what `datetime` gives, or fails."""
    rows = mapper()
    base = datetime(2024, 3, 10, 23, 58, tzinfo=timezone.utc)
    seen = []
    for step in range(0, 3 * 60 * 60, 7):  # minutes and hours, every second digit
        moment = base + timedelta(seconds=step)
        raw = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
        seen.append(rows.occurred_at(raw, 2))
        assert seen[-1] == moment.isoformat(), raw
    assert len(set(seen)) == len(seen)
    for bad in ("2024-03-10T23:58:60Z", "2024-03-10T23:58:6xZ", "2024-03-10T23:58:99Z"):
        with pytest.raises(CorruptFileError, match="unreadable event time"):
            rows.occurred_at(bad, 7)


@pytest.mark.parametrize(
    "header",
    [
        ["code", "timestamp"],
        ["code", "Email", "timestamp"],
        ["Email", "code", "timestamp", "docType"],
    ],
)
def test_files_with_none_one_or_several_known_columns_map_alike(header: list[str]) -> None:
    values = {"Email": "a@x.com", "docType": "HTML", "code": "emailOpen"}
    values["timestamp"] = "2024-01-01T04:12:33Z"
    record = mapper(header=header).record(2, [values[name] for name in header])
    assert record["email"] == ("a@x.com" if "Email" in header else None)
    assert record["doc_type"] == ("HTML" if "docType" in header else None)
    assert record["event_type"] == "emailOpen"
    assert record["occurred_at"] == "2024-01-01T04:12:33+00:00"
    assert record["source_file"] == "f.csv"
    assert set(record) == set(
        mapper().record(2, ["a", "1", "emailOpen", "2024-01-01T04:12:33Z", "e", "", "", ""])
    )


@pytest.mark.parametrize("day", [datetime(2024, 3, 9, 23), datetime(2024, 11, 2, 23)])
def test_local_event_times_of_a_known_hour_equal_a_full_parse(day: datetime) -> None:
    """RRDE's `MM/DD/YYYY HH:MM:SS` (org zone), across a DST change, with and without the cache."""
    warm = mapper("rrde", ["Event Type", "Event Timestamp"])
    for step in range(0, 4 * 60 * 60, 13):
        raw = (day + timedelta(seconds=step)).strftime("%m/%d/%Y %H:%M:%S")
        cold = mapper("rrde", ["Event Type", "Event Timestamp"])  # nothing known: a full parse
        assert warm.occurred_at(raw, 2) == cold.occurred_at(raw, 2), raw
    assert warm.occurred_at("11/03/2024 01:30:00", 2) == "2024-11-03T01:30:00-04:00"  # fold 0
    for bad in ("11/03/2024 01:60:00", "11/03/2024 01:30:6x", "13/03/2024 01:30:00"):
        with pytest.raises(CorruptFileError, match="unreadable event time"):
            warm.occurred_at(bad, 7)
