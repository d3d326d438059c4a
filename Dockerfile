# syntax=docker/dockerfile:1
# docdigest: one image for every role (web, worker, migrate); the command picks the role.

FROM python:3.12-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
# The project itself, with the ranges its pyproject.toml declares.
# hadolint ignore=DL3013
RUN pip install ".[s3]"

FROM python:3.12-slim
# A fixed uid, so volumes and Kubernetes' runAsUser agree with the image.
RUN groupadd --system --gid 10001 docdigest \
    && useradd --system --uid 10001 --gid docdigest --home-dir /app --shell /usr/sbin/nologin docdigest \
    && mkdir -p /data/files \
    && chown -R docdigest:docdigest /data
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY alembic.ini ./
COPY migrations ./migrations
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DOCDIGEST_ENV=production \
    DOCDIGEST_HOST=0.0.0.0 \
    DOCDIGEST_PORT=8000 \
    DOCDIGEST_DATA_DIR=/data
USER 10001:10001
EXPOSE 8000
# Liveness of the web role; workers override it (see deploy/compose.yml).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ['DOCDIGEST_PORT'] + '/healthz', timeout=4)"]
CMD ["docdigest", "web"]
