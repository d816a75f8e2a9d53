# Stand-in for nginxinc/nginx-unprivileged (Chroma's auth proxy): Debian's nginx and envsubst
# (gettext-base), on the builder stand-in, as an unprivileged user as upstream's image is.
ARG BASE
FROM ${BASE}
# Debian's versions: the stand-in follows bookworm's security updates, as the base does.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends nginx-light gettext-base \
    && rm -rf /var/lib/apt/lists/*
USER 101:101
EXPOSE 8080
CMD ["nginx", "-g", "daemon off;"]
