# syntax=docker/dockerfile:1.7
# Airflow 3 with the project (dags/, plugins/, include/, model/, great_expectations/) for every Airflow service.
#   CPU workers (default):  docker build -f docker/airflow.Dockerfile -t continual-transformer/airflow .
#   GPU workers (queue gpu): --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128
ARG AIRFLOW_VERSION=3.3.2
ARG PYTHON_VERSION=3.11
FROM apache/airflow:${AIRFLOW_VERSION}-python${PYTHON_VERSION}

# CPU wheel by default; a CUDA 12 index for the GPU worker image (the wheel bundles the CUDA runtime).
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

USER root
RUN mkdir -p /opt/ct/var /var/log/continual-transformer /opt/airflow/auth \
 && chown -R airflow:0 /opt/ct /var/log/continual-transformer /opt/airflow/auth \
 && chmod -R g+rwX /opt/ct /var/log/continual-transformer /opt/airflow/auth
USER airflow
WORKDIR /opt/ct

# Dependencies first (cached layer): the pinned stack minus the test/lint tools.
COPY --chown=airflow:0 requirements.txt constraints.txt ./
RUN grep -vE '^(pytest|pytest-timeout|moto|playwright|bandit|pip-audit|ruff)([=<>\[ ]|$)' requirements.txt > /tmp/requirements-runtime.txt \
 && pip install --no-cache-dir "torch==2.13.0" --index-url "${TORCH_INDEX_URL}" \
 && pip install --no-cache-dir -r /tmp/requirements-runtime.txt -c constraints.txt

COPY --chown=airflow:0 include ./include
COPY --chown=airflow:0 model ./model
COPY --chown=airflow:0 plugins ./plugins
COPY --chown=airflow:0 great_expectations ./great_expectations
COPY --chown=airflow:0 dags ./dags
COPY --chown=airflow:0 docker/airflow-init.sh ./docker/airflow-init.sh

ENV PYTHONPATH=/opt/ct \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/ct/dags \
    AIRFLOW__CORE__PLUGINS_FOLDER=/opt/ct/plugins \
    AIRFLOW__CORE__LOAD_EXAMPLES=False \
    CT_VAR_DIR=/opt/ct/var \
    CT_LOG_DIR=/var/log/continual-transformer \
    GX_ANALYTICS_ENABLED=false \
    MPLBACKEND=Agg
