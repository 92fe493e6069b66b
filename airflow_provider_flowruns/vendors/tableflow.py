"""Tableflow at DAG parse: the ``files`` check (see ``vendors``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_provider_flowruns.core.errors import FlowRunsConfigError
from airflow_provider_flowruns.core.params import is_templated

#: What ``files`` looks like, for error messages.
FILES_SHAPE = (
    "a dict of file field key -> path or URI (or a list of them for a multi-file field), "
    "e.g. {'purchase_order': 's3://inbox/po.pdf'}"
)


def check_files(files: Any, *, rendered: bool = False) -> None:
    """Fail naming ``files`` when it is not :data:`FILES_SHAPE`.

    At parse (``rendered=False``) a string is allowed only as a template, which may render to a
    dict (``render_template_as_native_obj``); after rendering nothing but a dict is. Whether each
    document exists is checked on the worker, before the upload (``hooks.tableflow``): at parse a
    path may be templated, or exist only where the task runs.
    """
    if isinstance(files, str):
        if is_templated(files) and not rendered:
            return
        raise FlowRunsConfigError(f"files must be {FILES_SHAPE}; got the string {files!r}")
    if not isinstance(files, Mapping) or not files:
        raise FlowRunsConfigError(f"files must be {FILES_SHAPE}; got {files!r}")
    for key, value in files.items():
        if not isinstance(key, str) or not key:
            raise FlowRunsConfigError(f"files has key {key!r}: file field keys are non-empty strings")
        paths = value if isinstance(value, (list, tuple)) else [value]
        if not paths:
            raise FlowRunsConfigError(f"files[{key!r}] is an empty list; give at least one path")
        for path in paths:
            if isinstance(path, str) and path.strip():
                continue
            if any(c.__name__ == "ObjectStoragePath" for c in type(path).__mro__):
                continue  # by name: importing airflow.sdk's storage module costs DAG parse
            raise FlowRunsConfigError(
                f"files[{key!r}] must be a path or URI string (or a list of them), got {path!r}"
            )
