"""Shared file formats: containers (verified ZIPs, gzip, plain) and safe streaming XML."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from tap_emailtracking.errors import CorruptFileError
from tap_emailtracking.formats.containers import open_container
from tap_emailtracking.formats.xml import iter_xml_items
from tap_emailtracking.limits import Limits


def make_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def test_a_whole_zip_lists_its_members_in_name_order(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "a.zip", {"b.xml": b"<b/>", "a.xml": b"<a/>", "notes.txt": b"x"})
    with open_container(
        path, limits=Limits(), vendor="V", stream="s", subject="batch 1", suffix=".xml"
    ) as container:
        assert container.kind == "zip"
        assert container.members == ["a.xml", "b.xml"]
        with container.open("b.xml") as member:
            assert member.read() == b"<b/>"


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.95])
def test_a_truncated_zip_is_an_error_naming_the_file(tmp_path: Path, keep: float) -> None:
    path = make_zip(tmp_path / "bulk_1.zip", {"t.xml": bytes(range(256)) * 4000})
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with (
        pytest.raises(CorruptFileError, match=r"bulk_1\.zip is damaged") as caught,
        open_container(path, limits=Limits(), vendor="V", stream="s", subject="batch 7"),
    ):
        pass
    assert "V / s (batch 7)" in str(caught.value)


def test_a_member_with_a_bad_checksum_is_an_error(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "c.zip", {"t.xml": b"<x>" + b"a" * 5000 + b"</x>"})
    data = bytearray(path.read_bytes())
    index = data.index(b"t.xml") + 5 + 10  # inside the compressed data of the only member
    data[index] ^= 0xFF
    path.write_bytes(bytes(data))
    with (
        pytest.raises(CorruptFileError, match="damaged"),
        open_container(path, limits=Limits(), vendor="V", stream=None, subject="x"),
    ):
        pass


def items(document: bytes, **kwargs: frozenset[str]) -> list[tuple[str, str, object]]:
    out = []
    for chunk in iter_xml_items(
        io.BytesIO(document),
        capture=kwargs.get("capture", frozenset({"item"})),
        leaves=kwargs.get("leaves", frozenset({"id"})),
        ends=kwargs.get("ends", frozenset({"group"})),
        vendor="V",
        stream_name="s",
        subject="file.xml",
    ):
        out.extend(chunk)
    return out


def test_captured_subtrees_leaves_and_ends_arrive_in_document_order() -> None:
    document = (
        b"<?xml version='1.0'?><root><group><id> 7 </id>"
        b"<item a='1'><x>one</x><y/><z><w>deep</w></z></item>"
        b"<item><x>two &amp; &#233;</x></item></group></root>"
    )
    got = items(document)
    assert [(kind, tag) for kind, tag, _ in got] == [
        ("leaf", "id"),
        ("tree", "item"),
        ("tree", "item"),
        ("end", "group"),
    ]
    assert got[0][2] == " 7 "
    first = got[1][2]
    assert first.attrib == {"a": "1"}  # type: ignore[attr-defined]
    assert first.find("x").text == "one"  # type: ignore[attr-defined]
    assert first.find("z/w").text == "deep"  # type: ignore[attr-defined]
    assert got[2][2].find("x").text == "two & é"  # type: ignore[attr-defined]


def test_a_document_with_a_dtd_is_refused_before_any_expansion() -> None:
    laughs = (
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><r>&b;</r>'
    )
    with pytest.raises(CorruptFileError, match="declares a DTD"):
        items(laughs)
    external = b'<?xml version="1.0"?><!DOCTYPE r SYSTEM "file:///etc/passwd"><r/>'
    with pytest.raises(CorruptFileError, match="declares a DTD"):
        items(external)


@pytest.mark.parametrize(
    ("document", "line"),
    [
        (b"<root>\n<item>\n<x>1</y>\n</item></root>", 3),
        (b"<root>\n<item><x>&bogus;</x></item></root>", 2),
        (b"<root><item><x>1</x></item>", 1),
    ],
)
def test_malformed_xml_names_the_line(document: bytes, line: int) -> None:
    with pytest.raises(CorruptFileError, match=f"malformed XML at line {line}, column") as caught:
        items(document)
    assert str(caught.value).startswith("V / s (file.xml): malformed XML")
