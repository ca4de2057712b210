# Container image of northflank-backup-exporter.
#
#   docker build -t northflank-backup-exporter:0.1.0 .
#   docker run -d --name northflank-backup-exporter -p 10150:10150 --read-only \
#       --user "$(id -u):$(id -g)" -v "$PWD/nf-token:/run/secrets/northflank-token:ro" \
#       -v "$PWD/nf-state:/var/lib/northflank-backup-exporter" \
#       northflank-backup-exporter:0.1.0 --northflank.token-file=/run/secrets/northflank-token \
#       --storage.path=/var/lib/northflank-backup-exporter
#
# The state directory (created first: mkdir -m 0700 nf-state) keeps what the exporter read, its plans and
# the requests of the last hour across restarts (--storage.path), so a new container serves every addon
# at once and does not spend the hour's request budget again.
#
# The token file is mounted read-only and read by the exporter (again on SIGHUP, see the README), so the
# token is neither in the container's environment nor in `docker inspect`. --user runs the container
# as the owner of a 0600 token file; without it the image's own user (UID 10150) needs read access.
#
# Northflank's notification webhook (README, "Webhook push from Northflank") has a port of its own, the
# only one to expose: publish /metrics on a private address only, and mount the secret file read-only.
# To the command above add, before the image name (the first -p in place of -p 10150:10150):
#       -p 127.0.0.1:10150:10150 -p 10151:10151 -v "$PWD/webhook-secret:/run/secrets/webhook-secret:ro"
# and after it:
#       --webhook.listen-address=:10151 --webhook.secret-file=/run/secrets/webhook-secret
#
# Two stages on the same pinned base: the builder installs the package and its dependencies into a
# virtual environment at /opt/venv; the final stage copies only that environment (no pip, no build tools,
# no source tree) and runs it as an unprivileged user with a fixed UID/GID of 10150, which
# deploy/kubernetes/deployment.yaml repeats in its securityContext.
#
# tests/deploy/test_dockerfile.py lints this file with hadolint and replays the builder stage's ENV,
# WORKDIR, COPY and RUN instructions into a temporary directory, so keep the builder stage to those.
# Pin the base by digest too once you have pulled it: FROM python:3.12.12-slim-bookworm@sha256:...

FROM python:3.12.12-slim-bookworm AS builder

ENV PATH=/opt/venv/bin:$PATH \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src

RUN python -m venv /opt/venv

COPY pyproject.toml README.md LICENSE ./
COPY exporter/ exporter/

# A regular (not editable) install builds a wheel from the source tree and byte-compiles everything, so
# the read-only container never needs to write .pyc files. pip then leaves the environment: the final
# stage carries only the exporter and its runtime dependencies. The last command proves the entry point
# runs.
RUN pip install --no-cache-dir . \
    && pip uninstall --yes pip \
    && northflank-backup-exporter --version


FROM python:3.12.12-slim-bookworm

ARG VERSION=0.1.0

LABEL org.opencontainers.image.title="northflank-backup-exporter" \
      org.opencontainers.image.description="Prometheus exporter for the backups of Northflank database addons" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/northflank-backup-exporter/northflank-backup-exporter" \
      org.opencontainers.image.documentation="https://github.com/northflank-backup-exporter/northflank-backup-exporter/blob/main/docs/deployment.md" \
      org.opencontainers.image.base.name="docker.io/library/python:3.12.12-slim-bookworm"

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

RUN groupadd --system --gid 10150 exporter \
    && useradd --system --uid 10150 --gid 10150 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin exporter

COPY --from=builder /opt/venv /opt/venv

USER 10150:10150

EXPOSE 10150

# /-/healthy answers 200 while the process serves. Python's urllib, because the slim base has no curl;
# urlopen raises (exit status 1) on a refused connection, a timeout or any non-2xx answer. Override it
# (docker run --health-cmd ...) if you change --web.listen-address.
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:10150/-/healthy', timeout=4)"]

ENTRYPOINT ["northflank-backup-exporter"]
