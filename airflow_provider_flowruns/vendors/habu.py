"""LiveRamp Clean Room (Habu) at DAG parse: the parameter checks (see ``vendors``)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from airflow_provider_flowruns.core.errors import FlowRunsConfigError

FLOW_RUN = "flow_run"
QUESTION_RUN = "question_run"
REPORT_PAGE_SIZE = 500

_LEVEL = re.compile(r"^(?:level-?)?\s*(\d+)$", re.IGNORECASE)


def level_number(value: Any, name: str = "level") -> int:
    """``1``, ``"1"``, ``"Level-1"`` -> 1. The error names the parameter."""
    if isinstance(value, bool):
        raise FlowRunsConfigError(f"{name} must be a level number or 'Level-N', got {value!r}")
    if isinstance(value, int):
        number = value
    else:
        match = _LEVEL.match(str(value).strip())
        if not match:
            raise FlowRunsConfigError(f"{name} must be a level number or 'Level-N', got {value!r}")
        number = int(match.group(1))
    if number < 1:
        raise FlowRunsConfigError(f"{name} must be 1 or more, got {value!r}")
    return number


def level_id(value: Any, name: str = "level") -> str:
    """The spec's level id: ``"Level-N"``."""
    return f"Level-{level_number(value, name)}"


def nodes_payload(nodes: Any) -> list[dict[str, Any]]:
    """Node parameters in the spec shape. Accepts the list the API takes, or the shorter
    ``{nodeIdentifier: {PARAM: value}}`` mapping."""
    if nodes is None:
        return []
    if isinstance(nodes, Mapping):
        nodes = [{"nodeIdentifier": k, "parameters": v} for k, v in nodes.items()]
    if not isinstance(nodes, list):
        raise FlowRunsConfigError(
            f"nodes must be a list or a dict of nodeIdentifier -> parameters, got {nodes!r}"
        )
    out = []
    for i, node in enumerate(nodes):
        if not isinstance(node, Mapping) or not node.get("nodeIdentifier"):
            raise FlowRunsConfigError(f"nodes[{i}] needs a nodeIdentifier, got {node!r}")
        params = node.get("parameters") or {}
        if not isinstance(params, Mapping):
            raise FlowRunsConfigError(f"nodes[{i}].parameters must be a dict, got {params!r}")
        out.append({**node, "parameters": {str(k): parameter_value(v) for k, v in params.items()}})
    return out


def question_parameters(parameters: Mapping[str, Any] | None, label: str = "parameters") -> dict[str, str]:
    """A question run's ``parameters`` as the create-run body takes them: a map of name -> string.

    Every documented create-run body (spec §1.4; seed 001's ``question_run_details``) holds string
    values only, dates included. A string is sent as it is; a whole number or a decimal is sent as
    its decimal text (``30`` -> ``"30"``), which is what the string form of a number parameter is.
    Anything else fails here, at DAG parse where it can, naming the parameter: a list or a dict has
    no string form Habu documents (a list-valued parameter would be sent as ``"['a', 'b']"``); a
    bool is refused because ``"True"`` is not ``"true"`` - pass the string Habu expects; ``None``
    would be sent as ``"None"``.
    """
    out: dict[str, str] = {}
    for name, value in (parameters or {}).items():
        if isinstance(value, str):
            out[str(name)] = value
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[str(name)] = str(value)
        else:
            hint = " (pass 'true' or 'false' as a string)" if isinstance(value, bool) else ""
            raise FlowRunsConfigError(
                f"{label}[{name!r}] must be a string (or a number, sent as its text): Habu's create-run "
                f"parameters map names to strings, got {type(value).__name__} {value!r}{hint}"
            )
    return out


def parameter_value(value: Any) -> Any:
    """Parameter values are sent as strings (dates from ``{{ ds }}`` already are)."""
    return value if isinstance(value, (str, dict)) else str(value)
