# Stand-in for chromadb/chroma: the `chroma` server of the chromadb package from PyPI, same
# version as the client the agent uses, on the builder stand-in.
ARG BASE
FROM ${BASE}
ARG CHROMADB_VERSION=1.5.9
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN --mount=type=secret,id=pip_ca,required=false \
    if [ -s /run/secrets/pip_ca ]; then export PIP_CERT=/run/secrets/pip_ca; fi; \
    /usr/bin/python3.11 -m venv /opt/chroma \
    && /opt/chroma/bin/pip install --no-cache-dir --disable-pip-version-check "chromadb==${CHROMADB_VERSION}" \
    && mkdir -p /data && chown 65532:65532 /data
ENV ANONYMIZED_TELEMETRY=False
USER 65532:65532
EXPOSE 8000
ENTRYPOINT ["/opt/chroma/bin/chroma"]
CMD ["run", "--host", "0.0.0.0", "--port", "8000", "--path", "/data"]
