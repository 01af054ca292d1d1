# syntax=docker/dockerfile:1.7
# The serving app (:8000) and the GPU training container (python -m include.ops.train_cli), CUDA 12 torch.
#   docker build -f docker/app.Dockerfile -t continual-transformer/app .
#   CPU-only hosts: --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
# The torch wheel bundles the CUDA 12 runtime and cuDNN; the host needs only the NVIDIA driver and the
# NVIDIA Container Toolkit (`docker run --gpus all ...` / the compose device reservation).
ARG PYTHON_VERSION=3.11
FROM python:${PYTHON_VERSION}-slim-bookworm

ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128
ARG CT_UID=50000

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/opt/ct \
    CT_VAR_DIR=/opt/ct/var \
    CT_LOG_DIR=/var/log/continual-transformer \
    MPLBACKEND=Agg \
    GX_ANALYTICS_ENABLED=false

RUN useradd --uid "${CT_UID}" --gid 0 --create-home --shell /usr/sbin/nologin ct \
 && mkdir -p /opt/ct/var /var/log/continual-transformer \
 && chown -R ct:0 /opt/ct /var/log/continual-transformer \
 && chmod -R g+rwX /opt/ct /var/log/continual-transformer
WORKDIR /opt/ct

COPY requirements.txt constraints.txt ./
RUN grep -vE '^(pytest|pytest-timeout|moto|playwright|bandit|pip-audit|ruff)([=<>\[ ]|$)' requirements.txt > /tmp/requirements-runtime.txt \
 && pip install "torch==2.13.0" --index-url "${TORCH_INDEX_URL}" \
 && pip install -r /tmp/requirements-runtime.txt -c constraints.txt

COPY --chown=ct:0 include ./include
COPY --chown=ct:0 model ./model

USER ct
EXPOSE 8000
ENV CT_SERVING_HOST=0.0.0.0 CT_SERVING_PORT=8000
CMD ["python", "-m", "include.serving"]
