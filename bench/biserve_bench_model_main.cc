// biserve_bench_model: writes a benchmark workload's model (random weights,
// fixed seed) as a model repository entry for the server and the load test.
//
//   build/bin/biserve_bench_model --workload W2
//       --out bench/models/w2_lstm/1/model.pb
#include <fstream>
#include <iostream>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "bench/workloads.h"

ABSL_FLAG(std::string, workload, "W2", "Workload name (W1 .. W5).");
ABSL_FLAG(std::string, out, "", "Output model file (binary .pb).");

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const std::string name = absl::GetFlag(FLAGS_workload);
  for (const biserve::bench::Workload& w : biserve::bench::Workloads()) {
    if (name != w.name) continue;
    std::string bytes;
    biserve::bench::WorkloadModel(w).SerializeToString(&bytes);
    std::ofstream file(absl::GetFlag(FLAGS_out), std::ios::binary);
    file << bytes;
    if (!file.flush()) {
      std::cerr << "biserve_bench_model: cannot write "
                << absl::GetFlag(FLAGS_out) << "\n";
      return 1;
    }
    return 0;
  }
  std::cerr << "biserve_bench_model: unknown workload '" << name << "'\n";
  return 1;
}
