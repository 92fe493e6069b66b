"""Reading vendor response bodies with pydantic models: lenient where we do not look, strict where we do.

A vendor hook declares, per response it relies on, a model holding only the fields the provider uses
(``VendorModel``: unknown fields are ignored, so a vendor adding fields never breaks a task). ``read``
validates a decoded body against it and turns a mismatch into ``UnexpectedResponse`` whose message
names the field's path as the vendor sent it (``recordStats[0].records[1].value: Field required``):
a shape we cannot recognise fails the task there, it never turns into empty or guessed output.

pydantic is imported by hooks only (never on the DAG-parse path); Airflow's task SDK loads it anyway.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError

from airflow_provider_flowruns.core.errors import UnexpectedResponse

M = TypeVar("M", bound=BaseModel)

#: At most this many field problems are named in one message (the rest are counted).
MAX_PROBLEMS = 5


class VendorModel(BaseModel):
    """Base of every vendor response model: unknown fields ignored, fields readable by alias."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)


def _epoch_seconds(value: Any) -> Any:
    """A vendor timestamp as epoch seconds: ISO-8601 (``Z`` or an offset; naive means UTC) or Unix
    seconds (Tableflow). Anything else is left for pydantic to refuse, naming the field."""
    if isinstance(value, str) and value.strip():
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return value
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)).timestamp()
    return value


#: A vendor's timestamp field, read as epoch seconds (``float``); a value that is neither an ISO-8601
#: string nor a number fails naming the field.
Timestamp = Annotated[float, BeforeValidator(_epoch_seconds)]


def field_path(loc: tuple[int | str, ...]) -> str:
    """``("recordStats", 0, "records")`` -> ``recordStats[0].records`` (the body's own spelling)."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(body)"


def describe(exc: ValidationError, *, prefix: str = "") -> str:
    """The first few problems of ``exc`` as ``path: message`` joined with ``; ``."""
    problems = []
    for error in exc.errors(include_url=False)[:MAX_PROBLEMS]:
        path = field_path(tuple(error.get("loc", ())))
        if prefix:
            joint = "" if path.startswith("[") else "."  # response[0].id, response.id
            path = prefix if path == "(body)" else f"{prefix}{joint}{path}"
        problems.append(f"{path}: {error.get('msg', 'invalid')}")
    extra = exc.error_count() - len(problems)
    if extra > 0:
        problems.append(f"and {extra} more")
    return "; ".join(problems)


def read(model: type[M], body: Any, *, what: str, prefix: str = "") -> M:
    """Validate ``body`` as ``model`` or raise ``UnexpectedResponse`` naming the offending fields.

    :param what: who answered and about what (``"Habu flow run fr-1 report page"``), for the message.
    :param prefix: the path of ``body`` inside the vendor's whole answer (``"response"`` when a
        wrapper was taken off), so the named path is the one a person finds in the vendor's body.
    """
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise UnexpectedResponse(f"{what}: unrecognised response: {describe(exc, prefix=prefix)}") from None


def dump(instance: BaseModel) -> Mapping[str, Any]:
    """A model as the plain mapping the vendor sent (by alias), for XCom and storage."""
    return instance.model_dump(by_alias=True, exclude_none=False)
