#!/usr/bin/env bash
# tests/cli/test_tickplane_cli.sh <tickplane>: the executable's command line.
# --help lists every setting and exits 0; a bad value exits 2 before opening
# any socket, naming the variable, the value and what was expected; a secret
# never reaches the output.
set -uo pipefail
bin=$1
passes=0
failures=0

check() { # description, condition
    if eval "$2"; then
        echo "ok: $1"
        passes=$((passes + 1))
    else
        echo "FAIL: $1"
        failures=$((failures + 1))
    fi
}

help=$("$bin" --help)
check "--help exits 0" "[[ $? -eq 0 ]]"
for var in REDIS_URL REDIS_HOST REDIS_PORT REDIS_USERNAME REDIS_PASSWORD REDIS_DATABASE \
    REDIS_POOL_MAX_SIZE REDIS_CONNECTION_TIMEOUT REDIS_COMMAND_TIMEOUT REDIS_MAX_RETRIES \
    REDIS_RETRY_DELAY_MS REDIS_RETRY_MAX_DELAY_MS REDIS_TLS_ENABLED REDIS_TLS_CERT_PATH \
    REDIS_TLS_KEY_PATH REDIS_TLS_CA_PATH REDIS_TLS_SERVER_NAME TP_KEY_PREFIX TP_LOG_LEVEL \
    TP_FEED_TCP TP_FEED_UDP TP_FEED_UDP_GROUP TP_FEED_REPLAY TP_FEED_REPLAY_SPEED \
    TP_MAX_FRAME_BYTES TP_FEED_MAX_CONNECTIONS TP_EVENT_FORMAT TP_MD_PUBLISH TP_MD_HISTORY \
    TP_ORDER_QUEUE_MAX TP_SHUTDOWN_TIMEOUT --check-config; do
    check "--help documents $var" "grep -q -- '$var' <<<\"\$help\""
done

# Port 1 on loopback: if the process got as far as connecting it would log an
# attempt; a config error must stop it before that.
out=$(REDIS_PORT=abc "$bin" 2>&1)
code=$?
check "bad REDIS_PORT exits 2" "[[ $code -eq 2 ]]"
check "bad REDIS_PORT names variable, value and expectation" \
    "grep -q 'REDIS_PORT=abc: expected an integer' <<<\"\$out\""
check "nothing was connected" "! grep -q 'redis' <<<\"\${out/REDIS_PORT/}\""

out=$("$bin" --redis-pool-max-size=0 2>&1)
code=$?
check "bad flag exits 2 naming the flag" \
    "[[ $code -eq 2 ]] && grep -q -- '--redis-pool-max-size=0' <<<\"\$out\""

out=$(REDIS_URL='rediss://u:hunter2@host:99999' "$bin" 2>&1)
code=$?
check "bad REDIS_URL exits 2" "[[ $code -eq 2 ]]"
check "the password is not echoed" "! grep -q hunter2 <<<\"\$out\""

out=$(REDIS_TLS_CA_PATH=/nonexistent "$bin" 2>&1)
check "a TLS path with TLS off is refused" "grep -q 'REDIS_TLS_ENABLED' <<<\"\$out\""

out=$(TP_FEED_TCP=localhost:7400 "$bin" 2>&1)
code=$?
check "bad TP_FEED_TCP exits 2 with what an address looks like" \
    "[[ $code -eq 2 ]] && grep -q 'TP_FEED_TCP=localhost:7400: expected IPv4:port' <<<\"\$out\""

out=$(TP_EVENT_FORMAT=xml "$bin" 2>&1)
code=$?
check "bad TP_EVENT_FORMAT exits 2 naming the formats" \
    "[[ $code -eq 2 ]] && grep -q 'TP_EVENT_FORMAT=xml: expected flatbuffers or json' <<<\"\$out\""

out=$(TP_KEY_PREFIX="$(printf 'p%.0s' {1..65})" "$bin" 2>&1)
code=$?
check "a TP_KEY_PREFIX over 64 characters exits 2" \
    "[[ $code -eq 2 ]] && grep -q 'expected at most 64 characters' <<<\"\$out\""

out=$(TP_ORDER_QUEUE_MAX=0 "$bin" 2>&1)
code=$?
check "bad TP_ORDER_QUEUE_MAX exits 2" "[[ $code -eq 2 ]] && grep -q 'TP_ORDER_QUEUE_MAX=0' <<<\"\$out\""

# --check-config: the real parser over a deployment's settings, nothing started.
out=$(REDIS_PASSWORD=hunter2 REDIS_USERNAME=tickplane TP_FEED_TCP=0.0.0.0:7400 \
    "$bin" --check-config 2>&1)
code=$?
check "--check-config of good settings exits 0 and says so" \
    "[[ $code -eq 0 ]] && grep -q 'configuration ok' <<<\"\$out\""
check "--check-config shows the effective values" "grep -q '\"tp_feed_tcp\":\"0.0.0.0:7400\"' <<<\"\$out\""
check "--check-config redacts the password" "! grep -q hunter2 <<<\"\$out\""
check "--check-config starts nothing: one log line, the configuration" \
    "[[ \$(grep -c '\"msg\"' <<<\"\$out\") -eq 1 ]]"
out=$(TP_SHUTDOWN_TIMEOUT=soon "$bin" --check-config 2>&1)
code=$?
check "--check-config of a bad setting exits 2 naming it" \
    "[[ $code -eq 2 ]] && grep -q 'TP_SHUTDOWN_TIMEOUT=soon' <<<\"\$out\""

# TLS files are loaded, not only found: a key of another certificate is a configuration error
# (exit 2, which tickplane.service does not restart on), for --check-config and for a start.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for n in a b; do
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj "/CN=$n" \
        -keyout "$tmp/$n.key" -out "$tmp/$n.crt" 2>/dev/null
done
mismatched=(REDIS_TLS_ENABLED=true REDIS_TLS_CA_PATH="$tmp/a.crt" REDIS_TLS_CERT_PATH="$tmp/a.crt"
    REDIS_TLS_KEY_PATH="$tmp/b.key" TP_METRICS_ADDR=off TP_FEED_TCP=off TP_FEED_UDP=off)
out=$(env "${mismatched[@]}" "$bin" --check-config 2>&1)
code=$?
check "--check-config loads the TLS files: a mismatched key exits 2 naming it" \
    "[[ $code -eq 2 ]] && grep -q 'REDIS_TLS_KEY_PATH.*key values mismatch' <<<\"\$out\""
out=$(env "${mismatched[@]}" REDIS_PORT=1 "$bin" 2>&1)
code=$?
check "a start with a mismatched key exits 2" "[[ $code -eq 2 ]]"
out=$(env "${mismatched[@]}" REDIS_TLS_KEY_PATH="$tmp/a.key" "$bin" --check-config 2>&1)
code=$?
check "--check-config with matching TLS files exits 0" "[[ $code -eq 0 ]]"

echo "$passes passed, $failures failed"
[[ $failures -eq 0 ]]
