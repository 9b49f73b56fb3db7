// JSON text as the google.protobuf.Struct the importers read, for tests.
#pragma once

#include <string>

#include "absl/strings/string_view.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"

namespace biserve::importers::testing {

// REQUIRES: `json` is a JSON object (the test fails otherwise).
inline google::protobuf::Struct ParseJson(absl::string_view json) {
  google::protobuf::Struct out;
  const auto status =
      google::protobuf::util::JsonStringToMessage(std::string(json), &out);
  EXPECT_TRUE(status.ok()) << status.message() << " in " << json;
  return out;
}

// Any JSON value, e.g. a layer entry for ParseKerasLayer.
inline google::protobuf::Value ParseJsonValue(absl::string_view json) {
  google::protobuf::Value out;
  const auto status =
      google::protobuf::util::JsonStringToMessage(std::string(json), &out);
  EXPECT_TRUE(status.ok()) << status.message() << " in " << json;
  return out;
}

}  // namespace biserve::importers::testing
