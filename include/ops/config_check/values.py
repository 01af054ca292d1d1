"""Value rules of the configuration check, as pydantic types, and the wording of every problem they find.

Each rule is an ``Annotated`` type: a field of a spec model (``specs.py``) declares what its variable must
look like, and :func:`describe` turns a pydantic error into ``<what is wrong>`` (the variable's name goes in
front). Messages never repeat a secret's value, and URLs are printed with their password masked.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, NoReturn, Union, get_args, get_origin
from urllib.parse import urlsplit

import annotated_types
from pydantic import AfterValidator, BeforeValidator, Field
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails, PydanticCustomError

PLACEHOLDER = "change-me"
GENERATE_HINT = "run `make deploy-env` (generates it), or set a random URL-safe value of >= 16 characters"
_URL_SAFE = re.compile(r"^[A-Za-z0-9._~-]*$")


@dataclass(frozen=True)
class Problem:
    """One configuration problem: where it is, what is wrong, how to fix it."""

    where: str
    message: str
    fix: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}\n    fix: {self.fix}"


def fail(message: str) -> NoReturn:
    """Reject a value with ``message`` as the whole problem text (no pydantic prefix)."""
    raise PydanticCustomError("config", message)


def redact_url(value: str) -> str:
    """``value`` with the password of a URL replaced by ``***`` (problems are printed)."""
    return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", value)


def rule(check: Callable[[str], str | None]) -> AfterValidator:
    """A validator from ``check(value) -> problem or None``."""

    def validate(value: str) -> str:
        problem = check(value)
        if problem:
            fail(problem)
        return value

    return AfterValidator(validate)


def choice(*choices: str, case: bool = False) -> Any:
    """One of ``choices`` (compared lower-cased unless ``case``)."""
    literal = Literal[choices]  # type: ignore[valid-type]
    return (
        literal
        if case
        else Annotated[literal, BeforeValidator(lambda v: v.lower() if isinstance(v, str) else v)]
    )


def integer(lo: int, hi: int) -> Any:
    """An integer in ``[lo, hi]``."""
    return Annotated[int, Field(ge=lo, le=hi)]


def url(*schemes: str, host: bool = True) -> Any:
    """A URL with one of ``schemes``, a host (unless ``host=False``) and a numeric port if any."""

    def check(value: str) -> str | None:
        parts = urlsplit(value)
        if parts.scheme not in schemes:
            return f"scheme must be one of {list(schemes)}, got {parts.scheme or 'none'!r} in {redact_url(value)!r}"
        if host and not parts.hostname:
            return f"has no host: {redact_url(value)!r}"
        try:
            parts.port  # noqa: B018 - raises ValueError on a non-numeric or out-of-range port
        except ValueError as exc:
            return f"bad port in {redact_url(value)!r}: {exc}"
        return None

    return Annotated[str, rule(check)]


def secret(min_length: int = 16, url_safe: bool = True) -> Any:
    """A generated secret: not the placeholder, long enough, and URL-safe when it ends up in URLs."""

    def check(value: str) -> str | None:
        if PLACEHOLDER in value.lower():
            return "is still the .env.example placeholder"
        if len(value) < min_length:
            return f"is too short ({len(value)} characters, need >= {min_length})"
        if url_safe and not _URL_SAFE.match(value):
            return "contains characters that break the URLs it is embedded in (allowed: A-Z a-z 0-9 . _ ~ -)"
        return None

    return Annotated[str, rule(check)]


def pattern(regex: str, problem: str) -> Any:
    """A string matching ``regex``; else ``problem`` (``{value!r}`` is filled in)."""
    compiled = re.compile(regex)
    return Annotated[str, rule(lambda v: None if compiled.match(v) else problem.format(value=v))]


def _fernet(value: str) -> str | None:
    if PLACEHOLDER in value.lower():
        return "is still the .env.example placeholder"
    from cryptography.fernet import Fernet

    try:
        Fernet(value.encode())
    except (ValueError, TypeError):
        return "is not a Fernet key (32 url-safe base64-encoded bytes)"
    return None


def _ip(value: str) -> str | None:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return f"must be an IP address to bind to, got {value!r}"
    return None


def _json_object(value: str) -> str | None:
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        return f"is not valid JSON: {exc}"
    return None if isinstance(parsed, dict) else "must be a JSON object"


def _train_overrides(value: str) -> str | None:
    problem = _json_object(value)
    if problem:
        return problem
    from model.config import TrainConfig

    try:
        TrainConfig.from_dict(json.loads(value))
    except (ValueError, TypeError) as exc:
        return f"is not a valid TrainConfig override: {exc}"
    return None


FernetKey = Annotated[str, rule(_fernet)]
IpAddress = Annotated[str, rule(_ip)]
TrainOverrides = Annotated[str, rule(_train_overrides)]
NonEmpty = Annotated[str, rule(lambda v: None if v.strip(",") else "is empty")]
Identifier = pattern(r"^[A-Za-z0-9_.-]{1,63}$", "must be a simple name, got {value!r}")
Bucket = pattern(
    r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", "is not a valid S3 bucket name: {value!r} (3-63 of a-z 0-9 . -)"
)
Duration = pattern(r"^(\d+(ms|s|m|h|d|w|y))+$", "is not a Prometheus duration: {value!r}")
ImageTag = pattern(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", "is not a valid image tag: {value!r}")
Version = pattern(r"^\d+\.\d+\.\d+$", "is not x.y.z")


# ---- pydantic errors -> problem text ------------------------------------------------------------------


def literal_choices(annotation: Any) -> tuple[Any, ...]:
    """The values of a ``Literal`` annotation (also inside ``Optional``); () for any other type."""
    if get_origin(annotation) is Literal:
        return get_args(annotation)
    if get_origin(annotation) is Union or type(annotation).__name__ == "UnionType":
        return tuple(c for arg in get_args(annotation) for c in literal_choices(arg))
    return ()


def bounds(field: FieldInfo | None) -> tuple[str, str]:
    """``(lower, upper)`` of a numeric field as interval ends such as ``[1`` and ``65535]`` (``(-inf``, ``inf)``)."""
    lo, hi = "(-inf", "inf)"
    for item in field.metadata if field else ():
        if isinstance(item, annotated_types.Ge):
            lo = f"[{item.ge}"
        elif isinstance(item, annotated_types.Gt):
            lo = f"({item.gt}"
        elif isinstance(item, annotated_types.Le):
            hi = f"{item.le}]"
        elif isinstance(item, annotated_types.Lt):
            hi = f"{item.lt})"
    return lo, hi


_TYPE_WORDS = {
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
}


def describe(error: ErrorDetails, field: FieldInfo | None = None) -> str:
    """The problem text of one pydantic error of ``field`` (the variable's name is put in front by the caller)."""
    kind, value = error["type"], error.get("input")
    if kind == "config":
        return error["msg"]
    if kind == "missing":
        return "is not set"
    word = _TYPE_WORDS.get(kind.partition("_")[0])
    if word:
        return f"must be {word}, got {value!r}"
    if kind == "literal_error":
        choices = literal_choices(field.annotation) if field else ()
        return f"must be one of {list(choices) or error.get('ctx', {}).get('expected')}, got {value!r}"
    if kind == "string_too_short":
        return f"needs >= {error.get('ctx', {}).get('min_length')} characters"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        lo, hi = bounds(field)
        return f"must lie in {lo}, {hi}, got {value}"
    message = str(error["msg"])
    return message[0].lower() + message[1:] if message else kind


def fix_hint(field: FieldInfo) -> str:
    """How to fix a value of ``field``: its description, else what its type and bounds allow."""
    if field.description:
        return field.description
    choices = literal_choices(field.annotation)
    if choices:
        return "one of " + ", ".join(map(str, choices))
    lo, hi = bounds(field)
    if (lo, hi) != ("(-inf", "inf)"):
        return f"a value in {lo}, {hi}"
    name = getattr(field.annotation, "__name__", str(field.annotation))
    return _TYPE_WORDS.get(name) or f"a valid {name}"
