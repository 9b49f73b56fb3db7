// biserve_precision: what BF16 costs in accuracy, measured. Every model is
// evaluated in FP32 and in BF16 on the same inputs, and the deviation of
// BF16 from FP32 is reported with, where a reference exists, both
// precisions' errors against it. Markdown tables on stdout, for
// docs/precision.md.
//
//   build/bin/biserve_precision --real_models ../shared/real-models
//
// Sources: the golden fixtures (tests/golden/fixtures, TensorFlow.js
// outputs), random models from tests/support against the plain reference
// (ReferenceEvaluate), the benchmark workloads' models (bench/workloads.h),
// the real Keras files of --real_models (float64 reference outputs), and a
// sweep of sequence lengths. Fails when the CPU cannot run BF16, rather
// than comparing FP32 with itself.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <variant>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/marshalling.h"
#include "absl/flags/parse.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/types/span.h"
#include "bench/workloads.h"
#include "core/common/thread_pool.h"
#include "core/eval/evaluator.h"
#include "core/kernels/precision.h"
#include "core/model/model.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "importers/keras_file_importer.h"
#include "importers/model_file.h"
#include "proto/eval_json.h"
#include "proto/model_codec.h"
#include "tests/golden/golden_check.h"
#include "tests/support/random_model.h"
#include "tests/support/reference_model.h"

ABSL_FLAG(std::string, golden_dir,
          std::string(BISERVE_SOURCE_DIR) + "/tests/golden/fixtures",
          "Folder of golden fixtures (GoldenCase JSON); empty skips them.");
ABSL_FLAG(std::string, real_models, "",
          "The real-models folder (its expected/*.json name the files); "
          "empty skips them.");
ABSL_FLAG(int, oracle_models, 50,
          "Random models, and as many random chain models, checked against "
          "the reference implementation.");
ABSL_FLAG(int, seed, 2026, "Seed of the random models and inputs.");
ABSL_FLAG(bool, workloads, true, "Include the benchmark workloads' models.");
ABSL_FLAG(std::string, lengths, "10,100,1000",
          "Sequence lengths of the error-versus-length sweep; empty skips it.");
ABSL_FLAG(std::string, models_dir, std::string(BISERVE_SOURCE_DIR) + "/models",
          "The bundled model repository: its brackets (trained, sigmoid "
          "tagger) and example (softmax tagger) models join the length "
          "sweep; empty leaves them out.");
ABSL_FLAG(int, threads, 2, "Evaluation threads.");
ABSL_FLAG(std::vector<std::string>, logits_cases, {"ner_model"},
          "Real-model cases (substrings of their names) whose linear output "
          "is logits, read by argmax: their decisions are compared too.");

namespace biserve {
namespace {

// Below this |fp32| the elementwise relative deviation divides by it
// instead, so that outputs near zero do not dominate.
constexpr double kRelativeFloor = 1e-2;

// How far one set of values is from a baseline, over every value compared.
struct Deviation {
  double max_abs = 0;        // max |x - base|
  double max_magnitude = 0;  // max |base|
  // max |x - base| / max(|base|, kRelativeFloor)
  double max_elementwise = 0;
  int64_t values = 0;
  bool shape_mismatch = false;

  template <typename Base>
  void Add(absl::Span<const float> x, absl::Span<const Base> base) {
    if (x.size() != base.size()) {
      shape_mismatch = true;
      return;
    }
    for (size_t i = 0; i < x.size(); ++i) {
      const double b = static_cast<double>(base[i]);
      const double d = std::abs(static_cast<double>(x[i]) - b);
      max_abs = std::max(max_abs, d);
      max_magnitude = std::max(max_magnitude, std::abs(b));
      max_elementwise =
          std::max(max_elementwise, d / std::max(std::abs(b), kRelativeFloor));
    }
    values += static_cast<int64_t>(x.size());
  }
  void Add(const Tensor& x, const Tensor& base) {
    if (x.shape != base.shape) shape_mismatch = true;
    Add<float>(x.values, base.values);
  }
  // max |x - base| / max |base|: the deviation relative to the output's
  // scale.
  double Normwise() const {
    return max_magnitude > 0 ? max_abs / max_magnitude : max_abs;
  }
};

// Every tensor of `x` against the same one of `base`: the output, the
// per-direction outputs and every layer's final states.
void AddResult(const SequenceResult& x, const SequenceResult& base,
               Deviation& deviation) {
  deviation.Add(x.output, base.output);
  deviation.Add(x.forward, base.forward);
  deviation.Add(x.backward, base.backward);
  if (x.states.size() != base.states.size()) {
    deviation.shape_mismatch = true;
    return;
  }
  for (size_t l = 0; l < x.states.size(); ++l) {
    if (x.states[l].size() != base.states[l].size()) {
      deviation.shape_mismatch = true;
      continue;
    }
    for (size_t s = 0; s < x.states[l].size(); ++s) {
      deviation.Add(x.states[l][s], base.states[l][s]);
    }
  }
}

// The decision a classifier's output is read by: the argmax of a softmax
// row, or each sigmoid value against 0.5.
enum class Decision { kNone, kArgmax, kThreshold };

// `logits`: the model's linear output is read by argmax (a tagger without
// its softmax).
Decision DecisionOf(const ModelSpec& spec, bool logits = false) {
  if (spec.layers.empty()) return Decision::kNone;
  std::string activation;
  if (const auto* dense = std::get_if<DenseSpec>(&spec.layers.back())) {
    activation = dense->activation.value_or("linear");
  } else if (const auto* layer =
                 std::get_if<ActivationSpec>(&spec.layers.back())) {
    activation = layer->activation;
  }
  if (activation == "softmax") return Decision::kArgmax;
  if (activation == "sigmoid") return Decision::kThreshold;
  if (logits && activation == "linear") return Decision::kArgmax;
  return Decision::kNone;
}

// The model's layers, briefly: "Masking > Bi(LSTM 7, concat) > Dense softmax".
std::string LayerSummary(const ModelSpec& spec) {
  static const char* kCells[] = {"?", "SimpleRNN", "LSTM", "GRU"};
  std::vector<std::string> parts;
  for (const LayerSpec& layer : spec.layers) {
    if (const auto* bi = std::get_if<BidirectionalSpec>(&layer)) {
      parts.push_back(absl::StrCat(
          "Bi(", kCells[static_cast<int>(bi->layer.cell)], " ", bi->layer.units,
          ", ", bi->merge_mode.empty() ? "concat" : bi->merge_mode, ")"));
    } else if (const auto* dense = std::get_if<DenseSpec>(&layer)) {
      parts.push_back(absl::StrCat("Dense ", dense->units, " ",
                                   dense->activation.value_or("linear")));
    } else if (const auto* a = std::get_if<ActivationSpec>(&layer)) {
      parts.push_back(absl::StrCat("Activation ", a->activation));
    } else if (std::holds_alternative<EmbeddingSpec>(layer)) {
      parts.push_back("Embedding");
    } else if (std::holds_alternative<MaskingSpec>(layer)) {
      parts.push_back("Masking");
    } else if (std::holds_alternative<BatchNormalizationSpec>(layer)) {
      parts.push_back("BatchNorm");
    } else if (std::holds_alternative<LayerNormalizationSpec>(layer)) {
      parts.push_back("LayerNorm");
    } else if (std::holds_alternative<GlobalPoolingSpec>(layer)) {
      parts.push_back("Pooling");
    }
  }
  return absl::StrJoin(parts, " > ");
}

// Whether BF16 takes the same decisions as FP32 on the model's output.
struct Agreement {
  int64_t decisions = 0;
  int64_t agreed = 0;
  // The largest FP32 margin among the decisions that changed: top-1 minus
  // top-2 probability, or |p - 0.5|.
  double max_flipped_margin = 0;

  void Add(const Tensor& bf16, const Tensor& fp32, Decision decision) {
    if (decision == Decision::kNone || fp32.shape.empty() ||
        bf16.values.size() != fp32.values.size()) {
      return;
    }
    const int64_t width = fp32.shape.back();
    for (size_t row = 0; row + width <= fp32.values.size(); row += width) {
      const float* f = fp32.values.data() + row;
      const float* b = bf16.values.data() + row;
      if (decision == Decision::kArgmax && width >= 2) {
        const int64_t af = std::max_element(f, f + width) - f;
        const int64_t ab = std::max_element(b, b + width) - b;
        ++decisions;
        if (af == ab) {
          ++agreed;
          continue;
        }
        std::vector<float> sorted(f, f + width);
        std::partial_sort(sorted.begin(), sorted.begin() + 2, sorted.end(),
                          std::greater<float>());
        max_flipped_margin =
            std::max(max_flipped_margin, double{sorted[0]} - sorted[1]);
      } else if (decision == Decision::kThreshold) {
        for (int64_t j = 0; j < width; ++j) {
          ++decisions;
          if ((f[j] > 0.5f) == (b[j] > 0.5f)) {
            ++agreed;
          } else {
            max_flipped_margin =
                std::max(max_flipped_margin, std::abs(f[j] - 0.5));
          }
        }
      }
    }
  }
  void Add(const Agreement& other) {
    decisions += other.decisions;
    agreed += other.agreed;
    max_flipped_margin = std::max(max_flipped_margin, other.max_flipped_margin);
  }
};

// One model on one batch, in both precisions.
struct CaseReport {
  std::string name;
  int64_t sequences = 0;
  int64_t steps = 0;
  Deviation bf16_vs_fp32;
  // Only the final states, for the length sweep.
  Deviation states_bf16_vs_fp32;
  bool has_reference = false;
  Deviation fp32_vs_reference;
  Deviation bf16_vs_reference;
  Decision decision = Decision::kNone;
  Agreement agreement;
};

struct Runs {
  std::shared_ptr<const Model> fp32;
  std::vector<SequenceResult> fp32_results;
  std::vector<SequenceResult> bf16_results;
};

// Creates `spec` in both precisions and evaluates `batch` in each.
// FAILED_PRECONDITION when BF16 falls back to FP32 on this CPU.
absl::StatusOr<Runs> RunBoth(const ModelSpec& spec,
                             absl::Span<const SequenceInput> batch,
                             const EvalOptions& options, ThreadPool& pool) {
  Runs runs;
  absl::StatusOr<std::shared_ptr<const Model>> fp32 =
      Model::Create(spec, Precision::kFp32);
  if (!fp32.ok()) return fp32.status();
  absl::StatusOr<std::shared_ptr<const Model>> bf16 =
      Model::Create(spec, Precision::kBf16);
  if (!bf16.ok()) return bf16.status();
  if ((*bf16)->precision() != Precision::kBf16) {
    return absl::FailedPreconditionError(absl::StrCat(
        "BF16 is not available: ",
        PrecisionFallbackReason(Precision::kBf16, (*bf16)->precision())));
  }
  auto fp32_results = Evaluate(**fp32, batch, options, pool);
  if (!fp32_results.ok()) return fp32_results.status();
  auto bf16_results = Evaluate(**bf16, batch, options, pool);
  if (!bf16_results.ok()) return bf16_results.status();
  runs.fp32 = *std::move(fp32);
  runs.fp32_results = *std::move(fp32_results);
  runs.bf16_results = *std::move(bf16_results);
  return runs;
}

// The deviation and agreement of `runs`, without any reference.
CaseReport Compare(std::string name, Decision decision,
                   absl::Span<const SequenceInput> batch, const Runs& runs) {
  CaseReport report;
  report.name = std::move(name);
  report.sequences = static_cast<int64_t>(batch.size());
  for (const SequenceInput& in : batch) report.steps += in.length;
  report.decision = decision;
  for (size_t i = 0; i < runs.fp32_results.size(); ++i) {
    const SequenceResult& f = runs.fp32_results[i];
    const SequenceResult& b = runs.bf16_results[i];
    AddResult(b, f, report.bf16_vs_fp32);
    for (size_t l = 0; l < f.states.size() && l < b.states.size(); ++l) {
      for (size_t s = 0; s < f.states[l].size() && s < b.states[l].size();
           ++s) {
        report.states_bf16_vs_fp32.Add(b.states[l][s], f.states[l][s]);
      }
    }
    report.agreement.Add(b.output, f.output, report.decision);
  }
  return report;
}

// Both precisions against ReferenceEvaluate (Keras' equations, float with
// double dot products) on the first `count` sequences.
void AddReference(const Runs& runs, absl::Span<const SequenceInput> batch,
                  const EvalOptions& options, size_t count,
                  CaseReport& report) {
  report.has_reference = true;
  for (size_t i = 0; i < batch.size() && i < count; ++i) {
    const SequenceResult reference =
        testing::ReferenceEvaluate(*runs.fp32, batch[i], options);
    AddResult(runs.fp32_results[i], reference, report.fp32_vs_reference);
    AddResult(runs.bf16_results[i], reference, report.bf16_vs_reference);
  }
}

// ---- Inputs ----

// Random sequences for `model`, owning their values.
struct RandomBatch {
  std::vector<std::vector<float>> features;
  std::vector<std::vector<int32_t>> ids;
  std::vector<SequenceInput> inputs;
};

RandomBatch MakeRandomBatch(std::mt19937& rng, const Model& model,
                            const std::vector<int64_t>& lengths) {
  RandomBatch b;
  b.features.resize(lengths.size());
  b.ids.resize(lengths.size());
  for (size_t i = 0; i < lengths.size(); ++i) {
    const int64_t length = lengths[i];
    if (model.takes_token_ids()) {
      std::uniform_int_distribution<int32_t> id(
          0, static_cast<int32_t>(model.embedding()->embeddings.rows()) - 1);
      for (int64_t t = 0; t < length; ++t) b.ids[i].push_back(id(rng));
    } else {
      b.features[i] = testing::RandomValues(rng, length * model.input_dim());
      if (model.mask_value().has_value()) {
        // A quarter of the steps masked, as the evaluator tests do.
        for (int64_t t = 0; t < length; ++t) {
          if (std::bernoulli_distribution(0.25)(rng)) {
            std::fill_n(b.features[i].begin() + t * model.input_dim(),
                        model.input_dim(), *model.mask_value());
          }
        }
      }
    }
  }
  for (size_t i = 0; i < lengths.size(); ++i) {
    b.inputs.push_back(
        SequenceInput{.length = lengths[i],
                      .features = absl::MakeConstSpan(b.features[i]),
                      .token_ids = absl::MakeConstSpan(b.ids[i])});
  }
  return b;
}

// ---- Formatting ----

std::string Num(double x) { return absl::StrFormat("%.2e", x); }

std::string AgreementCell(const CaseReport& r) {
  if (r.decision == Decision::kNone || r.agreement.decisions == 0) return "";
  std::string cell =
      absl::StrCat(r.decision == Decision::kArgmax ? "argmax " : "p>0.5 ",
                   r.agreement.agreed, "/", r.agreement.decisions);
  if (r.agreement.agreed != r.agreement.decisions) {
    absl::StrAppend(&cell, " (flipped margins <= ",
                    Num(r.agreement.max_flipped_margin), ")");
  }
  return cell;
}

void PrintCaseTable(const std::vector<CaseReport>& reports) {
  std::cout << "| case | seqs | steps | values | max \\|fp32\\| | max abs dev "
               "| normwise rel | elementwise rel | fp32 err vs ref | bf16 err "
               "vs ref | decisions agreeing |\n"
               "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
               "| ---: | --- |\n";
  for (const CaseReport& r : reports) {
    const Deviation& d = r.bf16_vs_fp32;
    std::cout << "| " << r.name << (d.shape_mismatch ? " (SHAPE MISMATCH)" : "")
              << " | " << r.sequences << " | " << r.steps << " | " << d.values
              << " | " << Num(d.max_magnitude) << " | " << Num(d.max_abs)
              << " | " << Num(d.Normwise()) << " | " << Num(d.max_elementwise)
              << " | "
              << (r.has_reference ? Num(r.fp32_vs_reference.max_abs) : "")
              << " | "
              << (r.has_reference ? Num(r.bf16_vs_reference.max_abs) : "")
              << " | " << AgreementCell(r) << " |\n";
  }
  std::cout << "\n";
}

// Max and median over models of one statistic.
std::string Spread(std::vector<double> values) {
  if (values.empty()) return "";
  std::sort(values.begin(), values.end());
  return absl::StrCat(Num(values[values.size() / 2]), " / ",
                      Num(values.back()));
}

void PrintDistribution(const std::string& family,
                       const std::vector<CaseReport>& reports) {
  std::vector<double> abs_dev, normwise, elementwise, fp32_ref, bf16_ref;
  Agreement agreement;
  size_t worst = 0;
  for (size_t i = 0; i < reports.size(); ++i) {
    const CaseReport& r = reports[i];
    abs_dev.push_back(r.bf16_vs_fp32.max_abs);
    normwise.push_back(r.bf16_vs_fp32.Normwise());
    elementwise.push_back(r.bf16_vs_fp32.max_elementwise);
    fp32_ref.push_back(r.fp32_vs_reference.max_abs);
    bf16_ref.push_back(r.bf16_vs_reference.max_abs);
    agreement.Add(r.agreement);
    if (r.bf16_vs_fp32.Normwise() > reports[worst].bf16_vs_fp32.Normwise()) {
      worst = i;
    }
  }
  std::cout << "| " << family << " | " << reports.size() << " | "
            << Spread(abs_dev) << " | " << Spread(normwise) << " | "
            << Spread(elementwise) << " | " << Spread(fp32_ref) << " | "
            << Spread(bf16_ref) << " | "
            << (agreement.decisions > 0
                    ? absl::StrCat(agreement.agreed, "/", agreement.decisions)
                    : "")
            << " | " << (reports.empty() ? "" : reports[worst].name) << " |\n";
}

// ---- Sources ----

absl::Status GoldenFixtures(const std::string& dir, ThreadPool& pool) {
  const std::vector<std::string> names =
      testing::ListCases(dir, /*directories=*/false);
  if (names.empty()) {
    return absl::NotFoundError(absl::StrCat("no golden fixtures in ", dir));
  }
  std::vector<CaseReport> reports;
  for (const std::string& name : names) {
    const test::GoldenCase golden =
        testing::ReadGoldenCase(absl::StrCat(dir, "/", name, ".json"));
    if (golden.sequences_size() == 0 ||
        golden.sequences_size() != golden.expected_size()) {
      return absl::InvalidArgumentError(
          absl::StrCat(dir, "/", name,
                       ".json: no sequences, or not one "
                       "expected result per sequence"));
    }
    const std::vector<SequenceInput> batch = testing::GoldenBatch(golden);
    // What golden_check compares: the output, the directions and the last
    // layer's states where the case has them.
    EvalOptions options;
    options.directions = golden.expected(0).has_forward();
    options.states = golden.expected(0).states_size() > 0;
    const ModelSpec spec = ModelSpecFromProto(golden.model());
    absl::StatusOr<Runs> runs = RunBoth(spec, batch, options, pool);
    if (!runs.ok()) {
      return absl::Status(runs.status().code(),
                          absl::StrCat(name, ": ", runs.status().message()));
    }
    CaseReport report = Compare(name, DecisionOf(spec), batch, *runs);
    report.has_reference = true;
    for (int i = 0; i < golden.expected_size(); ++i) {
      const test::GoldenResult& want = golden.expected(i);
      for (const auto* results : {&runs->fp32_results, &runs->bf16_results}) {
        Deviation& d = results == &runs->fp32_results
                           ? report.fp32_vs_reference
                           : report.bf16_vs_reference;
        const SequenceResult& got = (*results)[i];
        if (want.has_output())
          d.Add(got.output, TensorFromProto(want.output()));
        if (want.has_forward()) {
          d.Add(got.forward, TensorFromProto(want.forward()));
          d.Add(got.backward, TensorFromProto(want.backward()));
        }
        if (want.states_size() > 0) {
          const std::vector<Tensor>& states = got.states.back();
          for (int s = 0;
               s < want.states_size() && s < static_cast<int>(states.size());
               ++s) {
            d.Add(states[s], TensorFromProto(want.states(s)));
          }
        }
      }
    }
    reports.push_back(std::move(report));
  }
  std::cout << "## Golden fixtures (reference: TensorFlow.js float32)\n\n";
  PrintCaseTable(reports);
  return absl::OkStatus();
}

absl::Status OracleModels(int count, int seed, ThreadPool& pool) {
  std::mt19937 rng(seed);
  std::vector<CaseReport> random, chain;
  for (int i = 0; i < 2 * count; ++i) {
    const bool is_chain = i >= count;
    const ModelSpec spec = is_chain ? testing::RandomChainModelSpec(rng)
                                    : testing::RandomModelSpec(rng);
    absl::StatusOr<std::shared_ptr<const Model>> shape = Model::Create(spec);
    if (!shape.ok()) return shape.status();
    std::vector<int64_t> lengths(4);
    for (int64_t& t : lengths) {
      t = std::uniform_int_distribution<int64_t>(1, 50)(rng);
    }
    RandomBatch batch = MakeRandomBatch(rng, **shape, lengths);
    const EvalOptions options{
        .output = true, .directions = true, .states = true};
    absl::StatusOr<Runs> runs = RunBoth(spec, batch.inputs, options, pool);
    if (!runs.ok()) return runs.status();
    const std::string name =
        absl::StrCat(is_chain ? "chain #" : "random #",
                     is_chain ? i - count : i, ": ", LayerSummary(spec));
    CaseReport report = Compare(name, DecisionOf(spec), batch.inputs, *runs);
    AddReference(*runs, batch.inputs, options, batch.inputs.size(), report);
    (is_chain ? chain : random).push_back(std::move(report));
  }
  std::cout << "## Oracle models (reference: tests/support/reference_model, "
               "Keras' equations with double dot products)\n\n"
            << absl::StrFormat(
                   "Seed %d; each model gets 4 random sequences of 1..50 "
                   "steps. Each cell is median / max over the models.\n\n",
                   seed)
            << "| family | models | max abs dev | normwise rel | elementwise "
               "rel | fp32 err vs ref | bf16 err vs ref | decisions agreeing "
               "| worst (normwise) |\n"
               "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- "
               "|\n";
  PrintDistribution("RandomModelSpec", random);
  PrintDistribution("RandomChainModelSpec", chain);
  std::cout << "\n";
  return absl::OkStatus();
}

absl::Status WorkloadModels(int seed, ThreadPool& pool) {
  std::vector<CaseReport> reports;
  for (const bench::Workload& w : bench::Workloads()) {
    const ModelSpec spec = ModelSpecFromProto(bench::WorkloadModel(w));
    absl::StatusOr<std::shared_ptr<const Model>> shape = Model::Create(spec);
    if (!shape.ok()) return shape.status();
    std::mt19937 rng(seed);
    RandomBatch batch =
        MakeRandomBatch(rng, **shape, bench::WorkloadLengths(w));
    const EvalOptions options{.output = true, .states = true};
    absl::StatusOr<Runs> runs = RunBoth(spec, batch.inputs, options, pool);
    if (!runs.ok()) return runs.status();
    CaseReport report =
        Compare(absl::StrFormat("%s (%s %d->%d)", w.name,
                                w.gru ? "GRU" : "LSTM", w.input, w.units),
                DecisionOf(spec), batch.inputs, *runs);
    // The reference is a scalar loop: two sequences are enough.
    AddReference(*runs, batch.inputs, options, 2, report);
    reports.push_back(std::move(report));
  }
  std::cout << "## Benchmark workload models (bench/workloads.h; random "
               "weights of scale 1/sqrt(units), inputs uniform in [-1, 1]; "
               "reference on the first 2 sequences)\n\n";
  PrintCaseTable(reports);
  return absl::OkStatus();
}

std::string Slurp(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  std::stringstream buffer;
  buffer << file.rdbuf();
  return buffer.str();
}

// Every number in `value`, depth first.
void Flatten(const google::protobuf::Value& value, std::vector<double>& out) {
  if (value.has_list_value()) {
    for (const auto& v : value.list_value().values()) Flatten(v, out);
  } else if (value.kind_case() == google::protobuf::Value::kNumberValue) {
    out.push_back(value.number_value());
  }
}

// A real model file and its ModelSpec.
struct RealModel {
  std::string name;
  ModelSpec spec;
  Decision decision = Decision::kNone;
};

// The real models of `dir`, as keras_file_importer_test reads them:
// expected/<case>.json names the file, its input and the float64
// reference's outputs; refused files are skipped.
absl::Status RealModels(const std::string& dir, ThreadPool& pool,
                        std::vector<RealModel>& loaded) {
  const std::vector<std::string> cases =
      testing::ListCases(dir + "/expected", /*directories=*/false);
  if (cases.empty()) {
    return absl::NotFoundError(
        absl::StrCat("no expected/*.json in --real_models ", dir));
  }
  std::vector<CaseReport> reports;
  std::vector<std::string> skipped;
  for (const std::string& name : cases) {
    google::protobuf::Struct expected;
    const std::string json_path =
        absl::StrCat(dir, "/expected/", name, ".json");
    if (!google::protobuf::util::JsonStringToMessage(Slurp(json_path),
                                                     &expected)
             .ok()) {
      return absl::InvalidArgumentError(absl::StrCat(json_path, ": not JSON"));
    }
    if (expected.fields().contains("expect")) {
      skipped.push_back(name);
      continue;
    }
    const std::string path =
        absl::StrCat(dir, "/", expected.fields().at("file").string_value());
    absl::StatusOr<v1::Model> proto = ImportKerasFile(path, {});
    if (!proto.ok()) return proto.status();
    const ModelSpec spec = ModelSpecFromProto(*proto);
    bool logits = false;
    for (const std::string& c : absl::GetFlag(FLAGS_logits_cases)) {
      logits = logits || (!c.empty() && absl::StrContains(name, c));
    }
    const Decision decision = DecisionOf(spec, logits);
    absl::StatusOr<std::shared_ptr<const Model>> shape = Model::Create(spec);
    if (!shape.ok()) return shape.status();
    std::string input;
    if (!google::protobuf::util::MessageToJsonString(
             expected.fields().at("input"), &input)
             .ok()) {
      return absl::InvalidArgumentError(absl::StrCat(json_path, ": bad input"));
    }
    absl::StatusOr<std::vector<OwnedSequence>> sequences =
        ParseEvalInput(input, **shape);
    if (!sequences.ok()) return sequences.status();
    std::vector<SequenceInput> batch;
    for (const OwnedSequence& s : *sequences) batch.push_back(s.View());
    const EvalOptions options{
        .output = true, .directions = true, .states = true};
    absl::StatusOr<Runs> runs = RunBoth(spec, batch, options, pool);
    if (!runs.ok()) return runs.status();
    CaseReport report = Compare(name, decision, batch, *runs);
    report.has_reference = true;
    const auto& want = expected.fields()
                           .at("expected")
                           .struct_value()
                           .fields()
                           .at("results")
                           .list_value();
    if (want.values_size() != static_cast<int>(batch.size())) {
      return absl::InvalidArgumentError(
          absl::StrCat(json_path, ": ", want.values_size(), " results for ",
                       batch.size(), " sequences"));
    }
    for (int i = 0; i < want.values_size(); ++i) {
      std::vector<double> values;
      Flatten(want.values(i).struct_value().fields().at("output"), values);
      report.fp32_vs_reference.Add<double>(runs->fp32_results[i].output.values,
                                           values);
      report.bf16_vs_reference.Add<double>(runs->bf16_results[i].output.values,
                                           values);
    }
    reports.push_back(std::move(report));
    loaded.push_back({name, spec, decision});
  }
  std::cout << "## Real Keras files (reference: float64, ref_eval.py; "
               "inputs from expected/*.json)\n\n";
  PrintCaseTable(reports);
  if (!skipped.empty()) {
    std::cout << "Skipped (the importer refuses them by design): "
              << absl::StrJoin(skipped, ", ") << "\n\n";
  }
  return absl::OkStatus();
}

// Error versus sequence length: the same model on random sequences of each
// length, both precisions against the reference.
absl::Status LengthSweep(const std::vector<int64_t>& lengths,
                         const std::vector<RealModel>& real, int seed,
                         ThreadPool& pool) {
  struct Swept {
    std::string name;
    ModelSpec spec;
    Decision decision;
  };
  std::vector<Swept> models;
  for (const bench::Workload& w : bench::Workloads()) {
    if (std::string(w.name) == "W1b" || std::string(w.name) == "W3g") {
      models.push_back(
          {absl::StrFormat("%s (%s %d->%d)", w.name, w.gru ? "GRU" : "LSTM",
                           w.input, w.units),
           ModelSpecFromProto(bench::WorkloadModel(w)), Decision::kNone});
    }
  }
  // The bundled taggers, read by threshold (brackets) and argmax (example).
  if (const std::string dir = absl::GetFlag(FLAGS_models_dir); !dir.empty()) {
    for (const char* file : {"brackets/1/model.pb", "example/1/model.pbtxt"}) {
      const std::string path = absl::StrCat(dir, "/", file);
      if (!std::filesystem::exists(path)) continue;
      absl::StatusOr<v1::Model> proto = ReadAnyModelFile(path);
      if (!proto.ok()) return proto.status();
      const ModelSpec spec = ModelSpecFromProto(*proto);
      models.push_back({absl::StrCat("models/", file), spec, DecisionOf(spec)});
    }
  }
  // Trained models whose inputs random token ids are in distribution for.
  for (const RealModel& m : real) {
    if (!m.spec.layers.empty() &&
        std::holds_alternative<EmbeddingSpec>(m.spec.layers.front())) {
      models.push_back({m.name, m.spec, m.decision});
    }
  }
  std::cout << "## Error versus sequence length (4 random sequences per "
               "length; reference: tests/support/reference_model)\n\n"
            << "| model | length | max abs dev (all outputs) | max abs dev "
               "(final states) | normwise rel | fp32 err vs ref | bf16 err "
               "vs ref | decisions agreeing |\n"
               "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n";
  for (const auto& [name, spec, decision] : models) {
    absl::StatusOr<std::shared_ptr<const Model>> shape = Model::Create(spec);
    if (!shape.ok()) return shape.status();
    for (int64_t length : lengths) {
      std::mt19937 rng(seed);
      RandomBatch batch =
          MakeRandomBatch(rng, **shape, std::vector<int64_t>(4, length));
      const EvalOptions options{.output = true, .states = true};
      absl::StatusOr<Runs> runs = RunBoth(spec, batch.inputs, options, pool);
      if (!runs.ok()) return runs.status();
      CaseReport r = Compare(name, decision, batch.inputs, *runs);
      AddReference(*runs, batch.inputs, options, batch.inputs.size(), r);
      std::cout << "| " << name << " | " << length << " | "
                << Num(r.bf16_vs_fp32.max_abs) << " | "
                << Num(r.states_bf16_vs_fp32.max_abs) << " | "
                << Num(r.bf16_vs_fp32.Normwise()) << " | "
                << Num(r.fp32_vs_reference.max_abs) << " | "
                << Num(r.bf16_vs_reference.max_abs) << " | " << AgreementCell(r)
                << " |\n";
    }
  }
  std::cout << "\n";
  return absl::OkStatus();
}

absl::Status Run() {
  if (ServablePrecision(Precision::kBf16) != Precision::kBf16) {
    return absl::FailedPreconditionError(absl::StrCat(
        "BF16 cannot run here, so there is nothing to measure (FP32 against "
        "itself): ",
        PrecisionFallbackReason(Precision::kBf16, Precision::kFp32)));
  }
  std::vector<int64_t> lengths;
  for (absl::string_view part : absl::StrSplit(absl::GetFlag(FLAGS_lengths),
                                               ',', absl::SkipWhitespace())) {
    int64_t length = 0;
    if (!absl::SimpleAtoi(part, &length) || length < 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--lengths must be positive integers separated by commas; had '",
          part, "'"));
    }
    lengths.push_back(length);
  }
  absl::StatusOr<std::unique_ptr<ThreadPool>> pool =
      ThreadPool::Create({.num_threads = absl::GetFlag(FLAGS_threads)});
  if (!pool.ok()) return pool.status();
  const int seed = absl::GetFlag(FLAGS_seed);

  std::cout << "Deviation of BF16 from FP32 over every value each model "
               "returns. max abs dev = max |bf16 - fp32|; normwise rel = max "
               "abs dev / max |fp32|; elementwise rel = max |bf16 - fp32| / "
               "max(|fp32|, "
            << kRelativeFloor
            << "). Errors vs ref are max abs differences from the source's "
               "reference outputs.\n\n";
  if (const std::string dir = absl::GetFlag(FLAGS_golden_dir); !dir.empty()) {
    if (absl::Status s = GoldenFixtures(dir, **pool); !s.ok()) return s;
  }
  if (const int count = absl::GetFlag(FLAGS_oracle_models); count > 0) {
    if (absl::Status s = OracleModels(count, seed, **pool); !s.ok()) return s;
  }
  if (absl::GetFlag(FLAGS_workloads)) {
    if (absl::Status s = WorkloadModels(seed, **pool); !s.ok()) return s;
  }
  std::vector<RealModel> real;
  if (const std::string dir = absl::GetFlag(FLAGS_real_models); !dir.empty()) {
    if (absl::Status s = RealModels(dir, **pool, real); !s.ok()) return s;
  }
  if (!lengths.empty()) {
    if (absl::Status s = LengthSweep(lengths, real, seed, **pool); !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

}  // namespace
}  // namespace biserve

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const absl::Status status = biserve::Run();
  if (!status.ok()) {
    std::cerr << "biserve_precision: " << status << "\n";
    return 1;
  }
  return 0;
}
