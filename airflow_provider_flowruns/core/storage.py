"""Writing vendor results into any ``ObjectStoragePath`` safely.

Three guarantees every transfer operator relies on:
- names that come from a vendor never escape the destination prefix (``../../x``, absolute paths,
  NUL bytes, control characters and odd unicode are neutralised);
- bytes are streamed, never held whole in memory;
- the destination never holds a partial object: data goes to a temporary sibling first, its size
  (and, where the vendor gives one, its length header) is verified, and only then is it moved into
  place. A cut stream is retried from the start.

And one more for transfers that write several objects: inside ``all_or_nothing()`` every object is
staged (written and verified under its temporary name) and all are moved into place only when the
block ends without error. A failed try leaves nothing of itself in the destination: its staged
objects are removed, and if a move fails part-way, the objects this try already moved are removed
too (an object it overwrote is not restored: ``overwrite=False`` is the way to keep earlier ones).
"""

from __future__ import annotations

import hashlib
import logging
import time
import unicodedata
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import httpx
from airflow.sdk import ObjectStoragePath

from airflow_provider_flowruns.core.download_transport import READINTO
from airflow_provider_flowruns.core.errors import FlowRunsConfigError, FlowRunsError

log = logging.getLogger(__name__)

_MAX_NAME_BYTES = 200


class IncompleteTransfer(FlowRunsError):
    """The bytes received do not match what the vendor announced."""


def sanitize_filename(name: Any, *, fallback: str = "file") -> str:
    """Turn an untrusted vendor file name into one safe path segment.

    Only the last path component survives; separators, NUL and control characters are replaced;
    leading dots are dropped so the result is never ``.``/``..`` or hidden; length is capped in bytes.
    """
    text = unicodedata.normalize("NFKC", str(name or ""))
    text = text.replace("\\", "/").rstrip("/").split("/")[-1]
    cleaned = "".join(
        "_" if (ch in '<>:"|?*' or unicodedata.category(ch)[0] == "C") else ch for ch in text
    ).strip()
    cleaned = cleaned.lstrip(". ")
    if not cleaned:
        return fallback
    encoded = cleaned.encode("utf-8")
    if len(encoded) > _MAX_NAME_BYTES:
        _, dot, ext = cleaned.rpartition(".")
        suffix = f".{ext}" if dot and len(ext.encode()) <= 16 else ""
        digest = hashlib.sha256(encoded).hexdigest()[:8]
        budget = _MAX_NAME_BYTES - len(suffix.encode()) - 9
        head = encoded[:budget].decode("utf-8", "ignore")
        cleaned = f"{head}-{digest}{suffix}"
    return cleaned


def as_storage_path(value: str | ObjectStoragePath, *, conn_id: str | None = None) -> ObjectStoragePath:
    """Accept a URI string (``s3://bucket/key``, ``file:///tmp/x``, ``/tmp/x``) or a path object."""
    if isinstance(value, ObjectStoragePath):
        return value
    if not isinstance(value, str) or not value.strip():
        raise FlowRunsConfigError(f"destination must be a path or URI string, got {value!r}")
    uri = value if "://" in value else f"file://{value}"
    return ObjectStoragePath(uri, conn_id=conn_id) if conn_id else ObjectStoragePath(uri)


def child_path(prefix: ObjectStoragePath, vendor_name: Any) -> ObjectStoragePath:
    """``prefix / sanitized(vendor_name)``, verified to stay under ``prefix``.

    Behind the sanitizer, in case it ever lets a path through: the name must be one segment (a
    string-prefix check alone passes ``prefix/../x``) and the joined path must start with the prefix
    (an absolute name replaces it).
    """
    name = sanitize_filename(vendor_name)
    child = prefix / name
    base = str(prefix).rstrip("/") + "/"
    if "/" in name or name in {".", ".."} or not str(child).startswith(base):
        raise FlowRunsConfigError(f"refusing to write outside {prefix}: {vendor_name!r}")
    return child


@dataclass(frozen=True)
class WrittenObject:
    uri: str
    size: int
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {"uri": self.uri, "size": self.size, "sha256": self.sha256}


#: Upload part size for object stores (S3's minimum part is 5 MiB).
WRITE_BLOCK_SIZE = 8 * 1024 * 1024
#: S3 takes at most 10,000 parts per object; a little headroom under it.
MAX_PARTS = 9_000
#: The most one ``write()`` to the destination hands over. A big write lets the kernel back the file
#: with large page-cache folios; on a VM that returns free memory to its host (virtio-balloon free
#: page reporting), those come from blocks the host has taken back and fault in again: 1 MiB writes
#: cost ~3 s of system CPU per GiB on the benchmark machine, 32 KiB writes ~0.6 s (curl writes 16 KiB).
#: Elsewhere it is ~32,000 more calls per GiB, tens of ms. Slices are views: no byte is copied.
WRITE_SLICE = 32 * 1024
#: Chunks at least this big are hashed in a thread while they are written (a hand-off costs tens of
#: microseconds: worth it for the 1 MiB chunks ``download_to`` reads, not for 64 KiB ones).
HASH_APART = 256 * 1024


@dataclass
class _StagedBatch:
    """Objects written and verified under temporary names, waiting to be moved into place together."""

    #: destination path -> (temporary path, destination, overwrite), in the order first written.
    staged: dict[str, tuple[ObjectStoragePath, ObjectStoragePath, bool]] = field(default_factory=dict)
    #: folders this try created (filesystems with real directories), removed again if it fails.
    created: list[ObjectStoragePath] = field(default_factory=list)

    def make_parents(self, dest: ObjectStoragePath) -> None:
        missing = []
        folder = dest.parent
        # Object stores have no folders (and each exists() would be a request): local ones only.
        protocols = dest.fs.protocol if isinstance(dest.fs.protocol, tuple) else (dest.fs.protocol,)
        while "file" in protocols and not folder.exists() and folder != folder.parent:
            missing.append(folder)
            folder = folder.parent
        dest.parent.mkdir(parents=True, exist_ok=True)
        self.created.extend(reversed(missing))  # outermost first

    def add(self, tmp: ObjectStoragePath, dest: ObjectStoragePath, overwrite: bool) -> None:
        earlier = self.staged.pop(dest.path, None)
        if earlier is not None:  # the same object written twice in one try: the last one lands
            _remove_quietly(earlier[0])
        self.staged[dest.path] = (tmp, dest, overwrite)

    def discard(self) -> None:
        for tmp, _, _ in self.staged.values():
            _remove_quietly(tmp)
        self.staged.clear()
        for folder in reversed(self.created):  # innermost first; only if nothing else landed there
            try:
                if folder.exists() and not any(folder.iterdir()):
                    folder.rmdir()
            except Exception:
                log.debug("could not remove folder %s", folder, exc_info=True)
        self.created.clear()

    def commit(self) -> None:
        moved: list[ObjectStoragePath] = []
        try:
            for tmp, dest, overwrite in self.staged.values():
                if not overwrite and dest.exists():  # appeared while this try was downloading
                    raise FlowRunsConfigError(f"{dest} already exists and overwrite=False")
                tmp.fs.mv(tmp.path, dest.path)
                moved.append(dest)
        except BaseException:
            log.error("Moving staged objects into place failed; removing the %d this try moved", len(moved))
            for dest in moved:
                _remove_quietly(dest)
            self.discard()
            raise
        self.staged.clear()
        for dest in moved:
            _record_output(dest)


_batch: ContextVar[_StagedBatch | None] = ContextVar("flowruns_staged_batch", default=None)


@contextmanager
def all_or_nothing() -> Iterator[None]:
    """Every object ``write_atomically`` (and so ``download_to``) writes inside the block lands when
    the block ends without error, or none does. Nested blocks join the outermost one."""
    if _batch.get() is not None:
        yield
        return
    batch = _StagedBatch()
    token = _batch.set(batch)
    try:
        yield
    except BaseException:
        batch.discard()
        raise
    finally:
        _batch.reset(token)
    batch.commit()


def write_atomically(
    dest: ObjectStoragePath,
    chunks: Iterable[bytes | memoryview],
    *,
    expected_size: int | None = None,
    overwrite: bool = True,
) -> WrittenObject:
    """Stream ``chunks`` to a temporary sibling of ``dest``, verify, then move it into place.

    Each chunk is hashed and written before the next is taken, so chunks may be views of a buffer
    the producer reuses (``download_to`` reads into one). Inside ``all_or_nothing()`` the verified
    temporary is left in place and moved when the block ends.
    """
    if not overwrite and dest.exists():
        raise FlowRunsConfigError(f"{dest} already exists and overwrite=False")
    tmp = dest.parent / f".{dest.name}.partial-{uuid.uuid4().hex[:12]}"
    batch = _batch.get()
    try:
        if batch is not None:
            batch.make_parents(dest)
        else:
            dest.parent.mkdir(parents=True, exist_ok=True)
        # fsspec buffers a whole block before uploading it (s3fs: 50 MiB by default, held more than
        # once while a part is sent); 8 MiB parts kept a 1 GiB copy to S3 at a flat, small peak RSS
        # (dev/benchmarks/, bench 3). Local files ignore it. The file is opened on the path's fsspec
        # filesystem, not through ObjectStoragePath.open: that wraps every write() to report the
        # (temporary) object as a lineage output; the destination is reported once, below.
        digest = hashlib.sha256()
        size = 0
        with (
            tmp.fs.open(tmp.path, "wb", block_size=part_size(expected_size)) as fh,
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="flowruns-sha256") as hasher,
        ):
            for chunk in chunks:
                if chunk:
                    view = memoryview(chunk)
                    # sha256 costs about what reading and writing cost together; hashlib drops the
                    # GIL for a big chunk, so it runs on the other core while the chunk is written.
                    hashed = hasher.submit(digest.update, view) if len(view) >= HASH_APART else None
                    for start in range(0, len(view), WRITE_SLICE):
                        fh.write(view[start : start + WRITE_SLICE])
                    if hashed is None:
                        digest.update(view)
                    else:
                        hashed.result()  # before the producer may reuse the chunk's buffer
                    size += len(view)
        if expected_size is not None and size != expected_size:
            raise IncompleteTransfer(f"{dest.name}: received {size} bytes, expected {expected_size}")
        written = tmp.fs.size(tmp.path)  # one HEAD on an object store, not one per attribute
        if written is not None and written != size:
            raise IncompleteTransfer(f"{dest.name}: storage holds {written} bytes, wrote {size}")
        if batch is not None:
            batch.add(tmp, dest, overwrite)
        else:
            # On the filesystem, not ObjectStoragePath.move: that reports the temporary name as a
            # lineage input (a dataset nobody should see); the destination is reported below.
            tmp.fs.mv(tmp.path, dest.path)
    except BaseException:
        _remove_quietly(tmp)
        raise
    if batch is None:
        _record_output(dest)
    return WrittenObject(uri=str(dest), size=size, sha256=digest.hexdigest())


def part_size(expected_size: int | None) -> int:
    """The upload part (fsspec block) size for an object of ``expected_size`` bytes.

    8 MiB keeps the peak small, but S3 refuses part 10,001: fixed 8 MiB parts cap an object at
    ~80 GB. Bigger objects get bigger parts, in whole MiB. An unknown size (a compressed body)
    keeps 8 MiB.
    """
    if not expected_size:
        return WRITE_BLOCK_SIZE
    mib = 1024 * 1024
    return max(WRITE_BLOCK_SIZE, -(-expected_size // MAX_PARTS // mib) * mib)


def _record_output(dest: ObjectStoragePath) -> None:
    """Report the written object as a lineage output, as ``ObjectStoragePath.open`` would have."""
    try:
        try:
            from airflow.sdk.lineage import get_hook_lineage_collector
        except ImportError:  # Airflow 3.1
            from airflow.lineage.hook import get_hook_lineage_collector  # type: ignore[no-redef]

        get_hook_lineage_collector().add_output_asset(context=dest, uri=str(dest))
    except Exception:  # lineage is metadata: never fail a written, verified object over it
        log.debug("could not record %s as a lineage output", dest, exc_info=True)


def download_to(
    open_stream: Callable[[], AbstractContextManager[httpx.Response]],
    dest: ObjectStoragePath,
    *,
    attempts: int = 3,
    chunk_size: int | None = None,
    overwrite: bool = True,
    retry_delay: float = 1.0,
) -> WrittenObject:
    """Download a streamed HTTP body into ``dest``; a cut or short stream is retried from scratch.

    ``chunk_size`` None writes chunks as they arrive: re-chunking to a fixed size copies every byte
    once more for nothing (measured in dev/benchmarks/, bench 3).
    """
    last: Exception | None = None
    for attempt in range(1, attempts + 1):
        try:
            with open_stream() as response:
                expected = _content_length(response)
                # Without a content encoding the raw body is the body: read it into one reused
                # buffer where the transport allows (one copy of each byte, see
                # core.download_transport), else iter_raw, which skips httpx's decoder and
                # re-chunker. Compressed bodies are decoded.
                identity = expected is not None and chunk_size is None
                readinto = response.extensions.get(READINTO) if identity else None
                if readinto is not None:
                    body: Iterable[bytes | memoryview] = _read_into_buffer(readinto)
                elif identity:
                    body = response.iter_raw()
                else:
                    body = response.iter_bytes(chunk_size)
                return write_atomically(dest, body, expected_size=expected, overwrite=overwrite)
        except (httpx.TransportError, IncompleteTransfer) as exc:
            last = exc
            log.warning("Download to %s interrupted (%s); attempt %d/%d", dest, exc, attempt, attempts)
            if attempt < attempts:
                time.sleep(retry_delay * attempt)
    raise IncompleteTransfer(f"{dest.name}: download failed after {attempts} attempts: {last}")


#: The reused buffer a download is read into: big enough that the per-chunk Python work (hash,
#: write, loop) is noise, small enough to be nothing on a worker.
READ_BUFFER_SIZE = 1024 * 1024


def _read_into_buffer(readinto: Callable[[memoryview], int]) -> Iterator[memoryview]:
    """The body as views of one reused buffer: each is valid until the next is asked for.

    ``write_atomically`` hashes and writes every chunk before taking the next (file writes and
    fsspec's upload buffers copy it), which is what makes reusing the buffer safe.
    """
    view = memoryview(bytearray(READ_BUFFER_SIZE))
    while n := readinto(view):
        yield view[:n]


def _content_length(response: httpx.Response) -> int | None:
    if response.headers.get("content-encoding", "identity") not in ("", "identity"):
        return None  # Content-Length counts encoded bytes; we write decoded ones
    value = response.headers.get("content-length")
    return int(value) if value and value.isdigit() else None


def _remove_quietly(path: ObjectStoragePath) -> None:
    try:
        if path.exists():
            path.unlink()
    except Exception:  # best effort: the temp name is unique and never the destination
        log.debug("could not remove temporary object %s", path, exc_info=True)
