"""What a vendor is, as one record of static facts: the type of the records in ``vendors/``.

Airflow reads a vendor's facts in several places: provider info (connection type, form, modules,
links, config options), the hook's class attributes (``conn_type``, ``default_conn_name``,
``hook_name``), the operators' defaults and the engine's poll floor. Each fact is written once in a
:class:`Vendor` record and the rest is derived from it (``get_provider_info``,
``FlowRunsHook.__init_subclass__``, ``VendorOperator``), so they cannot drift apart.

A record imports nothing: the hook is named by its dotted path and imported by :meth:`load_hook`
when a task first needs it, so DAG parse and provider discovery never load the run engine.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_flowruns.forms import Form


@dataclass(frozen=True)
class Vendor:
    """One vendor's static facts.

    :param conn_type: Airflow connection type; also names the default connection
        (``<conn_type>_default``), the hook's connection keyword (``<conn_type>_conn_id``) and the
        ``[flowruns] <conn_type>_poll_interval`` option.
    :param name: the vendor in logs and error messages (``"LiveRamp Clean Room"``).
    :param display_name: the connection type's name in the UI, and the integration's name.
    :param hook: dotted path of the vendor's ``FlowRunsHook`` subclass.
    :param form: the connection form (declared in ``forms.py``).
    :param default_base_url: API base URL when the connection sets no host.
    :param poll_floor: the shortest poll interval the vendor allows (vendor seconds).
    :param default_poll_interval: seconds between status checks when a task sets none.
    :param docs_url: the vendor's API documentation.
    :param link_name: the task's "Open in ..." button.
    :param operators: operator modules, for provider info (likewise ``sensors``, ``transfers``).
    """

    conn_type: str
    name: str
    display_name: str
    hook: str
    form: Form
    default_base_url: str
    poll_floor: float
    default_poll_interval: float
    docs_url: str
    link_name: str
    operators: tuple[str, ...] = ()
    sensors: tuple[str, ...] = ()
    transfers: tuple[str, ...] = ()

    @property
    def default_conn_name(self) -> str:
        return f"{self.conn_type}_default"

    @property
    def conn_name_attr(self) -> str:
        """The keyword Airflow builds the hook with (``hook_class(**{conn_name_attr: conn_id})``)."""
        return f"{self.conn_type}_conn_id"

    @property
    def hook_module(self) -> str:
        return self.hook.rpartition(".")[0]

    def load_hook(self) -> type[Any]:
        """The hook class (a ``FlowRunsHook`` subclass), imported now (Python caches the module).
        It must declare this record as its ``vendor_info``: a record naming a class that does not
        is a wiring error. (Typed loosely on purpose: naming ``FlowRunsHook`` here would tie this
        module and ``core/http.py`` into an import cycle; ``VendorOperator`` types the hook.)"""
        module, _, name = self.hook.rpartition(".")
        cls = getattr(importlib.import_module(module), name, None)
        if getattr(cls, "vendor_info", None) is not self:
            raise TypeError(f"{self.hook} does not declare vendor_info = the {self.name} record")
        return cls  # type: ignore[return-value]
