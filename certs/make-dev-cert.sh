#!/usr/bin/env bash
# Make a development CA, a certificate for the example host names, and a
# secret key file — for trying portvakt and for validating config/*.yaml.
# Never for production: use certificates from your own CA or ACME.
# Usage: certs/make-dev-cert.sh [DIR]   (default: the certs/ directory itself)
set -euo pipefail
dir=${1:-$(cd "$(dirname "$0")" && pwd)}
mkdir -p "$dir"
cd "$dir"
if [ -s dev.pem ] && [ -s dev.key ] && [ -s dev-secret.key ]; then
  echo "certs: $dir already has dev.pem, dev.key and dev-secret.key"; exit 0
fi
umask 077
names="DNS:login.example.org,DNS:lon.example.org,DNS:wiki.example.org,DNS:intranet.example.org,DNS:api.example.org,DNS:localhost,IP:127.0.0.1"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
  -subj "/CN=portvakt dev CA" -addext basicConstraints=critical,CA:TRUE,pathlen:0 \
  -keyout dev-ca.key -out dev-ca.pem 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -subj "/CN=login.example.org" -keyout dev.key -out dev.csr 2>/dev/null
printf 'subjectAltName=%s\nbasicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n' "$names" > dev.ext
openssl x509 -req -in dev.csr -CA dev-ca.pem -CAkey dev-ca.key -CAcreateserial -days 30 \
  -extfile dev.ext -out dev.pem 2>/dev/null
rm -f dev.csr dev.ext dev-ca.srl
head -c 32 /dev/urandom > dev-secret.key
chmod 644 dev.pem dev-ca.pem
echo "certs: wrote dev-ca.pem, dev.pem, dev.key, dev-secret.key in $dir"
