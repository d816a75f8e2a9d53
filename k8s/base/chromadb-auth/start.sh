#!/bin/sh
# The auth proxy's start: refuse a missing or weak token (an empty one would let `Bearer `
# through), write it into the configuration, then run nginx in the foreground.
set -eu
# From a file (a mounted Secret key: the cluster) or the environment (Compose).
if [ -n "${CHROMA_AUTH_TOKEN_FILE-}" ]; then
    CHROMA_AUTH_TOKEN="$(cat "$CHROMA_AUTH_TOKEN_FILE")"
    export CHROMA_AUTH_TOKEN
fi
bearer="${CHROMA_AUTH_TOKEN-}"
case "$bearer" in
    "" | *[!A-Za-z0-9_-]*)
        echo "chromadb-auth: CHROMA_AUTH_TOKEN must be set, of A-Z a-z 0-9 _ - only (invoke deploy, invoke compose.up and the Tiltfile set it)" >&2
        exit 1
        ;;
esac
if [ "${#bearer}" -lt 32 ]; then
    echo "chromadb-auth: CHROMA_AUTH_TOKEN must be at least 32 characters" >&2
    exit 1
fi
envsubst '$CHROMA_AUTH_TOKEN' < /etc/chromadb-auth/nginx.conf.template > /tmp/nginx.conf
exec nginx -e stderr -c /tmp/nginx.conf -g 'daemon off;'
