// `make demo` end to end: mlctl demo against the real servers, twice. It must succeed both times
// (reconciliation clean) and the second run must replay the seed, not duplicate it.
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "harness/local_stack.h"
#include "harness/rpc.h"
#include "microlend/lending/v1/lending.grpc.pb.h"

namespace microlend::testing {
namespace {

namespace lv1 = ::microlend::lending::v1;

int RunDemo(const LocalStack& stack, std::string* output) {
  std::string cmd = absl::StrCat(
      MICROLEND_BINARY_DIR, "/tools/mlctl demo --lending=", stack.Address(Server::kLending),
      " --matching=", stack.Address(Server::kMatching), " --notify=",
      stack.Address(Server::kNotify), " --auth_secret=", stack.auth_secret(), " 2>&1");
  FILE* pipe = popen(cmd.c_str(), "r");
  if (pipe == nullptr) return -1;
  char buf[512];
  while (std::fgets(buf, sizeof buf, pipe) != nullptr) output->append(buf);
  return pclose(pipe);
}

int64_t FundraisingLoans(const LocalStack& stack) {
  auto loans = lv1::LoanService::NewStub(Channel(stack.Address(Server::kLending)));
  lv1::ListLoansRequest req;
  req.mutable_filter()->add_statuses(lv1::LOAN_STATUS_FUNDRAISING);
  lv1::ListLoansResponse out;
  EXPECT_TRUE(loans->ListLoans(Ctx(stack.Token(Role::kLender, "1")).get(), req, &out).ok());
  return out.page().total_count();
}

TEST(DemoTest, DemoSucceedsTwiceAndItsSeedReplaysInsteadOfDuplicating) {
  auto stack = LocalStack::Start();
  ASSERT_TRUE(stack.ok()) << stack.status();
  std::string first, second;
  ASSERT_EQ(RunDemo(**stack, &first), 0) << first;
  EXPECT_THAT(first, ::testing::HasSubstr("reconciliation: clean"));
  EXPECT_THAT(first, ::testing::HasSubstr("catalogue: 7 loans fundraising"));
  const int64_t loans = FundraisingLoans(**stack);
  EXPECT_EQ(loans, 7);
  ASSERT_EQ(RunDemo(**stack, &second), 0) << second;
  EXPECT_THAT(second, ::testing::HasSubstr("reconciliation: clean"));
  EXPECT_EQ(FundraisingLoans(**stack), loans);
}

}  // namespace
}  // namespace microlend::testing
