#!/usr/bin/python3
"""The Python client (client/python/biserve_client) against a real
biserve_server on a loopback port, checked against biserve_eval.

Run by CTest (python_client_test), which sets:
  BISERVE_SOURCE_DIR   the repository
  BISERVE_SERVER       build/bin/biserve_server (else $BISERVE_BIN_DIR/...)
  BISERVE_EVAL         build/bin/biserve_eval
  BISERVE_PYTHON_PATH  build/python: the generated stubs and biserve_client
  BISERVE_TEST_TMPDIR  where server logs and model repositories go
By hand, from the repository after scripts/build.sh:
  /usr/bin/python3 tests/client/python_client_test.py
"""

import json
import os
import random
import shutil
import subprocess
import sys
import unittest

from biserve_test_server import (BRACKETS_MODEL, EVAL, EXAMPLE_MODEL,
                                 PYTHON_PATH, SERVER, SOURCE_DIR,
                                 ServerProcess, encode, require_built,
                                 temp_root)

EXAMPLE = os.path.join(SOURCE_DIR, "client", "python", "example.py")

sys.path.insert(0, PYTHON_PATH)
import biserve_client  # noqa: E402
from biserve_client import BiserveError, Client  # noqa: E402

# Values are float32 through both paths; the server may evaluate a sequence
# in a different batch than biserve_eval does.
TOLERANCE = 1e-5


def run_eval(model_path, input_json, outputs="merged", states=False):
    args = [EVAL, "--model", model_path, "--outputs", outputs]
    if states:
        args.append("--states")
    done = subprocess.run(args, input=json.dumps(input_json), text=True,
                          capture_output=True, timeout=120)
    if done.returncode != 0:
        raise AssertionError("biserve_eval failed (%d): %s"
                             % (done.returncode, done.stderr))
    return json.loads(done.stdout)["results"]


def random_features(rng, steps, width=8):
    return [[rng.uniform(-1, 1) for _ in range(width)] for _ in range(steps)]


ROOT = None
SERVER_PROCESS = None


def setUpModule():
    global ROOT, SERVER_PROCESS
    require_built(SERVER, EVAL)
    ROOT = temp_root("python_client_test_")
    SERVER_PROCESS = ServerProcess.in_private_repository(ROOT)


def tearDownModule():
    SERVER_PROCESS.stop_cleanly()
    shutil.rmtree(ROOT, ignore_errors=True)


class ClientTestCase(unittest.TestCase):
    maxDiff = 4000

    def setUp(self):
        self.client = Client(SERVER_PROCESS.address, timeout_s=60)

    def tearDown(self):
        self.client.close()

    def assertNestedClose(self, actual, expected, path="value"):
        if isinstance(expected, list):
            self.assertIsInstance(actual, list, path)
            self.assertEqual(len(actual), len(expected), path)
            for i, (a, e) in enumerate(zip(actual, expected)):
                self.assertNestedClose(a, e, "%s[%d]" % (path, i))
        else:
            self.assertIsInstance(actual, float, path)
            self.assertLessEqual(abs(actual - expected), TOLERANCE,
                                 "%s: %r vs %r" % (path, actual, expected))

    def assertShape(self, nested, shape, path="value"):
        self.assertIsInstance(nested, list, path)
        self.assertEqual(len(nested), shape[0], path)
        for i, inner in enumerate(nested):
            if len(shape) > 1:
                self.assertShape(inner, shape[1:], "%s[%d]" % (path, i))
            else:
                self.assertIsInstance(inner, float, "%s[%d]" % (path, i))


class PredictTest(ClientTestCase):

    def test_example_merged_output_matches_biserve_eval(self):
        rng = random.Random(1)
        sequences = [random_features(rng, n) for n in (7, 1, 12)]
        result = self.client.predict("example", sequences)
        self.assertEqual(result.model_name, "example")
        self.assertEqual(result.model_version, 1)
        self.assertEqual(len(result.sequences), 3)
        expected = run_eval(EXAMPLE_MODEL, {"sequences": sequences})
        for i, (got, want) in enumerate(zip(result.sequences, expected)):
            # Bidirectional(LSTM 16, concat) -> Dense(4, softmax).
            self.assertShape(got.output, [len(sequences[i]), 4])
            self.assertIsNone(got.forward)
            self.assertIsNone(got.backward)
            self.assertEqual(got.states, [])
            self.assertNestedClose(got.output, want["output"],
                                   "sequences[%d].output" % i)
            for step in got.output:  # softmax rows
                self.assertAlmostEqual(sum(step), 1.0, places=5)

    def test_directions_only(self):
        rng = random.Random(2)
        sequences = [random_features(rng, 5), random_features(rng, 3)]
        result = self.client.predict("example", sequences,
                                     outputs="directions")
        expected = run_eval(EXAMPLE_MODEL, {"sequences": sequences},
                            outputs="directions")
        for i, (got, want) in enumerate(zip(result.sequences, expected)):
            self.assertIsNone(got.output)
            self.assertShape(got.forward, [len(sequences[i]), 16])
            self.assertShape(got.backward, [len(sequences[i]), 16])
            self.assertNestedClose(got.forward, want["forward"])
            self.assertNestedClose(got.backward, want["backward"])

    def test_both_outputs_and_states_match_biserve_eval(self):
        rng = random.Random(3)
        sequences = [random_features(rng, 9), random_features(rng, 4)]
        result = self.client.predict("example", sequences, outputs="both",
                                     states=True)
        expected = run_eval(EXAMPLE_MODEL, {"sequences": sequences},
                            outputs="both", states=True)
        for i, (got, want) in enumerate(zip(result.sequences, expected)):
            self.assertShape(got.output, [len(sequences[i]), 4])
            self.assertShape(got.forward, [len(sequences[i]), 16])
            self.assertShape(got.backward, [len(sequences[i]), 16])
            self.assertNestedClose(got.output, want["output"])
            self.assertNestedClose(got.forward, want["forward"])
            self.assertNestedClose(got.backward, want["backward"])
            # One Bidirectional LSTM layer: forward h, c, backward h, c.
            self.assertEqual(len(got.states), 1)
            self.assertEqual(got.states[0].layer, "bidirectional")
            self.assertEqual(len(got.states[0].states), 4)
            for state in got.states[0].states:
                self.assertShape(state, [16])
            self.assertNestedClose(got.states[0].states, want["states"])
            # The forward h state is the forward output's last step, the
            # backward h its first (backward outputs are aligned with time).
            self.assertNestedClose(got.states[0].states[0], got.forward[-1])
            self.assertNestedClose(got.states[0].states[2], got.backward[0])

    def test_initial_state_matches_biserve_eval(self):
        rng = random.Random(4)
        features = random_features(rng, 6)
        state = [[rng.uniform(-0.5, 0.5) for _ in range(16)]
                 for _ in range(4)]
        result = self.client.predict(
            "example", [{"features": features, "initial_state": state},
                        features], outputs="both")
        expected = run_eval(
            EXAMPLE_MODEL,
            {"sequences": [features, features],
             "initial_state": [state, []]}, outputs="both")
        self.assertNestedClose(result.sequences[0].output,
                               expected[0]["output"])
        self.assertNestedClose(result.sequences[0].forward,
                               expected[0]["forward"])
        self.assertNestedClose(result.sequences[1].output,
                               expected[1]["output"])
        # The state made a difference.
        self.assertGreater(
            abs(result.sequences[0].forward[0][0]
                - result.sequences[1].forward[0][0]), 1e-6)

    def test_brackets(self):
        texts = ["call(foo bar) now", "x(yz", "ab(cd)ef(gh"]
        result = self.client.predict("brackets",
                                     [encode(t) for t in texts])
        self.assertEqual(result.model_name, "brackets")
        marks = []
        for text, sequence in zip(texts, result.sequences):
            self.assertShape(sequence.output, [len(text), 1])
            marks.append("".join("^" if p[0] > 0.5 else " "
                                 for p in sequence.output))
        self.assertEqual(marks[0], "     ^^^^^^^     ")
        self.assertEqual(marks[1], "    ")
        self.assertEqual(marks[2], "   ^^      ")
        # Values from models/brackets/README.md (biserve column).
        self.assertAlmostEqual(result.sequences[0].output[5][0], 0.9958712,
                               places=5)
        self.assertAlmostEqual(result.sequences[0].output[12][0], 0.00070748,
                               places=6)
        expected = run_eval(BRACKETS_MODEL,
                            {"sequences": [encode(t) for t in texts]})
        for got, want in zip(result.sequences, expected):
            self.assertNestedClose(got.output, want["output"])

    def test_token_ids_as_dict_and_explicit_version_and_request_id(self):
        ids = encode("(ab)")
        result = self.client.predict("brackets", [{"token_ids": ids}],
                                     version=1, request_id="abc-1")
        self.assertEqual(result.model_version, 1)
        self.assertEqual(result.request_id, "abc-1")
        plain = self.client.predict("brackets", [ids])
        self.assertEqual(result.sequences[0].output,
                         plain.sequences[0].output)
        as_dict = result.to_dict()
        self.assertEqual(as_dict["model_version"], 1)
        self.assertEqual(as_dict["sequences"][0]["output"],
                         result.sequences[0].output)

    def test_large_response_needs_no_receive_limit(self):
        # ~4.3 MB of output: over gRPC's default 4 MB receive limit.
        steps = 30000
        rng = random.Random(5)
        row = [rng.uniform(-1, 1) for _ in range(8)]
        result = self.client.predict("example", [[row] * steps],
                                     outputs="both")
        self.assertEqual(len(result.sequences[0].output), steps)
        self.assertEqual(len(result.sequences[0].forward), steps)
        with Client(SERVER_PROCESS.address,
                    max_message_bytes=1 << 20) as small:
            with self.assertRaises(BiserveError) as caught:
                small.predict("example", [[row] * steps], outputs="both")
            self.assertEqual(caught.exception.code, "RESOURCE_EXHAUSTED")


class StreamTest(ClientTestCase):

    def test_several_requests_answered_by_id(self):
        texts = {"r%d" % i: "a(%s)b" % ("x" * i) for i in range(1, 9)}
        requests = [{"model": "brackets", "sequences": [encode(t)],
                     "request_id": rid} for rid, t in texts.items()]
        # A request that fails is answered with its error; the stream goes on.
        requests.insert(3, {"model": "no_such_model", "sequences": [[1]],
                            "request_id": "bad"})
        # And a PredictRequest message is accepted as it is.
        requests.append(biserve_client.build_request(
            "example", [[[0.5] * 8] * 3], outputs="directions",
            request_id="features"))
        answers = {}
        for answer in self.client.predict_stream(iter(requests)):
            self.assertNotIn(answer.request_id, answers)
            answers[answer.request_id] = answer
        self.assertEqual(set(answers), set(texts) | {"bad", "features"})
        for rid, text in texts.items():
            answer = answers[rid]
            self.assertTrue(answer.ok, answer.error)
            self.assertEqual(answer.model_name, "brackets")
            self.assertEqual(answer.model_version, 1)
            marks = "".join("^" if p[0] > 0.5 else " "
                            for p in answer.sequences[0].output)
            self.assertEqual(marks, "  " + "^" * (len(text) - 4) + "  ")
        bad = answers["bad"]
        self.assertFalse(bad.ok)
        self.assertIsInstance(bad.error, BiserveError)
        self.assertEqual(bad.error.code, "NOT_FOUND")
        self.assertIn("no_such_model", bad.error.message)
        self.assertEqual(bad.sequences, [])
        self.assertIsNone(answers["features"].sequences[0].output)
        self.assertShape(answers["features"].sequences[0].forward, [3, 16])

    def test_a_generator_of_requests(self):
        def requests():
            for i in range(5):
                yield {"model": "brackets", "sequences": [encode("(a)")] * 2,
                       "request_id": str(i)}
        ids = sorted(a.request_id for a in self.client.predict_stream(
            requests()))
        self.assertEqual(ids, ["0", "1", "2", "3", "4"])

    def test_input_error_in_the_stream_is_raised(self):
        def requests():
            yield {"model": "brackets", "sequences": [[6, 4]],
                   "request_id": "good"}
            yield {"model": "brackets", "sequences": [[6.5]],
                   "request_id": "bad"}
        with self.assertRaises(biserve_client.InvalidInputError) as caught:
            list(self.client.predict_stream(requests()))
        self.assertIn("sequences[0]", caught.exception.message)

    def test_empty_stream(self):
        self.assertEqual(list(self.client.predict_stream([])), [])


class MetadataTest(ClientTestCase):

    def test_example_metadata(self):
        meta = self.client.metadata("example")
        self.assertEqual(meta["model_name"], "example")
        self.assertEqual(meta["model_version"], 1)
        self.assertEqual(meta["available_versions"], [1])
        inputs = {t["name"]: t for t in meta["inputs"]}
        self.assertEqual(inputs["features"]["shape"], [-1, 8])
        self.assertEqual(inputs["features"]["dtype"], "float32")
        self.assertEqual(inputs["initial_state/bidirectional/forward_h"]
                         ["shape"], [16])
        outputs = {t["name"]: t for t in meta["outputs"]}
        # The time axis is -1.
        self.assertEqual(outputs["output"]["shape"], [-1, 4])
        self.assertEqual(outputs["forward"]["shape"], [-1, 16])
        self.assertEqual(outputs["backward"]["shape"], [-1, 16])
        layers = meta["layers"]
        self.assertEqual([l["type"] for l in layers],
                         ["Bidirectional", "Dense"])
        self.assertEqual(layers[0]["cell"], "LSTM")
        self.assertEqual(layers[0]["units"], 16)
        self.assertEqual(layers[0]["merge_mode"], "concat")
        self.assertEqual(layers[0]["output_size"], 32)
        self.assertTrue(layers[0]["return_sequences"])
        self.assertIn("enabled", meta["batching"])
        self.assertGreater(meta["max_sequences_per_request"], 0)

    def test_brackets_metadata_with_version(self):
        meta = self.client.metadata("brackets", version=1)
        self.assertEqual(meta["model_version"], 1)
        inputs = {t["name"]: t for t in meta["inputs"]}
        self.assertEqual(inputs["token_ids"]["shape"], [-1])
        self.assertEqual(inputs["token_ids"]["dtype"], "int32")
        outputs = {t["name"]: t for t in meta["outputs"]}
        self.assertEqual(outputs["output"]["shape"], [-1, 1])
        self.assertEqual([l["type"] for l in meta["layers"]][:2],
                         ["Embedding", "Bidirectional"])

    def test_list_models(self):
        models = {m["name"]: m for m in self.client.list_models()}
        self.assertEqual(set(models), {"brackets", "example"})
        for model in models.values():
            self.assertEqual(model["config_error"], "")
            self.assertEqual(len(model["versions"]), 1)
            version = model["versions"][0]
            self.assertEqual(version["version"], 1)
            self.assertEqual(version["state"], "STATE_AVAILABLE")
            self.assertIsInstance(version["since_unix_ms"], int)
            self.assertGreater(version["since_unix_ms"], 0)

    def test_health(self):
        self.assertEqual(self.client.health(), "SERVING")
        self.assertEqual(self.client.health(""), "SERVING")
        self.assertEqual(self.client.health("example"), "SERVING")
        self.assertEqual(self.client.health("brackets"), "SERVING")
        with self.assertRaises(BiserveError) as caught:
            self.client.health("no_such_model")
        self.assertEqual(caught.exception.code, "NOT_FOUND")


class ErrorTest(ClientTestCase):

    def test_unknown_model_is_not_found(self):
        with self.assertRaises(BiserveError) as caught:
            self.client.predict("no_such_model", [[1, 2, 3]])
        error = caught.exception
        self.assertEqual(error.code, "NOT_FOUND")
        self.assertIn("no_such_model", error.message)
        self.assertTrue(str(error).startswith("NOT_FOUND: "))
        import grpc
        self.assertEqual(error.status, grpc.StatusCode.NOT_FOUND)

    def test_unknown_version_is_not_found(self):
        with self.assertRaises(BiserveError) as caught:
            self.client.predict("brackets", [[4, 5]], version=7)
        self.assertEqual(caught.exception.code, "NOT_FOUND")
        with self.assertRaises(BiserveError) as caught:
            self.client.metadata("example", version=7)
        self.assertEqual(caught.exception.code, "NOT_FOUND")

    def test_wrong_feature_shape_is_invalid_argument(self):
        with self.assertRaises(BiserveError) as caught:
            self.client.predict("example", [[[0.5] * 7] * 3])
        error = caught.exception
        self.assertEqual(error.code, "INVALID_ARGUMENT")
        self.assertIn("sequences[0].features", error.message)

    def test_token_ids_to_a_feature_model_is_invalid_argument(self):
        with self.assertRaises(BiserveError) as caught:
            self.client.predict("example", [[[0.5] * 8], [1, 2]])
        self.assertEqual(caught.exception.code, "INVALID_ARGUMENT")
        self.assertIn("sequences[1]", caught.exception.message)

    def test_token_id_out_of_vocabulary_is_invalid_argument(self):
        with self.assertRaises(BiserveError) as caught:
            self.client.predict("brackets", [[4, 5], [4, 30]])
        self.assertEqual(caught.exception.code, "INVALID_ARGUMENT")
        self.assertIn("sequences[1]", caught.exception.message)

    def test_input_the_client_cannot_encode(self):
        cases = [
            ("example", [[[0.5] * 8, [0.5] * 7]], "sequences[0].features[1]"),
            ("brackets", [[4, 5.5]], "sequences[0]"),
            ("brackets", [[1.5, 2.5]], "sequences[0]"),
            ("brackets", [{"token_id": [4]}], "sequences[0]"),
            ("brackets", [[4], "abc"], "sequences[1]"),
        ]
        for model, sequences, path in cases:
            with self.subTest(sequences=sequences):
                with self.assertRaises(biserve_client.InvalidInputError) as c:
                    self.client.predict(model, sequences)
                self.assertEqual(c.exception.code, "INVALID_ARGUMENT")
                self.assertIn(path, c.exception.message)
                self.assertIsInstance(c.exception, ValueError)
                self.assertIsInstance(c.exception, BiserveError)
        with self.assertRaises(ValueError):
            self.client.predict("brackets", [[4]], outputs="everything")

    def test_no_server_is_unavailable(self):
        # A port nothing listens on: the server we stopped would do, but any
        # closed port works; ask the kernel for one and close it.
        import socket
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        with Client("127.0.0.1:%d" % port, timeout_s=5) as client:
            with self.assertRaises(BiserveError) as caught:
                client.health()
        self.assertIn(caught.exception.code,
                      ("UNAVAILABLE", "DEADLINE_EXCEEDED"))

    def test_tls_channel_to_a_plaintext_server_fails(self):
        with Client(SERVER_PROCESS.address, timeout_s=5, tls=True) as client:
            with self.assertRaises(BiserveError) as caught:
                client.health()
        self.assertIn(caught.exception.code,
                      ("UNAVAILABLE", "DEADLINE_EXCEEDED"))


class ExampleScriptTest(unittest.TestCase):

    def run_example(self, *args):
        env = dict(os.environ)
        # As a user runs it: from the source tree, with no PYTHONPATH; the
        # library finds the stubs (here: this build's, whichever it is).
        env.pop("PYTHONPATH", None)
        env["BISERVE_PYTHON_STUBS"] = PYTHON_PATH
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        return subprocess.run(
            [sys.executable, EXAMPLE, "--server", SERVER_PROCESS.address]
            + list(args), capture_output=True, text=True, timeout=60,
            env=env, cwd=SOURCE_DIR)

    def test_default_string(self):
        done = self.run_example()
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(done.stdout, "call(foo bar) now\n     ^^^^^^^\n")

    def test_strings_from_the_command_line(self):
        done = self.run_example("ab(cd)ef(gh", "x(yz", "(a(b)c)")
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(done.stdout,
                         "ab(cd)ef(gh\n   ^^\nx(yz\n\n(a(b)c)\n   ^\n")

    def test_character_outside_the_vocabulary(self):
        done = self.run_example("Hello(World)")
        self.assertEqual(done.returncode, 2)
        self.assertIn("vocabulary", done.stderr)

    def test_server_down(self):
        import socket
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env = dict(os.environ, BISERVE_PYTHON_STUBS=PYTHON_PATH,
                   PYTHONDONTWRITEBYTECODE="1")
        done = subprocess.run(
            [sys.executable, EXAMPLE, "--server", "127.0.0.1:%d" % port,
             "--timeout", "5"], capture_output=True, text=True, timeout=60,
            env=env)
        self.assertEqual(done.returncode, 1)
        self.assertIn("UNAVAILABLE", done.stderr)


class ShutdownTest(unittest.TestCase):

    def test_sigterm_after_traffic_exits_zero(self):
        root = temp_root("python_client_test_")
        server = ServerProcess.in_private_repository(root)
        try:
            with Client(server.address) as client:
                self.assertEqual(client.health(), "SERVING")
                result = client.predict("brackets", [encode("(ab)")])
                self.assertEqual(len(result.sequences[0].output), 4)
            self.assertEqual(server.stop(), 0, server.log())
            self.assertIn("received SIGTERM", server.log())
        finally:
            server.kill()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    unittest.main(verbosity=2)
