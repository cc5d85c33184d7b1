#!/usr/bin/env bash
# gen_certs.sh <dir>: generates the throwaway PKI that the integration tests use.
#
#   ca.crt / ca.key                  test CA (the only CA the tests trust)
#   server.crt / server.key          signed by ca: CN=localhost, SAN DNS:localhost, IP:127.0.0.1,
#                                    EKU serverAuth
#   client.crt / client.key          signed by ca: CN=tickplane-test-client, EKU clientAuth
#   other-ca.crt / other-ca.key      an unrelated CA (wrong-CA tests)
#   other-server.crt / other-server.key
#                                    same names as server.crt but signed by other-ca, so a client
#                                    trusting ca.crt must refuse it ("unknown CA")
#   rot-ca.crt / rot-ca.key          a second, unrelated CA: the material a rotation moves to
#   rot-server.crt / rot-server.key  as server.crt, signed by rot-ca
#   rot-client.crt / rot-client.key  as client.crt, signed by rot-ca
#
# EC P-256 keys, certificates valid for a few days. Everything is regenerated on each run into a
# staging directory inside <dir> and then moved into place file by file (rename is atomic), so a
# concurrent reader never sees half a file. Keys are mode 0600, certificates 0644.
# Run by the ctest fixture "gen_certs" (tests/CMakeLists.txt).
set -euo pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: $0 <dir>" >&2
    exit 2
fi
dir=$1
days=5

mkdir -p "$dir"
stage=$(mktemp -d "$dir/.gen_certs.XXXXXX")
trap 'rm -rf "$stage"' EXIT

cat >"$stage/ext.cnf" <<'EOF'
[req]
distinguished_name = dn
prompt = no

[dn]
CN = unused

[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer

[client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
EOF

# newkey <name>: a P-256 private key, mode 0600.
newkey() {
    (umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
        -out "$stage/$1.key" 2>/dev/null)
}

# serial: a random positive 64-bit serial number (hex), so no .srl file is needed.
serial() {
    echo "0x$(openssl rand -hex 8 | sed 's/^./7/')"
}

# make_ca <name> <CN>: a self-signed CA.
make_ca() {
    newkey "$1"
    openssl req -new -x509 -key "$stage/$1.key" -out "$stage/$1.crt" -days "$days" -sha256 \
        -subj "/O=tickplane tests/CN=$2" -set_serial "$(serial)" \
        -config "$stage/ext.cnf" -extensions ca
}

# make_leaf <name> <CN> <ca name> <extension section>: a certificate signed by <ca name>.
make_leaf() {
    newkey "$1"
    openssl req -new -key "$stage/$1.key" -out "$stage/$1.csr" -subj "/O=tickplane tests/CN=$2" \
        -config "$stage/ext.cnf"
    openssl x509 -req -in "$stage/$1.csr" -CA "$stage/$3.crt" -CAkey "$stage/$3.key" \
        -set_serial "$(serial)" -days "$days" -sha256 -out "$stage/$1.crt" \
        -extfile "$stage/ext.cnf" -extensions "$4" 2>/dev/null
    rm -f "$stage/$1.csr"
}

make_ca ca "tickplane test CA"
make_leaf server localhost ca server
make_leaf client tickplane-test-client ca client
make_ca other-ca "tickplane unrelated CA"
make_leaf other-server localhost other-ca server
make_ca rot-ca "tickplane rotated CA"
make_leaf rot-server localhost rot-ca server
make_leaf rot-client tickplane-test-client rot-ca client

# Sanity check: each leaf verifies against its own CA and not against the other one.
openssl verify -CAfile "$stage/ca.crt" -purpose sslserver "$stage/server.crt" >/dev/null
openssl verify -CAfile "$stage/ca.crt" -purpose sslclient "$stage/client.crt" >/dev/null
openssl verify -CAfile "$stage/other-ca.crt" -purpose sslserver "$stage/other-server.crt" \
    >/dev/null
if openssl verify -CAfile "$stage/ca.crt" "$stage/other-server.crt" >/dev/null 2>&1; then
    echo "gen_certs.sh: other-server.crt unexpectedly verifies against ca.crt" >&2
    exit 1
fi
openssl verify -CAfile "$stage/rot-ca.crt" -purpose sslserver "$stage/rot-server.crt" >/dev/null
openssl verify -CAfile "$stage/rot-ca.crt" -purpose sslclient "$stage/rot-client.crt" >/dev/null
# Rotation tests rely on the two sets refusing each other's certificates.
if openssl verify -CAfile "$stage/rot-ca.crt" "$stage/client.crt" >/dev/null 2>&1 ||
    openssl verify -CAfile "$stage/ca.crt" "$stage/rot-client.crt" >/dev/null 2>&1; then
    echo "gen_certs.sh: client certificates unexpectedly verify across ca and rot-ca" >&2
    exit 1
fi

for name in ca server client other-ca other-server rot-ca rot-server rot-client; do
    chmod 0600 "$stage/$name.key"
    chmod 0644 "$stage/$name.crt"
done
# CA certificates first: a reader that picks up a new leaf finds its new CA already in place.
for name in ca other-ca rot-ca server client other-server rot-server rot-client; do
    mv -f "$stage/$name.key" "$dir/$name.key"
    mv -f "$stage/$name.crt" "$dir/$name.crt"
done
echo "gen_certs.sh: certificates in $dir"
