#!/bin/sh
# make_test_certs.sh DIR NAME: a small PKI for the TLS tests, made with
# Debian's openssl in DIR:
#
#   NAME_ca.pem, NAME_ca.key          a self-signed CA, "NAME test CA"
#   NAME_server.pem, NAME_server.key  signed by it, for localhost, 127.0.0.1
#                                     and biserve.test (serverAuth and
#                                     clientAuth: a pod's probe presents it,
#                                     as in deploy/k8s/tls/)
#   NAME_client.pem, NAME_client.key  signed by it (clientAuth)
#
# Two calls with different names make two unrelated CAs (the tests' "another
# CA", and the certificates a rotation switches to). EC P-256 keys, quick to
# make; valid from now for 2 days. Keys are unencrypted PKCS#8, as in a
# Kubernetes TLS Secret.
set -eu
dir=$1
name=$2
cd "$dir"

newkey() {
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"
}

# sign SUBJECT KEY OUT EXTFILE [CA]: a certificate for KEY, signed by the
# CA's key (self-signed without CA).
sign() {
  openssl req -new -key "$2" -subj "$1" -out "$3.csr"
  if [ $# -ge 5 ]; then
    openssl x509 -req -in "$3.csr" -CA "$5.pem" -CAkey "$5.key" \
      -set_serial "0x$(openssl rand -hex 8)" -days 2 -extfile "$4" \
      -out "$3" 2>/dev/null
  else
    openssl x509 -req -in "$3.csr" -signkey "$2" \
      -set_serial "0x$(openssl rand -hex 8)" -days 2 -extfile "$4" \
      -out "$3" 2>/dev/null
  fi
  rm -f "$3.csr" "$4"
}

newkey "${name}_ca.key"
cat >"${name}_ca.ext" <<END
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
END
sign "/CN=${name} test CA" "${name}_ca.key" "${name}_ca.pem" "${name}_ca.ext"

newkey "${name}_server.key"
cat >"${name}_server.ext" <<END
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = DNS:localhost, DNS:biserve.test, IP:127.0.0.1
END
sign "/CN=biserve.test" "${name}_server.key" "${name}_server.pem" \
  "${name}_server.ext" "${name}_ca"

newkey "${name}_client.key"
cat >"${name}_client.ext" <<END
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
END
sign "/CN=${name} test client" "${name}_client.key" "${name}_client.pem" \
  "${name}_client.ext" "${name}_ca"
