#!/bin/sh
# Secrets mounted as files (docker/compose secrets, Kubernetes secret volumes) named like the
# setting (/run/secrets/KTA_SECRET_KEY) become that KTA_* variable; then this is just `kta`.
set -eu
for f in /run/secrets/KTA_*; do
    [ -f "$f" ] || continue
    name=$(basename "$f")
    value=$(cat "$f")
    export "$name=$value"
done
exec kta "$@"
