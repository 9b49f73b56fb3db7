#include "server/request_admission.h"

namespace biserve {

absl::Status RequestAdmission::Reserve(int64_t bytes,
                                       Reservation* reservation) {
  const int64_t mine = reservation->bytes_ + bytes;
  const int64_t held = inflight_bytes_.fetch_add(bytes) + bytes;
  // Alone (nothing held but this request), a request always gets through:
  // it fits in --max_message_bytes, and the parse budget bounds the rest.
  if (held > options_.max_inflight_bytes && held != mine) {
    Unreserve(bytes);  // (the request is let go of too)
    return absl::UnavailableError(absl::StrCat(
        "the server holds ", held - mine,
        " bytes of requests in flight, and this one's ", mine,
        " (its size and parsed size) would exceed --max_inflight_bytes (",
        options_.max_inflight_bytes, "); retry with backoff"));
  }
  reservation->owner_ = this;
  reservation->bytes_ = mine;
  return absl::OkStatus();
}

void RequestAdmission::Unreserve(int64_t bytes) {
  inflight_bytes_.fetch_sub(bytes);
  if (options_.returner != nullptr) options_.returner->Freed(bytes);
}

absl::Status RequestAdmission::Explain(const absl::Status& scan_status) const {
  if (scan_status.code() != absl::StatusCode::kResourceExhausted) {
    return scan_status;
  }
  return absl::ResourceExhaustedError(absl::StrCat(
      scan_status.message(), "; the server parses a request of N bytes within ",
      kParsedBytesPerWireByte, " x N + ", kParseBudgetFloorBytes,
      " bytes of memory, which every request made of packed tensors meets"));
}

}  // namespace biserve
