#!/usr/bin/python3
"""The Python client's TLS keyword arguments (root_cert_path,
client_cert_path, client_key_path, server_name) against real TLS and mTLS
biserve_servers on loopback, with certificates made by
tests/server/make_test_certs.sh (openssl).

Run by CTest (python_tls_test) with the environment python_client_test gets
(see biserve_test_server.py). By hand, after scripts/build.sh:
  /usr/bin/python3 tests/client/python_tls_test.py
"""

import json
import os
import shutil
import subprocess
import sys
import unittest

from biserve_test_server import (BRACKETS_MODEL, EVAL, PYTHON_PATH, SERVER,
                                 SOURCE_DIR, ServerProcess, encode,
                                 require_built, temp_root)

sys.path.insert(0, PYTHON_PATH)
from biserve_client import BiserveError, Client  # noqa: E402

MAKE_CERTS = os.path.join(SOURCE_DIR, "tests", "server", "make_test_certs.sh")
TOLERANCE = 1e-5
TEXTS = ["call(foo bar) now", "x(yz"]

ROOT = None
CERTS = None
TLS_SERVER = None
MTLS_SERVER = None


def cert(name):
    return os.path.join(CERTS, name)


def setUpModule():
    global ROOT, CERTS, TLS_SERVER, MTLS_SERVER
    require_built(SERVER, EVAL)
    ROOT = temp_root("python_tls_test_")
    CERTS = os.path.join(ROOT, "certs")
    os.makedirs(CERTS)
    for pki in ("a", "b"):
        subprocess.run([MAKE_CERTS, CERTS, pki], check=True,
                       capture_output=True, timeout=120)
    identity = ["--tls_cert_file=" + cert("a_server.pem"),
                "--tls_key_file=" + cert("a_server.key")]
    os.makedirs(os.path.join(ROOT, "tls"))
    os.makedirs(os.path.join(ROOT, "mtls"))
    TLS_SERVER = ServerProcess.in_private_repository(
        os.path.join(ROOT, "tls"), identity)
    MTLS_SERVER = ServerProcess.in_private_repository(
        os.path.join(ROOT, "mtls"),
        identity + ["--tls_client_ca_file=" + cert("a_ca.pem")])


def tearDownModule():
    for server in (TLS_SERVER, MTLS_SERVER):
        if server is not None:
            server.stop_cleanly()
    shutil.rmtree(ROOT, ignore_errors=True)


def eval_brackets():
    """biserve_eval's outputs for TEXTS: what any server must answer."""
    done = subprocess.run(
        [EVAL, "--model", BRACKETS_MODEL],
        input=json.dumps({"sequences": [encode(t) for t in TEXTS]}),
        text=True, capture_output=True, timeout=120, check=True)
    return [r["output"] for r in json.loads(done.stdout)["results"]]


class TlsClientTest(unittest.TestCase):

    def assertRefused(self, **kwargs):
        address = kwargs.pop("address", MTLS_SERVER.address)
        with Client(address, timeout_s=20, **kwargs) as client:
            with self.assertRaises(BiserveError) as caught:
                client.health()
        self.assertEqual(caught.exception.code, "UNAVAILABLE",
                         caught.exception)

    def assertAnswersBrackets(self, client):
        result = client.predict("brackets", [encode(t) for t in TEXTS])
        expected = eval_brackets()
        self.assertEqual(len(result.sequences), len(expected))
        for got, want in zip(result.sequences, expected):
            self.assertEqual(len(got.output), len(want))
            for g, w in zip(got.output, want):
                self.assertAlmostEqual(g[0], w[0], delta=TOLERANCE)

    def test_tls_with_the_servers_ca_gets_the_right_answers(self):
        with Client(TLS_SERVER.address, timeout_s=20,
                    root_cert_path=cert("a_ca.pem")) as client:
            self.assertEqual(client.health(), "SERVING")
            self.assertAnswersBrackets(client)

    def test_tls_without_trusting_the_servers_ca_fails(self):
        self.assertRefused(address=TLS_SERVER.address,
                           root_cert_path=cert("b_ca.pem"))

    def test_plaintext_client_on_the_tls_port_fails(self):
        self.assertRefused(address=TLS_SERVER.address)

    def test_server_name_checks_the_certificate_against_that_name(self):
        # The certificate names localhost, 127.0.0.1 and biserve.test.
        with Client(TLS_SERVER.address, timeout_s=20,
                    root_cert_path=cert("a_ca.pem"),
                    server_name="biserve.test") as client:
            self.assertEqual(client.health(), "SERVING")
        self.assertRefused(address=TLS_SERVER.address,
                           root_cert_path=cert("a_ca.pem"),
                           server_name="elsewhere.test")

    def test_mtls_with_a_client_certificate_from_the_ca(self):
        with Client(MTLS_SERVER.address, timeout_s=20,
                    root_cert_path=cert("a_ca.pem"),
                    client_cert_path=cert("a_client.pem"),
                    client_key_path=cert("a_client.key")) as client:
            self.assertEqual(client.health("brackets"), "SERVING")
            self.assertAnswersBrackets(client)

    def test_mtls_refuses_no_certificate_and_another_cas(self):
        self.assertRefused(root_cert_path=cert("a_ca.pem"))
        self.assertRefused(root_cert_path=cert("a_ca.pem"),
                           client_cert_path=cert("b_client.pem"),
                           client_key_path=cert("b_client.key"))

    def test_a_client_certificate_needs_its_key(self):
        with self.assertRaises(ValueError):
            Client(MTLS_SERVER.address, root_cert_path=cert("a_ca.pem"),
                   client_cert_path=cert("a_client.pem"))
        with self.assertRaises(OSError):
            Client(MTLS_SERVER.address, root_cert_path=cert("a_ca.pem"),
                   client_cert_path=cert("a_client.pem"),
                   client_key_path=cert("missing.key"))


if __name__ == "__main__":
    unittest.main()
