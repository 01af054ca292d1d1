"""The serving app: the champion model behind FastAPI, health, metrics, dynamic batching, the runbook's API.

Build it with ``include.serving.app.create_app()``; run it with ``python -m include.serving`` (``make serve``).
"""
