"""Transfers to S3 as users write them: ``ObjectStoragePath`` with an AWS connection, s3fs, and moto's
S3 server on 127.0.0.1 (a real HTTP endpoint in another process). An object of several upload parts
arrives whole; an object appears only once it is complete; a failed or cut transfer leaves no object
behind, temporary ones included; lineage sees the destination only."""

from __future__ import annotations

import hashlib
import json
import uuid

import pytest
from airflow.sdk import ObjectStoragePath
from conftest import cut_demo_result

from airflow_provider_flowruns.core.errors import FlowRunsConfigError
from airflow_provider_flowruns.core.storage import (
    WRITE_BLOCK_SIZE,
    IncompleteTransfer,
    download_to,
    write_atomically,
)
from flowruns_dev.moto import MotoServer

BUCKET = "flowruns-results"


@pytest.fixture(scope="module")
def moto_server():
    with MotoServer(BUCKET) as server:
        yield server


@pytest.fixture
def prefix(moto_server, monkeypatch) -> ObjectStoragePath:
    """A fresh key prefix in the bucket, reached through an Airflow AWS connection."""
    if not moto_server.alive():
        print(f"!!! moto's S3 server had stopped ({moto_server.restart()}); restarted", flush=True)
    conn_id = f"flowruns_s3_{moto_server.port}"  # one id per server: see conftest's destination
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{conn_id.upper()}",
        json.dumps(
            {
                "conn_type": "aws",
                "login": "testing",
                "password": "testing",
                "extra": {"endpoint_url": moto_server.url, "region_name": "us-east-1"},
            }
        ),
    )
    return ObjectStoragePath(f"s3://{BUCKET}/{uuid.uuid4().hex}", conn_id=conn_id)


def conn_id_of(path: ObjectStoragePath) -> str:
    """The path's connection id: an attribute on Airflow 3.3, a storage option on 3.1."""
    return getattr(path, "conn_id", None) or path.storage_options["conn_id"]


def keys_under(prefix: ObjectStoragePath) -> list[str]:
    fs = prefix.fs
    fs.invalidate_cache()
    return sorted(p.rsplit("/", 1)[-1] for p in fs.find(prefix.path))


def distinct_mebibytes(count: int) -> list[bytes]:
    """A MiB of different bytes each: a part uploaded twice, skipped or out of order shows up."""
    return [hashlib.sha256(i.to_bytes(4, "big")).digest() * 32768 for i in range(count)]


def test_an_object_of_several_parts_arrives_whole_under_its_name_only(prefix):
    chunks = [*distinct_mebibytes(WRITE_BLOCK_SIZE // (1 << 20) * 2), b"tail"]
    body = b"".join(chunks)
    dest = prefix / "out" / "result.csv"
    written = write_atomically(dest, chunks, expected_size=len(body))
    assert dest.read_bytes() == body
    assert written.size == len(body) and written.sha256 == hashlib.sha256(body).hexdigest()
    # The URI carries the connection as ObjectStoragePath writes it, so a downstream task that
    # pulls it from XCom opens the same object through the same connection.
    assert written.uri == f"s3://{conn_id_of(dest)}@{dest.path}"
    assert ObjectStoragePath(written.uri).read_bytes()[-4:] == b"tail"
    assert keys_under(prefix) == ["result.csv"]  # the temporary object was moved, not copied and left


def test_a_short_write_leaves_no_object_and_overwrite_false_keeps_the_first(prefix):
    dest = prefix / "f.bin"
    with pytest.raises(IncompleteTransfer, match="expected 10"):
        write_atomically(dest, [b"ab"], expected_size=10)
    assert keys_under(prefix) == []
    write_atomically(dest, [b"abcd"], expected_size=4)
    with pytest.raises(FlowRunsConfigError, match="overwrite"):
        write_atomically(dest, [b"x"], overwrite=False)
    assert dest.read_bytes() == b"abcd" and keys_under(prefix) == ["f.bin"]


def test_lineage_sees_the_s3_destination_only(prefix, lineage_collector):
    dest = prefix / "lineage.bin"
    write_atomically(dest, [b"abc"], expected_size=3)
    collected = lineage_collector.collected_assets
    assert [a.asset.uri for a in collected.inputs] == []
    # What Airflow's own ObjectStoragePath writes record (str() of the path, connection included).
    assert [a.asset.uri for a in collected.outputs] == [str(dest)] == [f"s3://{conn_id_of(dest)}@{dest.path}"]


def test_a_download_cut_twice_is_retried_into_one_whole_object(demo, prefix):
    open_stream = cut_demo_result(demo, "to-s3", cuts=2, result_rows=20000)
    dest = prefix / "result.csv"
    written = download_to(open_stream, dest, retry_delay=0.01)
    body = dest.read_text()
    assert body.startswith("row,value\n") and body.endswith("19999,399960001\n")
    assert written.size == len(body.encode()) and keys_under(prefix) == ["result.csv"]
    assert demo.stats()["faults_injected"] == {"truncate": 2}


def test_a_failed_multi_object_try_leaves_nothing_in_the_bucket(prefix):
    from airflow_provider_flowruns.core.storage import all_or_nothing

    class Boom(Exception):
        pass

    with pytest.raises(Boom), all_or_nothing():
        write_atomically(prefix / "a.csv", [b"one"])
        write_atomically(prefix / "b.csv", distinct_mebibytes(9))  # two upload parts
        assert keys_under(prefix) == sorted(k for k in keys_under(prefix) if ".partial-" in k)
        raise Boom
    assert keys_under(prefix) == []


def test_a_multi_object_try_lands_whole_in_the_bucket(prefix):
    from airflow_provider_flowruns.core.storage import all_or_nothing

    with all_or_nothing():
        write_atomically(prefix / "a.csv", [b"one"])
        write_atomically(prefix / "b.csv", [b"two"])
    assert keys_under(prefix) == ["a.csv", "b.csv"]
    assert (prefix / "b.csv").read_bytes() == b"two"


# -- a Habu question run's files into S3: all of them or none ---------------------------------------------
@pytest.fixture
def habu_verbatim(monkeypatch, tmp_path):
    """The Habu emulator, answering the run's result data with the vendor spec's example (§1.5)
    and its two output files verbatim."""
    from contract_examples import example

    from airflow_provider_flowruns.core import shared_tokens
    from airflow_provider_flowruns.testing.process import EmulatorProcess

    with EmulatorProcess(["habu"], speed=600) as emu:
        monkeypatch.setenv(
            "AIRFLOW_CONN_HABU_DEFAULT",
            json.dumps(
                {
                    "conn_type": "habu",
                    "host": emu.url("habu", "/v1"),
                    "login": "habu-client",
                    "password": "habu-secret",
                    "extra": {"emulator_time_scale": 600},
                }
            ),
        )
        monkeypatch.setenv("AIRFLOW__FLOWRUNS__TOKEN_LOCK_DIR", str(tmp_path / "locks"))
        monkeypatch.setattr(shared_tokens.SHARED_TOKEN_CACHE, "_memory", shared_tokens.MemoryTokenCache())
        run = "/habu/v1/cleanroom-question-runs/qr-1"
        emu.serve_verbatim(
            *(
                {
                    "method": "GET",
                    "path": f"{run}/download/{n}",
                    "text": f"file {n}\n",
                    "content_type": "text/csv",
                }
                for n in ("output_a.csv", "output_b.csv")
            ),
            {
                "method": "GET",
                "path": f"{run}/data",
                "query": {"limit": "1"},
                "body": example("habu", "question_run_result_data").body,
            },
        )
        yield emu, f"{run}/data"


def _files_op(prefix: ObjectStoragePath):
    from airflow_provider_flowruns.transfers.habu import HabuQuestionRunFilesToStorageOperator

    return HabuQuestionRunFilesToStorageOperator(
        task_id="files",
        run_id="qr-1",
        destination=f"s3://{conn_id_of(prefix)}@{prefix.path}/out",
        include_data="csv",
    )


def test_habu_question_files_land_whole_in_the_bucket(prefix, habu_verbatim):
    from contract_examples import example

    emu, data = habu_verbatim
    emu.serve_verbatim(
        {"method": "GET", "path": data, "body": example("habu", "question_run_result_data").body}
    )
    written = _files_op(prefix).execute({})
    assert [w["source"] for w in written] == ["output_a.csv", "output_b.csv", "data"]
    assert keys_under(prefix) == ["data.csv", "output_a.csv", "output_b.csv"]
    assert (prefix / "out" / "data.csv").read_bytes() == b"brand,reach\r\nnike,1234\r\nnike,1234\r\n"


def test_a_failing_habu_data_page_after_two_downloads_leaves_nothing_in_the_bucket(prefix, habu_verbatim):
    from airflow_provider_flowruns.core.errors import FlowRunsApiError

    emu, data = habu_verbatim
    emu.serve_verbatim(
        {"method": "GET", "path": data, "status": 500, "body": {"code": "500", "message": "boom"}}
    )
    with pytest.raises(FlowRunsApiError) as exc:
        _files_op(prefix).execute({})
    assert exc.value.status == 500
    assert len([r for r in emu.verbatim_requests() if "/download/" in r["path"]]) == 2  # both were fetched
    assert keys_under(prefix) == []  # temporaries included
