// LoanBook and the loan rules of core/loans.h against FakeLoanStore and FakePartnerStore.
#include "services/lending/core/loans.h"

#include <set>

#include "common/strings.h"
#include "gtest/gtest.h"
#include "services/lending/testing/fake_loan_store.h"
#include "services/lending/testing/fake_partner_store.h"

namespace microlend::lending {
namespace {

Money M(std::string_view amount, std::string_view currency = "USD") {
  absl::StatusOr<Money> m = Money::Parse(amount, currency);
  EXPECT_TRUE(m.ok()) << m.status();
  return *m;
}

RequestKey Key(std::string request_id, std::string body = "body") {
  return RequestKey{.caller = "partner:1", .request_id = std::move(request_id),
                    .method = "LoanService.Test", .body_hash = std::move(body)};
}

std::string Encode(const Loan& loan) {
  return absl::StrCat(loan.id.value(), "@", loan.version, ":", AsAbsl(LoanStatusName(loan.status)));
}

LoanDetails Complete() {
  LoanDetails d;
  d.borrowers = {{.name = "Amina", .gender = Gender::kFemale, .primary = true}};
  d.name = "Amina";
  d.story = "Amina sells vegetables in Nakuru.";
  d.use = "to buy a cart";
  d.sector = 7;
  d.country = "KE";
  d.region = "Nakuru County";
  d.tags = {"woman_owned_business"};
  d.hashtags = {"womeninbusiness"};
  d.local_amount = M("100000.00", "KES");
  d.posting_fx_rate = "129.5";
  d.term_months = 12;
  d.repayment_interval = RepaymentInterval::kMonthly;
  return d;
}

class LoanBookTest : public ::testing::Test {
 protected:
  void SetUp() override {
    partner_ = MakePartner("Juhudi", {"KE", "UG"}, 6);
    other_ = MakePartner("Other MFI", {"KE"}, 2);
  }

  PartnerId MakePartner(const std::string& name, std::vector<std::string> countries, int rating) {
    absl::StatusOr<Partner> p = partners_.Create(
        {.name = name, .countries = std::move(countries), .risk_rating_half_stars = rating},
        clock_.Now(), IdempotencyRecord{.caller = "ops", .request_id = name},
        [](const Partner&) { return std::string(); });
    EXPECT_TRUE(p.ok()) << p.status();
    return p->id;
  }

  LoanReply Create(const LoanDetails& d, std::string rid, PartnerId partner) {
    return book_.CreateDraft(Key(std::move(rid)), partner, d, Encode);
  }

  Loan MustCreate(const LoanDetails& d = Complete()) {
    LoanReply r = Create(d, absl::StrCat("c", next_++), partner_);
    EXPECT_TRUE(r.status.ok()) << r.status;
    return *r.loan;
  }

  Loan MustPublish(const LoanDetails& d = Complete()) {
    Loan loan = MustCreate(d);
    LoanReply s = book_.Submit(Key(absl::StrCat("s", next_++)), Mine(), loan.id, 0, Encode);
    EXPECT_TRUE(s.status.ok()) << s.status;
    LoanReply a = book_.Review(Key(absl::StrCat("a", next_++)), "ops-1", loan.id,
                               ReviewDecision::kApprove, "", Encode);
    EXPECT_TRUE(a.status.ok()) << a.status;
    return *a.loan;
  }

  Viewer Mine() const { return Viewer{.partner = partner_}; }

  FakeClock clock_{absl::FromCivil(absl::CivilSecond(2026, 1, 31, 12, 0, 0), absl::UTCTimeZone())};
  FakePartnerStore partners_;
  FakeLoanStore loans_{&partners_};
  LoanBook book_{&loans_, &partners_, &clock_};
  PartnerId partner_{0};
  PartnerId other_{0};
  int next_ = 1;
};

TEST(LoanFx, ConvertsHalfEvenToTheCent) {
  // 100000.00 KES / 129.5 = 772.2007722... USD.
  EXPECT_EQ(*ConvertToUsd(M("100000.00", "KES"), "129.5"), M("772.20"));
  // Ties go to the even cent: 0.125 -> 0.12, 0.135 -> 0.14.
  EXPECT_EQ(*ConvertToUsd(M("125", "JPY"), "1000"), M("0.12"));
  EXPECT_EQ(*ConvertToUsd(M("135", "JPY"), "1000"), M("0.14"));
  EXPECT_EQ(*ConvertToUsd(M("1.000", "KWD"), "0.30700000"), M("3.26"));
  EXPECT_EQ(*ConvertToUsd(M("25.00"), "1"), M("25.00"));
}

TEST(LoanFx, RejectsMalformedRates) {
  for (std::string_view bad : {"", "0", "0.00000000", "-1", "1.", ".5", "1e3", "01.5",
                               "1.123456789", "1,5", " 1", "12345678901"}) {
    absl::StatusOr<int64_t> rate = ParseFxRate(bad);
    EXPECT_TRUE(absl::IsInvalidArgument(rate.status())) << "\"" << bad << "\"";
  }
  EXPECT_EQ(*ParseFxRate("129.50000001"), 12'950'000'001);
  EXPECT_EQ(*ParseFxRate("0.00000001"), 1);
}

TEST_F(LoanBookTest, CreatesADraftWithAGeneratedScheduleThatSumsExactly) {
  Loan loan = MustCreate();
  EXPECT_EQ(loan.status, LoanStatus::kDraft);
  EXPECT_EQ(loan.usd_amount, M("772.20"));
  ASSERT_EQ(loan.details.schedule.size(), 12u);
  Money sum = Money::Zero(loan.details.local_amount->currency());
  for (const ScheduleEntry& e : loan.details.schedule) sum = *sum.Add(e.principal);
  EXPECT_EQ(sum, M("100000.00", "KES"));
  // Disbursal anchor Jan 31: the first installment is Feb 28.
  EXPECT_EQ(loan.details.schedule.front().due, absl::CivilDay(2026, 2, 28));
  EXPECT_EQ(loan.remaining_minor(), 77'220);
  EXPECT_TRUE(loan.details.borrowers.front().id.has_value());
}

TEST_F(LoanBookTest, ValidationErrorsNameTheFieldAndWriteNothing) {
  struct Case {
    std::function<void(LoanDetails&)> edit;
    std::string field;
  };
  const std::vector<Case> cases = {
      {[](LoanDetails& d) { d.country = "XX"; }, "country"},
      {[](LoanDetails& d) { d.country = "TZ"; }, "country"},  // not the partner's
      {[](LoanDetails& d) { d.sector = 16; }, "sector"},
      {[](LoanDetails& d) { d.sector = -1; }, "sector"},
      {[](LoanDetails& d) { d.term_months = 241; }, "term_months"},
      {[](LoanDetails& d) { d.term_months = -1; }, "term_months"},
      {[](LoanDetails& d) { d.local_amount = M("3000.00", "KES"); }, "local_amount"},  // 23.17 USD
      {[](LoanDetails& d) { d.local_amount = Money::Zero(Currency::Usd()); }, "local_amount"},
      {[](LoanDetails& d) { d.posting_fx_rate = "1.5e2"; }, "posting_fx_rate"},
      {[](LoanDetails& d) { d.tags = {"Bad Tag"}; }, "tags[0]"},
      {[](LoanDetails& d) { d.hashtags = std::vector<std::string>(11, "x"); }, "hashtags"},
      {[](LoanDetails& d) { d.borrowers[0].name = ""; }, "borrowers[0].name"},
      {[](LoanDetails& d) { d.borrowers[0].gender = Gender::kMixed; }, "borrowers[0].gender"},
      {[](LoanDetails& d) { d.fundraising_window_days = 61; }, "fundraising_window_days"},
      {[](LoanDetails& d) { d.image_url = "http://x"; }, "image_url"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    LoanDetails d = Complete();
    cases[i].edit(d);
    LoanReply r = Create(d, absl::StrCat("bad", i), partner_);
    EXPECT_TRUE(absl::IsInvalidArgument(r.status)) << i << ": " << r.status;
    EXPECT_TRUE(AsStd(r.status.message()).starts_with(cases[i].field + ":")) << r.status;
  }
  EXPECT_EQ(loans_.loan_count(), 0u);
  EXPECT_EQ(loans_.record_count(), 0u);
}

TEST_F(LoanBookTest, MinimumUsdAmountIsInclusive) {
  LoanDetails d = Complete();
  d.local_amount = M("25.00");
  d.posting_fx_rate = "1";
  EXPECT_TRUE(Create(d, "min", partner_).status.ok());
  d.local_amount = M("24.99");
  EXPECT_TRUE(absl::IsInvalidArgument(Create(d, "below", partner_).status));
}

TEST_F(LoanBookTest, PartnerMustExistAndBeActive) {
  EXPECT_TRUE(absl::IsNotFound(Create(Complete(), "x1", PartnerId(999)).status));
  ASSERT_TRUE(partners_
                  .Update(partner_, 0, clock_.Now(),
                          [](Partner& p) {
                            p.status = PartnerStatus::kPaused;
                            return absl::OkStatus();
                          },
                          IdempotencyRecord{.caller = "ops", .request_id = "pause"},
                          [](const Partner&) { return std::string(); })
                  .ok());
  LoanReply r = Create(Complete(), "x2", partner_);
  EXPECT_TRUE(absl::IsFailedPrecondition(r.status));
  EXPECT_NE(r.status.message().find("PAUSED"), std::string_view::npos);
}

TEST_F(LoanBookTest, LifecycleAndIllegalTransitions) {
  Loan loan = MustCreate();
  // Review before submission.
  LoanReply early = book_.Review(Key("r0"), "ops-1", loan.id, ReviewDecision::kApprove, "", Encode);
  EXPECT_TRUE(absl::IsFailedPrecondition(early.status));
  EXPECT_NE(early.status.message().find("DRAFT"), std::string_view::npos);

  LoanReply sub = book_.Submit(Key("s1"), Mine(), loan.id, 0, Encode);
  ASSERT_TRUE(sub.status.ok()) << sub.status;
  EXPECT_EQ(sub.loan->status, LoanStatus::kReview);
  LoanReply again = book_.Submit(Key("s2"), Mine(), loan.id, 0, Encode);
  EXPECT_TRUE(absl::IsFailedPrecondition(again.status));
  EXPECT_NE(again.status.message().find("REVIEW"), std::string_view::npos);

  LoanPatch patch{.paths = {"story"}};
  patch.values.story = "new";
  EXPECT_TRUE(absl::IsFailedPrecondition(
      book_.UpdateDraft(Key("u1"), Mine(), loan.id, patch, 0, Encode).status));

  LoanReply no_reason =
      book_.Review(Key("r1"), "ops-1", loan.id, ReviewDecision::kReturn, "", Encode);
  EXPECT_TRUE(absl::IsInvalidArgument(no_reason.status));
  LoanReply returned =
      book_.Review(Key("r2"), "ops-1", loan.id, ReviewDecision::kReturn, "add a photo", Encode);
  ASSERT_TRUE(returned.status.ok());
  EXPECT_EQ(returned.loan->status, LoanStatus::kDraft);
  EXPECT_EQ(returned.loan->review_return->reason, "add a photo");
  EXPECT_EQ(returned.loan->review_return->reviewer, "ops-1");

  ASSERT_TRUE(book_.Submit(Key("s3"), Mine(), loan.id, 0, Encode).status.ok());
  LoanReply approved =
      book_.Review(Key("r3"), "ops-1", loan.id, ReviewDecision::kApprove, "", Encode);
  ASSERT_TRUE(approved.status.ok());
  EXPECT_EQ(approved.loan->status, LoanStatus::kFundraising);
  EXPECT_FALSE(approved.loan->review_return.has_value());
  EXPECT_EQ(*approved.loan->fundraising_deadline, clock_.Now() + absl::Hours(24 * 30));
  EXPECT_TRUE(absl::IsFailedPrecondition(
      book_.Review(Key("r4"), "ops-1", loan.id, ReviewDecision::kApprove, "", Encode).status));
}

TEST_F(LoanBookTest, FundraisingWindowComesFromTheDetails) {
  LoanDetails d = Complete();
  d.fundraising_window_days = 7;
  Loan loan = MustPublish(d);
  EXPECT_EQ(*loan.fundraising_deadline, clock_.Now() + absl::Hours(24 * 7));
}

TEST_F(LoanBookTest, SubmissionRequiresACompleteDraft) {
  LoanDetails d = Complete();
  d.story.clear();
  Loan loan = MustCreate(d);
  LoanReply r = book_.Submit(Key("s"), Mine(), loan.id, 0, Encode);
  EXPECT_TRUE(absl::IsInvalidArgument(r.status));
  EXPECT_TRUE(AsStd(r.status.message()).starts_with("story:")) << r.status;
  EXPECT_EQ(book_.Get(Mine(), loan.id)->status, LoanStatus::kDraft);
}

TEST_F(LoanBookTest, IrregularScheduleIsValidatedAndMustSumExactly) {
  LoanDetails d = Complete();
  d.repayment_interval = RepaymentInterval::kIrregular;
  d.local_amount = M("10000.00", "KES");
  d.posting_fx_rate = "100";
  d.term_months = 3;
  d.schedule = {{absl::CivilDay(2026, 2, 15), M("4000.00", "KES")},
                {absl::CivilDay(2026, 4, 15), M("5999.99", "KES")}};
  Loan loan = MustCreate(d);
  LoanReply r = book_.Submit(Key("s"), Mine(), loan.id, 0, Encode);
  EXPECT_TRUE(absl::IsInvalidArgument(r.status));
  EXPECT_NE(r.status.message().find("sums to"), std::string_view::npos) << r.status;

  LoanPatch patch{.paths = {"schedule"}};
  patch.values.schedule = {{absl::CivilDay(2026, 2, 15), M("4000.00", "KES")},
                           {absl::CivilDay(2026, 4, 15), M("6000.00", "KES")}};
  ASSERT_TRUE(book_.UpdateDraft(Key("u"), Mine(), loan.id, patch, 0, Encode).status.ok());
  EXPECT_TRUE(book_.Submit(Key("s2"), Mine(), loan.id, 0, Encode).status.ok());

  d.schedule = {{absl::CivilDay(2026, 2, 15), M("10000", "UGX")}};
  LoanReply wrong = Create(d, "ugx", partner_);
  EXPECT_TRUE(absl::IsInvalidArgument(wrong.status));
  EXPECT_TRUE(AsStd(wrong.status.message()).starts_with("schedule[0].principal:")) << wrong.status;
}

TEST_F(LoanBookTest, UpdateRegeneratesTheScheduleAndChecksTheVersion) {
  Loan loan = MustCreate();
  LoanPatch patch{.paths = {"term_months"}};
  patch.values.term_months = 6;
  EXPECT_TRUE(absl::IsAborted(book_.UpdateDraft(Key("u0"), Mine(), loan.id, patch, 7, Encode).status));
  LoanReply r = book_.UpdateDraft(Key("u1"), Mine(), loan.id, patch, loan.version, Encode);
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(r.loan->details.schedule.size(), 6u);
  EXPECT_EQ(r.loan->version, 2);
  LoanPatch bad{.paths = {"status"}};
  LoanReply unknown = book_.UpdateDraft(Key("u2"), Mine(), loan.id, bad, 0, Encode);
  EXPECT_TRUE(absl::IsInvalidArgument(unknown.status));
  EXPECT_TRUE(AsStd(unknown.status.message()).starts_with("update_mask:"));
}

TEST_F(LoanBookTest, APartnerTouchesOnlyItsOwnLoans) {
  Loan loan = MustCreate();
  const Viewer stranger{.partner = other_};
  EXPECT_TRUE(absl::IsNotFound(book_.Get(stranger, loan.id).status()));
  EXPECT_TRUE(absl::IsNotFound(book_.Get(Viewer{}, loan.id).status()));  // a lender
  EXPECT_TRUE(book_.Get(Viewer{.ops = true}, loan.id).ok());
  EXPECT_TRUE(absl::IsNotFound(book_.Submit(Key("s"), stranger, loan.id, 0, Encode).status));
  LoanPatch patch{.paths = {"story"}};
  EXPECT_TRUE(absl::IsNotFound(book_.UpdateDraft(Key("u"), stranger, loan.id, patch, 0, Encode).status));
  // Once public, everyone sees it but the stranger still cannot edit.
  Loan published = MustPublish();
  EXPECT_TRUE(book_.Get(Viewer{}, published.id).ok());
}

TEST_F(LoanBookTest, RetryReplaysAndADifferentBodyIsAlreadyExists) {
  LoanReply first = Create(Complete(), "same", partner_);
  ASSERT_TRUE(first.status.ok());
  LoanReply again = Create(Complete(), "same", partner_);
  EXPECT_TRUE(again.replayed);
  EXPECT_EQ(again.payload, first.payload);
  EXPECT_EQ(loans_.loan_count(), 1u);
  LoanReply other = book_.CreateDraft(Key("same", "other body"), partner_, Complete(), Encode);
  EXPECT_TRUE(absl::IsAlreadyExists(other.status));
}

TEST_F(LoanBookTest, StoreFailureWritesNothingAndTheRetrySucceeds) {
  loans_.FailNextMutation(absl::UnavailableError("lost"));
  EXPECT_TRUE(absl::IsUnavailable(Create(Complete(), "k", partner_).status));
  EXPECT_EQ(loans_.record_count(), 0u);
  EXPECT_TRUE(Create(Complete(), "k", partner_).status.ok());
}

TEST_F(LoanBookTest, CatalogueShowsPublicLoansFilteredAndSorted) {
  MustCreate();  // a draft: not in the catalogue
  LoanDetails big = Complete();
  big.local_amount = M("500000.00", "KES");
  big.sector = 1;
  big.tags = {"eco_friendly"};
  Loan a = MustPublish();
  clock_.Advance(absl::Hours(1));
  Loan b = MustPublish(big);

  auto ids = [&](LoanQuery q) {
    std::vector<int64_t> out;
    absl::StatusOr<Page<Loan>> page = book_.List(std::move(q));
    EXPECT_TRUE(page.ok()) << page.status();
    for (const Loan& l : page->items) out.push_back(l.id.value());
    return out;
  };
  using V = std::vector<int64_t>;
  EXPECT_EQ(ids({}), (V{b.id.value(), a.id.value()}));  // newest first
  EXPECT_EQ(ids({.sort = LoanSort::kLoanAmountAsc}), (V{a.id.value(), b.id.value()}));
  EXPECT_EQ(ids({.sort = LoanSort::kAmountLeftDesc}), (V{b.id.value(), a.id.value()}));
  EXPECT_EQ(ids({.sort = LoanSort::kExpiringSoonest}), (V{a.id.value(), b.id.value()}));
  EXPECT_EQ(ids({.sectors = {1}}), (V{b.id.value()}));
  EXPECT_EQ(ids({.tags = {"eco_friendly", "nothing"}}), (V{b.id.value()}));
  EXPECT_EQ(ids({.min_partner_risk_rating_half_stars = 7}), V{});
  EXPECT_EQ(ids({.max_amount_left_minor = 100'000}), (V{a.id.value()}));
  EXPECT_EQ(ids({.genders = {Gender::kMale}}), V{});
  EXPECT_EQ(ids({.is_group = true}), V{});
  EXPECT_EQ(ids({.statuses = {LoanStatus::kDraft}}), V{});  // lenders never see drafts
  EXPECT_EQ(ids({.viewer = Mine(), .statuses = {LoanStatus::kDraft}}).size(), 1u);
  EXPECT_EQ(ids({.expiring_within_hours = 24 * 30 - 1}), (V{a.id.value()}));
  // Random: fixed per seed.
  EXPECT_EQ(ids({.sort = LoanSort::kRandom, .random_seed = 42}),
            ids({.sort = LoanSort::kRandom, .random_seed = 42}));
  // Paging: one per page, total counts all.
  absl::StatusOr<Page<Loan>> p1 = book_.List({.limit = 1});
  ASSERT_TRUE(p1.ok());
  EXPECT_EQ(p1->total_count, 2);
  EXPECT_EQ(p1->next_after_id, 1);
  absl::StatusOr<Page<Loan>> p2 = book_.List({.offset = 1, .limit = 1});
  EXPECT_EQ(p2->items.front().id, a.id);
  EXPECT_EQ(p2->next_after_id, 0);
}

TEST(LoanDetailsJson, RoundTripsWhatItHolds) {
  LoanDetails d = Complete();
  d.borrowers.push_back({.id = BorrowerId(7), .name = "Zed \"Z\"", .gender = Gender::kMale});
  d.pre_disbursed = true;
  d.disbursed_on = absl::CivilDay(2025, 12, 1);
  d.fundraising_window_days = 10;
  absl::StatusOr<LoanDetails> back = DetailsFromJson(DetailsToJson(d));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->borrowers, d.borrowers);
  EXPECT_EQ(back->disbursed_on, d.disbursed_on);
  EXPECT_EQ(back->story, d.story);
  EXPECT_TRUE(absl::IsDataLoss(DetailsFromJson("nope").status()));
}

}  // namespace
}  // namespace microlend::lending
