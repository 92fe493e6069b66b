"""Vendor file names never escape the destination; downloads are atomic, verified and retried."""

from __future__ import annotations

import pytest
from airflow.sdk import ObjectStoragePath
from conftest import cut_demo_result

from airflow_provider_flowruns.core.errors import FlowRunsConfigError
from airflow_provider_flowruns.core.storage import (
    IncompleteTransfer,
    as_storage_path,
    child_path,
    download_to,
    part_size,
    sanitize_filename,
    write_atomically,
)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("report.csv", "report.csv"),
        ("../../etc/passwd", "passwd"),
        ("/abs/path/x.csv", "x.csv"),
        ("..\\..\\win.txt", "win.txt"),
        ("a\x00b.csv", "a_b.csv"),
        ("..", "file"),
        ("", "file"),
        (None, "file"),
        (".hidden", "hidden"),
        ("new\nline.csv", "new_line.csv"),
        ("ｆｕｌｌ／ｗｉｄｔｈ.csv", "width.csv"),  # NFKC folds the full-width slash into a real one
        ("résumé ✓.csv", "résumé ✓.csv"),
    ],
)
def test_sanitize_filename(name, expected):
    assert sanitize_filename(name) == expected


def test_sanitize_caps_length_keeping_extension():
    name = sanitize_filename("é" * 300 + ".csv")
    assert len(name.encode()) <= 200 and name.endswith(".csv")
    assert sanitize_filename("é" * 300 + ".csv") == name  # deterministic


def test_child_path_stays_under_prefix(tmp_path):
    prefix = as_storage_path(str(tmp_path / "out"))
    for hostile in ["../../x", "/etc/passwd", "a/../../b", "\x00", "..\\..\\c"]:
        child = child_path(prefix, hostile)
        assert str(child).startswith(str(prefix) + "/")
        assert child.parent == prefix


def test_write_atomically_verifies_size_and_leaves_nothing_partial(tmp_path):
    dest = as_storage_path(str(tmp_path / "d" / "f.bin"))
    written = write_atomically(dest, [b"ab", b"cd"], expected_size=4)
    assert dest.read_bytes() == b"abcd" and written.size == 4
    with pytest.raises(IncompleteTransfer):
        write_atomically(as_storage_path(str(tmp_path / "d" / "g.bin")), [b"ab"], expected_size=10)
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["f.bin"]
    with pytest.raises(FlowRunsConfigError, match="overwrite"):
        write_atomically(dest, [b"x"], overwrite=False)
    assert dest.read_bytes() == b"abcd"


def test_write_atomically_reports_the_destination_as_the_only_lineage_asset(tmp_path, lineage_collector):
    """Not the temporary sibling it wrote first: lineage readers would show a dataset nobody wrote."""
    dest = as_storage_path(str(tmp_path / "lineage" / "f.bin"))
    write_atomically(dest, [b"abc"], expected_size=3)
    collected = lineage_collector.collected_assets
    assert [a.asset.uri for a in collected.inputs] == []
    assert [(a.asset.uri, a.count) for a in collected.outputs] == [(str(dest), 1)]


@pytest.mark.parametrize(
    ("size", "part"),
    [
        (None, 8 << 20),
        (0, 8 << 20),
        (1, 8 << 20),
        (70 << 30, 8 << 20),
        (100 << 30, 12 << 20),
        (5 << 40, 583 << 20),
    ],
)
def test_part_size_stays_under_s3s_part_limit(size, part):
    assert part_size(size) == part
    if size:
        assert -(-size // part) <= 9_000 and part % (1 << 20) == 0


def test_cut_download_is_retried_and_never_partial(demo, tmp_path):
    open_stream = cut_demo_result(demo, "dl", cuts=2, result_rows=20000)
    dest = ObjectStoragePath(f"file://{tmp_path}/out/result.csv")
    written = download_to(open_stream, dest, retry_delay=0.01)
    body = dest.read_text()
    assert body.startswith("row,value\n") and body.endswith("19999,399960001\n")
    assert written.size == len(body.encode())
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["result.csv"]
    assert demo.stats()["faults_injected"] == {"truncate": 2}


def test_download_gives_up_cleanly(demo, tmp_path):
    open_stream = cut_demo_result(demo, "dl2", cuts=3)
    dest = ObjectStoragePath(f"file://{tmp_path}/out/result.csv")
    with pytest.raises(IncompleteTransfer, match="after 3 attempts"):
        download_to(open_stream, dest, retry_delay=0.01)
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


class _Boom(Exception):
    pass


def test_all_or_nothing_lands_every_object_only_when_the_block_ends(tmp_path):
    from airflow_provider_flowruns.core.storage import all_or_nothing

    out = tmp_path / "out"
    first, second = as_storage_path(str(out / "a.csv")), as_storage_path(str(out / "sub" / "b.csv"))
    with all_or_nothing():
        written = write_atomically(first, [b"one"])
        write_atomically(second, [b"two"])
        # staged, verified, not visible yet: a reader of the prefix sees nothing of this try
        assert not first.exists() and not second.exists()
        assert written.size == 3
    assert first.read_bytes() == b"one" and second.read_bytes() == b"two"
    assert sorted(p.name for p in out.rglob("*") if p.is_file()) == ["a.csv", "b.csv"]


def test_a_failed_try_inside_all_or_nothing_leaves_nothing_behind(tmp_path):
    from airflow_provider_flowruns.core.storage import all_or_nothing

    out = tmp_path / "out"
    out.mkdir()
    (out / "kept.csv").write_bytes(b"earlier")  # an object this try did not write stays
    with pytest.raises(_Boom), all_or_nothing():
        write_atomically(as_storage_path(str(out / "a.csv")), [b"one"])
        write_atomically(as_storage_path(str(out / "run-1" / "tables" / "b.csv")), [b"two"])
        raise _Boom
    # no object, no temporary, and no folder this try created
    assert sorted(p.name for p in out.iterdir()) == ["kept.csv"]


def test_a_move_failing_part_way_removes_what_this_try_moved(tmp_path):
    from airflow_provider_flowruns.core.storage import all_or_nothing

    out = tmp_path / "out"
    first = as_storage_path(str(out / "a.csv"))
    blocked = as_storage_path(str(out / "b.csv"))
    refused = pytest.raises(FlowRunsConfigError, match=r"b\.csv already exists and overwrite=False")
    with refused, all_or_nothing():
        write_atomically(first, [b"one"])
        write_atomically(blocked, [b"two"], overwrite=False)
        blocked.write_bytes(b"someone else's")  # appears while this try is still running
    assert sorted(p.name for p in out.iterdir()) == ["b.csv"]
    assert blocked.read_bytes() == b"someone else's"


def test_the_same_object_written_twice_in_one_try_lands_once_as_the_last(tmp_path):
    from airflow_provider_flowruns.core.storage import all_or_nothing

    dest = as_storage_path(str(tmp_path / "out" / "a.csv"))
    with all_or_nothing():
        write_atomically(dest, [b"first"])
        with all_or_nothing():  # nested blocks join the outer one
            write_atomically(dest, [b"second"])
        assert not dest.exists()
    assert dest.read_bytes() == b"second"
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["a.csv"]
