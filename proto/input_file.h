// InputFile: the type of a command-line flag that names an input file, or
// standard input as "-" (biserve --input, biserve_eval --input).
//
// Why a type of its own rather than std::string: Abseil's flag parser warns
// "Did you really mean to set flag 'input' to the value '-'?" whenever a
// std::string flag is given a value starting with '-' as the next argument
// ("--input -"), a guard against "--name --other_flag" typos. The check
// applies to std::string flags only, and here "-" is the value meant.
#pragma once

#include <iostream>
#include <iterator>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "proto/read_file.h"

namespace biserve {

struct InputFile {
  std::string path;  // "-": standard input

  bool is_stdin() const { return path == "-"; }
};

// Abseil's flag hooks: any text is a path ("" too: it fails when read).
inline bool AbslParseFlag(absl::string_view text, InputFile* input,
                          std::string* /*error*/) {
  input->path = std::string(text);
  return true;
}
inline std::string AbslUnparseFlag(const InputFile& input) {
  return input.path;
}

// The whole input: standard input, or the file (NOT_FOUND naming it when it
// cannot be opened, as ReadFile).
inline absl::StatusOr<std::string> ReadInput(const InputFile& input) {
  if (input.is_stdin()) {
    return std::string(std::istreambuf_iterator<char>(std::cin), {});
  }
  return ReadFile(input.path, "the input");
}

}  // namespace biserve
