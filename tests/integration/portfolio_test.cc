// A lender's portfolio (LenderService.GetPortfolio) and a partner's track record
// (PartnerService.GetPartnerStats), end to end over gRPC against the real lending server and
// PostgreSQL, after real lending, disbursement, repayments (one at a loss), a refund, and, with
// the server's business clock moved forward (ServerAdmin.AdvanceClock), arrears and a default.
// Every amount is checked to the cent against values worked out by hand in the comments. The
// suite shares one stack; the test that moves the clock comes last.
#include <grpcpp/support/status.h>

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "harness/local_stack.h"
#include "harness/rpc.h"
#include "harness/marketplace_test.h"
#include "harness/shared_stack_test.h"
#include "microlend/common/v1/common.grpc.pb.h"
#include "microlend/lending/v1/lending.grpc.pb.h"

namespace microlend::testing {
namespace {

namespace lv1 = ::microlend::lending::v1;
namespace cv1 = ::microlend::common::v1;

// What one PortfolioLoan should say, in cents.
struct Want {
  lv1::LoanStatus status;
  int64_t lent, repaid, outstanding, lost_to_default, lost_to_currency_loss, refunded;
};

void ExpectLine(const lv1::PortfolioLoan& got, const lv1::Loan& loan, const Want& want) {
  SCOPED_TRACE(absl::StrCat("loan ", loan.id().value()));
  EXPECT_EQ(got.loan_id().value(), loan.id().value());
  EXPECT_EQ(got.loan_name(), "Wanjiru");
  EXPECT_EQ(got.country(), "KE");
  EXPECT_EQ(got.sector(), cv1::SECTOR_AGRICULTURE);
  EXPECT_EQ(got.status(), want.status);
  EXPECT_EQ(got.lent().currency(), "USD");
  EXPECT_EQ(Cents(got.lent()), want.lent);
  EXPECT_EQ(Cents(got.repaid()), want.repaid);
  EXPECT_EQ(Cents(got.outstanding()), want.outstanding);
  EXPECT_EQ(Cents(got.lost_to_default()), want.lost_to_default);
  EXPECT_EQ(Cents(got.lost_to_currency_loss()), want.lost_to_currency_loss);
  EXPECT_EQ(Cents(got.refunded()), want.refunded);
  EXPECT_GT(got.first_lent_at().seconds(), 0);
}

int64_t SumMonths(const google::protobuf::RepeatedPtrField<lv1::MonthlyAmount>& months) {
  int64_t sum = 0;
  for (const lv1::MonthlyAmount& m : months) sum += Cents(m.amount());
  return sum;
}

class PortfolioTest : public MarketplaceTest {
 protected:
  void LendNow(int64_t lender, const lv1::Loan& loan, int64_t cents) {
    lv1::LendNowRequest req;
    req.set_request_id(Rid());
    *req.mutable_loan_id() = loan.id();
    *req.mutable_amount() = M(Amount(cents));
    lv1::LendNowResponse out;
    grpc::Status s = baskets_->LendNow(Ctx(LenderToken(lender)).get(), req, &out);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }

  // A fresh lender that deposits `cents` and lends all of it to `loan`.
  int64_t FundWithNewLender(const lv1::Loan& loan, int64_t cents) {
    const int64_t lender = NewLender();
    Deposit(lender, cents);
    LendNow(lender, loan, cents);
    return lender;
  }

  void Disburse(const std::string& partner, const lv1::Loan& loan, const std::string& kes) {
    lv1::ReportDisbursementRequest req;
    req.set_request_id(Rid());
    *req.mutable_loan_id() = loan.id();
    Today(req.mutable_disbursed_on());
    *req.mutable_local_amount() = M(kes, "KES");
    lv1::ReportDisbursementResponse out;
    grpc::Status s = loans_->ReportDisbursement(Ctx(PartnerToken(partner)).get(), req, &out);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }

  lv1::PostRepaymentResponse Repay(const std::string& partner, const lv1::Loan& loan,
                                   const std::string& kes, const std::string& rate) {
    lv1::PostRepaymentRequest req;
    req.set_request_id(Rid());
    *req.mutable_loan_id() = loan.id();
    *req.mutable_local_amount() = M(kes, "KES");
    req.set_settlement_fx_rate(rate);
    Today(req.mutable_repaid_on());
    lv1::PostRepaymentResponse out;
    grpc::Status s = loans_->PostRepayment(Ctx(PartnerToken(partner)).get(), req, &out);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return out;
  }

  void Refund(const lv1::Loan& loan) {
    lv1::RefundLoanRequest req;
    req.set_request_id(Rid());
    *req.mutable_loan_id() = loan.id();
    req.set_reason(lv1::REFUND_REASON_PARTNER_ERROR);
    req.set_detail("posted twice by mistake");
    lv1::RefundLoanResponse out;
    grpc::Status s = loans_->RefundLoan(Ctx(ops_).get(), req, &out);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }

  lv1::GetRepaymentScheduleResponse Schedule(const lv1::Loan& loan) {
    lv1::GetRepaymentScheduleRequest req;
    *req.mutable_loan_id() = loan.id();
    lv1::GetRepaymentScheduleResponse out;
    grpc::Status s = loans_->GetRepaymentSchedule(Ctx(ops_).get(), req, &out);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return out;
  }

  grpc::Status GetPortfolio(const std::string& token, const std::string& lender_id,
                            lv1::GetPortfolioResponse* out, int32_t page_size = 0,
                            const std::string& page_token = "",
                            const std::vector<lv1::LoanStatus>& statuses = {}) {
    lv1::GetPortfolioRequest req;
    req.mutable_lender_id()->set_value(lender_id);
    req.mutable_page()->set_page_size(page_size);
    req.mutable_page()->set_page_token(page_token);
    for (lv1::LoanStatus status : statuses) req.add_statuses(status);
    return lenders_->GetPortfolio(Ctx(token).get(), req, out);
  }
  lv1::GetPortfolioResponse PortfolioOf(int64_t lender) {
    lv1::GetPortfolioResponse out;
    grpc::Status s = GetPortfolio(LenderToken(lender), std::to_string(lender), &out);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return out;
  }

  grpc::Status GetStats(const std::string& token, const std::string& partner,
                        lv1::GetPartnerStatsResponse* out) {
    lv1::GetPartnerStatsRequest req;
    req.mutable_partner_id()->set_value(partner);
    return partners_->GetPartnerStats(Ctx(token).get(), req, out);
  }
  lv1::PartnerStats StatsOf(const std::string& partner) {
    lv1::GetPartnerStatsResponse out;
    grpc::Status s = GetStats(ops_, partner, &out);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return out.stats();
  }
};

TEST_F(PortfolioTest, ALendersThreeLoansAndTheirPartnersStatsAreExactToTheCent) {
  const std::string partner = MakePartner(/*coverage_bps=*/1000);
  const lv1::Loan repaying = MakeLoan(partner, "100000.00");  // USD 1,000.00
  const lv1::Loan ended = MakeLoan(partner, "100000.00");     // USD 1,000.00
  const lv1::Loan refunded = MakeLoan(partner, "50000.00");   // USD 500.00
  const int64_t lender = NewLender();
  Deposit(lender, 60000);
  LendNow(lender, repaying, 25000);
  const int64_t other = FundWithNewLender(repaying, 75000);
  LendNow(lender, ended, 25000);
  FundWithNewLender(ended, 75000);
  LendNow(lender, refunded, 10000);
  Disburse(partner, repaying, "100000.00");
  Disburse(partner, ended, "100000.00");

  // 30,000.00 KES at 120 instead of 100: expected 300.00, received 250.00, loss 50.00; the
  // partner covers 10% of 300.00 = 30.00, funders bear 20.00 and are credited 280.00.
  lv1::PostRepaymentResponse partial = Repay(partner, repaying, "30000.00", "120");
  EXPECT_EQ(Cents(partial.repayment().credited_usd_amount()), 28000);
  EXPECT_EQ(Cents(partial.repayment().partner_coverage_amount()), 3000);
  EXPECT_EQ(Cents(partial.loan().outstanding_amount()), 70000);
  // All 100,000.00 KES at 115.38416237: received 866.67 of 1,000.00, loss 133.33, the partner
  // covers 100.00, funders bear 33.33 and are credited 966.67.
  lv1::PostRepaymentResponse full = Repay(partner, ended, "100000.00", "115.38416237");
  EXPECT_EQ(Cents(full.repayment().credited_usd_amount()), 96667);
  EXPECT_EQ(Cents(full.loan().currency_loss_amount()), 3333);
  EXPECT_EQ(full.loan().status(), lv1::LOAN_STATUS_ENDED);
  Refund(refunded);

  // The lender's part, 25% of the first two loans:
  //   repaying: credited 25% of 280.00 = 70.00; currency loss floor(250.00 x 20.00 / 1,000.00)
  //     = 5.00; outstanding 250.00 - 70.00 - 5.00 = 175.00 (25% of the 700.00 still owed).
  //   ended: its entitlement 25% of 966.67 = 241.6675, credited 241.67 (the leftover cent goes
  //     to the larger fraction); lost to currency loss 250.00 - 241.67 = 8.33.
  //   refunded: 100.00 back.
  lv1::GetPortfolioResponse mine = PortfolioOf(lender);
  ASSERT_EQ(mine.loans_size(), 3);
  // Most recent first_lent_at first.
  ExpectLine(mine.loans(0), refunded, {lv1::LOAN_STATUS_REFUNDED, 10000, 0, 0, 0, 0, 10000});
  ExpectLine(mine.loans(1), ended, {lv1::LOAN_STATUS_ENDED, 25000, 24167, 0, 0, 833, 0});
  ExpectLine(mine.loans(2), repaying,
             {lv1::LOAN_STATUS_PAYING_BACK, 25000, 7000, 17500, 0, 500, 0});
  EXPECT_GE(mine.loans(0).first_lent_at().seconds(), mine.loans(1).first_lent_at().seconds());
  EXPECT_GE(mine.loans(1).first_lent_at().seconds(), mine.loans(2).first_lent_at().seconds());
  EXPECT_FALSE(mine.loans(2).delinquent());
  EXPECT_EQ(mine.loans(0).expected_repayments_size(), 0);
  EXPECT_EQ(mine.loans(1).expected_repayments_size(), 0);

  // Expected repayments of the repaying loan: 12 lines of 8,333.34 x 4 and 8,333.33 x 8 KES;
  // 30,000.00 KES paid lines 1-3 and 4,999.98 of line 4. The lender's 175.00 goes over the
  // unpaid 3,333.36 and 8 x 8,333.33 KES: its share of each at 100 KES per USD is 8.3334 and
  // 20.8333 USD, to the cent 8.34, 20.84, 20.84 and 20.83 x 6 (largest remainders).
  const lv1::GetRepaymentScheduleResponse schedule = Schedule(repaying);
  ASSERT_EQ(schedule.lines_size(), 12);
  const std::vector<int64_t> want_cents = {834, 2084, 2084, 2083, 2083, 2083, 2083, 2083, 2083};
  const lv1::PortfolioLoan& line = mine.loans(2);
  ASSERT_EQ(line.expected_repayments_size(), 9);
  for (int i = 0; i < 9; ++i) {
    const cv1::CivilDate& due = schedule.lines(i + 3).due_date();
    EXPECT_EQ(line.expected_repayments(i).year(), due.year()) << i;
    EXPECT_EQ(line.expected_repayments(i).month(), due.month()) << i;
    EXPECT_EQ(Cents(line.expected_repayments(i).amount()), want_cents[i]) << i;
  }
  EXPECT_EQ(SumMonths(line.expected_repayments()), 17500);
  // The whole portfolio expects just that loan's repayments.
  ASSERT_EQ(mine.expected_repayments_size(), 9);
  EXPECT_EQ(SumMonths(mine.expected_repayments()), 17500);
  EXPECT_EQ(mine.expected_repayments(0).month(), line.expected_repayments(0).month());

  const lv1::PortfolioTotals& t = mine.totals();
  EXPECT_EQ(t.loan_count(), 3);
  EXPECT_EQ(t.active_loan_count(), 1);
  EXPECT_EQ(Cents(t.lent()), 60000);
  EXPECT_EQ(Cents(t.repaid()), 31167);
  EXPECT_EQ(Cents(t.outstanding()), 17500);
  EXPECT_EQ(Cents(t.lost_to_default()), 0);
  EXPECT_EQ(Cents(t.lost_to_currency_loss()), 1333);
  EXPECT_EQ(Cents(t.refunded()), 10000);
  // Over the ended loan: 241.67 / 250.00 = 96.668% -> 9666.
  EXPECT_EQ(t.repayment_rate_bps(), 9666);
  EXPECT_EQ(mine.page().total_count(), 3);
  EXPECT_EQ(mine.page().next_page_token(), "");

  // Pages and the status filter narrow the loans, never the totals.
  lv1::GetPortfolioResponse first, second, paying;
  ASSERT_TRUE(GetPortfolio(LenderToken(lender), "", &first, 2).ok());
  ASSERT_EQ(first.loans_size(), 2);
  EXPECT_EQ(first.loans(0).loan_id().value(), refunded.id().value());
  EXPECT_EQ(first.page().total_count(), 3);
  ASSERT_FALSE(first.page().next_page_token().empty());
  ASSERT_TRUE(
      GetPortfolio(LenderToken(lender), "", &second, 2, first.page().next_page_token()).ok());
  ASSERT_EQ(second.loans_size(), 1);
  EXPECT_EQ(second.loans(0).loan_id().value(), repaying.id().value());
  EXPECT_EQ(second.page().next_page_token(), "");
  EXPECT_EQ(Cents(second.totals().lent()), 60000);
  ASSERT_TRUE(
      GetPortfolio(ops_, std::to_string(lender), &paying, 0, "", {lv1::LOAN_STATUS_PAYING_BACK})
          .ok());
  ASSERT_EQ(paying.loans_size(), 1);
  EXPECT_EQ(paying.loans(0).loan_id().value(), repaying.id().value());
  EXPECT_EQ(paying.page().total_count(), 1);
  EXPECT_EQ(paying.totals().loan_count(), 3);

  // Ops and service see the same; another lender may not; nobody else at all.
  lv1::GetPortfolioResponse seen;
  ASSERT_TRUE(GetPortfolio(ops_, std::to_string(lender), &seen).ok());
  EXPECT_EQ(seen.SerializeAsString(), mine.SerializeAsString());
  ASSERT_TRUE(GetPortfolio(svc_, std::to_string(lender), &seen).ok());
  EXPECT_EQ(Cents(seen.totals().outstanding()), 17500);
  EXPECT_EQ(GetPortfolio(LenderToken(other), std::to_string(lender), &seen).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(GetPortfolio(PartnerToken(partner), std::to_string(lender), &seen).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(GetPortfolio("", std::to_string(lender), &seen).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(GetPortfolio(ops_, "", &seen).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(GetPortfolio(ops_, "x1", &seen).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(GetPortfolio(ops_, std::to_string(lender), &seen, 0, "", {lv1::LOAN_STATUS_UNSPECIFIED})
                .error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(GetPortfolio(ops_, std::to_string(lender), &seen, -1).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  // The other lender: 75% of the repaying loan.
  const lv1::GetPortfolioResponse theirs = PortfolioOf(other);
  ASSERT_EQ(theirs.loans_size(), 1);
  ExpectLine(theirs.loans(0), repaying,
             {lv1::LOAN_STATUS_PAYING_BACK, 75000, 21000, 52500, 0, 1500, 0});
  EXPECT_EQ(SumMonths(theirs.expected_repayments()), 52500);
  // A lender that never deposited has an empty portfolio.
  const lv1::GetPortfolioResponse none = PortfolioOf(NewLender());
  EXPECT_EQ(none.loans_size(), 0);
  EXPECT_EQ(none.totals().loan_count(), 0);
  EXPECT_EQ(Cents(none.totals().lent()), 0);

  // The partner: three loans posted, one active; raised 2,000.00 (the refunded loan's money went
  // back); outstanding 700.00; nothing in arrears or defaulted; currency loss 20.00 + 33.33 over
  // 280.00 + 966.67 repaid = 53.33 / 1,246.67 = 4.2778% -> 427.
  const lv1::PartnerStats stats = StatsOf(partner);
  EXPECT_EQ(stats.partner_id().value(), partner);
  EXPECT_EQ(stats.loans_posted(), 3);
  EXPECT_EQ(stats.loans_active(), 1);
  EXPECT_EQ(stats.amount_raised().currency(), "USD");
  EXPECT_EQ(Cents(stats.amount_raised()), 200000);
  EXPECT_EQ(Cents(stats.amount_outstanding()), 70000);
  EXPECT_EQ(stats.delinquency_rate_bps(), 0);
  EXPECT_EQ(stats.default_rate_bps(), 0);
  EXPECT_EQ(stats.par30_bps(), 0);
  EXPECT_EQ(stats.currency_loss_rate_bps(), 427);
  EXPECT_GT(stats.computed_at().seconds(), 0);
  // The figures are public: any authenticated caller reads them, the partner included.
  lv1::GetPartnerStatsResponse public_view;
  ASSERT_TRUE(GetStats(LenderToken(lender), partner, &public_view).ok());
  EXPECT_EQ(public_view.stats().currency_loss_rate_bps(), 427);
  ASSERT_TRUE(GetStats(PartnerToken(MakePartner()), partner, &public_view).ok());
  ASSERT_TRUE(GetStats(PartnerToken(partner), partner, &public_view).ok());
  EXPECT_EQ(GetStats("", partner, &public_view).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(GetStats(ops_, "987654321", &public_view).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(GetStats(ops_, "", &public_view).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  // A partner without loans has zeros.
  const lv1::PartnerStats fresh = StatsOf(MakePartner());
  EXPECT_EQ(fresh.loans_posted(), 0);
  EXPECT_EQ(Cents(fresh.amount_raised()), 0);
  EXPECT_EQ(fresh.currency_loss_rate_bps(), 0);
}

// --- the clock moves from here on -------------------------------------------------------------

TEST_F(PortfolioTest, ArrearsAndADefaultShowInTheStatsAndThePortfolio) {
  const std::string partner = MakePartner();
  const lv1::Loan behind = MakeLoan(partner, "100000.00", /*term_months=*/36);  // USD 1,000.00
  const lv1::Loan bullet = MakeLoan(partner, "50000.00", /*term_months=*/1);    // USD 500.00
  const lv1::Loan current = MakeLoan(partner, "10000.00");                      // USD 100.00
  const int64_t lender = NewLender();
  Deposit(lender, 110000);
  LendNow(lender, behind, 100000);
  LendNow(lender, current, 10000);
  const int64_t bullet_lender = FundWithNewLender(bullet, 50000);
  Disburse(partner, behind, "100000.00");
  Disburse(partner, bullet, "50000.00");
  Disburse(partner, current, "10000.00");
  Repay(partner, behind, "1000.00", "100");   // 10.00 USD, far less than one line
  Repay(partner, current, "2000.00", "100");  // 20.00 USD, ahead of two lines

  // 70 days on, two monthly lines are past due (at most 62 days after the start) and the third
  // is not (at least 89). behind: lines of 2,777.78 KES, 5,555.56 due, 1,000.00 paid: 4,555.56
  // KES = 45.5556 USD in arrears -> 45.55 (rounded down), 39 or more days. bullet: all 500.00,
  // 39 or more days. current: not behind.
  AdvanceDays(70);
  Sweep();
  EXPECT_TRUE(GetLoan(behind).delinquent());
  EXPECT_TRUE(GetLoan(bullet).delinquent());
  EXPECT_FALSE(GetLoan(current).delinquent());
  // Outstanding 990.00 + 500.00 + 80.00 = 1,570.00. Delinquency (45.55 + 500.00) / 1,570.00 =
  // 34.748% -> 3474; PAR30 (990.00 + 500.00) / 1,570.00 = 94.904% -> 9490.
  lv1::PartnerStats stats = StatsOf(partner);
  EXPECT_EQ(stats.loans_posted(), 3);
  EXPECT_EQ(stats.loans_active(), 3);
  EXPECT_EQ(Cents(stats.amount_raised()), 160000);
  EXPECT_EQ(Cents(stats.amount_outstanding()), 157000);
  EXPECT_EQ(stats.delinquency_rate_bps(), 3474);
  EXPECT_EQ(stats.par30_bps(), 9490);
  EXPECT_EQ(stats.default_rate_bps(), 0);
  EXPECT_EQ(stats.currency_loss_rate_bps(), 0);
  lv1::GetPortfolioResponse mine = PortfolioOf(lender);
  ASSERT_EQ(mine.loans_size(), 2);
  EXPECT_TRUE(mine.loans(1).delinquent());
  EXPECT_FALSE(mine.loans(0).delinquent());
  EXPECT_EQ(Cents(mine.totals().outstanding()), 99000 + 8000);
  EXPECT_EQ(SumMonths(mine.expected_repayments()), 107000);

  // 250 days more: the bullet loan is still behind 180 days after its only due date: defaulted,
  // 500.00 lost of 1,600.00 disbursed = 31.25% -> 3125. It stays active and outstanding.
  AdvanceDays(250);
  lv1::RunLifecycleSweepResponse swept = Sweep();
  EXPECT_EQ(swept.loans_defaulted(), 1);
  EXPECT_EQ(GetLoan(bullet).status(), lv1::LOAN_STATUS_DEFAULTED);
  EXPECT_EQ(GetLoan(behind).status(), lv1::LOAN_STATUS_PAYING_BACK);
  EXPECT_EQ(GetLoan(current).status(), lv1::LOAN_STATUS_PAYING_BACK);
  stats = StatsOf(partner);
  EXPECT_EQ(stats.loans_active(), 3);
  EXPECT_EQ(Cents(stats.amount_outstanding()), 157000);
  EXPECT_EQ(stats.default_rate_bps(), 3125);
  // Arrears and PAR30 by hand from each loan's own figures: arrears at the posting rate
  // (100 KES per USD), rounded down, capped at the loan's outstanding.
  int64_t arrears = 0, par30 = 0;
  for (const lv1::Loan& loan : {GetLoan(behind), GetLoan(bullet), GetLoan(current)}) {
    const int64_t outstanding = Cents(loan.outstanding_amount());
    arrears += std::min(Cents(loan.arrears_local_amount()) / 100, outstanding);
    if (loan.days_in_arrears() > 30) par30 += outstanding;
  }
  EXPECT_GT(arrears, 0);
  EXPECT_EQ(stats.delinquency_rate_bps(), arrears * 10000 / 157000);
  EXPECT_EQ(stats.par30_bps(), par30 * 10000 / 157000);

  // The bullet loan's lender lost all of it to the default.
  const lv1::GetPortfolioResponse lost = PortfolioOf(bullet_lender);
  ASSERT_EQ(lost.loans_size(), 1);
  ExpectLine(lost.loans(0), bullet, {lv1::LOAN_STATUS_DEFAULTED, 50000, 0, 0, 50000, 0, 0});
  EXPECT_TRUE(lost.loans(0).delinquent());
  EXPECT_EQ(lost.expected_repayments_size(), 0);
  EXPECT_EQ(lost.totals().active_loan_count(), 0);
  EXPECT_EQ(Cents(lost.totals().lost_to_default()), 50000);
  EXPECT_EQ(lost.totals().repayment_rate_bps(), 0);
}

}  // namespace
}  // namespace microlend::testing
