"""The wheel holds the provider and nothing else, built as a user builds it (``uv build``: an sdist,
then the wheel from that sdist, with the build backend in an isolated environment).

The repository's harness (dev/: the Airflow stack, the fleet, moto, the dbt Cloud emulator, the
benchmarks) must never reach a user's site-packages again, and the user-facing emulators must stay.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "airflow_provider_flowruns"

# Packaging does not depend on the Airflow version: built once, on the newest.
pytestmark = pytest.mark.newest_only

#: The provider's own modules: any module of the package or of these subpackages.
PRODUCT = re.compile(
    rf"{PACKAGE}/(?:(?:core|hooks|operators|sensors|transfers|triggers|vendors)/)?[a-z0-9_]+\.py"
)
#: The user-facing emulators (the ``[emulator]`` extra), by name: harness code does not creep back in.
EMULATORS = frozenset(
    f"{PACKAGE}/testing/{name}.py"
    for name in (
        "__init__",
        "server",  # the app, the control API, VENDORS
        "cli",  # flowruns-emulator
        "process",  # EmulatorProcess
        "clock",
        "faults",
        "limits",
        "progression",
        "demo",  # the demo vendor's Airflow side
        "demo_app",
        "amperity_app",
        "habu_app",
        "tableflow_app",
        "activepieces_app",
    )
)
OTHER = frozenset({f"{PACKAGE}/py.typed"})
#: What every wheel's .dist-info holds, and the licence files (PEP 639: .dist-info/licenses/).
METADATA = frozenset(
    {"METADATA", "WHEEL", "RECORD", "entry_points.txt", "licenses/LICENSE", "licenses/NOTICE"}
)


def _uv() -> str:
    beside = Path(sys.executable).parent / "uv"  # the Makefile installs uv into each venv
    found = str(beside) if beside.exists() else shutil.which("uv")
    if found is None:
        pytest.fail("uv is needed to build the wheel (the Makefile installs it into each venv)")
    return found


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run(
        [_uv(), "build", "--quiet", "--out-dir", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out


@pytest.fixture(scope="module")
def wheel(dist) -> zipfile.ZipFile:
    (path,) = dist.glob("*.whl")
    kb = path.stat().st_size / 1024
    with zipfile.ZipFile(path) as zf:
        print(f"\n{path.name}: {len(zf.namelist())} files, {kb:.0f} KB")
        yield zf


def dist_info(wheel: zipfile.ZipFile) -> str:
    (name,) = {n.split("/")[0] for n in wheel.namelist() if n.split("/")[0].endswith(".dist-info")}
    return name


def test_the_wheel_holds_the_provider_only(wheel):
    names = set(wheel.namelist())
    info = dist_info(wheel)
    assert {n.split("/")[0] for n in names} == {PACKAGE, info}  # no top-level benchmarks or harness
    strays = sorted(
        n
        for n in names
        if not n.startswith(f"{info}/") and not (PRODUCT.fullmatch(n) or n in EMULATORS or n in OTHER)
    )
    assert strays == []
    assert {n for n in names if n.startswith(f"{PACKAGE}/testing/")} == EMULATORS
    assert names >= OTHER
    assert {n.removeprefix(f"{info}/") for n in names if n.startswith(f"{info}/")} == METADATA
    assert wheel.read(f"{info}/licenses/LICENSE") == (ROOT / "LICENSE").read_bytes()
    assert wheel.read(f"{info}/licenses/NOTICE") == (ROOT / "NOTICE").read_bytes()


def test_the_wheel_holds_every_module_of_the_package(wheel):
    """Nothing of the provider is left behind: the wheel's modules are the source tree's."""
    on_disk = {
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / PACKAGE).rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert {n for n in wheel.namelist() if n.startswith(f"{PACKAGE}/")} == on_disk


def test_the_metadata_publishes_no_dev_extras_and_registers_the_provider(wheel):
    info = dist_info(wheel)
    meta = Parser().parsestr(wheel.read(f"{info}/METADATA").decode())
    assert meta["License-Expression"] == "Apache-2.0"
    assert sorted(meta.get_all("License-File") or []) == ["LICENSE", "NOTICE"]
    assert sorted(meta.get_all("Provides-Extra") or []) == ["aiohttp", "emulator", "openlineage", "s3"]
    requires = " ".join(meta.get_all("Requires-Dist") or [])
    for dev_only in ("pytest", "mypy", "ruff", "moto", "hypothesis", "dbt-cloud", "celery"):
        assert dev_only not in requires
    urls = dict(url.split(", ", 1) for url in meta.get_all("Project-URL") or [])
    assert set(urls) == {"Source", "Issues", "Changelog", "Documentation"}
    assert "Programming Language :: Python :: 3.11" in (meta.get_all("Classifier") or [])
    entry_points = wheel.read(f"{info}/entry_points.txt").decode()
    assert f"provider_info = {PACKAGE}.get_provider_info:get_provider_info" in entry_points
    assert f"flowruns-emulator = {PACKAGE}.testing.cli:main" in entry_points


def test_the_sdist_builds_the_same_wheel(dist):
    """The sdist carries the package (the wheel above was built from it) and, for contributors, the
    dev harness; it never carries a virtualenv or a run directory."""
    (path,) = dist.glob("*.tar.gz")
    with tarfile.open(path) as tf:
        members = {m.name.split("/", 1)[1] for m in tf.getmembers() if "/" in m.name}
    assert {
        "pyproject.toml",
        "README.md",
        "LICENSE",
        "NOTICE",
        "CHANGELOG.md",
        f"{PACKAGE}/__init__.py",
        "dev/benchmarks/__main__.py",
    } <= members
    assert not {m for m in members if m.startswith((".venv", ".run/", "demo-output/"))}


def test_the_built_wheel_installs_and_airflow_finds_the_provider(dist, tmp_path):
    """The README's first install block, as a user runs it: a fresh environment, the wheel with the
    emulator extra (Airflow pinned to this suite's, so the resolution is the tested one). Airflow
    finds the provider by its entry point, flowruns-emulator runs, and no harness came along."""
    (path,) = dist.glob("*.whl")
    venv = tmp_path / "venv"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["AIRFLOW_HOME"] = str(tmp_path / "home")
    subprocess.run([_uv(), "venv", "--quiet", "--python", sys.executable, str(venv)], check=True, env=env)
    python = venv / "bin" / "python"
    airflow = f"apache-airflow=={importlib.metadata.version('apache-airflow')}"
    proc = subprocess.run(
        [_uv(), "pip", "install", "--quiet", "--python", str(python), f"{path}[emulator]", airflow],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]

    def run(*args: str) -> str:
        done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-4000:]
        return done.stdout

    listed = json.loads(run(str(venv / "bin" / "airflow"), "providers", "list", "-o", "json"))
    ours = [p for p in listed if p["package_name"] == "airflow-provider-flowruns"]
    assert len(ours) == 1, listed
    assert "--vendor VENDOR" in run(str(venv / "bin" / "flowruns-emulator"), "serve", "--help")
    probe = (
        "import importlib.util, airflow_provider_flowruns as p; "
        "print(p.__file__); print([m for m in ('benchmarks', 'flowruns_dev') if importlib.util.find_spec(m)])"
    )
    where, harness = run(str(python), "-c", probe).splitlines()
    assert where.startswith(str(venv)), where  # the installed wheel, not this checkout
    assert harness == "[]"
