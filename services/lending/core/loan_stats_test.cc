// Loan statistics: rates in basis points, a lender's portfolio valued per loan and in total,
// its pages, and a partner's rates from its loan totals (core/loan_stats.h).
#include "services/lending/core/loan_stats.h"

#include <limits>
#include <random>

#include "gtest/gtest.h"

namespace microlend::lending {
namespace {

const absl::Time kLent = absl::FromUnixSeconds(1'800'000'000);
const Currency kKes = *Currency::FromCode("KES");

// A loan of 1,000.00 USD = 100,000.00 KES at 100 in four equal lines, lent 250.00 by the
// account, nothing repaid yet.
PortfolioPosition Position(LoanStatus status, int64_t loan_id = 1) {
  PortfolioPosition p;
  p.funder = LoanFunder{.loan_id = LoanId(loan_id),
                        .account_id = AccountId(7),
                        .owner_id = "42",
                        .amount_minor = 25'000,
                        .share_count = 10,
                        .first_lent_at = kLent};
  p.loan.id = LoanId(loan_id);
  p.loan.status = status;
  p.loan.usd_amount_minor = 100'000;
  p.loan.local_currency = kKes;
  p.loan.local_amount_minor = 10'000'000;
  p.loan.posting_fx_rate = "100";
  p.loan_name = "Wanjiru";
  p.country = "KE";
  p.sector = 1;
  for (absl::CivilDay due : {absl::CivilDay(2027, 1, 15), absl::CivilDay(2027, 2, 15),
                             absl::CivilDay(2027, 3, 15), absl::CivilDay(2027, 3, 31)}) {
    p.schedule.push_back({due, Money::FromMinor(kKes, 2'500'000)});
  }
  return p;
}

int64_t Sum(const std::vector<MonthlyAmount>& months) {
  int64_t sum = 0;
  for (const MonthlyAmount& m : months) sum += m.amount_minor;
  return sum;
}

int64_t PartsOf(const PortfolioLine& line) {
  return line.repaid_minor + line.outstanding_minor + line.lost_to_default_minor +
         line.lost_to_currency_loss_minor + line.refunded_minor;
}

TEST(RateBps, RoundsDown) {
  EXPECT_EQ(RateBps(1, 3), 3'333);
  EXPECT_EQ(RateBps(2, 3), 6'666);
  EXPECT_EQ(RateBps(1, 10'001), 0);
  EXPECT_EQ(RateBps(5'000, 100'000), 500);
  EXPECT_EQ(RateBps(7, 7), 10'000);
}

TEST(RateBps, IsZeroWhenTheDenominatorIsZero) {
  EXPECT_EQ(RateBps(0, 0), 0);
  EXPECT_EQ(RateBps(12'345, 0), 0);
  EXPECT_EQ(RateBps(0, 12'345), 0);
}

TEST(RateBps, UsesA128BitIntermediateAndCapsAtInt32Max) {
  const int64_t max = std::numeric_limits<int64_t>::max();
  EXPECT_EQ(RateBps(max, max), 10'000);
  EXPECT_EQ(RateBps(max / 2, max), 4'999);
  EXPECT_EQ(RateBps(max, 1), std::numeric_limits<int32_t>::max());
  EXPECT_EQ(RateBps(214'748, 1), 2'147'480'000);
  EXPECT_EQ(RateBps(214'749, 1), std::numeric_limits<int32_t>::max());
}

TEST(RateBpsDeathTest, ANegativeTermIsABug) {
  EXPECT_DEATH(RateBps(-1, 10), "negative term");
  EXPECT_DEATH(RateBps(1, -10), "negative term");
}

TEST(PartnerStats, RatesComeFromTheTotalsRoundedDown) {
  const PartnerLoanTotals totals{.loans_posted = 5,
                                 .loans_active = 2,
                                 .raised_minor = 300'000,
                                 .outstanding_minor = 90'000,
                                 .arrears_minor = 10'000,
                                 .par30_outstanding_minor = 30'000,
                                 .disbursed_principal_minor = 250'000,
                                 .defaulted_outstanding_minor = 20'000,
                                 .currency_loss_minor = 5'000,
                                 .repaid_minor = 140'000};
  absl::StatusOr<PartnerStats> stats = ComputePartnerStats(PartnerId(3), totals, kLent);
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->partner_id, PartnerId(3));
  EXPECT_EQ(stats->totals, totals);
  EXPECT_EQ(stats->delinquency_rate_bps, 1'111);  // 10,000 / 90,000 = 1111.1
  EXPECT_EQ(stats->default_rate_bps, 800);        // 20,000 / 250,000
  EXPECT_EQ(stats->par30_bps, 3'333);             // 30,000 / 90,000 = 3333.3
  EXPECT_EQ(stats->currency_loss_rate_bps, 357);  // 5,000 / 140,000 = 357.1
  EXPECT_EQ(stats->computed_at, kLent);
}

TEST(PartnerStats, APartnerWithoutLoansHasZeroRates) {
  absl::StatusOr<PartnerStats> stats = ComputePartnerStats(PartnerId(3), {}, kLent);
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->delinquency_rate_bps, 0);
  EXPECT_EQ(stats->default_rate_bps, 0);
  EXPECT_EQ(stats->par30_bps, 0);
  EXPECT_EQ(stats->currency_loss_rate_bps, 0);
}

TEST(PartnerStats, ANegativeTotalIsInternal) {
  EXPECT_EQ(ComputePartnerStats(PartnerId(3), {.outstanding_minor = -1}, kLent).status().code(),
            absl::StatusCode::kInternal);
  EXPECT_EQ(ComputePartnerStats(PartnerId(3), {.repaid_minor = -5}, kLent).status().code(),
            absl::StatusCode::kInternal);
}

TEST(Portfolio, AFundraisingLoanIsOutstandingOverTheWholeSchedule) {
  absl::StatusOr<PortfolioLine> line = ValuePosition(Position(LoanStatus::kFundraising));
  ASSERT_TRUE(line.ok()) << line.status();
  EXPECT_EQ(line->lent_minor, 25'000);
  EXPECT_EQ(line->outstanding_minor, 25'000);
  EXPECT_EQ(line->loan_name, "Wanjiru");
  EXPECT_EQ(line->first_lent_at, kLent);
  EXPECT_EQ(line->expected, (std::vector<MonthlyAmount>{{absl::CivilMonth(2027, 1), 6'250},
                                                        {absl::CivilMonth(2027, 2), 6'250},
                                                        {absl::CivilMonth(2027, 3), 12'500}}));
}

TEST(Portfolio, APayingBackLoanExpectsItsOutstandingOverTheUnpaidLines) {
  PortfolioPosition p = Position(LoanStatus::kPayingBack);
  // 30,000.00 KES repaid: the first line and 5,000.00 KES of the second.
  p.loan.repaid_local_minor = 3'000'000;
  p.loan.expected_usd_minor = 30'000;
  p.loan.repaid_usd_minor = 30'000;
  p.funder.repaid_minor = 7'500;
  p.loan.delinquent = true;
  absl::StatusOr<PortfolioLine> line = ValuePosition(p);
  ASSERT_TRUE(line.ok()) << line.status();
  EXPECT_TRUE(line->delinquent);
  EXPECT_EQ(line->repaid_minor, 7'500);
  EXPECT_EQ(line->outstanding_minor, 17'500);
  EXPECT_EQ(line->lost_to_currency_loss_minor, 0);
  // Unpaid 20,000 / 25,000 / 25,000 KES: 50.00, 62.50 and 62.50 USD.
  EXPECT_EQ(line->expected, (std::vector<MonthlyAmount>{{absl::CivilMonth(2027, 2), 5'000},
                                                        {absl::CivilMonth(2027, 3), 12'500}}));
}

TEST(Portfolio, CurrencyLossWhilePayingBackIsTheFlooredShare) {
  PortfolioPosition p = Position(LoanStatus::kPayingBack);
  p.loan.repaid_local_minor = 5'000'000;
  p.loan.expected_usd_minor = 50'000;
  p.loan.currency_loss_minor = 3'333;
  p.loan.repaid_usd_minor = 46'667;
  p.funder.repaid_minor = 11'667;
  absl::StatusOr<PortfolioLine> line = ValuePosition(p);
  ASSERT_TRUE(line.ok()) << line.status();
  // 25,000 x 3,333 / 100,000 = 833.25 -> 833.
  EXPECT_EQ(line->lost_to_currency_loss_minor, 833);
  EXPECT_EQ(line->outstanding_minor, 25'000 - 11'667 - 833);
  EXPECT_EQ(Sum(line->expected), line->outstanding_minor);
  EXPECT_EQ(PartsOf(*line), line->lent_minor);
}

TEST(Portfolio, AnEndedLoanLosesExactlyWhatWasNotCredited) {
  PortfolioPosition p = Position(LoanStatus::kEnded);
  p.loan.repaid_local_minor = p.loan.local_amount_minor;
  p.loan.currency_loss_minor = 5'001;
  p.funder.repaid_minor = 23'749;  // floor of 25,000 x 94,999 / 100,000 = 23,749.75
  p.schedule.clear();
  absl::StatusOr<PortfolioLine> line = ValuePosition(p);
  ASSERT_TRUE(line.ok()) << line.status();
  // The ceiling of the share 25,000 x 5,001 / 100,000 = 1,250.25.
  EXPECT_EQ(line->lost_to_currency_loss_minor, 1'251);
  EXPECT_EQ(line->outstanding_minor, 0);
  EXPECT_TRUE(line->expected.empty());
}

TEST(Portfolio, ADefaultedLoanLosesTheRestToDefault) {
  PortfolioPosition p = Position(LoanStatus::kDefaulted);
  p.loan.repaid_local_minor = 1'000'000;
  p.loan.expected_usd_minor = 10'000;
  p.loan.currency_loss_minor = 1'000;
  p.loan.repaid_usd_minor = 9'000;
  p.funder.repaid_minor = 2'250;
  p.schedule.clear();
  absl::StatusOr<PortfolioLine> line = ValuePosition(p);
  ASSERT_TRUE(line.ok()) << line.status();
  EXPECT_EQ(line->lost_to_currency_loss_minor, 250);
  EXPECT_EQ(line->lost_to_default_minor, 25'000 - 2'250 - 250);
  EXPECT_EQ(line->outstanding_minor, 0);
  EXPECT_TRUE(line->expected.empty());
}

TEST(Portfolio, RefundedAndExpiredLoansOweNothing) {
  for (LoanStatus status : {LoanStatus::kRefunded, LoanStatus::kExpired}) {
    PortfolioPosition p = Position(status);
    p.funder.refunded_minor = 25'000;
    p.schedule.clear();
    absl::StatusOr<PortfolioLine> line = ValuePosition(p);
    ASSERT_TRUE(line.ok()) << line.status();
    EXPECT_EQ(line->refunded_minor, 25'000);
    EXPECT_EQ(line->outstanding_minor, 0);
    EXPECT_EQ(PartsOf(*line), 25'000);
  }
}

TEST(Portfolio, APositionThatDoesNotAddUpIsInternal) {
  PortfolioPosition refunded = Position(LoanStatus::kRefunded);
  refunded.funder.refunded_minor = 20'000;  // 50.00 neither refunded nor repaid
  EXPECT_EQ(ValuePosition(refunded).status().code(), absl::StatusCode::kInternal);
  PortfolioPosition over = Position(LoanStatus::kPayingBack);
  over.funder.repaid_minor = 25'001;
  EXPECT_EQ(ValuePosition(over).status().code(), absl::StatusCode::kInternal);
  PortfolioPosition no_principal = Position(LoanStatus::kPayingBack);
  no_principal.loan.usd_amount_minor = 0;
  no_principal.loan.currency_loss_minor = 10;
  EXPECT_EQ(ValuePosition(no_principal).status().code(), absl::StatusCode::kInternal);
}

TEST(Portfolio, TotalsCoverEveryLoanAndTheRepaymentRateOnlyClosedOnes) {
  PortfolioPosition paying = Position(LoanStatus::kPayingBack, 1);
  paying.loan.repaid_local_minor = 2'500'000;
  paying.loan.expected_usd_minor = 25'000;
  paying.loan.repaid_usd_minor = 25'000;
  paying.funder.repaid_minor = 6'250;
  PortfolioPosition ended = Position(LoanStatus::kEnded, 2);
  ended.loan.currency_loss_minor = 4'000;
  ended.funder.repaid_minor = 24'000;
  ended.schedule.clear();
  PortfolioPosition refunded = Position(LoanStatus::kRefunded, 3);
  refunded.funder.refunded_minor = 25'000;
  refunded.schedule.clear();
  PortfolioPosition open = Position(LoanStatus::kFundraising, 4);
  absl::StatusOr<Portfolio> portfolio = BuildPortfolio({open, paying, ended, refunded});
  ASSERT_TRUE(portfolio.ok()) << portfolio.status();
  const PortfolioTotals& t = portfolio->totals;
  EXPECT_EQ(t.loan_count, 4);
  EXPECT_EQ(t.active_loan_count, 2);
  EXPECT_EQ(t.lent_minor, 100'000);
  EXPECT_EQ(t.repaid_minor, 30'250);
  EXPECT_EQ(t.outstanding_minor, 25'000 + 18'750);
  EXPECT_EQ(t.lost_to_currency_loss_minor, 1'000);
  EXPECT_EQ(t.lost_to_default_minor, 0);
  EXPECT_EQ(t.refunded_minor, 25'000);
  // Over the ended loan only: 24,000 / 25,000.
  EXPECT_EQ(t.repayment_rate_bps, 9'600);
  ASSERT_EQ(portfolio->loans.size(), 4u);
  EXPECT_EQ(portfolio->loans[0].loan_id, LoanId(4));
  // The open loan 62.50 a line; the paying one 62.50 a line from February.
  EXPECT_EQ(portfolio->expected, (std::vector<MonthlyAmount>{{absl::CivilMonth(2027, 1), 6'250},
                                                             {absl::CivilMonth(2027, 2), 12'500},
                                                             {absl::CivilMonth(2027, 3), 25'000}}));
  EXPECT_EQ(Sum(portfolio->expected), t.outstanding_minor);
}

TEST(Portfolio, AnEmptyPortfolioHasZeroTotals) {
  absl::StatusOr<Portfolio> portfolio = BuildPortfolio({});
  ASSERT_TRUE(portfolio.ok()) << portfolio.status();
  EXPECT_EQ(portfolio->totals, PortfolioTotals{});
  EXPECT_TRUE(portfolio->loans.empty());
  EXPECT_TRUE(portfolio->expected.empty());
}

// Random positions of every status: the parts always sum to what was lent, the expected
// repayments to the outstanding amount, and nothing is negative.
TEST(Portfolio, PartsSumToTheLentAmountOverRandomPositions) {
  std::mt19937_64 rng(20261121);
  const LoanStatus statuses[] = {LoanStatus::kFundraising, LoanStatus::kFunded,
                                 LoanStatus::kPayingBack,  LoanStatus::kEnded,
                                 LoanStatus::kDefaulted,   LoanStatus::kRefunded};
  for (int i = 0; i < 20'000; ++i) {
    PortfolioPosition p = Position(statuses[rng() % 6]);
    const int64_t usd = 2'500 + static_cast<int64_t>(rng() % 10'000'000);
    const int64_t share = 1 + static_cast<int64_t>(rng() % usd);
    p.loan.usd_amount_minor = usd;
    p.loan.local_amount_minor = usd * 100;
    p.funder.amount_minor = share;
    p.schedule.clear();
    const int lines = 1 + static_cast<int>(rng() % 12);
    for (int k = 0; k < lines; ++k) {
      const int64_t principal =
          k + 1 < lines ? usd * 100 / lines : usd * 100 - (usd * 100 / lines) * (lines - 1);
      p.schedule.push_back(
          {absl::CivilDay(2027, 1, 1) + 30 * k, Money::FromMinor(kKes, principal)});
    }
    // Short of the whole amount: a loan repaid in full is ENDED.
    const int64_t repaid_local = static_cast<int64_t>(rng() % p.loan.local_amount_minor);
    const int64_t expected = repaid_local / 100;
    const int64_t loss = static_cast<int64_t>(rng() % (expected + 1));
    switch (p.loan.status) {
      case LoanStatus::kPayingBack:
      case LoanStatus::kDefaulted:
        p.loan.repaid_local_minor = repaid_local;
        p.loan.currency_loss_minor = loss;
        // Credited within a unit of the exact entitlement, as SplitRepayment keeps it.
        p.funder.repaid_minor = static_cast<int64_t>(
            (static_cast<__int128>(expected - loss) * share + (rng() % 2) * (usd - 1)) / usd);
        break;
      case LoanStatus::kEnded:
        p.loan.repaid_local_minor = p.loan.local_amount_minor;
        p.loan.currency_loss_minor = loss;
        p.funder.repaid_minor = static_cast<int64_t>(
            (static_cast<__int128>(usd - loss) * share + (rng() % 2) * (usd - 1)) / usd);
        break;
      case LoanStatus::kRefunded:
        p.funder.refunded_minor = share;
        break;
      default:
        break;
    }
    absl::StatusOr<PortfolioLine> line = ValuePosition(p);
    ASSERT_TRUE(line.ok()) << line.status() << " case " << i;
    EXPECT_EQ(PartsOf(*line), share) << "case " << i;
    EXPECT_EQ(Sum(line->expected), line->outstanding_minor) << "case " << i;
    EXPECT_GE(line->outstanding_minor, 0);
    EXPECT_GE(line->lost_to_default_minor, 0);
    EXPECT_GE(line->lost_to_currency_loss_minor, 0);
  }
}

std::vector<PortfolioLine> Lines(const std::vector<LoanStatus>& statuses) {
  std::vector<PortfolioLine> out;
  for (size_t i = 0; i < statuses.size(); ++i) {
    out.push_back({.loan_id = LoanId(static_cast<int64_t>(i) + 1), .status = statuses[i]});
  }
  return out;
}

std::vector<int64_t> Ids(const PortfolioPage& page) {
  std::vector<int64_t> out;
  for (const PortfolioLine& line : page.loans) out.push_back(line.loan_id.value());
  return out;
}

TEST(PortfolioPage, PagesThroughTheLoansThatMatchTheStatuses) {
  const std::vector<PortfolioLine> lines =
      Lines({LoanStatus::kPayingBack, LoanStatus::kEnded, LoanStatus::kPayingBack,
             LoanStatus::kRefunded, LoanStatus::kPayingBack});
  PortfolioPage all = SelectPortfolioPage(lines, {}, 0, 2);
  EXPECT_EQ(Ids(all), (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(all.next_offset, 2);
  EXPECT_EQ(all.total_count, 5);
  PortfolioPage last = SelectPortfolioPage(lines, {}, 4, 2);
  EXPECT_EQ(Ids(last), (std::vector<int64_t>{5}));
  EXPECT_EQ(last.next_offset, 0);
  PortfolioPage paying = SelectPortfolioPage(lines, {LoanStatus::kPayingBack}, 0, 2);
  EXPECT_EQ(Ids(paying), (std::vector<int64_t>{1, 3}));
  EXPECT_EQ(paying.next_offset, 2);
  EXPECT_EQ(paying.total_count, 3);
  PortfolioPage rest = SelectPortfolioPage(lines, {LoanStatus::kPayingBack}, 2, 2);
  EXPECT_EQ(Ids(rest), (std::vector<int64_t>{5}));
  EXPECT_EQ(rest.next_offset, 0);
  PortfolioPage two = SelectPortfolioPage(lines, {LoanStatus::kEnded, LoanStatus::kRefunded}, 0, 2);
  EXPECT_EQ(Ids(two), (std::vector<int64_t>{2, 4}));
  EXPECT_EQ(two.next_offset, 0);  // exactly a full page: nothing after it
  PortfolioPage none = SelectPortfolioPage(lines, {LoanStatus::kDefaulted}, 0, 2);
  EXPECT_TRUE(none.loans.empty());
  EXPECT_EQ(none.total_count, 0);
  PortfolioPage beyond = SelectPortfolioPage(lines, {}, 10, 2);
  EXPECT_TRUE(beyond.loans.empty());
  EXPECT_EQ(beyond.next_offset, 0);
  EXPECT_EQ(beyond.total_count, 5);
}

}  // namespace
}  // namespace microlend::lending
