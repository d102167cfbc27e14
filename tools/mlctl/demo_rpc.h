// What mlctl's demo needs to call the services: bearer tokens minted once per principal, client
// contexts with a deadline, bounded retries of idempotent calls, and a small parallel loop.
//
// Retries: every mutating call the demo makes carries a fixed request_id, so after a transient
// failure (UNAVAILABLE, ABORTED, DEADLINE_EXCEEDED) the same request is sent again, up to
// kMaxAttempts times; what already went through is replayed by the server, never applied twice.
// Thread-safe: Tokens locks its cache; the free functions share nothing.
#ifndef MICROLEND_TOOLS_MLCTL_DEMO_RPC_H_
#define MICROLEND_TOOLS_MLCTL_DEMO_RPC_H_

#include <grpcpp/client_context.h>
#include <grpcpp/support/status.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/auth.h"
#include "microlend/common/v1/common.pb.h"

namespace microlend::demo {

inline constexpr int kMaxAttempts = 4;
inline constexpr absl::Duration kCallDeadline = absl::Seconds(30);
// A bulk call applies up to 300 items one after another.
inline constexpr absl::Duration kBulkCallDeadline = absl::Seconds(120);

class Tokens {
 public:
  explicit Tokens(TokenSigner signer) : signer_(std::move(signer)) {}
  // A token for `subject` in `role`, valid for a day.
  std::string Get(Role role, const std::string& subject);

 private:
  TokenSigner signer_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::string> cache_ ABSL_GUARDED_BY(mu_);
};

std::unique_ptr<grpc::ClientContext> Ctx(const std::string& token,
                                         absl::Duration deadline = kCallDeadline);

// OK, or the gRPC status as an absl::Status prefixed with `what`.
absl::Status Check(const grpc::Status& status, std::string_view what);

// Calls `call(context)` until it succeeds, fails for good, or kMaxAttempts are spent.
absl::Status CallWithRetry(std::string_view what, const std::string& token, absl::Duration deadline,
                           const std::function<grpc::Status(grpc::ClientContext*)>& call);

// Runs fn(0) .. fn(n - 1) on `threads` threads; stops handing out work after the first error and
// returns it.
absl::Status ParallelFor(size_t n, int threads, const std::function<absl::Status(size_t)>& fn);

// Wire money <-> minor units. Amounts from the servers are well-formed; a malformed one is
// Internal (the server broke its contract).
absl::StatusOr<int64_t> MinorUnits(const common::v1::Money& money);
common::v1::Money UsdMoney(int64_t cents);

// 123456789 -> "1,234,567.89" (USD cents for people to read).
std::string Dollars(int64_t cents);
// 12345 -> "12,345".
std::string Count(int64_t n);

}  // namespace microlend::demo

#endif  // MICROLEND_TOOLS_MLCTL_DEMO_RPC_H_
