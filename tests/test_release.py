"""Release hygiene that a reader trusts without checking: the README's compatibility table says what
the suites run, the package's metadata agrees with it, the licence is Apache-2.0's text, the
changelog keeps its format, and every project URL names this repository under one base."""

from __future__ import annotations

import importlib.metadata
import re
import sys
from pathlib import Path

import tomllib
import yaml

import airflow_provider_flowruns

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]


def makefile_var(name: str) -> str:
    match = re.search(rf"^{name} \?= (\S+)$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert match, f"Makefile sets no {name}"
    return match.group(1)


def compatibility_table() -> dict[str, dict[str, str]]:
    """README's table as {airflow version: {"3.11": "tested", ...}}."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Compatibility", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("| ")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    assert header[0] == "Airflow", header
    pythons = [cell.removeprefix("Python ") for cell in header[1:] if cell.startswith("Python ")]
    table = {}
    for line in lines[1:]:  # after the header (its |---| rule does not start with "| ")
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        version = cells[0].split()[0]
        table[version] = dict(zip(pythons, cells[1 : 1 + len(pythons)], strict=True))
    return table


def classified_pythons() -> set[str]:
    prefix = "Programming Language :: Python :: "
    return {
        c.removeprefix(prefix)
        for c in PROJECT["classifiers"]
        if re.fullmatch(r"3\.\d+", c.removeprefix(prefix))
    }


def test_the_table_lists_the_makefiles_airflow_versions_and_the_classified_pythons():
    table = compatibility_table()
    assert set(table) == {makefile_var("AIRFLOW_VERSION"), makefile_var("AIRFLOW_FLOOR")}
    assert all(cell == "tested" for row in table.values() for cell in row.values()), table
    assert {python for row in table.values() for python in row} == classified_pythons()


def test_this_suites_airflow_and_python_are_a_tested_pair():
    """Run by both suites (3.3 and the 3.1 floor): each proves its own row."""
    table = compatibility_table()
    airflow = importlib.metadata.version("apache-airflow")
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert table.get(airflow, {}).get(python) == "tested", (airflow, python, table)


def test_the_declared_airflow_floor_is_the_tested_floor():
    (airflow,) = [d for d in PROJECT["dependencies"] if d.startswith("apache-airflow>=")]
    declared = airflow.removeprefix("apache-airflow>=").split(".")[:2]
    assert declared == makefile_var("AIRFLOW_FLOOR").split(".")[:2]


def test_licence_is_apache_2_and_the_notice_names_the_project():
    text = (ROOT / "LICENSE").read_text()
    assert re.match(r"\s*Apache License\s+Version 2\.0, January 2004", text)
    assert "END OF TERMS AND CONDITIONS" in text and len(text.splitlines()) > 170  # the full text
    assert PROJECT["license"] == "Apache-2.0"
    assert PROJECT["license-files"] == ["LICENSE", "NOTICE"]
    assert (ROOT / "NOTICE").read_text().startswith(PROJECT["name"] + "\n")


def test_the_changelog_keeps_a_changelog():
    text = (ROOT / "CHANGELOG.md").read_text()
    assert "https://keepachangelog.com/en/1.1.0/" in text and "https://semver.org/" in text
    assert "## Versioning policy" in text and "## Deprecation policy" in text
    releases = re.findall(r"^## \[([^\]]+)\]", text, re.MULTILINE)
    assert releases[0] == "Unreleased"
    categories = {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}
    after_first_release = text.split("## [Unreleased]", 1)[1]
    assert set(re.findall(r"^### (.+)$", after_first_release, re.MULTILINE)) <= categories
    version = airflow_provider_flowruns.__version__
    # the package's version is either released (its own section) or the one Unreleased will become
    assert version in releases or f"**{version}**" in after_first_release.split("\n## [", 1)[0]


def test_every_project_url_names_this_repository_under_one_base():
    urls = PROJECT["urls"]
    assert set(urls) == {"Source", "Issues", "Changelog", "Documentation"}
    source = urls["Source"]
    owner, repo = source.removeprefix("https://github.com/").split("/")
    assert repo == PROJECT["name"]
    assert urls["Issues"] == f"{source}/issues"
    assert urls["Changelog"] == f"{source}/blob/main/CHANGELOG.md"
    assert urls["Documentation"] == f"https://{owner}.github.io/{repo}/"


def test_keywords_and_classifiers_say_what_the_package_is():
    assert {"airflow", "airflow-provider", "habu", "amperity", "activepieces", "tableflow"} <= set(
        PROJECT["keywords"]
    )
    assert "Framework :: Apache Airflow :: Provider" in PROJECT["classifiers"]
    assert "Typing :: Typed" in PROJECT["classifiers"]
    assert (ROOT / "airflow_provider_flowruns" / "py.typed").exists()


def test_readme_links_are_absolute_and_land_on_pages_that_exist():
    """The README is also the package index's project page, where a relative link is broken: each
    link is absolute, into the docs site (an existing page of docs/) or into this repository (an
    existing file)."""
    mkdocs = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    site, repository = mkdocs["site_url"], PROJECT["urls"]["Source"]
    assert site == PROJECT["urls"]["Documentation"] and mkdocs["repo_url"] == repository
    links = re.findall(r"\]\(([^)\s]+)\)", (ROOT / "README.md").read_text())
    assert links
    for link in links:
        if link.startswith(site):
            page = link.removeprefix(site).split("#")[0].strip("/") or "index"
            assert (ROOT / "docs" / f"{page}.md").is_file(), link
        elif link.startswith(f"{repository}/blob/main/"):
            assert (ROOT / link.removeprefix(f"{repository}/blob/main/")).is_file(), link
        else:
            assert link.startswith("https://"), f"a relative link breaks on the package index: {link}"
