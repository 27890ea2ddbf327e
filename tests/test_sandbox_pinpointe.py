"""Tests of the Pinpointe sandbox itself (no tap code): the JSON API over a real HTTP server, its
shape and fault switches, the result links, the seeded data and its wiring into `Sandbox`."""

from __future__ import annotations

import csv
import http.client
import io
import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from vendor_sandbox.jobs import JobSettings
from vendor_sandbox.pinpointe.api import AUTH_ERROR, JOB_LIMIT_ERROR, JOBS_NOT_FOUND, PinpointeApi
from vendor_sandbox.pinpointe.data import STREAMS, PinpointeDataset, PinpointeDataSpec, epoch
from vendor_sandbox.sandbox import Sandbox
from vendor_sandbox.servers.http import HttpServer

REPO = Path(__file__).resolve().parents[1]
USER, TOKEN = "pp-user@example.com", "pp-T0ken-secret-77"
NOTIFY = {"type": "email", "value": "exports@example.com"}
SPEC = PinpointeDataSpec()


class Pinpointe:
    """One api on a real HTTP server, with a caller that speaks its envelope."""

    def __init__(self, api: PinpointeApi, server: HttpServer) -> None:
        self.api = api
        self.url = server.url + "/pinpointe/apijson.php"

    def post(self, body: Any) -> requests.Response:
        return requests.post(self.url, json=body, timeout=10)

    def call(
        self, rtype: str, method: str, details: dict[str, Any] | None = None, **envelope: Any
    ) -> tuple[int, dict[str, Any]]:
        body = {"username": USER, "usertoken": TOKEN, "requesttype": rtype, "requestmethod": method}
        if details is not None:
            body["details"] = details
        body.update(envelope)
        response = self.post(body)
        return response.status_code, response.json()

    def ok(self, rtype: str, method: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
        status, answer = self.call(rtype, method, details)
        assert (status, answer["status"]) == (200, "SUCCESS"), answer
        return answer

    def submit(self, kind: str, unit: str, **more: Any) -> str:
        method, key = {
            "list": ("Lists/GetListSubscribersAsync", "list"),
            "segment": ("Segments/GetSegmentSubscribersAsync", "segmentid"),
            "tag": ("Tags/GetTagSubscribersAsync", "tag"),
            "send": ("Newsletters/GetNewsletterContactDataSummaryAsync", "stat"),
        }[kind]
        details: dict[str, Any] = {key: unit if kind == "send" else [unit], "notify": NOTIFY}
        if kind != "send":
            details |= {"status": "any", "include_membership": True, "customfields": "all"}
        details.update(more)
        answer = self.ok(*method.split("/"), details)
        return job_id(answer["data"])

    def status(self, jobids: list[str] | None = None, **details: Any) -> dict[str, Any]:
        if jobids is not None:
            details["jobids"] = jobids
        return self.ok("API", "AsyncJobStatus", details)

    def until_done(self, jid: str, polls: int = 10) -> dict[str, Any]:
        for _ in range(polls):
            (record,) = records_of(self.status([jid]))
            if record["status"] not in ("waiting", "processing"):
                return record
        raise AssertionError(f"job {jid} still running after {polls} polls")


def job_id(data: Any) -> str:
    if isinstance(data, str):
        return data
    (key,) = [k for k in data if k.lower().replace("_", "") == "jobid"]
    return str(data[key])


def records_of(answer: dict[str, Any]) -> list[dict[str, Any]]:
    data = answer["data"]
    if isinstance(data, list):
        return data
    return next(v for v in data.values() if isinstance(v, list))


def next_of(answer: dict[str, Any]) -> str | None:
    holder = answer.get("pagination") or (
        answer["data"].get("pagination") if isinstance(answer["data"], dict) else None
    )
    return None if holder is None else str(holder["next"])


def link_of(record: dict[str, Any]) -> str:
    for key in ("url", "downloadurl"):
        if key in record:
            return str(record[key])
    return str(record["result"]["url"])


def parse(data: bytes) -> list[dict[str, Any]]:
    """An independent reading of a result file: JSON array, holder object, lines, or CSV."""
    text = data.decode("utf-8")
    if not text.lstrip().startswith(("[", "{")):
        return list(csv.DictReader(io.StringIO(text, newline="")))
    try:
        whole = json.loads(text)
    except json.JSONDecodeError:
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    if isinstance(whole, list):
        return whole
    (rows,) = [v for v in whole.values() if isinstance(v, list)]
    assert whole["count"] == str(len(rows))
    return list(rows)


def download(link: str) -> bytes:
    response = requests.get(link, timeout=10)
    assert response.status_code == 200
    assert int(response.headers["Content-Length"]) == len(response.content)
    return response.content


@pytest.fixture
def pp(tmp_path: Path) -> Iterator[Pinpointe]:
    api = PinpointeApi(PinpointeDataset(SPEC), tmp_path / "results", username=USER, usertoken=TOKEN)
    with HttpServer(api) as server:
        yield Pinpointe(api, server)


# ------------------------------------------------------------------------- envelope and auth
def test_a_wrong_token_is_a_401_with_pinpointes_words_and_no_token_is_logged(pp: Pinpointe) -> None:
    status, answer = pp.call("Lists", "GetLists", usertoken="wrong")
    assert (status, answer) == (401, {"status": "FAILED", "errormessage": AUTH_ERROR})
    assert pp.call("Lists", "GetLists", username="someone")[0] == 401
    pp.ok("Lists", "GetLists", {"pagination": {"limit": "1"}})
    pp.api.faults.revoked_token = True
    assert pp.call("Lists", "GetLists")[0] == 401
    assert [r["requestmethod"] for r in pp.api.requests] == ["GetLists"] * 4
    assert pp.api.requests[2]["details"] == {"pagination": {"limit": "1"}}
    assert TOKEN not in json.dumps(pp.api.requests)
    assert "wrong" not in json.dumps(pp.api.requests)


def test_bad_envelopes_are_failed_on_400(pp: Pinpointe) -> None:
    assert requests.get(pp.url, timeout=10).status_code == 400
    bad = requests.post(pp.url, data=b"{not json", timeout=10)
    assert (bad.status_code, bad.json()["status"]) == (400, "FAILED")
    assert pp.post(["a", "list"]).status_code == 400
    status, answer = pp.call("Lists", "GetNothing")
    assert status == 400
    assert "GetNothing" in answer["errormessage"]
    assert pp.call("lists", "getlists")[0] == 200  # case-insensitive [I]


def test_errormessage_as_a_list_and_error_as_the_status_word(pp: Pinpointe) -> None:
    pp.api.shapes.errormessage_list = True
    pp.api.shapes.error_status = "ERROR"
    assert pp.call("Lists", "GetLists", usertoken="x") == (
        401,
        {"status": "ERROR", "errormessage": [AUTH_ERROR]},
    )


def test_html_maintenance_page_n_times_then_json(pp: Pinpointe) -> None:
    pp.api.faults.html_pages = 2
    pp.api.faults.html_status = 503
    for _ in range(2):
        page = pp.post({"username": USER, "usertoken": TOKEN})
        assert page.status_code == 503
        assert page.headers["Content-Type"].startswith("text/html")
        assert "maintenance" in page.text
    pp.ok("Lists", "GetLists")


# ------------------------------------------------------------------------------- pagination
LISTINGS = {
    "GetLists": ("Lists", SPEC.lists, "top"),
    "GetSegments": ("Segments", SPEC.segments, "data"),
    "GetTags": ("Tags", SPEC.tags, "top"),
}


@pytest.mark.parametrize("placement", [None, "top", "data"])
@pytest.mark.parametrize("method", list(LISTINGS))
def test_listing_pages_walk_to_every_record(pp: Pinpointe, method: str, placement: str) -> None:
    rtype, total, default = LISTINGS[method]
    pp.api.shapes.pagination = placement
    seen: list[dict[str, Any]] = []
    start: str | None = None
    while True:
        page = {"limit": "2"} | ({"next": start} if start else {})
        answer = pp.ok(rtype, method, {"pagination": page})
        where = placement or default
        assert ("pagination" in answer) == (where == "top")
        seen += records_of(answer)
        start = next_of(answer)
        if start == "0":
            break
    everything = records_of(pp.ok(rtype, method))  # unpaginated: every record at once
    assert seen == everything
    assert len(everything) == total
    assert next_of(pp.ok(rtype, method)) is None


def test_listing_defaults_differ_across_calls(pp: Pinpointe) -> None:
    lists = pp.ok("Lists", "GetLists", {"pagination": {"limit": "5"}})
    assert isinstance(lists["data"], list)
    assert lists["pagination"] == {"next": "0"}
    segments = pp.ok("Segments", "GetSegments", {"pagination": {"limit": "5"}})
    assert set(segments["data"]) == {"item", "pagination"}
    sends = pp.ok("Newsletters", "GetNewslettersSent", {"pagination": {"limit": "4"}})
    assert sends["data"]["count"] == str(SPEC.sends)
    assert len(sends["data"]["newsletters"]) == 4
    assert sends["data"]["pagination"] == {"next": "4"}
    dataset = pp.api.dataset
    assert records_of(pp.ok("Tags", "GetTags", {"includeshared": True})) == dataset.tags()
    assert records_of(lists) == dataset.lists()


def test_sends_since_an_interval_by_the_wall_clock(pp: Pinpointe) -> None:
    sends = pp.api.dataset.sends()
    pp.api.wall_clock = lambda: int(sends[5]["starttime"]) + 86_400
    recent = records_of(
        pp.ok("Newsletters", "GetNewslettersSent", {"intervalcount": 1, "intervalunits": "days"})
    )
    assert recent == [s for s in sends if int(s["starttime"]) >= int(sends[5]["starttime"])]
    assert recent[0] == sends[5]
    assert pp.call("Newsletters", "GetNewslettersSent", {"intervalunits": "fortnights"})[0] == 400


@pytest.mark.parametrize(
    ("pagination", "words"),
    [
        ({}, "left out"),
        ({"next": "2"}, "limit is required"),
        ({"limit": "0"}, "at least 1"),
        ({"limit": "x"}, "not a whole number"),
        ("10", "left out"),
    ],
)
def test_bad_pagination_is_an_error(pp: Pinpointe, pagination: Any, words: str) -> None:
    for rtype, method in (("Lists", "GetLists"), ("API", "AsyncJobStatus")):
        status, answer = pp.call(rtype, method, {"pagination": pagination})
        assert status == 400
        assert words in answer["errormessage"]


# ---------------------------------------------------------------------------- async exports
LIST, SEND = "Lists/GetListSubscribersAsync", "Newsletters/GetNewsletterContactDataSummaryAsync"


@pytest.mark.parametrize(
    ("method", "details", "words"),
    [
        (LIST, {"list": ["1"]}, "notify is required"),
        (LIST, {"list": ["1"], "notify": {"type": "sms", "value": "x"}},
         "email or webhook"),
        (LIST, {"list": ["1"], "notify": {"type": "email"}},
         "notify value"),
        (LIST, {"list": [], "notify": NOTIFY}, "non-empty array"),
        (LIST, {"list": "1", "notify": NOTIFY}, "non-empty array"),
        (LIST, {"list": ["99"], "notify": NOTIFY}, "List 99 not found"),
        (LIST, {"list": ["1"], "notify": NOTIFY, "startdate": "2024-01-01"},
         "YYYYMMDD"),
        (LIST,
         {"list": ["1"], "notify": NOTIFY, "startdate": "20240105", "enddate": "20240105"},
         "exclusive"),
        (LIST, {"list": ["1"], "notify": NOTIFY, "status": "asleep"},
         "Invalid status"),
        ("Segments/GetSegmentSubscribersAsync", {"segmentid": ["1"], "notify": NOTIFY,
                                                 "format": "xml"}, "json or csv"),
        ("Tags/GetTagSubscribersAsync", {"notify": NOTIFY}, "tag is required"),
        (SEND, {"notify": NOTIFY}, "stat is required"),
        (SEND, {"stat": "1", "notify": NOTIFY},
         "Stat 1 not found"),
    ],
)  # fmt: skip
def test_async_details_are_checked(
    pp: Pinpointe, method: str, details: dict[str, Any], words: str
) -> None:
    status, answer = pp.call(*method.split("/"), details)
    assert status == 400
    assert answer["status"] == "FAILED"
    assert words in answer["errormessage"]
    assert pp.api.job_ids() == []


def test_unknown_and_empty_optional_members_are_tolerated(pp: Pinpointe) -> None:
    jid = pp.submit("list", "1", status="", customfields=[], startdate="", colour="blue")
    job = pp.api.job(jid)
    assert job is not None
    assert job["options"]["status"] == "any"
    assert job["options"]["startdate"] is None
    record = pp.until_done(jid)
    rows = parse(download(link_of(record)))
    assert len(rows) == pp.api.dataset.counts_by_unit()["list:1"]
    assert all(row["customfields"] == [] for row in rows)  # customfields left out: none


def test_fifty_jobs_polled_in_pages_then_downloaded_match_the_truth(pp: Pinpointe) -> None:
    dataset = pp.api.dataset
    units = (
        [("list", u) for u in dataset.list_ids()]
        + [("segment", u) for u in dataset.segment_ids()]
        + [("tag", u) for u in dataset.tag_ids()]
        + [("send", s["statid"]) for s in dataset.sends()]
    )
    window = {"startdate": "20240101", "enddate": "20240115"}
    jobs: dict[str, tuple[str, str]] = {}
    for _ in range(3):  # identical requests get new ids
        for kind, unit in units:
            jobs[pp.submit(kind, unit, **(window if kind == "list" else {}))] = (kind, unit)
    assert len(jobs) == 3 * len(units) >= 50
    words: dict[str, list[str]] = {jid: [] for jid in jobs}
    links: dict[str, str] = {}
    for _ in range(3):
        start = None
        while start != "0":
            page = {"limit": "20"} | ({"next": start} if start else {})
            answer = pp.status(list(jobs), pagination=page)
            assert len(records_of(answer)) <= 20
            for record in records_of(answer):
                words[record["jobid"]].append(record["status"])
                if record["status"] == "complete":
                    links[record["jobid"]] = link_of(record)
            start = next_of(answer)
    assert all(w == ["waiting", "processing", "complete"] for w in words.values())
    asked = pp.api.status_jobids()
    assert len(asked) == 9
    assert all(ids == list(jobs) for ids in asked)
    truth = dataset.truth()
    got: dict[str, list[dict[str, Any]]] = {stream: [] for stream in STREAMS[4:]}
    for jid, (kind, unit) in list(jobs.items())[: len(units)]:
        rows = parse(download(links[jid]))
        stream = "newsletter_activity" if kind == "send" else f"{kind}_subscribers"
        key = {"list": "listid", "segment": "segmentid", "tag": "tagid", "send": "statid"}[kind]
        got[f"pinpointe_{stream}"] += [{key: unit, **row} for row in rows]
    for stream, rows in got.items():
        assert rows == truth[stream], stream
        assert len(rows) == dataset.counts()[stream]
    assert len(pp.api.submission_log) == len(jobs)


def test_a_dropped_download_resumes_with_range(pp: Pinpointe) -> None:
    record = pp.until_done(pp.submit("send", "5001"))
    link = link_of(record)
    whole = download(link)
    faults = pp.api.download_faults
    faults.reset()
    faults.arm(drop_after_bytes=5000)
    parts = urlsplit(link)
    connection = http.client.HTTPConnection(parts.netloc, timeout=10)
    connection.request("GET", parts.path)
    cut = connection.getresponse()
    assert cut.headers["Content-Length"] == str(len(whole))
    with pytest.raises(http.client.IncompleteRead) as short:
        cut.read()
    connection.close()
    got = short.value.partial
    assert len(got) == 5000
    rest = requests.get(link, headers={"Range": f"bytes={len(got)}-"}, timeout=10)
    assert rest.status_code == 206
    assert rest.headers["Content-Range"] == f"bytes 5000-{len(whole) - 1}/{len(whole)}"
    assert bytes(got) + rest.content == whole
    assert (faults.downloads_started, faults.resumed_downloads) == (2, 1)
    late = requests.get(link, headers={"Range": f"bytes={len(whole)}-"}, timeout=10)
    assert late.status_code == 416
    missing = requests.get(link.rsplit("/", 1)[0] + "/nothing.json", timeout=10)
    assert missing.status_code == 404
    outside = requests.get(link.rsplit("/", 1)[0] + "/..%2f..%2fetc%2fpasswd", timeout=10)
    assert outside.status_code == 404


def test_jobs_not_found_unknown_ids_left_out_and_all_jobs_without_ids(pp: Pinpointe) -> None:
    status, answer = pp.call("API", "AsyncJobStatus")
    assert (status, answer["errormessage"]) == (400, JOBS_NOT_FOUND)
    first, second = pp.submit("tag", "1"), pp.submit("tag", "2")
    status, answer = pp.call("API", "AsyncJobStatus", {"jobids": ["nope", "gone"]})
    assert (status, answer["errormessage"]) == (400, JOBS_NOT_FOUND)
    mixed = records_of(pp.status(["nope", second]))
    assert [r["jobId" if "jobId" in r else "jobid"] for r in mixed] == [second]
    assert [r["jobid"] for r in records_of(pp.status())] == [first, second]
    assert [r["jobid"] for r in records_of(pp.status([]))] == [first, second]


# ------------------------------------------------------------------------------ job faults
def test_failing_jobs_by_unit_and_by_count(pp: Pinpointe) -> None:
    pp.api.faults.fail_units = {"list:3"}
    pp.api.faults.fail_next = 1
    first, failing, fine = pp.submit("tag", "1"), pp.submit("list", "3"), pp.submit("list", "2")
    for jid in (first, failing):
        record = pp.until_done(jid)
        assert record["status"] == "failed"
        assert "failed" in record["message"]
        assert "url" not in record
    assert pp.until_done(fine)["status"] == "complete"
    assert pp.api.faults.fail_next == 0


def test_stalled_jobs_stay_processing(pp: Pinpointe) -> None:
    pp.api.faults.stall_units = {"segment:1"}
    pp.api.faults.stall_next = 1
    stalled_by_count, stalled = pp.submit("tag", "2"), pp.submit("segment", "1")
    for _ in range(8):
        words = {
            r["jobid"]: r["status"] for r in records_of(pp.status([stalled_by_count, stalled]))
        }
    assert words == {stalled_by_count: "processing", stalled: "processing"}
    assert pp.until_done(pp.submit("segment", "2"))["status"] == "complete"


def test_a_forgotten_job_is_not_found_while_in_flight(pp: Pinpointe) -> None:
    pp.api.faults.forget_units = {"send:5002": 1}
    jid, other = pp.submit("send", "5002"), pp.submit("send", "5003")
    assert records_of(pp.status([jid]))[0]["status"] == "waiting"
    status, answer = pp.call("API", "AsyncJobStatus", {"jobids": [jid]})
    assert (status, answer["errormessage"]) == (400, JOBS_NOT_FOUND)
    assert [r["jobid"] for r in records_of(pp.status([jid, other]))] == [other]
    again = pp.submit("send", "5002")  # the next job of the unit is served
    assert pp.until_done(again)["status"] == "complete"
    assert pp.api.faults.forget_units == {"send:5002": 0}


def test_unknown_status_word_and_another_done_word(pp: Pinpointe) -> None:
    pp.api.faults.unknown_status_units = {"tag:3"}
    pp.api.shapes.done_word = "finished"
    odd = pp.submit("tag", "3")
    for _ in range(5):
        assert records_of(pp.status([odd]))[0]["status"] == "on hold"
    assert pp.until_done(pp.submit("tag", "1"))["status"] == "finished"


def test_malformed_result_is_cut_mid_object(pp: Pinpointe) -> None:
    pp.api.faults.malformed_units = {"list:1", "segment:1"}
    jid = pp.submit("list", "1")
    body = download(link_of(pp.until_done(jid)))
    with pytest.raises(json.JSONDecodeError):
        json.loads(body)
    assert body.count(b'"subscriberid"') == 2  # one whole record, then half of the next
    assert not body.rstrip().endswith(b"}")
    assert pp.api.job(jid) is not None
    assert pp.api.job(jid)["records"] == 1  # type: ignore[index]
    good = parse(download(link_of(pp.until_done(pp.submit("list", "2")))))
    assert len(good) == pp.api.dataset.counts_by_unit()["list:2"]
    cut = download(link_of(pp.until_done(pp.submit("segment", "1", format="csv"))))
    with pytest.raises(csv.Error):
        list(csv.reader(io.StringIO(cut.decode(), newline=""), strict=True))


def test_job_limit_answers_too_many_jobs(pp: Pinpointe) -> None:
    pp.api.jobs.configure(limit=2)
    first = pp.submit("tag", "1")
    pp.submit("tag", "2")
    status, answer = pp.call("Tags", "GetTagSubscribersAsync", {"tag": ["3"], "notify": NOTIFY})
    assert (status, answer["errormessage"]) == (400, JOB_LIMIT_ERROR)
    assert pp.api.rejected_submissions == 1
    pp.until_done(first)
    pp.submit("tag", "3")
    assert pp.api.max_in_flight == 2


# ------------------------------------------------------------------------------ shapes
@pytest.mark.parametrize("key", ["jobid", "job_id", "jobId", "bare"])
def test_job_id_key_switch(pp: Pinpointe, key: str) -> None:
    pp.api.shapes.job_id_key = key
    status, answer = pp.call("Lists", "GetListSubscribersAsync", {"list": ["1"], "notify": NOTIFY})
    assert status == 200
    data = answer["data"]
    jid = data if key == "bare" else data[key]
    assert isinstance(jid, str)
    if key != "bare":
        assert {"timeelapsed", "timestamp"} <= set(data)
    (record,) = records_of(pp.status([jid]))
    assert record["jobid" if key == "bare" else key] == jid


def test_job_id_keys_differ_by_call_by_default(pp: Pinpointe) -> None:
    keys = {}
    for method, details in (
        ("Lists/GetListSubscribersAsync", {"list": ["1"]}),
        ("Segments/GetSegmentSubscribersAsync", {"segmentid": ["1"]}),
        ("Tags/GetTagSubscribersAsync", {"tag": ["1"]}),
    ):
        keys[method] = next(iter(pp.ok(*method.split("/"), details | {"notify": NOTIFY})["data"]))
    assert list(keys.values()) == ["jobid", "job_id", "jobId"]


@pytest.mark.parametrize("key", ["url", "downloadurl", "result.url", None])
def test_link_key_switch_and_relative_links(pp: Pinpointe, key: str | None) -> None:
    pp.api.shapes.link_key = key
    record = pp.until_done(pp.submit("tag", "1"))
    if key == "result.url":
        assert set(record["result"]) == {"url"}
    elif key is not None:
        assert key in record
    else:
        assert "result" in record  # tags' default
    assert link_of(record).startswith("http://127.0.0.1:")
    pp.api.shapes.relative_links = True
    (again,) = records_of(pp.status([record["jobid"]]))
    assert link_of(again).startswith("/pinpointe/results/")


@pytest.mark.parametrize("holder", ["array", "object", "lines"])
def test_json_holders_hold_the_same_records(pp: Pinpointe, holder: str) -> None:
    pp.api.shapes.json_holder = holder
    body = download(link_of(pp.until_done(pp.submit("segment", "2"))))
    first = body.lstrip()[:1]
    assert first == (b"[" if holder == "array" else b"{")
    rows = parse(body)
    truth = pp.api.dataset.truth()["pinpointe_segment_subscribers"]
    assert rows == [{k: v for k, v in r.items() if k != "segmentid"} for r in truth
                    if r["segmentid"] == "2"]  # fmt: skip
    assert rows
    if holder == "lines":
        assert len(body.splitlines()) == len(rows)


def test_segment_csv_has_custom_fields_as_columns(pp: Pinpointe) -> None:
    rows = parse(download(link_of(pp.until_done(pp.submit("segment", "1", format="csv")))))
    truth = [r for r in pp.api.dataset.truth()["pinpointe_segment_subscribers"]
             if r["segmentid"] == "1"]  # fmt: skip
    assert [r["subscriberid"] for r in rows] == [t["subscriberid"] for t in truth]
    for row, want in zip(rows, truth, strict=True):
        assert row["status"] == want["status"]
        for field in want["customfields"]:
            assert row[field["fieldname"]] == field["fieldvalue"]
    assert any(row["City"] == "" for row in rows)  # some custom values are empty


def test_nested_activity_flattens_to_the_flat_truth(pp: Pinpointe) -> None:
    pp.api.shapes.activity = "nested"
    rows = parse(download(link_of(pp.until_done(pp.submit("send", "5004")))))
    flat = []
    for contact in rows:
        assert set(contact) == {"subscriberid", "emailaddress", "opens", "clicks"}
        for kind in ("opens", "clicks"):
            for event in contact[kind]:
                flat.append(
                    {
                        "subscriberid": contact["subscriberid"],
                        "eventtype": kind[:-1],
                        "eventtime": event["time"],
                        "linkurl": event.get("url"),
                    }
                )
    truth = [
        {k: r.get(k) for k in ("subscriberid", "eventtype", "eventtime", "linkurl")}
        for r in pp.api.dataset.truth()["pinpointe_newsletter_activity"]
        if r["statid"] == "5004"
    ]
    key = lambda r: (r["subscriberid"], r["eventtype"], r["eventtime"], r["linkurl"] or "")  # noqa: E731
    assert sorted(flat, key=key) == sorted(truth, key=key)


@pytest.mark.parametrize(
    ("style", "sample"),
    [("epoch", "1704"), ("zulu", "Z"), ("offset", "+02:00"), ("datetime", " ")],
)
def test_activity_time_styles(pp: Pinpointe, style: str, sample: str) -> None:
    pp.api.shapes.time_style = style
    rows = parse(download(link_of(pp.until_done(pp.submit("send", "5001")))))
    assert all(sample in row["eventtime"] for row in rows)


def test_activity_has_identical_events(pp: Pinpointe) -> None:
    rows = pp.api.dataset.truth()["pinpointe_newsletter_activity"]
    keys = [(r["statid"], r["subscriberid"], r["eventtype"], r["eventtime"], r.get("linkurl"))
            for r in rows]  # fmt: skip
    doubles = {k for k in keys if keys.count(k) > 1}
    assert any(k[2] == "open" for k in doubles)
    assert any(k[2] == "click" for k in doubles)
    assert 1500 <= len(rows) <= 3000


# ------------------------------------------------------------------------------ data
def test_list_date_filter_is_on_subscribedate_with_enddate_exclusive(pp: Pinpointe) -> None:
    dataset = pp.api.dataset
    start = epoch(date(2024, 1, 1))
    for listid in ("1", "2"):
        jid = pp.submit("list", listid, startdate="20240101", enddate="20240102")
        rows = parse(download(link_of(pp.until_done(jid))))
        added = [int(r["subscribedate"]) for r in rows]
        assert rows
        assert all(start <= at < start + 86_400 for at in added)
        expected = [
            s.subscriberid
            for s in dataset.members("list", listid)
            if start <= dict(s.lists)[listid] < start + 86_400
        ]
        assert [r["subscriberid"] for r in rows] == expected
    # Subscriber 100001 joined list 1 at 2024-01-01 00:00:00; 100002 list 2 a second before.
    truth = dataset.truth()["pinpointe_list_subscribers"]
    assert any(r["subscriberid"] == "100001" and r["listid"] == "1" for r in truth)
    assert not any(r["subscriberid"] == "100002" and r["listid"] == "2" for r in truth)
    everyone = sum(dataset.counts_by_unit()[f"list:{u}"] for u in dataset.list_ids())
    assert 0 < len(truth) < everyone


def test_the_generator_is_seeded_and_counts_match_truth() -> None:
    one, two = PinpointeDataset(SPEC), PinpointeDataset(SPEC)
    assert one.truth() == two.truth()
    other = PinpointeDataset(PinpointeDataSpec(seed=2)).truth()
    assert other["pinpointe_newsletter_activity"] != one.truth()["pinpointe_newsletter_activity"]
    truth = one.truth()
    assert {k: len(v) for k, v in truth.items()} == one.counts()
    statuses = {r["status"] for r in truth["pinpointe_segment_subscribers"]}
    assert statuses == {"active", "unsubscribed", "bounced"}
    assert all(int(s["starttime"]) < epoch(SPEC.end) for s in truth["pinpointe_newsletter_sends"])


# ------------------------------------------------------------------------------ the sandbox
def test_sandbox_wiring(tmp_path: Path) -> None:
    with Sandbox(tmp_path / "box", acoustic=None) as box:
        config = box.pinpointe_config(max_attempts=5)
        assert config["host"] == box.http.url + "/pinpointe"
        assert config["max_attempts"] == 5
        assert config["notify_type"] == "email"
        body = {
            "username": config["username"],
            "usertoken": config["usertoken"],
            "requesttype": "Lists",
            "requestmethod": "GetLists",
        }
        answer = requests.post(config["host"] + "/apijson.php", json=body, timeout=10).json()
        assert answer["status"] == "SUCCESS"
        tap = box.tap_config(vendors=("exacttarget", "pinpointe"))
        assert tap["pinpointe"] == box.pinpointe_config()
        assert tap["start_date"] == "2024-01-01"
        alone = box.tap_config(vendors=("pinpointe",))
        assert (alone["start_date"], alone["end_date"]) == ("2024-01-01", "2024-01-15")
        counts = box.ground_truth_counts(vendors=("pinpointe",))
        assert counts == {k: len(v) for k, v in box.pinpointe_truth().items()}
        assert set(counts) == set(STREAMS)
        assert set(box.ground_truth_counts(vendors=("exacttarget", "pinpointe"))) >= set(STREAMS)
    with Sandbox(tmp_path / "off", acoustic=None, pinpointe=None) as off:
        with pytest.raises(ValueError, match="pinpointe=None"):
            off.tap_config(vendors=("pinpointe",))
        assert requests.post(off.http.url + "/pinpointe/apijson.php", timeout=10).status_code == 404


BENCH = """
import json, resource, sys, time
from pathlib import Path
from werkzeug.test import Client
from vendor_sandbox.jobs import JobSettings
from vendor_sandbox.pinpointe.api import PinpointeApi
from vendor_sandbox.pinpointe.data import PinpointeDataset, PinpointeDataSpec

spec = PinpointeDataSpec(subscribers=700_000, sends=1, recipients_per_send=600_000)
api = PinpointeApi(PinpointeDataset(spec), Path(sys.argv[1]), username="u", usertoken="t",
                   polls_until_complete=1)
client = Client(api)
def call(rtype, method, details):
    body = {"username": "u", "usertoken": "t", "requesttype": rtype, "requestmethod": method,
            "details": details}
    return client.post("/pinpointe/apijson.php", json=body).get_json()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
jid = call("Newsletters", "GetNewsletterContactDataSummaryAsync",
           {"stat": "5001", "notify": {"type": "email", "value": "a@b"}})["data"]["jobid"]
started = time.perf_counter()
call("API", "AsyncJobStatus", {"jobids": [jid]})
seconds = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"records": api.job(jid)["records"], "seconds": seconds,
                  "grew_kb": peak - before, "bytes": api.files[0].stat().st_size}))
"""


def test_a_million_row_result_file_streams(tmp_path: Path) -> None:
    """Its own process, so the peak RSS is this file's alone (a held row list is ~1 GB)."""
    run = subprocess.run(
        [sys.executable, "-c", BENCH, str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result = json.loads(run.stdout)
    assert result["records"] >= 1_000_000
    assert result["bytes"] > 100_000_000
    assert result["grew_kb"] < 100_000, result  # < 100 MB while writing ~200 MB of rows


def test_timed_jobs_follow_the_clock_not_the_polls(tmp_path: Path) -> None:
    now = [1000.0]
    api = PinpointeApi(
        PinpointeDataset(SPEC),
        tmp_path / "results",
        username=USER,
        usertoken=TOKEN,
        jobs=JobSettings(queued=(5, 5), running=(10, 10)),
        clock=lambda: now[0],
    )
    with HttpServer(api) as server:
        pp = Pinpointe(api, server)
        jid = pp.submit("tag", "1")
        seen = []
        for at in (1000.0, 1004.9, 1005.0, 1014.9, 1015.0):
            now[0] = at
            seen += [r["status"] for r in records_of(pp.status([jid]))] * 2
        assert seen == ["waiting"] * 4 + ["processing"] * 4 + ["complete"] * 2
        assert api.submission_log[0].finished == 1015.0
