"""Every contract fixture is the vendor's example verbatim, and names where it comes from."""

from __future__ import annotations

import json
import re

import pytest
from contract_examples import REFERENCE, SOURCES, examples

ALL = examples()


def squeezed(text: str) -> str:
    return re.sub(r"\s+", "", text)


def test_there_are_examples_for_every_vendor():
    assert {e.vendor for e in ALL} == {"habu", "amperity", "activepieces", "tableflow"}


@pytest.mark.parametrize("ex", ALL, ids=lambda e: f"{e.vendor}/{e.name}")
def test_fixture_is_the_documented_example_verbatim(ex):
    document = squeezed((SOURCES / ex.source).read_text(encoding="utf-8"))
    body = squeezed(json.dumps(ex.body, ensure_ascii=False, separators=(",", ":")))
    assert body.endswith(squeezed(ex.repair_suffix))
    original = body[: len(body) - len(squeezed(ex.repair_suffix))] if ex.repair_suffix else body
    assert original in document, f"{ex.vendor}/{ex.name} is not verbatim in {ex.cite}"


@pytest.mark.parametrize("ex", ALL, ids=lambda e: f"{e.vendor}/{e.name}")
def test_fixture_says_what_it_is(ex):
    assert ex.direction in ("request", "response")
    assert re.match(r"^(GET|POST|PUT|PATCH|DELETE|ANY|WEBHOOK) /", ex.endpoint), ex.endpoint
    assert ex.section.strip()


@pytest.mark.skipif(not REFERENCE.is_dir(), reason=f"!!! originals not beside this clone ({REFERENCE})")
def test_the_copied_documents_are_the_originals():
    copies = sorted(
        p.relative_to(SOURCES) for p in SOURCES.rglob("*") if p.is_file() and p.name != "README.md"
    )
    assert copies, "no copied vendor documents"
    for rel in copies:
        assert (SOURCES / rel).read_bytes() == (REFERENCE / rel).read_bytes(), (
            f"{rel} differs from the original"
        )
