# vaia-agent image: builder -> dev (the Tilt target) -> runtime (the default, last stage).
#
# The bases are build arguments; the defaults are the real upstream images. Where no registry can
# be reached, `invoke build --offline` builds stand-ins of both from Debian packages and passes
# them here. The runtime base runs Debian's /usr/bin/python3.11, so the builder must be the same
# Debian release: the virtualenv's interpreter link points at that path.
ARG BUILDER_IMAGE=debian:12-slim
ARG RUNTIME_IMAGE=gcr.io/distroless/python3-debian12:nonroot

# ---------------------------------------------------------------------------------------------
FROM ${BUILDER_IMAGE} AS builder
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# debian:12-slim has no Python; the offline stand-in builder already carries these packages.
# hadolint ignore=DL3008
RUN if ! /usr/bin/python3.11 -c "import ensurepip, venv" 2>/dev/null || ! command -v strip >/dev/null; then \
        apt-get update \
        && apt-get install -y --no-install-recommends python3.11 python3.11-venv binutils \
        && rm -rf /var/lib/apt/lists/*; \
    fi
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
RUN /usr/bin/python3.11 -m venv /opt/venv
# Dependencies first, from the lock (exact versions, hashes): this layer survives code edits.
COPY requirements/runtime.lock /tmp/runtime.lock
# A proxy's CA, if the build needs one, comes in as a secret: it is never written to a layer.
RUN --mount=type=secret,id=pip_ca,required=false \
    if [ -s /run/secrets/pip_ca ]; then export PIP_CERT=/run/secrets/pip_ca; fi; \
    /opt/venv/bin/pip install --no-deps --require-hashes --only-binary=:all: -r /tmp/runtime.lock

# ---------------------------------------------------------------------------------------------
# The runtime venv: without pip and tests, stripped where safe, third-party code as bytecode only
# (docker/slim-venv.py says why and checks that every dependency still imports).
FROM builder AS slim
COPY docker/slim-venv.py /tmp/slim-venv.py
RUN /opt/venv/bin/python /tmp/slim-venv.py /opt/venv

# ---------------------------------------------------------------------------------------------
# The application code, compiled. Its own stage, so that editing agent/ rebuilds only this.
FROM slim AS app
WORKDIR /app
COPY agent /app/agent
# Swagger UI's JavaScript and CSS are kept gzip-compressed only (agent/api/routes/docs.py serves
# them either way): 1.9 MB less in the image.
RUN /opt/venv/bin/python -m compileall -q --invalidation-mode unchecked-hash /app/agent \
    && /opt/venv/bin/python -c "import agent.app, agent.wiring" \
    && /opt/venv/bin/python -c "import gzip, pathlib; \
[(p.with_name(p.name + '.gz').write_bytes(gzip.compress(p.read_bytes(), 9, mtime=0)), p.unlink()) \
 for p in pathlib.Path('/app/agent/api/static/swagger-ui').glob('swagger-ui*.[jc]s')]"

# ---------------------------------------------------------------------------------------------
# What Tilt builds: the full venv, a shell and tar for live update, uvicorn --reload, and the
# app directory owned by the runtime user so that synced files can be written.
FROM builder AS dev
RUN echo "nonroot:x:65532:65532:nonroot:/home/nonroot:/usr/sbin/nologin" >> /etc/passwd \
    && echo "nonroot:x:65532:" >> /etc/group \
    && mkdir -p /home/nonroot /app && chown 65532:65532 /home/nonroot /app
COPY --chown=65532:65532 agent /app/agent
ENV PATH=/opt/venv/bin:${PATH} PYTHONUNBUFFERED=1 HOST=0.0.0.0 PORT=8080 \
    CHROMA_PATH=/tmp/chroma PYTHONDONTWRITEBYTECODE=1
WORKDIR /app
USER 65532:65532
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["/opt/venv/bin/python", "-m", "agent", "healthcheck"]
ENTRYPOINT ["/opt/venv/bin/python", "-m", "agent"]
CMD ["serve", "--reload"]

# ---------------------------------------------------------------------------------------------
FROM ${RUNTIME_IMAGE} AS runtime
COPY --from=slim /opt/venv /opt/venv
COPY --from=app /app /app
# Read-only root filesystem: no bytecode writes (it is precompiled), state only in /tmp volumes.
ENV PATH=/opt/venv/bin:/usr/bin:/bin PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    HOST=0.0.0.0 PORT=8080 CHROMA_PATH=/tmp/chroma
WORKDIR /app
USER 65532:65532
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["/opt/venv/bin/python", "-m", "agent", "healthcheck"]
ENTRYPOINT ["/opt/venv/bin/python", "-m", "agent"]
CMD ["serve"]
# Last, so that new values never invalidate a layer above.
ARG VERSION=0.0.0-dev
ARG REVISION=unknown
ARG CREATED=1970-01-01T00:00:00Z
ARG SOURCE=https://github.com/vaia-devstack/vaia-devstack
LABEL org.opencontainers.image.title="vaia-agent" \
      org.opencontainers.image.description="A vertical AI agent for platform and SRE runbooks" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0"
