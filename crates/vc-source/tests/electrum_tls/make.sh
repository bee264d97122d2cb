#!/bin/sh
# Regenerates the test CA, the server certificate it signs and an unrelated CA (see README.md).
set -e
cd "$(dirname "$0")"
tmp=$(mktemp -d)
cat > "$tmp/ca.cnf" <<'CNF'
[ca]
default_ca = test
[test]
database = index.txt
new_certs_dir = .
serial = serial
default_md = sha256
policy = any
copy_extensions = none
[any]
commonName = supplied
[root]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
subjectAltName = IP:127.0.0.1, DNS:localhost
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
CNF
for ca in ca other-ca; do
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$tmp/$ca.key"
  openssl req -new -key "$tmp/$ca.key" -subj "/CN=virtualchain-rs test $ca" -out "$tmp/$ca.csr"
  (cd "$tmp" && rm -f index.txt* serial* && touch index.txt && echo 01 > serial &&
   openssl ca -batch -config ca.cnf -selfsign -keyfile "$ca.key" -in "$ca.csr" -extensions root \
     -startdate 20200101000000Z -enddate 21250101000000Z -notext -out "$ca.pem")
done
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out server.key
openssl req -new -key server.key -subj "/CN=virtualchain-rs test server" -out "$tmp/server.csr"
(cd "$tmp" && rm -f index.txt* serial* && touch index.txt && echo 02 > serial &&
 openssl ca -batch -config ca.cnf -cert ca.pem -keyfile ca.key -in server.csr -extensions server \
   -startdate 20200101000000Z -enddate 21250101000000Z -notext -out server.pem)
cp "$tmp/ca.pem" ca.pem
cp "$tmp/other-ca.pem" other-ca.pem
cat "$tmp/server.pem" "$tmp/ca.pem" > server-chain.pem
rm -rf "$tmp"
