#include "server/memory_returner.h"

#include <atomic>
#include <string>

#include "absl/time/clock.h"
#include "biserve/v1/inference.pb.h"
#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/support/slice.h"
#include "gtest/gtest.h"
#include "server/request_admission.h"

namespace biserve {
namespace {

// Waits (up to 20 s: machines here are shared) until `count` reaches `want`.
bool Reaches(const std::atomic<int>& count, int want) {
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (count.load() < want && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  return count.load() >= want;
}

MemoryReturner::Options Counting(std::atomic<int>& count) {
  return {.large_request_bytes = 1000,
          .settle = absl::Milliseconds(10),
          .min_interval = absl::Milliseconds(10),
          .release = [&count] { ++count; }};
}

TEST(MemoryReturnerTest, SmallRequestsNeverReturnMemory) {
  std::atomic<int> returns{0};
  {
    MemoryReturner returner(Counting(returns));
    for (int i = 0; i < 1000; ++i) returner.Freed(999);
    absl::SleepFor(absl::Milliseconds(200));
  }
  EXPECT_EQ(returns.load(), 0);
}

// One return after the settle time, one more an interval later, no more.
TEST(MemoryReturnerTest, ALargeRequestReturnsMemoryTwiceAfterIt) {
  std::atomic<int> returns{0};
  MemoryReturner returner(Counting(returns));
  returner.Freed(1000);
  EXPECT_TRUE(Reaches(returns, 2));
  absl::SleepFor(absl::Milliseconds(200));
  EXPECT_EQ(returns.load(), 2);
  returner.Freed(5000);
  EXPECT_TRUE(Reaches(returns, 4));
}

TEST(MemoryReturnerTest, ReturnsAtMostOncePerInterval) {
  std::atomic<int> returns{0};
  MemoryReturner::Options options = Counting(returns);
  options.min_interval = absl::Hours(1);
  MemoryReturner returner(options);
  returner.Freed(1 << 20);
  ASSERT_TRUE(Reaches(returns, 1));
  for (int i = 0; i < 100; ++i) returner.Freed(1 << 20);
  absl::SleepFor(absl::Milliseconds(200));
  EXPECT_EQ(returns.load(), 1);
}

TEST(MemoryReturnerTest, StopsWithoutWaitingForThePendingReturn) {
  std::atomic<int> returns{0};
  MemoryReturner::Options options = Counting(returns);
  options.settle = absl::Hours(1);
  const absl::Time start = absl::Now();
  {
    MemoryReturner returner(options);
    returner.Freed(1 << 20);
  }
  EXPECT_LT(absl::Now() - start, absl::Minutes(10));
  EXPECT_EQ(returns.load(), 0);
}

grpc::ByteBuffer Bytes(const std::string& bytes) {
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

// Every way a large request is let go of reaches the returner: answered,
// refused by the parse budget, refused for the in-flight limit. (With no
// settle time or interval, each gives two returns at once.)
TEST(MemoryReturnerTest, AdmissionTellsItOfEveryLargeRequestLetGo) {
  std::atomic<int> returns{0};
  MemoryReturner::Options options = Counting(returns);
  options.large_request_bytes = 100000;
  options.settle = absl::ZeroDuration();
  options.min_interval = absl::ZeroDuration();
  MemoryReturner returner(options);
  RequestAdmission admission(
      {.max_inflight_bytes = 300000, .returner = &returner});

  v1::PredictRequest honest;
  honest.set_model_name("m");
  honest.add_sequences()->mutable_features()->Resize(30000, 0.5f);
  v1::PredictRequest parsed;
  {
    auto held = admission.Admit(Bytes(honest.SerializeAsString()), &parsed);
    ASSERT_TRUE(held.ok()) << held.status();
    EXPECT_EQ(returns.load(), 0);  // not while the request is held
    // A second one does not fit beside it.
    auto refused = admission.Admit(Bytes(honest.SerializeAsString()), &parsed);
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnavailable);
    EXPECT_TRUE(Reaches(returns, 2));
  }
  EXPECT_TRUE(Reaches(returns, 4));

  std::string hostile = std::string("\x0a\x01m", 3);
  for (int i = 0; i < 60000; ++i) hostile += std::string("\x1a\x00", 2);
  auto refused = admission.Admit(Bytes(hostile), &parsed);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(Reaches(returns, 6));
  EXPECT_EQ(admission.inflight_bytes(), 0);
}

}  // namespace
}  // namespace biserve
