// LoanService end to end (drafts, review, catalogue): the real lending server on a real
// PostgreSQL. Loans are shared by every test of the suite, so catalogue assertions filter by
// partners created in the test itself.
#include <grpcpp/support/status.h>

#include <atomic>
#include <thread>

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

class LoansIntegrationTest : public SharedStackTest {
 protected:
  void SetUp() override {
    auto channel = Channel(stack_->Address(Server::kLending));
    partners_ = lv1::PartnerService::NewStub(channel);
    loans_ = lv1::LoanService::NewStub(channel);
    ops_ = stack_->Token(Role::kOps, "ops-1");
    lender_ = stack_->Token(Role::kLender, "77");
  }

  static std::string Rid() { return "loan-rid-" + std::to_string(next_rid_++); }

  // A new ACTIVE partner in KE and UG; returns its id.
  std::string MakePartner(int rating = 6) {
    lv1::CreatePartnerRequest req;
    req.set_request_id(Rid());
    req.set_name("Loans MFI " + std::to_string(next_rid_++));
    req.add_countries("KE");
    req.add_countries("UG");
    req.set_risk_rating_half_stars(rating);
    *req.mutable_credit_limit() = M("1000000.00");
    lv1::CreatePartnerResponse out;
    grpc::Status s = partners_->CreatePartner(Ctx(ops_).get(), req, &out);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return out.partner().id().value();
  }

  std::string PartnerToken(const std::string& id) { return stack_->Token(Role::kPartner, id); }

  static lv1::LoanDetails Details(const std::string& amount = "100000.00") {
    lv1::LoanDetails d;
    lv1::Borrower* b = d.add_borrowers();
    b->set_name("Amina");
    b->set_gender(cv1::GENDER_FEMALE);
    d.set_name("Amina");
    d.set_story("Amina sells vegetables.");
    d.set_use("to buy a cart");
    d.set_sector(cv1::SECTOR_FOOD);
    d.set_country("KE");
    d.set_region("Nakuru");
    d.add_tags("woman_owned_business");
    *d.mutable_local_amount() = M(amount, "KES");
    d.set_posting_fx_rate("129.5");
    d.set_term_months(12);
    d.set_repayment_interval(lv1::REPAYMENT_INTERVAL_MONTHLY);
    return d;
  }

  grpc::Status Create(const std::string& token, const lv1::LoanDetails& d,
                      lv1::CreateLoanDraftResponse* out, const std::string& rid = Rid(),
                      const std::string& partner_id = "") {
    lv1::CreateLoanDraftRequest req;
    req.set_request_id(rid);
    if (!partner_id.empty()) req.mutable_partner_id()->set_value(partner_id);
    *req.mutable_details() = d;
    return loans_->CreateLoanDraft(Ctx(token).get(), req, out);
  }

  lv1::Loan MustCreate(const std::string& partner, const lv1::LoanDetails& d = Details()) {
    lv1::CreateLoanDraftResponse out;
    grpc::Status s = Create(PartnerToken(partner), d, &out);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return out.loan();
  }

  grpc::Status Submit(const std::string& token, const lv1::Loan& loan,
                      lv1::SubmitLoanForReviewResponse* out) {
    lv1::SubmitLoanForReviewRequest req;
    req.set_request_id(Rid());
    *req.mutable_loan_id() = loan.id();
    return loans_->SubmitLoanForReview(Ctx(token).get(), req, out);
  }

  grpc::Status Review(const lv1::Loan& loan, lv1::ReviewDecision decision,
                      lv1::ReviewLoanResponse* out, const std::string& reason = "") {
    lv1::ReviewLoanRequest req;
    req.set_request_id(Rid());
    *req.mutable_loan_id() = loan.id();
    req.set_decision(decision);
    req.set_reason(reason);
    return loans_->ReviewLoan(Ctx(ops_).get(), req, out);
  }

  lv1::Loan MustPublish(const std::string& partner, const lv1::LoanDetails& d = Details()) {
    lv1::Loan loan = MustCreate(partner, d);
    lv1::SubmitLoanForReviewResponse sub;
    EXPECT_TRUE(Submit(PartnerToken(partner), loan, &sub).ok());
    lv1::ReviewLoanResponse rev;
    grpc::Status s = Review(loan, lv1::REVIEW_DECISION_APPROVE, &rev);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return rev.loan();
  }

  std::vector<std::string> List(const std::string& token, lv1::ListLoansRequest req,
                                lv1::ListLoansResponse* out_page = nullptr) {
    lv1::ListLoansResponse out;
    grpc::Status s = loans_->ListLoans(Ctx(token).get(), req, &out);
    EXPECT_TRUE(s.ok()) << s.error_message();
    std::vector<std::string> ids;
    for (const lv1::Loan& l : out.loans()) ids.push_back(l.id().value());
    if (out_page != nullptr) *out_page = out;
    return ids;
  }

  int64_t CountFor(const std::string& partner, std::vector<lv1::LoanStatus> statuses) {
    lv1::ListLoansRequest req;
    req.mutable_filter()->add_partner_ids()->set_value(partner);
    for (lv1::LoanStatus s : statuses) req.mutable_filter()->add_statuses(s);
    lv1::ListLoansResponse out;
    List(ops_, req, &out);
    return out.page().total_count();
  }

  static std::atomic<int> next_rid_;
  std::unique_ptr<lv1::PartnerService::Stub> partners_;
  std::unique_ptr<lv1::LoanService::Stub> loans_;
  std::string ops_;
  std::string lender_;
};

std::atomic<int> LoansIntegrationTest::next_rid_{1};

TEST_F(LoansIntegrationTest, PartnerDraftSubmitApproveAppearsInTheCatalogue) {
  const std::string partner = MakePartner();
  lv1::Loan draft = MustCreate(partner);
  EXPECT_EQ(draft.status(), lv1::LOAN_STATUS_DRAFT);
  EXPECT_EQ(draft.partner_id().value(), partner);
  EXPECT_EQ(draft.usd_amount().amount(), "772.20");
  EXPECT_EQ(draft.remaining_amount().amount(), "772.20");
  EXPECT_EQ(draft.funded_amount().amount(), "0.00");
  EXPECT_EQ(draft.borrower_type(), cv1::BORROWER_TYPE_INDIVIDUAL);
  ASSERT_EQ(draft.details().schedule_size(), 12);
  int64_t cents = 0;
  for (const lv1::ScheduleEntry& e : draft.details().schedule()) {
    const std::string& a = e.principal().amount();
    cents += std::stoll(a.substr(0, a.find('.'))) * 100 + std::stoll(a.substr(a.find('.') + 1));
  }
  EXPECT_EQ(cents, 10'000'000);  // exactly 100000.00 KES

  lv1::ListLoansRequest mine;
  mine.mutable_filter()->add_partner_ids()->set_value(partner);
  EXPECT_TRUE(List(lender_, mine).empty());  // drafts are not public

  lv1::SubmitLoanForReviewResponse sub;
  ASSERT_TRUE(Submit(PartnerToken(partner), draft, &sub).ok());
  EXPECT_EQ(sub.loan().status(), lv1::LOAN_STATUS_REVIEW);
  lv1::ReviewLoanResponse rev;
  ASSERT_TRUE(Review(draft, lv1::REVIEW_DECISION_APPROVE, &rev).ok());
  EXPECT_EQ(rev.loan().status(), lv1::LOAN_STATUS_FUNDRAISING);
  EXPECT_EQ(rev.loan().fundraising_deadline().seconds() - rev.loan().posted_at().seconds(),
            30 * 24 * 3600);
  EXPECT_EQ(rev.loan().partner_risk_rating_half_stars(), 6);

  EXPECT_THAT(List(lender_, mine), ::testing::ElementsAre(draft.id().value()));
  lv1::GetLoanRequest get;
  *get.mutable_loan_id() = draft.id();
  lv1::GetLoanResponse got;
  ASSERT_TRUE(loans_->GetLoan(Ctx(lender_).get(), get, &got).ok());
  EXPECT_EQ(got.loan().SerializeAsString(), rev.loan().SerializeAsString());

  lv1::GetRepaymentScheduleRequest sreq;
  *sreq.mutable_loan_id() = draft.id();
  lv1::GetRepaymentScheduleResponse sched;
  ASSERT_TRUE(loans_->GetRepaymentSchedule(Ctx(lender_).get(), sreq, &sched).ok());
  EXPECT_EQ(sched.lines_size(), 12);
  EXPECT_EQ(sched.total_local().amount(), "100000.00");
  EXPECT_EQ(sched.outstanding_local().amount(), "100000.00");
}

TEST_F(LoansIntegrationTest, FiltersSortsAndPaging) {
  const std::string p1 = MakePartner(8);
  const std::string p2 = MakePartner(2);
  lv1::LoanDetails big = Details("500000.00");
  big.set_sector(cv1::SECTOR_AGRICULTURE);
  big.add_hashtags("farming");
  lv1::LoanDetails group = Details("200000.00");
  lv1::Borrower* juma = group.add_borrowers();
  juma->set_name("Juma");
  juma->set_gender(cv1::GENDER_MALE);
  group.set_term_months(24);
  const std::string a = MustPublish(p1).id().value();
  const std::string b = MustPublish(p1, big).id().value();
  const std::string c = MustPublish(p2, group).id().value();

  auto req = [&](lv1::LoanSort sort) {
    lv1::ListLoansRequest r;
    r.mutable_filter()->add_partner_ids()->set_value(p1);
    r.mutable_filter()->add_partner_ids()->set_value(p2);
    r.set_sort(sort);
    return r;
  };
  EXPECT_THAT(List(lender_, req(lv1::LOAN_SORT_NEWEST)), ::testing::ElementsAre(c, b, a));
  EXPECT_THAT(List(lender_, req(lv1::LOAN_SORT_LOAN_AMOUNT_ASC)), ::testing::ElementsAre(a, c, b));
  EXPECT_THAT(List(lender_, req(lv1::LOAN_SORT_AMOUNT_LEFT_DESC)), ::testing::ElementsAre(b, c, a));
  EXPECT_THAT(List(lender_, req(lv1::LOAN_SORT_EXPIRING_SOONEST)), ::testing::ElementsAre(a, b, c));
  EXPECT_THAT(List(lender_, req(lv1::LOAN_SORT_TRENDING)), ::testing::ElementsAre(a, b, c));
  lv1::ListLoansRequest random = req(lv1::LOAN_SORT_RANDOM);
  random.set_random_seed(12345);
  const std::vector<std::string> order = List(lender_, random);
  EXPECT_EQ(order.size(), 3u);
  EXPECT_EQ(List(lender_, random), order);

  lv1::ListLoansRequest f = req(lv1::LOAN_SORT_NEWEST);
  f.mutable_filter()->add_sectors(cv1::SECTOR_AGRICULTURE);
  EXPECT_THAT(List(lender_, f), ::testing::ElementsAre(b));
  f = req(lv1::LOAN_SORT_NEWEST);
  f.mutable_filter()->set_borrower_type(cv1::BORROWER_TYPE_GROUP);
  EXPECT_THAT(List(lender_, f), ::testing::ElementsAre(c));
  f = req(lv1::LOAN_SORT_NEWEST);
  f.mutable_filter()->add_genders(cv1::GENDER_MIXED);
  EXPECT_THAT(List(lender_, f), ::testing::ElementsAre(c));
  f = req(lv1::LOAN_SORT_NEWEST);
  f.mutable_filter()->set_min_partner_risk_rating_half_stars(7);
  EXPECT_THAT(List(lender_, f), ::testing::ElementsAre(b, a));
  f = req(lv1::LOAN_SORT_NEWEST);
  f.mutable_filter()->set_max_term_months(12);
  EXPECT_THAT(List(lender_, f), ::testing::ElementsAre(b, a));
  f = req(lv1::LOAN_SORT_NEWEST);
  f.mutable_filter()->add_hashtags("farming");
  f.mutable_filter()->add_tags("woman_owned_business");
  EXPECT_THAT(List(lender_, f), ::testing::ElementsAre(b));
  f = req(lv1::LOAN_SORT_NEWEST);
  *f.mutable_filter()->mutable_min_amount_left() = M("1000.00");
  *f.mutable_filter()->mutable_max_amount_left() = M("2000.00");
  EXPECT_THAT(List(lender_, f), ::testing::ElementsAre(c));  // 1544.40 USD
  f = req(lv1::LOAN_SORT_NEWEST);
  f.mutable_filter()->set_expiring_within_hours(24 * 31);
  f.mutable_filter()->add_countries("KE");
  f.mutable_filter()->add_regions("NAKURU");
  EXPECT_EQ(List(lender_, f).size(), 3u);

  lv1::ListLoansRequest paged = req(lv1::LOAN_SORT_NEWEST);
  paged.mutable_page()->set_page_size(2);
  lv1::ListLoansResponse first;
  EXPECT_THAT(List(lender_, paged, &first), ::testing::ElementsAre(c, b));
  EXPECT_EQ(first.page().total_count(), 3);
  ASSERT_FALSE(first.page().next_page_token().empty());
  paged.mutable_page()->set_page_token(first.page().next_page_token());
  lv1::ListLoansResponse second;
  EXPECT_THAT(List(lender_, paged, &second), ::testing::ElementsAre(a));
  EXPECT_TRUE(second.page().next_page_token().empty());

  lv1::ListLoansRequest bad = req(lv1::LOAN_SORT_NEWEST);
  *bad.mutable_filter()->mutable_min_amount_left() = M("10.00");
  *bad.mutable_filter()->mutable_max_amount_left() = M("1.00");
  lv1::ListLoansResponse out;
  EXPECT_EQ(loans_->ListLoans(Ctx(lender_).get(), bad, &out).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(LoansIntegrationTest, RolesAndOwnership) {
  const std::string partner = MakePartner();
  const std::string stranger = MakePartner();
  lv1::CreateLoanDraftResponse out;
  EXPECT_EQ(Create(lender_, Details(), &out).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Create(PartnerToken(partner), Details(), &out, Rid(), stranger).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Create(ops_, Details(), &out).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  ASSERT_TRUE(Create(ops_, Details(), &out, Rid(), partner).ok());
  const lv1::Loan draft = out.loan();
  EXPECT_EQ(draft.partner_id().value(), partner);

  lv1::GetLoanRequest get;
  *get.mutable_loan_id() = draft.id();
  lv1::GetLoanResponse got;
  EXPECT_EQ(loans_->GetLoan(Ctx(PartnerToken(stranger)).get(), get, &got).error_code(),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(loans_->GetLoan(Ctx(lender_).get(), get, &got).error_code(),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_TRUE(loans_->GetLoan(Ctx(PartnerToken(partner)).get(), get, &got).ok());
  lv1::SubmitLoanForReviewResponse sub;
  EXPECT_EQ(Submit(PartnerToken(stranger), draft, &sub).error_code(), grpc::StatusCode::NOT_FOUND);
  lv1::ReviewLoanResponse rev;
  lv1::ReviewLoanRequest rreq;
  rreq.set_request_id(Rid());
  *rreq.mutable_loan_id() = draft.id();
  rreq.set_decision(lv1::REVIEW_DECISION_APPROVE);
  EXPECT_EQ(loans_->ReviewLoan(Ctx(PartnerToken(partner)).get(), rreq, &rev).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
}

TEST_F(LoansIntegrationTest, IllegalTransitionsAreFailedPrecondition) {
  const std::string partner = MakePartner();
  lv1::Loan draft = MustCreate(partner);
  lv1::ReviewLoanResponse rev;
  grpc::Status s = Review(draft, lv1::REVIEW_DECISION_APPROVE, &rev);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("DRAFT"));

  lv1::SubmitLoanForReviewResponse sub;
  ASSERT_TRUE(Submit(PartnerToken(partner), draft, &sub).ok());
  EXPECT_EQ(Review(draft, lv1::REVIEW_DECISION_RETURN, &rev).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);  // a reason is required
  ASSERT_TRUE(Review(draft, lv1::REVIEW_DECISION_RETURN, &rev, "add a photo").ok());
  EXPECT_EQ(rev.loan().status(), lv1::LOAN_STATUS_DRAFT);
  EXPECT_EQ(rev.loan().review_return().reason(), "add a photo");
  EXPECT_EQ(rev.loan().review_return().reviewer(), "ops-1");

  ASSERT_TRUE(Submit(PartnerToken(partner), draft, &sub).ok());
  ASSERT_TRUE(Review(draft, lv1::REVIEW_DECISION_APPROVE, &rev).ok());
  s = Submit(PartnerToken(partner), draft, &sub);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("FUNDRAISING"));

  lv1::UpdateLoanDraftRequest up;
  up.set_request_id(Rid());
  *up.mutable_loan_id() = draft.id();
  up.mutable_details()->set_story("changed");
  up.mutable_update_mask()->add_paths("story");
  lv1::UpdateLoanDraftResponse upd;
  EXPECT_EQ(loans_->UpdateLoanDraft(Ctx(PartnerToken(partner)).get(), up, &upd).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
}

TEST_F(LoansIntegrationTest, UpdateDraftChecksVersionAndRegeneratesSchedule) {
  const std::string partner = MakePartner();
  lv1::Loan draft = MustCreate(partner);
  lv1::UpdateLoanDraftRequest up;
  up.set_request_id(Rid());
  *up.mutable_loan_id() = draft.id();
  up.mutable_details()->set_term_months(6);
  up.mutable_update_mask()->add_paths("term_months");
  up.set_expected_version(draft.version() + 5);
  lv1::UpdateLoanDraftResponse out;
  EXPECT_EQ(loans_->UpdateLoanDraft(Ctx(PartnerToken(partner)).get(), up, &out).error_code(),
            grpc::StatusCode::ABORTED);
  up.set_request_id(Rid());
  up.set_expected_version(draft.version());
  grpc::Status s = loans_->UpdateLoanDraft(Ctx(PartnerToken(partner)).get(), up, &out);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(out.loan().details().schedule_size(), 6);
  EXPECT_EQ(out.loan().version(), draft.version() + 1);
}

TEST_F(LoansIntegrationTest, BadInputIsInvalidArgumentAndWritesNothing) {
  const std::string partner = MakePartner();
  const std::string token = PartnerToken(partner);
  std::vector<std::pair<lv1::LoanDetails, std::string>> cases;
  lv1::LoanDetails d = Details();
  d.set_country("TZ");  // not the partner's
  cases.push_back({d, "details.country"});
  d = Details();
  d.set_country("QQ");
  cases.push_back({d, "details.country"});
  d = Details();
  d.set_sector(static_cast<cv1::Sector>(99));
  cases.push_back({d, "details.sector"});
  d = Details();
  *d.mutable_local_amount() = M("100.001", "KES");
  cases.push_back({d, "details.local_amount"});
  d = Details("3000.00");  // 23.17 USD
  cases.push_back({d, "details.local_amount"});
  d = Details();
  *d.mutable_local_amount() = M("100.00", "XYZ");
  cases.push_back({d, "details.local_amount"});
  d = Details();
  d.set_posting_fx_rate("0");
  cases.push_back({d, "details.posting_fx_rate"});
  d = Details();
  d.set_term_months(241);
  cases.push_back({d, "details.term_months"});
  for (const auto& [details, field] : cases) {
    lv1::CreateLoanDraftResponse out;
    grpc::Status s = Create(token, details, &out);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << field;
    EXPECT_THAT(s.error_message(), HasSubstr(field));
  }
  EXPECT_EQ(CountFor(partner, {lv1::LOAN_STATUS_DRAFT}), 0);
}

TEST_F(LoansIntegrationTest, RetryReplaysTheOriginal) {
  const std::string partner = MakePartner();
  lv1::CreateLoanDraftResponse first, again;
  ASSERT_TRUE(Create(PartnerToken(partner), Details(), &first, "same-loan-rid").ok());
  ASSERT_TRUE(Create(PartnerToken(partner), Details(), &again, "same-loan-rid").ok());
  EXPECT_FALSE(first.mutation().replayed());
  EXPECT_TRUE(again.mutation().replayed());
  EXPECT_EQ(again.loan().SerializeAsString(), first.loan().SerializeAsString());
  EXPECT_EQ(CountFor(partner, {lv1::LOAN_STATUS_DRAFT}), 1);
  lv1::CreateLoanDraftResponse other;
  EXPECT_EQ(
      Create(PartnerToken(partner), Details("200000.00"), &other, "same-loan-rid").error_code(),
      grpc::StatusCode::ALREADY_EXISTS);
}

TEST_F(LoansIntegrationTest, PausedPartnerCannotCreate) {
  const std::string partner = MakePartner();
  lv1::SetPartnerStatusRequest req;
  req.set_request_id(Rid());
  req.mutable_partner_id()->set_value(partner);
  req.set_status(lv1::PARTNER_STATUS_PAUSED);
  req.set_reason("audit");
  lv1::SetPartnerStatusResponse st;
  ASSERT_TRUE(partners_->SetPartnerStatus(Ctx(ops_).get(), req, &st).ok());
  lv1::CreateLoanDraftResponse out;
  grpc::Status s = Create(PartnerToken(partner), Details(), &out);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("PAUSED"));
}

TEST_F(LoansIntegrationTest, ScheduleLinesInUsdAddUpToTheLoansUsdAmountExactly) {
  std::string partner = MakePartner();
  lv1::Loan loan = MustCreate(partner, Details("100000.00"));  // 772.20 USD at 129.5 over 12
  lv1::GetRepaymentScheduleRequest req;
  *req.mutable_loan_id() = loan.id();
  lv1::GetRepaymentScheduleResponse sched;
  ASSERT_TRUE(loans_->GetRepaymentSchedule(Ctx(PartnerToken(partner)).get(), req, &sched).ok());
  ASSERT_EQ(sched.lines_size(), 12);
  int64_t cents = 0;
  for (const auto& line : sched.lines()) {
    const std::string& a = line.expected_usd().amount();
    cents += std::stoll(a.substr(0, a.find('.'))) * 100 + std::stoll(a.substr(a.find('.') + 1));
  }
  const std::string& total = loan.usd_amount().amount();
  EXPECT_EQ(total, "772.20");
  EXPECT_EQ(cents, 77220);
}

TEST_F(LoansIntegrationTest, UploadedScheduleWithoutAnAmountIsInvalidArgument) {
  std::string partner = MakePartner();
  lv1::LoanDetails d = Details();
  d.clear_local_amount();
  d.set_repayment_interval(lv1::REPAYMENT_INTERVAL_IRREGULAR);
  lv1::ScheduleEntry* e = d.add_schedule();
  e->mutable_due_date()->set_year(2027);
  e->mutable_due_date()->set_month(1);
  e->mutable_due_date()->set_day(15);
  *e->mutable_principal() = M("100.00", "KES");
  lv1::CreateLoanDraftResponse out;
  grpc::Status s = Create(PartnerToken(partner), d, &out);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
  EXPECT_THAT(s.error_message(), HasSubstr("schedule"));
}

TEST_F(LoansIntegrationTest, ConcurrentRetriesOfASubmitBothSucceed) {
  std::string partner = MakePartner();
  for (int round = 0; round < 8; ++round) {
    lv1::Loan loan = MustCreate(partner);
    lv1::SubmitLoanForReviewRequest req;
    req.set_request_id(absl::StrCat("concurrent-submit-", loan.id().value()));
    *req.mutable_loan_id() = loan.id();
    grpc::Status first, second;
    lv1::SubmitLoanForReviewResponse out1, out2;
    std::thread a(
        [&] { first = loans_->SubmitLoanForReview(Ctx(PartnerToken(partner)).get(), req, &out1); });
    std::thread b([&] {
      second = loans_->SubmitLoanForReview(Ctx(PartnerToken(partner)).get(), req, &out2);
    });
    a.join();
    b.join();
    EXPECT_TRUE(first.ok()) << first.error_message();
    EXPECT_TRUE(second.ok()) << second.error_message();
    EXPECT_EQ(out1.loan().status(), lv1::LOAN_STATUS_REVIEW);
    EXPECT_EQ(out2.loan().status(), lv1::LOAN_STATUS_REVIEW);
  }
}

}  // namespace
}  // namespace microlend::testing
