#!/usr/bin/python3
"""An independent Open Inference Protocol (KServe v2) client against a real
biserve_server on a loopback port.

The client is nothing but the stubs generated from
proto/inference/grpc_predict_v2.proto (package `inference`): no biserve
library code. Every RPC of inference.GRPCInferenceService is driven, and every
ModelInfer result is compared element-wise with biserve's own service
(biserve.v1.InferenceService/Predict) on the same server, for the same
sequences.

Run by CTest (open_inference_test), which sets:
  BISERVE_SOURCE_DIR   the repository
  BISERVE_SERVER       build/bin/biserve_server (else $BISERVE_BIN_DIR/...)
  BISERVE_PYTHON_PATH  build/python: the generated stubs
  BISERVE_TEST_TMPDIR  where the server's log and model repository go
By hand, from the repository after a build:
  /usr/bin/python3 tests/client/open_inference_test.py
"""

import os
import random
import re
import shutil
import struct
import sys
import unittest

from biserve_test_server import (PYTHON_PATH, SERVER, SOURCE_DIR,
                                 ServerProcess, encode, require_built,
                                 temp_root)

sys.path.insert(0, PYTHON_PATH)
import grpc  # noqa: E402
from inference import grpc_predict_v2_pb2 as oip  # noqa: E402
from inference import grpc_predict_v2_pb2_grpc as oip_grpc  # noqa: E402
from biserve.v1 import inference_pb2 as bv1  # noqa: E402
from biserve.v1 import inference_pb2_grpc as bv1_grpc  # noqa: E402

# Both services run the same computation; only batching may differ.
TOLERANCE = 1e-6
# models/example: Bidirectional(LSTM 16, concat) -> Dense(4, softmax).
INPUT_DIM = 8
UNITS = 16
EXAMPLE_OUT = 4
LAYER = "bidirectional"
STATE_NAMES = ["forward_h", "forward_c", "backward_h", "backward_c"]


def f32(x):
    """x rounded to float32 (what travels on the wire)."""
    return struct.unpack("<f", struct.pack("<f", x))[0]


def pack(fmt, values):
    return struct.pack("<%d%s" % (len(values), fmt), *values)


def unpack_f32(raw):
    if len(raw) % 4:
        raise AssertionError("raw FP32 contents of %d bytes" % len(raw))
    return list(struct.unpack("<%df" % (len(raw) // 4), raw))


def random_features(rng, steps, width=INPUT_DIM):
    return [[f32(rng.uniform(-1, 1)) for _ in range(width)]
            for _ in range(steps)]


def flatten(nested):
    if isinstance(nested, (list, tuple)):
        out = []
        for item in nested:
            out.extend(flatten(item))
        return out
    return [nested]


def pad_features(sequences, steps, fill=0.0):
    """[B][len][D] -> flat [B, steps, D], padded with `fill`."""
    flat = []
    for seq in sequences:
        flat.extend(flatten(seq))
        flat.extend([fill] * ((steps - len(seq)) * INPUT_DIM))
    return flat


def pad_ids(sequences, steps, fill=1):
    flat = []
    for seq in sequences:
        flat.extend(seq)
        flat.extend([fill] * (steps - len(seq)))
    return flat


# ---------------------------------------------------------------------------
# The server (biserve_test_server.py) and a channel to it.


ROOT = None
SERVER_PROCESS = None
CHANNEL = None


def setUpModule():
    global ROOT, SERVER_PROCESS, CHANNEL
    require_built(SERVER)
    ROOT = temp_root("open_inference_test_")
    SERVER_PROCESS = ServerProcess.in_private_repository(ROOT)
    CHANNEL = grpc.insecure_channel(
        SERVER_PROCESS.address,
        [("grpc.max_receive_message_length", -1),
         ("grpc.max_send_message_length", -1)])
    grpc.channel_ready_future(CHANNEL).result(timeout=30)


def tearDownModule():
    CHANNEL.close()
    SERVER_PROCESS.stop_cleanly()
    shutil.rmtree(ROOT, ignore_errors=True)


# ---------------------------------------------------------------------------
# Building requests and reading responses.


def tensor(name, datatype, shape, values=None):
    """An InferInputTensor; `values` go to the datatype's typed field."""
    t = oip.ModelInferRequest.InferInputTensor(
        name=name, datatype=datatype, shape=shape)
    if values is not None:
        field = {"FP32": "fp32_contents", "INT32": "int_contents",
                 "INT64": "int64_contents", "FP64": "fp64_contents",
                 "BOOL": "bool_contents", "UINT32": "uint_contents"}[datatype]
        getattr(t.contents, field).extend(values)
    return t


def raw_bytes(datatype, values):
    fmt = {"FP32": "f", "INT32": "i", "INT64": "q"}[datatype]
    return pack(fmt, values)


def infer_request(model, inputs, outputs=(), raw=False, version="",
                  request_id="", raw_output=None):
    """inputs: [(name, datatype, shape, flat values)]. raw: the values go to
    raw_input_contents instead of typed contents."""
    request = oip.ModelInferRequest(model_name=model, model_version=version,
                                    id=request_id)
    for name, datatype, shape, values in inputs:
        if raw:
            request.inputs.append(tensor(name, datatype, shape))
            request.raw_input_contents.append(raw_bytes(datatype, values))
        else:
            request.inputs.append(tensor(name, datatype, shape, values))
    for name in outputs:
        request.outputs.add(name=name)
    if raw_output is not None:
        request.parameters["raw_output"].bool_param = raw_output
    return request


class Output:
    """One output tensor: name, datatype, shape, flat values, raw or not."""

    def __init__(self, name, datatype, shape, values, raw):
        self.name, self.datatype, self.shape = name, datatype, shape
        self.values, self.raw = values, raw

    def at(self, *index):
        """The element at index (as many indices as dimensions)."""
        flat = 0
        for i, dim in zip(index, self.shape):
            flat = flat * dim + i
        return self.values[flat]

    def row(self, b, t=None):
        """[b, t, :] of a [B, T, D] tensor, or [b, :] of a [B, D] one."""
        width = self.shape[-1]
        if t is None:
            start = b * width
        else:
            start = (b * self.shape[1] + t) * width
        return self.values[start:start + width]


def read_outputs(response):
    """{name: Output}, from raw_output_contents or typed contents; raw is all
    or nothing."""
    raw = len(response.raw_output_contents) > 0
    if raw and len(response.raw_output_contents) != len(response.outputs):
        raise AssertionError("%d raw_output_contents for %d outputs"
                             % (len(response.raw_output_contents),
                                len(response.outputs)))
    result = {}
    for i, out in enumerate(response.outputs):
        if raw:
            if out.HasField("contents"):
                raise AssertionError("output %s has both raw and typed "
                                     "contents" % out.name)
            values = unpack_f32(response.raw_output_contents[i])
        else:
            values = list(out.contents.fp32_contents)
        count = 1
        for dim in out.shape:
            count *= dim
        if count != len(values):
            raise AssertionError("output %s: shape %s but %d values"
                                 % (out.name, list(out.shape), len(values)))
        result[out.name] = Output(out.name, out.datatype, list(out.shape),
                                  values, raw)
    return result


# ---------------------------------------------------------------------------
# The reference: biserve's own Predict.


class Reference:
    """One sequence's results from biserve.v1 Predict, flat lists."""

    def __init__(self, sequence_output, length):
        self.length = length
        self.output = list(sequence_output.output.values)
        self.output_shape = list(sequence_output.output.shape)
        self.forward = list(sequence_output.forward.values)
        self.backward = list(sequence_output.backward.values)
        # {"state/<layer>/<name>": values}
        self.states = {}
        for layer in sequence_output.states:
            for name, state in zip(STATE_NAMES, layer.states):
                self.states["state/%s/%s" % (layer.layer, name)] = list(
                    state.values)


class OpenInferenceTestCase(unittest.TestCase):
    maxDiff = 4000

    @classmethod
    def setUpClass(cls):
        cls.stub = oip_grpc.GRPCInferenceServiceStub(CHANNEL)
        cls.biserve = bv1_grpc.InferenceServiceStub(CHANNEL)

    def infer(self, request):
        return self.stub.ModelInfer(request, timeout=60)

    def predict(self, model, sequences, initial_states=None):
        """Predict with every output and every state; one Reference per
        sequence. sequences: nested feature lists or token-id lists."""
        request = bv1.PredictRequest(
            model_name=model, outputs=bv1.OUTPUT_SELECTION_BOTH,
            return_states=True)
        for i, seq in enumerate(sequences):
            s = request.sequences.add()
            if model == "brackets":
                s.token_ids.extend(seq)
            else:
                s.features.extend(flatten(seq))
            if initial_states is not None:
                for state in initial_states[i]:
                    s.initial_state.add(shape=[len(state)], values=state)
        response = self.biserve.Predict(request, timeout=60)
        self.assertEqual(len(response.sequences), len(sequences))
        return [Reference(out, len(seq))
                for out, seq in zip(response.sequences, sequences)]

    def assertClose(self, actual, expected, what):
        self.assertEqual(len(actual), len(expected),
                         "%s: %d values, expected %d"
                         % (what, len(actual), len(expected)))
        for i, (a, e) in enumerate(zip(actual, expected)):
            if abs(a - e) > TOLERANCE:
                self.fail("%s[%d]: %r vs %r (expected)" % (what, i, a, e))

    def assertSequenceOutput(self, out, b, reference, width, what):
        """out is [B, T, width]: row b equals reference's [length, width]
        values for t < length, and is exactly 0 after."""
        steps = out.shape[1]
        got = out.values[b * steps * width:(b + 1) * steps * width]
        valid = reference.length * width
        self.assertClose(got[:valid], what_values(reference, out.name),
                         "%s[%d] (valid steps)" % (what, b))
        for i, v in enumerate(got[valid:]):
            # Padding is never computed: exactly zero, not just small.
            if v != 0.0:
                self.fail("%s[%d]: step %d (past length %d) is %r, not 0"
                          % (what, b, reference.length + i // width,
                             reference.length, v))

    def assertMatchesReference(self, outputs, references, what=""):
        """Every output in `outputs` against the references, sequence by
        sequence."""
        batch = len(references)
        for name, out in outputs.items():
            self.assertEqual(out.datatype, "FP32", name)
            self.assertEqual(out.shape[0], batch, name)
            if name.startswith("state/"):
                self.assertEqual(out.shape, [batch, UNITS], name)
                for b, ref in enumerate(references):
                    self.assertClose(out.row(b), ref.states[name],
                                     "%s%s[%d]" % (what, name, b))
            else:
                self.assertEqual(len(out.shape), 3, name)
                for b, ref in enumerate(references):
                    self.assertSequenceOutput(out, b, ref, out.shape[2],
                                              what + name)

    def assertStatus(self, code, call, *fragments):
        with self.assertRaises(grpc.RpcError) as caught:
            call()
        error = caught.exception
        self.assertEqual(error.code(), code, error.details())
        for fragment in fragments:
            self.assertIn(fragment, error.details())
        return error.details()


def what_values(reference, name):
    if name == "output":
        return reference.output
    if name == "forward":
        return reference.forward
    if name == "backward":
        return reference.backward
    return reference.states[name]


# ---------------------------------------------------------------------------
# Health and metadata.


class HealthTest(OpenInferenceTestCase):

    def test_server_live(self):
        response = self.stub.ServerLive(oip.ServerLiveRequest(), timeout=10)
        self.assertTrue(response.live)

    def test_server_ready(self):
        response = self.stub.ServerReady(oip.ServerReadyRequest(), timeout=10)
        self.assertTrue(response.ready)

    def test_model_ready(self):
        cases = [
            ("example", "", True),
            ("brackets", "", True),
            ("example", "1", True),
            ("brackets", "1", True),
            ("example", "9", False),   # no such version
            ("no_such_model", "", False),
            ("no_such_model", "1", False),
            ("", "", False),
        ]
        for name, version, ready in cases:
            with self.subTest(name=name, version=version):
                response = self.stub.ModelReady(
                    oip.ModelReadyRequest(name=name, version=version),
                    timeout=10)
                self.assertEqual(response.ready, ready)

    def test_model_ready_bad_version_is_invalid_argument(self):
        for version in ("abc", "0", "-1", "1.0", "latest"):
            with self.subTest(version=version):
                self.assertStatus(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    lambda: self.stub.ModelReady(
                        oip.ModelReadyRequest(name="example",
                                              version=version), timeout=10),
                    "model_version")


class MetadataTest(OpenInferenceTestCase):

    def test_server_metadata(self):
        response = self.stub.ServerMetadata(oip.ServerMetadataRequest(),
                                            timeout=10)
        self.assertEqual(response.name, "biserve")
        # The project's version (CMakeLists.txt: project(biserve VERSION x)).
        with open(os.path.join(SOURCE_DIR, "CMakeLists.txt")) as f:
            project = re.search(r"project\(biserve\s+VERSION\s+([0-9.]+)",
                                f.read())
        self.assertIsNotNone(project)
        self.assertEqual(response.version, project.group(1))
        self.assertIn("binary_tensor_data", response.extensions)
        self.assertEqual(len(set(response.extensions)),
                         len(response.extensions))

    def specs(self, tensors):
        return {t.name: (t.datatype, list(t.shape)) for t in tensors}

    def test_example_metadata(self):
        response = self.stub.ModelMetadata(
            oip.ModelMetadataRequest(name="example"), timeout=10)
        self.assertEqual(response.name, "example")
        self.assertEqual(list(response.versions), ["1"])
        self.assertEqual(response.platform, "biserve")
        inputs = self.specs(response.inputs)
        # The time axis (and the batch) are -1.
        self.assertEqual(inputs["features"], ("FP32", [-1, -1, INPUT_DIM]))
        self.assertEqual(inputs["lengths"][1], [-1])
        self.assertIn(inputs["lengths"][0], ("INT32", "INT64"))
        for state in STATE_NAMES:
            self.assertEqual(inputs["initial_state/%s/%s" % (LAYER, state)],
                             ("FP32", [-1, UNITS]))
        self.assertEqual(len(inputs), 2 + len(STATE_NAMES))
        self.assertEqual(response.inputs[0].name, "features")
        outputs = self.specs(response.outputs)
        self.assertEqual(response.outputs[0].name, "output")
        self.assertEqual(outputs["output"], ("FP32", [-1, -1, EXAMPLE_OUT]))
        self.assertEqual(outputs["forward"], ("FP32", [-1, -1, UNITS]))
        self.assertEqual(outputs["backward"], ("FP32", [-1, -1, UNITS]))
        for state in STATE_NAMES:
            self.assertEqual(outputs["state/%s/%s" % (LAYER, state)],
                             ("FP32", [-1, UNITS]))
        self.assertEqual(len(outputs), 3 + len(STATE_NAMES))

    def test_example_metadata_agrees_with_biserve_metadata(self):
        open_meta = self.stub.ModelMetadata(
            oip.ModelMetadataRequest(name="example", version="1"), timeout=10)
        own = self.biserve.GetModelMetadata(
            bv1.GetModelMetadataRequest(model_name="example"), timeout=10)
        self.assertEqual([str(v) for v in own.available_versions],
                         list(open_meta.versions))
        # biserve's shapes are per sequence; the protocol's add the batch.
        own_outputs = {t.name: list(t.shape) for t in own.outputs}
        for t in open_meta.outputs:
            self.assertIn(t.name, own_outputs)
            self.assertEqual([-1] + own_outputs[t.name], list(t.shape),
                             t.name)
        own_inputs = {t.name: list(t.shape) for t in own.inputs}
        for t in open_meta.inputs:
            if t.name == "lengths":
                continue
            self.assertEqual([-1] + own_inputs[t.name], list(t.shape),
                             t.name)

    def test_brackets_metadata_with_version(self):
        response = self.stub.ModelMetadata(
            oip.ModelMetadataRequest(name="brackets", version="1"),
            timeout=10)
        self.assertEqual(response.name, "brackets")
        self.assertEqual(list(response.versions), ["1"])
        inputs = self.specs(response.inputs)
        self.assertEqual(response.inputs[0].name, "token_ids")
        self.assertEqual(inputs["token_ids"][1], [-1, -1])
        self.assertIn(inputs["token_ids"][0], ("INT32", "INT64"))
        outputs = self.specs(response.outputs)
        self.assertEqual(outputs["output"], ("FP32", [-1, -1, 1]))
        self.assertEqual(outputs["forward"], ("FP32", [-1, -1, UNITS]))
        self.assertEqual(outputs["state/%s/forward_h" % LAYER][1],
                         [-1, UNITS])

    def test_unknown_model_is_not_found(self):
        self.assertStatus(
            grpc.StatusCode.NOT_FOUND,
            lambda: self.stub.ModelMetadata(
                oip.ModelMetadataRequest(name="no_such_model"), timeout=10),
            "no_such_model")

    def test_unknown_version_is_not_found(self):
        self.assertStatus(
            grpc.StatusCode.NOT_FOUND,
            lambda: self.stub.ModelMetadata(
                oip.ModelMetadataRequest(name="example", version="9"),
                timeout=10))

    def test_bad_version_is_invalid_argument(self):
        self.assertStatus(
            grpc.StatusCode.INVALID_ARGUMENT,
            lambda: self.stub.ModelMetadata(
                oip.ModelMetadataRequest(name="example", version="latest"),
                timeout=10),
            "latest")


# ---------------------------------------------------------------------------
# ModelInfer.


class FeatureInferTest(OpenInferenceTestCase):

    def test_typed_fp32_contents_default_output(self):
        rng = random.Random(1)
        sequences = [random_features(rng, 6) for _ in range(3)]
        response = self.infer(infer_request(
            "example",
            [("features", "FP32", [3, 6, INPUT_DIM], flatten(sequences))],
            request_id="typed-1"))
        self.assertEqual(response.model_name, "example")
        self.assertEqual(response.model_version, "1")
        self.assertEqual(response.id, "typed-1")
        # Typed in, typed out; the default output is `output` alone.
        self.assertEqual(len(response.raw_output_contents), 0)
        self.assertEqual([o.name for o in response.outputs], ["output"])
        outputs = read_outputs(response)
        out = outputs["output"]
        self.assertEqual(out.shape, [3, 6, EXAMPLE_OUT])
        self.assertEqual(out.datatype, "FP32")
        self.assertMatchesReference(outputs,
                                    self.predict("example", sequences))
        for b in range(3):  # softmax rows
            for t in range(6):
                self.assertAlmostEqual(sum(out.row(b, t)), 1.0, places=5)

    def test_raw_input_contents_give_raw_output_contents(self):
        rng = random.Random(2)
        sequences = [random_features(rng, 5) for _ in range(2)]
        request = infer_request(
            "example",
            [("features", "FP32", [2, 5, INPUT_DIM], flatten(sequences))],
            raw=True)
        self.assertFalse(request.inputs[0].HasField("contents"))
        response = self.infer(request)
        self.assertEqual(len(response.raw_output_contents), 1)
        self.assertFalse(response.outputs[0].HasField("contents"))
        outputs = read_outputs(response)
        self.assertTrue(outputs["output"].raw)
        self.assertEqual(outputs["output"].shape, [2, 5, EXAMPLE_OUT])
        self.assertMatchesReference(outputs,
                                    self.predict("example", sequences))
        # Identical to the typed answer.
        typed = read_outputs(self.infer(infer_request(
            "example",
            [("features", "FP32", [2, 5, INPUT_DIM], flatten(sequences))])))
        self.assertClose(outputs["output"].values, typed["output"].values,
                         "raw vs typed")

    def test_explicit_version(self):
        rng = random.Random(3)
        seq = random_features(rng, 4)
        response = self.infer(infer_request(
            "example", [("features", "FP32", [1, 4, INPUT_DIM],
                         flatten(seq))], version="1"))
        self.assertEqual(response.model_version, "1")
        self.assertMatchesReference(read_outputs(response),
                                    self.predict("example", [seq]))

    def test_ragged_batch_with_lengths(self):
        rng = random.Random(4)
        lengths = [7, 1, 4, 7]
        sequences = [random_features(rng, n) for n in lengths]
        steps = max(lengths)
        references = self.predict("example", sequences)
        names = ["output", "forward", "backward"] + [
            "state/%s/%s" % (LAYER, s) for s in STATE_NAMES]
        for datatype in ("INT32", "INT64"):
            for raw in (False, True):
                for fill in (0.0, 1e30):
                    what = "%s raw=%s fill=%r: " % (datatype, raw, fill)
                    with self.subTest(datatype=datatype, raw=raw, fill=fill):
                        # The padding's values must not matter: never
                        # computed.
                        response = self.infer(infer_request(
                            "example",
                            [("features", "FP32", [4, steps, INPUT_DIM],
                              pad_features(sequences, steps, fill)),
                             ("lengths", datatype, [4], lengths)],
                            outputs=names, raw=raw))
                        outputs = read_outputs(response)
                        self.assertEqual([o.name for o in response.outputs],
                                         names)
                        self.assertEqual(outputs["output"].shape,
                                         [4, steps, EXAMPLE_OUT])
                        self.assertEqual(outputs["forward"].shape,
                                         [4, steps, UNITS])
                        self.assertMatchesReference(outputs, references,
                                                    what)
        # Each valid part equals the sequence sent alone, unpadded.
        padded = read_outputs(self.infer(infer_request(
            "example",
            [("features", "FP32", [4, steps, INPUT_DIM],
              pad_features(sequences, steps)),
             ("lengths", "INT64", [4], lengths)],
            outputs=["output", "forward", "backward"])))
        for b, seq in enumerate(sequences):
            alone = read_outputs(self.infer(infer_request(
                "example",
                [("features", "FP32", [1, len(seq), INPUT_DIM],
                  flatten(seq))],
                outputs=["output", "forward", "backward"])))
            for name in ("output", "forward", "backward"):
                width = padded[name].shape[2]
                start = b * steps * width
                self.assertClose(
                    padded[name].values[start:start + len(seq) * width],
                    alone[name].values, "%s[%d] vs alone" % (name, b))

    def test_lengths_equal_to_time_is_the_same_as_no_lengths(self):
        rng = random.Random(5)
        sequences = [random_features(rng, 3) for _ in range(2)]
        without = read_outputs(self.infer(infer_request(
            "example",
            [("features", "FP32", [2, 3, INPUT_DIM], flatten(sequences))])))
        with_lengths = read_outputs(self.infer(infer_request(
            "example",
            [("lengths", "INT32", [2], [3, 3]),   # lengths first: any order
             ("features", "FP32", [2, 3, INPUT_DIM], flatten(sequences))])))
        self.assertClose(with_lengths["output"].values,
                         without["output"].values, "output")

    def test_output_selection(self):
        rng = random.Random(6)
        sequences = [random_features(rng, 5), random_features(rng, 5)]
        references = self.predict("example", sequences)
        features = [("features", "FP32", [2, 5, INPUT_DIM],
                     flatten(sequences))]
        state_names = ["state/%s/%s" % (LAYER, s) for s in STATE_NAMES]
        cases = [
            [],  # the default: output
            ["output"],
            ["forward"],
            ["backward", "forward"],
            ["forward", "backward", "output"],
            ["state/%s/forward_h" % LAYER],
            ["state/%s/backward_c" % LAYER, "state/%s/forward_h" % LAYER],
            ["output"] + state_names,
            ["forward", "backward"] + state_names + ["output"],
        ]
        for names in cases:
            with self.subTest(outputs=names):
                response = self.infer(infer_request("example", features,
                                                    outputs=names))
                got = [o.name for o in response.outputs]
                # The requested ones, in the requested order.
                self.assertEqual(got, names or ["output"])
                self.assertMatchesReference(read_outputs(response),
                                            references)
        # States are consistent with the directions: forward h is the
        # forward output's last step, backward h the backward's first.
        outputs = read_outputs(self.infer(infer_request(
            "example", features,
            outputs=["forward", "backward"] + state_names)))
        for b in range(2):
            self.assertClose(outputs["state/%s/forward_h" % LAYER].row(b),
                             outputs["forward"].row(b, 4), "forward_h")
            self.assertClose(outputs["state/%s/backward_h" % LAYER].row(b),
                             outputs["backward"].row(b, 0), "backward_h")

    def test_states_of_a_ragged_batch_are_at_each_length(self):
        rng = random.Random(7)
        lengths = [2, 6, 3]
        sequences = [random_features(rng, n) for n in lengths]
        names = ["forward", "backward", "state/%s/forward_h" % LAYER,
                 "state/%s/backward_h" % LAYER]
        outputs = read_outputs(self.infer(infer_request(
            "example",
            [("features", "FP32", [3, 6, INPUT_DIM],
              pad_features(sequences, 6, 0.5)),
             ("lengths", "INT32", [3], lengths)], outputs=names)))
        self.assertMatchesReference(outputs,
                                    self.predict("example", sequences))
        for b, n in enumerate(lengths):
            self.assertClose(outputs[names[2]].row(b),
                             outputs["forward"].row(b, n - 1), "forward_h")
            self.assertClose(outputs[names[3]].row(b),
                             outputs["backward"].row(b, 0), "backward_h")

    def test_initial_states(self):
        rng = random.Random(8)
        lengths = [5, 3]
        sequences = [random_features(rng, n) for n in lengths]
        # states[b] = [forward_h, forward_c, backward_h, backward_c]
        states = [[[f32(rng.uniform(-0.5, 0.5)) for _ in range(UNITS)]
                   for _ in STATE_NAMES] for _ in sequences]
        references = self.predict("example", sequences, states)
        names = ["output", "forward", "backward"] + [
            "state/%s/%s" % (LAYER, s) for s in STATE_NAMES]
        inputs = [("features", "FP32", [2, 5, INPUT_DIM],
                   pad_features(sequences, 5)),
                  ("lengths", "INT64", [2], lengths)]
        # In any order: backward first.
        for k in reversed(range(len(STATE_NAMES))):
            inputs.append(("initial_state/%s/%s" % (LAYER, STATE_NAMES[k]),
                           "FP32", [2, UNITS],
                           states[0][k] + states[1][k]))
        for raw in (False, True):
            with self.subTest(raw=raw):
                outputs = read_outputs(self.infer(infer_request(
                    "example", inputs, outputs=names, raw=raw)))
                self.assertMatchesReference(outputs, references)
        # The states made a difference.
        plain = self.predict("example", sequences)
        self.assertGreater(abs(plain[0].forward[0] - references[0].forward[0]),
                           1e-6)

    def test_raw_output_parameter(self):
        rng = random.Random(9)
        seq = random_features(rng, 3)
        features = [("features", "FP32", [1, 3, INPUT_DIM], flatten(seq))]
        names = ["output", "state/%s/forward_c" % LAYER]
        references = self.predict("example", [seq])
        cases = [
            # (raw inputs, raw_output parameter, raw outputs expected)
            (False, True, True),
            (False, False, False),
            (True, False, False),
            (True, True, True),
        ]
        for raw_in, parameter, raw_out in cases:
            with self.subTest(raw_in=raw_in, raw_output=parameter):
                response = self.infer(infer_request(
                    "example", features, outputs=names, raw=raw_in,
                    raw_output=parameter))
                self.assertEqual(len(response.raw_output_contents),
                                 len(names) if raw_out else 0)
                for out in response.outputs:
                    self.assertEqual(out.HasField("contents"), not raw_out,
                                     out.name)
                outputs = read_outputs(response)
                self.assertMatchesReference(outputs, references)
                if raw_out:
                    # Little-endian float32: [1, 3, 4] and [1, 16].
                    self.assertEqual(len(response.raw_output_contents[0]),
                                     3 * EXAMPLE_OUT * 4)
                    self.assertEqual(len(response.raw_output_contents[1]),
                                     UNITS * 4)

    def test_concurrent_requests(self):
        # Several calls at once (they may be batched together): each gets its
        # own answer, equal to Predict's.
        rng = random.Random(10)
        batches = [[random_features(rng, n)] for n in (3, 9, 1, 6, 4, 8)]
        futures = [
            self.stub.ModelInfer.future(infer_request(
                "example",
                [("features", "FP32", [1, len(b[0]), INPUT_DIM],
                  flatten(b))], request_id="c%d" % i, raw=i % 2 == 1),
                timeout=60)
            for i, b in enumerate(batches)]
        for i, (future, batch) in enumerate(zip(futures, batches)):
            response = future.result()
            self.assertEqual(response.id, "c%d" % i)
            self.assertMatchesReference(read_outputs(response),
                                        self.predict("example", batch))


class TokenInferTest(OpenInferenceTestCase):

    TEXTS = ["call(foo bar) now", "x(yz", "ab(cd)ef(gh"]

    def test_token_ids_int64_and_int32(self):
        ids = [encode(t) for t in self.TEXTS]
        references = self.predict("brackets", ids)
        steps = max(len(t) for t in self.TEXTS)
        for datatype in ("INT64", "INT32"):
            for raw in (False, True):
                with self.subTest(datatype=datatype, raw=raw):
                    response = self.infer(infer_request(
                        "brackets",
                        [("token_ids", datatype, [3, steps],
                          pad_ids(ids, steps)),
                         ("lengths", datatype, [3],
                          [len(t) for t in self.TEXTS])],
                        raw=raw))
                    self.assertEqual(response.model_name, "brackets")
                    outputs = read_outputs(response)
                    self.assertEqual(outputs["output"].shape, [3, steps, 1])
                    self.assertEqual(outputs["output"].raw, raw)
                    self.assertMatchesReference(outputs, references)
                    marks = ["".join(
                        "^" if outputs["output"].at(b, t, 0) > 0.5 else " "
                        for t in range(len(text)))
                        for b, text in enumerate(self.TEXTS)]
                    self.assertEqual(marks, ["     ^^^^^^^     ", "    ",
                                             "   ^^      "])
                    # models/brackets/README.md (biserve column).
                    self.assertAlmostEqual(outputs["output"].at(0, 5, 0),
                                           0.9958712, places=5)

    def test_single_sequence_without_lengths(self):
        ids = encode("(ab)")
        for datatype in ("INT32", "INT64"):
            with self.subTest(datatype=datatype):
                outputs = read_outputs(self.infer(infer_request(
                    "brackets", [("token_ids", datatype, [1, 4], ids)],
                    outputs=["output", "forward", "backward",
                             "state/%s/backward_c" % LAYER])))
                self.assertEqual(outputs["output"].shape, [1, 4, 1])
                self.assertMatchesReference(outputs,
                                            self.predict("brackets", [ids]))

    def test_ragged_valid_part_equals_the_sequence_alone(self):
        ids = [encode(t) for t in ("a(b)c", "((", "x(y z)w(v)u")]
        steps = max(len(s) for s in ids)
        padded = read_outputs(self.infer(infer_request(
            "brackets",
            [("token_ids", "INT64", [3, steps], pad_ids(ids, steps, 2)),
             ("lengths", "INT32", [3], [len(s) for s in ids])],
            outputs=["output", "backward"])))
        for b, seq in enumerate(ids):
            alone = read_outputs(self.infer(infer_request(
                "brackets", [("token_ids", "INT32", [1, len(seq)], seq)],
                outputs=["output", "backward"])))
            for name in ("output", "backward"):
                width = padded[name].shape[2]
                row = padded[name].values[b * steps * width:
                                          (b + 1) * steps * width]
                self.assertClose(row[:len(seq) * width], alone[name].values,
                                 "%s[%d]" % (name, b))
                self.assertEqual(row[len(seq) * width:],
                                 [0.0] * ((steps - len(seq)) * width),
                                 "%s[%d] past its length" % (name, b))


# ---------------------------------------------------------------------------
# Errors.


class InferErrorTest(OpenInferenceTestCase):

    def features(self, batch=1, steps=3, dim=INPUT_DIM):
        return ("features", "FP32", [batch, steps, dim],
                [0.25] * (batch * steps * dim))

    def invalid(self, request, *fragments):
        return self.assertStatus(grpc.StatusCode.INVALID_ARGUMENT,
                                 lambda: self.infer(request), *fragments)

    def test_wrong_datatype(self):
        cases = [
            ("example", [("features", "FP64", [1, 2, 8], [0.5] * 16)],
             ["features", "FP32", "FP64"]),
            ("example", [("features", "INT32", [1, 2, 8], [1] * 16)],
             ["features", "FP32", "INT32"]),
            ("brackets", [("token_ids", "FP32", [1, 2], [4.0, 5.0])],
             ["token_ids", "INT32", "FP32"]),
            ("brackets", [("token_ids", "UINT32", [1, 2], [4, 5])],
             ["token_ids", "UINT32"]),
            ("example", [self.features(), ("lengths", "FP32", [1], [2.0])],
             ["lengths", "FP32"]),
            ("example",
             [self.features()] + [
                 ("initial_state/%s/%s" % (LAYER, s), "FP64", [1, UNITS],
                  [0.0] * UNITS) for s in STATE_NAMES],
             ["initial_state/%s/forward_h" % LAYER, "FP64"]),
        ]
        for model, inputs, fragments in cases:
            with self.subTest(model=model, inputs=[i[:3] for i in inputs]):
                self.invalid(infer_request(model, inputs), *fragments)

    def test_wrong_shape(self):
        cases = [
            ("example", [self.features(1, 3, 7)],
             ["'features'", "[batch, time, 8]", "[1, 3, 7]"]),
            ("example", [("features", "FP32", [3, 8], [0.5] * 24)],
             ["'features'", "[batch, time, 8]", "[3, 8]"]),
            ("example", [("features", "FP32", [1, 0, 8], [])],
             ["'features'", "[1, 0, 8]"]),
            ("brackets", [("token_ids", "INT64", [4], [4, 5, 6, 7])],
             ["'token_ids'", "[batch, time]", "[4]"]),
            ("brackets", [("token_ids", "INT64", [1, 2, 1], [4, 5])],
             ["'token_ids'", "[batch, time]", "[1, 2, 1]"]),
            ("example", [self.features(2), ("lengths", "INT32", [3],
                                            [1, 2, 3])],
             ["'lengths'", "[2]", "[3]"]),
            ("example", [self.features(2), ("lengths", "INT32", [2, 1],
                                            [1, 2])],
             ["'lengths'", "[2]", "[2, 1]"]),
            ("example",
             [self.features(2)] + [
                 ("initial_state/%s/%s" % (LAYER, s), "FP32",
                  [2, 15 if s == "backward_c" else UNITS],
                  [0.0] * (2 * (15 if s == "backward_c" else UNITS)))
                 for s in STATE_NAMES],
             ["initial_state/%s/backward_c" % LAYER, "[2, 16]", "[2, 15]"]),
        ]
        for model, inputs, fragments in cases:
            with self.subTest(model=model, inputs=[i[:3] for i in inputs]):
                self.invalid(infer_request(model, inputs), *fragments)

    def test_contents_count_does_not_match_shape(self):
        self.invalid(infer_request(
            "example", [("features", "FP32", [1, 3, 8], [0.5] * 23)]),
            "features", "24", "23")
        self.invalid(infer_request(
            "brackets", [("token_ids", "INT64", [2, 2], [4, 5, 6])]),
            "token_ids", "4", "3")
        # Values in the wrong typed field are missing values.
        request = infer_request(
            "brackets", [("token_ids", "INT64", [1, 2], None)])
        request.inputs[0].contents.int_contents.extend([4, 5])
        self.invalid(request, "token_ids", "2", "0")

    def test_unknown_input_name(self):
        self.invalid(infer_request(
            "example", [self.features(), ("mask", "INT32", [1, 3], [1] * 3)]),
            "'mask'", "features")
        self.invalid(infer_request(
            "brackets", [("features", "FP32", [1, 2, 8], [0.5] * 16)]),
            "'features'", "token_ids")
        self.invalid(infer_request(
            "example",
            [self.features()] + [
                ("initial_state/%s/%s" % (LAYER, s), "FP32", [1, UNITS],
                 [0.0] * UNITS) for s in STATE_NAMES] + [
                ("initial_state/other/forward_h", "FP32", [1, UNITS],
                 [0.0] * UNITS)]),
            "initial_state/other/forward_h")

    def test_missing_data_input(self):
        self.invalid(infer_request(
            "example", [("lengths", "INT32", [1], [1])]), "'features'")
        self.invalid(infer_request("brackets", []), "'token_ids'")

    def test_some_initial_states_but_not_all(self):
        self.invalid(infer_request(
            "example",
            [self.features(),
             ("initial_state/%s/forward_h" % LAYER, "FP32", [1, UNITS],
              [0.0] * UNITS)]),
            "initial_state/%s/forward_c" % LAYER)

    def test_shape_larger_than_the_request(self):
        # A few bytes claiming 2^64 elements (the product of dimensions wraps
        # to 0, which empty contents match), or a huge batch: both are
        # refused before anything is sized by the shape. The first used to
        # crash the server (SIGSEGV), the second to allocate 8 GB first.
        cases = [
            ("brackets", ("token_ids", "INT64", [4, 1 << 62], []), False),
            ("brackets", ("token_ids", "INT32", [4, 1 << 62], []), True),
            ("brackets", ("token_ids", "INT64", [1 << 30, 1], [4]), False),
            ("example", ("features", "FP32", [1, 1 << 61, 8], []), False),
            ("example", ("features", "FP32", [1 << 31, 1 << 31, 8], []),
             True),
        ]
        for model, data, raw in cases:
            with self.subTest(shape=data[2], raw=raw):
                self.invalid(infer_request(model, [data], raw=raw),
                             "'%s'" % data[0])
        self.invalid(infer_request(
            "example", [self.features(1), ("lengths", "INT32", [1 << 62],
                                           [])]), "'lengths'")
        # The server is still up.
        self.assertIsNone(SERVER_PROCESS.process.poll())
        response = self.infer(infer_request("example", [self.features()]))
        self.assertEqual(read_outputs(response)["output"].shape,
                         [1, 3, EXAMPLE_OUT])

    def test_unknown_output_name(self):
        for name in ("probabilities", "state/%s/forward_x" % LAYER,
                     "state/other/forward_h", "initial_state/%s/forward_h"
                     % LAYER):
            with self.subTest(output=name):
                self.invalid(infer_request("example", [self.features()],
                                           outputs=["output", name]),
                             "'%s'" % name, "output", "forward")

    def test_lengths_out_of_range(self):
        for lengths in ([0, 2], [2, 4], [-1, 3], [3, 1 << 40]):
            with self.subTest(lengths=lengths):
                self.invalid(infer_request(
                    "example",
                    [self.features(2, 3), ("lengths", "INT64", [2],
                                           lengths)]),
                    "lengths", "[1, 3]")
        self.invalid(infer_request(
            "brackets",
            [("token_ids", "INT32", [1, 2], [4, 5]),
             ("lengths", "INT32", [1], [3])], raw=True),
            "lengths", "3", "[1, 2]")

    def test_raw_input_contents_count_mismatch(self):
        request = infer_request(
            "example", [self.features(), ("lengths", "INT32", [1], [2])],
            raw=True)
        del request.raw_input_contents[1]
        self.invalid(request, "raw_input_contents", "1", "2")
        request = infer_request("example", [self.features()], raw=True)
        request.raw_input_contents.append(b"\0\0\0\0")
        self.invalid(request, "raw_input_contents", "2", "1")

    def test_raw_input_contents_wrong_size(self):
        request = infer_request("example", [self.features(1, 3)], raw=True)
        request.raw_input_contents[0] = request.raw_input_contents[0][:-4]
        self.invalid(request, "raw_input_contents[0]", "features", "96",
                     "92")
        # INT64 token ids sent as 4-byte values.
        request = infer_request(
            "brackets", [("token_ids", "INT64", [1, 3], None)])
        request.raw_input_contents.append(raw_bytes("INT32", [4, 5, 6]))
        self.invalid(request, "token_ids", "24", "12")

    def test_token_id_out_of_vocabulary(self):
        for ids in ([4, 30], [4, -1], [4, 1 << 33]):
            with self.subTest(ids=ids):
                # The message names the tensor, the position and the value
                # as sent (not a clamped one).
                self.invalid(infer_request(
                    "brackets", [("token_ids", "INT64", [1, 2], ids)]),
                    "input 'token_ids': token_ids[0][1] = %d" % ids[1])

    def test_an_input_given_twice(self):
        self.invalid(infer_request(
            "example", [self.features(), self.features()]),
            "'features' is given twice")

    def test_an_output_requested_twice(self):
        request = infer_request("example", [self.features()])
        for name in ("forward", "forward"):
            request.outputs.add().name = name
        self.invalid(request, "'forward' is requested twice")

    def test_padded_version_strings_are_invalid(self):
        for version in (" 1", "1 ", "+1"):
            with self.subTest(version=version):
                self.invalid(infer_request("example", [self.features()],
                                           version=version), "model_version")

    def test_unknown_model_is_not_found(self):
        self.assertStatus(
            grpc.StatusCode.NOT_FOUND,
            lambda: self.infer(infer_request("no_such_model",
                                             [self.features()])),
            "no_such_model")

    def test_unknown_version_is_not_found(self):
        self.assertStatus(
            grpc.StatusCode.NOT_FOUND,
            lambda: self.infer(infer_request("example", [self.features()],
                                             version="9")))

    def test_bad_version_string_is_invalid_argument(self):
        for version in ("v1", "0", "-2", "1.5", "latest"):
            with self.subTest(version=version):
                self.invalid(infer_request("example", [self.features()],
                                           version=version),
                             "model_version", version)

    def test_server_still_serves_after_errors(self):
        response = self.infer(infer_request("example", [self.features()]))
        self.assertEqual(read_outputs(response)["output"].shape,
                         [1, 3, EXAMPLE_OUT])


if __name__ == "__main__":
    unittest.main(verbosity=2)
