#include "proto/wire_scan.h"

#include <algorithm>
#include <limits>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.pb.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/message.h"
#include "google/protobuf/wire_format_lite.h"

namespace biserve {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::internal::WireFormatLite;
using google::protobuf::io::CodedInputStream;

// protobuf's own recursion limit (CodedInputStream's default).
constexpr int kMaxDepth = 100;
constexpr int64_t kPointerBytes = sizeof(void*);
// An UnknownField record, kept for every field the schema does not know.
constexpr int64_t kUnknownFieldBytes = 16;
// The UnknownFieldSet an unknown group holds its fields in.
constexpr int64_t kUnknownGroupBytes = 24;
// A map entry's node (hash, links) beside its key and value.
constexpr int64_t kMapNodeBytes = 48;

// A std::string object, and its heap buffer when the text does not fit in
// libstdc++'s 15-character inline buffer.
int64_t StringBytes(int64_t length) {
  return static_cast<int64_t>(sizeof(std::string)) +
         (length > 15 ? length + 1 : 0);
}

// Bytes one element of a repeated scalar field takes in its RepeatedField.
int64_t ElementBytes(const FieldDescriptor& field) {
  switch (field.cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT64:
    case FieldDescriptor::CPPTYPE_UINT64:
    case FieldDescriptor::CPPTYPE_DOUBLE:
      return 8;
    case FieldDescriptor::CPPTYPE_BOOL:
      return 1;
    default:
      return 4;
  }
}

absl::Status Malformed(const Descriptor& type) {
  return absl::InvalidArgumentError(
      absl::StrCat("the message is not a valid ", type.full_name(),
                   " (truncated or corrupt protobuf wire format)"));
}

class Scanner {
 public:
  Scanner(const Descriptor& root, CodedInputStream* in, int64_t max_bytes)
      : root_(root), in_(in), max_bytes_(max_bytes) {}

  absl::Status ScanRoot() {
    if (absl::Status s = Add(MessageBytes(root_)); !s.ok()) return s;
    if (absl::Status s = ScanMessage(&root_, /*depth=*/0, /*end_group=*/0);
        !s.ok()) {
      return s;
    }
    if (!in_->ConsumedEntireMessage()) return Malformed(root_);
    return absl::OkStatus();
  }

  WireScan& result() { return result_; }

 private:
  // Fields of one message (`type` null: an unknown group's contents) up to
  // the current limit, or to the END_GROUP tag of field `end_group`.
  absl::Status ScanMessage(const Descriptor* type, int depth, int end_group) {
    while (true) {
      const uint32_t tag = in_->ReadTag();
      if (tag == 0) {
        // The end of the bytes (or a zero tag, which ConsumedEntireMessage
        // and the callers' limit checks tell apart). An open group is never
        // closed by it.
        return end_group == 0 ? absl::OkStatus() : Malformed(root_);
      }
      const int number = WireFormatLite::GetTagFieldNumber(tag);
      const WireFormatLite::WireType wire_type =
          WireFormatLite::GetTagWireType(tag);
      if (wire_type == WireFormatLite::WIRETYPE_END_GROUP) {
        return number == end_group ? absl::OkStatus() : Malformed(root_);
      }
      if (depth == 0 && number < 64) ++result_.top_level_counts[number];
      const FieldDescriptor* field =
          type == nullptr ? nullptr : type->FindFieldByNumber(number);
      absl::Status s = field != nullptr && Known(*field, wire_type)
                           ? ScanField(*field, wire_type, depth)
                           : ScanUnknown(wire_type, number, depth);
      if (!s.ok()) return s;
    }
  }

  // Whether protobuf parses this wire type into `field` (otherwise it keeps
  // it as an unknown field).
  static bool Known(const FieldDescriptor& field,
                    WireFormatLite::WireType wire_type) {
    if (field.type() == FieldDescriptor::TYPE_GROUP) return false;
    const auto expected = WireFormatLite::WireTypeForFieldType(
        static_cast<WireFormatLite::FieldType>(field.type()));
    return wire_type == expected ||
           (field.is_packable() &&
            wire_type == WireFormatLite::WIRETYPE_LENGTH_DELIMITED);
  }

  absl::Status ScanField(const FieldDescriptor& field,
                         WireFormatLite::WireType wire_type, int depth) {
    const int64_t slot = field.is_repeated() ? kPointerBytes : 0;
    if (field.cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      const Descriptor& sub = *field.message_type();
      if (absl::Status s = Add(slot + MessageBytes(sub)); !s.ok()) return s;
      return ScanLengthDelimited(&sub, depth);
    }
    if (field.cpp_type() == FieldDescriptor::CPPTYPE_STRING) {
      uint32_t length;
      // Skipped first: a length past the end is corrupt, not large.
      if (!in_->ReadVarint32(&length) || !in_->Skip(length)) {
        return Malformed(root_);
      }
      return Add(slot + StringBytes(length));
    }
    if (wire_type == WireFormatLite::WIRETYPE_LENGTH_DELIMITED) {
      return ScanPacked(field);
    }
    if (!SkipScalar(wire_type)) return Malformed(root_);
    return Add(field.is_repeated() ? ElementBytes(field) : 0);
  }

  // A packed run of scalars: its element count, from the bytes.
  absl::Status ScanPacked(const FieldDescriptor& field) {
    uint32_t length;
    if (!in_->ReadVarint32(&length)) return Malformed(root_);
    int64_t count = 0;
    switch (WireFormatLite::WireTypeForFieldType(
        static_cast<WireFormatLite::FieldType>(field.type()))) {
      case WireFormatLite::WIRETYPE_FIXED32:
        count = length / 4;
        if (!in_->Skip(length)) return Malformed(root_);
        break;
      case WireFormatLite::WIRETYPE_FIXED64:
        count = length / 8;
        if (!in_->Skip(length)) return Malformed(root_);
        break;
      default: {  // varints: one ends at each byte without the high bit
        char buffer[4096];
        for (uint32_t left = length; left > 0;) {
          const int chunk = static_cast<int>(std::min<uint32_t>(left, 4096));
          if (!in_->ReadRaw(buffer, chunk)) return Malformed(root_);
          for (int i = 0; i < chunk; ++i) {
            count += (static_cast<unsigned char>(buffer[i]) & 0x80) == 0;
          }
          left -= chunk;
        }
        return Add(count * ElementBytes(field));
      }
    }
    return Add(count * ElementBytes(field));
  }

  absl::Status ScanUnknown(WireFormatLite::WireType wire_type, int number,
                           int depth) {
    if (absl::Status s = Add(kUnknownFieldBytes); !s.ok()) return s;
    switch (wire_type) {
      case WireFormatLite::WIRETYPE_LENGTH_DELIMITED: {
        uint32_t length;
        if (!in_->ReadVarint32(&length) || !in_->Skip(length)) {
          return Malformed(root_);
        }
        return Add(StringBytes(length));
      }
      case WireFormatLite::WIRETYPE_START_GROUP:
        if (depth + 1 > kMaxDepth) return TooDeep();
        if (absl::Status s = Add(kUnknownGroupBytes); !s.ok()) return s;
        return ScanMessage(nullptr, depth + 1, number);
      default:
        return SkipScalar(wire_type) ? absl::OkStatus() : Malformed(root_);
    }
  }

  // A sub-message: its length, then its fields within that length.
  absl::Status ScanLengthDelimited(const Descriptor* sub, int depth) {
    if (depth + 1 > kMaxDepth) return TooDeep();
    uint32_t length;
    if (!in_->ReadVarint32(&length)) return Malformed(root_);
    // A length past the end shows as bytes left before the limit below.
    const CodedInputStream::Limit limit = in_->PushLimit(length);
    absl::Status s = ScanMessage(sub, depth + 1, /*end_group=*/0);
    if (s.ok() && in_->BytesUntilLimit() != 0) s = Malformed(root_);
    in_->PopLimit(limit);
    return s;
  }

  bool SkipScalar(WireFormatLite::WireType wire_type) {
    uint64_t value;
    uint32_t value32;
    switch (wire_type) {
      case WireFormatLite::WIRETYPE_VARINT:
        return in_->ReadVarint64(&value);
      case WireFormatLite::WIRETYPE_FIXED64:
        return in_->ReadLittleEndian64(&value);
      case WireFormatLite::WIRETYPE_FIXED32:
        return in_->ReadLittleEndian32(&value32);
      default:
        return false;
    }
  }

  // The size of an empty message object of this type (its class), once per
  // type per scan.
  int64_t MessageBytes(const Descriptor& type) {
    auto [it, inserted] = message_bytes_.try_emplace(&type, 0);
    if (inserted && type.options().map_entry()) {
      // A map entry lives as its key and value in the map's node (and
      // MapEntry's SpaceUsedLong fails on the default instance).
      it->second = kMapNodeBytes;
      for (int i = 0; i < type.field_count(); ++i) {
        const FieldDescriptor& f = *type.field(i);
        it->second += f.cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE
                          ? MessageBytes(*f.message_type())
                          : static_cast<int64_t>(sizeof(std::string));
      }
    } else if (inserted) {
      const google::protobuf::Message* prototype =
          google::protobuf::MessageFactory::generated_factory()->GetPrototype(
              &type);
      it->second = prototype == nullptr
                       ? 64
                       : static_cast<int64_t>(prototype->SpaceUsedLong());
    }
    return it->second;
  }

  absl::Status Add(int64_t bytes) {
    result_.parsed_bytes += bytes;
    if (result_.parsed_bytes > max_bytes_) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "the ", root_.name(), " would take more than ", max_bytes_,
          " bytes of memory once parsed (it holds that many sub-messages, "
          "strings, repeated values or unknown fields)"));
    }
    return absl::OkStatus();
  }

  absl::Status TooDeep() {
    return absl::InvalidArgumentError(
        absl::StrCat("the ", root_.name(), " nests messages deeper than ",
                     kMaxDepth, " levels"));
  }

  const Descriptor& root_;
  CodedInputStream* const in_;
  const int64_t max_bytes_;
  WireScan result_;
  absl::flat_hash_map<const Descriptor*, int64_t> message_bytes_;
};

}  // namespace

absl::StatusOr<WireScan> ScanWire(
    const Descriptor& type, google::protobuf::io::ZeroCopyInputStream* wire,
    int64_t max_parsed_bytes) {
  CodedInputStream in(wire);
  in.SetTotalBytesLimit(std::numeric_limits<int>::max());
  Scanner scanner(type, &in, max_parsed_bytes);
  if (absl::Status s = scanner.ScanRoot(); !s.ok()) return s;
  return std::move(scanner.result());
}

}  // namespace biserve
