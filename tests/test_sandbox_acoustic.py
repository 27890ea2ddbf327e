"""Tests of the Acoustic sandbox itself: the seeded event generator, the OAuth / BEX REST / XML API
app (through werkzeug's test client), its faults, and its wiring into `Sandbox`."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import tracemalloc
import xml.etree.ElementTree as ET
import zipfile
from collections import Counter
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import paramiko
import pytest
import requests
from werkzeug.test import Client, TestResponse

from vendor_sandbox.acoustic.api import (
    FIRST_DEFINITION_ID,
    FIRST_JOB_ID,
    AcousticApi,
)
from vendor_sandbox.acoustic.data import (
    BEX_COLUMNS,
    EVENT_TYPES,
    MAILING_TYPES,
    RRDE_COLUMNS,
    AcousticDataset,
    AcousticDataSpec,
    bex_file_name,
)
from vendor_sandbox.sandbox import AcousticBexSetup, Sandbox, SandboxCredentials

REPO = Path(__file__).resolve().parents[1]
UTC = timezone.utc
SPEC = AcousticDataSpec()
T0 = datetime(2024, 1, 1, tzinfo=UTC)
DAY2 = T0 + timedelta(days=1)
END = datetime(2024, 1, 8, tzinfo=UTC)
DELIMITERS = {"CSV": ",", "PSV": "|", "TSV": "\t"}
COLUMNS = ("CustomerID", "Region")
CLIENT = {"client_id": "cid", "client_secret": "csecret", "refresh_token": "rtoken"}
ADMIN = "admin@example.com"


# --------------------------------------------------------------------------------- helpers
@pytest.fixture(scope="module")
def dataset() -> AcousticDataset:
    return AcousticDataset(SPEC)


def parse(data: bytes, delimiter: str) -> list[dict[str, str]]:
    """An independent reading of a delimited file: csv.DictReader, header-driven."""
    text = io.StringIO(data.decode("utf-8"), newline="")
    return list(csv.DictReader(text, delimiter=delimiter, strict=True))


def rows_with_lines(data: bytes, delimiter: str) -> list[tuple[int, list[str]]]:
    """Every record (header included) with the physical line where it starts."""
    reader = csv.reader(io.StringIO(data.decode("utf-8"), newline=""), delimiter=delimiter)
    out = []
    while True:
        start = reader.line_num + 1
        try:
            out.append((start, next(reader)))
        except StopIteration:
            return out


def definition(**channel: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "type": "Email",
        "jobFrequency": 4,
        "exportFileName": "Test_Email",
        "exportFileFormat": "CSV",
        "eventTypes": [{"eventType": t} for t in EVENT_TYPES],
        "mailingTypes": [{"mailingType": m} for m in MAILING_TYPES],
        "columnNames": [
            {"columnName": "CustomerID", "columnOrder": 0},
            {"columnName": "Region", "columnOrder": 1},
        ],
    }
    base.update(channel)
    return {"contactSourceId": "423251", "ftpUserId": ADMIN, "channels": [base]}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def api(dataset: AcousticDataset, tmp_path: Path, clock: Clock) -> AcousticApi:
    return AcousticApi(
        dataset,
        tmp_path / "files",
        ftp_user_id=ADMIN,
        ftp_password="admin-pass",
        token_lifetime=600,
        clock=clock,
        **CLIENT,
    )


def token(client: Client) -> str:
    response = client.post("/oauth/token", data={"grant_type": "refresh_token", **CLIENT})
    assert response.status_code == 200, response.text
    return str(response.json["access_token"])


def rest(client: Client, method: str, path: str, tok: str, body: Any = None) -> TestResponse:
    data = None if body is None else json.dumps(body)
    return client.open(
        "/rest/bulkeventexport/jobdefinition" + path,
        method=method,
        data=data,
        headers={"Authorization": f"Bearer {tok}", "Content-Type": "application/json"},
    )


def xml_call(client: Client, tok: str, operation: str, inner: str) -> ET.Element:
    envelope = f"<Envelope><Body><{operation}>{inner}</{operation}></Body></Envelope>"
    response = client.post(
        "/XMLAPI", data={"xml": envelope}, headers={"Authorization": f"Bearer {tok}"}
    )
    assert response.status_code == 200, response.text
    return ET.fromstring(response.data)  # noqa: S314 - our own sandbox's output


def find(root: ET.Element, tag: str) -> str:
    element = root.find(f".//{tag}")
    assert element is not None, ET.tostring(root)
    return element.text or ""


# ------------------------------------------------------------------------- the generator
def test_files_are_deterministic_and_seeded(dataset: AcousticDataset) -> None:
    one = dataset.bex_file_bytes(T0, DAY2, custom_columns=COLUMNS)
    assert one == AcousticDataset(SPEC).bex_file_bytes(T0, DAY2, custom_columns=COLUMNS)
    other = AcousticDataset(AcousticDataSpec(seed=2)).bex_file_bytes(T0, DAY2)
    assert other != dataset.bex_file_bytes(T0, DAY2)
    zips = [io.BytesIO(), io.BytesIO()]
    for buf in zips:
        dataset.write_rrde_zip(buf, date(2024, 1, 2), date(2024, 1, 2))
    assert zips[0].getvalue() == zips[1].getvalue()


def test_windows_are_half_open_and_additive(dataset: AcousticDataset) -> None:
    whole = [e["eventId"] + e["timestamp"] for e in dataset.events(T0, END)]
    cut = T0 + timedelta(hours=37, minutes=13, seconds=7)
    parts = [e["eventId"] + e["timestamp"] for e in dataset.events(T0, cut)]
    parts += [e["eventId"] + e["timestamp"] for e in dataset.events(cut, END)]
    assert parts == whole
    assert len(whole) == dataset.total_events() == dataset.count_events(T0, END)
    edges = sum(1 for e in dataset.events(T0, END) if not e["eventId"][:1].isdigit())
    assert dataset.total_events() == 7 * 24 * SPEC.events_per_hour + edges
    stamps = [e["timestamp"] for e in dataset.events(T0, END)]
    assert stamps == sorted(stamps)
    assert stamps[0] == "2024-01-01T00:00:00Z"
    assert stamps[-1] == "2024-01-07T23:59:59Z"
    # Outside the data range there is nothing.
    assert list(dataset.events(T0 - timedelta(days=3), T0)) == []
    assert list(dataset.events(END, END + timedelta(days=1))) == []


def test_rotation_boundary_event_belongs_to_the_later_period(dataset: AcousticDataset) -> None:
    before = list(dataset.events(DAY2 - timedelta(hours=4), DAY2))
    after = list(dataset.events(DAY2, DAY2 + timedelta(hours=4)))
    assert before[-1]["timestamp"] == "2024-01-01T23:59:59Z"
    assert after[0]["timestamp"] == "2024-01-02T00:00:00Z"
    assert after[0]["code"] == "emailClick"


def test_events_use_the_vendor_vocabulary(dataset: AcousticDataset) -> None:
    events = list(dataset.events(T0, END))
    assert set(events[0]) == {*BEX_COLUMNS, *SPEC.custom_columns}
    codes = Counter(e["code"] for e in events)
    assert set(codes) == set(EVENT_TYPES)
    assert codes["emailSend"] > codes["emailOpen"] > codes["emailClick"] > codes["emailOptOut"]
    assert {e["sendType"] for e in events} == set(MAILING_TYPES)
    for e in events:
        assert e["timestamp"].endswith("Z")
        datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00"))
        assert (e["userAgent"] != "") == (e["code"] in ("emailOpen", "emailClick"))
        assert (e["clickUrl"] != "") == (e["code"] == "emailClick")
        assert (e["bounceType"] != "") == (e["code"] == "emailBounce")
        assert (e["optOutDetails"] != "") == (e["code"] == "emailOptOut")
        assert (e["programId"] != "") == (e["sendType"] == "Programs")
        assert e["Email"]
        assert e["RECIPIENT_ID"].isdigit()
        assert e["messageId"].isdigit()
    ids = [e["eventId"] for e in events if e["eventId"]]
    assert len(ids) == len(set(ids))


def test_edge_cases_are_present(dataset: AcousticDataset) -> None:
    events = list(dataset.events(T0, END))
    empty = [e for e in events if not e["eventId"]]
    assert len(empty) == 5
    keys = Counter(tuple(sorted(e.items())) for e in empty)
    assert sorted(keys.values()) == [1, 1, 1, 2]  # two identical rows
    texts = [v for e in events for v in e.values()]
    assert any("," in t and "|" in t and "\t" in t for t in texts)
    assert any('"' in t for t in texts)
    assert any("\r\n" in t for t in texts)
    assert any("\n" in t and "\r" not in t for t in texts)
    assert any("é" in t for t in texts)
    assert any("🎉" in t for t in texts)
    assert any("ë" in e["Email"] for e in events)
    # RRDE day boundary: New York midnight of day 2 (05:00Z) and the second before.
    stamps = {e["timestamp"] for e in events}
    assert {"2024-01-02T04:59:59Z", "2024-01-02T05:00:00Z"} <= stamps
    plain = AcousticDataset(AcousticDataSpec(edge_cases=False))
    assert plain.total_events() == 7 * 24 * SPEC.events_per_hour
    assert all(e["eventId"] for e in plain.events(T0, END))


@pytest.mark.parametrize("fmt", ["CSV", "PSV", "TSV"])
def test_files_round_trip_through_the_csv_module(dataset: AcousticDataset, fmt: str) -> None:
    columns = ("Region", "NotInTheDatabase", "CustomerID")
    data = dataset.bex_file_bytes(T0, DAY2, fmt=fmt, custom_columns=columns)
    assert not data.startswith(b"\xef\xbb\xbf")
    assert data.count(b"\r\n") >= dataset.count_events(T0, DAY2) + 1
    first = data.split(b"\r\n", 1)[0].decode()
    assert first.split(DELIMITERS[fmt]) == [*BEX_COLUMNS, *columns]
    rows = parse(data, DELIMITERS[fmt])
    truth = dataset.bex_truth(T0, DAY2, custom_columns=columns)
    assert rows == truth
    assert len(rows) == dataset.count_events(T0, DAY2)
    assert {r["NotInTheDatabase"] for r in rows} == {""}
    assert any(DELIMITERS[fmt] in r["Region"] for r in rows)  # a quoted custom value
    # What csv.writer would write, byte for byte.
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, delimiter=DELIMITERS[fmt], lineterminator="\r\n")
    writer.writerow([*BEX_COLUMNS, *columns])
    writer.writerows([list(r.values()) for r in truth])
    assert buf.getvalue().encode() == data


def test_filters_keep_the_same_events(dataset: AcousticDataset) -> None:
    everything = list(dataset.events(T0, DAY2))
    opens = list(dataset.events(T0, DAY2, event_types=["emailOpen", "emailClick"]))
    assert opens == [e for e in everything if e["code"] in ("emailOpen", "emailClick")]
    programs = list(dataset.events(T0, DAY2, mailing_types=["Programs"]))
    assert programs == [e for e in everything if e["sendType"] == "Programs"]
    with pytest.raises(ValueError, match="unknown event types"):
        list(dataset.events(T0, DAY2, event_types=["emailForward"]))


def test_rrde_rows_re_express_the_events(dataset: AcousticDataset) -> None:
    day = date(2024, 1, 3)
    rows = dataset.rrde_truth(day, day, custom_columns=("CustomerID",))
    # New York is UTC-5 in January: the local day is [05:00Z, next day 05:00Z).
    lo = datetime(2024, 1, 3, 5, tzinfo=UTC)
    events = list(dataset.events(lo, lo + timedelta(days=1)))
    assert len(rows) == len(events)
    words = {
        "emailSend": {"Sent"},
        "emailOpen": {"Open"},
        "emailClick": {"Click Through"},
        "emailBounce": {"Hard Bounce", "Soft Bounce"},
        "emailOptOut": {"Opt Out"},
        "emailSuppressed": {"Suppressed"},
    }
    for row, event in zip(rows, events, strict=True):
        assert list(row) == [*RRDE_COLUMNS, "CustomerID"]
        assert row["Recipient Id"] == event["RECIPIENT_ID"]
        assert row["Mailing Id"] == event["messageId"]
        assert row["Report Id"] == event["reportId"]
        assert row["Email"] == event["Email"]
        assert row["URL"] == event["clickUrl"]
        assert row["Click Name"] == event["urlDescription"]
        assert row["CustomerID"] == event["CustomerID"]
        assert row["Event Type"] in words[event["code"]]
        utc = datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00"))
        local = (utc - timedelta(hours=5)).strftime("%m/%d/%Y %H:%M:%S")
        assert row["Event Timestamp"] == local
        assert (row["Suppression Reason"] != "") == (event["code"] == "emailSuppressed")
    # Whole days, inclusive: day 2 starts exactly at the local-midnight edge case.
    day2 = dataset.rrde_truth(date(2024, 1, 2), date(2024, 1, 2))
    assert day2[0]["Event Timestamp"] == "01/02/2024 00:00:00"
    day1 = dataset.rrde_truth(date(2024, 1, 1), date(2024, 1, 1))
    assert day1[-1]["Event Timestamp"] == "01/01/2024 23:59:59"
    bounces = dataset.rrde_truth(date(2024, 1, 1), date(2024, 1, 7), event_types=["Hard Bounce"])
    assert bounces
    assert {r["Event Type"] for r in bounces} == {"Hard Bounce"}
    other_zone = dataset.rrde_truth(day, day, tz="Europe/Paris")
    assert other_zone != dataset.rrde_truth(day, day)


def test_rrde_zip_holds_one_csv_equal_to_the_truth(dataset: AcousticDataset) -> None:
    buf = io.BytesIO()
    count = dataset.write_rrde_zip(
        buf,
        date(2024, 1, 1),
        date(2024, 1, 7),
        custom_columns=COLUMNS,
        member_name="Raw Recipient Data Export 1.csv",
    )
    with zipfile.ZipFile(buf) as zf:
        assert zf.namelist() == ["Raw Recipient Data Export 1.csv"]
        assert zf.testzip() is None
        data = zf.read("Raw Recipient Data Export 1.csv")
    rows = parse(data, ",")
    assert rows == dataset.rrde_truth(date(2024, 1, 1), date(2024, 1, 7), custom_columns=COLUMNS)
    assert count == len(rows)
    # The first 5 UTC hours are still 12/31 in New York: not in a Jan 1..7 export.
    assert count == dataset.count_events(datetime(2024, 1, 1, 5, tzinfo=UTC), END)


def test_malformed_row_is_at_the_recorded_line(dataset: AcousticDataset, tmp_path: Path) -> None:
    # Hour 1 holds rows with quoted line breaks, so lines and records differ.
    path = tmp_path / "bad.csv"
    result = dataset.write_bex_file(path, T0, DAY2, custom_columns=COLUMNS, malformed=True)
    records = rows_with_lines(path.read_bytes(), ",")
    width = len(BEX_COLUMNS) + len(COLUMNS)
    bad = [(line, fields) for line, fields in records if len(fields) != width]
    assert len(bad) == 1
    assert bad[0][0] == result.malformed_line
    assert records[-1][0] > len(records)  # there are multi-line records before the end
    assert result.rows == dataset.count_events(T0, DAY2) == len(records) - 2
    good = [dict(zip(records[0][1], f, strict=True)) for _, f in records[1:] if len(f) == width]
    assert good == dataset.bex_truth(T0, DAY2, custom_columns=COLUMNS)


def test_row_offsets_cut_the_file_into_records(dataset: AcousticDataset, tmp_path: Path) -> None:
    path = tmp_path / "f.tsv"
    result = dataset.write_bex_file(path, T0, T0 + timedelta(hours=4), fmt="TSV", track_rows=True)
    data = path.read_bytes()
    offsets = result.row_offsets
    assert offsets[0] == 0
    assert offsets[-1] == len(data) == result.size
    assert len(offsets) == result.rows + 2
    for k in range(1, len(offsets)):
        piece = data[: offsets[k]]
        assert piece.endswith(b"\r\n")
        assert len(rows_with_lines(piece, "\t")) == k


def test_sized_files_are_fast_and_flat(tmp_path: Path) -> None:
    # Speed and resident memory at full size, in a clean child process.
    script = """
import json, resource, sys, time
from pathlib import Path
from datetime import date
from vendor_sandbox.acoustic.data import AcousticDataset
ds = AcousticDataset.sized(400_000)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
bex = ds.write_bex_file(Path(sys.argv[1]), ds.t0, ds.data_end, custom_columns=("CustomerID",))
t1 = time.perf_counter()
rrde = ds.write_rrde_zip(Path(sys.argv[2]), date(2023, 12, 31), date(2024, 1, 8))
t2 = time.perf_counter()
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"bex": bex.rows, "bex_s": t1 - t0, "rrde": rrde, "rrde_s": t2 - t1,
                  "grew_kb": after - before}))
"""
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "big.csv"), str(tmp_path / "big.zip")],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    result = json.loads(done.stdout)
    assert 390_000 <= result["bex"] <= 410_000
    assert result["rrde"] == result["bex"]
    # Floors an order of magnitude under the usual ~400k (BEX) and ~220k (RRDE) rows/s, so a
    # busy 2-core machine passes; the figures themselves are measured by the benchmarks.
    assert result["bex"] / result["bex_s"] > 40_000, result
    assert result["rrde"] / result["rrde_s"] > 25_000, result
    assert result["grew_kb"] < 50 * 1024, result

    small = AcousticDataset.sized(20_000)
    tracemalloc.start()
    small.write_bex_file(tmp_path / "small.csv", small.t0, small.data_end)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 5 * 1024 * 1024


# ------------------------------------------------------------------------------- OAuth
def test_token_grant_and_refusals(api: AcousticApi) -> None:
    client = Client(api)
    response = client.post("/oauth/token", data={"grant_type": "refresh_token", **CLIENT})
    body = response.json
    assert response.status_code == 200
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 600
    assert body["refresh_token"] == CLIENT["refresh_token"]
    assert len(body["access_token"]) >= 32
    assert body["access_token"] != token(client)

    wrong = client.post(
        "/oauth/token", data={"grant_type": "refresh_token", **CLIENT, "refresh_token": "x"}
    )
    assert wrong.status_code == 400
    assert wrong.json["error"] == "invalid_grant"
    client_wrong = client.post(
        "/oauth/token", data={"grant_type": "refresh_token", **CLIENT, "client_secret": "x"}
    )
    assert client_wrong.status_code == 401
    assert client_wrong.json["error"] == "invalid_grant"
    grant = client.post("/oauth/token", data={"grant_type": "password", **CLIENT})
    assert grant.status_code == 400
    assert grant.json["error"] == "unsupported_grant_type"
    api.faults.revoked_refresh_token = True
    revoked = client.post("/oauth/token", data={"grant_type": "refresh_token", **CLIENT})
    assert revoked.status_code == 400
    assert revoked.json["error"] == "invalid_grant"
    assert api.token_requests == 6
    assert all(CLIENT["refresh_token"] not in json.dumps(r) for r in api.requests)


def test_tokens_expire_with_time_and_unknown_tokens_fail(api: AcousticApi, clock: Clock) -> None:
    client = Client(api)
    tok = token(client)
    assert rest(client, "GET", "", tok).status_code == 200
    missing = client.get("/rest/bulkeventexport/jobdefinition")
    assert missing.status_code == 401
    assert missing.json["error"] == "invalid_token"
    assert rest(client, "GET", "", "not-a-token").status_code == 401
    clock.now += 599
    assert rest(client, "GET", "", tok).status_code == 200
    clock.now += 1
    expired = rest(client, "GET", "", tok)
    assert expired.status_code == 401
    assert expired.json["error"] == "invalid_token"
    assert client.post("/XMLAPI", headers={"Authorization": f"Bearer {tok}"}).status_code == 401
    assert rest(client, "GET", "", token(client)).status_code == 200


def test_tokens_die_after_n_calls_and_a_fresh_one_works(api: AcousticApi) -> None:
    client = Client(api)
    api.faults.expire_tokens_after_calls = 2
    tok = token(client)
    assert api.sftp_password_check("oauth", tok)
    assert [rest(client, "GET", "", tok).status_code for _ in range(3)] == [200, 200, 401]
    assert not api.sftp_password_check("oauth", tok)  # dead everywhere
    api.faults.dead_tokens_fail_sftp = False
    assert api.sftp_password_check("oauth", tok)  # ... unless SFTP is told to ignore it
    api.faults.dead_tokens_fail_sftp = True
    fresh = token(client)
    assert rest(client, "GET", "", fresh).status_code == 200
    assert api.sftp_password_check("oauth", fresh)
    api.expire_tokens()
    assert rest(client, "GET", "", fresh).status_code == 401


def test_sftp_logins(api: AcousticApi) -> None:
    tok = token(Client(api))
    assert api.sftp_password_check("oauth", tok)
    assert api.sftp_oauth_logins == 1
    assert not api.sftp_password_check("oauth", "guess")
    assert api.sftp_password_check("Admin@Example.com", "admin-pass")
    assert not api.sftp_password_check(ADMIN, "nope")
    assert not api.sftp_password_check("someone@example.com", "admin-pass")


# ------------------------------------------------------------------------- definitions
def test_definition_crud(api: AcousticApi) -> None:
    client = Client(api)
    tok = token(client)
    assert rest(client, "GET", "", tok).json == []
    created = rest(client, "POST", "", tok, definition(exportFileFormat="psv"))
    assert created.status_code == 200
    assert created.json == {"jobId": FIRST_DEFINITION_ID}
    listed = rest(client, "GET", "/", tok).json
    assert len(listed) == 1
    stored = listed[0]
    assert stored["id"] == FIRST_DEFINITION_ID
    assert stored["contactSourceId"] == "423251"
    assert stored["channels"][0]["exportFileFormat"] == "PSV"
    assert rest(client, "GET", f"/{FIRST_DEFINITION_ID}", tok).json == stored

    body = definition(jobFrequency="6", exportFileName="")
    updated = rest(client, "PUT", f"/{FIRST_DEFINITION_ID}", tok, {**body, "id": 5001})
    assert updated.status_code == 200
    channel = updated.json["channels"][0]
    assert channel["jobFrequency"] == 6
    assert channel["exportFileName"] == "Recipient Event Bulk Export_"
    assert api.definition_posts == 1
    assert api.definition_puts == 1

    assert rest(client, "DELETE", f"/{FIRST_DEFINITION_ID}", tok).status_code == 200
    assert rest(client, "GET", f"/{FIRST_DEFINITION_ID}", tok).status_code == 404
    again = rest(client, "POST", "", tok, definition())
    assert again.json == {"jobId": FIRST_DEFINITION_ID + 1}


@pytest.mark.parametrize(
    ("channel", "status", "message"),
    [
        ({"jobFrequency": 5}, 422, "jobFrequency 5 is invalid"),
        ({"jobFrequency": None}, 400, "jobFrequency is required"),
        ({"exportFileFormat": "XLS"}, 422, "exportFileFormat XLS"),
        ({"type": "SMS"}, 422, "only Email"),
        ({"eventTypes": [{"eventType": "emailForward"}]}, 422, "eventType emailForward"),
        ({"mailingTypes": [{"mailingType": "Transactional"}]}, 422, "mailingType Transactional"),
        (
            {"columnNames": [{"columnName": f"c{i}", "columnOrder": i % 5} for i in range(6)]},
            422,
            "At most 5 columnNames",
        ),
        (
            {
                "columnNames": [
                    {"columnName": "a", "columnOrder": 0},
                    {"columnName": "b", "columnOrder": 0},
                ]
            },
            422,
            "columnOrder values must be distinct",
        ),
        ({"columnNames": [{"columnName": "a", "columnOrder": 5}]}, 422, "columnOrder 5"),
        ({"columnNames": [{"columnName": "a"}]}, 400, "columnOrder is required"),
        ({"exportFileName": "../escape"}, 422, "exportFileName"),
    ],
)
def test_definition_validation(
    api: AcousticApi, channel: dict[str, Any], status: int, message: str
) -> None:
    client = Client(api)
    body = definition(**channel)
    if channel.get("jobFrequency", 0) is None:
        del body["channels"][0]["jobFrequency"]
    response = rest(client, "POST", "", token(client), body)
    assert response.status_code == status, response.json
    assert message in " ".join(e["message"] for e in response.json["errors"])
    assert api.definitions == []


def test_definition_request_errors(api: AcousticApi) -> None:
    client = Client(api)
    tok = token(client)

    def errors(response: TestResponse) -> tuple[int, str]:
        return response.status_code, " ".join(e["message"] for e in response.json["errors"])

    assert errors(rest(client, "POST", "", tok, {"ftpUserId": ADMIN})) == (
        400,
        "contactSourceId is required channels is required (one Email channel)",
    )
    bad_json = client.post(
        "/rest/bulkeventexport/jobdefinition",
        data="{nope",
        headers={"Authorization": f"Bearer {tok}"},
    )
    assert errors(bad_json) == (400, "The body is not valid JSON")
    assert errors(rest(client, "POST", "", tok, {**definition(), "contactSourceId": 9}))[0] == 404
    assert errors(rest(client, "POST", "", tok, {**definition(), "ftpUserId": "x@y.z"}))[0] == 422
    assert errors(rest(client, "POST", "", tok, {**definition(), "id": 7}))[0] == 400
    assert rest(client, "POST", "", tok, definition()).status_code == 200
    assert errors(rest(client, "POST", "", tok, definition()))[0] == 409
    assert errors(rest(client, "PUT", "/5001", tok, definition()))[1] == (
        "id is required in the body of a PUT"
    )
    assert errors(rest(client, "PUT", "/5001", tok, {**definition(), "id": 5002}))[0] == 400
    assert errors(rest(client, "PUT", "/6000", tok, {**definition(), "id": 6000}))[0] == 404
    assert errors(rest(client, "GET", "/abc", tok))[0] == 404
    assert errors(rest(client, "POST", "/5001", tok, definition()))[0] == 405
    assert rest(client, "GET", "", tok).json[0]["id"] == 5001


# --------------------------------------------------------------------------------- BEX files
def test_no_definition_no_files(api: AcousticApi) -> None:
    assert api.rotate_bex_files(END) == []
    assert list(api.download_dir.iterdir()) == []


def test_rotation_writes_named_files_with_the_definitions_settings(
    api: AcousticApi, dataset: AcousticDataset
) -> None:
    api.create_definition(
        definition(
            jobFrequency=6,
            exportFileFormat="TSV",
            eventTypes=[{"eventType": "emailOpen"}, {"eventType": "emailClick"}],
            mailingTypes=[],
            columnNames=[
                {"columnName": "Region", "columnOrder": 1},
                {"columnName": "CustomerID", "columnOrder": 0},
            ],
        )
    )
    written = api.rotate_bex_files(DAY2 + timedelta(hours=2))
    assert written == [
        "Test_EmailEmail_20240101060000_6.tsv",
        "Test_EmailEmail_20240101120000_6.tsv",
        "Test_EmailEmail_20240101180000_6.tsv",
        "Test_EmailEmail_20240102000000_6.tsv",
    ]
    tmp = "Test_EmailEmail_20240102060000_6.tsv.tmp"
    assert sorted(p.name for p in api.download_dir.iterdir()) == sorted([*written, tmp])
    first = api.download_dir / written[0]
    assert first.stat().st_mtime == datetime(2024, 1, 1, 6, tzinfo=UTC).timestamp()
    rows = parse(first.read_bytes(), "\t")
    assert list(rows[0]) == [*BEX_COLUMNS, "CustomerID", "Region"]
    assert {r["code"] for r in rows} == {"emailOpen", "emailClick"}
    truth = api.bex_truth()
    assert list(truth) == written
    for name in written:
        assert parse((api.download_dir / name).read_bytes(), "\t") == truth[name]
    partial = parse((api.download_dir / tmp).read_bytes(), "\t")
    assert partial
    assert all(r["timestamp"] < "2024-01-02T02" for r in partial)

    # The next rotation replaces the .tmp with the finished period; the boundary event is there.
    assert api.rotate_bex_files(DAY2 + timedelta(hours=6)) == [tmp[: -len(".tmp")]]
    assert not (api.download_dir / tmp).exists()
    later = api.bex_truth()[tmp[: -len(".tmp")]]
    assert later[0]["timestamp"] == "2024-01-02T00:00:00Z"
    assert later[0]["code"] == "emailClick"
    # Files stop at the data end; all events of the selected types are delivered once.
    api.rotate_bex_files(END + timedelta(days=3))
    files = api.bex_files()
    assert files[-1].name == "Test_EmailEmail_20240108000000_6.tsv"
    delivered = [r["eventId"] + r["timestamp"] for rows in api.bex_truth().values() for r in rows]
    expected = [
        e["eventId"] + e["timestamp"]
        for e in dataset.events(T0, END, event_types=["emailOpen", "emailClick"])
    ]
    assert delivered == expected
    assert file_name_matches(files[0].name)


def file_name_matches(name: str) -> bool:
    return name == bex_file_name("Test_Email", datetime(2024, 1, 1, 6), 6, "tsv")


def test_definition_creation_rotates_up_to_auto_rotate_until(
    api: AcousticApi, dataset: AcousticDataset
) -> None:
    api.auto_rotate_until = END
    client = Client(api)
    rest(client, "POST", "", token(client), definition(jobFrequency=24, columnNames=[]))
    names = [f.name for f in api.bex_files()]
    assert len(names) == 7
    assert names[0] == "Test_EmailEmail_20240102000000_24.csv"
    rows = [r for rows in api.bex_truth().values() for r in rows]
    assert len(rows) == dataset.total_events()


def test_late_file_arrives_with_an_older_name(api: AcousticApi) -> None:
    api.create_definition(definition())
    late = datetime(2024, 1, 1, 8, tzinfo=UTC)
    api.faults.late_periods.add(late)
    api.rotate_bex_files(DAY2)
    names = [f.name for f in api.bex_files()]
    assert "Test_EmailEmail_20240101120000_4.csv" not in names
    assert len(names) == 5
    newest_mtime = max((api.download_dir / n).stat().st_mtime for n in names)
    name = api.add_late_file(late)
    assert name == "Test_EmailEmail_20240101120000_4.csv"
    assert name < names[-1]
    assert (api.download_dir / name).stat().st_mtime > newest_mtime
    assert [f.name for f in api.bex_files()][2] == name
    assert parse((api.download_dir / name).read_bytes(), ",") == api.bex_truth([name])[name]
    with pytest.raises(ValueError, match="was delivered"):
        api.add_late_file(late)


def test_malformed_row_fault(api: AcousticApi) -> None:
    api.create_definition(definition())
    api.rotate_bex_files(DAY2)
    name = "Test_EmailEmail_20240101040000_4.csv"
    path = api.download_dir / name
    clean = path.read_bytes()
    api.faults.malformed_row_in = name
    api.apply_faults()
    line = api.malformed_lines[name]
    records = rows_with_lines(path.read_bytes(), ",")
    bad = [(n, f) for n, f in records if len(f) != len(records[0][1])]
    assert len(bad) == 1
    assert bad[0][0] == line
    assert len(bad[0][1]) == 4
    assert 2 < line < records[-1][0]
    api.faults.malformed_row_in = None
    api.sftp_access("list", "/download")  # any SFTP access applies the faults
    assert path.read_bytes() == clean
    assert name not in api.malformed_lines


def test_growing_file_fault(api: AcousticApi) -> None:
    api.create_definition(definition())
    api.rotate_bex_files(DAY2)
    name = "Test_EmailEmail_20240102000000_4.csv"
    path = api.download_dir / name
    clean = path.read_bytes()
    api.faults.growing_file = name
    sizes = []
    for _ in range(3):
        api.sftp_access("list", "/download")
        sizes.append(path.stat().st_size)
    api.sftp_access("stat", f"/download/{name}")
    sizes.append(path.stat().st_size)
    api.sftp_access("stat", "/download/other.csv")
    api.sftp_access("list", "/elsewhere")
    assert path.stat().st_size == sizes[-1]
    assert sizes == sorted(set(sizes))
    assert clean.startswith(path.read_bytes())
    assert len(rows_with_lines(path.read_bytes(), ",")) == 6  # header + 1 + 4 accesses
    assert name not in api.bex_truth()
    assert name in api.bex_truth(include_growing=True)
    api.faults.growing_file = None
    api.apply_faults()
    assert path.read_bytes() == clean
    assert name in api.bex_truth()


# --------------------------------------------------------------------------------- XML API
def test_rrde_lifecycle_and_zip(api: AcousticApi, dataset: AcousticDataset) -> None:
    client = Client(api)
    tok = token(client)
    inner = (
        "<EVENT_DATE_START>01/02/2024 00:00:00</EVENT_DATE_START>"
        "<EVENT_DATE_END>01/03/2024 23:59:59</EVENT_DATE_END>"
        "<MOVE_TO_FTP/><EXPORT_FORMAT>0</EXPORT_FORMAT><SENT/><HARD_BOUNCES/><SOFT_BOUNCES/>"
        "<COLUMNS><COLUMN><NAME>Region</NAME></COLUMN></COLUMNS>"
    )
    submitted = xml_call(client, tok, "RawRecipientDataExport", inner)
    assert find(submitted, "SUCCESS") == "TRUE"
    job_id = find(submitted, "JOB_ID")
    file_path = find(submitted, "FILE_PATH")
    assert job_id == str(FIRST_JOB_ID)
    assert file_path == f"Raw Recipient Data Export Jan 08 2024 10-00-00 AM {job_id}.zip"
    statuses = []
    for _ in range(4):
        status = xml_call(client, tok, "GetJobStatus", f"<JOB_ID>{job_id}</JOB_ID>")
        statuses.append(find(status, "JOB_STATUS"))
        assert find(status, "JOB_DESCRIPTION") == "Export raw recipient data."
        if statuses[-1] != "COMPLETE":
            assert not (api.download_dir / file_path).exists()
    assert statuses == ["WAITING", "RUNNING", "COMPLETE", "COMPLETE"]
    assert api.rrde_submissions == 1
    assert api.status_polls == 4
    with zipfile.ZipFile(api.download_dir / file_path) as zf:
        assert zf.namelist() == [file_path[: -len(".zip")] + ".csv"]
        rows = parse(zf.read(zf.namelist()[0]), ",")
    truth = dataset.rrde_truth(
        date(2024, 1, 2),
        date(2024, 1, 3),
        event_types=["Sent", "Hard Bounce", "Soft Bounce"],
        custom_columns=["Region"],
    )
    assert rows == truth
    assert {r["Event Type"] for r in rows} == {"Sent", "Hard Bounce", "Soft Bounce"}
    assert [p.name for p in api.download_dir.iterdir()] == [file_path]

    # A raw text/xml body works too; ALL_EVENT_TYPES and a second job id.
    envelope = (
        "<Envelope><Body><RawRecipientDataExport><EVENT_DATE_START>01/02/2024"
        "</EVENT_DATE_START><EVENT_DATE_END>01/02/2024</EVENT_DATE_END><MOVE_TO_FTP/>"
        "<ALL_EVENT_TYPES/></RawRecipientDataExport></Body></Envelope>"
    )
    raw = client.post(
        "/XMLAPI",
        data=envelope,
        headers={"Authorization": f"Bearer {tok}", "Content-Type": "text/xml"},
    )
    assert find(ET.fromstring(raw.data), "JOB_ID") == str(FIRST_JOB_ID + 1)  # noqa: S314
    job = api.rrde_job(str(FIRST_JOB_ID + 1))
    assert job is not None
    assert job["end"] == datetime(2024, 1, 2, 23, 59, 59)
    assert job["event_words"] == ()


@pytest.mark.parametrize(
    ("operation", "inner", "fault"),
    [
        ("GetJobStatus", "<JOB_ID>1</JOB_ID>", "Job 1 not found"),
        ("DeleteEverything", "", "Unknown API operation: DeleteEverything"),
        (
            "RawRecipientDataExport",
            "<EVENT_DATE_START>2024-01-01</EVENT_DATE_START>"
            "<EVENT_DATE_END>01/02/2024</EVENT_DATE_END><MOVE_TO_FTP/>",
            "EVENT_DATE_START '2024-01-01' is invalid",
        ),
        (
            "RawRecipientDataExport",
            "<EVENT_DATE_START>01/03/2024 00:00:00</EVENT_DATE_START>"
            "<EVENT_DATE_END>01/02/2024 23:59:59</EVENT_DATE_END><MOVE_TO_FTP/>",
            "EVENT_DATE_END is before EVENT_DATE_START",
        ),
    ],
)
def test_xml_faults_are_in_band(api: AcousticApi, operation: str, inner: str, fault: str) -> None:
    client = Client(api)
    root = xml_call(client, token(client), operation, inner)
    assert find(root, "SUCCESS") == "false"
    assert find(root, "FaultString").startswith(fault)
    assert find(root, "errorid").isdigit()


def test_xml_rejects_dtds(api: AcousticApi) -> None:
    client = Client(api)
    document = '<!DOCTYPE x [<!ENTITY a "b">]><Envelope><Body/></Envelope>'
    response = client.post(
        "/XMLAPI", data={"xml": document}, headers={"Authorization": f"Bearer {token(client)}"}
    )
    assert "DTDs" in response.text
    assert "<SUCCESS>false</SUCCESS>" in response.text


def test_rrde_error_fault(api: AcousticApi) -> None:
    client = Client(api)
    tok = token(client)
    inner = (
        "<EVENT_DATE_START>01/02/2024 00:00:00</EVENT_DATE_START>"
        "<EVENT_DATE_END>01/02/2024 23:59:59</EVENT_DATE_END><MOVE_TO_FTP/><ALL_EVENT_TYPES/>"
    )
    job_id = find(xml_call(client, tok, "RawRecipientDataExport", inner), "JOB_ID")
    assert find(xml_call(client, tok, "GetJobStatus", f"<JOB_ID>{job_id}</JOB_ID>"), "JOB_STATUS")
    api.faults.rrde_error = True
    status = xml_call(client, tok, "GetJobStatus", f"<JOB_ID>{job_id}</JOB_ID>")
    assert find(status, "SUCCESS") == "TRUE"
    assert find(status, "JOB_STATUS") == "ERROR"
    assert "Error:" in find(status, "JOB_DESCRIPTION")
    assert list(api.download_dir.iterdir()) == []


def test_http_error_faults_and_request_log(api: AcousticApi) -> None:
    client = Client(api)
    api.faults.http_errors = [503, 429, 500]
    assert client.post("/oauth/token", data=CLIENT).status_code == 503
    limited = client.get("/rest/bulkeventexport/jobdefinition")
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "0"
    assert client.post("/XMLAPI").status_code == 500
    tok = token(client)
    assert rest(client, "GET", "", tok).status_code == 200
    assert client.get("/elsewhere").status_code == 404
    assert [(r["kind"], r["status"]) for r in api.requests] == [
        ("token", 503),
        ("rest", 429),
        ("xml", 500),
        ("token", 200),
        ("rest", 200),
        ("other", 404),
    ]
    assert tok not in json.dumps(api.requests)


def test_prefix_is_stripped(dataset: AcousticDataset, tmp_path: Path) -> None:
    api = AcousticApi(dataset, tmp_path, ftp_user_id=ADMIN, prefix="/acoustic", **CLIENT)
    client = Client(api)
    response = client.post("/acoustic/oauth/token", data={"grant_type": "refresh_token", **CLIENT})
    assert response.status_code == 200
    assert api.requests[0]["path"] == "/oauth/token"


# ------------------------------------------------------------------------------- the Sandbox
@pytest.fixture
def box(tmp_path: Path) -> Iterator[Sandbox]:
    with Sandbox(tmp_path / "sandbox") as sandbox:
        yield sandbox


def sftp_client(box: Sandbox, username: str, password: str) -> paramiko.SFTPClient:
    transport = paramiko.Transport(("127.0.0.1", box.sftp.port))
    transport.connect(username=username, password=password)
    sftp = paramiko.SFTPClient.from_transport(transport)
    assert sftp is not None
    return sftp


def test_sandbox_serves_acoustic_over_http_and_sftp(box: Sandbox) -> None:
    config = box.acoustic_config()
    api = box.acoustic_api
    assert api is not None
    assert config["api_host"] == f"{box.http.url}/acoustic"
    answer = requests.post(
        config["api_host"] + "/oauth/token",
        data={
            "grant_type": "refresh_token",
            "client_id": config["client_id"],
            "client_secret": config["client_secret"],
            "refresh_token": config["refresh_token"],
        },
        timeout=10,
    )
    tok = answer.json()["access_token"]
    listed = requests.get(
        config["api_host"] + "/rest/bulkeventexport/jobdefinition",
        headers={"Authorization": f"Bearer {tok}"},
        timeout=10,
    ).json()
    assert listed[0]["channels"][0]["jobFrequency"] == config["job_frequency_hours"]

    sftp = sftp_client(box, "oauth", tok)
    try:
        entries = sftp.listdir_attr("/download")
        names = sorted(e.filename for e in entries)
        assert len(names) == 42
        assert names == [f.name for f in api.bex_files()]
        name = names[-1]
        with sftp.open(f"/download/{name}", "rb") as handle:
            data = handle.read()
        assert parse(data, ",") == box.acoustic_truth_by_file()[name]
        # A growing file, as an SFTP client sees it: bigger on each listing.
        api.faults.growing_file = name
        sizes = [
            next(e.st_size for e in sftp.listdir_attr("/download") if e.filename == name)
            for _ in range(3)
        ]
        assert sizes[0] < sizes[1] < sizes[2] < len(data)
        assert sftp.stat(f"/download/{name}").st_size > sizes[2]
        api.faults.growing_file = None
        assert sftp.stat(f"/download/{name}").st_size == len(data)
        assert "download" in sftp.listdir("/")
    finally:
        sftp.close()
    # The ExactTarget file user still logs in; a wrong or expired token does not.
    sftp_client(box, box.credentials.file_username, box.credentials.file_password).close()
    admin = box.credentials.acoustic_ftp_user
    sftp_client(box, admin, box.credentials.acoustic_ftp_password).close()
    api.expire_tokens()
    for user, password in (("oauth", tok), ("oauth", "x"), (admin, "x")):
        with pytest.raises(paramiko.AuthenticationException):
            sftp_client(box, user, password)


def test_tap_config_includes_acoustic_only_when_asked(box: Sandbox) -> None:
    default = box.tap_config()
    assert "acoustic" not in default
    assert "exacttarget" in default
    assert "acoustic_email_events" not in box.ground_truth_counts()
    both = box.tap_config(vendors=("exacttarget", "acoustic"))
    assert both["exacttarget"] == default["exacttarget"]
    assert (both["start_date"], both["end_date"]) == ("2024-01-01", "2024-01-21")
    only = box.tap_config(vendors=("acoustic",), acoustic_mode="raw_recipient_data")
    assert set(only) == {"start_date", "end_date", "acoustic"}
    assert (only["start_date"], only["end_date"]) == ("2024-01-01", "2024-01-07")
    acoustic = only["acoustic"]
    assert acoustic["export_mode"] == "raw_recipient_data"
    assert acoustic["sftp_username"] == "oauth"
    assert "sftp_password" not in acoustic
    assert acoustic["manage_job_definition"] is False
    assert acoustic["event_types"] == list(EVENT_TYPES)
    assert acoustic["custom_columns"] == list(COLUMNS)
    assert acoustic["file_settle_seconds"] == 0.2
    assert acoustic["sftp_folder"] == "/download"
    password = box.acoustic_config("bex", "psv", sftp_login="password", max_attempts=5)
    assert password["sftp_username"] == box.credentials.acoustic_ftp_user
    assert password["sftp_password"] == box.credentials.acoustic_ftp_password
    assert password["file_format"] == "PSV"
    assert password["max_attempts"] == 5
    counts = box.ground_truth_counts(vendors=("exacttarget", "acoustic"))
    assert counts["acoustic_email_events"] == AcousticDataset(SPEC).total_events()
    assert len(box.acoustic_truth("raw_recipient_data")) == AcousticDataset(SPEC).count_events(
        datetime(2024, 1, 1, 5, tzinfo=UTC), END
    )
    with pytest.raises(ValueError, match="unknown vendors"):
        box.tap_config(vendors=("nosuchvendor",))


def test_sandbox_without_a_definition_or_acoustic(tmp_path: Path) -> None:
    bare = Sandbox(tmp_path / "a", acoustic_bex=None)
    api = bare.acoustic_api
    assert api is not None
    assert api.definitions == []
    assert api.bex_files() == []
    assert bare.acoustic_config()["manage_job_definition"] is True
    api.create_definition(definition())  # what the tap's POST does: files appear
    assert len(api.bex_files()) == 42
    partial = Sandbox(
        tmp_path / "b",
        acoustic_bex=AcousticBexSetup(job_frequency_hours=12, file_format="PSV"),
        acoustic_files_until=DAY2 + timedelta(hours=13),
    )
    assert partial.acoustic_api is not None
    assert [f.name[-22:] for f in partial.acoustic_api.bex_files()] == [
        "_20240101120000_12.psv",
        "_20240102000000_12.psv",
        "_20240102120000_12.psv",
    ]
    off = Sandbox(tmp_path / "c", acoustic=None)
    assert off.acoustic_api is None
    assert "acoustic" not in off.tap_config()
    with pytest.raises(ValueError, match="acoustic=None"):
        off.tap_config(vendors=("acoustic",))


def test_credentials_reach_the_config(tmp_path: Path) -> None:
    creds = SandboxCredentials(acoustic_client_secret="S3cret-AC", acoustic_refresh_token="R3f")
    box = Sandbox(tmp_path / "s", credentials=creds)
    assert box.acoustic_api is not None
    config = box.acoustic_config()
    assert (config["client_secret"], config["refresh_token"]) == ("S3cret-AC", "R3f")
    client = Client(box.acoustic_api)
    response = client.post(
        "/acoustic/oauth/token",
        data={
            "grant_type": "refresh_token",
            "client_id": config["client_id"],
            "client_secret": "S3cret-AC",
            "refresh_token": "R3f",
        },
    )
    assert response.status_code == 200


def test_serve_writes_acoustic_into_config_and_ground_truth(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    process = subprocess.Popen(
        [sys.executable, "-m", "vendor_sandbox", "serve", "--dir", str(folder), "--free-ports"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        ready = "vendor sandbox ready (exacttarget, acoustic, pinpointe, mailkit, impact)"
        assert ready in line, process.stderr
        config = json.loads((folder / "tap-config.json").read_text(encoding="utf-8"))
        truth = json.loads((folder / "ground-truth.json").read_text(encoding="utf-8"))
        assert {"exacttarget", "acoustic"} <= set(config)
        assert config["acoustic"]["export_mode"] == "bex"
        assert truth["acoustic_email_events"] == AcousticDataset(SPEC).total_events()
        assert "exacttarget_opens" in truth
        assert config["pinpointe"]["host"].endswith("/pinpointe")
        assert truth["pinpointe_lists"] == 3
        assert config["impact"]["base_url"].endswith("/impact")
        assert truth["impact_clicks"] > 0
    finally:
        process.terminate()
        process.communicate(timeout=20)
    assert process.returncode == 0
    assert not (folder / "ready").exists()


@pytest.mark.parametrize("reuse", [False, True])
def test_a_repeated_rrde_job_is_built_again_unless_reuse_is_on(
    api: AcousticApi, reuse: bool
) -> None:
    """Benchmarks switch `reuse_rrde_exports` on so a timed run does not time the generator."""
    api.reuse_rrde_exports = reuse
    client = Client(api)
    tok = token(client)
    inner = (
        "<EVENT_DATE_START>01/02/2024 00:00:00</EVENT_DATE_START>"
        "<EVENT_DATE_END>01/02/2024 23:59:59</EVENT_DATE_END><MOVE_TO_FTP/><ALL_EVENT_TYPES/>"
    )
    paths = []
    for _ in range(2):
        submitted = xml_call(client, tok, "RawRecipientDataExport", inner)
        job_id = find(submitted, "JOB_ID")
        for _ in range(3):  # WAITING, RUNNING, COMPLETE
            status = xml_call(client, tok, "GetJobStatus", f"<JOB_ID>{job_id}</JOB_ID>")
        assert find(status, "JOB_STATUS") == "COMPLETE"
        paths.append(api.download_dir / find(submitted, "FILE_PATH"))
    first, second = paths
    assert first != second
    assert api.rrde_files == paths
    with zipfile.ZipFile(first) as one, zipfile.ZipFile(second) as two:
        assert one.read(one.namelist()[0]) == two.read(two.namelist()[0])
        same_member_name = one.namelist() == two.namelist()
    assert same_member_name is reuse  # a reused ZIP keeps the first job's member name
    assert (first.stat().st_ino == second.stat().st_ino) is reuse


# ------------------------------------------------------------------------------- RRDE job timing
def rrde_inner(day: int = 2) -> str:
    return (
        f"<EVENT_DATE_START>01/{day:02d}/2024 00:00:00</EVENT_DATE_START>"
        f"<EVENT_DATE_END>01/{day:02d}/2024 23:59:59</EVENT_DATE_END>"
        "<MOVE_TO_FTP/><ALL_EVENT_TYPES/>"
    )


def rrde_submit(client: Client, tok: str, day: int = 2) -> str:
    return find(xml_call(client, tok, "RawRecipientDataExport", rrde_inner(day)), "JOB_ID")


def rrde_status(client: Client, tok: str, job_id: str) -> str:
    return find(xml_call(client, tok, "GetJobStatus", f"<JOB_ID>{job_id}</JOB_ID>"), "JOB_STATUS")


def test_timed_rrde_jobs_follow_the_clock(api: AcousticApi, clock: Clock) -> None:
    api.jobs.configure(queued=(1, 1), running=(4, 4))
    client = Client(api)
    tok = token(client)
    job_id = rrde_submit(client, tok)
    assert [rrde_status(client, tok, job_id) for _ in range(4)] == ["WAITING"] * 4
    clock.now = 1001.0
    assert rrde_status(client, tok, job_id) == "RUNNING"
    clock.now = 1004.99
    assert rrde_status(client, tok, job_id) == "RUNNING"
    assert list(api.download_dir.iterdir()) == []
    clock.now = 1030.0
    assert rrde_status(client, tok, job_id) == "COMPLETE"
    assert [p.name for p in api.download_dir.iterdir()] == [api.rrde_files[0].name]
    [entry] = api.submission_log
    assert (entry.at, entry.job_id) == (1000.0, job_id)
    assert entry.unit == "2024-01-02T00:00:00..2024-01-02T23:59:59"
    assert (entry.due, entry.finished) == (1005.0, 1005.0)


def test_rrde_log_max_in_flight_and_limit(api: AcousticApi, clock: Clock) -> None:
    api.jobs.configure(running=(10, 10), limit=3)
    client = Client(api)
    tok = token(client)
    ids = []
    for day in (2, 3, 4):
        ids.append(rrde_submit(client, tok, day))
        clock.now += 1
    refused = xml_call(client, tok, "RawRecipientDataExport", rrde_inner(5))
    assert find(refused, "SUCCESS") == "false"
    assert find(refused, "errorid") == "156"
    assert find(refused, "FaultString").startswith(
        "Unable to create the export job: 3 export jobs are already waiting or running"
    )
    assert api.rejected_submissions == 1
    assert api.rrde_submissions == 3
    clock.now = 1010.0  # the first is due
    assert api.jobs_in_flight == 2
    ids.append(rrde_submit(client, tok, 5))
    assert ids[-1] == str(FIRST_JOB_ID + 3)  # the refused call took no id
    assert [e.job_id for e in api.submission_log] == ids
    assert [e.at for e in api.submission_log] == [1000.0, 1001.0, 1002.0, 1010.0]
    assert api.max_in_flight == 3


def test_the_next_n_rrde_results_expire(api: AcousticApi) -> None:
    api.polls_until_complete = 1
    api.faults.rrde_expire_results = 1
    client = Client(api)
    tok = token(client)
    lost = rrde_submit(client, tok)
    assert rrde_status(client, tok, lost) == "COMPLETE"
    assert list(api.download_dir.iterdir()) == []
    again = rrde_submit(client, tok)
    assert rrde_status(client, tok, again) == "COMPLETE"
    assert [p.name for p in api.download_dir.iterdir()] == [api.rrde_files[1].name]
    assert [(e.job_id, e.expired) for e in api.submission_log] == [(lost, True), (again, False)]
    assert api.faults.rrde_expire_results == 0
