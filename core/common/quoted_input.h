// QuotedInput: text a client sent, made safe to echo in an error message.
//
// Error messages travel back in the grpc-message header. A client's default
// metadata limit is 8 KB, so a message that echoes a 100,000-character model
// name whole reaches the client as RESOURCE_EXHAUSTED with no message at all;
// and gRPC status messages must be valid UTF-8, which raw client bytes need
// not be. So every piece of client input an error message repeats (model
// names, versions, tensor and parameter names, request ids) goes through
// QuotedInput: quoted, escaped and cut.
#pragma once

#include <cstddef>
#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace biserve {

// How many bytes of client input an error message repeats.
inline constexpr size_t kQuotedInputMaxBytes = 100;

// `text` in single quotes, C-escaped: quotes, backslashes, control
// characters and every byte outside printable ASCII become escapes (\n,
// \', \xc3...), so the result is printable ASCII (hence valid UTF-8)
// whatever the client sent. Text longer than `max_bytes` is cut there, and
// the cut shows with the original size:
//   QuotedInput("brackets")          'brackets'
//   QuotedInput("a\nb")              'a\nb'
//   QuotedInput(100000 x "a")        'aaa...a'... (100000 bytes)
// At most 4 * max_bytes + 30 characters long.
inline std::string QuotedInput(absl::string_view text,
                               size_t max_bytes = kQuotedInputMaxBytes) {
  // Escaped after cutting, so that an escape is never split.
  std::string quoted =
      absl::StrCat("'", absl::CHexEscape(text.substr(0, max_bytes)), "'");
  if (text.size() > max_bytes) {
    absl::StrAppend(&quoted, "... (", text.size(), " bytes)");
  }
  return quoted;
}

}  // namespace biserve
