"""Activepieces: a run's step outputs -> one JSON object per step under a destination prefix."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_flowruns.core.errors import FlowRunsConfigError, FlowRunsError
from airflow_provider_flowruns.lineage import EmitsLineage
from airflow_provider_flowruns.operators.vendor import VendorOperator
from airflow_provider_flowruns.vendors import ACTIVEPIECES

if TYPE_CHECKING:
    from airflow.sdk import Context, ObjectStoragePath

    from airflow_provider_flowruns.core.params import RunIdArg
    from airflow_provider_flowruns.core.storage import WrittenObject
    from airflow_provider_flowruns.hooks.activepieces import ActivepiecesHook  # noqa: F401 - the base's type argument

# The hook and the storage engine are imported where they are used (see ``vendors``).


def step_files(folder: ObjectStoragePath, names: Sequence[str]) -> dict[str, ObjectStoragePath]:
    """Step name -> ``<folder>/<sanitized name>.json``; names that sanitize alike get ``-2``, ``-3``...

    Step names come from the flow's author, so they are treated like any vendor file name.
    """
    from airflow_provider_flowruns.core.storage import child_path, sanitize_filename

    paths: dict[str, ObjectStoragePath] = {}
    used: set[str] = set()
    for name in names:
        base = sanitize_filename(name, fallback="step")
        candidate, n = base, 1
        while candidate.lower() in used:
            n += 1
            candidate = f"{base}-{n}"
        used.add(candidate.lower())
        paths[name] = child_path(folder, f"{candidate}.json")
    return paths


class ActivepiecesStepOutputsToStorageOperator(EmitsLineage, VendorOperator["ActivepiecesHook"]):
    """Write each step's ``output`` of run ``run_id`` to ``<destination>/<run id>/<step>.json``.

    :param run_id: the Activepieces run (templated, e.g. ``{{ ti.xcom_pull('trigger') }}``).
    :param destination: prefix URI (``s3://bucket/activepieces/{{ ds }}``, ``/data/out``).
    :param steps: only these step names (default: every step, the trigger included).
    :param overwrite: replace existing objects (default True; False fails on an existing one).

    Step data exists once a run has started and until Activepieces purges it (30 days by default):
    outside that the task fails saying which. A step without an ``output`` fails the task naming
    it. The files land together or not at all: a try that fails (an existing file with
    ``overwrite=False``, a storage error) leaves none of its files behind. Returns the list of
    ``{uri, size, sha256}`` written; each asset in ``outlets`` gets an event whose extra lists them
    with the run (``{objects, bytes, vendor, run_id, run_url}``, see ``core/produced.py``).
    ``conn_id`` and ``hook_params`` as on every vendor task (:class:`VendorOperator`).
    """

    vendor_info = ACTIVEPIECES

    template_fields: Sequence[str] = ("conn_id", "run_id", "destination", "steps")
    lineage_source = "flow-runs/{run_id}"

    def __init__(
        self,
        *,
        run_id: RunIdArg,
        destination: str,
        steps: list[str] | None = None,
        overwrite: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not run_id:
            raise FlowRunsConfigError("run_id is required")
        self.run_id = run_id
        self.destination = destination
        self.steps = steps
        self.overwrite = overwrite

    def execute(self, context: Context) -> list[dict[str, Any]]:
        from airflow_provider_flowruns.core.models import read
        from airflow_provider_flowruns.core.storage import (
            all_or_nothing,
            as_storage_path,
            child_path,
            write_atomically,
        )
        from airflow_provider_flowruns.hooks.activepieces import RETENTION_HINT
        from airflow_provider_flowruns.hooks.activepieces_models import ActivepiecesStepOutput

        hook = self.hook
        run = hook.get_run(str(self.run_id))
        steps = run.get("steps")
        if not isinstance(steps, Mapping) or not steps:
            raise FlowRunsError(
                f"Activepieces run {self.run_id} ({run.get('status')}) has no step data: it has not "
                f"started yet, or its data is gone ({RETENTION_HINT})"
            )
        if run.get("stepsDataTruncated"):
            self.log.warning("Activepieces truncated the step data of run %s (log size limit).", self.run_id)
        names = list(steps) if self.steps is None else list(self.steps)
        unknown = [n for n in names if n not in steps]
        if unknown:
            raise FlowRunsConfigError(f"run {self.run_id} has no steps {unknown}; it has {sorted(steps)}")
        # Every step is read before anything is written: a step without an ``output`` fails the task
        # naming it (``steps.step_1.output: Field required``) instead of landing as a guessed null.
        outputs = {
            name: read(
                ActivepiecesStepOutput,
                steps[name],
                what=f"Activepieces run {self.run_id} step data",
                prefix=f"steps.{name}",
            ).output
            for name in names
        }
        folder = child_path(as_storage_path(self.destination), str(self.run_id))
        written: list[WrittenObject] = []
        with all_or_nothing():  # a failed try leaves none of its files behind
            for name, path in step_files(folder, names).items():
                data = json.dumps(outputs[name], indent=2, sort_keys=True, default=str).encode()
                written.append(
                    write_atomically(path, [data], expected_size=len(data), overwrite=self.overwrite)
                )
        for obj in written:
            self.log.info("Wrote %s (%s bytes, sha256 %s)", obj.uri, obj.size, obj.sha256)
        result = [obj.to_dict() for obj in written]
        from airflow_provider_flowruns.core.produced import Produced, VendorRun, annotate_outlets
        from airflow_provider_flowruns.core.runs import RunRef

        ref = RunRef(str(self.run_id))
        vendor_run = VendorRun(
            hook.vendor, ref.run_id, hook.run_url(ref), kind=ref.kind, vendor_status=run.get("status")
        )
        annotate_outlets(context, self.outlets, Produced.from_run(result, vendor_run), task=self)
        return result
