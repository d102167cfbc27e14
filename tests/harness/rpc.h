// Test-side gRPC helpers: contexts carrying a bearer token and a deadline, Money literals.
#ifndef MICROLEND_TESTS_HARNESS_RPC_H_
#define MICROLEND_TESTS_HARNESS_RPC_H_

#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "microlend/common/v1/common.pb.h"

namespace microlend::testing {

inline std::unique_ptr<grpc::ClientContext> Ctx(const std::string& token,
                                                absl::Duration deadline = absl::Seconds(30)) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  if (!token.empty()) ctx->AddMetadata("authorization", absl::StrCat("Bearer ", token));
  ctx->set_deadline(absl::ToChronoTime(absl::Now() + deadline));
  return ctx;
}

inline common::v1::Money M(const std::string& amount, const std::string& currency = "USD") {
  common::v1::Money m;
  m.set_amount(amount);
  m.set_currency(currency);
  return m;
}

inline std::shared_ptr<grpc::Channel> Channel(const std::string& target) {
  return grpc::CreateChannel(target, grpc::InsecureChannelCredentials());
}

}  // namespace microlend::testing

#endif  // MICROLEND_TESTS_HARNESS_RPC_H_
