// The foundation, end to end: three real servers on a real PostgreSQL and Redis.
#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>
#include <signal.h>
#include <sys/wait.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "gtest/gtest.h"
#include "harness/local_stack.h"
#include "harness/shared_stack_test.h"
#include "microlend/common/v1/common.grpc.pb.h"
#include "microlend/lending/v1/lending.grpc.pb.h"
#include "server/health_client.h"

namespace microlend::testing {
namespace {

namespace cv1 = ::microlend::common::v1;
constexpr Server kAll[] = {Server::kLending, Server::kMatching, Server::kNotify};

class FoundationTest : public SharedStackTest {
 protected:
  static std::unique_ptr<cv1::ServerAdmin::Stub> Admin(Server s) {
    return cv1::ServerAdmin::NewStub(
        grpc::CreateChannel(stack_->Address(s), grpc::InsecureChannelCredentials()));
  }
  static void WithToken(grpc::ClientContext* ctx, const std::string& token) {
    ctx->AddMetadata("authorization", absl::StrCat("Bearer ", token));
  }
  static grpc::Status GetStatus(Server s, const std::string* token,
                                cv1::GetServerStatusResponse* out) {
    grpc::ClientContext ctx;
    if (token != nullptr) WithToken(&ctx, *token);
    return Admin(s)->GetServerStatus(&ctx, {}, out);
  }
};

TEST_F(FoundationTest, HealthIsServingForEveryServerAndService) {
  for (Server s : kAll) {
    EXPECT_TRUE(CheckHealth(stack_->Address(s), "", absl::Seconds(5)).ok()) << ServerName(s);
    EXPECT_TRUE(
        CheckHealth(stack_->Address(s), "microlend.common.v1.ServerAdmin", absl::Seconds(5)).ok());
  }
  EXPECT_TRUE(CheckHealth(stack_->Address(Server::kLending), "microlend.lending.v1.LoanService",
                          absl::Seconds(5))
                  .ok());
  // An unknown service name is not reported SERVING.
  EXPECT_FALSE(
      CheckHealth(stack_->Address(Server::kLending), "no.such.Service", absl::Seconds(5)).ok());
}

std::vector<std::string> ListServicesByReflection(const std::string& target) {
  auto stub = grpc::reflection::v1alpha::ServerReflection::NewStub(
      grpc::CreateChannel(target, grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  auto stream = stub->ServerReflectionInfo(&ctx);
  grpc::reflection::v1alpha::ServerReflectionRequest request;
  request.set_list_services("");
  stream->Write(request);
  stream->WritesDone();
  grpc::reflection::v1alpha::ServerReflectionResponse response;
  std::vector<std::string> names;
  while (stream->Read(&response)) {
    for (const auto& s : response.list_services_response().service()) names.push_back(s.name());
  }
  EXPECT_TRUE(stream->Finish().ok());
  return names;
}

TEST_F(FoundationTest, ReflectionListsEachServersServices) {
  std::vector<std::string> lending = ListServicesByReflection(stack_->Address(Server::kLending));
  EXPECT_THAT(lending, ::testing::IsSupersetOf({std::string("microlend.lending.v1.LoanService"),
                                                std::string("microlend.lending.v1.LedgerService"),
                                                std::string("microlend.common.v1.ServerAdmin"),
                                                std::string("grpc.health.v1.Health")}));
  EXPECT_THAT(ListServicesByReflection(stack_->Address(Server::kMatching)),
              ::testing::Contains(std::string("microlend.matching.v1.MatchingService")));
  EXPECT_THAT(ListServicesByReflection(stack_->Address(Server::kNotify)),
              ::testing::Contains(std::string("microlend.notify.v1.ShareService")));
}

TEST_F(FoundationTest, CallWithoutTokenIsUnauthenticated) {
  for (Server s : kAll) {
    cv1::GetServerStatusResponse out;
    grpc::Status st = GetStatus(s, nullptr, &out);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAUTHENTICATED) << ServerName(s);
    EXPECT_EQ(out.service(), "");
  }
}

TEST_F(FoundationTest, TokenSignedWithAnotherSecretIsUnauthenticated) {
  std::string forged = TokenSigner::Create("not-the-server-secret-000")
                           ->Mint({"ops-1", Role::kOps}, absl::Now(), absl::Hours(1));
  cv1::GetServerStatusResponse out;
  EXPECT_EQ(GetStatus(Server::kLending, &forged, &out).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  std::string garbage = "not-a-jwt";
  EXPECT_EQ(GetStatus(Server::kNotify, &garbage, &out).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
}

TEST_F(FoundationTest, LenderTokenOnOpsOnlyRpcIsPermissionDenied) {
  std::string lender = stack_->Token(Role::kLender, "7");
  for (Server s : kAll) {
    cv1::GetServerStatusResponse out;
    grpc::Status st = GetStatus(s, &lender, &out);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::PERMISSION_DENIED) << ServerName(s);
    EXPECT_NE(st.error_message().find("lender"), std::string::npos);
  }
}

TEST_F(FoundationTest, WhoAmIEchoesThePrincipal) {
  grpc::ClientContext ctx;
  WithToken(&ctx, stack_->Token(Role::kLender, "42"));
  cv1::WhoAmIResponse out;
  ASSERT_TRUE(Admin(Server::kMatching)->WhoAmI(&ctx, {}, &out).ok());
  EXPECT_EQ(out.principal().subject(), "42");
  EXPECT_EQ(out.principal().role(), cv1::ROLE_LENDER);
  EXPECT_EQ(out.lender_id().value(), "42");
}

TEST_F(FoundationTest, OpsStatusShowsMigrationsAndReachableDependencies) {
  std::string ops = stack_->Token(Role::kOps, "ops-1");
  for (Server s : kAll) {
    cv1::GetServerStatusResponse out;
    ASSERT_TRUE(GetStatus(s, &ops, &out).ok()) << ServerName(s);
    EXPECT_EQ(out.service(), ServerName(s));
    EXPECT_GE(out.migrations_size(), 1) << ServerName(s);
    ASSERT_GE(out.dependencies_size(), 1);
    for (const auto& d : out.dependencies()) EXPECT_TRUE(d.reachable()) << d.name() << d.detail();
  }
}

TEST_F(FoundationTest, LaterIssueRpcIsUnimplementedNotFakeSuccess) {
  auto stub = lending::v1::LoanService::NewStub(
      grpc::CreateChannel(stack_->Address(Server::kLending), grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  WithToken(&ctx, stack_->Token(Role::kOps, "ops-1"));
  // The trending feed from notify lands with the notify issue.
  lending::v1::UpdateTrendingScoresRequest request;
  lending::v1::UpdateTrendingScoresResponse response;
  EXPECT_EQ(stub->UpdateTrendingScores(&ctx, request, &response).error_code(),
            grpc::StatusCode::UNIMPLEMENTED);
}

TEST_F(FoundationTest, AdvanceClockIsRefusedUnlessTheServerAllowsIt) {
  std::string ops = stack_->Token(Role::kOps, "ops-1");
  // notify runs without --clock_control; lending (in tests) with it, for ops only.
  auto notify = cv1::ServerAdmin::NewStub(
      grpc::CreateChannel(stack_->Address(Server::kNotify), grpc::InsecureChannelCredentials()));
  cv1::AdvanceClockRequest request;
  request.set_seconds(60);
  cv1::AdvanceClockResponse response;
  grpc::ClientContext refused;
  WithToken(&refused, ops);
  EXPECT_EQ(notify->AdvanceClock(&refused, request, &response).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  auto lending = cv1::ServerAdmin::NewStub(
      grpc::CreateChannel(stack_->Address(Server::kLending), grpc::InsecureChannelCredentials()));
  grpc::ClientContext lender;
  WithToken(&lender, stack_->Token(Role::kLender, "5"));
  EXPECT_EQ(lending->AdvanceClock(&lender, request, &response).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  grpc::ClientContext zero;
  WithToken(&zero, ops);
  cv1::AdvanceClockRequest nothing;
  EXPECT_EQ(lending->AdvanceClock(&zero, nothing, &response).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(FoundationTest, RestartingTheStackKeepsAppliedMigrations) {
  std::string ops = stack_->Token(Role::kOps, "ops-1");
  cv1::GetServerStatusResponse before;
  ASSERT_TRUE(GetStatus(Server::kLending, &ops, &before).ok());
  ASSERT_TRUE(stack_->StopServers().ok());
  ASSERT_TRUE(stack_->StopInfra().ok());
  ASSERT_TRUE(stack_->StartInfra().ok());
  absl::Status started = stack_->StartServers();
  ASSERT_TRUE(started.ok()) << started;
  cv1::GetServerStatusResponse after;
  ASSERT_TRUE(GetStatus(Server::kLending, &ops, &after).ok());
  ASSERT_EQ(after.migrations_size(), before.migrations_size());
  for (int i = 0; i < after.migrations_size(); ++i) {
    EXPECT_EQ(after.migrations(i).version(), before.migrations(i).version());
    // Same applied_at: the migration was kept, not applied again.
    EXPECT_EQ(after.migrations(i).applied_at().seconds(),
              before.migrations(i).applied_at().seconds());
  }
}

TEST_F(FoundationTest, ServerFailsFastNamingUnreachablePostgres) {
  int closed_port = PickFreePort();
  std::string output;
  absl::StatusOr<int> exit =
      stack_->RunServerToExit(Server::kNotify,
                              {absl::StrCat("--listen=127.0.0.1:", PickFreePort()),
                               absl::StrCat("--pg_url=host=127.0.0.1 port=", closed_port,
                                            " dbname=microlend user=microlend")},
                              &output);
  ASSERT_TRUE(exit.ok()) << exit.status();
  EXPECT_TRUE(WIFEXITED(*exit));
  EXPECT_EQ(WEXITSTATUS(*exit), 1);
  EXPECT_NE(output.find(absl::StrCat("PostgreSQL at 127.0.0.1:", closed_port)), std::string::npos)
      << output;
}

TEST_F(FoundationTest, ServerFailsFastNamingUnreachableRedis) {
  int closed_port = PickFreePort();
  std::string output;
  absl::StatusOr<int> exit =
      stack_->RunServerToExit(Server::kLending,
                              {absl::StrCat("--listen=127.0.0.1:", PickFreePort()),
                               absl::StrCat("--redis=127.0.0.1:", closed_port)},
                              &output);
  ASSERT_TRUE(exit.ok()) << exit.status();
  EXPECT_EQ(WEXITSTATUS(*exit), 1);
  EXPECT_NE(output.find(absl::StrCat("Redis at 127.0.0.1:", closed_port)), std::string::npos)
      << output;
}

// Servers bind their port exclusively (no SO_REUSEPORT): a second server started on a taken
// port must fail, not bind it too and have the kernel hand it half of the first one's callers.
TEST_F(FoundationTest, ASecondServerOnATakenPortFailsToStartInsteadOfSharingIt) {
  const std::string taken = stack_->Address(Server::kLending);
  std::string output;
  absl::StatusOr<int> exit =
      stack_->RunServerToExit(Server::kNotify, {absl::StrCat("--listen=", taken)}, &output);
  ASSERT_TRUE(exit.ok()) << exit.status() << "\n" << output;
  EXPECT_TRUE(WIFEXITED(*exit));
  EXPECT_EQ(WEXITSTATUS(*exit), 1);
  EXPECT_THAT(output, ::testing::HasSubstr(absl::StrCat("cannot listen on ", taken)));
  // The first server still answers every call, as itself.
  const std::string ops = stack_->Token(Role::kOps, "ops-1");
  for (int i = 0; i < 20; ++i) {
    cv1::GetServerStatusResponse status;
    grpc::Status st = GetStatus(Server::kLending, &ops, &status);
    ASSERT_TRUE(st.ok()) << st.error_message();
    EXPECT_EQ(status.service(), "lending");
  }
}

TEST_F(FoundationTest, SigtermShutsDownCleanly) {
  for (Server s : {Server::kNotify, Server::kMatching}) {
    absl::StatusOr<int> exit = stack_->StopServer(s, SIGTERM);
    ASSERT_TRUE(exit.ok()) << exit.status();
    EXPECT_TRUE(WIFEXITED(*exit)) << ServerName(s);
    EXPECT_EQ(WEXITSTATUS(*exit), 0) << ServerName(s);
    EXPECT_NE(stack_->ServerLog(s).find("event=server_stopped"), std::string::npos);
    ASSERT_TRUE(stack_->StartServer(s).ok());
  }
}

TEST_F(FoundationTest, EveryRpcIsLoggedWithARequestId) {
  grpc::ClientContext ctx;
  ctx.AddMetadata("x-request-id", "trace-abc-123");
  WithToken(&ctx, stack_->Token(Role::kOps, "ops-1"));
  cv1::WhoAmIResponse out;
  ASSERT_TRUE(Admin(Server::kLending)->WhoAmI(&ctx, {}, &out).ok());
  // The line is written as the status is sent; give the write a moment to land.
  absl::SleepFor(absl::Milliseconds(200));
  std::string log = stack_->ServerLog(Server::kLending);
  EXPECT_NE(log.find("method=/microlend.common.v1.ServerAdmin/WhoAmI code=OK"), std::string::npos)
      << log;
  EXPECT_NE(log.find("request_id=trace-abc-123"), std::string::npos);
}

}  // namespace
}  // namespace microlend::testing
