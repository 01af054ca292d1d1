"""Monitoring fixtures: a real Pushgateway per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.monitoring.monitoring_support import Process, binary


@pytest.fixture(scope="module")
def pushgateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Pushgateway on a free 127.0.0.1 port; yields its URL."""
    from include.serving.server import free_port

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("pushgateway") / "pushgateway.log"
    proc = Process(
        [binary("prometheus-pushgateway"), f"--web.listen-address=127.0.0.1:{port}"], url + "/-/ready", log
    )
    yield url
    proc.stop()
