// A partner's credit limit and status rules end to end over gRPC against the real lending server
// and PostgreSQL: submission and approval over the limit are refused and write nothing, racing
// submissions and approvals cannot together pass it (the partner row lock), the outstanding
// principal of loans paying back counts and repayments free it, closing waits for loans in
// review, fundraising or funded, and a paused or closed partner can neither submit nor have
// loans approved. Loans are in KES at 100 KES per USD. The suite shares one stack; every test
// makes its own partners.
#include <grpcpp/support/status.h>

#include <atomic>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "harness/local_stack.h"
#include "harness/rpc.h"
#include "harness/shared_stack_test.h"
#include "microlend/lending/v1/lending.grpc.pb.h"

namespace microlend::testing {
namespace {

namespace lv1 = ::microlend::lending::v1;
namespace cv1 = ::microlend::common::v1;
using ::testing::HasSubstr;

std::string Amount(int64_t cents) {
  return absl::StrCat(cents / 100, ".", cents % 100 < 10 ? "0" : "", cents % 100);
}

class PartnerLimitsTest : public SharedStackTest {
 protected:
  void SetUp() override {
    auto ch = Channel(stack_->Address(Server::kLending));
    partners_ = lv1::PartnerService::NewStub(ch);
    loans_ = lv1::LoanService::NewStub(ch);
    baskets_ = lv1::BasketService::NewStub(ch);
    lenders_ = lv1::LenderService::NewStub(ch);
    ops_ = stack_->Token(Role::kOps, "ops-1");
    svc_ = stack_->Token(Role::kService, "payments");
  }

  static std::string Rid() { return absl::StrCat("limits-", next_rid_++); }
  std::string PartnerToken(const std::string& id) { return stack_->Token(Role::kPartner, id); }

  std::string MakePartner(int64_t limit_cents) {
    lv1::CreatePartnerRequest req;
    req.set_request_id(Rid());
    req.set_name(absl::StrCat("Limits MFI ", next_rid_++));
    req.add_countries("KE");
    req.set_risk_rating_half_stars(6);
    *req.mutable_credit_limit() = M(Amount(limit_cents));
    lv1::CreatePartnerResponse out;
    grpc::Status s = partners_->CreatePartner(Ctx(ops_).get(), req, &out);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return out.partner().id().value();
  }

  lv1::Partner GetPartner(const std::string& id) {
    lv1::GetPartnerRequest req;
    req.mutable_partner_id()->set_value(id);
    lv1::GetPartnerResponse out;
    grpc::Status s = partners_->GetPartner(Ctx(ops_).get(), req, &out);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return out.partner();
  }

  void SetLimit(const std::string& partner, int64_t limit_cents) {
    lv1::UpdatePartnerRequest req;
    req.set_request_id(Rid());
    req.mutable_partner()->mutable_id()->set_value(partner);
    *req.mutable_partner()->mutable_credit_limit() = M(Amount(limit_cents));
    req.mutable_update_mask()->add_paths("credit_limit");
    lv1::UpdatePartnerResponse out;
    grpc::Status s = partners_->UpdatePartner(Ctx(ops_).get(), req, &out);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }

  grpc::Status SetStatus(const std::string& partner, lv1::PartnerStatus status,
                         const std::string& rid = Rid()) {
    lv1::SetPartnerStatusRequest req;
    req.set_request_id(rid);
    req.mutable_partner_id()->set_value(partner);
    req.set_status(status);
    req.set_reason("test");
    lv1::SetPartnerStatusResponse out;
    return partners_->SetPartnerStatus(Ctx(ops_).get(), req, &out);
  }

  // A DRAFT of USD `usd_cents` (KES at 100 per USD).
  lv1::Loan Draft(const std::string& partner, int64_t usd_cents) {
    lv1::CreateLoanDraftRequest req;
    req.set_request_id(Rid());
    lv1::LoanDetails* d = req.mutable_details();
    lv1::Borrower* b = d->add_borrowers();
    b->set_name("Achieng");
    b->set_gender(cv1::GENDER_FEMALE);
    d->set_name("Achieng");
    d->set_story("Achieng sells fish in Kisumu.");
    d->set_use("to buy a cool box");
    d->set_sector(cv1::SECTOR_FOOD);
    d->set_country("KE");
    *d->mutable_local_amount() = M(Amount(usd_cents * 100), "KES");
    d->set_posting_fx_rate("100");
    d->set_term_months(12);
    d->set_repayment_interval(lv1::REPAYMENT_INTERVAL_MONTHLY);
    lv1::CreateLoanDraftResponse out;
    grpc::Status s = loans_->CreateLoanDraft(Ctx(PartnerToken(partner)).get(), req, &out);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return out.loan();
  }

  grpc::Status Submit(const std::string& partner, const lv1::Loan& loan,
                      const std::string& rid = Rid()) {
    lv1::SubmitLoanForReviewRequest req;
    req.set_request_id(rid);
    *req.mutable_loan_id() = loan.id();
    lv1::SubmitLoanForReviewResponse out;
    return loans_->SubmitLoanForReview(Ctx(PartnerToken(partner)).get(), req, &out);
  }

  grpc::Status Review(const lv1::Loan& loan, lv1::ReviewDecision decision,
                      const std::string& rid = Rid()) {
    lv1::ReviewLoanRequest req;
    req.set_request_id(rid);
    *req.mutable_loan_id() = loan.id();
    req.set_decision(decision);
    if (decision == lv1::REVIEW_DECISION_RETURN) req.set_reason("not now");
    lv1::ReviewLoanResponse out;
    return loans_->ReviewLoan(Ctx(ops_).get(), req, &out);
  }

  lv1::Loan Published(const std::string& partner, int64_t usd_cents) {
    lv1::Loan loan = Draft(partner, usd_cents);
    grpc::Status s = Submit(partner, loan);
    EXPECT_TRUE(s.ok()) << s.error_message();
    s = Review(loan, lv1::REVIEW_DECISION_APPROVE);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return GetLoan(loan);
  }

  lv1::Loan GetLoan(const lv1::Loan& loan) {
    lv1::GetLoanRequest req;
    *req.mutable_loan_id() = loan.id();
    lv1::GetLoanResponse out;
    grpc::Status s = loans_->GetLoan(Ctx(ops_).get(), req, &out);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return out.loan();
  }

  // One lender deposits and lends the whole loan: it becomes FUNDED.
  void FundFully(const lv1::Loan& loan, int64_t usd_cents) {
    const std::string lender = std::to_string(next_lender_++);
    lv1::DepositRequest dep;
    dep.set_request_id(Rid());
    dep.mutable_lender_id()->set_value(lender);
    *dep.mutable_amount() = M(Amount(usd_cents));
    dep.set_external_payment_id(absl::StrCat("card-", dep.request_id()));
    lv1::DepositResponse deposited;
    grpc::Status s = lenders_->Deposit(Ctx(svc_).get(), dep, &deposited);
    ASSERT_TRUE(s.ok()) << s.error_message();
    lv1::LendNowRequest lend;
    lend.set_request_id(Rid());
    *lend.mutable_loan_id() = loan.id();
    *lend.mutable_amount() = M(Amount(usd_cents));
    lv1::LendNowResponse lent;
    s = baskets_->LendNow(Ctx(stack_->Token(Role::kLender, lender)).get(), lend, &lent);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }

  static void Today(cv1::CivilDate* date) {
    const absl::CivilDay today = absl::ToCivilDay(absl::Now(), absl::UTCTimeZone());
    date->set_year(static_cast<int32_t>(today.year()));
    date->set_month(today.month());
    date->set_day(today.day());
  }

  grpc::Status Disburse(const std::string& partner, const lv1::Loan& loan, int64_t usd_cents) {
    lv1::ReportDisbursementRequest req;
    req.set_request_id(Rid());
    *req.mutable_loan_id() = loan.id();
    Today(req.mutable_disbursed_on());
    *req.mutable_local_amount() = M(Amount(usd_cents * 100), "KES");
    lv1::ReportDisbursementResponse out;
    return loans_->ReportDisbursement(Ctx(PartnerToken(partner)).get(), req, &out);
  }

  grpc::Status Repay(const std::string& partner, const lv1::Loan& loan, int64_t usd_cents) {
    lv1::PostRepaymentRequest req;
    req.set_request_id(Rid());
    *req.mutable_loan_id() = loan.id();
    *req.mutable_local_amount() = M(Amount(usd_cents * 100), "KES");
    req.set_settlement_fx_rate("100");
    Today(req.mutable_repaid_on());
    lv1::PostRepaymentResponse out;
    return loans_->PostRepayment(Ctx(PartnerToken(partner)).get(), req, &out);
  }

  int64_t CountFor(const std::string& partner, lv1::LoanStatus status) {
    lv1::ListLoansRequest req;
    req.mutable_filter()->add_partner_ids()->set_value(partner);
    req.mutable_filter()->add_statuses(status);
    lv1::ListLoansResponse out;
    grpc::Status s = loans_->ListLoans(Ctx(ops_).get(), req, &out);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return out.page().total_count();
  }

  std::unique_ptr<lv1::PartnerService::Stub> partners_;
  std::unique_ptr<lv1::LoanService::Stub> loans_;
  std::unique_ptr<lv1::BasketService::Stub> baskets_;
  std::unique_ptr<lv1::LenderService::Stub> lenders_;
  std::string ops_, svc_;
  static inline std::atomic<int> next_rid_{1};
  static inline std::atomic<int64_t> next_lender_{71'000};
};

TEST_F(PartnerLimitsTest, SubmissionAndApprovalOverTheLimitAreRefusedAndWriteNothing) {
  const std::string partner = MakePartner(100'000);  // 1,000.00 USD
  const lv1::Loan first = Draft(partner, 60'000);
  ASSERT_TRUE(Submit(partner, first).ok());

  const lv1::Loan second = Draft(partner, 40'001);
  grpc::Status over = Submit(partner, second, "limits-over-submit");
  EXPECT_EQ(over.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(over.error_message(), HasSubstr("credit limit of 1000.00 USD"));
  EXPECT_THAT(over.error_message(), HasSubstr("exposure 600.00 USD"));
  EXPECT_THAT(over.error_message(), HasSubstr("in review 600.00"));
  EXPECT_EQ(GetLoan(second).SerializeAsString(), second.SerializeAsString());

  // At the limit it passes; the refused request id was not remembered.
  SetLimit(partner, 100'001);
  ASSERT_TRUE(Submit(partner, second, "limits-over-submit").ok());
  EXPECT_EQ(GetLoan(second).status(), lv1::LOAN_STATUS_REVIEW);

  // Lowered below what is in review: approval counts only what is committed.
  SetLimit(partner, 70'000);
  ASSERT_TRUE(Review(first, lv1::REVIEW_DECISION_APPROVE).ok());
  const lv1::Loan in_review = GetLoan(second);
  grpc::Status refused = Review(second, lv1::REVIEW_DECISION_APPROVE);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(refused.error_message(), HasSubstr("credit limit of 700.00 USD: exposure 600.00 USD "
                                                 "(fundraising 600.00, funded 0.00, outstanding "
                                                 "0.00) + 400.01 = 1000.01 USD"));
  EXPECT_EQ(GetLoan(second).SerializeAsString(), in_review.SerializeAsString());
  EXPECT_EQ(CountFor(partner, lv1::LOAN_STATUS_FUNDRAISING), 1);
}

TEST_F(PartnerLimitsTest, RacingSubmissionsAndApprovalsCannotTogetherPassTheLimit) {
  constexpr int kLoans = 8;
  const std::string partner = MakePartner(300'000);  // room for 3 loans of 1,000.00
  std::vector<lv1::Loan> drafts;
  for (int i = 0; i < kLoans; ++i) drafts.push_back(Draft(partner, 100'000));

  auto race = [&](auto call) {
    std::atomic<int> ok{0}, refused{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < kLoans; ++i) {
      threads.emplace_back([&, i] {
        grpc::Status s = call(drafts[static_cast<size_t>(i)]);
        if (s.ok()) {
          ++ok;
        } else {
          EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << s.error_message();
          EXPECT_THAT(s.error_message(), HasSubstr("credit limit of 3000.00 USD"));
          ++refused;
        }
      });
    }
    for (std::thread& t : threads) t.join();
    return std::make_pair(ok.load(), refused.load());
  };

  EXPECT_EQ(race([&](const lv1::Loan& l) { return Submit(partner, l); }), std::make_pair(3, 5));
  EXPECT_EQ(CountFor(partner, lv1::LOAN_STATUS_REVIEW), 3);
  EXPECT_EQ(CountFor(partner, lv1::LOAN_STATUS_DRAFT), 5);

  // Put all eight in review, then lower the limit again and race the approvals.
  SetLimit(partner, 800'000);
  for (const lv1::Loan& l : drafts) {
    if (GetLoan(l).status() == lv1::LOAN_STATUS_DRAFT) {
      ASSERT_TRUE(Submit(partner, l).ok());
    }
  }
  SetLimit(partner, 300'000);
  EXPECT_EQ(race([&](const lv1::Loan& l) { return Review(l, lv1::REVIEW_DECISION_APPROVE); }),
            std::make_pair(3, 5));
  EXPECT_EQ(CountFor(partner, lv1::LOAN_STATUS_FUNDRAISING), 3);
  EXPECT_EQ(CountFor(partner, lv1::LOAN_STATUS_REVIEW), 5);
}

TEST_F(PartnerLimitsTest, OutstandingPrincipalCountsAndClosingWaitsForOpenLoans) {
  const std::string partner = MakePartner(150'000);  // 1,500.00 USD
  const lv1::Loan a = Published(partner, 100'000);

  grpc::Status fundraising = SetStatus(partner, lv1::PARTNER_STATUS_CLOSED, "limits-close");
  EXPECT_EQ(fundraising.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(fundraising.error_message(),
              HasSubstr("while 1 of its loans is open (0 in REVIEW, 1 FUNDRAISING, 0 FUNDED)"));
  const lv1::Partner before = GetPartner(partner);
  EXPECT_EQ(before.status(), lv1::PARTNER_STATUS_ACTIVE);

  ASSERT_NO_FATAL_FAILURE(FundFully(a, 100'000));
  ASSERT_EQ(GetLoan(a).status(), lv1::LOAN_STATUS_FUNDED);
  grpc::Status funded = SetStatus(partner, lv1::PARTNER_STATUS_CLOSED);
  EXPECT_THAT(funded.error_message(), HasSubstr("(0 in REVIEW, 0 FUNDRAISING, 1 FUNDED)"));
  EXPECT_EQ(GetPartner(partner).SerializeAsString(), before.SerializeAsString());

  // Paying back, 400.00 repaid: 600.00 outstanding, so 900.00 more fits and 25.00 beyond does not.
  ASSERT_TRUE(Disburse(partner, a, 100'000).ok());
  ASSERT_TRUE(Repay(partner, a, 40'000).ok());
  const lv1::Loan b = Draft(partner, 90'000);
  ASSERT_TRUE(Submit(partner, b).ok());
  const lv1::Loan c = Draft(partner, 2'500);
  grpc::Status over = Submit(partner, c);
  EXPECT_EQ(over.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(over.error_message(), HasSubstr("outstanding 600.00, in review 900.00"));

  // Closing waits for the loan in review; once it is returned the partner closes, the loan
  // paying back still takes repayments, and the closed partner's drafts cannot be submitted.
  EXPECT_THAT(SetStatus(partner, lv1::PARTNER_STATUS_CLOSED).error_message(),
              HasSubstr("(1 in REVIEW, 0 FUNDRAISING, 0 FUNDED)"));
  ASSERT_TRUE(Review(b, lv1::REVIEW_DECISION_RETURN).ok());
  grpc::Status closed = SetStatus(partner, lv1::PARTNER_STATUS_CLOSED, "limits-close");
  ASSERT_TRUE(closed.ok()) << closed.error_message();
  EXPECT_EQ(GetPartner(partner).status(), lv1::PARTNER_STATUS_CLOSED);
  grpc::Status repaid = Repay(partner, a, 10'000);
  EXPECT_TRUE(repaid.ok()) << repaid.error_message();
  grpc::Status after = Submit(partner, b);
  EXPECT_EQ(after.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(after.error_message(), HasSubstr("is CLOSED"));
  EXPECT_EQ(GetLoan(b).status(), lv1::LOAN_STATUS_DRAFT);
}

TEST_F(PartnerLimitsTest, PausedPartnerCannotSubmitOrHaveLoansApprovedButOpsMayReturn) {
  const std::string partner = MakePartner(1'000'000);
  const lv1::Loan draft = Draft(partner, 50'000);
  const lv1::Loan in_review = Draft(partner, 50'000);
  ASSERT_TRUE(Submit(partner, in_review).ok());
  const lv1::Loan returnable = Draft(partner, 50'000);
  ASSERT_TRUE(Submit(partner, returnable).ok());
  const lv1::Loan review_before = GetLoan(in_review);
  ASSERT_TRUE(SetStatus(partner, lv1::PARTNER_STATUS_PAUSED).ok());

  grpc::Status submit = Submit(partner, draft);
  EXPECT_EQ(submit.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(submit.error_message(), HasSubstr("is PAUSED"));
  EXPECT_EQ(GetLoan(draft).SerializeAsString(), draft.SerializeAsString());
  grpc::Status approve = Review(in_review, lv1::REVIEW_DECISION_APPROVE);
  EXPECT_EQ(approve.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(approve.error_message(), HasSubstr("is PAUSED"));
  EXPECT_EQ(GetLoan(in_review).SerializeAsString(), review_before.SerializeAsString());
  ASSERT_TRUE(Review(returnable, lv1::REVIEW_DECISION_RETURN).ok());
  EXPECT_EQ(GetLoan(returnable).status(), lv1::LOAN_STATUS_DRAFT);

  // Resumed, the same loan is approved.
  ASSERT_TRUE(SetStatus(partner, lv1::PARTNER_STATUS_ACTIVE).ok());
  ASSERT_TRUE(Review(in_review, lv1::REVIEW_DECISION_APPROVE).ok());
  ASSERT_TRUE(SetStatus(partner, lv1::PARTNER_STATUS_PAUSED).ok());
  EXPECT_EQ(Submit(partner, draft).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(GetLoan(in_review).status(), lv1::LOAN_STATUS_FUNDRAISING);  // it continues
}

}  // namespace
}  // namespace microlend::testing
