# TorchServe 0.12 serving our ResNet50 handler: Python 3.11, Java 17, the pinned requirements, CPU torch.
#
#   docker compose build torchserve          (the build context is the repository root; see .dockerignore)
#
# Build arguments:
#   TORCH_INDEX_URL    where torch/torchvision come from. Default: PyTorch's CPU wheel index (PyPI's Linux
#                      wheels drag in ~3 GB of CUDA libraries a CPU host never uses). For a GPU image, set
#                      https://pypi.org/simple (and give the service a GPU in a compose override).
#   PREBUILT_ARCHIVES  false (default): build the archives here with `python -m handlers.build_archive`:
#                      resnet50.mar (version 1.0, IMAGENET1K_V1, resize 256) and resnet50-2.0.mar (version
#                      2.0, IMAGENET1K_V2, resize 232). The weights are downloaded during the build; with no
#                      network the builder falls back to random weights and marks the version
#                      "-untrained". true: copy the *.mar files found in ./model_store instead (e.g. built
#                      with `make archive WEIGHTS=...` on a machine that has the weights).
#   JAVA_PACKAGE       the Java 17 runtime package (TorchServe's frontend needs only the headless runtime).
#   APP_UID            UID of the model-server user. The api image must use the same UID: TorchServe writes
#                      key_file.json with mode 600 and the api reads it from the shared volume.
#
# Needs BuildKit (the default builder of Docker Engine 23+ and Compose v2) for RUN --mount.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- Stage 1: the Python environment, pinned by requirements.txt + constraints.txt. --------------------
FROM ${PYTHON_IMAGE} AS venv
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv
COPY requirements.txt constraints.txt /tmp/req/
# torch and torchvision first, at the pinned versions, from TORCH_INDEX_URL without their dependencies
# (those come from PyPI in the next step, under the constraints). The next step then sees them installed:
# "==2.14.1" is satisfied by the CPU build "2.14.1+cpu", so pip keeps it. (DL3013: the pins come from the
# grep, hadolint cannot see them.)
# hadolint ignore=DL3013
RUN --mount=type=cache,target=/root/.cache/pip \
    set -eu; \
    torch_pin=$(grep -E '^torch==' /tmp/req/requirements.txt); \
    vision_pin=$(grep -E '^torchvision==' /tmp/req/requirements.txt); \
    pip install --no-deps --index-url "$TORCH_INDEX_URL" "$torch_pin" "$vision_pin"; \
    pip install -r /tmp/req/requirements.txt -c /tmp/req/constraints.txt; \
    pip check

# ---- Stage 2: the model archives. -------------------------------------------------------------------------
FROM venv AS archives
ARG PREBUILT_ARCHIVES=false
WORKDIR /src
COPY handlers/ handlers/
# TORCH_HOME is a throwaway: the downloaded weights end up inside the archives, not twice in the image.
RUN --mount=type=bind,source=model_store,target=/ctx/model_store \
    set -eu; \
    mkdir -p /opt/model-store; \
    if [ "$PREBUILT_ARCHIVES" = "true" ]; then \
      ls /ctx/model_store/*.mar >/dev/null 2>&1 \
        || { echo "PREBUILT_ARCHIVES=true but ./model_store holds no .mar file" >&2; exit 1; }; \
      cp /ctx/model_store/*.mar /opt/model-store/; \
    else \
      export TORCH_HOME=/tmp/torch-home; \
      python -m handlers.build_archive --export-path /opt/model-store --model-name resnet50 \
        --version 1.0 --weights-variant IMAGENET1K_V1 --resize-size 256 --archive-name resnet50; \
      python -m handlers.build_archive --export-path /opt/model-store --model-name resnet50 \
        --version 2.0 --weights-variant IMAGENET1K_V2 --resize-size 232 --archive-name resnet50-2.0; \
      rm -rf "$TORCH_HOME"; \
    fi; \
    ls -l /opt/model-store

# ---- Stage 3: the runtime image. -------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
ARG JAVA_PACKAGE=openjdk-17-jre-headless
ARG APP_UID=10001

# The man directory is missing from slim images and the JDK's postinst expects it. The Java package is not
# version-pinned (DL3008): Debian replaces security updates in place, so an old pin would stop building.
# hadolint ignore=DL3008
RUN set -eu; \
    mkdir -p /usr/share/man/man1; \
    apt-get update; \
    apt-get install -y --no-install-recommends "$JAVA_PACKAGE"; \
    rm -rf /var/lib/apt/lists/*; \
    java -version

RUN set -eu; \
    groupadd --system --gid "$APP_UID" model-server; \
    useradd --system --uid "$APP_UID" --gid model-server --home-dir /home/model-server --create-home \
      --shell /usr/sbin/nologin model-server; \
    mkdir -p /home/model-server/keys /home/model-server/model-store /home/model-server/tmp \
      /home/model-server/logs; \
    chown -R model-server:model-server /home/model-server; \
    chmod 0700 /home/model-server/keys

COPY --from=venv /opt/venv /opt/venv
COPY --from=archives /opt/model-store /opt/torchserve/baked-model-store
# The handlers stay in the image so ops can build more archives inside the container, then upload them
# through the api (the only writer of the model store, which TorchServe mounts read-only):
#   docker compose exec torchserve python -m handlers.build_archive --export-path /home/model-server/tmp ...
COPY handlers/ /opt/torchserve/app/handlers/
COPY docker/torchserve.config.properties /etc/torchserve/config.properties
# model_store_init.py: docker-compose.yml's model-store-init service, which installs the baked archives.
COPY docker/healthcheck.py docker/cpu_quota.py docker/model_store_init.py /opt/deploy/
COPY --chmod=0755 docker/torchserve-entrypoint.sh /usr/local/bin/torchserve-entrypoint

# TEMP: the JVM's java.io.tmpdir; TMPDIR: where the launcher keeps its pid file (both off the volumes).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TEMP=/home/model-server/tmp \
    TMPDIR=/home/model-server/tmp \
    LOG_LOCATION=/home/model-server/logs \
    METRICS_LOCATION=/home/model-server/logs

# Numeric, so runtimes that enforce non-root (Kubernetes runAsNonRoot) can verify it.
USER ${APP_UID}:${APP_UID}
WORKDIR /opt/torchserve/app
# Inference, management, metrics: reachable on the compose network only (docker-compose.yml `expose`s them).
EXPOSE 8080 8081 8082
ENTRYPOINT ["/usr/local/bin/torchserve-entrypoint"]
