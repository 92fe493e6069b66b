"""The vendors' own documented examples (``tests/contracts/<vendor>/<name>.json``), for contract tests."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CONTRACTS = Path(__file__).parent / "contracts"
#: The vendors' documents the examples are taken from (``source`` is relative to it): copies, kept in
#: the repository so the verbatim check runs on any clone.
SOURCES = CONTRACTS / "sources"
#: The originals (planning's shared/reference, beside the checkout), when reachable: the copies
#: must equal them.
REFERENCE = Path(
    os.environ.get("FLOWRUNS_REFERENCE") or Path(__file__).resolve().parents[2] / "shared" / "reference"
)


@dataclass(frozen=True)
class Example:
    vendor: str
    name: str
    source: str
    section: str
    endpoint: str
    direction: str
    status: int
    body: Any
    repair_suffix: str = ""

    @property
    def cite(self) -> str:
        return f"{self.source} ({self.section})"


def _load(path: Path) -> Example:
    raw = json.loads(path.read_text(encoding="utf-8"))
    return Example(
        vendor=path.parent.name,
        name=path.stem,
        source=raw["source"],
        section=raw["section"],
        endpoint=raw["endpoint"],
        direction=raw["direction"],
        status=int(raw.get("status", 200)),
        body=raw["body"],
        repair_suffix=raw.get("repair_suffix", ""),
    )


def example(vendor: str, name: str) -> Example:
    return _load(CONTRACTS / vendor / f"{name}.json")


def examples(vendor: str | None = None) -> list[Example]:
    folders = [CONTRACTS / vendor] if vendor else sorted(p for p in CONTRACTS.iterdir() if p.is_dir())
    return [_load(p) for folder in folders for p in sorted(folder.glob("*.json"))]
