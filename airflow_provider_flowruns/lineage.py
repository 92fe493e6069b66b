"""OpenLineage for the provider's tasks: the vendor run as the task's external run, the vendor's flow
(question, workflow, or the run a transfer reads) as the input dataset, and what a transfer wrote as
the output datasets.

Airflow's OpenLineage listener calls each operator's ``get_openlineage_facets_on_complete`` /
``_on_failure`` (in the worker, after the task's work); :class:`EmitsLineage` gives every run
operator and transfer those two methods, and :func:`operator_lineage` builds the answer. This module
is imported at DAG parse (operators inherit the mixin) and imports nothing but the standard library
there: OpenLineage is imported inside the calls, so the ``[openlineage]`` extra
(``apache-airflow-providers-openlineage``) is needed only where lineage is emitted.

Naming follows OpenLineage's conventions: a dataset's namespace is where it lives, its name what it
is there. A vendor's datasets live at its API, ``<connection type>://<API host[:port]>`` (say
``habu://api.habu.com``); each operator class declares the name of what it reads as a template over
its own (rendered) attributes, :attr:`lineage_source` (say ``"flows/{flow_id}"``). Written objects
are named as Airflow's OpenLineage integration names an object-storage URI (``s3://bucket`` + key,
``file://`` + path). The vendor run is an ``externalQuery`` run facet: its id and the namespace of
the API that ran it, as SQL operators report the query a warehouse ran.
"""

from __future__ import annotations

import string
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage

    from airflow_provider_flowruns.core.http import FlowRunsHook


class EmitsLineage:
    """The OpenLineage methods of a run operator or transfer.

    A class declares :attr:`lineage_source` (what it reads, a name template over its attributes); its
    vendor is its ``hook`` (a ``VendorOperator``'s); a run operator's vendor run comes from the run
    it started or watched (``_run_ref``), a transfer's from its ``run_id``, and what a transfer
    wrote is the ``_produced`` record ``core/produced.py`` keeps once all of it landed (the same
    record its outlet asset events are made from).
    """

    #: What the task reads at the vendor, as a name template over the operator's attributes
    #: (``"flows/{flow_id}"``); None: no input dataset.
    lineage_source: ClassVar[str | None] = None

    def lineage_vendor_hook(self) -> FlowRunsHook:
        """The task's vendor hook: every run operator and transfer is a ``VendorOperator``."""
        return self.hook  # type: ignore[attr-defined, no-any-return]

    def lineage_run_id(self) -> str | None:
        """The vendor run this task started, watched or read (None before it had one)."""
        ref = getattr(self, "_run_ref", None)
        if ref is not None:
            return str(ref.run_id)
        run_id = getattr(self, "run_id", None)
        return str(run_id) if run_id else None

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage:
        """Airflow's OpenLineage listener, on success: see :func:`operator_lineage`."""
        written = [p.uri for p in getattr(self, "_produced", ())]
        return operator_lineage(
            self, self.lineage_vendor_hook(), run_id=self.lineage_run_id(), written=written
        )

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> OperatorLineage:
        """On failure: the vendor run that failed (when there was one) and what it read; no outputs,
        a failed transfer having left nothing behind (all or nothing)."""
        return operator_lineage(self, self.lineage_vendor_hook(), run_id=self.lineage_run_id())


def namespace(hook: FlowRunsHook) -> str:
    """``<connection type>://<API host[:port]>``, the vendor API's namespace, from the connection
    (read once more here: the listener runs after the task, in the same worker)."""
    import httpx

    url = httpx.URL(hook.base_url_of(hook.get_connection(hook.conn_id)))
    netloc = url.host if url.port is None else f"{url.host}:{url.port}"
    return f"{hook.conn_type}://{netloc}"


def source_name(template: str | None, operator: Any) -> str | None:
    """The operator's :attr:`lineage_source` filled from its attributes; None when the class declares
    none or one of the attributes it names is unset (a dataset named ``flows/None`` would be wrong)."""
    if not template:
        return None
    values: dict[str, str] = {}
    for _, name, _, _ in string.Formatter().parse(template):
        if name is None:
            continue
        value = getattr(operator, name, None)
        if value is None or value == "":
            return None
        values[name] = str(value)
    return template.format(**values)


def operator_lineage(
    operator: Any,
    hook: FlowRunsHook,
    *,
    run_id: str | None,
    written: Iterable[str] = (),
) -> OperatorLineage:
    """What the task read, ran and wrote, as OpenLineage's ``OperatorLineage``.

    :param operator: the task's operator; its class's ``lineage_source`` names the input dataset.
    :param hook: the operator's hook (its connection gives the vendor namespace).
    :param run_id: the vendor run the task started, watched or read; None if it never got one.
    :param written: URIs of the objects a transfer wrote (its output datasets).
    """
    from airflow.providers.openlineage.extractors import OperatorLineage
    from airflow.providers.openlineage.extractors.manager import ExtractorManager
    from airflow.providers.openlineage.plugins.adapter import _PRODUCER
    from openlineage.client.event_v2 import Dataset
    from openlineage.client.facet_v2 import external_query_run

    where = namespace(hook)
    name = source_name(getattr(operator, "lineage_source", None), operator)
    inputs = [Dataset(namespace=where, name=name)] if name else []
    outputs = [
        dataset
        for uri in written
        if (dataset := ExtractorManager.convert_to_ol_dataset_from_object_storage_uri(uri)) is not None
    ]
    run_facets: dict[str, Any] = {}
    if run_id:
        run_facets["externalQuery"] = external_query_run.ExternalQueryRunFacet(
            externalQueryId=str(run_id), source=where, producer=_PRODUCER
        )
    return OperatorLineage(inputs=inputs, outputs=outputs, run_facets=run_facets)
