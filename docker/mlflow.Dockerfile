# syntax=docker/dockerfile:1.7
# MLflow tracking server: PostgreSQL backend store (psycopg2) and S3/MinIO artifacts (boto3), versions pinned
# by the project's constraints.txt.
ARG PYTHON_VERSION=3.11
FROM python:${PYTHON_VERSION}-slim-bookworm

ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY constraints.txt /tmp/constraints.txt
RUN pip install mlflow psycopg2-binary boto3 -c /tmp/constraints.txt \
 && useradd --uid 50000 --gid 0 --create-home --shell /usr/sbin/nologin mlflow
USER mlflow
WORKDIR /home/mlflow
EXPOSE 5000
