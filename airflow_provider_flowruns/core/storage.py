"""Writing vendor results into any ``ObjectStoragePath`` safely.

Three guarantees every transfer operator relies on:
- names that come from a vendor never escape the destination prefix (``../../x``, absolute paths,
  NUL bytes, control characters and odd unicode are neutralised);
- bytes are streamed, never held whole in memory;
- the destination never holds a partial object: data goes to a temporary sibling first, its size
  (and, where the vendor gives one, its length header) is verified, and only then is it moved into
  place. A cut stream is retried from the start.
"""

from __future__ import annotations

import hashlib
import logging
import time
import unicodedata
import uuid
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import httpx
from airflow.sdk import ObjectStoragePath

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
    """``prefix / sanitized(vendor_name)``, verified to stay under ``prefix``."""
    child = prefix / sanitize_filename(vendor_name)
    base = str(prefix).rstrip("/") + "/"
    if not str(child).startswith(base):
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


def write_atomically(
    dest: ObjectStoragePath,
    chunks: Iterable[bytes],
    *,
    expected_size: int | None = None,
    overwrite: bool = True,
) -> WrittenObject:
    """Stream ``chunks`` to a temporary sibling of ``dest``, verify, then move it into place."""
    if not overwrite and dest.exists():
        raise FlowRunsConfigError(f"{dest} already exists and overwrite=False")
    tmp = dest.parent / f".{dest.name}.partial-{uuid.uuid4().hex[:12]}"
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        # fsspec buffers a whole block before uploading it (s3fs: 50 MiB by default, held more than
        # once while a part is sent); 8 MiB parts kept a 1 GiB copy to S3 at a flat, small peak RSS
        # (benchmarks/, bench 3). Local files ignore it. The file is opened on the path's fsspec
        # filesystem, not through ObjectStoragePath.open: that wraps every write() to report the
        # (temporary) object as a lineage output; the destination is reported once, below.
        digest = hashlib.sha256()
        size = 0
        with tmp.fs.open(tmp.path, "wb", block_size=WRITE_BLOCK_SIZE) as fh:
            for chunk in chunks:
                if chunk:
                    fh.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
        if expected_size is not None and size != expected_size:
            raise IncompleteTransfer(f"{dest.name}: received {size} bytes, expected {expected_size}")
        written = tmp.stat().st_size if hasattr(tmp.stat(), "st_size") else size
        if written != size:
            raise IncompleteTransfer(f"{dest.name}: storage holds {written} bytes, wrote {size}")
        tmp.move(dest)
    except BaseException:
        _remove_quietly(tmp)
        raise
    _record_output(dest)
    return WrittenObject(uri=str(dest), size=size, sha256=digest.hexdigest())


def _record_output(dest: ObjectStoragePath) -> None:
    """Report the written object as a lineage output, as ``ObjectStoragePath.open`` would have."""
    try:
        from airflow.sdk.lineage import get_hook_lineage_collector

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
    once more for nothing (measured in benchmarks/, bench 3).
    """
    last: Exception | None = None
    for attempt in range(1, attempts + 1):
        try:
            with open_stream() as response:
                expected = _content_length(response)
                # Without a content encoding the raw body is the body: iter_raw skips httpx's
                # decoder and re-chunker (one call layer per chunk). Compressed bodies are decoded.
                identity = expected is not None and chunk_size is None
                body = response.iter_raw() if identity else response.iter_bytes(chunk_size)
                return write_atomically(dest, body, expected_size=expected, overwrite=overwrite)
        except (httpx.TransportError, IncompleteTransfer) as exc:
            last = exc
            log.warning("Download to %s interrupted (%s); attempt %d/%d", dest, exc, attempt, attempts)
            if attempt < attempts:
                time.sleep(retry_delay * attempt)
    raise IncompleteTransfer(f"{dest.name}: download failed after {attempts} attempts: {last}")


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
