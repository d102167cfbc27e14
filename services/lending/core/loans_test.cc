// LoanBook and the loan rules of core/loans.h against FakeLoanStore and FakePartnerStore.
#include "services/lending/core/loans.h"

#include <functional>
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

// A loan in USD at rate 1, so that its USD amount is `amount`.
LoanDetails Usd(std::string_view amount) {
  LoanDetails d = Complete();
  d.local_amount = M(amount);
  d.posting_fx_rate = "1";
  return d;
}

std::string Message(const absl::Status& status) { return std::string(AsStd(status.message())); }

class LoanBookTest : public ::testing::Test {
 protected:
  void SetUp() override {
    partners_.SetExposureSource([this](PartnerId id) { return loans_.ExposureOf(id); });
    partner_ = MakePartner("Juhudi", {"KE", "UG"}, 6);
    other_ = MakePartner("Other MFI", {"KE"}, 2);
  }

  PartnerId MakePartner(const std::string& name, std::vector<std::string> countries, int rating,
                        Money credit_limit = M("1000000.00")) {
    absl::StatusOr<Partner> p = partners_.Create(
        {.name = name, .countries = std::move(countries), .risk_rating_half_stars = rating,
         .credit_limit = credit_limit},
        clock_.Now(), IdempotencyRecord{.caller = "ops", .request_id = name},
        [](const Partner&) { return std::string(); });
    EXPECT_TRUE(p.ok()) << p.status();
    return p->id;
  }

  // Ops changes the partner directly in the store (what UpdatePartner would write).
  void ChangePartner(PartnerId id, std::function<void(Partner&)> change) {
    absl::StatusOr<Partner> p = partners_.Update(
        id, 0, clock_.Now(),
        [&](Partner& partner) {
          change(partner);
          return absl::OkStatus();
        },
        IdempotencyRecord{.caller = "ops", .request_id = absl::StrCat("change-", next_++)},
        [](const Partner&) { return std::string(); });
    ASSERT_TRUE(p.ok()) << p.status();
  }
  void SetLimit(PartnerId id, std::string_view usd) {
    ChangePartner(id, [&](Partner& p) { p.credit_limit = M(usd); });
  }

  // What the ledger's committer would write as money moves: status and repaid amounts.
  void MoveMoney(LoanId id, LoanStatus status, int64_t repaid_usd_minor = 0,
                 int64_t currency_loss_minor = 0) {
    absl::StatusOr<Loan> moved = loans_.Update(
        id, 0, clock_.Now(),
        [&](Loan& loan) {
          loan.status = status;
          loan.repaid_usd_minor = repaid_usd_minor;
          loan.currency_loss_minor = currency_loss_minor;
          return absl::OkStatus();
        },
        IdempotencyRecord{.caller = "ledger", .request_id = absl::StrCat("move-", next_++)},
        Encode);
    ASSERT_TRUE(moved.ok()) << moved.status();
  }

  Loan MustCreateFor(PartnerId partner, const LoanDetails& d) {
    LoanReply r = Create(d, absl::StrCat("c", next_++), partner);
    EXPECT_TRUE(r.status.ok()) << r.status;
    return r.loan.value_or(Loan{});
  }
  LoanReply Submit(PartnerId partner, LoanId id, std::string rid = "") {
    if (rid.empty()) rid = absl::StrCat("s", next_++);
    return book_.Submit(Key(std::move(rid)), Viewer{.partner = partner}, id, 0, Encode);
  }
  LoanReply Decide(LoanId id, ReviewDecision decision, std::string reason = "") {
    return book_.Review(Key(absl::StrCat("r", next_++)), "ops-1", id, decision, reason, Encode);
  }
  Loan Stored(LoanId id) { return *loans_.Get(id); }

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
  PartnerDirectory directory_{&partners_, &clock_};
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
  // Paging: one per page, after the last one's key; total counts all.
  absl::StatusOr<Page<Loan>> p1 = book_.List({.limit = 1});
  ASSERT_TRUE(p1.ok());
  EXPECT_EQ(p1->total_count, 2);
  EXPECT_EQ(p1->next_after_id, b.id.value());
  const LoanCursor after_b{.key = LoanSortKey(b, LoanSort::kNewest), .id = b.id};
  absl::StatusOr<Page<Loan>> p2 = book_.List({.after = after_b, .limit = 1});
  ASSERT_TRUE(p2.ok());
  EXPECT_EQ(p2->items.front().id, a.id);
  EXPECT_EQ(p2->next_after_id, 0);
  EXPECT_EQ(p2->total_count, 2);
  // Counting stops one past the cap.
  absl::StatusOr<Page<Loan>> capped = book_.List({.count_cap = 1});
  ASSERT_TRUE(capped.ok());
  EXPECT_EQ(capped->total_count, 2);
  EXPECT_EQ(capped->items.size(), 2u);
  EXPECT_EQ(book_.List({.count_cap = 0})->total_count, 1);
}

TEST_F(LoanBookTest, CardViewLeavesOutStoryAndScheduleOnly) {
  LoanDetails details = Complete();
  details.story = "A long story.";
  const Loan posted = MustPublish(details);
  ASSERT_FALSE(posted.details.schedule.empty());
  absl::StatusOr<Page<Loan>> full = book_.List({});
  absl::StatusOr<Page<Loan>> card = book_.List({.view = LoanView::kCard});
  ASSERT_TRUE(full.ok() && card.ok());
  ASSERT_EQ(full->items.size(), 1u);
  ASSERT_EQ(card->items.size(), 1u);
  EXPECT_EQ(full->items[0], posted);
  Loan expected = posted;
  expected.details.story.clear();
  expected.details.schedule.clear();
  EXPECT_EQ(card->items[0], expected);
  EXPECT_EQ(card->total_count, full->total_count);
}

TEST(LoanSortKey, OrdersLikeEachSortAndPlacesCursors) {
  auto loan = [](int64_t id, int64_t usd, int64_t funded, int64_t trending) {
    Loan l{.id = LoanId(id), .usd_amount = Money::FromMinor(Currency::Usd(), usd)};
    l.funded_minor = funded;
    l.trending_score_milli = trending;
    l.created_at = absl::FromUnixSeconds(1'000 + id);
    return l;
  };
  const Loan a = loan(1, 10'000, 2'500, 7), b = loan(2, 10'000, 0, 7);
  EXPECT_EQ(LoanSortKey(a, LoanSort::kAmountLeftAsc), 7'500);
  EXPECT_EQ(LoanSortKey(a, LoanSort::kLoanAmountDesc), 10'000);
  EXPECT_EQ(LoanSortKey(a, LoanSort::kNewest), 1'001'000'000);
  EXPECT_EQ(LoanSortKey(a, LoanSort::kExpiringSoonest), std::nullopt);
  EXPECT_EQ(LoanSortKey(a, LoanSort::kRandom), std::nullopt);
  auto after = [](LoanSort sort, const Loan& cursor, const Loan& l) {
    return IsAfter({.sort = sort}, {.key = LoanSortKey(cursor, sort), .id = cursor.id}, l);
  };
  EXPECT_TRUE(after(LoanSort::kAmountLeftAsc, a, b));    // 10,000 left after 7,500
  EXPECT_FALSE(after(LoanSort::kAmountLeftDesc, a, b));  // descending: b comes first
  EXPECT_TRUE(after(LoanSort::kTrending, a, b));         // tie: by ascending id
  EXPECT_FALSE(after(LoanSort::kTrending, b, a));
  EXPECT_FALSE(after(LoanSort::kTrending, a, a));  // never after itself
  Loan due = b;
  due.fundraising_deadline = absl::FromUnixSeconds(5'000);
  EXPECT_TRUE(after(LoanSort::kExpiringSoonest, due, a));  // no deadline: last
  EXPECT_FALSE(after(LoanSort::kExpiringSoonest, a, due));
  EXPECT_NE(after(LoanSort::kRandom, a, b), after(LoanSort::kRandom, b, a));
}

TEST(PartnerExposure, CountsEachStatusByItsRule) {
  auto loan = [](LoanStatus status, int64_t usd, int64_t repaid = 0, int64_t loss = 0) {
    Loan l{.status = status, .usd_amount = Money::FromMinor(Currency::Usd(), usd)};
    l.repaid_usd_minor = repaid;
    l.currency_loss_minor = loss;
    return l;
  };
  PartnerExposure e;
  for (const Loan& l : {loan(LoanStatus::kDraft, 1), loan(LoanStatus::kReview, 10),
                        loan(LoanStatus::kReview, 20), loan(LoanStatus::kFundraising, 300),
                        loan(LoanStatus::kFunded, 4'000),
                        loan(LoanStatus::kPayingBack, 50'000, 20'000, 1'000),
                        loan(LoanStatus::kDefaulted, 600'000, 100'000, 0),
                        loan(LoanStatus::kEnded, 7), loan(LoanStatus::kExpired, 8),
                        loan(LoanStatus::kRefunded, 9)}) {
    AddToExposure(l, e);
  }
  EXPECT_EQ(e, (PartnerExposure{.review_loans = 2, .fundraising_loans = 1, .funded_loans = 1,
                                .review_minor = 30, .fundraising_minor = 300,
                                .funded_minor = 4'000,
                                .outstanding_minor = 29'000 + 500'000}));
  EXPECT_EQ(e.committed_minor(), 300 + 4'000 + 529'000);
}

TEST_F(LoanBookTest, SubmissionOverTheCreditLimitIsRefusedAndWritesNothing) {
  const PartnerId small = MakePartner("Small MFI", {"KE"}, 4, M("1000.00"));
  ASSERT_TRUE(Submit(small, MustCreateFor(small, Usd("600.00")).id).status.ok());
  const Loan second = MustCreateFor(small, Usd("400.01"));
  const size_t records = loans_.record_count();

  LoanReply over = Submit(small, second.id, "over");
  EXPECT_EQ(over.status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Message(over.status),
            absl::StrCat("loan of 400.01 USD would exceed partner ", small.value(),
                         "'s credit limit of 1000.00 USD: exposure 600.00 USD (fundraising 0.00, "
                         "funded 0.00, outstanding 0.00, in review 600.00) + 400.01 = "
                         "1000.01 USD"));
  EXPECT_EQ(Stored(second.id), second);
  EXPECT_EQ(loans_.record_count(), records);

  // Up to the limit is allowed, and the refusal was not remembered: the same request id is
  // evaluated afresh.
  SetLimit(small, "1000.01");
  LoanReply retry = Submit(small, second.id, "over");
  ASSERT_TRUE(retry.status.ok()) << retry.status;
  EXPECT_FALSE(retry.replayed);
  EXPECT_EQ(retry.loan->status, LoanStatus::kReview);
}

TEST_F(LoanBookTest, ZeroCreditLimitRefusesEverySubmission) {
  const PartnerId none = MakePartner("New MFI", {"KE"}, 0, M("0.00"));
  const Loan draft = MustCreateFor(none, Usd("25.00"));
  EXPECT_EQ(Submit(none, draft.id).status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Stored(draft.id).status, LoanStatus::kDraft);
}

TEST_F(LoanBookTest, ApprovalCountsCommittedLoansNotOtherLoansInReview) {
  const PartnerId small = MakePartner("Small MFI", {"KE"}, 4, M("2000.00"));
  const Loan a = MustCreateFor(small, Usd("600.00"));
  const Loan b = MustCreateFor(small, Usd("600.00"));
  ASSERT_TRUE(Submit(small, a.id).status.ok());
  ASSERT_TRUE(Submit(small, b.id).status.ok());
  SetLimit(small, "1000.00");  // lowered below what is in review: allowed

  // B in review does not hold A back: 0 committed + 600 <= 1000.
  LoanReply approved = Decide(a.id, ReviewDecision::kApprove);
  ASSERT_TRUE(approved.status.ok()) << approved.status;
  const Loan b_before = Stored(b.id);
  const size_t records = loans_.record_count();
  LoanReply refused = Decide(b.id, ReviewDecision::kApprove);
  EXPECT_EQ(refused.status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Message(refused.status),
            absl::StrCat("loan of 600.00 USD would exceed partner ", small.value(),
                         "'s credit limit of 1000.00 USD: exposure 600.00 USD (fundraising "
                         "600.00, funded 0.00, outstanding 0.00) + 600.00 = 1200.00 USD"));
  EXPECT_EQ(Stored(b.id), b_before);
  EXPECT_FALSE(Stored(b.id).posted_at.has_value());
  EXPECT_EQ(loans_.record_count(), records);
  // Ops may still return it.
  EXPECT_TRUE(Decide(b.id, ReviewDecision::kReturn, "over the limit").status.ok());
}

TEST_F(LoanBookTest, OutstandingPrincipalCountsAndRepaymentsFreeTheLimit) {
  const PartnerId small = MakePartner("Small MFI", {"KE"}, 4, M("1000.00"));
  const Loan a = MustCreateFor(small, Usd("800.00"));
  ASSERT_TRUE(Submit(small, a.id).status.ok());
  ASSERT_TRUE(Decide(a.id, ReviewDecision::kApprove).status.ok());
  // Funded: still the full amount.
  MoveMoney(a.id, LoanStatus::kFunded);
  const Loan b = MustCreateFor(small, Usd("550.00"));
  EXPECT_EQ(Submit(small, b.id).status.code(), absl::StatusCode::kFailedPrecondition);
  // Paying back: 800 - 300 repaid - 50 currency loss = 450 outstanding; 450 + 550 = 1000.
  MoveMoney(a.id, LoanStatus::kPayingBack, 30'000, 5'000);
  ASSERT_TRUE(Submit(small, b.id).status.ok());
  const Loan c = MustCreateFor(small, Usd("25.00"));
  LoanReply over = Submit(small, c.id);
  EXPECT_EQ(over.status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(Message(over.status).find("outstanding 450.00, in review 550.00"), std::string::npos)
      << over.status;
  // Defaulted: what is still owed counts, whatever was written off.
  MoveMoney(a.id, LoanStatus::kDefaulted, 30'000, 5'000);
  EXPECT_EQ(Submit(small, c.id).status.code(), absl::StatusCode::kFailedPrecondition);
  // Ended: nothing more is owed.
  MoveMoney(a.id, LoanStatus::kEnded, 75'000, 5'000);
  EXPECT_TRUE(Submit(small, c.id).status.ok());
}

TEST_F(LoanBookTest, PausedOrClosedPartnerCannotSubmitOrApproveButOpsMayReturn) {
  const Loan draft = MustCreate();
  const Loan in_review = MustCreate();
  ASSERT_TRUE(Submit(partner_, in_review.id).status.ok());
  ChangePartner(partner_, [](Partner& p) { p.status = PartnerStatus::kPaused; });
  const Loan review_before = Stored(in_review.id);

  LoanReply submit = Submit(partner_, draft.id);
  EXPECT_EQ(submit.status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(Message(submit.status).find("is PAUSED"), std::string::npos) << submit.status;
  EXPECT_EQ(Stored(draft.id), draft);
  LoanReply approve = Decide(in_review.id, ReviewDecision::kApprove);
  EXPECT_EQ(approve.status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(Message(approve.status).find("is PAUSED"), std::string::npos) << approve.status;
  EXPECT_EQ(Stored(in_review.id), review_before);

  ASSERT_TRUE(Decide(in_review.id, ReviewDecision::kReturn, "partner paused").status.ok());
  // Only drafts are left: closing is allowed, and a closed partner's drafts stay drafts.
  PartnerReply closed = directory_.SetStatus(Key("close"), partner_, PartnerStatus::kClosed,
                                             "wound down", [](const Partner&) { return ""; });
  ASSERT_TRUE(closed.status.ok()) << closed.status;
  LoanReply after = Submit(partner_, draft.id);
  EXPECT_EQ(after.status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(Message(after.status).find("is CLOSED"), std::string::npos) << after.status;
}

TEST_F(LoanBookTest, ClosingIsRefusedWhileLoansAreOpenAndWritesNothing) {
  auto close = [&](std::string rid) {
    return directory_.SetStatus(Key(std::move(rid)), partner_, PartnerStatus::kClosed, "wound down",
                                [](const Partner& p) { return absl::StrCat(p.version); });
  };
  const Loan fundraising = MustPublish();
  const Loan funded = MustPublish();
  MoveMoney(funded.id, LoanStatus::kFunded);
  const Loan paying_back = MustPublish();
  MoveMoney(paying_back.id, LoanStatus::kPayingBack, 10'000);
  const Loan in_review = MustCreate();
  ASSERT_TRUE(Submit(partner_, in_review.id).status.ok());
  MustCreate();  // a draft does not block
  const Partner before = *partners_.Get(partner_);
  const size_t records = partners_.record_count();

  PartnerReply refused = close("close-1");
  EXPECT_EQ(refused.status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Message(refused.status),
            absl::StrCat("partner ", partner_.value(),
                         " cannot be CLOSED while 3 of its loans are open (1 in REVIEW, 1 "
                         "FUNDRAISING, 1 FUNDED): return the loans in review and let the others "
                         "end (funded and disbursed, expired or refunded) first; it may be "
                         "PAUSED meanwhile"));
  EXPECT_EQ(*partners_.Get(partner_), before);
  EXPECT_EQ(partners_.record_count(), records);

  // Pausing is allowed meanwhile; the open loans end one by one.
  ASSERT_TRUE(directory_.SetStatus(Key("pause"), partner_, PartnerStatus::kPaused, "closing",
                                   [](const Partner&) { return ""; })
                  .status.ok());
  ASSERT_TRUE(Decide(in_review.id, ReviewDecision::kReturn, "closing").status.ok());
  MoveMoney(fundraising.id, LoanStatus::kExpired);
  PartnerReply still = close("close-2");
  EXPECT_NE(Message(still.status).find("while 1 of its loans is open (0 in REVIEW, 0 FUNDRAISING, 1 "
                                       "FUNDED)"),
            std::string::npos)
      << still.status;
  MoveMoney(funded.id, LoanStatus::kPayingBack);
  // Loans paying back do not block: their repayments continue after the close.
  PartnerReply closed = close("close-1");  // the refused request id was not remembered
  ASSERT_TRUE(closed.status.ok()) << closed.status;
  EXPECT_FALSE(closed.replayed);
  EXPECT_EQ(partners_.Get(partner_)->status, PartnerStatus::kClosed);
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
