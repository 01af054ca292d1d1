"""Bearer-token guard of every mutating endpoint (token from env ``CT_API_TOKEN``), and ``mount``, which
registers an endpoint at its route-table entry behind the guard when the table says so."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from include.ops.serving_routes import Route

log = logging.getLogger("include.serving")
_bearer = HTTPBearer(auto_error=False)


def require_token(request: Request, creds: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> None:
    """401 without a bearer token, 403 with a wrong one, 503 when the server has no token configured."""
    expected = request.app.state.serving.api_token
    if expected is None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, "mutating endpoints are disabled: CT_API_TOKEN is unset"
        )
    if creds is None or not creds.credentials:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "missing bearer token", headers={"WWW-Authenticate": "Bearer"}
        )
    if not hmac.compare_digest(creds.credentials.encode(), expected.get_secret_value().encode()):
        log.warning("rejected %s %s: wrong bearer token", request.method, request.url.path)
        raise HTTPException(status.HTTP_403_FORBIDDEN, "invalid bearer token")


def mount(router: APIRouter, route: Route, **kwargs: Any) -> Callable[[Callable], Callable]:
    """Decorator: serve the endpoint at ``route``'s method and path, token-guarded when ``route.auth``."""
    dependencies = [Depends(require_token)] if route.auth else []
    return router.api_route(route.path, methods=[route.method], dependencies=dependencies, **kwargs)
