#include "mlctl/demo_plan.h"

#include <set>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/currency.h"
#include "common/money.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace microlend::demo {
namespace {

namespace lv1 = ::microlend::lending::v1;

int64_t LocalMinor(const PlanLoan& loan) {
  absl::StatusOr<Money> m = Money::Parse(loan.local_amount, loan.country.currency);
  EXPECT_TRUE(m.ok()) << loan.local_amount << " " << loan.country.currency;
  return m.ok() ? m->minor_units() : 0;
}

// Everything a request is built from, so that two builds can be compared.
std::string Digest(const MarketplacePlan& plan) {
  std::string out;
  for (const PlanPartner& p : plan.partners)
    absl::StrAppend(&out, p.request_suffix, p.coverage_bps, ";");
  for (const PlanLoan& l : plan.loans) {
    absl::StrAppend(&out, l.index, l.partner, l.name, l.use, l.country.code, l.local_amount,
                    l.term_months, l.interval, l.settlement_fx_rate);
    for (const PlanShare& s : l.shares) absl::StrAppend(&out, ",", s.lender, ":", s.cents);
    absl::StrAppend(&out, ";");
  }
  for (const PlanLender& l : plan.lenders) {
    absl::StrAppend(&out, l.id, ":", l.deposit_cents, l.uses_basket, l.basket_chunks.size(), ";");
  }
  return out;
}

TEST(MarketplacePlan, IsTheSameOnEveryBuild) {
  EXPECT_EQ(Digest(BuildMarketplacePlan()), Digest(BuildMarketplacePlan()));
}

TEST(MarketplacePlan, HasTheAdvertisedSizeAndVariety) {
  const MarketplacePlan plan = BuildMarketplacePlan();
  EXPECT_EQ(plan.loans.size(), static_cast<size_t>(kMarketplaceLoans));
  EXPECT_EQ(plan.lenders.size(), static_cast<size_t>(kMarketplaceLenders));
  std::set<std::string> countries;
  std::set<int> sectors, terms, intervals, partners;
  int groups = 0;
  for (const PlanLoan& l : plan.loans) {
    countries.insert(l.country.code);
    sectors.insert(l.sector);
    terms.insert(l.term_months);
    intervals.insert(l.interval);
    partners.insert(l.partner);
    if (l.borrowers.size() > 1) ++groups;
    EXPECT_GE(l.usd_cents, 100 * 100) << l.index;
    EXPECT_LE(l.usd_cents, 1'000 * 100) << l.index;
  }
  EXPECT_GE(countries.size(), 10u);
  EXPECT_EQ(sectors.size(), 15u);
  EXPECT_GE(terms.size(), 8u);
  EXPECT_EQ(intervals.size(), 3u);
  EXPECT_EQ(partners.size(), plan.partners.size());
  EXPECT_GT(groups, 0);
}

TEST(MarketplacePlan, SharesAreUnitsFromDistinctLendersAndCoverEveryLoanButTheExpiringOne) {
  const MarketplacePlan plan = BuildMarketplacePlan();
  for (const PlanLoan& l : plan.loans) {
    EXPECT_EQ(l.usd_cents % kShareUnitCents, 0) << l.index;
    int64_t sum = 0;
    std::set<int> lenders;
    for (const PlanShare& s : l.shares) {
      EXPECT_GT(s.cents, 0);
      EXPECT_EQ(s.cents % kShareUnitCents, 0) << l.index;
      EXPECT_TRUE(lenders.insert(s.lender).second) << "lender twice on loan " << l.index;
      EXPECT_GE(s.lender, 0);
      EXPECT_LT(s.lender, kMarketplaceLenders);
      sum += s.cents;
    }
    if (l.role == LoanRole::kExpiry) {
      EXPECT_GT(sum, 0);
      EXPECT_LT(sum, l.usd_cents);
    } else {
      EXPECT_EQ(sum, l.usd_cents) << l.index;
    }
  }
}

TEST(MarketplacePlan, LocalAmountsDivideBackToTheUsdAmountExactly) {
  for (const PlanLoan& l : BuildMarketplacePlan().loans) {
    const Currency currency = Currency::FromCode(l.country.currency).value();
    const std::string rate(l.country.fx_rate);
    const size_t dot = rate.find('.');
    int64_t rate_scaled = 0;
    ASSERT_TRUE(absl::SimpleAtoi(
        dot == std::string::npos ? rate : rate.substr(0, dot) + rate.substr(dot + 1),
        &rate_scaled));
    int64_t scale = 1;
    for (size_t i = dot == std::string::npos ? rate.size() : dot + 1; i < rate.size(); ++i)
      scale *= 10;
    // usd_cents = local_minor / minor_per_major / (rate_scaled / scale) * 100, with no remainder.
    const __int128 numerator = static_cast<__int128>(LocalMinor(l)) * scale * 100;
    const __int128 denominator = static_cast<__int128>(currency.minor_per_major()) * rate_scaled;
    EXPECT_EQ(numerator % denominator, 0) << l.index << " " << l.local_amount;
    EXPECT_EQ(static_cast<int64_t>(numerator / denominator), l.usd_cents) << l.index;
  }
}

TEST(MarketplacePlan, DepositsCoverEachLendersSharesAndDonations) {
  const MarketplacePlan plan = BuildMarketplacePlan();
  std::vector<int64_t> owed(plan.lenders.size(), 0);
  for (const PlanLoan& l : plan.loans) {
    for (const PlanShare& s : l.shares) owed[static_cast<size_t>(s.lender)] += s.cents;
  }
  for (size_t i = 0; i < plan.lenders.size(); ++i) {
    const PlanLender& lender = plan.lenders[i];
    int64_t donations = 0;
    for (const BasketChunk& c : lender.basket_chunks) donations += c.donation_cents;
    EXPECT_GE(lender.deposit_cents, owed[i] + donations) << lender.id;
    EXPECT_LT(lender.deposit_cents, owed[i] + donations + 9 * kShareUnitCents) << lender.id;
    EXPECT_EQ(lender.id, kFirstLenderId + static_cast<int64_t>(i));
  }
}

TEST(MarketplacePlan, BasketChunksCarryEveryBasketShareTenAtATime) {
  const MarketplacePlan plan = BuildMarketplacePlan();
  std::vector<int64_t> in_shares(plan.lenders.size(), 0), in_chunks(plan.lenders.size(), 0);
  for (const PlanLoan& l : plan.loans) {
    for (const PlanShare& s : l.shares) {
      if (plan.lenders[static_cast<size_t>(s.lender)].uses_basket)
        in_shares[static_cast<size_t>(s.lender)] += s.cents;
    }
  }
  int basket_lenders = 0;
  for (size_t i = 0; i < plan.lenders.size(); ++i) {
    const PlanLender& lender = plan.lenders[i];
    if (!lender.uses_basket) {
      EXPECT_TRUE(lender.basket_chunks.empty());
      continue;
    }
    ++basket_lenders;
    for (const BasketChunk& c : lender.basket_chunks) {
      EXPECT_GE(c.items.size(), 1u);
      EXPECT_LE(c.items.size(), static_cast<size_t>(kBasketChunkItems));
      for (const auto& [loan, cents] : c.items) in_chunks[i] += cents;
    }
    EXPECT_EQ(in_chunks[i], in_shares[i]) << lender.id;
  }
  EXPECT_GT(basket_lenders, 0);
  EXPECT_LT(basket_lenders, kMarketplaceLenders);
}

TEST(MarketplacePlan, ThreeLoansPlayTheirPartsAndOnePartnerCoversCurrencyLoss) {
  const MarketplacePlan plan = BuildMarketplacePlan();
  const PlanLoan& loss = plan.loans[static_cast<size_t>(plan.currency_loss_loan)];
  const PlanLoan& fails = plan.loans[static_cast<size_t>(plan.default_loan)];
  const PlanLoan& expires = plan.loans[static_cast<size_t>(plan.expiry_loan)];
  EXPECT_EQ(loss.role, LoanRole::kCurrencyLoss);
  EXPECT_EQ(fails.role, LoanRole::kDefault);
  EXPECT_EQ(expires.role, LoanRole::kExpiry);
  EXPECT_NE(loss.settlement_fx_rate, std::string(loss.country.fx_rate));
  EXPECT_EQ(plan.partners[static_cast<size_t>(loss.partner)].coverage_bps, 1'000);
  int covered = 0, regular = 0;
  for (const PlanPartner& p : plan.partners) covered += p.coverage_bps > 0 ? 1 : 0;
  EXPECT_EQ(covered, 1);
  for (const PlanLoan& l : plan.loans) {
    if (l.role != LoanRole::kRegular) continue;
    ++regular;
    EXPECT_EQ(l.settlement_fx_rate, std::string(l.country.fx_rate)) << l.index;
  }
  EXPECT_EQ(regular, kMarketplaceLoans - 3);
  // The repayment months must carry the clock past the defaulting loan's term plus 180 days,
  // whatever the day the demo first runs on.
  for (absl::CivilDay first(2024, 1, 1); first < absl::CivilDay(2028, 1, 1); ++first) {
    ASSERT_GT(AddMonthsClamped(first, kRepaymentMonths),
              AddMonthsClamped(first, fails.term_months) + 180)
        << first;
  }
}

TEST(AddMonthsClamped, KeepsTheDayOrClampsToTheEndOfAShorterMonth) {
  EXPECT_EQ(AddMonthsClamped(absl::CivilDay(2026, 1, 15), 1), absl::CivilDay(2026, 2, 15));
  EXPECT_EQ(AddMonthsClamped(absl::CivilDay(2026, 1, 31), 1), absl::CivilDay(2026, 2, 28));
  EXPECT_EQ(AddMonthsClamped(absl::CivilDay(2028, 1, 31), 1), absl::CivilDay(2028, 2, 29));
  EXPECT_EQ(AddMonthsClamped(absl::CivilDay(2026, 1, 31), 2), absl::CivilDay(2026, 3, 31));
  EXPECT_EQ(AddMonthsClamped(absl::CivilDay(2026, 8, 31), 6), absl::CivilDay(2027, 2, 28));
  EXPECT_EQ(AddMonthsClamped(absl::CivilDay(2026, 11, 30), 3), absl::CivilDay(2027, 2, 28));
  EXPECT_EQ(AddMonthsClamped(absl::CivilDay(2026, 3, 31), -1), absl::CivilDay(2026, 2, 28));
  EXPECT_EQ(AddMonthsClamped(absl::CivilDay(2026, 3, 31), 0), absl::CivilDay(2026, 3, 31));
}

PlanLoan LoanWithRole(LoanRole role) {
  PlanLoan loan;
  loan.role = role;
  return loan;
}

std::vector<Installment> Monthly(absl::CivilDay from, int n, int64_t each) {
  std::vector<Installment> out;
  for (int k = 1; k <= n; ++k) out.push_back({AddMonthsClamped(from, k), each});
  return out;
}

TEST(RepaymentLocalMinor, ARegularLoanPaysWhatFallsDueInEachMonthAndNothingElse) {
  const absl::CivilDay first(2026, 1, 31);
  const auto schedule = Monthly(first, 3, 1'000);
  const PlanLoan loan = LoanWithRole(LoanRole::kRegular);
  EXPECT_EQ(RepaymentLocalMinor(loan, schedule, first, 0), 0);
  EXPECT_EQ(RepaymentLocalMinor(loan, schedule, first, -1), 0);
  for (int month = 1; month <= 3; ++month) {
    EXPECT_EQ(RepaymentLocalMinor(loan, schedule, first, month), 1'000) << month;
  }
  EXPECT_EQ(RepaymentLocalMinor(loan, schedule, first, 4), 0);
}

TEST(RepaymentLocalMinor, WeeklyInstallmentsAreReportedTogetherByMonthAndSumToThePrincipal) {
  const absl::CivilDay first(2026, 3, 1);
  std::vector<Installment> weekly;
  for (int w = 1; w <= 13; ++w) weekly.push_back({first + 7 * w, 100 + w});
  int64_t total = 0, paid = 0;
  for (const Installment& i : weekly) total += i.local_minor;
  const PlanLoan loan = LoanWithRole(LoanRole::kRegular);
  // 13 weeks from March 1 end on May 31, inside the third month (which ends June 1).
  for (int month = 1; month <= 3; ++month) {
    const int64_t part = RepaymentLocalMinor(loan, weekly, first, month);
    EXPECT_GT(part, 0) << month;
    paid += part;
  }
  EXPECT_EQ(paid, total);
  EXPECT_EQ(RepaymentLocalMinor(loan, weekly, first, 4), 0);
}

TEST(RepaymentLocalMinor, TheDefaultingLoanStopsAfterMonthOneAndTheExpiringLoanNeverPays) {
  const absl::CivilDay first(2026, 5, 10);
  const auto schedule = Monthly(first, 2, 5'000);
  EXPECT_EQ(RepaymentLocalMinor(LoanWithRole(LoanRole::kDefault), schedule, first, 1), 5'000);
  EXPECT_EQ(RepaymentLocalMinor(LoanWithRole(LoanRole::kDefault), schedule, first, 2), 0);
  for (int month = 0; month <= kRepaymentMonths; ++month) {
    EXPECT_EQ(RepaymentLocalMinor(LoanWithRole(LoanRole::kExpiry), schedule, first, month), 0);
  }
}

TEST(UsdAmount, WritesTheWireDecimal) {
  EXPECT_EQ(UsdAmount(2'500), "25.00");
  EXPECT_EQ(UsdAmount(7), "0.07");
  EXPECT_EQ(UsdAmount(0), "0.00");
}

}  // namespace
}  // namespace microlend::demo
