// MarketplaceTest: the base of suites that walk the marketplace over gRPC against the shared
// stack (SharedStackTest): stubs for the lending server's services, ops and service tokens,
// request and lender ids unique within the test binary, and the steps most scenarios start with
// (a partner; an approved FUNDRAISING loan in KES at 100 KES per USD; a deposit; reading a loan),
// each failing the test when its call fails. Amounts are cents of two-decimal money.
#ifndef MICROLEND_TESTS_HARNESS_MARKETPLACE_TEST_H_
#define MICROLEND_TESTS_HARNESS_MARKETPLACE_TEST_H_

#include <grpcpp/support/status.h>

#include <cstdint>
#include <memory>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "harness/local_stack.h"
#include "harness/rpc.h"
#include "harness/shared_stack_test.h"
#include "microlend/common/v1/common.grpc.pb.h"
#include "microlend/lending/v1/lending.grpc.pb.h"

namespace microlend::testing {

// "12.34" -> 1234, "-0.50" -> -50 (amounts in these suites have at most two decimals).
inline int64_t Cents(const ::microlend::common::v1::Money& m) {
  std::string digits = m.amount();
  const bool negative = !digits.empty() && digits[0] == '-';
  if (negative) digits.erase(0, 1);
  const size_t dot = digits.find('.');
  int64_t whole = 0, frac = 0;
  EXPECT_TRUE(absl::SimpleAtoi(digits.substr(0, dot), &whole)) << m.amount();
  if (dot != std::string::npos) {
    std::string f = digits.substr(dot + 1);
    while (f.size() < 2) f += '0';
    EXPECT_TRUE(absl::SimpleAtoi(f.substr(0, 2), &frac)) << m.amount();
  }
  return (negative ? -1 : 1) * (whole * 100 + frac);
}

// 1234 -> "12.34" (non-negative amounts).
inline std::string Amount(int64_t cents) {
  return absl::StrCat(cents / 100, ".", cents % 100 < 10 ? "0" : "", cents % 100);
}

class MarketplaceTest : public SharedStackTest {
 protected:
  void SetUp() override {
    auto ch = Channel(stack_->Address(Server::kLending));
    partners_ = lending::v1::PartnerService::NewStub(ch);
    loans_ = lending::v1::LoanService::NewStub(ch);
    baskets_ = lending::v1::BasketService::NewStub(ch);
    lenders_ = lending::v1::LenderService::NewStub(ch);
    ledger_ = lending::v1::LedgerService::NewStub(ch);
    admin_ = common::v1::ServerAdmin::NewStub(ch);
    ops_ = stack_->Token(Role::kOps, "ops-1");
    svc_ = stack_->Token(Role::kService, "payments");
  }

  static std::string Rid() { return absl::StrCat("mkt-", next_rid_++); }
  // Lender ids unique within the binary.
  static int64_t NewLender() { return next_lender_++; }
  std::string LenderToken(int64_t id) { return stack_->Token(Role::kLender, std::to_string(id)); }
  std::string PartnerToken(const std::string& id) { return stack_->Token(Role::kPartner, id); }

  static void Today(common::v1::CivilDate* out) {
    const absl::CivilDay today = absl::ToCivilDay(absl::Now(), absl::UTCTimeZone());
    out->set_year(static_cast<int32_t>(today.year()));
    out->set_month(today.month());
    out->set_day(today.day());
  }

  // An active partner in Kenya rated 3 stars with a large credit limit; its id.
  std::string MakePartner(int32_t coverage_bps = 1000) {
    lending::v1::CreatePartnerRequest req;
    req.set_request_id(Rid());
    req.set_name(absl::StrCat("Test MFI ", next_rid_++));
    req.add_countries("KE");
    req.set_risk_rating_half_stars(6);
    req.set_currency_loss_coverage_bps(coverage_bps);
    *req.mutable_credit_limit() = M("10000000.00");
    lending::v1::CreatePartnerResponse out;
    grpc::Status s = partners_->CreatePartner(Ctx(ops_).get(), req, &out);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return out.partner().id().value();
  }

  // A FUNDRAISING loan of `kes` KES at 100 KES per USD (so USD = kes / 100), repaid monthly:
  // drafted and submitted by `partner`, approved by ops.
  lending::v1::Loan MakeLoan(const std::string& partner, const std::string& kes = "100000.00",
                             int32_t term_months = 12) {
    lending::v1::LoanDetails d;
    lending::v1::Borrower* b = d.add_borrowers();
    b->set_name("Wanjiru");
    b->set_gender(common::v1::GENDER_FEMALE);
    d.set_name("Wanjiru");
    d.set_story("Wanjiru runs a dairy.");
    d.set_use("to buy a cow");
    d.set_sector(common::v1::SECTOR_AGRICULTURE);
    d.set_country("KE");
    d.set_region("Nyeri");
    *d.mutable_local_amount() = M(kes, "KES");
    d.set_posting_fx_rate("100");
    d.set_term_months(term_months);
    d.set_repayment_interval(lending::v1::REPAYMENT_INTERVAL_MONTHLY);
    lending::v1::CreateLoanDraftRequest create;
    create.set_request_id(Rid());
    *create.mutable_details() = d;
    lending::v1::CreateLoanDraftResponse created;
    grpc::Status s = loans_->CreateLoanDraft(Ctx(PartnerToken(partner)).get(), create, &created);
    EXPECT_TRUE(s.ok()) << s.error_message();
    lending::v1::SubmitLoanForReviewRequest submit;
    submit.set_request_id(Rid());
    *submit.mutable_loan_id() = created.loan().id();
    lending::v1::SubmitLoanForReviewResponse submitted;
    s = loans_->SubmitLoanForReview(Ctx(PartnerToken(partner)).get(), submit, &submitted);
    EXPECT_TRUE(s.ok()) << s.error_message();
    lending::v1::ReviewLoanRequest review;
    review.set_request_id(Rid());
    *review.mutable_loan_id() = created.loan().id();
    review.set_decision(lending::v1::REVIEW_DECISION_APPROVE);
    lending::v1::ReviewLoanResponse reviewed;
    s = loans_->ReviewLoan(Ctx(ops_).get(), review, &reviewed);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return reviewed.loan();
  }

  // A card deposit of `cents` USD into `lender`'s wallet, reported by the payments service.
  void Deposit(int64_t lender, int64_t cents) {
    lending::v1::DepositRequest req;
    req.set_request_id(Rid());
    req.mutable_lender_id()->set_value(std::to_string(lender));
    *req.mutable_amount() = M(Amount(cents));
    req.set_external_payment_id(absl::StrCat("card-", req.request_id()));
    lending::v1::DepositResponse out;
    grpc::Status s = lenders_->Deposit(Ctx(svc_).get(), req, &out);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }

  // The loan as ops reads it now.
  lending::v1::Loan GetLoan(const lending::v1::Loan& loan) {
    lending::v1::GetLoanRequest req;
    *req.mutable_loan_id() = loan.id();
    lending::v1::GetLoanResponse out;
    grpc::Status s = loans_->GetLoan(Ctx(ops_).get(), req, &out);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return out.loan();
  }

  // The lifecycle sweep (expiry, arrears, default) run now by ops.
  // One lifecycle pass of at most `max_items` items (0: the server's default).
  lending::v1::RunLifecycleSweepResponse Sweep(int32_t max_items = 0) {
    lending::v1::RunLifecycleSweepRequest req;
    req.set_request_id(Rid());
    req.set_max_items(max_items);
    lending::v1::RunLifecycleSweepResponse out;
    grpc::Status s = loans_->RunLifecycleSweep(Ctx(ops_).get(), req, &out);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return out;
  }

  // Moves the server's business clock forward (the stack runs with --clock_control).
  void AdvanceDays(int64_t days) {
    common::v1::AdvanceClockRequest req;
    req.set_seconds(days * 86'400);
    common::v1::AdvanceClockResponse out;
    grpc::Status s = admin_->AdvanceClock(Ctx(ops_).get(), req, &out);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }

  // Fails the test unless reconciliation comes out clean within 5 s (the outbox relay publishes
  // asynchronously).
  void ExpectReconciled() {
    lending::v1::ReconcileResponse out;
    for (int attempt = 0; attempt < 50; ++attempt) {
      grpc::Status s = ledger_->Reconcile(Ctx(ops_).get(), lending::v1::ReconcileRequest(), &out);
      ASSERT_TRUE(s.ok()) << s.error_message();
      if (out.report().clean()) return;
      absl::SleepFor(absl::Milliseconds(100));
    }
    ADD_FAILURE() << "reconciliation not clean: " << out.report().DebugString();
  }

  std::unique_ptr<lending::v1::PartnerService::Stub> partners_;
  std::unique_ptr<lending::v1::LoanService::Stub> loans_;
  std::unique_ptr<lending::v1::BasketService::Stub> baskets_;
  std::unique_ptr<lending::v1::LenderService::Stub> lenders_;
  std::unique_ptr<lending::v1::LedgerService::Stub> ledger_;
  std::unique_ptr<common::v1::ServerAdmin::Stub> admin_;
  std::string ops_, svc_;
  static inline int next_rid_ = 1;
  static inline int64_t next_lender_ = 5'000;
};

}  // namespace microlend::testing

#endif  // MICROLEND_TESTS_HARNESS_MARKETPLACE_TEST_H_
