#include "importers/json_fields.h"

#include <algorithm>
#include <cmath>

namespace biserve::importers {

using google::protobuf::ListValue;
using google::protobuf::Struct;
using google::protobuf::Value;

const Value* Get(const Struct& object, absl::string_view key) {
  auto it = object.fields().find(std::string(key));
  if (it == object.fields().end() ||
      it->second.kind_case() == Value::kNullValue) {
    return nullptr;
  }
  return &it->second;
}

const Struct* GetObject(const Struct& object, absl::string_view key) {
  const Value* v = Get(object, key);
  return v != nullptr && v->has_struct_value() ? &v->struct_value() : nullptr;
}

const ListValue* GetList(const Struct& object, absl::string_view key) {
  const Value* v = Get(object, key);
  return v != nullptr && v->has_list_value() ? &v->list_value() : nullptr;
}

std::optional<std::string> GetString(const Struct& object,
                                     absl::string_view key) {
  const Value* v = Get(object, key);
  if (v == nullptr || v->kind_case() != Value::kStringValue) {
    return std::nullopt;
  }
  return v->string_value();
}

std::optional<double> GetNumber(const Struct& object, absl::string_view key) {
  const Value* v = Get(object, key);
  if (v == nullptr || v->kind_case() != Value::kNumberValue) {
    return std::nullopt;
  }
  return v->number_value();
}

std::optional<bool> GetBool(const Struct& object, absl::string_view key) {
  const Value* v = Get(object, key);
  if (v == nullptr || v->kind_case() != Value::kBoolValue) return std::nullopt;
  return v->bool_value();
}

int32_t ToInt32(double v) {
  if (std::isnan(v)) return 0;
  return static_cast<int32_t>(std::clamp(v, -2147483648.0, 2147483647.0));
}

}  // namespace biserve::importers
