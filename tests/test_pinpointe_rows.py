"""Pinpointe's value readers and record shapes (docs/pinpointe.md), without a server."""

from __future__ import annotations

import pytest

from tap_emailtracking.jobs import JobState
from tap_emailtracking.vendors.pinpointe.client import find_job_id, find_link, job_status, next_page
from tap_emailtracking.vendors.pinpointe.rows import (
    ActivityMapper,
    BadValueError,
    custom_fields,
    subscriber_record,
    utc_time,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1704067200", "2024-01-01T00:00:00+00:00"),
        (1704070861, "2024-01-01T01:01:01+00:00"),
        ("1704067200000", "2024-01-01T00:00:00+00:00"),
        ("2024-01-01 09:30:05", "2024-01-01T09:30:05+00:00"),
        ("2024-01-01T09:30:05Z", "2024-01-01T09:30:05+00:00"),
        ("2024-01-01T11:30:05+02:00", "2024-01-01T09:30:05+00:00"),
        ("2024-01-01T09:30:05", "2024-01-01T09:30:05+00:00"),
        ("20240102", "2024-01-02T00:00:00+00:00"),
        (" 1704067200 ", "2024-01-01T00:00:00+00:00"),
        ("0", None),
        ("", None),
        (None, None),
        ("0000-00-00 00:00:00", None),
    ],
)
def test_every_time_spelling_becomes_utc(value: object, expected: str | None) -> None:
    assert utc_time(value) == expected


@pytest.mark.parametrize("value", ["2024-13-01 00:00:00", "yesterday", "2024-01-01 25:00:00"])
def test_a_time_in_no_known_format_is_refused(value: str) -> None:
    with pytest.raises(BadValueError):
        utc_time(value)


def test_custom_fields_from_field_objects_or_an_object_empty_values_null() -> None:
    listed = [
        {"fieldid": "2", "fieldname": "First Name", "fieldvalue": "Ann"},
        {"FieldName": "City", "Value": ""},
        {"name": "Plan", "data": "gold"},
    ]
    assert custom_fields(listed) == {"First Name": "Ann", "City": None, "Plan": "gold"}
    assert custom_fields({"City": "", "Zip": "75001"}) == {"City": None, "Zip": "75001"}
    assert custom_fields([]) is None
    with pytest.raises(BadValueError):
        custom_fields([{"fieldvalue": "no name"}])


def test_subscriber_keys_are_read_in_any_case_and_unknown_fields_kept() -> None:
    raw = {
        "SubscriberID": "7",
        "EmailAddress": "a@example.com",
        "Confirmed": "0",
        "SubscribeDate": "1704067200",
        "ListID": "3",
        "CustomFields": {"City": "Lyon"},
        "Membership": ["5"],
        "score": "12",
    }
    record = subscriber_record(raw, unit_column="list_id", unit_id="3", snapshot_at="t", job_id="j")
    assert record["subscriber_id"] == "7"
    assert record["confirmed"] is False
    assert record["subscribed_at"] == "2024-01-01T00:00:00+00:00"
    assert record["custom_fields"] == {"City": "Lyon"}
    assert record["membership"] == ["5"]
    assert record["extra"] == {"score": "12"}
    assert record["list_id"] == "3"
    with pytest.raises(BadValueError):
        subscriber_record(
            {"emailaddress": "x"}, unit_column="list_id", unit_id="3", snapshot_at="t", job_id="j"
        )


def test_identical_events_get_ordinals_and_nested_contacts_explode() -> None:
    mapper = ActivityMapper("5001", "job-1")
    flat = {"subscriberid": "1", "eventtype": "Open", "eventtime": "2024-01-01 10:00:00"}
    first, second = [next(iter(mapper.records(flat))) for _ in range(2)]
    assert (first["ordinal"], second["ordinal"]) == (0, 1)
    assert first["event_type"] == "open"
    nested = {
        "subscriberid": "2",
        "opens": [{"time": "1704103200"}, "1704103200"],
        "clicks": [{"time": "1704103260", "url": "https://x.example/"}],
    }
    events = list(mapper.records(nested))
    assert [(e["event_type"], e["ordinal"], e["url"]) for e in events] == [
        ("open", 0, None),
        ("open", 1, None),
        ("click", 0, "https://x.example/"),
    ]
    # Two clicks in one second on different links: two rows, the key told apart by the ordinal.
    links = [
        {"subscriberid": "4", "type": "click", "time": "1704103300", "linkurl": url}
        for url in ("https://a.example/", "https://b.example/")
    ]
    assert [next(iter(mapper.records(raw)))["ordinal"] for raw in links] == [0, 1]
    with pytest.raises(BadValueError):
        list(mapper.records({"subscriberid": "3", "eventtype": "open"}))


def test_answer_shapes_job_ids_links_paging_and_status_words() -> None:
    assert find_job_id({"JobID": "a1", "timeelapsed": "0.1"}) == "a1"
    assert find_job_id({"result": {"job_id": 42}}) == "42"
    assert find_job_id("bare-id") == "bare-id"
    assert find_job_id({"timestamp": "x"}) is None
    assert (
        find_link({"status": "complete", "DownloadURL": "https://h/f.json"}) == "https://h/f.json"
    )
    assert find_link({"result": {"url": "/files/1.json"}}) == "/files/1.json"
    assert find_link({"file": "f.json"}) is None  # not a link
    assert next_page({"pagination": {"next": "20"}}) == "20"
    assert next_page({"data": {"pagination": {"next": 0}}}) is None
    assert next_page({"data": []}) is None
    assert job_status({"status": "Waiting"}).state is JobState.PENDING
    assert job_status({"status": "in progress"}).state is JobState.RUNNING
    done = job_status({"status": "Complete", "url": "https://h/f"})
    assert (done.state, done.result) == (JobState.DONE, "https://h/f")
    assert job_status({"status": "complete"}).state is JobState.FAILED  # done without a link
    failed = job_status({"status": "failed", "message": "disk full"})
    assert (failed.state, failed.detail) == (JobState.FAILED, "disk full")
    assert job_status({"status": "on hold"}).state is JobState.UNKNOWN
