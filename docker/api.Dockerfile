# The control API (Flask, gunicorn): Python 3.11 and the pinned requirements, without torch or TorchServe.
#
#   docker compose build api          (the build context is the repository root; see .dockerignore)
#
# Start-up (docker/api-entrypoint.sh): refuse CHANGE_ME placeholders, then scripts/boot.sh waits for the
# database, runs `flask db upgrade` once and execs gunicorn (control_api/gunicorn.conf.py).
#
# Build arguments:
#   APP_UID  UID of the app user. Must equal the torchserve image's: TorchServe writes key_file.json with
#            mode 600 into the volume this image mounts read-only.
#
# Needs BuildKit (the default builder of Docker Engine 23+ and Compose v2) for RUN --mount.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- Stage 1: the Python environment. --------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS venv
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv
COPY requirements.txt constraints.txt /tmp/req/
# The API talks to TorchServe over HTTP and never imports torch: leaving out the model stack saves ~1 GB.
# Everything else keeps the pins of requirements.txt and constraints.txt.
RUN --mount=type=cache,target=/root/.cache/pip \
    set -eu; \
    grep -Ev '^(torch|torchvision|torchserve|torch-model-archiver)==' /tmp/req/requirements.txt \
      > /tmp/req/api-requirements.txt; \
    pip install -r /tmp/req/api-requirements.txt -c /tmp/req/constraints.txt; \
    pip check

# ---- Stage 2: the runtime image. -------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
ARG APP_UID=10001

# A writable home: gunicorn keeps its control socket in ~/.gunicorn. /app itself stays root-owned (read-only
# code) except instance/, where the app keeps its pid file. /srv/model_store is the app's too: admins'
# uploads are written there, and an empty volume first mounted here takes this owner.
RUN set -eu; \
    groupadd --system --gid "$APP_UID" app; \
    useradd --system --uid "$APP_UID" --gid app --home-dir /home/app --create-home --shell /usr/sbin/nologin app; \
    mkdir -p /app/instance /srv/torchserve-keys /srv/model_store; \
    chown app:app /app/instance /srv/model_store

COPY --from=venv /opt/venv /opt/venv
WORKDIR /app
COPY control_api/ control_api/
COPY migrations/ migrations/
COPY --chmod=0755 scripts/boot.sh scripts/purge_loop.sh scripts/
COPY docker/healthcheck.py docker/refuse-placeholders.sh /opt/deploy/
COPY --chmod=0755 docker/api-entrypoint.sh /usr/local/bin/api-entrypoint

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

# Numeric, so runtimes that enforce non-root (Kubernetes runAsNonRoot) can verify it.
USER ${APP_UID}:${APP_UID}
EXPOSE 8000
ENTRYPOINT ["/usr/local/bin/api-entrypoint"]
