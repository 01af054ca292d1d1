"""Ports and readiness of the UI servers one person runs on one machine (``make airflow-ui`` / ``mlflow-ui``).

Command line (used by ``mk/ui.mk``)::

    python -m include.ops.local_ports free SPEC...   # one distinct free port per SPEC, space-separated
    python -m include.ops.local_ports mlflow-ui      # the port of Settings.mlflow_ui_url, refused when taken
    python -m include.ops.local_ports wait URL [--timeout S] [--pid P]   # exit 0 once URL answers HTTP

A SPEC is ``N`` (exactly port N: refused when it is taken), ``~N`` (N when free, else any free port) or ``0``
(any free port). A port counts as taken when it cannot be bound on every IPv4 interface: Airflow's log
servers listen on all of them, so that is the conservative test for every server here.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from urllib.parse import urlsplit

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
AIRFLOW_UI_PORT = 8080  # `make airflow-ui` takes it when free (mk/ui.mk: AIRFLOW_UI_PORT empty -> ~8080)


class PortTaken(RuntimeError):
    """A port that was asked for exactly is already in use."""


def _answers(port: int) -> bool:
    """True when something accepts TCP connections on 127.0.0.1:``port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _probe(port: int) -> socket.socket | None:
    """A socket bound to ``port`` on all IPv4 interfaces (0: any port), or None when it is taken.

    Bound with SO_REUSEADDR as servers bind, so a port left in TIME_WAIT by a stopped server is free; and a
    port that accepts a connection is taken even if the bind succeeds (a server bound with SO_REUSEADDR).
    Left open: a server that has bound but not yet listened (uvicorn's parent before its first worker)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("", port))
    except OSError:
        sock.close()
        return None
    if port and _answers(port):
        sock.close()
        return None
    return sock


def port_is_free(port: int) -> bool:
    """True when ``port`` can be bound on every IPv4 interface right now."""
    sock = _probe(port)
    if sock is None:
        return False
    sock.close()
    return True


@contextlib.contextmanager
def _held() -> Iterator[list[socket.socket]]:
    held: list[socket.socket] = []
    try:
        yield held
    finally:
        for sock in held:
            sock.close()


def free_ports(specs: Sequence[str]) -> list[int]:
    """One distinct free port per spec (``N``, ``~N``, ``0``; see the module doc); PortTaken for a taken ``N``."""
    chosen: list[int] = []
    with _held() as held:  # keep every chosen port bound until all are chosen, so they differ
        for spec in specs:
            text = str(spec).strip()
            prefer = text.startswith("~")
            try:
                port = int(text.removeprefix("~"))
            except ValueError:
                raise ValueError(f"port spec {spec!r}: expected N, ~N or 0") from None
            if not 0 <= port <= 65535:
                raise ValueError(f"port spec {spec!r}: a port is 0..65535")
            sock = _probe(port) if port and port not in chosen else None
            if sock is None and port and not prefer:
                raise PortTaken(f"port {port} is in use (another instance?): choose a free one")
            if sock is None:
                sock = _probe(0)
                if sock is None:
                    raise PortTaken("no free port on this machine")
            held.append(sock)
            chosen.append(sock.getsockname()[1])
    return chosen


def url_port(url: str) -> int:
    """The TCP port of an http(s) URL (its scheme's default when it names none)."""
    parts = urlsplit(url)
    return parts.port or {"http": 80, "https": 443}.get(parts.scheme, 80)


def mlflow_ui_port(url: str) -> int:
    """Port ``make mlflow-ui`` serves on: that of ``url`` (Settings.mlflow_ui_url); ValueError when not local."""
    host = urlsplit(url).hostname or ""
    if host not in LOCAL_HOSTS:
        raise ValueError(
            f"CT_MLFLOW_UI_URL={url} is not on this machine; `make mlflow-ui` serves the local store on "
            "127.0.0.1: set MLFLOW_UI_PORT (make status and the Airflow view then link to it)"
        )
    return url_port(url)


def airflow_ui_url(env: Mapping[str, str] | None = None) -> str:
    """Where `make airflow-ui` would serve now: AIRFLOW_UI_HOST/AIRFLOW_UI_PORT as mk/ui.mk reads them.

    The port is ``env["AIRFLOW_UI_PORT"]`` when set, else this module's AIRFLOW_UI_PORT when it is free, else
    a free port; a wildcard host is reached on 127.0.0.1."""
    env = os.environ if env is None else env
    host = env.get("AIRFLOW_UI_HOST", "").strip() or "127.0.0.1"
    spec = env.get("AIRFLOW_UI_PORT", "").strip() or f"~{AIRFLOW_UI_PORT}"
    try:
        port = str(free_ports([spec])[0])
    except (PortTaken, ValueError):
        port = spec.removeprefix("~")  # taken now: make airflow-ui will say so when it starts
    return f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def wait_http(url: str, timeout_s: float = 120.0, pid: int | None = None, interval_s: float = 0.25) -> bool:
    """Poll ``url`` until it answers HTTP (any status); False on timeout or when process ``pid`` is gone."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # a local server: never a proxy
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with opener.open(url, timeout=2):
                return True
        except urllib.error.HTTPError:
            return True  # it answered, even if with an error status
        except (urllib.error.URLError, OSError):
            pass
        if pid is not None and not _alive(pid):
            return False
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry (see the module doc); errors go to stderr with exit status 2."""
    parser = argparse.ArgumentParser(prog="python -m include.ops.local_ports")
    sub = parser.add_subparsers(dest="command", required=True)
    free = sub.add_parser("free", help="print one distinct free port per SPEC (N, ~N or 0)")
    free.add_argument("specs", nargs="+")
    sub.add_parser("mlflow-ui", help="print the port of Settings.mlflow_ui_url; refuse when it is taken")
    wait = sub.add_parser("wait", help="exit 0 once URL answers HTTP")
    wait.add_argument("url")
    wait.add_argument("--timeout", type=float, default=120.0)
    wait.add_argument("--pid", type=int, default=None, help="give up when this process exits")
    args = parser.parse_args(argv)
    try:
        if args.command == "free":
            print(" ".join(str(p) for p in free_ports(args.specs)))
        elif args.command == "mlflow-ui":
            from include.ops.settings import get_settings

            port = mlflow_ui_port(get_settings().mlflow_ui_url)
            if not port_is_free(port):
                raise PortTaken(
                    f"port {port} is in use (another MLflow UI?): run e.g. `make mlflow-ui MLFLOW_UI_PORT="
                    f"{free_ports(['0'])[0]}` (make status and the Airflow view follow MLFLOW_UI_PORT)"
                )
            print(port)
        else:
            return 0 if wait_http(args.url, args.timeout, args.pid) else 1
    except (PortTaken, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
