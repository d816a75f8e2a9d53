# Stand-in for the upstream redis image, from Debian's redis-server package (in the builder
# stand-in, which `invoke compose.up --offline` builds with debootstrap).
ARG BASE
FROM ${BASE}
RUN mkdir -p /data && chown redis:redis /data
WORKDIR /data
# The Debian package creates `redis` with a dynamic uid: the name is what is stable here.
# hadolint ignore=DL3066
USER redis
EXPOSE 6379
CMD ["redis-server", "--dir", "/data", "--protected-mode", "no"]
