// mlctl: the microlend command-line client for local use, scripts and the demo.
//   mlctl token  --role ops --subject ops-1 [--ttl_hours 24]   print a signed bearer token
//   mlctl health --target 127.0.0.1:50051 [--service NAME]     exit 0 when SERVING
//   mlctl wait   --targets a,b,c [--timeout_s 60]              wait until all are SERVING
//   mlctl whoami --target ... --token ...                      the principal behind a token
//   mlctl status --target ... --token ...                      ServerAdmin.GetServerStatus
//   mlctl demo   [--lending ...] [--matching ...] [--notify ...]
// The token secret comes from --auth_secret or MICROLEND_AUTH_SECRET, like the servers.
#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include <cstdio>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/auth.h"
#include "common/config.h"
#include "microlend/common/v1/common.grpc.pb.h"
#include "server/bootstrap.h"
#include "server/grpc_status.h"
#include "server/health_client.h"

namespace microlend {
namespace {

namespace cv1 = ::microlend::common::v1;

FlagSet MakeFlags() {
  return FlagSet(
      "mlctl <token|health|wait|whoami|status|demo>",
      {{"auth_secret", "MICROLEND_AUTH_SECRET", std::string(kDevAuthSecret), "token secret"},
       {"role", "", "ops", "token role: lender, partner, ops, service"},
       {"subject", "", "ops-1", "token subject (lender or partner id for those roles)"},
       {"ttl_hours", "", "24", "token lifetime"},
       {"target", "", "127.0.0.1:50051", "server address"},
       {"targets", "", "127.0.0.1:50051,127.0.0.1:50052,127.0.0.1:50053", "addresses to wait for"},
       {"service", "", "", "service name for health (empty: whole server)"},
       {"timeout_s", "", "60", "how long wait may take"},
       {"token", "MICROLEND_TOKEN", "", "bearer token for whoami/status"},
       {"lending", "MICROLEND_LENDING_ADDR", "127.0.0.1:50051", "lending address"},
       {"matching", "MICROLEND_MATCHING_ADDR", "127.0.0.1:50052", "matching address"},
       {"notify", "MICROLEND_NOTIFY_ADDR", "127.0.0.1:50053", "notify address"}});
}

absl::StatusOr<std::string> MintToken(const FlagSet& flags, Role role, const std::string& subject) {
  absl::StatusOr<TokenSigner> signer = TokenSigner::Create(flags.GetString("auth_secret"));
  if (!signer.ok()) return signer.status();
  absl::StatusOr<int64_t> ttl = flags.GetInt("ttl_hours");
  if (!ttl.ok()) return ttl.status();
  return signer->Mint({subject, role}, absl::Now(), absl::Hours(*ttl));
}

std::unique_ptr<cv1::ServerAdmin::Stub> AdminStub(const std::string& target) {
  return cv1::ServerAdmin::NewStub(grpc::CreateChannel(target, grpc::InsecureChannelCredentials()));
}

void Authorize(grpc::ClientContext* ctx, const std::string& token) {
  ctx->AddMetadata("authorization", absl::StrCat("Bearer ", token));
  ctx->set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
}

absl::StatusOr<cv1::GetServerStatusResponse> Status(const std::string& target,
                                                    const std::string& token) {
  grpc::ClientContext ctx;
  Authorize(&ctx, token);
  cv1::GetServerStatusResponse response;
  grpc::Status s = AdminStub(target)->GetServerStatus(&ctx, {}, &response);
  if (!s.ok()) return FromGrpcStatus(s);
  return response;
}

void PrintStatus(const std::string& target, const cv1::GetServerStatusResponse& r) {
  std::printf("%-9s %-16s version %s, %d migrations applied\n", r.service().c_str(),
              target.c_str(), r.version().c_str(), r.migrations_size());
  for (const auto& d : r.dependencies()) {
    std::printf("          depends on %-10s %-28s %s\n", d.name().c_str(), d.endpoint().c_str(),
                d.reachable() ? "reachable" : d.detail().c_str());
  }
}

absl::Status WhoAmI(const std::string& target, const std::string& token) {
  grpc::ClientContext ctx;
  Authorize(&ctx, token);
  cv1::WhoAmIResponse response;
  grpc::Status s = AdminStub(target)->WhoAmI(&ctx, {}, &response);
  if (!s.ok()) return FromGrpcStatus(s);
  std::printf("subject=%s role=%s\n", response.principal().subject().c_str(),
              cv1::Role_Name(response.principal().role()).c_str());
  return absl::OkStatus();
}

// Calls each service once with minted tokens: WhoAmI as a lender, GetServerStatus as ops.
absl::Status Demo(const FlagSet& flags) {
  absl::StatusOr<std::string> ops = MintToken(flags, Role::kOps, "ops-demo");
  absl::StatusOr<std::string> lender = MintToken(flags, Role::kLender, "1");
  if (!ops.ok()) return ops.status();
  if (!lender.ok()) return lender.status();
  for (const char* name : {"lending", "matching", "notify"}) {
    const std::string& target = flags.GetString(name);
    if (absl::Status s = CheckHealth(target, "", absl::Seconds(5)); !s.ok()) return s;
    if (absl::Status s = WhoAmI(target, *lender); !s.ok()) return s;
    absl::StatusOr<cv1::GetServerStatusResponse> st = Status(target, *ops);
    if (!st.ok()) return st.status();
    PrintStatus(target, *st);
  }
  std::printf("demo: all three services answered\n");
  return absl::OkStatus();
}

absl::Status Run(const std::string& command, const FlagSet& flags) {
  if (command == "token") {
    absl::StatusOr<Role> role = ParseRole(flags.GetString("role"));
    if (!role.ok()) return role.status();
    absl::StatusOr<std::string> token = MintToken(flags, *role, flags.GetString("subject"));
    if (!token.ok()) return token.status();
    std::printf("%s\n", token->c_str());
    return absl::OkStatus();
  }
  if (command == "health") {
    return CheckHealth(flags.GetString("target"), flags.GetString("service"), absl::Seconds(5));
  }
  if (command == "wait") {
    absl::StatusOr<int64_t> timeout = flags.GetInt("timeout_s");
    if (!timeout.ok()) return timeout.status();
    for (absl::string_view t : absl::StrSplit(flags.GetString("targets"), ',', absl::SkipEmpty())) {
      if (absl::Status s = WaitForServing(std::string(t), absl::Seconds(*timeout)); !s.ok()) return s;
    }
    return absl::OkStatus();
  }
  if (command == "whoami") return WhoAmI(flags.GetString("target"), flags.GetString("token"));
  if (command == "status") {
    absl::StatusOr<cv1::GetServerStatusResponse> st =
        Status(flags.GetString("target"), flags.GetString("token"));
    if (!st.ok()) return st.status();
    PrintStatus(flags.GetString("target"), *st);
    return absl::OkStatus();
  }
  if (command == "demo") return Demo(flags);
  return absl::InvalidArgumentError(absl::StrCat("unknown command \"", command, "\"\n", flags.Usage()));
}

}  // namespace
}  // namespace microlend

int main(int argc, char** argv) {
  microlend::FlagSet flags = microlend::MakeFlags();
  if (argc < 2 || std::string_view(argv[1]).substr(0, 1) == "-") {
    std::fprintf(stderr, "%s", flags.Usage().c_str());
    return 2;
  }
  microlend::ParseFlagsOrExit(flags, argc - 1, argv + 1);
  absl::Status status = microlend::Run(argv[1], flags);
  if (!status.ok()) {
    std::fprintf(stderr, "mlctl %s: %s\n", argv[1], status.ToString().c_str());
    return 1;
  }
  return 0;
}
