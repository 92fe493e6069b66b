"""Paginated rows encoded as CSV and JSON Lines: every value survives, in the header's order, and the
CSV header is the declared columns plus every column any row brings (first seen first), so no
value is ever dropped, however late its column first appears."""

from __future__ import annotations

import csv
import io
import json

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from airflow_provider_flowruns.core import rows as rows_module
from airflow_provider_flowruns.core.rows import csv_chunks, encode_rows, jsonl_chunks

COLUMNS = ["id", "name", "note"]
values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(st.characters(exclude_categories=["Cs"])),  # commas, quotes, newlines, any script
)
rows_strategy = st.lists(
    st.dictionaries(st.sampled_from(COLUMNS), values),  # some columns missing in some rows
    max_size=30,
)


def _as_csv_cell(value: object) -> str:
    return "" if value is None else str(value)


@settings(max_examples=200, deadline=None)
@given(rows=rows_strategy, per_chunk=st.integers(1, 7))
@example(rows=[{"id": "\r"}, {"name": "a\r\nb", "note": 'say "hi", then go'}], per_chunk=1)  # a lone CR
def test_csv_round_trips_every_value_in_header_order_across_chunks(rows, per_chunk):
    chunks = list(csv_chunks(COLUMNS, rows, rows_per_chunk=per_chunk))
    assert all(chunk.endswith(b"\r\n") for chunk in chunks)  # a chunk never ends inside a row
    parsed = list(csv.reader(io.StringIO(b"".join(chunks).decode(), newline="")))
    assert parsed[0] == COLUMNS
    assert parsed[1:] == [[_as_csv_cell(row.get(c)) for c in COLUMNS] for row in rows]


@settings(max_examples=100, deadline=None)
@given(rows=rows_strategy, per_chunk=st.integers(1, 7))
@example(rows=[{"id": "\x85\u2028\r\n"}], per_chunk=1)
def test_jsonl_round_trips_every_row_as_sent(rows, per_chunk):
    text = b"".join(jsonl_chunks(rows, rows_per_chunk=per_chunk)).decode()
    # Lines end at "\n" only (json escapes CR and LF inside strings; U+0085 or U+2028 stay raw,
    # as JSON allows, and str.splitlines() would split there).
    lines = text.split("\n")
    assert lines.pop() == ""
    assert [json.loads(line) for line in lines] == rows


def _reference_csv(header: list[str], rows: list[dict]) -> bytes:
    """What writing every row under the final header in one go gives (the stdlib, no spill)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([row.get(c) for c in header])
    return out.getvalue().encode()


EXTRA = ["id", "name", "note", "late", "later", "ünï code"]


@settings(max_examples=200, deadline=None)
@given(
    declared=st.lists(st.sampled_from(COLUMNS), unique=True, max_size=3),
    rows=st.lists(st.dictionaries(st.sampled_from(EXTRA), values), max_size=30),
    per_chunk=st.integers(1, 7),
)
@example(declared=[], rows=[{}, {"late": ""}, {}], per_chunk=1)  # empty rows padded as csv writes them
def test_csv_header_is_the_union_of_declared_and_row_columns_in_first_seen_order(declared, rows, per_chunk):
    chunks = list(csv_chunks(declared, rows, rows_per_chunk=per_chunk))
    header = list(dict.fromkeys([*declared, *(k for row in rows for k in row)]))
    assert b"".join(chunks) == _reference_csv(header, rows)  # byte for byte: padding is invisible
    assert all(chunk.endswith(b"\r\n") for chunk in chunks)


def test_a_column_first_seen_on_the_last_page_keeps_its_value_and_earlier_rows_are_padded():
    pages = [[{"id": str(i), "name": f"n{i}"} for i in range(p * 500, p * 500 + 500)] for p in range(3)]
    pages[-1][-1]["surprise"] = "kept"
    rows = [row for page in pages for row in page]
    text = b"".join(csv_chunks(["id", "name"], iter(rows))).decode()
    parsed = list(csv.reader(io.StringIO(text, newline="")))
    assert parsed[0] == ["id", "name", "surprise"]
    assert parsed[1] == ["0", "n0", ""] and parsed[-1] == ["1499", "n1499", "kept"]
    assert len(parsed) == 1501 and {len(r) for r in parsed} == {3}


def test_a_spill_past_its_memory_budget_goes_to_disk_and_still_round_trips(monkeypatch):
    monkeypatch.setattr(rows_module, "SPILL_IN_MEMORY", 1024)  # a few rows, then a temporary file
    rows = [{"id": str(i), "note": "x" * 100} for i in range(200)] + [{"id": "200", "new": "v"}]
    assert b"".join(csv_chunks(["id"], rows, rows_per_chunk=7)) == _reference_csv(["id", "note", "new"], rows)


def test_unknown_format_is_refused():
    with pytest.raises(ValueError, match="csv, jsonl"):
        encode_rows("parquet", COLUMNS, [])
