// FundraisingCatalogue against FakeLoanStore, which is both its feed and the reference for what a
// search answers (LoanStore::List over the same loans).
#include "services/lending/core/catalogue.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "services/lending/testing/fake_loan_store.h"
#include "services/lending/testing/fake_partner_store.h"

namespace microlend::lending {
namespace {

const absl::Time kNow = absl::FromUnixSeconds(1'800'000'000);

std::string Encode(const Loan& loan) { return absl::StrCat(loan.id.value()); }

class CatalogueTest : public ::testing::Test {
 protected:
  LoanId Add(Loan loan) {
    absl::StatusOr<Loan> created =
        loans_.Create(loan, kNow, {.caller = "t", .request_id = absl::StrCat("c", ++requests_)},
                      Encode);
    EXPECT_TRUE(created.ok()) << created.status();
    return created->id;
  }
  void Change(LoanId id, const std::function<void(Loan&)>& change) {
    absl::StatusOr<Loan> updated = loans_.Update(
        id, 0, kNow,
        [&](Loan& loan) {
          change(loan);
          return absl::OkStatus();
        },
        {.caller = "t", .request_id = absl::StrCat("u", ++requests_)}, Encode);
    ASSERT_TRUE(updated.ok()) << updated.status();
  }
  static Loan Fundraising(int64_t usd_minor, std::string country = "KE") {
    Loan loan;
    loan.partner_id = PartnerId(1);
    loan.status = LoanStatus::kFundraising;
    loan.usd_amount = Money::FromMinor(Currency::Usd(), usd_minor);
    loan.details.country = std::move(country);
    loan.details.sector = 1;
    loan.details.story = "A long story.";
    loan.fundraising_deadline = kNow + absl::Hours(24);
    return loan;
  }
  std::vector<int64_t> Ids(const LoanQuery& q) {
    absl::StatusOr<Page<Loan>> page = catalogue_.List(q);
    EXPECT_TRUE(page.ok()) << page.status();
    std::vector<int64_t> ids;
    if (page.ok()) {
      for (const Loan& l : page->items) ids.push_back(l.id.value());
    }
    return ids;
  }

  int requests_ = 0;
  FakePartnerStore partners_;
  FakeLoanStore loans_{&partners_};
  FundraisingCatalogue catalogue_{&loans_};
};

// ---- The same answers as the store ---------------------------------------------------------------

// Random loans of every status, random searches over every filter and sort, each paged to its
// end, with random changes between searches (lends, loans leaving and coming back, new facets,
// keys and ratings): every page, count and cursor equals FakeLoanStore::List's, whether the
// catalogue walked its sort's order or ranked every match.
TEST_F(CatalogueTest, AnswersEverySearchAsTheLoanStoreDoes) {
  FakeLoanStore reference;  // ratings as written on the loans, like the catalogue without partners
  FundraisingCatalogue catalogue(&reference);
  std::mt19937_64 rng(20261122);
  auto pick = [&rng](int n) { return static_cast<int>(rng() % static_cast<uint64_t>(n)); };
  const std::vector<std::string> countries = {"KE", "UG", "PE", "PH"};
  const std::vector<std::string> regions = {"Nairobi", "nairobi", "Lima", ""};
  const std::vector<std::string> labels = {"a", "b", "c", "d"};
  auto add = [&](FakeLoanStore& store) {
    Loan l;
    l.partner_id = PartnerId(1 + pick(4));
    l.partner_risk_rating_half_stars = static_cast<int32_t>(l.partner_id.value() * 2);
    l.status = pick(5) == 0 ? LoanStatus::kFunded : LoanStatus::kFundraising;
    l.details.country = countries[pick(4)];
    l.details.region = regions[pick(4)];
    l.details.sector = 1 + pick(4);
    for (int b = pick(3); b > 0; --b) {
      l.details.borrowers.push_back({.name = "b", .gender = static_cast<Gender>(1 + pick(3))});
    }
    for (const std::string& t : labels) {
      if (pick(3) == 0) l.details.tags.push_back(t);
      if (pick(4) == 0) l.details.hashtags.push_back("#" + t);
    }
    l.details.term_months = 6 * (1 + pick(4));
    if (pick(5) != 0) l.details.repayment_interval = static_cast<RepaymentInterval>(1 + pick(4));
    if (pick(8) != 0) l.usd_amount = Money::FromMinor(Currency::Usd(), 2'500 * (1 + pick(8)));
    const int64_t usd = l.usd_amount ? l.usd_amount->minor_units() : 0;
    l.funded_minor = usd > 0 ? 2'500 * pick(static_cast<int>(usd / 2'500)) : 0;
    l.held_minor = usd - l.funded_minor >= 2'500 && pick(2) == 0 ? 2'500 : 0;
    if (pick(6) != 0) l.fundraising_deadline = kNow + absl::Hours(pick(72));
    if (pick(3) != 0) l.posted_at = kNow - absl::Minutes(pick(5));  // ties on purpose
    l.trending_score_milli = pick(4) * 1'000;
    if (pick(6) == 0) {  // as a pre-disbursed loan behind its schedule would be
      l.delinquent = true;
      l.days_in_arrears = 1 + pick(3);
    }
    absl::StatusOr<Loan> created = store.Create(
        l, kNow, {.caller = "t", .request_id = absl::StrCat("r", ++requests_)}, Encode);
    ASSERT_TRUE(created.ok()) << created.status();
  };
  for (int i = 0; i < 120; ++i) add(reference);
  ASSERT_TRUE(catalogue.Load().ok());
  for (int i = 0; i < 30; ++i) add(reference);  // seen through the feed, not the snapshot
  ASSERT_EQ(reference.loan_count(), 150u);

  const std::vector<LoanSort> sorts = {
      LoanSort::kNewest,        LoanSort::kExpiringSoonest, LoanSort::kAmountLeftAsc,
      LoanSort::kAmountLeftDesc, LoanSort::kLoanAmountAsc,  LoanSort::kLoanAmountDesc,
      LoanSort::kTrending,      LoanSort::kRandom};
  const int loans = 150;
  // One random change to a random loan, as a write straight to the store.
  auto change = [&] {
    const int what = pick(7);
    absl::StatusOr<Loan> changed = reference.Update(
        LoanId(1 + pick(loans)), 0, kNow,
        [&](Loan& l) {
          const int64_t usd = l.usd_amount ? l.usd_amount->minor_units() : 0;
          switch (what) {
            case 0:  // funded away or expired, or back (ops reopening it)
              l.status = l.status == LoanStatus::kFundraising
                             ? (pick(2) == 0 ? LoanStatus::kFunded : LoanStatus::kExpired)
                             : LoanStatus::kFundraising;
              break;
            case 1:  // lent on, or a hold voided
              l.funded_minor = usd > 0 ? 2'500 * pick(static_cast<int>(usd / 2'500)) : 0;
              l.held_minor = 0;
              break;
            case 2: l.trending_score_milli = pick(4) * 1'000; break;
            case 3:
              l.details.sector = 1 + pick(4);
              l.details.country = countries[pick(4)];
              l.details.region = regions[pick(4)];
              break;
            case 4:
              if (pick(6) == 0) {
                l.fundraising_deadline.reset();
              } else {
                l.fundraising_deadline = kNow + absl::Hours(pick(72));
              }
              break;
            case 5:
              l.partner_risk_rating_half_stars = 2 * pick(5);
              l.details.term_months = 6 * (1 + pick(4));
              break;
            default:
              l.details.borrowers.clear();
              for (int b = pick(3); b > 0; --b) {
                l.details.borrowers.push_back(
                    {.name = "b", .gender = static_cast<Gender>(1 + pick(3))});
              }
              l.details.tags.clear();
              if (pick(2) == 0) l.details.tags.push_back(labels[pick(4)]);
              break;
          }
          return absl::OkStatus();
        },
        {.caller = "t", .request_id = absl::StrCat("u", ++requests_)}, Encode);
    ASSERT_TRUE(changed.ok()) << changed.status();
  };

  int pages = 0;
  for (int round = 0; round < 400; ++round) {
    for (int c = pick(4); c > 0; --c) change();
    LoanQuery q;
    q.now = kNow;
    if (pick(4) == 0) q.statuses = {LoanStatus::kFundraising};
    if (pick(3) == 0) q.countries = {countries[pick(4)], countries[pick(4)]};
    if (pick(4) == 0) q.countries.push_back("ZZ");  // a country no loan has
    if (pick(5) == 0) q.regions = {regions[pick(4)]};
    if (pick(3) == 0) q.sectors = {1 + pick(4)};
    if (pick(4) == 0) q.genders = {static_cast<Gender>(1 + pick(4))};
    if (pick(5) == 0) q.is_group = pick(2) == 0;
    if (pick(5) == 0) q.partner_ids = {PartnerId(1 + pick(4))};
    if (pick(4) == 0) q.min_partner_risk_rating_half_stars = 2 * pick(5);
    if (pick(4) == 0) q.min_amount_left_minor = 2'500 * pick(4);
    if (pick(4) == 0) q.max_amount_left_minor = 2'500 * pick(8);
    if (pick(4) == 0) q.max_term_months = 6 * (1 + pick(4));
    if (pick(4) == 0) q.tags = {labels[pick(4)]};
    if (pick(5) == 0) q.hashtags = {"#" + labels[pick(4)]};
    if (pick(5) == 0) q.expiring_within_hours = pick(80);
    if (pick(5) == 0) q.repayment_intervals = {static_cast<RepaymentInterval>(1 + pick(4))};
    if (pick(20) == 0) q.matchable = pick(2) == 0;
    if (pick(8) == 0) q.delinquent = pick(2) == 0;
    if (pick(8) == 0) q.min_days_in_arrears = pick(4);
    q.sort = sorts[pick(static_cast<int>(sorts.size()))];
    q.random_seed = pick(3);
    q.limit = 1 + pick(9);
    q.count_cap = pick(3) == 0 ? pick(20) : kLoanCountCap;
    q.view = pick(2) == 0 ? LoanView::kCard : LoanView::kFull;
    for (int page = 0;; ++page) {
      SCOPED_TRACE(absl::StrCat("round ", round, " page ", page));
      absl::StatusOr<Page<Loan>> want = reference.List(q);
      absl::StatusOr<Page<Loan>> got = catalogue.List(q);
      ASSERT_TRUE(want.ok()) << want.status();
      ASSERT_TRUE(got.ok()) << got.status();
      ASSERT_EQ(got->items, want->items);
      ASSERT_EQ(got->total_count, want->total_count);
      ASSERT_EQ(got->next_after_id, want->next_after_id);
      ++pages;
      if (want->next_after_id == 0) break;
      const Loan& last = want->items.back();
      q.after = LoanCursor{.key = LoanSortKey(last, q.sort), .id = last.id};
    }
  }
  EXPECT_GT(pages, 600);  // the searches page, not just answer once
  EXPECT_GT(catalogue.search_counts().walked, 200);
  EXPECT_GT(catalogue.search_counts().ranked, 200);
}

// ---- Freshness -----------------------------------------------------------------------------------

TEST_F(CatalogueTest, ASearchSeesEveryChangeCommittedBeforeIt) {
  const LoanId a = Add(Fundraising(10'000));
  const LoanId b = Add(Fundraising(5'000));
  ASSERT_TRUE(catalogue_.Load().ok());
  EXPECT_EQ(Ids({.sort = LoanSort::kAmountLeftDesc}), (std::vector<int64_t>{a.value(), b.value()}));

  Change(a, [](Loan& l) { l.funded_minor = 7'500; });  // lent on: 2,500 left
  EXPECT_EQ(Ids({.sort = LoanSort::kAmountLeftDesc}), (std::vector<int64_t>{b.value(), a.value()}));

  const LoanId c = Add(Fundraising(2'500));
  Change(b, [](Loan& l) { l.status = LoanStatus::kFunded; });  // leaves the catalogue
  EXPECT_EQ(Ids({.sort = LoanSort::kAmountLeftDesc}), (std::vector<int64_t>{a.value(), c.value()}));
  EXPECT_EQ(catalogue_.size(), 2u);

  const LoanId draft = Add([] {
    Loan l = Fundraising(2'500);
    l.status = LoanStatus::kDraft;
    return l;
  }());
  EXPECT_EQ(Ids({.sort = LoanSort::kAmountLeftDesc}), (std::vector<int64_t>{a.value(), c.value()}));
  Change(draft, [](Loan& l) { l.status = LoanStatus::kFundraising; });  // approved
  EXPECT_EQ(Ids({.sort = LoanSort::kAmountLeftDesc}),
            (std::vector<int64_t>{a.value(), c.value(), draft.value()}));
}

TEST_F(CatalogueTest, APartnerRatingChangeMovesItsLoansInAndOutOfRatedSearches) {
  absl::StatusOr<Partner> partner = partners_.Create(
      {.name = "P", .countries = {"KE"}, .risk_rating_half_stars = 4}, kNow,
      {.caller = "t", .request_id = "p"}, [](const Partner&) { return std::string(); });
  ASSERT_TRUE(partner.ok()) << partner.status();
  Loan loan = Fundraising(10'000);
  loan.partner_id = partner->id;
  const LoanId id = Add(loan);
  ASSERT_TRUE(catalogue_.Load().ok());
  const LoanQuery rated{.min_partner_risk_rating_half_stars = 6};
  EXPECT_TRUE(Ids(rated).empty());

  ASSERT_TRUE(partners_
                  .Update(partner->id, 0, kNow,
                          [](Partner& p) {
                            p.risk_rating_half_stars = 8;
                            return absl::OkStatus();
                          },
                          {.caller = "t", .request_id = "p2"},
                          [](const Partner&) { return std::string(); })
                  .ok());
  EXPECT_EQ(Ids(rated), std::vector<int64_t>{id.value()});
  absl::StatusOr<Page<Loan>> page = catalogue_.List({.view = LoanView::kCard});
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->items.at(0).partner_risk_rating_half_stars, 8);
}

// A read of the feed that is running when a search arrives may have started before the search's
// change committed: the search waits for the next read, which every search that arrived during
// the first shares.
class GatedFeed : public CatalogueChangeFeed {
 public:
  explicit GatedFeed(FakeLoanStore* store) : store_(store) {}
  absl::StatusOr<CatalogueChanges> CatalogueSnapshot() override {
    return store_->CatalogueSnapshot();
  }
  absl::StatusOr<CatalogueChanges> CatalogueChangesSince(CatalogueHorizon since) override {
    absl::StatusOr<CatalogueChanges> changes = store_->CatalogueChangesSince(since);
    const int read = ++reads_;
    if (read == 1) {
      first_read_started.Notify();
      release_first_read.WaitForNotification();
    }
    return changes;
  }
  absl::StatusOr<std::vector<Loan>> ReadFullLoans(const std::vector<LoanId>& ids) override {
    return store_->ReadFullLoans(ids);
  }
  int reads() const { return reads_; }

  absl::Notification first_read_started;
  absl::Notification release_first_read;

 private:
  FakeLoanStore* store_;
  std::atomic<int> reads_{0};
};

TEST_F(CatalogueTest, SearchesArrivingDuringAReadWaitForTheNextAndShareIt) {
  GatedFeed feed(&loans_);
  FundraisingCatalogue catalogue(&feed);
  const LoanId a = Add(Fundraising(10'000));
  ASSERT_TRUE(catalogue.Load().ok());

  std::vector<int64_t> first;
  std::thread early([&] {
    absl::StatusOr<Page<Loan>> page = catalogue.List({});
    ASSERT_TRUE(page.ok());
    for (const Loan& l : page->items) first.push_back(l.id.value());
  });
  feed.first_read_started.WaitForNotification();
  const LoanId b = Add(Fundraising(5'000));  // committed after the running read took its changes
  std::vector<std::vector<int64_t>> late(4);
  std::vector<std::thread> waiting;
  for (auto& ids : late) {
    waiting.emplace_back([&catalogue, &ids] {
      absl::StatusOr<Page<Loan>> page = catalogue.List({.sort = LoanSort::kLoanAmountAsc});
      ASSERT_TRUE(page.ok());
      for (const Loan& l : page->items) ids.push_back(l.id.value());
    });
  }
  absl::SleepFor(absl::Milliseconds(50));  // let them queue behind the running read
  feed.release_first_read.Notify();
  early.join();
  for (std::thread& t : waiting) t.join();

  // The early search may also see b: a later read can land between its read and its scan.
  ASSERT_FALSE(first.empty());
  EXPECT_EQ(first[0], a.value());
  for (const auto& ids : late) EXPECT_EQ(ids, (std::vector<int64_t>{b.value(), a.value()}));
  // The late searches share reads: one more at least, never one each.
  EXPECT_GE(feed.reads(), 2);
  EXPECT_LE(feed.reads(), 3);
}

// ---- Views, errors -------------------------------------------------------------------------------

TEST_F(CatalogueTest, CardsLeaveOutStoryAndScheduleAndFullLoansReadThemWhole) {
  const LoanId id = Add(Fundraising(10'000));
  ASSERT_TRUE(catalogue_.Load().ok());
  absl::StatusOr<Page<Loan>> cards = catalogue_.List({.view = LoanView::kCard});
  absl::StatusOr<Page<Loan>> full = catalogue_.List({.view = LoanView::kFull});
  ASSERT_TRUE(cards.ok() && full.ok());
  ASSERT_EQ(cards->items.size(), 1u);
  EXPECT_EQ(cards->items[0].details.story, "");
  EXPECT_EQ(full->items.at(0).details.story, "A long story.");
  absl::StatusOr<Loan> stored = loans_.Get(id);
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(full->items[0], *stored);
}

TEST_F(CatalogueTest, BadSearchesAreInvalidArgumentAndOtherStatusesAreNotServed) {
  Add(Fundraising(10'000));
  ASSERT_TRUE(catalogue_.Load().ok());
  EXPECT_EQ(catalogue_.List({.limit = 0}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(catalogue_.List({.count_cap = -1}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(catalogue_.List({.sort = LoanSort::kNewest, .after = LoanCursor{.id = LoanId(1)}})
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  const LoanQuery funded{.statuses = {LoanStatus::kFundraising, LoanStatus::kFunded}};
  EXPECT_FALSE(FundraisingCatalogue::Serves(funded));
  EXPECT_EQ(catalogue_.List(funded).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(FundraisingCatalogue::Serves({.statuses = {LoanStatus::kFundraising}}));
}

TEST_F(CatalogueTest, UnavailableBeforeLoadAndWhileTheFeedFailsThenServesAgain) {
  const LoanId id = Add(Fundraising(10'000));
  EXPECT_EQ(catalogue_.List({}).status().code(), absl::StatusCode::kUnavailable);
  loans_.FailNextCatalogueRead(absl::UnavailableError("database down"));
  EXPECT_EQ(catalogue_.Load().code(), absl::StatusCode::kUnavailable);
  ASSERT_TRUE(catalogue_.Load().ok());
  loans_.FailNextCatalogueRead(absl::UnavailableError("database down"));
  EXPECT_EQ(catalogue_.List({}).status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(Ids({}), std::vector<int64_t>{id.value()});
}

}  // namespace
}  // namespace microlend::lending
