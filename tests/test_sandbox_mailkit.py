"""Tests of the Mailkit sandbox itself: the seeded lazy generator and json.fcgi, over real HTTP
(`MailkitSandbox` on a free port, `requests` as the client; no tap code)."""

from __future__ import annotations

import http.client
import itertools
import json
import resource
import time
from collections import Counter
from collections.abc import Iterator
from datetime import date
from typing import Any
from urllib.parse import urlsplit

import msgspec
import pytest
import requests

from vendor_sandbox.mailkit import (
    BOUNCES,
    CAMPAIGNS_LIST,
    FUNCTIONS,
    ID_KEYS,
    MESSAGES,
    REPORT_CAMPAIGN,
    RESPONSES,
    Growth,
    MailkitDataset,
    MailkitDataSpec,
    MailkitFaults,
    MailkitSandbox,
)

STREAM = {BOUNCES: "mailkit_bounces", MESSAGES: "mailkit_messages", RESPONSES: "mailkit_responses"}


class _MessageId(msgspec.Struct):
    """Only the id of a raw.messages row: the scale test checks order and counts, fast."""

    ID_send_message: str


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        self.now += 0.5
        return self.now


@pytest.fixture(scope="module")
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="module")
def mk(clock: FakeClock) -> Iterator[MailkitSandbox]:
    with MailkitSandbox(clock=clock) as sandbox:
        yield sandbox


@pytest.fixture(autouse=True)
def _clean_faults(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "mk" in request.fixturenames:
        request.getfixturevalue("mk").api.faults = MailkitFaults()


def call(
    mk: MailkitSandbox,
    function: str,
    parameters: dict[str, Any] | None = None,
    *,
    md5: str | None = None,
    **top: Any,
) -> requests.Response:
    body = {
        "function": function,
        "id": mk.api.client_id,
        "md5": md5 if md5 is not None else mk.api.client_md5,
        "parameters": parameters or {},
        **top,
    }
    return requests.post(mk.endpoint, json=body, timeout=30)


def rows_of(mk: MailkitSandbox, function: str, parameters: dict[str, Any]) -> list[dict[str, Any]]:
    answer = call(mk, function, parameters)
    assert answer.status_code == 200
    data = answer.json()
    assert isinstance(data, list), data
    return data


def walk(
    mk: MailkitSandbox, function: str, limit: int | None, **filters: str
) -> tuple[list[dict[str, Any]], int]:
    """Page to the end with inclusive start ids (next start = last id; its repeat is dropped)."""
    start_key, id_key = ID_KEYS[function]
    out: list[dict[str, Any]] = []
    start: int | None = None
    pages = 0
    while True:
        params: dict[str, Any] = dict(filters)
        if limit is not None:
            params["limit"] = str(limit)
        if start is not None:
            params[start_key] = str(start)
        page = rows_of(mk, function, params)
        pages += 1
        if start is not None:
            assert page, "an inclusive start at an existing id returns that row"
            assert int(page[0][id_key]) == start
            page = page[1:]
        if not page:
            return out, pages
        out.extend(page)
        start = int(page[-1][id_key])


def call_number(mk: MailkitSandbox, function: str, ahead: int = 1) -> int:
    """The absolute number of the `ahead`-th call of `function` from now."""
    return len(mk.api.calls(function)) + ahead


# --------------------------------------------------------------------------------- envelope
def test_envelope_and_auth(mk: MailkitSandbox) -> None:
    ok = call(mk, BOUNCES, {"limit": "5"})
    assert ok.status_code == 200
    assert ok.headers["Content-Type"].startswith("application/json")
    assert len(ok.json()) == 5
    for answer in (call(mk, BOUNCES, md5="0" * 32), call(mk, BOUNCES, id="999")):
        assert answer.status_code == 200
        assert answer.json() == {"error_status": 1, "error": "Unauthorized"}
    assert call(mk, "mailkit.report.raw.opens").json() == {
        "error_status": 2,
        "error": "Unknown function mailkit.report.raw.opens",
    }
    not_json = requests.post(mk.endpoint, data=b"{nope", timeout=10)
    assert not_json.json() == {"error_status": 2, "error": "Invalid request"}
    assert call(mk, BOUNCES, {"limit": "many"}).json() == {
        "error_status": 2,
        "error": "Invalid limit",
    }
    assert requests.get(mk.endpoint, timeout=10).status_code == 405
    assert requests.post(mk.endpoint + "x", json={}, timeout=10).status_code == 404
    logged = json.dumps(mk.api.requests)
    assert mk.api.client_md5 not in logged
    assert "0" * 32 not in logged


def test_request_log_uses_the_api_clock_and_one_request_at_a_time(
    mk: MailkitSandbox, clock: FakeClock
) -> None:
    before = clock.now
    walk(mk, BOUNCES, 30)
    calls = [r for r in mk.api.calls(BOUNCES) if r["time"] > before]
    assert len(calls) >= 4
    assert all(r["in_flight"] == 1 for r in calls)
    assert all(c["finished"] > c["time"] for c in calls)
    gaps = [b["time"] - a["finished"] for a, b in itertools.pairwise(calls)]
    assert gaps == [0.5] * len(gaps)  # the fake clock ticks 0.5 per reading
    assert calls[0]["parameters"] == {"limit": "30"}
    assert calls[0]["rows"] == 30
    assert calls[1]["parameters"]["ID_undelivered_log"] == str(mk.dataset.row_id(BOUNCES, 29))
    assert mk.api.max_in_flight == 1


# --------------------------------------------------------------------------------- paging
@pytest.mark.parametrize(("function", "limit"), [(BOUNCES, 10), (MESSAGES, 250), (RESPONSES, 300)])
def test_each_raw_function_paged_to_the_end_equals_the_truth(
    mk: MailkitSandbox, function: str, limit: int
) -> None:
    rows, pages = walk(mk, function, limit)
    truth = mk.truth()[STREAM[function]]
    assert rows == truth
    assert pages > 5
    ids = [int(r[ID_KEYS[function][1]]) for r in rows]
    assert ids == sorted(set(ids))
    assert any(b - a > 1 for a, b in itertools.pairwise(ids))  # ids have gaps


def test_start_ids_between_rows_and_before_the_first(mk: MailkitSandbox) -> None:
    truth = mk.truth()["mailkit_responses"]
    ids = [r["ID_log"] for r in truth]
    gap = next(i for i in range(1, len(ids)) if ids[i] - ids[i - 1] > 1)
    page = rows_of(mk, RESPONSES, {"ID_log": str(ids[gap] - 1), "limit": "3"})
    assert page == truth[gap : gap + 3]
    assert rows_of(mk, RESPONSES, {"ID_log": "1", "limit": "2"}) == truth[:2]
    assert rows_of(mk, RESPONSES, {"ID_log": ids[-1] + 1}) == []
    assert rows_of(mk, RESPONSES, {"ID_log": ids[-1], "limit": 7}) == truth[-1:]


def test_a_page_boundary_exactly_at_the_cap() -> None:
    spec = MailkitDataSpec(campaigns=1, sends_per_campaign=2, recipients_per_send=25_000)
    with MailkitSandbox(spec) as big:
        assert big.counts()["mailkit_messages"] == 50_000
        first = rows_of(big, MESSAGES, {"limit": "100000"})  # capped
        assert len(first) == 25_000
        after = int(first[-1]["ID_send_message"]) + 1
        second = rows_of(big, MESSAGES, {"ID_send_message": str(after)})  # default limit
        assert len(second) == 25_000
        assert second[-1]["ID_send_message"] == str(big.dataset.row_id(MESSAGES, 49_999))
        last = int(second[-1]["ID_send_message"])
        assert rows_of(big, MESSAGES, {"ID_send_message": str(last + 1)}) == []
        assert [r["ID_send_message"] for r in first[:3] + second[:3]] == [
            str(big.dataset.row_id(MESSAGES, i)) for i in (0, 1, 2, 25_000, 25_001, 25_002)
        ]


# --------------------------------------------------------------------------------- filters
def test_filters_by_campaign_and_send(mk: MailkitSandbox) -> None:
    truth = mk.truth()
    campaign = truth["mailkit_campaigns"][1]["ID_MESSAGE"]
    sends = [s["ID_SEND"] for s in truth["mailkit_sends"] if s["ID_MESSAGE"] == campaign]
    other_send = next(s["ID_SEND"] for s in truth["mailkit_sends"] if s["ID_MESSAGE"] != campaign)
    for function in FUNCTIONS:
        key = "ID_MESSAGE" if function == BOUNCES else "ID_message"
        send_key = "ID_SEND" if function == BOUNCES else "ID_send"
        everything = truth[STREAM[function]]
        by_campaign, _ = walk(mk, function, 40, ID_message=str(campaign))
        assert by_campaign == [r for r in everything if r[key] == str(campaign)]
        assert by_campaign
        by_send, _ = walk(mk, function, 40, ID_send=sends[2])
        assert by_send == [r for r in everything if r[send_key] == sends[2]]
        assert by_send
        both = rows_of(mk, function, {"ID_message": campaign, "ID_send": sends[2]})
        assert both == by_send[: len(both)]
        assert rows_of(mk, function, {"ID_message": str(campaign), "ID_send": other_send}) == []
        assert rows_of(mk, function, {"ID_send": "1"}) == []
    filtered = mk.truth(send_ids=[sends[2]])
    assert mk.counts(send_ids=[sends[2]]) == {k: len(v) for k, v in filtered.items()}


def test_letter_case_and_value_types(mk: MailkitSandbox) -> None:
    bounce = rows_of(mk, BOUNCES, {"limit": "1"})[0]
    assert "ID_SEND_MESSGE" in bounce
    assert "ID_SEND_MESSAGE" not in bounce
    assert all(k == k.upper() for k in bounce)
    assert all(isinstance(v, str) for v in bounce.values())
    message = rows_of(mk, MESSAGES, {"limit": "1"})[0]
    assert {"ID_send_message", "type_message", "email_date", "custom_25"} <= set(message)
    assert isinstance(message["ID_send_message"], str)
    assert isinstance(message["ID_template"], int)
    responses = rows_of(mk, RESPONSES, {"limit": "500"})
    assert {r["type"] for r in responses} == {"open", "click", "unsubscribe"}
    assert all(isinstance(r["ID_log"], int) for r in responses)
    assert all(isinstance(r["ID_send_message"], int) for r in responses)
    for r in responses:
        assert (r["ID_url"] is not None) == (r["type"] == "click") == bool(r["link_url"])
    bounced = {b["ID_SEND_MESSGE"] for b in mk.truth()["mailkit_bounces"]}
    sent = {m["ID_send_message"] for m in mk.truth()["mailkit_messages"]}
    assert bounced <= sent
    assert not bounced & {str(r["ID_send_message"]) for r in mk.truth()["mailkit_responses"]}


def test_responses_are_dated_after_their_send_in_the_account_zone(mk: MailkitSandbox) -> None:
    truth = mk.truth()
    sent = {m["ID_send_message"]: m["date_sent"] for m in truth["mailkit_messages"]}
    for r in truth["mailkit_responses"]:
        assert r["date"] > sent[str(r["ID_send_message"])]
    days = {m["date_sent"][:10] for m in truth["mailkit_messages"]}
    assert min(days) == "2024-01-01"
    assert max(days) < "2024-02-01"
    assert truth["mailkit_sends"][0]["DATE"] == "2024-01-01 09:00:00"  # 08:00 UTC


# --------------------------------------------------------------------------------- enumeration
def test_campaigns_list(mk: MailkitSandbox) -> None:
    truth = mk.truth()["mailkit_campaigns"]
    assert rows_of(mk, CAMPAIGNS_LIST, {}) == truth
    one = truth[2]["ID_MESSAGE"]
    assert isinstance(one, int)
    assert call(mk, CAMPAIGNS_LIST, ID_message=str(one)).json() == [truth[2]]
    assert call(mk, CAMPAIGNS_LIST, ID_message=one).json() == [truth[2]]
    assert call(mk, CAMPAIGNS_LIST, ID_message="999").json() == []
    # Inside `parameters` it is not read: the documented place is the top level.
    assert rows_of(mk, CAMPAIGNS_LIST, {"ID_message": str(one)}) == truth


def test_report_campaign_sends(mk: MailkitSandbox) -> None:
    truth = mk.truth()
    collected = []
    for campaign in truth["mailkit_campaigns"]:
        for row in rows_of(mk, REPORT_CAMPAIGN, {"ID_message": str(campaign["ID_MESSAGE"])}):
            collected.append({**row, "ID_MESSAGE": campaign["ID_MESSAGE"]})
    assert collected == truth["mailkit_sends"]
    assert len(collected) == 12
    assert call(mk, REPORT_CAMPAIGN, {}).json() == {
        "error_status": 2,
        "error": "Missing ID_message",
    }
    assert call(mk, REPORT_CAMPAIGN, {"ID_message": "999"}).json() == []
    first = truth["mailkit_campaigns"][0]["ID_MESSAGE"]
    days = [s["DATE"][:10] for s in truth["mailkit_sends"] if s["ID_MESSAGE"] == first]
    ranged = rows_of(
        mk, REPORT_CAMPAIGN, {"ID_message": first, "range_from": days[1], "range_to": days[2]}
    )
    assert [r["DATE"][:10] for r in ranged] == days[1:3]
    assert call(mk, REPORT_CAMPAIGN, {"ID_message": first, "range_from": "1.1.2024"}).json() == {
        "error_status": 2,
        "error": "Invalid range_from",
    }


def test_report_campaign_counts_match_the_raw_rows(mk: MailkitSandbox) -> None:
    truth = mk.truth()
    for send in truth["mailkit_sends"]:
        sid = send["ID_SEND"]
        kinds = Counter(r["type"] for r in truth["mailkit_responses"] if r["ID_send"] == sid)
        bounces = sum(1 for b in truth["mailkit_bounces"] if b["ID_SEND"] == sid)
        messages = sum(1 for m in truth["mailkit_messages"] if m["ID_send"] == sid)
        readers = {r["ID_send_message"] for r in truth["mailkit_responses"]
                   if r["ID_send"] == sid and r["type"] == "open"}  # fmt: skip
        assert send["SEND_COUNT"] == messages
        assert send["DELIVERED_COUNT"] == messages - bounces
        assert send["READ_COUNT"] == kinds["open"]
        assert send["READ_COUNT_U"] == len(readers)
        assert send["CLICK_COUNT"] == kinds["click"]
        assert send["UNSUBSCRIBE"] == kinds["unsubscribe"]


def test_report_campaign_defaults_to_three_months_before_today() -> None:
    with MailkitSandbox(today=date(2024, 4, 30)) as late:
        campaign = late.truth()["mailkit_campaigns"][0]["ID_MESSAGE"]
        # 2024-01-30 .. 2024-04-30: none of January's sends but an explicit range finds them.
        assert rows_of(late, REPORT_CAMPAIGN, {"ID_message": campaign}) == []
        assert rows_of(late, REPORT_CAMPAIGN, {"ID_message": campaign, "range_from": "2024-01-01"})
    with MailkitSandbox(today=date(2024, 3, 31)) as edge:  # from 2023-12-31: every send
        campaign = edge.truth()["mailkit_campaigns"][0]["ID_MESSAGE"]
        assert len(rows_of(edge, REPORT_CAMPAIGN, {"ID_message": campaign})) == 4


# --------------------------------------------------------------------------------- faults
def test_fault_unauthorized_and_disallowed_ip(mk: MailkitSandbox) -> None:
    mk.api.faults.unauthorized = True
    assert call(mk, MESSAGES).json() == {"error_status": 1, "error": "Unauthorized"}
    mk.api.faults.unauthorized = False
    mk.api.faults.disallowed_ip = True
    assert call(mk, CAMPAIGNS_LIST).json() == {
        "error_status": 1,
        "error": "Disallowed IP 127.0.0.1",
    }
    mk.api.faults.disallowed_ip = False
    assert isinstance(call(mk, CAMPAIGNS_LIST).json(), list)


def test_fault_error_status_on_a_later_page(mk: MailkitSandbox) -> None:
    mk.api.faults.error_on[MESSAGES] = call_number(mk, MESSAGES, 2)
    first = rows_of(mk, MESSAGES, {"limit": "100"})
    start = {"ID_send_message": first[-1]["ID_send_message"], "limit": "100"}
    assert call(mk, MESSAGES, start).json() == {
        "error_status": 3,
        "error": "Temporary failure, try again",
    }
    retried = rows_of(mk, MESSAGES, start)
    assert retried[0] == first[-1]
    assert len(retried) == 100


def test_fault_page_out_of_order(mk: MailkitSandbox) -> None:
    params = {"ID_log": str(mk.dataset.row_id(RESPONSES, 200)), "limit": "150"}
    clean = rows_of(mk, RESPONSES, params)
    mk.api.faults.shuffle_on[RESPONSES] = call_number(mk, RESPONSES)
    shuffled = rows_of(mk, RESPONSES, params)
    assert shuffled != clean
    assert sorted(shuffled, key=lambda r: r["ID_log"]) == clean


def test_fault_connection_dropped_mid_page(mk: MailkitSandbox) -> None:
    mk.api.faults.drop_on[MESSAGES] = call_number(mk, MESSAGES)
    mk.api.faults.drop_after_bytes = 1000
    url = urlsplit(mk.endpoint)
    connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=10)
    body = {"function": MESSAGES, "id": mk.api.client_id, "md5": mk.api.client_md5}
    connection.request("POST", url.path, json.dumps(body), {"Content-Type": "application/json"})
    answer = connection.getresponse()
    announced = int(answer.headers["Content-Length"])
    full = len(msgspec.json.encode(mk.truth()["mailkit_messages"]))
    assert announced == full
    with pytest.raises(http.client.IncompleteRead) as cut:
        answer.read()
    assert len(cut.value.partial) == 1000
    connection.close()
    assert len(rows_of(mk, MESSAGES, {})) == 1800  # the next call is whole


def test_fault_answer_cut_short(mk: MailkitSandbox) -> None:
    mk.api.faults.truncate_on[BOUNCES] = call_number(mk, BOUNCES)
    answer = call(mk, BOUNCES, {"limit": "50"})
    assert answer.status_code == 200
    assert int(answer.headers["Content-Length"]) == len(answer.content)
    assert answer.content.startswith(b"[{")
    with pytest.raises(ValueError, match=r"."):
        json.loads(answer.content)


def test_fault_html_page(mk: MailkitSandbox) -> None:
    mk.api.faults.html_on[CAMPAIGNS_LIST] = call_number(mk, CAMPAIGNS_LIST)
    answer = call(mk, CAMPAIGNS_LIST)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/html")
    assert answer.text.startswith("<!DOCTYPE html>")
    assert isinstance(call(mk, CAMPAIGNS_LIST).json(), list)


def test_fault_http_500_and_429(mk: MailkitSandbox) -> None:
    mk.api.faults.http_errors = [500, 429, 429]
    mk.api.faults.retry_after = "7"
    statuses = [call(mk, BOUNCES) for _ in range(4)]
    assert [a.status_code for a in statuses] == [500, 429, 429, 200]
    assert statuses[1].headers["Retry-After"] == "7"
    assert "Retry-After" not in statuses[0].headers
    assert isinstance(statuses[3].json(), list)


def test_rows_added_during_a_walk_appear_past_the_end() -> None:
    with MailkitSandbox() as grown:
        base = grown.truth()
        grown.api.faults.growth = [
            Growth(after_raw_calls=2, function=RESPONSES, rows=37),
            Growth(after_raw_calls=3, function=MESSAGES, rows=5),
        ]
        rows, _ = walk(grown, RESPONSES, 400)
        assert grown.dataset.grown == {BOUNCES: 0, MESSAGES: 5, RESPONSES: 37}
        assert len(rows) == len(base["mailkit_responses"]) + 37
        assert rows[: len(base["mailkit_responses"])] == base["mailkit_responses"]
        assert rows == grown.truth()["mailkit_responses"]
        last_send = base["mailkit_sends"][-1]["ID_SEND"]
        assert {r["ID_send"] for r in rows[-37:]} == {last_send}
        # The truth at an earlier moment: before any growth.
        assert grown.truth(grown={})["mailkit_responses"] == base["mailkit_responses"]
        assert grown.counts()["mailkit_messages"] == 1805
        assert grown.counts(grown={})["mailkit_messages"] == 1800
        messages, _ = walk(grown, MESSAGES, None, ID_send=last_send)
        assert len(messages) == 150 + 5


# --------------------------------------------------------------------------------- scale
def test_a_million_rows_in_40_pages_is_fast_and_small() -> None:
    spec = MailkitDataSpec(campaigns=4, sends_per_campaign=5, recipients_per_send=50_000)
    dataset = MailkitDataset(spec)
    assert dataset.counts()["mailkit_messages"] == 1_000_000  # arithmetic, no rows built
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with MailkitSandbox(spec) as big:
        session = requests.Session()
        start, pages, total, seconds = 0, 0, 0, []
        last_id = 0
        while True:
            body = {
                "function": MESSAGES,
                "id": big.api.client_id,
                "md5": big.api.client_md5,
                "parameters": {"ID_send_message": str(start)},
            }
            began = time.perf_counter()
            answer = session.post(big.endpoint, json=body, timeout=30)
            page = msgspec.json.decode(answer.content, type=list[_MessageId])
            seconds.append(time.perf_counter() - began)
            if not page:
                break
            pages += 1
            total += len(page)
            first_id, last = int(page[0].ID_send_message), int(page[-1].ID_send_message)
            assert first_id > last_id
            last_id = last
            start = last + 1
            del page, answer
    rss_growth_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    assert (pages, total) == (40, 1_000_000)
    assert last_id == dataset.row_id(MESSAGES, 999_999)
    # Page times are the benchmark's business (benchmarks/mailkit_throughput.py), not a test's.
    # Holding the rows would take gigabytes; one page in flight is tens of megabytes.
    assert rss_growth_mb < 400, rss_growth_mb
