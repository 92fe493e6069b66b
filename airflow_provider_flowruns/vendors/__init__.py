"""What DAG parse needs to know about each vendor, without importing its hook.

A DAG file that imports our operators pays for every module they import, in every DAG-processor
process. The hooks pull in the whole run engine (HTTP clients, auth, token cache, create budget,
storage, triggers); the operators need none of it until ``execute``. So each vendor module here
holds only its :class:`HookRef` (connection defaults) and the parameter checks operators run in
``__init__`` (errors at parse time, naming the parameter); the hook modules re-export them.
Nothing here imports more than ``core.errors``/``core.timestamps`` and the standard library.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from airflow_provider_flowruns.core.http import FlowRunsHook

H = TypeVar("H", bound="FlowRunsHook")


class HookRef(Generic[H]):
    """A vendor hook as an operator sees it at DAG parse: the connection defaults, and the hook
    class imported on first real use. ``ref(conn_id, ...)`` builds a hook; any other attribute
    (``vendor``, ``poll_floor``, ...) is read from the imported class. The hook class takes its
    connection defaults from here, so the two cannot drift."""

    __slots__ = ("_cls", "conn_type", "default_conn_name", "default_poll_interval", "path")

    def __init__(self, path: str, *, conn_type: str, default_conn_name: str, default_poll_interval: float):
        self.path = path
        self.conn_type = conn_type
        self.default_conn_name = default_conn_name
        self.default_poll_interval = default_poll_interval
        self._cls: type[H] | None = None

    def load(self) -> type[H]:
        """The hook class (imported now if it was not yet). ``isinstance(hook, REF.load())`` is how
        operators narrow the engine's hook to their vendor's without importing it at parse."""
        if self._cls is None:
            module, _, name = self.path.rpartition(".")
            self._cls = getattr(importlib.import_module(module), name)
        return self._cls

    def __call__(self, *args: Any, **kwargs: Any) -> H:
        return self.load()(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # copy/pickle protocol probes: never import a hook for those
            raise AttributeError(name)
        return getattr(self.load(), name)

    def __repr__(self) -> str:
        return f"HookRef({self.path!r})"
