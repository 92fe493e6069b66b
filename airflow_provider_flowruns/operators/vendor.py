"""``VendorOperator``: a task that talks to one vendor through its hook, typed by that hook.

Run operators, sensors, transfers and bulk operators all name their vendor by its record
(``vendor_info = HABU``), take ``conn_id`` (default: the vendor's ``<conn_type>_default``) and
``hook_params``, and build the hook the same way: ``vendor_info.load_hook()(conn_id,
**hook_params)``, on first use, so DAG parse never imports a hook. The class is generic over the
hook type (``FlowRunOperator["HabuHook"]``), so ``self.hook`` and the hook handed to ``submit()``
are the vendor's hook for mypy and for a reader following it, with no narrowing in the vendor code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar, cast

from airflow.sdk import BaseOperator

from airflow_provider_flowruns.core.params import hook_params_checked
from airflow_provider_flowruns.links import FlowRunLink

if TYPE_CHECKING:
    from airflow_provider_flowruns.core.http import FlowRunsHook
    from airflow_provider_flowruns.core.vendor import Vendor

H = TypeVar("H", bound="FlowRunsHook")


class VendorOperator(BaseOperator, Generic[H]):
    """Base of every task that uses a vendor's hook.

    :param conn_id: Airflow connection id (defaults to the vendor's ``<conn_type>_default``).
    :param hook_params: plain hook settings (``timeout``, ``max_retries``, ``max_rps``, ...).
    """

    #: The vendor's record (``vendors/__init__.py``).
    vendor_info: ClassVar[Vendor]
    #: Whether the task pushes a ``run_url`` XCom: then it gets its vendor's "Open in ..." button.
    links_to_run: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        info = cls.__dict__.get("vendor_info")
        if info is not None and cls.links_to_run and "operator_extra_links" not in cls.__dict__:
            cls.operator_extra_links = (FlowRunLink(info.link_name),)

    def __init__(
        self, *, conn_id: str | None = None, hook_params: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.conn_id = conn_id or self.vendor_info.default_conn_name
        self.hook_params = hook_params_checked(hook_params)
        self._hook: H | None = None

    @property
    def hook(self) -> H:
        """The vendor's hook, built on first use (the hook module is imported then, not at parse)."""
        if self._hook is None:
            self._hook = cast(H, self.vendor_info.load_hook()(self.conn_id, **self.hook_params))
        return self._hook
