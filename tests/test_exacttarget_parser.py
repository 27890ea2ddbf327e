"""The ExactTarget XML parser on hand-written documents: the seed page's example, the shapes the
vendor page leaves open (docs/exacttarget.md), keys, time zones and malformed values."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from tap_emailtracking.errors import CorruptFileError
from tap_emailtracking.timestamps import LocalTimeFormatter, zone
from tap_emailtracking.vendors.exacttarget.parser import KINDS, ExportParser

SEED = Path(__file__).parent / "data" / "exacttarget_seed_example.xml"


def parse(document: bytes, kinds: tuple[str, ...] = KINDS) -> dict[str, list[dict[str, Any]]]:
    parser = ExportParser(
        LocalTimeFormatter(zone("America/Chicago")), stream="exacttarget_x", subject="f.xml"
    )
    out: dict[str, list[dict[str, Any]]] = {kind: [] for kind in KINDS}
    for batch in parser.parse(io.BytesIO(document), set(kinds)):
        for kind, record in batch:
            out[kind].append(record)
    return out


def wrap(subscriber: str, summary: str = "") -> bytes:
    return (
        "<?xml version='1.0'?><exacttarget><system><tracking><accounts><account>"
        "<memberID>0001</memberID><jobs><job><jobID>42</jobID>"
        f"{summary}<subscribers><subscriber><subscriberID>9</subscriberID><listID>5</listID>"
        f"{subscriber}</subscriber></subscribers></job></jobs></account></accounts>"
        "</tracking></system></exacttarget>"
    ).encode()


def test_the_seed_page_example_parses_completely() -> None:
    got = parse(SEED.read_bytes())
    assert got["jobs"] == [
        {
            "member_id": "0001",
            "job_id": "123456",
            "email_name": "Test Email",
            "email_subject": "This is a test",
            "from_name": "Some User",
            "from_email": "us@example.com",
            "additional": None,
            "is_multipart": True,
            "delivered_at": "2008-01-18T09:25:00-06:00",
            "sent_count": 3,
            "delivered_count": 3,
            "undelivered_count": 0,
            "unsubscribed_count": 0,
            "open_count": 2,
            "unique_click_count": 1,
            "ftaf_email_forwarders": 0,
            "ftaf_new_recipients": 0,
            "ftaf_new_subscribers": 0,
            "conversion_summary": None,
            "extra": None,
        }
    ]
    assert got["job_lists"] == [
        {"member_id": "0001", "job_id": "123456", "list_id": "654321", "list_name": "My List"}
    ]
    assert got["job_links"][0]["url"] == "http://www.example.com"
    assert got["job_links"][0]["percent"] == 0.0
    assert got["subscribers"][0]["first_name"] is None
    assert got["subscribers"][0]["email"] == "jbrown@example.com"
    assert got["opens"] == [
        {
            "member_id": "0001",
            "job_id": "123456",
            "subscriber_id": "1234567890",
            "list_id": "654321",
            "opened_at": "2008-02-02T07:50:00-06:00",
            "ordinal": 0,
        }
    ]
    conversion = got["conversions"][0]
    assert conversion["converted_at"] == "2008-08-18T12:48:00-05:00"  # daylight saving time
    assert conversion["data_set"] == [
        {"amount": 26.36, "unit": "Dollars", "accumulate": True, "attributes": None}
    ]
    for kind in ("clicks", "bounces", "unsubscribes", "survey_responses"):
        assert got[kind] == []


def test_identical_events_get_ordinals_and_distinct_times_do_not() -> None:
    got = parse(
        wrap(
            "<opens><opendate>1/2/2024 9:15:30 AM</opendate><opendate>1/2/2024 9:15:30 AM"
            "</opendate><opendate>1/2/2024 9:15:31 AM</opendate></opens>"
        )
    )
    assert [(r["opened_at"], r["ordinal"]) for r in got["opens"]] == [
        ("2024-01-02T09:15:30-06:00", 0),
        ("2024-01-02T09:15:30-06:00", 1),
        ("2024-01-02T09:15:31-06:00", 0),
    ]


def test_event_shapes_the_vendor_page_leaves_open() -> None:
    got = parse(
        wrap(
            "<Postal__Code>60601</Postal__Code>"
            "<undeliverable><bouncedate>1/3/2024 1:00:00 PM</bouncedate><bouncetype>Hard"
            "</bouncetype><smtpcode>550</smtpcode><reason>no such user</reason></undeliverable>"
            "<clicks><click><clickdate>1/3/2024 12:00:00 AM</clickdate><URL>http://x/?a=1&amp;b=2"
            "</URL><linkname>Buy</linkname><device>mobile</device></click></clicks>"
            "<unsubscribe><unsubdate>1/4/2024 11:59:59 PM</unsubdate><reason/></unsubscribe>"
            "<surveyResponses><surveyResponse><responsedate>1/5/2024 8:00:00 AM</responsedate>"
            "<question>Q?</question><answer>A</answer></surveyResponse></surveyResponses>"
        )
    )
    assert got["subscribers"][0]["attributes"] == {"Postal Code": "60601"}
    bounce = got["bounces"][0]
    assert (bounce["bounced_at"], bounce["bounce_type"], bounce["smtp_code"]) == (
        "2024-01-03T13:00:00-06:00",
        "Hard",
        "550",
    )
    click = got["clicks"][0]
    assert click["clicked_at"] == "2024-01-03T00:00:00-06:00"
    assert click["url"] == "http://x/?a=1&b=2"
    assert click["extra"] == {"device": "mobile"}  # unknown fields are kept, not lost
    unsubscribe = got["unsubscribes"][0]
    assert unsubscribe["unsubscribed_at"] == "2024-01-04T23:59:59-06:00"
    assert unsubscribe["reason"] is None
    assert got["survey_responses"][0]["answer"] == "A"


def test_clicks_as_a_list_of_bare_dates_are_read_too() -> None:
    got = parse(wrap("<clicks><clickdate>1/3/2024 2:00:00 PM</clickdate></clicks>"))
    assert got["clicks"][0]["clicked_at"] == "2024-01-03T14:00:00-06:00"
    assert got["clicks"][0]["url"] is None


def test_only_wanted_kinds_are_built() -> None:
    got = parse(wrap("<opens><opendate>1/2/2024 9:15:30 AM</opendate></opens>"), ("opens",))
    assert len(got["opens"]) == 1
    assert got["subscribers"] == []
    assert got["jobs"] == []


@pytest.mark.parametrize(
    ("fragment", "message"),
    [
        ("<opens><opendate>13/45/2024 9:00:00 AM</opendate></opens>", "unreadable date"),
        ("<opens><opendate>1/2/2024 9:00:00 XM</opendate></opens>", "unreadable date"),
        ("<opens><opendate>1/2/2024 13:00:00 PM</opendate></opens>", "unreadable date"),
        ("<opens><opendate></opendate></opens>", "has no date"),
        ("<undeliverable><reason>x</reason><bouncetype>h</bouncetype></undeliverable>", "no date"),
    ],
)
def test_malformed_values_fail_loudly_with_their_place(fragment: str, message: str) -> None:
    with pytest.raises(CorruptFileError, match=message) as caught:
        parse(wrap(fragment))
    text = str(caught.value)
    assert "member 0001, job 42" in text
    assert "ExactTarget / exacttarget_x (f.xml)" in text


def test_a_non_numeric_count_fails_loudly() -> None:
    summary = "<emailSummary><sentCount>lots</sentCount></emailSummary>"
    with pytest.raises(CorruptFileError, match="<sentCount> is not a whole number: 'lots'"):
        parse(wrap("", summary))


def test_a_subscriber_without_an_id_fails_loudly() -> None:
    document = wrap("").replace(b"<subscriberID>9</subscriberID>", b"")
    with pytest.raises(CorruptFileError, match="has no <subscriberID>"):
        parse(document)


TIMES = [
    "1/2/2024 9:12:27 AM",
    "1/2/2024 9:59:59 PM",
    "1/2/2024 12:00:00 AM",
    "1/2/2024 12:00:00 PM",
    "01/02/2024 09:05:07 am",
    "1/2/2024 13:05:07",
    "1/2/2024 0:00:00",
    "1/2/2024 9:5:7 AM",
    "1/2/2024  9:12:27 AM",
    "1/2/2024 9:12:27  AM",
    "1/2/2024 9:12 AM",
    "1/2/2024 9 AM",
    "1/2/2024",
    "3/10/2024 2:30:00 AM",  # a spring-forward gap in Chicago
    "11/3/2024 1:30:00 AM",  # a fall-back fold in Chicago
    "1/2/2024 9:60:00 AM",
    "1/2/2024 0:10:00 AM",
    "1/2/2024 13:10:00 PM",
    "1/2/2024 9:10:00 XM",
    "1/2/2024 9:10:00 AM PM",
    "2/30/2024 9:10:00 AM",
    "1/2/2024 9:10:00 AM\n",
]


def _time_or_error(parser: ExportParser, raw: str) -> str:
    try:
        return parser.timestamp(raw)
    except CorruptFileError as error:
        return f"error: {error}"


@pytest.mark.parametrize("order", ["forward", "backward"])
def test_a_remembered_hour_gives_the_same_time_as_parsing_in_full(order: str) -> None:
    """The fast path (day, hour and meridiem seen before) answers exactly like the full parse,
    errors included, whatever came first."""
    times = TIMES if order == "forward" else TIMES[::-1]
    variants = [t.replace(":27", f":{s:02d}") for t in times for s in (27, 0, 59)]
    formatter = LocalTimeFormatter(zone("America/Chicago"))
    warm = ExportParser(formatter, stream="exacttarget_x", subject="f.xml")
    results = [_time_or_error(warm, raw) for raw in variants + variants]
    assert warm._heads  # the fast path was taken
    for raw, got in zip(variants + variants, results, strict=True):
        fresh = ExportParser(formatter, stream="exacttarget_x", subject="f.xml")
        try:
            want = fresh._parse_timestamp(raw, None)
        except CorruptFileError as error:
            want = f"error: {error}"
        assert got == want, raw
    assert warm.timestamp("1/2/2024 9:12:27 PM") == "2024-01-02T21:12:27-06:00"
    assert any(r.startswith("error:") for r in results)
