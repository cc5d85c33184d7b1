#!/bin/sh
# deploy/redis/render_acl.sh <template> <output>: writes Redis's ACL file from users.acl.in.
#
# The tickplane password comes from the file named by $TICKPLANE_REDIS_PASSWORD_FILE (a mounted
# Secret) or else from $TICKPLANE_REDIS_PASSWORD; only its SHA-256 reaches the output, as
# `#<hex>`, so the ACL file holds no password. Comment lines are dropped: Redis refuses them in an
# ACL file. The output is written next to itself and renamed into place, mode 0600, so Redis
# never reads half a file.
#
# With TICKPLANE_REDIS_CLUSTER=yes (a Redis Cluster node, deploy/redis/redis-cluster.conf) the
# tickplane user also gets the Cluster commands, and the replication user is rendered with the
# password from $TICKPLANE_REDIS_REPLICATION_PASSWORD_FILE or $TICKPLANE_REDIS_REPLICATION_PASSWORD
# (replicas authenticate to their master with it: masteruser / masterauth). Otherwise both
# placeholders render as nothing. With TICKPLANE_REDIS_OPERATOR_PASSWORD(_FILE) an "operator"
# user with every right is rendered too, for whoever administers Redis (redis-cli --cluster
# create / reshard, CONFIG); its password is never given to tickplane.
#
# POSIX sh and coreutils only: it runs in the official Redis image before redis-server starts.
set -eu

if [ $# -ne 2 ]; then
    echo "usage: render_acl.sh <template> <output>" >&2
    exit 2
fi
template=$1
output=$2

# password_hash <what> <NAME>: the SHA-256 of the password in the file $NAME_FILE, or in $NAME.
password_hash() {
    eval "file=\${$2_FILE:-} value=\${$2:-}"
    if [ -n "$file" ]; then
        value=$(cat "$file")
    fi
    if [ -z "$value" ]; then
        echo "render_acl.sh: no $1 password: set $2_FILE or $2" >&2
        exit 1
    fi
    if [ "${#value}" -lt 16 ]; then
        echo "render_acl.sh: the $1 password is shorter than 16 characters" >&2
        exit 1
    fi
    printf '%s' "$value" | sha256sum | cut -d' ' -f1
}

hash=$(password_hash tickplane TICKPLANE_REDIS_PASSWORD)
cluster_commands=
replication_user=
operator_user=
if [ -n "${TICKPLANE_REDIS_OPERATOR_PASSWORD_FILE:-}${TICKPLANE_REDIS_OPERATOR_PASSWORD:-}" ]; then
    operator_user="user operator on #$(password_hash operator \
        TICKPLANE_REDIS_OPERATOR_PASSWORD) ~* \&* +@all"
fi
case ${TICKPLANE_REDIS_CLUSTER:-no} in
yes)
    cluster_commands='+cluster|shards +asking +wait'
    replication_user="user replication on #$(password_hash replication \
        TICKPLANE_REDIS_REPLICATION_PASSWORD) resetkeys resetchannels -@all +psync +replconf +ping"
    ;;
no) ;;
*)
    echo "render_acl.sh: TICKPLANE_REDIS_CLUSTER must be yes or no" >&2
    exit 1
    ;;
esac
tmp=$output.tmp.$$
trap 'rm -f "$tmp"' EXIT
umask 077
grep -v -e '^#' -e '^[[:space:]]*$' "$template" |
    sed -e "s/@TICKPLANE_PASSWORD_SHA256@/$hash/g" \
        -e "s/^@OPERATOR_USER@\$/$operator_user/" \
        -e "s/ *@TICKPLANE_CLUSTER_COMMANDS@/${cluster_commands:+ }$cluster_commands/" \
        -e "s/^@REPLICATION_USER@\$/$replication_user/" | grep -v '^$' >"$tmp"
if grep -q '@[A-Z_]*@' "$tmp"; then
    echo "render_acl.sh: $template has a placeholder this script does not know" >&2
    exit 1
fi
mv "$tmp" "$output"
