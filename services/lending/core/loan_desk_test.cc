// The pure parts of the loan lifecycle: the USD side of a repayment and arrears.
#include "services/lending/core/loan_desk.h"

#include "gtest/gtest.h"

namespace microlend::lending {
namespace {

Currency Kes() { return *Currency::FromCode("KES"); }

LoanMoney Loan(int64_t usd_minor, int64_t kes_minor, std::string rate) {
  LoanMoney m;
  m.id = LoanId(1);
  m.status = LoanStatus::kPayingBack;
  m.usd_amount_minor = usd_minor;
  m.local_currency = Kes();
  m.local_amount_minor = kes_minor;
  m.posting_fx_rate = std::move(rate);
  return m;
}

// Applies a computed repayment to the loan as the repayment mutation does.
void Apply(LoanMoney& m, int64_t local, const RepaymentUsd& usd) {
  m.repaid_local_minor += local;
  m.expected_usd_minor += usd.expected_minor;
  m.received_usd_minor += usd.received_minor;
  m.coverage_usd_minor += usd.coverage_minor;
  m.currency_loss_minor += usd.loss_minor;
  m.repaid_usd_minor += usd.credited_minor;
}

TEST(ComputeRepaymentUsd, RepaymentsAtThePostingRateLoseNothingToRounding) {
  // KES 7,500.00 at 300 = USD 25.00, repaid in three thirds at 300: each third alone is 8.33.
  LoanMoney m = Loan(2'500, 750'000, "300");
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<RepaymentUsd> usd = ComputeRepaymentUsd(m, 250'000, "300", /*coverage_bps=*/0);
    ASSERT_TRUE(usd.ok()) << usd.status();
    EXPECT_EQ(usd->loss_minor, 0);
    EXPECT_EQ(usd->credited_minor, usd->expected_minor);
    Apply(m, 250'000, *usd);
  }
  EXPECT_EQ(m.repaid_usd_minor, 2'500);
  EXPECT_EQ(m.currency_loss_minor, 0);
}

TEST(ComputeRepaymentUsd, AFifteenPercentLossIsSharedWithTheTenPercentCoverage) {
  LoanMoney m = Loan(100'000, 10'000'000, "100");
  absl::StatusOr<RepaymentUsd> usd = ComputeRepaymentUsd(m, 10'000'000, "117.64705882", 1'000);
  ASSERT_TRUE(usd.ok()) << usd.status();
  EXPECT_EQ(usd->expected_minor, 100'000);
  EXPECT_EQ(usd->received_minor, 85'000);
  EXPECT_EQ(usd->coverage_minor, 10'000);
  EXPECT_EQ(usd->loss_minor, 5'000);
  EXPECT_EQ(usd->credited_minor, 95'000);
}

TEST(ComputeRepaymentUsd, ALaterGainRecoversAnEarlierLossButNeverPaysMoreThanExpected) {
  LoanMoney m = Loan(100'000, 10'000'000, "100");
  absl::StatusOr<RepaymentUsd> first = ComputeRepaymentUsd(m, 5'000'000, "125", 0);  // 400 of 500
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->credited_minor, 40'000);
  Apply(m, 5'000'000, *first);
  absl::StatusOr<RepaymentUsd> second = ComputeRepaymentUsd(m, 5'000'000, "80", 0);  // 625 of 500
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->loss_minor, -10'000);
  EXPECT_EQ(second->credited_minor, 60'000);
  Apply(m, 5'000'000, *second);
  EXPECT_EQ(m.repaid_usd_minor, 100'000);
}

TEST(ComputeArrears, CountsDaysFromTheOldestUncoveredDueDateBeforeToday) {
  const Currency kes = Kes();
  std::vector<ScheduleEntry> schedule = {
      {absl::CivilDay(2026, 1, 31), Money::FromMinor(kes, 1'000)},
      {absl::CivilDay(2026, 2, 28), Money::FromMinor(kes, 1'000)},
      {absl::CivilDay(2026, 3, 31), Money::FromMinor(kes, 1'000)}};
  Arrears none = ComputeArrears(schedule, 1'000, absl::CivilDay(2026, 2, 28));
  EXPECT_EQ(none.days, 0);  // due today is not late yet
  Arrears late = ComputeArrears(schedule, 1'500, absl::CivilDay(2026, 3, 10));
  EXPECT_EQ(late.days, 10);
  EXPECT_EQ(late.local_minor, 500);
  Arrears paid = ComputeArrears(schedule, 3'000, absl::CivilDay(2027, 1, 1));
  EXPECT_EQ(paid.days, 0);
  EXPECT_EQ(paid.local_minor, 0);
}

}  // namespace
}  // namespace microlend::lending
