"""Every contract fixture is the vendor's example verbatim, and names where it comes from."""

from __future__ import annotations

import json
import re

import pytest
from contract_examples import REFERENCE, examples

ALL = examples()


def squeezed(text: str) -> str:
    return re.sub(r"\s+", "", text)


def test_there_are_examples_for_every_vendor():
    assert {e.vendor for e in ALL} == {"habu", "amperity", "activepieces", "tableflow"}


@pytest.mark.skipif(not REFERENCE.is_dir(), reason=f"!!! vendor documents not found at {REFERENCE}")
@pytest.mark.parametrize("ex", ALL, ids=lambda e: f"{e.vendor}/{e.name}")
def test_fixture_is_the_documented_example_verbatim(ex):
    document = squeezed((REFERENCE / ex.source).read_text(encoding="utf-8"))
    body = squeezed(json.dumps(ex.body, ensure_ascii=False, separators=(",", ":")))
    assert body.endswith(squeezed(ex.repair_suffix))
    original = body[: len(body) - len(squeezed(ex.repair_suffix))] if ex.repair_suffix else body
    assert original in document, f"{ex.vendor}/{ex.name} is not verbatim in {ex.cite}"


@pytest.mark.parametrize("ex", ALL, ids=lambda e: f"{e.vendor}/{e.name}")
def test_fixture_says_what_it_is(ex):
    assert ex.direction in ("request", "response")
    assert re.match(r"^(GET|POST|PUT|PATCH|DELETE|ANY|WEBHOOK) /", ex.endpoint), ex.endpoint
    assert ex.section.strip()
