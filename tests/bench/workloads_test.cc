#include "bench/workloads.h"

#include <string>

#include "core/model/model.h"
#include "gtest/gtest.h"
#include "proto/model_codec.h"
#include "proto/read_file.h"

namespace biserve::bench {
namespace {

TEST(WorkloadsTest, EveryWorkloadModelValidates) {
  for (const Workload& w : Workloads()) {
    auto model = Model::Create(ModelSpecFromProto(WorkloadModel(w)));
    ASSERT_TRUE(model.ok()) << w.name << ": " << model.status();
    EXPECT_EQ((*model)->input_dim(), w.input);
    EXPECT_EQ((*model)->output_size(), 2 * w.units);
    EXPECT_EQ(WorkloadLengths(w).size(), static_cast<size_t>(w.batch));
  }
}

// bench/models/ is what bench/make_models.sh writes: regenerate it when the
// workloads change.
TEST(WorkloadsTest, CommittedW2ModelIsTheGeneratedOne) {
  const Workload* w2 = nullptr;
  for (const Workload& w : Workloads()) {
    if (std::string(w.name) == "W2") w2 = &w;
  }
  ASSERT_NE(w2, nullptr);
  auto committed = ReadFile(
      std::string(BISERVE_SOURCE_DIR) + "/bench/models/w2_lstm/1/model.pb",
      "the W2 model");
  ASSERT_TRUE(committed.ok()) << committed.status();
  std::string generated;
  ASSERT_TRUE(WorkloadModel(*w2).SerializeToString(&generated));
  EXPECT_TRUE(*committed == generated)
      << "run bench/make_models.sh and commit bench/models/";
}

}  // namespace
}  // namespace biserve::bench
