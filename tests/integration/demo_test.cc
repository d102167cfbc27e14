// `make demo` end to end: mlctl demo against the real servers, twice. It must succeed both times
// (reconciliation clean) and the second run must replay the seed and the marketplace, not
// duplicate them: the same loans, the same money, and no month of repayments reported twice.
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

// The first line of `output` that starts with `prefix` (empty when none does).
std::string LineStartingWith(const std::string& output, const std::string& prefix) {
  for (size_t at = 0; at < output.size();) {
    size_t end = output.find('\n', at);
    if (end == std::string::npos) end = output.size();
    if (output.compare(at, prefix.size(), prefix) == 0) return output.substr(at, end - at);
    at = end + 1;
  }
  return "";
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
  // The marketplace ran its whole lifecycle: months of repayments, an expiry, a default and a
  // repayment at a worse FX rate, whose loss the partner's 10% coverage only partly absorbed.
  const std::string marketplace = LineStartingWith(first, "  loans ");
  EXPECT_THAT(marketplace, ::testing::HasSubstr("1,050 posted, 1,049 funded"));
  EXPECT_THAT(marketplace, ::testing::HasSubstr("1 expired, 1 defaulted"));
  EXPECT_THAT(LineStartingWith(first, "  FX loss "), ::testing::HasSubstr("lenders bore 25.00"));
  EXPECT_THAT(first, ::testing::HasSubstr("month 8 ("));
  EXPECT_THAT(first, ::testing::Not(::testing::HasSubstr("earlier run")));

  ASSERT_EQ(RunDemo(**stack, &second), 0) << second;
  EXPECT_THAT(second, ::testing::HasSubstr("reconciliation: clean"));
  EXPECT_EQ(FundraisingLoans(**stack), loans);
  // Nothing was lent, disbursed or repaid twice: the same loans and the same money.
  EXPECT_THAT(second, ::testing::HasSubstr("month 8 ("));
  EXPECT_THAT(second, ::testing::Not(::testing::HasSubstr("reported in bulk")));
  EXPECT_EQ(LineStartingWith(second, "  loans "), marketplace);
  EXPECT_EQ(LineStartingWith(second, "  USD "), LineStartingWith(first, "  USD "));
  EXPECT_EQ(LineStartingWith(second, "  FX loss "), LineStartingWith(first, "  FX loss "));
}

}  // namespace
}  // namespace microlend::testing
