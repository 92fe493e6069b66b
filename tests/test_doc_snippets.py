"""The docs show tested code: every Python block in docs/ is a ``--8<--`` include of a marked section
of an example DAG (example_dags/docs/) or of this file, never a copy. The DAGs parse with the
provider's parse-time checks, every include names a section that exists, and no section is orphaned.
The site build (``make docs``: mkdocs --strict, part of ``make test``) renders the includes."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

import pytest
from airflow.sdk import DAG

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
SNIPPET_DAGS = sorted((ROOT / "example_dags" / "docs").glob("*.py"))
FENCE = re.compile(r"^```python\n(.*?)^```$", re.S | re.M)
INCLUDE = re.compile(r'^--8<-- "([^":]+):([\w-]+)"$')


def sections(path: Path) -> set[str]:
    text = path.read_text()
    started = set(re.findall(r"# --8<-- \[start:([\w-]+)\]", text))
    ended = set(re.findall(r"# --8<-- \[end:([\w-]+)\]", text))
    assert started == ended, f"{path}: unbalanced markers {started ^ ended}"
    return started


def includes() -> list[tuple[Path, str, str]]:
    """(doc, file, section) for every Python block of every page; a block that is not only includes fails."""
    found = []
    for doc in sorted(DOCS.rglob("*.md")):
        for body in FENCE.findall(doc.read_text()):
            for line in body.splitlines():
                match = INCLUDE.match(line)
                assert match, f"{doc.name}: a Python block copies code instead of including it: {line!r}"
                found.append((doc, match.group(1), match.group(2)))
    return found


def test_every_python_block_in_the_docs_includes_an_existing_section():
    found = includes()
    assert found  # the pages do show code
    for doc, file, section in found:
        assert (ROOT / file).is_file(), f"{doc.name} includes a missing file {file}"
        assert section in sections(ROOT / file), f"{doc.name} includes a missing section {file}:{section}"


def test_every_snippet_section_is_shown_somewhere():
    shown = {(file, section) for _, file, section in includes()}
    for path in [*SNIPPET_DAGS, Path(__file__)]:
        file = path.relative_to(ROOT).as_posix()
        assert {(file, s) for s in sections(path)} <= shown, f"{file} has sections no page includes"


@pytest.mark.parametrize("path", SNIPPET_DAGS, ids=lambda p: p.name)
def test_the_snippet_dags_parse_with_the_providers_checks(path):
    """Each file builds its DAGs as the DAG processor would (operators run their parse-time
    parameter checks in __init__), with the tasks its sections show."""
    dags = [v for v in runpy.run_path(str(path)).values() if isinstance(v, DAG)]
    assert dags and all(dag.dag_id.startswith("docs_") for dag in dags)
    task_ids = {t for dag in dags for t in dag.task_ids}
    for task_id in re.findall(r'task_id="([\w-]+)"', path.read_text()):
        assert task_id in task_ids


def test_the_emulator_snippet_runs():
    # --8<-- [start:emulator-process]
    from airflow_provider_flowruns.testing.process import EmulatorProcess

    with EmulatorProcess(["demo"]) as emu:
        host = emu.url("demo", "/v1")  # the connection's host
        emu.add_faults({"kind": "status", "status": 503, "path": "/runs/", "times": 2})
        stats = emu.stats()  # requests per route, faults injected, per-vendor counters
    # --8<-- [end:emulator-process]
    assert host == f"{emu.base}/demo/v1"
    assert {"requests", "faults_injected"} <= set(stats)
