#!/usr/bin/python3
"""model.onnx served straight from a model repository by a real
biserve_server on a loopback port, as a client of ONNX Runtime (or of Triton
serving the same .onnx) would call it.

The repository holds, each as <name>/1/model.onnx, PyTorch exports from
tests/onnx/fixtures/ (written by real PyTorch; every <case>.json holds the
graph's own input and output tensors and ONNX Runtime's answers), a corrupt
file, a refused graph (unidirectional), a folder with two model files, and
the bundled example model. Checked: ListModels shows every imported version
AVAILABLE and every refused one FAILED with its reason while the rest
serve; the Open Inference ModelMetadata lists the graph's own names; and
ModelInfer with the graph's own tensors answers the fixture's outputs within
its tolerance, with typed and with raw contents.

Run by CTest (onnx_server_test), which sets the environment
biserve_test_server.py (tests/client/) reads. By hand, after a build:
  /usr/bin/python3 tests/server/onnx_server_test.py
"""

import json
import os
import shutil
import struct
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "client"))
from biserve_test_server import (EXAMPLE_MODEL, PYTHON_PATH, SERVER,  # noqa
                                 SOURCE_DIR, ServerProcess, require_built,
                                 temp_root)

sys.path.insert(0, PYTHON_PATH)
import grpc  # noqa: E402
from biserve.v1 import inference_pb2 as bv1  # noqa: E402
from biserve.v1 import inference_pb2_grpc as bv1_grpc  # noqa: E402
from inference import grpc_predict_v2_pb2 as oip  # noqa: E402
from inference import grpc_predict_v2_pb2_grpc as oip_grpc  # noqa: E402

FIXTURES = os.path.join(SOURCE_DIR, "tests", "onnx", "fixtures")
# Served from the repository under their own names: time-major LSTM with
# h_n and c_n; packed GRU, batch-first, with a lengths input; an Embedding
# tagger (INT64 token ids) with lengths; initial states as graph inputs.
SERVED = ["lstm_basic", "gru_packed_batch_first", "tagger", "lstm_h0_c0"]
REFUSED = "refuse_unidirectional_lstm"
AVAILABLE = bv1.ModelVersionStatus.STATE_AVAILABLE
FAILED = bv1.ModelVersionStatus.STATE_FAILED

ROOT = None
SERVER_PROCESS = None
CHANNEL = None


def fixture(name):
    """The case's OnnxCase (tests/onnx/onnx_case.proto) as a dict, or None
    if it is not in tests/onnx/fixtures/."""
    path = os.path.join(FIXTURES, name + ".json")
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def served_cases():
    return {name: case for name in SERVED
            if (case := fixture(name)) is not None}


def make_repository(root):
    repo = os.path.join(root, "models")

    def put(model, source=None, file="model.onnx", data=None):
        folder = os.path.join(repo, model, "1")
        os.makedirs(folder, exist_ok=True)
        if source is not None:
            shutil.copy(source, os.path.join(folder, file))
        else:
            with open(os.path.join(folder, file), "wb") as f:
                f.write(data)

    for name in served_cases():
        put(name, os.path.join(FIXTURES, name + ".onnx"))
    put("bad", data=b"\x08\xff\xff truncated: not an ONNX ModelProto")
    if fixture(REFUSED) is not None:
        put("refused", os.path.join(FIXTURES, REFUSED + ".onnx"))
    put("two", EXAMPLE_MODEL, "model.pbtxt")
    put("two", data=b"\x08\x07")
    put("example", EXAMPLE_MODEL, "model.pbtxt")
    return repo


def setUpModule():
    global ROOT, SERVER_PROCESS, CHANNEL
    require_built(SERVER)
    ROOT = temp_root("onnx_server_test_")
    SERVER_PROCESS = ServerProcess(make_repository(ROOT),
                                   os.path.join(ROOT, "server.log"))
    CHANNEL = grpc.insecure_channel(SERVER_PROCESS.address)
    grpc.channel_ready_future(CHANNEL).result(timeout=30)


def tearDownModule():
    CHANNEL.close()
    SERVER_PROCESS.stop_cleanly()
    shutil.rmtree(ROOT, ignore_errors=True)


def values_of(t):
    return t.get("float_data", t.get("floatData",
                 t.get("int64_data", t.get("int64Data", []))))


def infer_request(model, tensors, raw):
    """A ModelInferRequest with the fixture's `tensors` (NamedTensor dicts),
    typed contents or raw_input_contents."""
    request = oip.ModelInferRequest(model_name=model)
    for t in tensors:
        entry = request.inputs.add(name=t["name"], datatype=t["datatype"],
                                   shape=[int(d) for d in t["shape"]])
        values = values_of(t)
        if t["datatype"] == "FP32":
            if raw:
                request.raw_input_contents.append(
                    struct.pack("<%df" % len(values), *values))
            else:
                entry.contents.fp32_contents.extend(values)
        else:
            ints = [int(v) for v in values]  # proto3 JSON writes int64 as text
            if raw:
                request.raw_input_contents.append(
                    struct.pack("<%dq" % len(ints), *ints))
            else:
                entry.contents.int64_contents.extend(ints)
    return request


def outputs_of(response):
    """{name: (shape, flat FP32 values)}."""
    raw = len(response.raw_output_contents) > 0
    result = {}
    for i, out in enumerate(response.outputs):
        if raw:
            data = response.raw_output_contents[i]
            values = list(struct.unpack("<%df" % (len(data) // 4), data))
        else:
            values = list(out.contents.fp32_contents)
        result[out.name] = (list(out.shape), values)
    return result


class OnnxServerTest(unittest.TestCase):
    maxDiff = 4000

    @classmethod
    def setUpClass(cls):
        cls.oip = oip_grpc.GRPCInferenceServiceStub(CHANNEL)
        cls.biserve = bv1_grpc.InferenceServiceStub(CHANNEL)
        statuses = cls.biserve.ListModels(bv1.ListModelsRequest(), timeout=30)
        cls.status = {m.name: m for m in statuses.models}

    def version(self, model):
        self.assertIn(model, self.status, "not listed; the server's log:\n"
                      + SERVER_PROCESS.log())
        versions = self.status[model].versions
        self.assertEqual(len(versions), 1)
        return versions[0]

    def test_fixtures_are_there(self):
        missing = [n for n in SERVED + [REFUSED] if fixture(n) is None]
        self.assertEqual(missing, [], "run tests/onnx/generate.py")

    def test_imported_versions_are_available(self):
        for name in served_cases():
            with self.subTest(model=name):
                v = self.version(name)
                self.assertEqual(v.state, AVAILABLE, v.reason)

    def test_corrupt_file_fails_with_its_reason_and_others_serve(self):
        v = self.version("bad")
        self.assertEqual(v.state, FAILED)
        # Relative to the repository: the client never sees server paths.
        self.assertTrue(v.reason.startswith("bad/1/model.onnx"), v.reason)
        self.assertEqual(self.version("example").state, AVAILABLE)
        ready = self.oip.ModelReady(oip.ModelReadyRequest(name="example"),
                                    timeout=30)
        self.assertTrue(ready.ready)
        try:
            bad = self.oip.ModelReady(oip.ModelReadyRequest(name="bad"),
                                      timeout=30).ready
        except grpc.RpcError:
            bad = False
        self.assertFalse(bad)

    def test_refused_graph_names_the_node_and_the_reason(self):
        case = fixture(REFUSED)
        if case is None:
            self.skipTest("no %s fixture" % REFUSED)
        v = self.version("refused")
        self.assertEqual(v.state, FAILED)
        for part in case.get("expected_error", []):
            self.assertIn(part, v.reason)

    def test_two_model_files_are_refused_naming_both(self):
        v = self.version("two")
        self.assertEqual(v.state, FAILED)
        self.assertIn("model.pbtxt", v.reason)
        self.assertIn("model.onnx", v.reason)
        self.assertIn("more than one model file", v.reason)

    def test_metadata_lists_the_graphs_own_names(self):
        for name, case in served_cases().items():
            with self.subTest(model=name):
                meta = self.oip.ModelMetadata(
                    oip.ModelMetadataRequest(name=name), timeout=30)
                inputs = {t.name: t for t in meta.inputs}
                for t in case["batch"]["inputs"]:
                    self.assertIn(t["name"], inputs)
                    self.assertEqual(inputs[t["name"]].datatype,
                                     t["datatype"])
                    self.assertEqual(len(inputs[t["name"]].shape),
                                     len(t["shape"]))
                outputs = {t.name: t for t in meta.outputs}
                for t in case["batch"]["outputs"]:
                    self.assertIn(t["name"], outputs)
                    self.assertEqual(len(outputs[t["name"]].shape),
                                     len(t["shape"]))

    def test_infer_in_the_graphs_names_gives_onnx_runtimes_answers(self):
        for name, case in served_cases().items():
            for raw in (False, True):
                with self.subTest(model=name, raw=raw):
                    self.check_infer(name, case, raw)

    def check_infer(self, name, case, raw):
        request = infer_request(name, case["batch"]["inputs"], raw)
        response = self.oip.ModelInfer(request, timeout=60)
        got = outputs_of(response)
        tolerance = case.get("tolerance", 1e-5)
        for t in case["batch"]["outputs"]:
            self.assertIn(t["name"], got)
            shape, values = got[t["name"]]
            self.assertEqual(shape, [int(d) for d in t["shape"]], t["name"])
            expected = values_of(t)
            self.assertEqual(len(values), len(expected), t["name"])
            worst = max((abs(a - b) for a, b in zip(values, expected)),
                        default=0.0)
            self.assertLessEqual(worst, tolerance,
                                 "%s: max abs difference %g" % (t["name"],
                                                                worst))


if __name__ == "__main__":
    unittest.main(verbosity=2)
