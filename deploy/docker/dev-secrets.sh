#!/usr/bin/env bash
# deploy/docker/dev-secrets.sh: throwaway development secrets for compose.yaml, written into
# deploy/docker/secrets/ (gitignored):
#
#   tls/               a test CA, a Redis server certificate (localhost) and a client certificate
#                      (tests/support/gen_certs.sh; valid for a few days: run again to renew,
#                      then `docker compose restart redis`: the new CA is not the running one's)
#   redis-password     the tickplane ACL user's password (the Redis side reads it)
#   tickplane.env      REDIS_PASSWORD=<the same password> (tickplane's side)
#   redis-replication-password, redis-operator-password
#                      the cluster's other ACL users (compose-cluster.yaml): replicas log in to
#                      their masters as "replication"; the cluster is created as "operator"
#
# The keys and the password are made readable to every local user, because the containers run
# as their own unprivileged users (999 for Redis, 10001 for tickplane). Development only:
# production gets its secrets from Kubernetes Secrets or systemd credentials (deploy/README.md).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=$here/secrets
mkdir -p "$out"
"$here/../../tests/support/gen_certs.sh" "$out/tls"
# Only what the services read: the CA's key and the tests' other sets stay out of the containers.
rm -f "$out"/tls/ca.key "$out"/tls/other-* "$out"/tls/rot-*
chmod 0644 "$out"/tls/*.key
for name in redis-password redis-replication-password redis-operator-password; do
    if [[ ! -s $out/$name ]]; then
        openssl rand -hex 24 | tr -d '\n' >"$out/$name"
    fi
    chmod 0644 "$out/$name"
done
printf 'REDIS_PASSWORD=%s\n' "$(cat "$out/redis-password")" >"$out/tickplane.env"
chmod 0644 "$out/tickplane.env"
echo "development secrets in $out"
