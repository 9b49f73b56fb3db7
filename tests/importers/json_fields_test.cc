#include "importers/json_fields.h"

#include <cmath>
#include <limits>

#include "gtest/gtest.h"
#include "tests/importers/json_for_test.h"

namespace biserve::importers {
namespace {

using testing::ParseJson;

TEST(JsonFieldsTest, NullReadsAsAbsent) {
  const google::protobuf::Struct o = ParseJson(R"({"a": null, "b": 1})");
  EXPECT_EQ(Get(o, "a"), nullptr);
  EXPECT_EQ(Get(o, "missing"), nullptr);
  ASSERT_NE(Get(o, "b"), nullptr);
  EXPECT_FALSE(GetNumber(o, "a").has_value());
}

TEST(JsonFieldsTest, AnotherTypeReadsAsAbsent) {
  const google::protobuf::Struct o =
      ParseJson(R"({"s": "x", "n": 2, "b": true, "l": [1], "o": {}})");
  EXPECT_EQ(GetString(o, "s"), "x");
  EXPECT_EQ(GetNumber(o, "n"), 2.0);
  EXPECT_EQ(GetBool(o, "b"), true);
  EXPECT_NE(GetList(o, "l"), nullptr);
  EXPECT_NE(GetObject(o, "o"), nullptr);
  EXPECT_FALSE(GetString(o, "n").has_value());
  EXPECT_FALSE(GetNumber(o, "s").has_value());
  EXPECT_FALSE(GetBool(o, "n").has_value());
  EXPECT_EQ(GetList(o, "o"), nullptr);
  EXPECT_EQ(GetObject(o, "l"), nullptr);
}

TEST(JsonFieldsTest, ToInt32SaturatesAndMapsNanToZero) {
  EXPECT_EQ(ToInt32(12.0), 12);
  EXPECT_EQ(ToInt32(-3.0), -3);
  EXPECT_EQ(ToInt32(1e300), std::numeric_limits<int32_t>::max());
  EXPECT_EQ(ToInt32(-1e300), std::numeric_limits<int32_t>::min());
  EXPECT_EQ(ToInt32(std::nan("")), 0);
}

}  // namespace
}  // namespace biserve::importers
