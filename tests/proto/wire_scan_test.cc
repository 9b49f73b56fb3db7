#include "proto/wire_scan.h"

#include <string>

#include "absl/strings/escaping.h"
#include "biserve/v1/inference.pb.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "gtest/gtest.h"
#include "inference/grpc_predict_v2.pb.h"

namespace biserve {
namespace {

absl::StatusOr<WireScan> Scan(const google::protobuf::Message& type,
                              const std::string& bytes,
                              int64_t max_bytes = int64_t{1} << 40) {
  google::protobuf::io::ArrayInputStream in(bytes.data(),
                                            static_cast<int>(bytes.size()));
  return ScanWire(*type.GetDescriptor(), &in, max_bytes);
}

TEST(WireScanTest, CountsTopLevelFieldsOfAValidRequest) {
  v1::PredictRequest request;
  request.set_model_name("brackets");
  for (int i = 0; i < 3; ++i) {
    v1::Sequence* s = request.add_sequences();
    s->add_token_ids(1);
    s->add_token_ids(200);
    s->add_features(0.5f);
  }
  request.set_request_id("r");
  absl::StatusOr<WireScan> scan = Scan(request, request.SerializeAsString());
  ASSERT_TRUE(scan.ok()) << scan.status();
  EXPECT_EQ(scan->CountOf(v1::PredictRequest::kSequencesFieldNumber), 3);
  EXPECT_EQ(scan->CountOf(v1::PredictRequest::kModelNameFieldNumber), 1);
  EXPECT_EQ(scan->CountOf(v1::PredictRequest::kOutputsFieldNumber), 0);
}

TEST(WireScanTest, EstimateCoversWhatProtobufAllocates) {
  // Many empty sequences: 2 bytes each on the wire, far more parsed.
  std::string bytes;
  for (int i = 0; i < 10000; ++i) bytes += std::string("\x1a\x00", 2);
  v1::PredictRequest parsed;
  ASSERT_TRUE(parsed.ParseFromString(bytes));
  absl::StatusOr<WireScan> scan = Scan(parsed, bytes);
  ASSERT_TRUE(scan.ok()) << scan.status();
  EXPECT_EQ(scan->CountOf(v1::PredictRequest::kSequencesFieldNumber), 10000);
  // At least what protobuf itself says the parsed message uses.
  EXPECT_GE(scan->parsed_bytes,
            static_cast<int64_t>(parsed.SpaceUsedLong()) * 9 / 10);
  EXPECT_GT(scan->parsed_bytes, 20 * static_cast<int64_t>(bytes.size()));
}

TEST(WireScanTest, RefusesOverTheBudgetWithoutReadingOn) {
  std::string bytes;
  for (int i = 0; i < 100000; ++i) bytes += std::string("\x1a\x00", 2);
  absl::StatusOr<WireScan> scan =
      Scan(v1::PredictRequest(), bytes, /*max_bytes=*/100000);
  ASSERT_EQ(scan.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(scan.status().message().find("PredictRequest would take more "
                                         "than 100000 bytes"),
            std::string::npos)
      << scan.status();
}

TEST(WireScanTest, CountsUnknownFieldsAndPackedVarints) {
  // Field 15 is unknown to PredictRequest: each is kept as a record.
  std::string unknown;
  for (int i = 0; i < 1000; ++i) unknown += std::string("\x78\x01", 2);
  absl::StatusOr<WireScan> scan = Scan(v1::PredictRequest(), unknown);
  ASSERT_TRUE(scan.ok()) << scan.status();
  EXPECT_GE(scan->parsed_bytes, 16 * 1000);

  // Packed int64 contents of 1-byte varints: 8 bytes each once parsed.
  inference::ModelInferRequest::InferInputTensor tensor;
  for (int i = 0; i < 1000; ++i) {
    tensor.mutable_contents()->add_int64_contents(i % 100);
  }
  scan = Scan(tensor, tensor.SerializeAsString());
  ASSERT_TRUE(scan.ok()) << scan.status();
  EXPECT_GE(scan->parsed_bytes, 8 * 1000);
}

TEST(WireScanTest, AcceptsWhatProtobufAcceptsAndRefusesCorruptBytes) {
  inference::ModelInferRequest request;
  request.set_model_name("m");
  auto* input = request.add_inputs();
  input->set_name("features");
  input->set_datatype("FP32");
  input->add_shape(1);
  input->mutable_contents()->add_fp32_contents(1.5f);
  (*request.mutable_parameters())["raw_output"].set_bool_param(true);
  request.add_raw_input_contents(std::string(100, 'x'));
  const std::string good = request.SerializeAsString();
  EXPECT_TRUE(Scan(request, good).ok());

  for (const std::string& bad :
       {std::string("\xff\xff\xff"), good.substr(0, good.size() - 3),
        // A string, a packed run and an unknown field claiming 4 GB.
        std::string("\x0a\xff\xff\xff\xff\x0f", 6),
        std::string("\x22\xff\xff\xff\xff\x0f", 6),
        std::string("\x7a\xff\xff\xff\xff\x0f", 6),
        std::string("\x0a\x10short", 7), std::string("\x00\x01", 2),
        std::string("\x0b\x01", 2) /* a group never closed */}) {
    inference::ModelInferRequest check;
    if (check.ParseFromString(bad)) continue;  // only what protobuf refuses
    // Corrupt, not large: even within a small budget.
    EXPECT_EQ(Scan(request, bad, /*max_bytes=*/1 << 20).status().code(),
              absl::StatusCode::kInvalidArgument)
        << absl::CHexEscape(bad);
  }
}

TEST(WireScanTest, RefusesNestingDeeperThanProtobufAllows) {
  // Unknown groups nested 200 deep.
  std::string bytes;
  for (int i = 0; i < 200; ++i) bytes += "\x7b";  // field 15, START_GROUP
  for (int i = 0; i < 200; ++i) bytes += "\x7c";  // field 15, END_GROUP
  EXPECT_EQ(Scan(v1::PredictRequest(), bytes).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace biserve
