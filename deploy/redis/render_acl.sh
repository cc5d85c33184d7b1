#!/bin/sh
# deploy/redis/render_acl.sh <template> <output>: writes Redis's ACL file from users.acl.in.
#
# The tickplane password comes from the file named by $TICKPLANE_REDIS_PASSWORD_FILE (a mounted
# Secret) or else from $TICKPLANE_REDIS_PASSWORD; only its SHA-256 reaches the output, as
# `#<hex>`, so the ACL file holds no password. Comment lines are dropped: Redis refuses them in an
# ACL file. The output is written next to itself and renamed into place, mode 0600, so Redis
# never reads half a file.
#
# POSIX sh and coreutils only: it runs in the official Redis image before redis-server starts.
set -eu

if [ $# -ne 2 ]; then
    echo "usage: render_acl.sh <template> <output>" >&2
    exit 2
fi
template=$1
output=$2

if [ -n "${TICKPLANE_REDIS_PASSWORD_FILE:-}" ]; then
    password=$(cat "$TICKPLANE_REDIS_PASSWORD_FILE")
else
    password=${TICKPLANE_REDIS_PASSWORD:-}
fi
if [ -z "$password" ]; then
    echo "render_acl.sh: no password: set TICKPLANE_REDIS_PASSWORD_FILE or TICKPLANE_REDIS_PASSWORD" >&2
    exit 1
fi
if [ "${#password}" -lt 16 ]; then
    echo "render_acl.sh: the tickplane password is shorter than 16 characters" >&2
    exit 1
fi

hash=$(printf '%s' "$password" | sha256sum | cut -d' ' -f1)
tmp=$output.tmp.$$
trap 'rm -f "$tmp"' EXIT
umask 077
grep -v -e '^#' -e '^[[:space:]]*$' "$template" | sed "s/@TICKPLANE_PASSWORD_SHA256@/$hash/g" >"$tmp"
if grep -q '@[A-Z_]*@' "$tmp"; then
    echo "render_acl.sh: $template has a placeholder this script does not know" >&2
    exit 1
fi
mv "$tmp" "$output"
