"""The streaming JSON reader: three shapes, limits, damage, and properties over any input."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tap_emailtracking.errors import CorruptFileError
from tap_emailtracking.formats.json import JsonRecords, Shape, iter_json_records
from tap_emailtracking.limits import Limits

SUBJECT = "clicks-2024-05-01.json"


def _reader(
    data: bytes,
    *,
    key: str | None = None,
    shape: Shape | None = None,
    chunk: int = 7,
    max_field_bytes: int = 1 << 20,
) -> JsonRecords:
    return JsonRecords(
        io.BytesIO(data),
        limits=Limits(max_field_bytes=max_field_bytes),
        vendor="impact",
        stream_name="clicks",
        subject=SUBJECT,
        key=key,
        shape=shape,
        chunk_bytes=chunk,
    )


def _read(data: bytes, **kwargs: Any) -> list[dict[str, Any]]:
    return list(_reader(data, **kwargs))


def _corrupt(data: bytes, **kwargs: Any) -> str:
    with pytest.raises(CorruptFileError) as caught:
        _read(data, **kwargs)
    message = str(caught.value)
    assert message.startswith(f"impact / clicks ({SUBJECT}): ")
    return message


RECORDS = [{"Id": "1", "Unique": True}, {"Id": "2", "Cost": 1.5, "Sub": {"a": [1, None]}}]


# --- shapes


@pytest.mark.parametrize("chunk", [1, 2, 7, 65536])
def test_a_top_level_array(chunk: int) -> None:
    data = b"\xef\xbb\xbf \n" + json.dumps(RECORDS, indent=2).encode()
    reader = _reader(data, chunk=chunk)
    assert list(reader) == RECORDS
    assert reader.shape == "array"


@pytest.mark.parametrize("key", [None, "Clicks"])
def test_an_object_holding_the_array_next_to_paging_keys(key: str | None) -> None:
    holder = {"@page": "1", "@numpages": "2", "Clicks": RECORDS, "@nextpageuri": ""}
    reader = _reader(json.dumps(holder).encode(), key=key)
    assert list(reader) == RECORDS
    assert reader.shape == "object"
    assert reader.meta == {"@page": "1", "@numpages": "2", "@nextpageuri": ""}


def test_a_large_holder_is_streamed_and_the_named_key_wins() -> None:
    many = [{"Id": str(i)} for i in range(300)]
    holder = {"@total": "300", "Other": [{"x": 1}], "Records": many, "@end": "299"}
    data = json.dumps(holder).encode()
    reader = _reader(data, key="Records", max_field_bytes=200)  # the holder is over the limit
    assert list(reader) == many
    assert reader.meta == {"@total": "300", "Other": [{"x": 1}], "@end": "299"}
    first = _reader(data, max_field_bytes=200)  # no key: the first array of objects...
    records = iter(first)
    assert next(records) == {"x": 1}
    with pytest.raises(CorruptFileError, match=r"the member 'Records' .* is larger than 200"):
        list(records)  # ...and every other member must be small
    plain = json.dumps({"@total": "300", "Records": many}).encode()
    assert _read(plain, max_field_bytes=200) == many


def test_json_lines_with_blank_lines_and_crlf() -> None:
    data = (
        b'{"Id": "1", "Unique": true}\r\n\r\n  \n{"Id": "2", "Cost": 1.5, "Sub": {"a": [1, null]}}'
    )
    reader = _reader(data)
    assert list(reader) == RECORDS
    assert reader.shape == "lines"


def test_one_lone_object_is_one_record_unless_it_holds_records() -> None:
    assert _read(b'{"Id": "1", "Tags": []}') == [{"Id": "1", "Tags": []}]
    assert _read(b'{"Id": "1", "Tags": []}', shape="lines") == [{"Id": "1", "Tags": []}]
    assert _read(b'{"@numpages": "0", "Clicks": []}', key="Clicks") == []


@pytest.mark.parametrize("data", [b"", b" \n", b"[]", b"[ ]", b'{"Clicks": []}'])
def test_empty_files_have_no_records(data: bytes) -> None:
    assert _read(data, key="Clicks" if b"Clicks" in data else None) == []


def test_iter_json_records_is_the_plain_entry_point() -> None:
    records = iter_json_records(
        io.BytesIO(json.dumps(RECORDS).encode()),
        limits=Limits(),
        vendor="impact",
        stream_name="clicks",
        subject=SUBJECT,
    )
    assert list(records) == RECORDS


# --- damage and limits


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b'[{"Id": "1"},]', "at byte 13 (record 2): Expecting value"),
        (b'[{"Id": "1"}', "at byte 12 (record 1): the file ends inside the array"),
        (b'[{"Id": "1"', "at byte 1 (record 1): the file ends inside a value"),
        (b'[{"Id": "1"} {"Id": "2"}]', "expected ',' or ']' after record 1"),
        (b'[{"Id": "1"}] x', "at byte 14 (record 1): data after the end of the JSON document"),
        (b'{"Id": "1"} [1]', "expected another object (JSON lines) or the end"),
        (b'[{"Id": 1}, 2]', "record 2 at byte 12 is int, not an object"),
        (b'{"a": 1}\n[1]\n{"b": 2}', "at byte 9: expected another object (JSON lines)"),
        (b'[{"Cost": NaN}]', "NaN is not valid JSON"),
        (b'[{"Id": "\xff"}]', "at byte 9 (record 1): text that is not UTF-8"),
    ],
)
def test_damage_is_named_with_its_position(data: bytes, expected: str) -> None:
    message = _corrupt(data)
    assert expected in message
    assert "What to do: re-run the sync: a new export is requested" in message


def test_a_missing_key_names_the_members_seen() -> None:
    message = _corrupt(b'{"@page": "1", "Clicks": [{"a": 1}]}', key="Records")
    assert "holds no array under 'Records'; its members: ['@page', 'Clicks']" in message
    message = _corrupt(b'{"@page": "1", "Records": {"a": 1}}', shape="object")
    assert "holds no array of records; its members: ['@page', 'Records']" in message


def test_a_line_that_is_no_object_is_named() -> None:
    message = _corrupt(b'{"a": 1}\n[1]\n{"b": 2}', shape="lines")
    assert "record 2 at byte 9 is an array, not an object" in message


def test_a_record_over_the_limit_is_refused_with_its_number_and_offset() -> None:
    data = json.dumps([{"Id": "1"}, {"Note": "x" * 500}]).encode()
    message = _corrupt(data, max_field_bytes=100)
    assert "record 2 at byte 14 is larger than 100 characters" in message
    assert "over the limit max_field_bytes=100" in message


def test_deep_nesting_ends_as_damage_not_recursion() -> None:
    data = b'[{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}]"
    message = _corrupt(data, chunk=65536, max_field_bytes=1 << 20)
    assert "nested too deeply" in message


def test_memory_stays_flat_on_a_long_file() -> None:
    """The window never holds much more than one chunk plus one record."""
    line = json.dumps({"Id": "x" * 50}).encode() + b"\n"
    data = line * 20_000  # ~1.2 MB
    reader = _reader(data, chunk=4096)
    biggest = 0
    for _ in reader:
        biggest = max(biggest, len(reader._text.buf))
    assert reader.count == 20_000
    assert biggest < 2 * 4096 + len(line)


# --- properties

_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
_RECORDS = st.lists(st.dictionaries(st.text(max_size=8), _VALUES, max_size=4), max_size=6)
_CHUNKS = st.integers(min_value=1, max_value=64)
_FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_FAST
@given(records=_RECORDS, chunk=_CHUNKS, indent=st.sampled_from([None, 1]), ascii=st.booleans())
def test_round_trip_of_an_array(
    records: list[dict[str, Any]], chunk: int, indent: int | None, ascii: bool
) -> None:
    data = json.dumps(records, indent=indent, ensure_ascii=ascii).encode()
    assert _read(data, chunk=chunk) == records


@_FAST
@given(records=_RECORDS, chunk=_CHUNKS, before=st.booleans())
def test_round_trip_of_an_object_holding_the_array(
    records: list[dict[str, Any]], chunk: int, before: bool
) -> None:
    paging = {"@page": "1", "@numpages": "1"}
    holder = {**paging, "Clicks": records} if before else {"Clicks": records, **paging}
    data = json.dumps(holder, ensure_ascii=False).encode()
    reader = _reader(data, key="Clicks", chunk=chunk)
    assert list(reader) == records
    assert reader.meta == paging
    streamed = _reader(data, key="Clicks", chunk=chunk, shape="object")
    assert list(streamed) == records


@_FAST
@given(records=_RECORDS, chunk=_CHUNKS, newline=st.sampled_from(["\n", "\r\n", "\n\n"]))
def test_round_trip_of_json_lines(records: list[dict[str, Any]], chunk: int, newline: str) -> None:
    data = "".join(json.dumps(r, ensure_ascii=False) + newline for r in records).encode()
    assert _read(data, chunk=chunk, shape="lines") == records
    if len(records) > 1:
        assert _read(data, chunk=chunk) == records  # two or more objects: JSON lines, found


_JSONISH = st.text(alphabet='[]{}",:0123456789eE.-+ \n\r\t\\/uabfnrtlsNIaIy\ufeff', max_size=60)


@settings(max_examples=400, deadline=None)
@given(
    data=st.binary(max_size=80) | _JSONISH.map(str.encode),
    chunk=_CHUNKS,
    key=st.sampled_from([None, "a"]),
)
def test_any_input_ends_in_records_or_damage(data: bytes, chunk: int, key: str | None) -> None:
    try:
        records = _read(data, chunk=chunk, key=key, max_field_bytes=40)
    except CorruptFileError:
        return
    assert all(isinstance(record, dict) for record in records)


@settings(max_examples=200, deadline=None)
@given(records=_RECORDS, cut=st.integers(min_value=0), chunk=_CHUNKS)
def test_a_cut_array_is_damage(records: list[dict[str, Any]], cut: int, chunk: int) -> None:
    data = json.dumps(records).encode()
    cut %= len(data)
    with pytest.raises(CorruptFileError):
        _read(data[:cut] if cut else data[:-1], chunk=chunk, shape="array")
