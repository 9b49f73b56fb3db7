// The benchmark workloads of the performance issue, and their models.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/types/span.h"
#include "biserve/v1/model.pb.h"

namespace biserve::bench {

struct Workload {
  const char* name;
  bool gru;    // GRU (reset_after) instead of LSTM
  int input;   // features per step
  int units;   // per direction
  int length;  // steps per sequence; 0: uniform in 1..200, fixed seed
  int batch;   // sequences per batch
};

// W1 .. W5: bidirectional, float32, full sequences returned, merge concat.
absl::Span<const Workload> Workloads();

// The workload's model with random weights (fixed seed): one Bidirectional
// layer, return_sequences, concat, named after the workload.
v1::Model WorkloadModel(const Workload& workload);

// The workload's sequence lengths (fixed seed for W5).
std::vector<int64_t> WorkloadLengths(const Workload& workload);

// FLOPs of one sequence step: 2 directions x 2 x G x units x (input + units).
double FlopsPerStep(const Workload& workload);

}  // namespace biserve::bench
