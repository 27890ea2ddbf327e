"""Tests of the impact.com sandbox itself (no tap code): the REST API over a real HTTP server,
its switches and faults, the signed result URLs, quotas and the clock, the seeded data and its
wiring into `Sandbox`."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest
import requests

from vendor_sandbox.impact.api import ImpactApi
from vendor_sandbox.impact.data import (
    CLICK_COLUMNS,
    CSV_CLICK_COLUMNS,
    ImpactDataset,
    ImpactDataSpec,
)
from vendor_sandbox.sandbox import Sandbox
from vendor_sandbox.servers.http import HttpServer

REPO = Path(__file__).resolve().parents[1]
SID, TOKEN = "IRtest0000000000000000000000000001", "impact-T0ken-secret-55"
NY = ZoneInfo("America/New_York")
# 12:00 UTC on 2024-02-01: 07:00 in the account's zone, every default day is over.
START = datetime(2024, 2, 1, 12, tzinfo=timezone.utc).timestamp()


class Clock:
    """A wall clock tests move by hand (no sleeping)."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Impact:
    """One api on a real HTTP server, with a caller that speaks its protocol."""

    def __init__(self, api: ImpactApi, server: HttpServer, clock: Clock) -> None:
        self.api = api
        self.clock = clock
        self.root = server.url + "/impact"
        self.session = requests.Session()
        self.session.auth = (SID, TOKEN)
        self.session.headers["Accept"] = "application/json"

    @property
    def base(self) -> str:
        return f"/{self.api.account_type}/{SID}"

    def get(self, path: str, **params: Any) -> requests.Response:
        url = self.root + (path if path.startswith("/") else f"{self.base}/{path}")
        return self.session.get(url, params=params, timeout=10, allow_redirects=False)

    def clicks(self, day: str, program: str = "12001", fmt: str = "JSON") -> dict[str, Any]:
        if self.api.account_type == "Advertisers":
            answer = self.get(f"Programs/{program}/ClickExport", Date=day, ResultFormat=fmt)
        else:
            answer = self.get("ClickExport", ProgramId=program, Date=day, ResultFormat=fmt)
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    def job(self, queued: dict[str, Any]) -> dict[str, Any]:
        answer = self.get(queued["QueuedUri"])
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    def until_done(self, queued: dict[str, Any], polls: int = 12) -> dict[str, Any]:
        for _ in range(polls):
            job = self.job(queued)
            if job["Status"] in ("COMPLETED", "FAILED", "CANCELLED"):
                return job
        raise AssertionError(f"job not done after {polls} polls: {job}")

    def completed(self, day: str, program: str = "12001", fmt: str = "JSON") -> dict[str, Any]:
        queued = self.clicks(day, program, fmt)
        self.until_done(queued)
        return queued

    def stream(self, queued: dict[str, Any], page: int = 1) -> requests.Response:
        return self.get(queued["ResultUri"], Mode="Stream", Page=page)


def start_impact(tmp_path: Path, spec: ImpactDataSpec | None = None) -> Iterator[Impact]:
    clock = Clock()
    api = ImpactApi(
        ImpactDataset(spec or ImpactDataSpec()),
        tmp_path / "results",
        account_sid=SID,
        auth_token=TOKEN,
        clock=clock,
        wall_clock=clock,
    )
    server = HttpServer(api)
    server.start()
    try:
        yield Impact(api, server, clock)
    finally:
        server.stop()


@pytest.fixture
def impact(tmp_path: Path) -> Iterator[Impact]:
    yield from start_impact(tmp_path)


@pytest.fixture
def brand(tmp_path: Path) -> Iterator[Impact]:
    yield from start_impact(tmp_path, ImpactDataSpec(account_type="Advertisers"))


def error_of(answer: requests.Response) -> str:
    body = answer.json()
    assert body["Status"] == "ERROR"
    assert isinstance(body["Errors"], list)
    message: str = body["Message"]
    return message


# -- authentication and addressing ----------------------------------------------------------------


def test_basic_auth_401_and_the_token_never_logged(impact: Impact) -> None:
    assert impact.get("Campaigns").status_code == 200
    anonymous = requests.get(impact.root + impact.base + "/Campaigns", timeout=10)
    assert anonymous.status_code == 401
    wrong = requests.get(impact.root + impact.base + "/Campaigns", auth=(SID, "nope"), timeout=10)
    assert wrong.status_code == 401
    assert "Account SID" in wrong.text
    other_sid = "IRother000000000000000000000000002"
    assert impact.get(f"/Mediapartners/{other_sid}/Campaigns").status_code == 401
    impact.api.faults.revoked_token = True
    assert impact.get("Campaigns").status_code == 401
    assert TOKEN not in json.dumps(impact.api.requests, default=str)
    assert {r["user"] for r in impact.api.requests} >= {SID, None}


def test_paths_per_account_type_and_accept(impact: Impact, brand: Impact) -> None:
    assert impact.get(f"/Advertisers/{SID}/Campaigns").status_code == 404
    assert impact.get(f"/MediaPartners/{SID}/Campaigns").status_code == 200  # case-insensitive
    assert impact.get(f"/Nobody/{SID}/Campaigns").status_code == 404
    assert brand.get(f"/Mediapartners/{SID}/Campaigns").status_code == 404
    partner = impact.get("Campaigns").json()["Campaigns"]
    brand_records = brand.get("Campaigns").json()["Campaigns"]
    assert [c["CampaignId"] for c in partner] == ["12001", "12002"]
    assert [c["Id"] for c in brand_records] == ["12001", "12002"]
    assert "CampaignId" not in brand_records[0]
    xml = requests.get(impact.root + impact.base + "/Campaigns", auth=(SID, TOKEN), timeout=10)
    assert xml.headers["Content-Type"].startswith("application/xml")
    assert "<ImpactRadiusResponse>" in xml.text
    assert "<CampaignId>12001</CampaignId>" in xml.text
    # Brand ClickExport has the program in the path; an unknown one is 404.
    queued = brand.clicks("2024-01-02", "12002")
    assert queued["QueuedUri"].startswith(f"/Advertisers/{SID}/Jobs/")
    assert brand.get("Programs/99999/ClickExport", Date="2024-01-02").status_code == 404
    job = brand.until_done(queued)
    assert job["ProgramId"] == "12002"
    rows = brand.stream(queued).json()["Clicks"]
    assert isinstance(rows[0]["BrandRelated"], dict)
    assert isinstance(rows[0]["PartnerRelated"], dict)
    assert isinstance(rows[0]["Payout"], float)
    partner_rows = impact.stream(impact.completed("2024-01-02")).json()["Clicks"]
    assert isinstance(partner_rows[0]["BrandRelated"], list)
    assert isinstance(partner_rows[0]["Payout"], str)


# -- the list envelope ---------------------------------------------------------------------------


def test_campaigns_envelope_pages_by_nextpageuri(tmp_path: Path) -> None:
    for impact in start_impact(tmp_path, ImpactDataSpec(programs=3)):
        seen: list[str] = []
        answer = impact.get("Campaigns", PageSize=2).json()
        pages = 1
        while True:
            assert all(isinstance(answer[k], str) for k in answer if k.startswith("@"))
            seen.extend(c["CampaignId"] for c in answer["Campaigns"])
            if answer["@nextpageuri"] == "":
                break
            assert answer["@nextpageuri"].startswith(impact.base + "/Campaigns?")
            answer = impact.get(answer["@nextpageuri"]).json()
            pages += 1
        assert seen == ["12001", "12002", "12003"]
        assert pages == 2
        assert answer["@page"] == "2"
        assert answer["@numpages"] == "2"
        assert answer["@total"] == "3"
        assert (answer["@start"], answer["@end"]) == ("2", "2")
        assert "Page=1" in answer["@previouspageuri"]
        whole = impact.get("Campaigns").json()
        assert (whole["@pagesize"], whole["@nextpageuri"]) == ("1000", "")
        assert impact.get("Campaigns", Page="0").status_code == 400


# -- scheduling ----------------------------------------------------------------------------------


def test_identical_requests_return_the_existing_job_and_count(impact: Impact) -> None:
    first = impact.clicks("2024-01-02")
    assert first["Status"] == "QUEUED"
    job_id = first["QueuedUri"].rsplit("/", 1)[-1]
    assert first["ResultUri"] == f"{impact.base}/Jobs/{job_id}/Download"
    assert first["ReplayUri"] == f"{impact.base}/Jobs/{job_id}/Replay"
    again = impact.get("ClickExport", ResultFormat="JSON", Date="2024-01-02", ProgramId="12001")
    assert again.json()["QueuedUri"] == first["QueuedUri"]
    impact.job(first)
    impact.job(first)  # RUNNING now
    assert impact.clicks("2024-01-02")["Status"] == "RUNNING"
    other = impact.clicks("2024-01-03")
    assert other["QueuedUri"] != first["QueuedUri"]
    assert impact.api.quota_used("ClickExport") == 4
    assert len(impact.api.job_ids()) == 2


def test_invalid_input_is_200_with_status_error_and_counts(impact: Impact) -> None:
    cases = [
        {"Date": "2024/01/02"},
        {"Date": "2024-02-02"},  # after the account's today (2024-02-01)
        {"Date": "2024-01-02", "ResultFormat": "XML"},
        {"Date": "2024-01-02", "ProgramId": "99999"},
    ]
    for params in cases:
        answer = impact.get("ClickExport", **params)
        assert answer.status_code == 200
        assert "QueuedUri" not in answer.json()
        assert error_of(answer)
    assert impact.api.quota_used("ClickExport") == len(cases)
    missing = impact.get("ReportExport/mp_action_listing_fast", END_DATE="2024-01-02")
    assert "START_DATE is required" in error_of(missing) or "START_DATE" in error_of(missing)
    assert impact.get("ReportExport/no_such_report").status_code == 404
    assert impact.api.job_ids() == []


def test_report_export_windows_and_brand_spelling(impact: Impact, brand: Impact) -> None:
    queued = impact.get(
        "ReportExport/mp_action_listing_fast",
        START_DATE="2024-01-01",
        END_DATE="2024-01-02",
        SUBAID="12002",
        ResultFormat="JSON",
    ).json()
    job = impact.until_done(queued)
    assert (job["Type"], job["ProgramId"]) == ("ApiReport", "12002")
    records = impact.stream(queued).json()["Records"]
    truth = impact.api.dataset.report_rows(
        impact.api.dataset.spec.reports[0], date(2024, 1, 1), date(2024, 1, 2), "12002"
    )
    assert records == list(truth)
    assert len(records) == 2 * 3
    assert impact.api.quota_used("ReportExport") == 1
    answer = brand.get(
        "ReportExport/mp_performance_by_day",
        StartDate="2024-01-01T00:00:00Z",
        EndDate="2024-01-04T23:59:59Z",
        ResultFormat="CSV",
    ).json()
    brand.until_done(answer)
    rows = list(csv.DictReader(io.StringIO(brand.stream(answer).text)))
    # Midnight UTC on the 1st is still Dec 31 in New York: that day has no data.
    assert len(rows) == 4 * 2
    assert rows[0]["Date"] == "2024-01-01"
    assert "StartDate is required" in error_of(
        brand.get("ReportExport/mp_performance_by_day", START_DATE="2024-01-01")
    )


# -- jobs ------------------------------------------------------------------------------------------


def test_job_progression_and_every_field(impact: Impact) -> None:
    queued = impact.clicks("2024-01-02")
    statuses = [impact.job(queued)["Status"] for _ in range(3)]
    assert statuses == ["QUEUED", "RUNNING", "COMPLETED"]
    job = impact.job(queued)
    assert set(job) == {
        "Id", "Type", "ProgramId", "CreatedBy", "CreatedDate", "StartedDate", "CompletedDate",
        "AbandonedDate", "CancelledDate", "FailedDate", "LastProgressUpdateDate", "Status",
        "StatusMessage", "RecordsProcessed", "PercentageComplete", "Replayable", "ResultUri",
    }  # fmt: skip
    assert job["Id"] == queued["QueuedUri"].rsplit("/", 1)[-1]
    assert (job["Type"], job["ProgramId"], job["CreatedBy"]) == ("ClickExport", "12001", SID)
    assert job["CreatedDate"] == "2024-02-01T07:00:00-05:00"
    assert (job["CancelledDate"], job["FailedDate"], job["AbandonedDate"]) == ("", "", "")
    expected = impact.api.dataset.clicks_on(["12001"], date(2024, 1, 2))
    assert (job["RecordsProcessed"], job["PercentageComplete"]) == (str(expected), "100")
    assert job["Replayable"] == "true"
    assert job["StatusMessage"] == "Job processing completed successfully."
    impact.api.shapes.typed_job_fields = True
    typed = impact.job(queued)
    assert (typed["RecordsProcessed"], typed["Replayable"]) == (expected, True)
    listed = impact.get("Jobs", CreatedAfter="2024-02-01").json()
    assert [j["Id"] for j in listed["Jobs"]] == [job["Id"]]
    assert impact.get("Jobs", CreatedAfter="2024-02-02").json()["Jobs"] == []
    assert impact.get("Jobs/not-a-job").status_code == 404


# -- downloads -------------------------------------------------------------------------------------


def test_download_202_then_302_to_another_origin_without_credentials(impact: Impact) -> None:
    queued = impact.clicks("2024-01-02")
    early = impact.get(queued["ResultUri"])
    assert early.status_code == 202
    assert early.json()["Status"] == "QUEUED"
    impact.until_done(queued)
    answer = impact.get(queued["ResultUri"])
    assert answer.status_code == 302
    location = answer.headers["Location"]
    target, api = urlsplit(location), urlsplit(impact.root)
    assert (target.hostname, api.hostname) == ("localhost", "127.0.0.1")
    assert target.port == api.port
    assert target.path.startswith("/impact-files/")
    assert "X-Signature=" in location
    plain = requests.get(location, timeout=10)
    assert plain.status_code == 200
    assert plain.json()["@total"] == str(len(plain.json()["Clicks"]))
    with_auth = requests.get(location, auth=(SID, TOKEN), timeout=10)
    assert with_auth.status_code == 400
    tampered = requests.get(location.replace("X-Signature=", "X-Signature=0"), timeout=10)
    assert tampered.status_code == 403
    partial = requests.get(location, headers={"Range": "bytes=10-"}, timeout=10)
    assert partial.status_code == 206
    assert partial.content == plain.content[10:]
    followed = impact.session.get(impact.root + queued["ResultUri"], timeout=10)
    assert followed.status_code == 200  # requests drops the credentials for the other host
    assert impact.api.calls("SignedFile")[-1]["authorization"] is False
    impact.clock.now += impact.api.shapes.signed_url_seconds + 1
    assert requests.get(location, timeout=10).status_code == 403  # the URL went stale


def test_mode_stream_and_no_redirect_switch(impact: Impact) -> None:
    queued = impact.clicks("2024-01-03", fmt="CSV")
    impact.until_done(queued)
    streamed = impact.get(queued["ResultUri"], Mode="stream")  # case-insensitive
    assert streamed.status_code == 200
    assert streamed.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(streamed.text)))
    assert tuple(rows[0]) == CSV_CLICK_COLUMNS
    dataset = impact.api.dataset
    assert rows[1:] == list(dataset.click_rows(["12001"], date(2024, 1, 3)))
    assert "X-RateLimit-Remaining-hour" in streamed.headers
    assert impact.get(queued["ResultUri"], Mode="Stream", Page=2).status_code == 404
    impact.api.shapes.redirect = False
    assert impact.get(queued["ResultUri"]).status_code == 200


def test_paged_json_results(impact: Impact) -> None:
    impact.api.shapes.result_page_size = 2
    queued = impact.clicks("2024-01-02")  # 6 clicks: 3 pages
    impact.until_done(queued)
    rows: list[dict[str, Any]] = []
    answer = impact.stream(queued).json()
    while True:
        rows.extend(answer["Clicks"])
        if answer["@nextpageuri"] == "":
            break
        assert "Mode=Stream" in answer["@nextpageuri"]
        answer = impact.get(answer["@nextpageuri"]).json()
    assert answer["@numpages"] == "3"
    assert answer["@page"] == "3"
    assert list(rows[0]) == list(CLICK_COLUMNS)
    truth = [
        impact.api.dataset.click_record(v)
        for v in impact.api.dataset.click_rows(["12001"], date(2024, 1, 2))
    ]
    assert rows == truth
    # A page via the signed URL too.
    second = impact.get(queued["ResultUri"], Page=2)
    assert second.status_code == 302
    assert requests.get(second.headers["Location"], timeout=10).json()["@page"] == "2"


def test_replay_of_an_expired_result_and_403(impact: Impact) -> None:
    queued = impact.clicks("2024-01-02")
    job = impact.until_done(queued)
    impact.api.expire(job["Id"])
    gone = impact.stream(queued)
    assert gone.status_code == 410
    assert "replay" in error_of(gone)
    assert impact.job(queued)["Status"] == "COMPLETED"
    replayed = impact.session.put(impact.root + queued["ReplayUri"], timeout=10)
    assert replayed.status_code == 200
    assert (replayed.json()["Id"], replayed.json()["Status"]) == (job["Id"], "QUEUED")
    assert impact.api.quota_used("ClickExport") == 2  # the replay counted
    running = impact.session.put(impact.root + queued["ReplayUri"], timeout=10)
    assert running.status_code == 403  # QUEUED is not replayable
    impact.until_done(queued)
    assert impact.stream(queued).status_code == 200
    assert impact.get(queued["ReplayUri"]).status_code == 405
    impact.api.faults.unreplayable_units.add("click:12001:2024-01-02")
    assert impact.job(queued)["Replayable"] == "false"
    refused = impact.session.put(impact.root + queued["ReplayUri"], timeout=10)
    assert refused.status_code == 403
    assert "not in a replayable state" in error_of(refused)
    # A gone result is not handed out again by an identical request: a new job is made.
    impact.api.faults.expire_units.add("click:12001:2024-01-04")
    first = impact.clicks("2024-01-04")
    impact.until_done(first)
    assert impact.stream(first).status_code == 410
    assert impact.clicks("2024-01-04")["QueuedUri"] != first["QueuedUri"]


# -- rate limits, quotas and the clock ------------------------------------------------------------


def test_rate_limit_header_families_and_the_hourly_budget(impact: Impact, brand: Impact) -> None:
    answer = impact.get("Campaigns")
    assert answer.headers["X-RateLimit-Limit-hour"] == "1000"
    assert answer.headers["X-RateLimit-Remaining-hour"] == "999"
    assert answer.headers["RateLimit-Reset"] == "3600"  # START is on the hour
    branded = brand.get("Campaigns")
    assert branded.headers["X-RateLimit-Reset"] == str(int(START) + 3600)  # an epoch
    assert "X-RateLimit-Limit-hour" not in branded.headers
    impact.api.shapes.rate_headers = "brand"
    assert "X-RateLimit-Remaining" in impact.get("Campaigns").headers
    impact.api.faults.hourly_limit = 4
    impact.clock.now += 1800
    statuses = [impact.get("Campaigns").status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    refused = impact.get("Campaigns")
    assert refused.headers["Retry-After"] == "1800"
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    impact.clock.now += 1800  # the next hour
    assert impact.get("Campaigns").status_code == 200
    hours = impact.api.hourly_counts()
    assert hours == {"2024-02-01T12:00Z": 4, "2024-02-01T13:00Z": 1}
    assert len(impact.api.calls("Campaigns")) == 7


def test_daily_quota_per_account_day_and_the_clock(impact: Impact) -> None:
    date_header = parsedate_to_datetime(impact.get("Campaigns").headers["Date"])
    assert date_header.timestamp() == int(START)
    impact.api.faults.hourly_limit = 100
    days = [(date(2023, 12, 1) + timedelta(days=n)).isoformat() for n in range(11)]
    for day in days[:10]:  # before the data: valid days without clicks
        assert impact.clicks(day)["Status"] == "QUEUED"
    assert impact.api.quota_used("ClickExport") == 10
    refused = impact.get("ClickExport", ProgramId="12001", Date=days[10])
    assert refused.status_code == 429
    assert "Daily limit of 10 requests for ClickExport" in error_of(refused)
    midnight = datetime(2024, 2, 2, tzinfo=NY).timestamp()
    assert refused.headers["Retry-After"] == str(int(midnight - START))
    assert impact.api.quota_used("ClickExport") == 10  # a 429 counts against nothing
    impact.api.advance_days()
    assert impact.api.today == date(2024, 2, 2)
    moved = impact.get("ClickExport", ProgramId="12001", Date=days[10])
    assert moved.status_code == 200
    assert parsedate_to_datetime(moved.headers["Date"]).date() == date(2024, 2, 2)
    daily = impact.api.daily_counts()
    assert daily["2024-02-01"]["ClickExport"] == 11
    assert daily["2024-02-02"]["ClickExport"] == 1
    impact.api.spend_quota("ReportExport")
    spent = impact.get("ReportExport/mp_action_listing_fast", START_DATE="2024-01-01",
                       END_DATE="2024-01-01")  # fmt: skip
    assert spent.status_code == 429


def test_backfill_out_of_quota_is_finished_on_later_days(tmp_path: Path) -> None:
    """14 days of one program: 10 jobs on the first day, the 11th refused, the rest a day later;
    every day's clicks arrive exactly once."""
    spec = ImpactDataSpec(programs=1, end=date(2024, 1, 15))
    for impact in start_impact(tmp_path, spec):
        pending = [(spec.start + timedelta(days=n)).isoformat() for n in range(14)]
        rows: list[dict[str, Any]] = []
        runs = 0
        while pending:
            runs += 1
            while pending:
                answer = impact.get("ClickExport", ProgramId="12001", Date=pending[0],
                                    ResultFormat="JSON")  # fmt: skip
                if answer.status_code == 429:
                    break
                impact.until_done(answer.json())
                rows.extend(impact.stream(answer.json()).json()["Clicks"])
                pending.pop(0)
            impact.api.advance_days()
        assert runs == 2
        assert rows == ImpactDataset(spec).truth()["impact_clicks"]
        daily = impact.api.daily_counts()
        assert [d.get("ClickExport") for d in daily.values()] == [11, 4]
        # Every API call counted against its hour, the quota-refused one too (only a 429 storm
        # is not); the clock moved a day, so the hours are two.
        hours = impact.api.hourly_counts()
        assert len(hours) == 2
        assert sum(hours.values()) == len(impact.api.requests)
        assert list(hours.values()) == [sum(daily["2024-02-01"].values()),
                                        sum(daily["2024-02-02"].values())]  # fmt: skip


# -- faults ----------------------------------------------------------------------------------------


def test_error_that_recovers_and_error_that_ends_failed(impact: Impact) -> None:
    impact.api.faults.recover_units["click:12001:2024-01-02"] = 2
    impact.api.faults.fail_units.add("click:12001:2024-01-03")
    recovering = impact.clicks("2024-01-02")
    seen = [impact.job(recovering)["Status"] for _ in range(5)]
    assert seen == ["QUEUED", "ERROR", "ERROR", "RUNNING", "COMPLETED"]
    assert impact.stream(recovering).status_code == 200
    failing = impact.clicks("2024-01-03")
    assert impact.clicks("2024-01-03")["QueuedUri"] == failing["QueuedUri"]
    seen = [impact.job(failing)["Status"] for _ in range(7)]
    assert seen == ["QUEUED", *["ERROR"] * 5, "FAILED"]
    job = impact.job(failing)
    assert job["StatusMessage"] == "Job failed after 5 unsuccessful tries."
    assert job["FailedDate"] != ""
    assert impact.get(failing["ResultUri"]).status_code == 202  # never a file
    assert impact.clicks("2024-01-03")["QueuedUri"] != failing["QueuedUri"]  # a new job


def test_cancelled_job_and_rejected_scheduling(impact: Impact) -> None:
    impact.api.faults.cancel_next = 1
    cancelled = impact.clicks("2024-01-02")
    job = impact.until_done(cancelled)
    assert job["Status"] == "CANCELLED"
    assert "cancelled by an impact.com system administrator" in job["StatusMessage"]
    assert job["CancelledDate"] != ""
    impact.api.faults.reject_next = 1
    rejected = impact.get("ClickExport", ProgramId="12001", Date="2024-01-03")
    assert rejected.status_code == 200
    assert error_of(rejected) == impact.api.faults.reject_message
    assert impact.clicks("2024-01-03")["Status"] == "QUEUED"
    assert impact.api.quota_used("ClickExport") == 3


def test_scoped_token_storm_and_dropped_download(impact: Impact) -> None:
    impact.api.faults.scoped_endpoints.add("ClickExport")
    scoped = impact.get("ClickExport", ProgramId="12001", Date="2024-01-02")
    assert scoped.status_code == 403
    assert "ClickExport" in error_of(scoped)
    assert impact.get("Campaigns").status_code == 200
    impact.api.faults.scoped_endpoints.clear()
    impact.api.faults.storm, impact.api.faults.storm_retry_after = 2, 7
    storm = [impact.get("Campaigns") for _ in range(3)]
    assert [a.status_code for a in storm] == [429, 429, 200]
    assert storm[0].headers["Retry-After"] == "7"
    assert sum(impact.api.hourly_counts().values()) == 3  # the storm's 429s are not counted
    queued = impact.completed("2024-01-02", fmt="CSV")
    whole = impact.stream(queued).content
    impact.api.download_faults.arm(drop_after_bytes=100)
    with pytest.raises(requests.exceptions.RequestException):
        impact.stream(queued).content  # noqa: B018
    rest = impact.session.get(
        impact.root + queued["ResultUri"], params={"Mode": "Stream"},
        headers={"Range": "bytes=100-"}, timeout=10,
    )  # fmt: skip
    assert rest.status_code == 206
    assert whole[:100] + rest.content == whole
    assert impact.api.download_faults.resumed_downloads == 1


# -- data and truth --------------------------------------------------------------------------------


def test_truth_counts_equal_served_rows(impact: Impact) -> None:
    dataset = impact.api.dataset
    counts = dataset.counts()
    truth = dataset.truth()
    assert {k: len(v) for k, v in truth.items()} == counts
    served: list[dict[str, Any]] = []
    for day in dataset.days:
        for program in dataset.program_ids():
            queued = impact.completed(day.isoformat(), program)
            served.extend(impact.stream(queued).json()["Clicks"])
    assert len(served) == counts["impact_clicks"] == 2 * 4 * 5 + 4
    assert sorted(served, key=json.dumps) == sorted(truth["impact_clicks"], key=json.dumps)
    keys = {(c["Id"], c["ProgramId"], c["EventDate"]) for c in served}
    assert len(keys) == len(served)
    assert len({c["Id"] for c in served}) < len(served)  # Id alone repeats
    for report in dataset.spec.reports:
        answer = impact.get(
            f"ReportExport/{report.report_id}", START_DATE="2024-01-01", END_DATE="2024-01-04",
            ResultFormat="JSON",
        ).json()  # fmt: skip
        impact.until_done(answer)
        records = impact.stream(answer).json()["Records"]
        assert len(records) == counts[f"impact_report_{report.name}"]
        assert sorted(records, key=json.dumps) == sorted(
            truth[f"impact_report_{report.name}"], key=json.dumps
        )
    values = {v for c in served for v in c.values() if isinstance(v, str)}
    assert {"n/a", "NA", "", "0.0", "true"} <= values
    assert all(c["EventDate"].endswith("-05:00") for c in served)
    assert impact.get("Campaigns").json()["Campaigns"] == truth["impact_programs"]


def test_a_million_clicks_are_written_streaming(tmp_path: Path) -> None:
    script = f"""
import sys, time
from datetime import date
from pathlib import Path
sys.path.insert(0, {str(REPO)!r})
from vendor_sandbox.impact.api import ImpactApi
from vendor_sandbox.impact.data import ImpactDataset, ImpactDataSpec
spec = ImpactDataSpec(programs=1, end=date(2024, 1, 2), clicks_per_day=1_000_000, reports=())
api = ImpactApi(ImpactDataset(spec), Path({str(tmp_path)!r}), account_sid="IR", auth_token="t")
job = api._new_job("ClickExport", "click:12001:2024-01-01", "x", "12001",
                   {{"date": "2024-01-01", "programs": ["12001"], "format": "CSV"}}, 0.0)
began = time.monotonic()
api._complete(job, 0.0)
# VmHWM, not ru_maxrss: a child's ru_maxrss starts at its parent's high-water mark (a big
# pytest worker), while VmHWM is this process's own since exec.
hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(job.records, api.files[0].stat().st_size, time.monotonic() - began, hwm.split()[1])
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    records, size, _seconds, peak_kib = done.stdout.split()
    assert int(records) == 1_000_000
    assert int(size) > 200_000_000 // 2
    assert int(peak_kib) < 200 * 1024  # the rows are never held
    (written,) = tmp_path.glob("*/*.csv")
    with written.open(encoding="utf-8") as handle:
        lines = sum(1 for _ in handle)
    assert lines == 1_000_001


# -- the Sandbox wiring ----------------------------------------------------------------------------


def test_sandbox_wiring(tmp_path: Path) -> None:
    box = Sandbox(tmp_path, acoustic=None, pinpointe=None, mailkit=None)
    assert len(box.credentials.impact_account_sid) == 34
    assert box.credentials.impact_account_sid.startswith("IR")
    with box:
        config = box.impact_config(max_attempts=5)
        assert config["base_url"] == box.http.url + "/impact"
        assert (config["account_type"], config["timezone"]) == ("Mediapartners", "America/New_York")
        assert config["reports"][0] == {
            "name": "actions",
            "report_id": "mp_action_listing_fast",
            "parameters": {},
            "key_fields": ["Action_Id"],
        }
        assert config["max_attempts"] == 5
        whole = box.tap_config(vendors=("impact",))
        assert (whole["start_date"], whole["end_date"]) == ("2024-01-01", "2024-01-04")
        counts = box.ground_truth_counts(vendors=("impact",))
        assert counts == box.impact_counts()
        assert counts["impact_clicks"] == len(box.impact_truth()["impact_clicks"])
        answer = requests.get(
            config["base_url"] + f"/Mediapartners/{config['account_sid']}/Campaigns",
            auth=(config["account_sid"], config["auth_token"]),
            headers={"Accept": "application/json"},
            timeout=10,
        )
        assert answer.status_code == 200
    bare = Sandbox(tmp_path / "bare", impact=None, acoustic=None, pinpointe=None, mailkit=None)
    with pytest.raises(ValueError, match="impact=None"):
        bare.impact_config()
