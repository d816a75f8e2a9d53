# Stand-in for registry:2 (the distribution registry kind's local registry runs): Debian's
# docker-registry with upstream's configuration (no auth, storage in /var/lib/registry, :5000),
# on the builder stand-in.
ARG BASE
FROM ${BASE}
# Debian's versions: the stand-in follows bookworm's security updates, as the base does.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends docker-registry \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /var/lib/registry \
    && chown 65532:65532 /var/lib/registry
COPY registry-config.yml /etc/docker/registry/config.yml
USER 65532:65532
EXPOSE 5000
VOLUME ["/var/lib/registry"]
ENTRYPOINT ["/usr/bin/docker-registry"]
CMD ["serve", "/etc/docker/registry/config.yml"]
