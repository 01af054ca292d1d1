"""The bad-request matrix: hostile requests as data, each with the 4xx the app must answer, and a raw-socket sender.

Reusable against any running app (``make chaos``): ``for case in CASES: status = send(url, case, token)``. Every
case is sent as raw HTTP/1.1 bytes over its own connection, so lying headers and chunked bodies go out exactly as
written. ``expect`` lists the acceptable statuses (all 4xx); a 5xx or no answer is a failure.
"""

from __future__ import annotations

import json
import select
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

IMAGE = [0] * 64
BIG = 2 * 1024 * 1024  # over the default 1 MiB body limit


@dataclass(frozen=True)
class BadRequest:
    """One hostile request: where it goes, its bytes, and the statuses that count as handled."""

    category: str
    kind: str
    method: str
    path: str
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = (("Content-Type", "application/json"),)
    expect: frozenset[int] = frozenset({422})
    auth: bool = False  # send the right bearer token (a mutating route reaches its validation)
    chunks: tuple[bytes, ...] | None = None  # send the body chunked, in these pieces
    content_length: int | None = None  # a Content-Length to declare instead of len(body)
    notes: str = field(default="", compare=False)


def _j(obj: object) -> bytes:
    return json.dumps(obj).encode()


def _predict(
    category: str, kind: str, body: bytes, expect: frozenset[int] = frozenset({422}), **kw
) -> BadRequest:
    return BadRequest(category, kind, "POST", "/predict", body, expect=expect, **kw)


def _config(category: str, kind: str, path: str, body: bytes, **kw) -> BadRequest:
    method = "PUT" if path == "/api/config/model" else "POST"
    return BadRequest(category, kind, method, path, body, auth=True, **kw)


_413 = frozenset({413})
_NO_AUTH = frozenset({401})

CASES: tuple[BadRequest, ...] = (
    # 1. size: counted in bytes received, not in what Content-Length claims
    _predict("size", "body over the limit", b'{"instances": [' + b"[0]," * (BIG // 4) + b"[0]]}", _413),
    _predict("size", "Content-Length over the limit, no body", b"", _413, content_length=10**9),
    _predict("size", "chunked body over the limit", b"", _413, chunks=(b" " * (BIG // 2),) * 3),
    _predict("size", "Content-Length not a number", b"{}", frozenset({400}), content_length=-1),
    # 2. rows per request
    _predict("rows", "257 images (over max_rows)", _j({"instances": [IMAGE] * 257})),
    _predict("rows", "10,000 one-pixel rows", _j({"instances": [[0]] * 10_000})),
    _predict("rows", "no images", _j({"instances": []})),
    # 3. non-finite numbers
    _predict("non_finite", "NaN pixel", b'{"instances": [[NaN' + b", 0" * 63 + b"]]}"),
    _predict("non_finite", "Infinity pixel", b'{"instances": [[Infinity' + b", 0" * 63 + b"]]}"),
    _predict("non_finite", "-Infinity pixel", b'{"instances": [[-Infinity' + b", 0" * 63 + b"]]}"),
    _predict("non_finite", "1e999 pixel (overflows to inf)", b'{"instances": [[1e999' + b", 0" * 63 + b"]]}"),
    _config("non_finite", "learning rate NaN", "/api/config/learning_rate", b'{"value": NaN}'),
    _config("non_finite", "weight decay 1e999", "/api/config/weight_decay", b'{"value": 1e999}'),
    _config("non_finite", "dropout NaN", "/api/config/model", b'{"dropout": NaN}'),
    # 4. encoding and syntax
    _predict("encoding", "non-UTF-8 body", b'{"instances": [[\xff\xfe' + b"]]}"),
    _predict("encoding", "UTF-16 body", '{"instances": [[0]]}'.encode("utf-16")),
    _config("encoding", "non-UTF-8 config body", "/api/config/batch_size", b'{"value": "\xc3\x28"}'),
    _predict("encoding", "truncated JSON", b'{"instances": [[0, 0'),
    _predict("encoding", "empty body", b""),
    _predict("encoding", "nesting bomb", b"[" * 100_000 + b"]" * 100_000),
    _predict("encoding", "5000-digit integer", b'{"instances": [[' + b"9" * 5000 + b"]]}"),
    # 5. schema
    _predict("schema", "63 pixels", _j({"instances": [[0] * 63]})),
    _predict("schema", "pixel 17", _j({"instances": [[17] + [0] * 63]})),
    _predict("schema", "pixel as a string", _j({"instances": [["7"] + [0] * 63]})),
    _predict("schema", "unknown field", _j({"instances": [IMAGE], "debug": True})),
    _predict("schema", "top level is a list", _j([IMAGE])),
    _config("schema", "batch size as a string", "/api/config/batch_size", _j({"value": "16"})),
    _config("schema", "mixed precision as a string", "/api/config/mixed_precision", _j({"enabled": "yes"})),
    # 6. model config: ModelConfig's checks and the parameter budget
    _config("model_config", "d_model 100000000", "/api/config/model", _j({"d_model": 100_000_000})),
    _config("model_config", "d_model over the parameter budget", "/api/config/model", _j({"d_model": 96})),
    _config("model_config", "n_heads not dividing d_model", "/api/config/model", _j({"n_heads": 5})),
    _config("model_config", "raise the parameter budget", "/api/config/model", _j({"param_budget": None})),
    _config("model_config", "empty update", "/api/config/model", _j({})),
    # 7. auth: no mutation without the token
    BadRequest("auth", "no token", "POST", "/api/config/batch_size", _j({"value": 16}), expect=_NO_AUTH),
    BadRequest(
        "auth",
        "wrong token",
        "POST",
        "/api/model/reload",
        b"",
        expect=frozenset({403}),
        headers=(("Authorization", "Bearer wrong"),),
    ),  # fmt: skip
    BadRequest(
        "auth",
        "basic auth",
        "PUT",
        "/api/config/model",
        _j({"d_model": 48}),
        expect=_NO_AUTH,
        headers=(("Authorization", "Basic dXNlcjpwYXNz"),),
    ),  # fmt: skip
    # 8. routing: methods and paths that do not exist
    BadRequest("routing", "GET /predict", "GET", "/predict", expect=frozenset({405})),
    BadRequest("routing", "unknown path", "GET", "/api/../../etc/passwd", expect=frozenset({404})),
    BadRequest("routing", "bench route not mounted", "POST", "/bench/noop", expect=frozenset({404})),
)


def categories() -> dict[str, list[BadRequest]]:
    """The cases grouped by category, in matrix order."""
    out: dict[str, list[BadRequest]] = {}
    for case in CASES:
        out.setdefault(case.category, []).append(case)
    return out


def _chunked(chunks: tuple[bytes, ...]) -> Iterator[bytes]:
    for chunk in chunks:
        yield f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    yield b"0\r\n\r\n"


def raw_request(case: BadRequest, host: str, token: str | None) -> bytes:
    """The exact bytes sent for ``case`` (HTTP/1.1, ``Connection: close``)."""
    lines = [f"{case.method} {case.path} HTTP/1.1", f"Host: {host}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in case.headers]
    if case.auth and token:
        lines.append(f"Authorization: Bearer {token}")
    if case.chunks is not None:
        lines.append("Transfer-Encoding: chunked")
        body = b"".join(_chunked(case.chunks))
    else:
        declared = case.content_length if case.content_length is not None else len(case.body)
        lines.append(f"Content-Length: {'x' if declared < 0 else declared}")
        body = case.body
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (lower-case names) and body of one response read from ``sock`` (until close)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"connection closed before a response head: {data[:200]!r}")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return int(status_line.split(" ", 2)[1]), headers, rest[:length]


def send(
    base_url: str, case: BadRequest, token: str | None = None, timeout: float = 30.0
) -> tuple[int, bytes]:
    """Send ``case`` to the app at ``base_url``; (status, body). The server may answer before reading all of a
    too-large body and close: the unsent rest is dropped."""
    parts = urlsplit(base_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    with socket.create_connection((host, port), timeout=timeout) as sock:
        payload = memoryview(raw_request(case, f"{host}:{port}", token))
        for start in range(0, len(payload), 65536):
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:  # answered before the upload ended (413): stop sending, read the answer
                break
            try:
                sock.sendall(payload[start : start + 65536])
            except (BrokenPipeError, ConnectionResetError):
                break
        status, _, body = read_response(sock)
    return status, body
