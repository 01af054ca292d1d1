"""Model reload and GPU cache release (both need the bearer token)."""

from __future__ import annotations

import gc
import logging

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool

from include.ops import serving_routes as routes
from include.serving.auth import mount
from include.serving.registry import ModelUnavailable

router = APIRouter(tags=["admin"])
log = logging.getLogger("include.serving")


@mount(router, routes.MODEL_RELOAD)
async def reload_model(request: Request) -> dict:
    """Re-resolve the champion (or the checkpoint fallback) and swap it in; 503 keeps the old model."""
    store = request.app.state.store
    previous = store.current.describe() if store.current is not None else None
    try:
        loaded = await run_in_threadpool(store.load)
    except ModelUnavailable as exc:
        raise HTTPException(503, f"reload failed, still serving the previous model: {exc}") from exc
    return {"status": "reloaded", "model": loaded.describe(), "issues": loaded.issues, "previous": previous}


@mount(router, routes.CLEAR_GPU_CACHE)
def clear_gpu_cache() -> dict:
    """Collect garbage and release cached CUDA blocks; reports reserved bytes before and after."""
    import torch

    collected = gc.collect()
    if not torch.cuda.is_available():
        return {"cuda": False, "gc_collected": collected, "freed_bytes": 0, "devices": []}
    devices = []
    before = [torch.cuda.memory_reserved(i) for i in range(torch.cuda.device_count())]
    torch.cuda.empty_cache()
    for i, reserved in enumerate(before):
        after = torch.cuda.memory_reserved(i)
        devices.append({"device": f"gpu_{i}", "reserved_before": reserved, "reserved_after": after})
    freed = sum(d["reserved_before"] - d["reserved_after"] for d in devices)
    log.info("cleared GPU cache: %d bytes released", freed)
    return {"cuda": True, "gc_collected": collected, "freed_bytes": freed, "devices": devices}
