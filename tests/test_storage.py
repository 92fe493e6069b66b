"""Vendor file names never escape the destination; downloads are atomic, verified and retried."""

from __future__ import annotations

import hashlib

import fsspec
import pytest
from airflow.sdk import ObjectStoragePath
from airflow.sdk.io import store
from conftest import cut_demo_result
from fsspec.implementations.local import LocalFileSystem

from airflow_provider_flowruns.core import storage
from airflow_provider_flowruns.core.errors import FlowRunsConfigError
from airflow_provider_flowruns.core.storage import (
    IncompleteTransfer,
    all_or_nothing,
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
        # format characters (Unicode category Cf) are replaced like control ones: a right-to-left
        # override would show "invoice\u202efdp.exe" as "invoiceexe.pdf"
        ("invoice\u202efdp.exe", "invoice_fdp.exe"),
        ("a\u200bb.csv", "a_b.csv"),  # zero-width space
        ("\ufeffreport.csv", "_report.csv"),  # byte-order mark
        # a trailing separator names the folder, not an empty last segment
        ("reports/", "reports"),
        ("exports\\2024\\", "2024"),
        ("exports/MAX/", "MAX"),
        # Windows-reserved characters are replaced, letters next to them kept
        ('X:<r|e>"p*o?rt.csv', "X__r_e__p_o_rt.csv"),
        ("..Xfile", "Xfile"),
        ("a" * 196 + ".csv", "a" * 196 + ".csv"),  # 200 bytes: at the cap, kept as it is
    ],
)
def test_sanitize_filename(name, expected):
    assert sanitize_filename(name) == expected


@pytest.mark.parametrize("blank", ["", "  ", "\t\n", 42, None])
def test_a_blank_or_non_string_destination_is_refused_naming_the_parameter(blank):
    with pytest.raises(FlowRunsConfigError) as refused:
        as_storage_path(blank)
    assert str(refused.value) == f"destination must be a path or URI string, got {blank!r}"


def test_a_destination_without_a_scheme_is_a_local_path(tmp_path):
    assert str(as_storage_path(f"{tmp_path}/out")) == f"file://{tmp_path}/out"
    assert str(as_storage_path("s3://bucket/key")) == "s3://bucket/key"

    # Airflow 3.1's ObjectStoragePath keeps the connection in its storage options, not an attribute
    def conn_id(p):
        return getattr(p, "conn_id", None) or p.storage_options.get("conn_id")

    assert conn_id(as_storage_path(f"{tmp_path}/out")) is None
    with_conn = as_storage_path(f"{tmp_path}/out", conn_id="fs_default")
    assert (with_conn.path, conn_id(with_conn)) == (f"{tmp_path}/out", "fs_default")


def _capped(name: str, suffix: str) -> str:
    """The documented cap: the name's head cut to the byte budget, '-', 8 hex of its sha256, the suffix."""
    encoded = name.encode()
    head = encoded[: 200 - len(suffix.encode()) - 9].decode("utf-8", "ignore")
    return f"{head}-{hashlib.sha256(encoded).hexdigest()[:8]}{suffix}"


@pytest.mark.parametrize(
    ("name", "suffix"),
    [
        ("a" * 201, ""),  # one byte over, no extension
        ("a" * 300 + ".tar.gz", ".gz"),  # only the last extension is kept
        ("a" * 300 + "." + "b" * 16, "." + "b" * 16),  # a 16-byte extension is kept
        ("a" * 300 + "." + "b" * 17, ""),  # a longer one is not an extension
        ("é" * 300 + ".csv", ".csv"),  # cut at a character boundary, never inside one
    ],
)
def test_a_long_name_is_cut_to_200_bytes_with_a_digest_of_the_whole(name, suffix):
    capped = sanitize_filename(name)
    assert capped == _capped(name, suffix)
    assert len(capped.encode()) == (199 if name.startswith("é") else 200)


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
    inbox = as_storage_path(str(tmp_path / "INBOX"))  # a prefix ending in a letter the check strips not
    assert str(child_path(inbox, "a.csv")) == f"file://{tmp_path}/INBOX/a.csv"


@pytest.mark.parametrize("leaked", ["../escaped", "..", ".", "/etc/passwd"])
def test_child_path_refuses_a_name_that_would_leave_the_prefix(tmp_path, monkeypatch, leaked):
    """The check behind the sanitizer, forced with a sanitizer that lets a path through: refused."""
    prefix = as_storage_path(str(tmp_path / "out"))
    monkeypatch.setattr(storage, "sanitize_filename", lambda name: name)
    with pytest.raises(FlowRunsConfigError) as refused:
        child_path(prefix, leaked)
    assert str(refused.value) == f"refusing to write outside {prefix}: {leaked!r}"


def test_write_atomically_creates_missing_folders_and_replaces_by_default(tmp_path):
    dest = as_storage_path(str(tmp_path / "a" / "b" / "c.csv"))
    write_atomically(dest, [b"first"])
    write_atomically(dest, [b"second"])  # overwrite=True unless told otherwise
    assert dest.read_bytes() == b"second"
    assert [p.name for p in (tmp_path / "a" / "b").iterdir()] == ["c.csv"]


class _RecordingStorage(LocalFileSystem):
    """A local filesystem that records the block (upload part) size each file is opened with."""

    protocol = ("recordingfs",)
    block_sizes: list = []

    def open(self, path, mode="rb", block_size=None, **kwargs):
        self.block_sizes.append(block_size)
        return super().open(path, mode, block_size=block_size, **kwargs)

    @classmethod
    def _strip_protocol(cls, path):
        return super()._strip_protocol(str(path).removeprefix("recordingfs://"))


def test_the_upload_part_size_follows_the_announced_size(tmp_path, monkeypatch):
    """100 GiB in 8 MiB parts would pass S3's 10,000-part limit: the store is told 12 MiB."""
    monkeypatch.setattr(store, "_STORE_CACHE", dict(store._STORE_CACHE))
    monkeypatch.setattr(_RecordingStorage, "block_sizes", [])
    fsspec.register_implementation("recordingfs", _RecordingStorage, clobber=True)
    store.attach(protocol="recordingfs", fs=_RecordingStorage())
    with pytest.raises(IncompleteTransfer):  # the announced 100 GiB never come: the part size is what counts
        write_atomically(
            ObjectStoragePath(f"recordingfs://{tmp_path}/big.bin"), [b"x"], expected_size=100 << 30
        )
    write_atomically(ObjectStoragePath(f"recordingfs://{tmp_path}/small.bin"), [b"x"])
    assert _RecordingStorage.block_sizes == [12 << 20, 8 << 20]


class _ShortStorage(LocalFileSystem):
    """A local filesystem that says it holds one byte fewer than was written (a lossy store)."""

    protocol = ("shortfs",)

    def size(self, path):
        return super().size(path) - 1

    @classmethod
    def _strip_protocol(cls, path):
        return super()._strip_protocol(str(path).removeprefix("shortfs://"))


def test_storage_holding_fewer_bytes_than_were_written_is_an_incomplete_transfer(tmp_path, monkeypatch):
    monkeypatch.setattr(store, "_STORE_CACHE", dict(store._STORE_CACHE))
    fsspec.register_implementation("shortfs", _ShortStorage, clobber=True)
    store.attach(protocol="shortfs", fs=_ShortStorage())
    dest = ObjectStoragePath(f"shortfs://{tmp_path}/out/f.bin")
    with pytest.raises(IncompleteTransfer) as short:
        write_atomically(dest, [b"ab", b"cd"], expected_size=4)
    assert str(short.value) == "f.bin: storage holds 3 bytes, wrote 4"
    assert list((tmp_path / "out").iterdir()) == []  # the temporary is gone, nothing was moved


def test_write_atomically_verifies_size_and_leaves_nothing_partial(tmp_path):
    dest = as_storage_path(str(tmp_path / "d" / "f.bin"))
    written = write_atomically(dest, [b"ab", b"cd"], expected_size=4)
    assert dest.read_bytes() == b"abcd" and written.size == 4
    assert written.to_dict() == {"uri": str(dest), "size": 4, "sha256": hashlib.sha256(b"abcd").hexdigest()}
    with pytest.raises(IncompleteTransfer) as short:
        write_atomically(as_storage_path(str(tmp_path / "d" / "g.bin")), [b"ab"], expected_size=10)
    assert str(short.value) == "g.bin: received 2 bytes, expected 10"
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
    assert [(a.asset.uri, a.count, a.context) for a in collected.outputs] == [(str(dest), 1, dest)]


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
    assert part_size(size) == part and type(part_size(size)) is int  # fsspec block sizes are whole bytes
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


def test_all_or_nothing_replaces_earlier_objects_and_reports_each_landed_one(tmp_path, lineage_collector):
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.csv").write_bytes(b"earlier")
    first, second = as_storage_path(str(out / "a.csv")), as_storage_path(str(out / "b.csv"))
    with all_or_nothing():
        write_atomically(first, [b"one"])  # overwrite=True: the earlier object is replaced
        write_atomically(second, [b"two"])
        assert lineage_collector.collected_assets.outputs == []  # nothing has landed yet
    assert first.read_bytes() == b"one" and second.read_bytes() == b"two"
    collected = lineage_collector.collected_assets
    assert sorted((a.asset.uri, a.count) for a in collected.outputs) == [(str(first), 1), (str(second), 1)]


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


def test_a_move_failing_part_way_removes_what_this_try_moved(tmp_path, caplog):
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
    assert [r.getMessage() for r in caplog.records if r.name == storage.__name__] == [
        "Moving staged objects into place failed; removing the 1 this try moved"
    ]


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
