#include "tests/fuzz/fuzz_target.h"

#include <iterator>

namespace biserve {

// Defined in model_fuzz.cc, tfjs_fuzz.cc, onnx_fuzz.cc, keras_fuzz.cc,
// request_fuzz.cc, eval_json_fuzz.cc.
int FuzzModelBinary(const uint8_t* data, size_t size);
int FuzzModelText(const uint8_t* data, size_t size);
int FuzzModelJson(const uint8_t* data, size_t size);
int FuzzModelConfig(const uint8_t* data, size_t size);
int FuzzTfjsImport(const uint8_t* data, size_t size);
int FuzzOnnxImport(const uint8_t* data, size_t size);
int FuzzKerasImport(const uint8_t* data, size_t size);
int FuzzPredictRequest(const uint8_t* data, size_t size);
int FuzzModelInfer(const uint8_t* data, size_t size);
int FuzzEvalJson(const uint8_t* data, size_t size);

namespace {

constexpr FuzzTarget kTargets[] = {
    {"model_binary", FuzzModelBinary}, {"model_text", FuzzModelText},
    {"model_json", FuzzModelJson},     {"model_config", FuzzModelConfig},
    {"tfjs_import", FuzzTfjsImport},   {"onnx_import", FuzzOnnxImport},
    {"keras_import", FuzzKerasImport}, {"predict_request", FuzzPredictRequest},
    {"model_infer", FuzzModelInfer},   {"eval_json", FuzzEvalJson},
};

}  // namespace

absl::Span<const FuzzTarget> AllFuzzTargets() { return kTargets; }

const FuzzTarget* FindFuzzTarget(absl::string_view name) {
  for (const FuzzTarget& target : kTargets) {
    if (name == target.name) return &target;
  }
  return nullptr;
}

}  // namespace biserve
