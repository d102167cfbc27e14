#include "mlctl/demo_rpc.h"

#include <atomic>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/money.h"
#include "common/strings.h"
#include "server/grpc_status.h"

namespace microlend::demo {

std::string Tokens::Get(Role role, const std::string& subject) {
  const std::string key = absl::StrCat(AsAbsl(RoleName(role)), ":", subject);
  absl::MutexLock lock(&mu_);
  auto it = cache_.find(key);
  if (it == cache_.end()) {
    it = cache_.emplace(key, signer_.Mint({subject, role}, absl::Now(), absl::Hours(24))).first;
  }
  return it->second;
}

std::unique_ptr<grpc::ClientContext> Ctx(const std::string& token, absl::Duration deadline) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->AddMetadata("authorization", absl::StrCat("Bearer ", token));
  ctx->set_deadline(absl::ToChronoTime(absl::Now() + deadline));
  return ctx;
}

absl::Status Check(const grpc::Status& status, std::string_view what) {
  if (status.ok()) return absl::OkStatus();
  absl::Status s = FromGrpcStatus(status);
  return absl::Status(s.code(), absl::StrCat(AsAbsl(what), ": ", s.message()));
}

absl::Status CallWithRetry(std::string_view what, const std::string& token, absl::Duration deadline,
                           const std::function<grpc::Status(grpc::ClientContext*)>& call) {
  for (int attempt = 1;; ++attempt) {
    std::unique_ptr<grpc::ClientContext> ctx = Ctx(token, deadline);
    const grpc::Status status = call(ctx.get());
    const bool transient = status.error_code() == grpc::StatusCode::UNAVAILABLE ||
                           status.error_code() == grpc::StatusCode::ABORTED ||
                           status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED;
    if (status.ok() || !transient || attempt == kMaxAttempts) return Check(status, what);
    absl::SleepFor(absl::Milliseconds(250) * attempt);
  }
}

absl::Status ParallelFor(size_t n, int threads, const std::function<absl::Status(size_t)>& fn) {
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  absl::Mutex mu;
  absl::Status first_error;
  auto worker = [&] {
    while (!failed.load()) {
      const size_t i = next.fetch_add(1);
      if (i >= n) return;
      absl::Status status = fn(i);
      if (status.ok()) continue;
      absl::MutexLock lock(&mu);
      if (first_error.ok()) first_error = std::move(status);
      failed.store(true);
    }
  };
  std::vector<std::thread> pool;
  for (int t = 0; t < threads && static_cast<size_t>(t) < n; ++t) pool.emplace_back(worker);
  for (std::thread& t : pool) t.join();
  absl::MutexLock lock(&mu);
  return first_error;
}

absl::StatusOr<int64_t> MinorUnits(const common::v1::Money& money) {
  absl::StatusOr<Money> parsed =
      Money::Parse(money.amount(), money.currency(), {.allow_negative = true});
  if (!parsed.ok()) {
    return absl::InternalError(absl::StrCat("the server sent a malformed amount \"", money.amount(),
                                            " ", money.currency(),
                                            "\": ", parsed.status().message()));
  }
  return parsed->minor_units();
}

common::v1::Money UsdMoney(int64_t cents) {
  common::v1::Money m;
  m.set_amount(Money::FromMinor(Currency::Usd(), cents).ToString());
  m.set_currency("USD");
  return m;
}

std::string Count(int64_t n) {
  std::string digits = absl::StrCat(n < 0 ? -n : n);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out.push_back(',');
    out.push_back(digits[i]);
  }
  return n < 0 ? absl::StrCat("-", out) : out;
}

std::string Dollars(int64_t cents) {
  const int64_t magnitude = cents < 0 ? -cents : cents;
  const int64_t frac = magnitude % 100;
  return absl::StrCat(cents < 0 ? "-" : "", Count(magnitude / 100), ".", frac < 10 ? "0" : "",
                      frac);
}

}  // namespace microlend::demo
