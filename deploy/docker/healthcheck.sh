#!/bin/bash
# tickplane-healthcheck: exits 0 when tickplane's /livez answers 200, 1 otherwise (the
# container HEALTHCHECK). Bash's /dev/tcp, so the runtime image needs no HTTP client.
#
# The address is TP_METRICS_ADDR's; a wildcard listener (0.0.0.0 or [::]) is reached on
# loopback. TP_HEALTHCHECK_TIMEOUT (seconds, default 2) bounds the whole exchange.
set -u
addr=${TP_METRICS_ADDR:-127.0.0.1:9108}
if [[ $addr == off ]]; then
    echo "tickplane-healthcheck: TP_METRICS_ADDR=off: no /livez to ask" >&2
    exit 1
fi
port=${addr##*:}
host=${addr%:*}
host=${host#[}
host=${host%]}
case $host in
0.0.0.0 | "") host=127.0.0.1 ;;
::) host=::1 ;;
esac

status=$(timeout "${TP_HEALTHCHECK_TIMEOUT:-2}" bash -c '
    exec 3<>"/dev/tcp/$1/$2" || exit 1
    printf "GET /livez HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" "$1" >&3
    IFS=" " read -r _ code _ <&3 && printf "%s" "$code"' _ "$host" "$port" 2>/dev/null)
if [[ $status == 200 ]]; then
    exit 0
fi
echo "tickplane-healthcheck: GET http://$host:$port/livez: ${status:-no answer}" >&2
exit 1
