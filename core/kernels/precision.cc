#include "core/kernels/precision.h"

#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "core/kernels/packed_gemm.h"
#include "core/kernels/packed_gemm_bf16.h"

namespace biserve {

absl::string_view PrecisionName(Precision precision) {
  return precision == Precision::kBf16 ? "BF16" : "FP32";
}

std::optional<Precision> ParsePrecision(absl::string_view text) {
  const std::string upper = absl::AsciiStrToUpper(text);
  if (upper == "FP32") return Precision::kFp32;
  if (upper == "BF16") return Precision::kBf16;
  return std::nullopt;
}

bool AbslParseFlag(absl::string_view text, Precision* precision,
                   std::string* error) {
  std::optional<Precision> parsed = ParsePrecision(text);
  if (!parsed) {
    *error = "expected FP32 or BF16";
    return false;
  }
  *precision = *parsed;
  return true;
}

std::string AbslUnparseFlag(Precision precision) {
  return std::string(PrecisionName(precision));
}

Precision ServablePrecision(Precision requested) {
  if (requested == Precision::kBf16 && PackedGemmBf16Available()) {
    return Precision::kBf16;
  }
  return Precision::kFp32;
}

std::string PrecisionFallbackReason(Precision requested, Precision served) {
  if (requested == served) return "";
  if (ServablePrecision(requested) == requested) {
    // Not this CPU's doing: the loader built the model in another one.
    return absl::StrCat(PrecisionName(requested), " was asked for; serving ",
                        PrecisionName(served));
  }
  return absl::StrCat(
      PrecisionName(requested), " was asked for; serving ",
      PrecisionName(served), ": ",
      std::string(PackedGemmIsa()) == "avx512"
          ? "this CPU has no AVX512_BF16"
          : absl::StrCat("the packed kernels run ", PackedGemmIsa(),
                         " here (BF16 needs AVX-512 with AVX512_BF16)"));
}

}  // namespace biserve
