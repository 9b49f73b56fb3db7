#!/usr/bin/python3
"""Writes the fuzz targets' seed corpora (corpus/<target>/) and dictionaries
(dict/<target>.dict) from the repository's own files: the bundled models and
their sample requests, tests/data, the golden fixtures and the TF.js model
folders, plus near-valid variants of each (a wrong shape, a truncation, an
out-of-range value) that take the fuzzer to the checks at once.

Run from anywhere with Debian's python3-protobuf and protoc; it rewrites
the corpus and dict folders whole (the committed files are its output):
  /usr/bin/python3 tests/fuzz/make_corpus.py
"""

import glob
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))

# Python modules of the schemas, generated into a temporary folder.
_gen = tempfile.mkdtemp(prefix="biserve_corpus_")
subprocess.run(
    ["protoc", "-I", os.path.join(ROOT, "proto"), "--python_out", _gen,
     "biserve/v1/model.proto", "biserve/v1/config.proto",
     "biserve/v1/inference.proto", "inference/grpc_predict_v2.proto"],
    check=True)
subprocess.run(
    ["protoc", "-I", os.path.join(ROOT, "proto"), "-I",
     os.path.join(ROOT, "tests"), "--python_out", _gen,
     "golden/golden_case.proto"], check=True)
sys.path.insert(0, _gen)

from google.protobuf import json_format, text_format  # noqa: E402
from biserve.v1 import config_pb2, inference_pb2, model_pb2  # noqa: E402
from golden import golden_case_pb2  # noqa: E402
from inference import grpc_predict_v2_pb2 as oip  # noqa: E402

# Seeds above this size slow every mutation (libFuzzer's -max_len follows
# the largest seed); the small fixtures cover every layer kind already.
MAX_SEED_BYTES = 16 * 1024


def reset(folder):
    path = os.path.join(HERE, folder)
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    return path


def write_seeds(target, seeds):
    """seeds: {name: bytes}; names say what each seed is."""
    folder = reset(os.path.join("corpus", target))
    for name, data in sorted(seeds.items()):
        if isinstance(data, str):
            data = data.encode()
        with open(os.path.join(folder, name), "wb") as f:
            f.write(data)


def write_dict(target, words):
    os.makedirs(os.path.join(HERE, "dict"), exist_ok=True)
    with open(os.path.join(HERE, "dict", target + ".dict"), "w") as f:
        f.write("# libFuzzer dictionary of fuzz_%s, written by "
                "make_corpus.py.\n" % target)
        for word in sorted(set(words)):
            escaped = "".join(
                c if 32 <= ord(c) < 127 and c not in '"\\' else
                "\\x%02x" % ord(c) for c in word)
            f.write('"%s"\n' % escaped)


def read(path):
    with open(os.path.join(ROOT, path), "rb") as f:
        return f.read()


def field_words(*descriptors):
    """Field names and enum value names of messages, for text and JSON."""
    words, seen = set(), set()
    todo = list(descriptors)
    while todo:
        d = todo.pop()
        if d.full_name in seen:
            continue
        seen.add(d.full_name)
        for field in d.fields:
            words.update([field.name, field.json_name])
            if field.message_type is not None:
                todo.append(field.message_type)
            if field.enum_type is not None:
                words.update(v.name for v in field.enum_type.values)
    return words


# ---------------------------------------------------------------------------
# Models: the bundled ones, tests/data, and the small golden fixtures.

def load_models():
    models = {}
    brackets = model_pb2.Model()
    brackets.ParseFromString(read("models/brackets/1/model.pb"))
    models["brackets"] = brackets
    example = model_pb2.Model()
    text_format.Parse(read("models/example/1/model.pbtxt").decode(), example)
    models["example"] = example
    tiny = model_pb2.Model()
    text_format.Parse(read("tests/data/tiny.pbtxt").decode(), tiny)
    models["tiny"] = tiny
    for path in sorted(glob.glob(os.path.join(ROOT, "tests/golden/fixtures/*.json"))):
        case = golden_case_pb2.GoldenCase()
        with open(path) as f:
            json_format.Parse(f.read(), case, ignore_unknown_fields=True)
        if case.model.ByteSize() <= MAX_SEED_BYTES // 3:
            models["golden_" + case.name] = case.model
    return models


def near_valid_models(models):
    """Variants that parse but break one rule each."""
    out = {}
    tiny = models["tiny"]
    m = model_pb2.Model()
    m.CopyFrom(tiny)
    m.layers[0].bidirectional.layer.weights.kernel.shape[:] = [2, 1]
    out["tiny_kernel_shape_mismatch"] = m
    m = model_pb2.Model()
    m.CopyFrom(tiny)
    m.layers[0].bidirectional.layer.units = 0
    out["tiny_zero_units"] = m
    m = model_pb2.Model()
    m.CopyFrom(tiny)
    m.input_dim = 0
    out["tiny_no_input_dim"] = m
    m = model_pb2.Model()
    m.CopyFrom(tiny)
    m.layers[0].bidirectional.merge_mode = "product"
    out["tiny_unknown_merge_mode"] = m
    m = model_pb2.Model()
    m.CopyFrom(tiny)
    m.layers.add()
    out["tiny_empty_layer"] = m
    m = model_pb2.Model()
    m.CopyFrom(tiny)
    m.layers[0].bidirectional.layer.cell = model_pb2.CELL_TYPE_UNSPECIFIED
    out["tiny_no_cell"] = m
    m = model_pb2.Model()
    m.CopyFrom(tiny)
    del m.layers[0].bidirectional.backward_weights.bias.values[:]
    out["tiny_backward_bias_missing"] = m
    return out


def model_seeds(models, encode):
    seeds = {}
    for name, model in models.items():
        data = encode(model)
        if len(data) <= MAX_SEED_BYTES:
            seeds[name] = data
    return seeds


def model_corpora():
    models = load_models()
    broken = near_valid_models(models)
    everything = dict(models)
    everything.update(broken)

    binary = model_seeds(everything, lambda m: m.SerializeToString())
    pb = models["brackets"].SerializeToString()
    binary["brackets_truncated"] = pb[: len(pb) // 2]
    write_seeds("model_binary", binary)

    text = model_seeds(everything, lambda m: text_format.MessageToString(m))
    text["tiny_pbtxt_as_committed"] = read("tests/data/tiny.pbtxt")
    text["tiny_unterminated"] = read("tests/data/tiny.pbtxt")[:-40]
    write_seeds("model_text", text)
    write_dict("model_text", field_words(model_pb2.Model.DESCRIPTOR) | {
        "{", "}", "[", "]", ":", "true", "false", "nan", "inf", "-1",
        "2147483647", "9223372036854775807", "1e39", "\"sigmoid\"",
        "\"tanh\"", "\"relu\"", "\"concat\"", "\"sum\"", "\"mul\"",
        "\"ave\"", "\"none\""})

    as_json = model_seeds(everything, lambda m: json_format.MessageToJson(m))
    as_json["tiny_string_numbers"] = json.dumps(
        {"name": "t", "inputDim": "1", "layers": []})
    write_seeds("model_json", as_json)
    write_dict("model_json", {'"%s"' % w for w in field_words(
        model_pb2.Model.DESCRIPTOR)} | {
        "{", "}", "[", "]", ":", ",", "true", "false", "null", "\"NaN\"",
        "\"Infinity\"", "-1", "2147483648", "1e39", "\"sigmoid\"",
        "\"concat\"", "\"none\""})
    return models


def config_corpus():
    seeds = {
        "default_latest": "version_policy { latest { num_versions: 1 } }\n",
        "all": "version_policy { all {} }\n",
        "specific": "version_policy { specific { versions: 1 versions: 3 } }\n",
        "batching": "batching { max_batch_size: 64 max_batch_steps: 8192 "
                    "max_queue_delay_us: 2000 max_queue_size: 1024 }\n",
        "both": "version_policy { latest { num_versions: 2 } }\n"
                "batching { max_batch_size: 8 }\n",
        "empty": "",
        "zero_batch_size": "batching { max_batch_size: 0 }\n",
        "negative_delay": "batching { max_queue_delay_us: -1 }\n",
        "negative_version": "version_policy { specific { versions: -2 } }\n",
        "unknown_field": "batching { max_batch: 4 }\n",
        "comment_only": "# nothing set\n",
    }
    write_seeds("model_config", seeds)
    write_dict("model_config", field_words(config_pb2.ModelConfig.DESCRIPTOR) | {
        "{", "}", ":", "#", "-1", "0", "2147483647", "9223372036854775807",
        "-9223372036854775808"})


# ---------------------------------------------------------------------------
# TF.js: each model folder as one input (see tfjs_fuzz.cc).

FILE_MARKER = b"\n--- file "


def tfjs_corpus():
    seeds = {}
    words = {FILE_MARKER.decode(), "model.json", "weights.bin",
             "group1-shard1of1.bin"}
    for folder in sorted(glob.glob(os.path.join(ROOT, "tests/golden/tfjs_models/*/"))):
        name = os.path.basename(os.path.dirname(folder))
        model_json = read(os.path.join(folder, "model.json"))
        data = model_json
        for shard in sorted(glob.glob(os.path.join(folder, "*.bin"))):
            data += FILE_MARKER + os.path.basename(shard).encode() + b"\n" + \
                read(shard)
        seeds[name] = data
        # Keys and short string values of model.json.

        def walk(value):
            if isinstance(value, dict):
                for k, v in value.items():
                    words.add('"%s"' % k)
                    walk(v)
            elif isinstance(value, list):
                for v in value:
                    walk(v)
            elif isinstance(value, str) and len(value) < 40:
                words.add('"%s"' % value)
        walk(json.loads(model_json))
    smallest = min(seeds, key=lambda n: len(seeds[n]))
    data = seeds[smallest]
    cut = data.find(FILE_MARKER)
    seeds["short_shard_" + smallest] = data[: cut + (len(data) - cut) // 2]
    seeds["no_shard_" + smallest] = data[:cut]
    write_seeds("tfjs_import", seeds)
    write_dict("tfjs_import", words | {"{", "}", "[", "]", "null", "true",
                                       "false", "-1", "1e39"})


# ---------------------------------------------------------------------------
# Requests: the bundled models' sample requests and variants.
def onnx_corpus():
    """Seeds of onnx_import: small bidirectional RNN graphs built with
    Debian's python3-onnx (what torch.onnx.export writes, without torch),
    and hostile variants: tensors whose declared dims or data sizes are huge
    or do not match, so that the fuzzer starts at the size checks.
    scripts/fuzz.sh adds the real PyTorch fixtures (tests/onnx/fixtures/)
    at run time; they are too big to commit twice."""
    import random
    import onnx
    from onnx import TensorProto, helper

    rng = random.Random(17)

    def weights(name, dims):
        n = 1
        for d in dims:
            n *= d
        return helper.make_tensor(name, TensorProto.FLOAT, dims,
                                  [round(rng.uniform(-0.5, 0.5), 3)
                                   for _ in range(n)])

    def rnn_model(op, gates, direction="bidirectional", extra_attrs=None,
                  initializers=None):
        d, hidden, width = 2 if direction == "bidirectional" else 1, 3, 4
        inits = initializers or [
            weights("W", [d, gates * hidden, width]),
            weights("R", [d, gates * hidden, hidden]),
            weights("B", [d, 2 * gates * hidden])]
        outputs = ["Y", "Y_h"] + (["Y_c"] if op == "LSTM" else [])
        # The graph returns the final states (h_n, c_n): a pattern the
        # importer serves, so that mutations start from a model that loads.
        node = helper.make_node(
            op, ["input", "W", "R", "B"], outputs, name="/rnn/" + op,
            direction=direction, hidden_size=hidden, **(extra_attrs or {}))
        graph = helper.make_graph(
            [node], "main_graph",
            [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                           ["T", "B", width])],
            [helper.make_tensor_value_info(o, TensorProto.FLOAT, None)
             for o in outputs[1:]],
            inits)
        model = helper.make_model(
            graph, producer_name="pytorch",
            opset_imports=[helper.make_opsetid("", 14)])
        return model.SerializeToString()

    def huge(name, dims, raw):
        t = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=dims)
        t.raw_data = raw
        return t

    seeds = {
        "bilstm": rnn_model("LSTM", 4),
        "bigru_linear_before_reset": rnn_model(
            "GRU", 3, extra_attrs={"linear_before_reset": 1}),
        "birnn_tanh": rnn_model("RNN", 1),
        "unidirectional_lstm": rnn_model("LSTM", 4, direction="forward"),
        "lstm_clip": rnn_model("LSTM", 4, extra_attrs={"clip": 1.0}),
        # dims whose product is 2^42 floats, 16 bytes of data.
        "huge_dims_small_raw_data": rnn_model("LSTM", 4, initializers=[
            huge("W", [2, 1 << 20, 1 << 20], b"\0" * 16),
            weights("R", [2, 12, 3]), weights("B", [2, 24])]),
        # dims whose product overflows int64.
        "overflowing_dims": rnn_model("LSTM", 4, initializers=[
            huge("W", [1 << 40, 1 << 40, 4], b"\0" * 16),
            weights("R", [2, 12, 3]), weights("B", [2, 24])]),
        "negative_dims": rnn_model("LSTM", 4, initializers=[
            huge("W", [2, -12, 4], b"\0" * 16),
            weights("R", [2, 12, 3]), weights("B", [2, 24])]),
        # raw_data shorter than its dims say.
        "short_raw_data": rnn_model("LSTM", 4, initializers=[
            huge("W", [2, 12, 4], b"\0" * 40),
            weights("R", [2, 12, 3]), weights("B", [2, 24])]),
        # Loads as far as Model::Create, which refuses non-finite weights.
        "nan_weights": rnn_model("LSTM", 4, initializers=[
            weights("W", [2, 12, 4]),
            helper.make_tensor("R", TensorProto.FLOAT, [2, 12, 3],
                               [float("nan")] * 72),
            weights("B", [2, 24])]),
        "empty": b"",
        "not_onnx": b"\x08\xff\xff\xff\xff\x0f not a ModelProto",
    }
    write_seeds("onnx_import", seeds)
    words = {"LSTM", "GRU", "RNN", "Gather", "MatMul", "Add", "Gemm",
             "Softmax", "LogSoftmax", "Sigmoid", "Tanh", "Relu", "Shape",
             "Unsqueeze", "Squeeze", "Concat", "ConstantOfShape", "Transpose",
             "Reshape", "Slice", "Expand", "Cast", "Identity", "Constant",
             "direction", "bidirectional", "forward", "reverse", "hidden_size",
             "linear_before_reset", "activations", "clip", "input_forget",
             "sequence_lens", "perm", "axis", "axes", "to", "value"}
    write_dict("onnx_import", words)


def state_names(model):
    """initial_state/ and state/ suffixes of the first Bidirectional layer."""
    for layer in model.layers:
        if layer.HasField("bidirectional"):
            b = layer.bidirectional
            cell = b.layer.cell
            names = ["forward_h"] + (["forward_c"] if cell == model_pb2.LSTM
                                     else [])
            back_cell = b.backward_layer.cell if b.HasField(
                "backward_layer") else cell
            names += ["backward_h"] + (["backward_c"]
                                       if back_cell == model_pb2.LSTM else [])
            units = b.layer.units
            return b.name, names, units
    return None


def request_corpora(models):
    brackets = inference_pb2.PredictRequest()
    json_format.Parse(read("models/brackets/sample_request.json"), brackets)
    sample_input = json.loads(read("models/example/sample_input.json"))
    example = inference_pb2.PredictRequest(model_name="example")
    for steps in sample_input["sequences"]:
        s = example.sequences.add()
        for step in steps:
            s.features.extend(step)
    input_dim = len(sample_input["sequences"][0][0])

    seeds = {}

    def add(name, request):
        seeds[name] = request.SerializeToString()

    add("brackets_sample", brackets)
    add("example_sample", example)
    r = inference_pb2.PredictRequest()
    r.CopyFrom(brackets)
    r.outputs = inference_pb2.OUTPUT_SELECTION_BOTH
    r.return_states = True
    r.request_id = "both-and-states"
    add("brackets_both_states", r)
    r = inference_pb2.PredictRequest()
    r.CopyFrom(example)
    r.outputs = inference_pb2.OUTPUT_SELECTION_DIRECTIONS
    r.return_states = True
    layer, names, units = state_names(models["example"])
    for s in r.sequences:
        s.length = len(s.features) // input_dim
        for _ in names:
            s.initial_state.add(shape=[units], values=[0.25] * units)
    add("example_initial_state_directions", r)
    r = inference_pb2.PredictRequest()
    r.CopyFrom(example)
    r.sequences[0].features[3] = float("nan")
    add("example_nan_refused", r)
    r.request_id = "allow_non_finite"
    add("example_nan_allowed", r)
    r = inference_pb2.PredictRequest()
    r.CopyFrom(example)
    del r.sequences[0].features[-1]
    add("example_features_not_multiple", r)
    r = inference_pb2.PredictRequest()
    r.CopyFrom(example)
    r.sequences[0].length = 1000
    add("example_length_mismatch", r)
    r = inference_pb2.PredictRequest()
    r.CopyFrom(brackets)
    r.sequences[0].token_ids[0] = 1000
    add("brackets_token_outside_vocabulary", r)
    r = inference_pb2.PredictRequest()
    r.CopyFrom(brackets)
    r.sequences[1].token_ids[:] = []
    add("brackets_empty_sequence", r)
    r = inference_pb2.PredictRequest(model_name="brackets")
    add("brackets_no_sequences", r)
    r = inference_pb2.PredictRequest(model_name="example")
    r.sequences.add(token_ids=[1, 2, 3])
    add("example_token_ids_to_feature_model", r)
    write_seeds("predict_request", seeds)
    write_dict("predict_request", {"brackets", "example", "allow_non_finite",
                                   "\x00\x00\xc0\x7f", "\x00\x00\x80\x7f"})

    # ModelInfer: the same sequences as Open Inference tensors.
    seeds = {}
    words = {"brackets", "example", "allow_non_finite", "features",
             "token_ids", "lengths", "FP32", "INT32", "INT64", "BOOL", "BYTES",
             "output", "forward", "backward", "raw_output", "state/",
             "initial_state/", "1", "-1"}

    def infer(name, request):
        seeds[name] = request.SerializeToString()

    tokens = [list(s.token_ids) for s in brackets.sequences]
    longest = max(len(t) for t in tokens)
    padded = [t + [0] * (longest - len(t)) for t in tokens]
    r = oip.ModelInferRequest(model_name="brackets", model_version="1")
    t = r.inputs.add(name="token_ids", datatype="INT32",
                     shape=[len(padded), longest])
    t.contents.int_contents.extend(sum(padded, []))
    t = r.inputs.add(name="lengths", datatype="INT32", shape=[len(tokens)])
    t.contents.int_contents.extend(len(x) for x in tokens)
    infer("brackets_padded_lengths", r)
    r2 = oip.ModelInferRequest()
    r2.CopyFrom(r)
    r2.inputs[0].datatype = "INT64"
    r2.inputs[0].contents.Clear()
    r2.inputs[0].contents.int64_contents.extend(sum(padded, []))
    r2.outputs.add(name="forward")
    r2.outputs.add(name="backward")
    r2.outputs.add(name="output")
    infer("brackets_int64_directions", r2)
    r2 = oip.ModelInferRequest()
    r2.CopyFrom(r)
    r2.inputs[1].contents.int_contents[1] = longest + 1
    infer("brackets_length_over_time", r2)
    r2 = oip.ModelInferRequest(model_name="brackets")
    r2.inputs.add(name="token_ids", datatype="INT32", shape=[1, len(tokens[0])])
    r2.raw_input_contents.append(struct.pack("<%di" % len(tokens[0]), *tokens[0]))
    infer("brackets_raw_one_sequence", r2)

    layer, names, units = state_names(models["example"])
    steps = sample_input["sequences"][0]
    flat = sum(steps, [])
    r = oip.ModelInferRequest(model_name="example", id="ex")
    t = r.inputs.add(name="features", datatype="FP32",
                     shape=[1, len(steps), input_dim])
    t.contents.fp32_contents.extend(flat)
    infer("example_one_sequence", r)
    r2 = oip.ModelInferRequest()
    r2.CopyFrom(r)
    for n in names:
        s = r2.inputs.add(name="initial_state/%s/%s" % (layer, n),
                          datatype="FP32", shape=[1, units])
        s.contents.fp32_contents.extend([0.5] * units)
        r2.outputs.add(name="state/%s/%s" % (layer, n))
        words.update(["initial_state/%s/%s" % (layer, n),
                      "state/%s/%s" % (layer, n), layer, n])
    r2.outputs.add(name="output")
    infer("example_states_in_and_out", r2)
    r2 = oip.ModelInferRequest(model_name="example")
    r2.inputs.add(name="features", datatype="FP32",
                  shape=[1, len(steps), input_dim])
    r2.raw_input_contents.append(struct.pack("<%df" % len(flat), *flat))
    r2.parameters["raw_output"].bool_param = True
    r2.outputs.add(name="output")
    infer("example_raw_in_raw_out", r2)
    r2 = oip.ModelInferRequest()
    r2.CopyFrom(r)
    r2.inputs[0].shape[:] = [1, len(steps), input_dim - 1]
    infer("example_wrong_shape", r2)
    r2 = oip.ModelInferRequest()
    r2.CopyFrom(r)
    r2.inputs[0].datatype = "FP64"
    infer("example_wrong_datatype", r2)
    r2 = oip.ModelInferRequest()
    r2.CopyFrom(r)
    r2.inputs[0].contents.fp32_contents[0] = float("inf")
    infer("example_inf_refused", r2)
    r2.id = "allow_non_finite"
    infer("example_inf_allowed", r2)
    r2 = oip.ModelInferRequest()
    r2.CopyFrom(r)
    r2.outputs.add(name="state/nope/forward_h")
    infer("example_unknown_output", r2)
    write_seeds("model_infer", seeds)
    write_dict("model_infer", words)

    # biserve_eval's JSON.
    seeds = {
        "example_sample": read("models/example/sample_input.json"),
        "brackets_tokens": json.dumps(
            {"sequences": [list(s.token_ids) for s in brackets.sequences]}),
        "example_initial_state": json.dumps({
            "sequences": [steps[:3]],
            "initial_state": [[[0.5] * units for _ in names]]}),
        "tokens_not_integers": '{"sequences": [[1.5, 2]]}',
        "token_out_of_range": '{"sequences": [[1e10, 2]]}',
        "short_step": json.dumps({"sequences": [[steps[0][:-1]]]}),
        "unknown_key": '{"sequences": [], "extra": 1}',
        "not_an_object": "[1, 2, 3]",
        "states_count_mismatch": '{"sequences": [[1]], "initial_state": []}',
    }
    write_seeds("eval_json", seeds)
    write_dict("eval_json", {'"sequences"', '"initial_state"', "[", "]", "{",
                             "}", ":", ",", "null", "true", "1e39", "-1e39",
                             "2147483648", "-0", "0.5", "NaN", "Infinity"})


def main():
    # `make_corpus.py onnx_import` rewrites only that target's seeds.
    if sys.argv[1:] == ["onnx_import"]:
        onnx_corpus()
        return
    models = model_corpora()
    config_corpus()
    tfjs_corpus()
    onnx_corpus()
    request_corpora(models)
    shutil.rmtree(_gen, ignore_errors=True)
    for target in sorted(os.listdir(os.path.join(HERE, "corpus"))):
        files = os.listdir(os.path.join(HERE, "corpus", target))
        size = sum(os.path.getsize(os.path.join(HERE, "corpus", target, f))
                   for f in files)
        print("%-16s %3d seeds, %6d bytes" % (target, len(files), size))


if __name__ == "__main__":
    main()
