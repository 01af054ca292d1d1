"""Request bodies parsed off the event loop (all but the smallest): strict UTF-8, JSON without NaN/Infinity, 422s that name the field.

Every JSON endpoint reads its raw body (already size-capped by ``limits.BodyLimitMiddleware``) and parses it here
in a worker thread, whatever the request's content type: the runbook's ``curl -d '{"value": 16}'`` sends a
form content type, and still means JSON. Errors never carry the input back (``errors.public_errors``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)
Loc = tuple[str | int, ...]


class _NonFinite(float):
    """A ``NaN``/``Infinity`` literal, kept as a marker so the walk can name where it was."""

    def __new__(cls, literal: str) -> _NonFinite:
        obj = super().__new__(cls, "nan")
        obj.literal = literal  # type: ignore[attr-defined]
        return obj


def _error(loc: Loc, msg: str, kind: str) -> RequestValidationError:
    return RequestValidationError([{"type": kind, "loc": loc, "msg": msg}])


def _non_finite_at(value: Any, loc: Loc) -> tuple[Loc, str] | None:
    """Location and spelling of the first non-finite number in a parsed document, else None."""
    stack: list[tuple[Any, Loc]] = [(value, loc)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            return where, getattr(item, "literal", "a number that overflows to infinity")
        if isinstance(item, dict):
            stack.extend((v, (*where, k)) for k, v in reversed(list(item.items())))
        elif isinstance(item, list):
            stack.extend((v, (*where, i)) for i, v in reversed(list(enumerate(item))))
    return None


def parse_json(raw: bytes) -> Any:
    """The JSON document in ``raw``; RequestValidationError (loc ``body`` or the field) when the bytes are not
    UTF-8, not JSON, nested too deep, or hold NaN, Infinity or a number that overflows to infinity."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _error(("body",), f"body is not valid UTF-8 (byte {exc.start})", "utf8_invalid") from None
    flagged = False

    def constant(literal: str) -> float:
        nonlocal flagged
        flagged = True
        return _NonFinite(literal)

    def number(literal: str) -> float:
        nonlocal flagged
        value = float(literal)
        flagged = flagged or not math.isfinite(value)
        return value

    try:
        data = json.loads(text, parse_constant=constant, parse_float=number)
    except json.JSONDecodeError as exc:
        raise _error(("body", exc.pos), f"invalid JSON: {exc.msg}", "json_invalid") from None
    except (RecursionError, ValueError) as exc:  # nesting bomb; an integer of more than 4300 digits
        kind = "nested too deep" if isinstance(exc, RecursionError) else "a number too large"
        raise _error(("body",), f"invalid JSON: {kind}", "json_invalid") from None
    if flagged:
        found = _non_finite_at(data, ("body",))
        if found is not None:
            where, literal = found
            raise _error(where, f"{literal} is not allowed: numbers must be finite", "finite_number")
    return data


def validate(model: type[M], data: Any) -> M:
    """``data`` validated by ``model``; RequestValidationError with each ``loc`` under ``body``."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False, include_context=False)]
        ) from None


def parse_model(model: type[M], raw: bytes) -> M:
    """``raw`` parsed (``parse_json``) and validated by ``model``."""
    return validate(model, parse_json(raw))


async def read_json(request: Request, parse: Callable[[bytes], Any] = parse_json) -> Any:
    """The request's body through ``parse``: in a worker thread when it is over ``parse_inline_bytes`` (the
    event loop keeps serving meanwhile), inline when it is small enough to cost less than the thread hop."""
    raw = await request.body()
    if len(raw) <= request.app.state.serving.parse_inline_bytes:
        return parse(raw)
    return await run_in_threadpool(parse, raw)


def json_body(model: type[M]) -> Callable[[Request], Any]:
    """A dependency: the body as ``model``, parsed off the loop whatever the content type."""

    async def dependency(request: Request) -> M:
        return await read_json(request, lambda raw: parse_model(model, raw))

    dependency.__name__ = f"json_body_{model.__name__}"
    return dependency


def openapi_body(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` documenting ``model`` as the JSON request body of a route that reads it by hand."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": model.model_json_schema()}},
        }
    }
