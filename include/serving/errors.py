"""What the app says back when a request fails: 422s without the input, details without this machine's paths.

Unauthenticated callers see paths relative to the state folder (``checkpoints/task_001_task_1.pt``) or only a
file name; absolute paths stay in the server's log.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from include.ops.settings import Settings

MAX_ERRORS = 20  # a 10,000-row body of bad rows answers with the first few, not a megabyte of errors
_URI_PATH = re.compile(r"\b(sqlite|file):///+([^\s'\"`,;()\[\]{}<>]+)")
_ABS_PATH = re.compile(r"(?<![\w.~:/-])/([\w.-]+)((?:/[^\s'\"`,;()\[\]{}<>]*)+)")


def public_errors(errors: Any) -> list[dict[str, Any]]:
    """Validation errors as ``{type, loc, msg}`` only: no ``input`` (never echo a body), no ``ctx``/``url``."""
    out = []
    for error in list(errors)[:MAX_ERRORS]:
        out.append({"type": error.get("type"), "loc": list(error.get("loc", ())), "msg": error.get("msg")})
    return out


class PathScrubber:
    """Rewrites strings for unauthenticated readers: state-folder paths relative, other absolute paths to
    their file name."""

    def __init__(self, paths: Settings) -> None:
        state = str(paths.state_dir).rstrip("/")
        self.state_prefixes = sorted({state + "/", str(Path(state).resolve()) + "/"}, key=len, reverse=True)

    def relative(self, path: str | Path | None) -> str | None:
        """``path`` relative to the state folder when inside it, else its file name."""
        if path is None:
            return None
        text = str(path)
        for prefix in self.state_prefixes:
            if text.startswith(prefix):
                return text[len(prefix) :]
        return Path(text).name

    def text(self, value: str) -> str:
        """``value`` with every absolute path of this machine rewritten."""
        if "/" not in value:
            return value
        for prefix in self.state_prefixes:
            value = value.replace(prefix, "")
        value = _URI_PATH.sub(lambda m: f"{m.group(1)}:///{Path(m.group(2)).name}", value)
        return _ABS_PATH.sub(self._abs, value)

    @staticmethod
    def _abs(match: re.Match[str]) -> str:
        if not Path("/" + match.group(1)).exists():  # "/api/model/reload" is a route, not a file
            return match.group(0)
        return Path(match.group(0).rstrip("/")).name or match.group(0)

    def scrub(self, value: Any) -> Any:
        """A JSON-able value with ``text`` applied to every string in it."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: self.scrub(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.scrub(v) for v in value]
        return value


def install_error_handlers(app: FastAPI, scrubber: PathScrubber) -> None:
    """422 without the input; HTTP errors with their detail scrubbed of paths."""

    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": public_errors(exc.errors())}, status_code=422)

    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            {"detail": scrubber.scrub(exc.detail)}, status_code=exc.status_code, headers=exc.headers
        )

    app.add_exception_handler(RequestValidationError, validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, http_error)  # type: ignore[arg-type]
