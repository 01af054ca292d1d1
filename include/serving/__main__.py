"""``python -m include.serving``: serve the app on ``CT_SERVING_HOST:CT_SERVING_PORT`` (``make serve``)."""

from __future__ import annotations

import uvicorn

from include.ops.settings import get_settings
from include.serving.app import create_app
from include.serving.server import uvicorn_config


def main() -> None:
    """Build the app from the environment and serve it until interrupted."""
    settings = get_settings()
    serving = settings.serving
    uvicorn.Server(uvicorn_config(create_app(serving, settings), serving.host, serving.port)).run()


if __name__ == "__main__":
    main()
