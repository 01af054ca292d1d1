"""``python -m model.serving``: serve the app on ``CT_SERVING_HOST:CT_SERVING_PORT`` (``make serve``)."""

from __future__ import annotations

import uvicorn

from model.serving.app import create_app
from model.serving.server import uvicorn_config
from model.serving.settings import ServingSettings


def main() -> None:
    """Build the app from the environment and serve it until interrupted."""
    serving = ServingSettings()
    uvicorn.Server(uvicorn_config(create_app(serving), serving.host, serving.port)).run()


if __name__ == "__main__":
    main()
