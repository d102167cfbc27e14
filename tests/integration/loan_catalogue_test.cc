// LoanService.ListLoans over a catalogue large enough to reach the count cap: the real lending
// server on a real PostgreSQL, loaded with tests/harness/loan_catalogue.h (kCap FUNDRAISING loans
// and some older ones). Every answer is checked against a reference computed here, in C++, from
// the loans' columns read straight from the table: the filters, the order (ties by loan id), the
// count and its cap, and that paging through a result repeats and skips nothing.
#include "harness/loan_catalogue.h"

#include <grpcpp/support/status.h>

#include <algorithm>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
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

// The documented count cap of ListLoans (lending.proto).
constexpr int64_t kCap = 1'000;

// A FUNDRAISING loan as the reference sees it.
struct Row {
  int64_t id = 0;
  std::string country;
  int sector = 0;
  int gender = 0;
  int term_months = 0;
  int rating = 0;
  int64_t usd = 0;
  int64_t left = 0;
  int64_t deadline_us = 0;
  int64_t posted_us = 0;
  int64_t trending = 0;
};

using Filter = std::function<bool(const Row&)>;

class LoanCatalogueTest : public SharedStackTest {
 protected:
  static void SetUpTestSuite() {
    SharedStackTest::SetUpTestSuite();
    ASSERT_NE(stack_, nullptr);
    absl::Status loaded =
        LoadLoanCatalogue(*stack_, {.loans = 3 * kCap, .fundraising = kCap, .now = absl::Now()});
    ASSERT_TRUE(loaded.ok()) << loaded;
  }

  void SetUp() override {
    loans_ = lv1::LoanService::NewStub(Channel(stack_->Address(Server::kLending)));
    lender_ = stack_->Token(Role::kLender, "501");
    rows_ = ReadRows();
  }

  static std::vector<Row> ReadRows() {
    absl::StatusOr<std::unique_ptr<pqxx::connection>> conn = ConnectLending(*stack_);
    EXPECT_TRUE(conn.ok()) << conn.status();
    if (!conn.ok()) return {};
    pqxx::nontransaction tx(**conn);
    std::vector<Row> rows;
    for (const pqxx::row& r :
         tx.exec("SELECT l.id, l.country, l.sector, l.gender, l.term_months,"
                 " p.risk_rating_half_stars, coalesce(l.usd_amount_minor, 0),"
                 " coalesce(l.usd_amount_minor, 0) - l.funded_minor - l.held_minor,"
                 " to_micros(l.fundraising_deadline), to_micros(coalesce(l.published_at, "
                 "l.created_at)),"
                 " l.trending_score_milli FROM loans l JOIN partners p ON p.id = l.partner_id"
                 " WHERE l.status = 3")) {
      rows.push_back({.id = r[0].as<int64_t>(),
                      .country = r[1].as<std::string>(),
                      .sector = r[2].as<int>(),
                      .gender = r[3].as<int>(),
                      .term_months = r[4].as<int>(),
                      .rating = r[5].as<int>(),
                      .usd = r[6].as<int64_t>(),
                      .left = r[7].as<int64_t>(),
                      .deadline_us = r[8].as<int64_t>(),
                      .posted_us = r[9].as<int64_t>(),
                      .trending = r[10].as<int64_t>()});
    }
    return rows;
  }

  // The ids matching `filter` in the order of `sort` (ties by id); random order is not modelled.
  std::vector<std::string> Expected(const Filter& filter, lv1::LoanSort sort) const {
    std::vector<Row> hits;
    for (const Row& r : rows_) {
      if (filter(r)) hits.push_back(r);
    }
    auto key = [sort](const Row& r) -> int64_t {
      switch (sort) {
        case lv1::LOAN_SORT_NEWEST:
          return -r.posted_us;
        case lv1::LOAN_SORT_EXPIRING_SOONEST:
          return r.deadline_us;
        case lv1::LOAN_SORT_AMOUNT_LEFT_ASC:
          return r.left;
        case lv1::LOAN_SORT_AMOUNT_LEFT_DESC:
          return -r.left;
        case lv1::LOAN_SORT_LOAN_AMOUNT_ASC:
          return r.usd;
        case lv1::LOAN_SORT_LOAN_AMOUNT_DESC:
          return -r.usd;
        case lv1::LOAN_SORT_TRENDING:
          return -r.trending;
        default:
          return 0;
      }
    };
    std::sort(hits.begin(), hits.end(), [&](const Row& a, const Row& b) {
      return std::make_pair(key(a), a.id) < std::make_pair(key(b), b.id);
    });
    std::vector<std::string> ids;
    for (const Row& r : hits) ids.push_back(std::to_string(r.id));
    return ids;
  }

  lv1::ListLoansResponse Call(const lv1::ListLoansRequest& req) {
    lv1::ListLoansResponse out;
    grpc::Status s = loans_->ListLoans(Ctx(lender_).get(), req, &out);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return out;
  }

  // Every page of `req` in turn (page size `page_size`), concatenated.
  std::vector<std::string> AllPages(lv1::ListLoansRequest req, int page_size) {
    std::vector<std::string> ids;
    req.mutable_page()->set_page_size(page_size);
    for (int pages = 0; pages < 1'000; ++pages) {
      lv1::ListLoansResponse out = Call(req);
      EXPECT_LE(out.loans_size(), page_size);
      for (const lv1::Loan& l : out.loans()) ids.push_back(l.id().value());
      if (out.page().next_page_token().empty()) return ids;
      EXPECT_EQ(out.loans_size(), page_size) << "only the last page may be short";
      req.mutable_page()->set_page_token(out.page().next_page_token());
    }
    ADD_FAILURE() << "more than 1,000 pages";
    return ids;
  }

  // Inserts a copy of FUNDRAISING loan `of` (schedule included) under a new id, then runs
  // `update` ("SET ...") on the copy; returns the copy's id.
  static int64_t InsertCopy(int64_t of, const std::string& update = "") {
    absl::StatusOr<std::unique_ptr<pqxx::connection>> conn = ConnectLending(*stack_);
    EXPECT_TRUE(conn.ok()) << conn.status();
    pqxx::work tx(**conn);
    const int64_t id =
        tx.exec_params(
              "INSERT INTO loans (partner_id, status, country, region, town, sector, gender, "
              "is_group,"
              " tags, hashtags, term_months, repayment_interval, local_amount_minor, "
              "local_currency,"
              " posting_fx_rate, usd_amount_minor, funded_minor, held_minor, lender_count,"
              " trending_score_milli, details, fundraising_deadline, version, created_at, "
              "updated_at,"
              " submitted_at, published_at) SELECT partner_id, status, country, region, town, "
              "sector,"
              " gender, is_group, tags, hashtags, term_months, repayment_interval, "
              "local_amount_minor,"
              " local_currency, posting_fx_rate, usd_amount_minor, funded_minor, held_minor,"
              " lender_count, trending_score_milli, details, fundraising_deadline, version, "
              "created_at,"
              " updated_at, submitted_at, published_at FROM loans WHERE id = $1 RETURNING id",
              of)[0][0]
            .as<int64_t>();
    tx.exec_params(
        "INSERT INTO loan_schedule_entries (loan_id, seq, due_date, principal_minor)"
        " SELECT $2, seq, due_date, principal_minor FROM loan_schedule_entries WHERE loan_id = $1",
        of, id);
    if (!update.empty()) tx.exec_params("UPDATE loans " + update + " WHERE id = $1", id);
    tx.commit();
    return id;
  }

  static void Delete(int64_t id) {
    absl::StatusOr<std::unique_ptr<pqxx::connection>> conn = ConnectLending(*stack_);
    ASSERT_TRUE(conn.ok()) << conn.status();
    pqxx::work tx(**conn);
    // A FUNDRAISING loan is never deleted (migration 0014): it leaves FUNDRAISING first.
    tx.exec_params("UPDATE loans SET status = 1 WHERE id = $1", id);
    tx.exec_params("DELETE FROM loan_schedule_entries WHERE loan_id = $1", id);
    tx.exec_params("DELETE FROM loans WHERE id = $1", id);
    tx.commit();
  }

  std::unique_ptr<lv1::LoanService::Stub> loans_;
  std::string lender_;
  std::vector<Row> rows_;
};

// The benchmark's query A: KE or UG, agriculture, partner rated 3 stars or more.
lv1::ListLoansRequest QueryA(lv1::LoanSort sort) {
  lv1::ListLoansRequest req;
  req.mutable_filter()->add_countries("KE");
  req.mutable_filter()->add_countries("UG");
  req.mutable_filter()->add_sectors(cv1::SECTOR_AGRICULTURE);
  req.mutable_filter()->set_min_partner_risk_rating_half_stars(6);
  req.set_sort(sort);
  return req;
}
bool MatchesA(const Row& r) {
  return (r.country == "KE" || r.country == "UG") && r.sector == cv1::SECTOR_AGRICULTURE &&
         r.rating >= 6;
}

// The benchmark's query B: women, food or retail, 12 months or less.
lv1::ListLoansRequest QueryB(lv1::LoanSort sort) {
  lv1::ListLoansRequest req;
  req.mutable_filter()->add_genders(cv1::GENDER_FEMALE);
  req.mutable_filter()->add_sectors(cv1::SECTOR_FOOD);
  req.mutable_filter()->add_sectors(cv1::SECTOR_RETAIL);
  req.mutable_filter()->set_max_term_months(12);
  req.set_sort(sort);
  return req;
}
bool MatchesB(const Row& r) {
  return r.gender == cv1::GENDER_FEMALE &&
         (r.sector == cv1::SECTOR_FOOD || r.sector == cv1::SECTOR_RETAIL) && r.term_months <= 12;
}

constexpr lv1::LoanSort kOrderedSorts[] = {
    lv1::LOAN_SORT_NEWEST,          lv1::LOAN_SORT_EXPIRING_SOONEST,
    lv1::LOAN_SORT_AMOUNT_LEFT_ASC, lv1::LOAN_SORT_AMOUNT_LEFT_DESC,
    lv1::LOAN_SORT_LOAN_AMOUNT_ASC, lv1::LOAN_SORT_LOAN_AMOUNT_DESC,
    lv1::LOAN_SORT_TRENDING};

TEST_F(LoanCatalogueTest, CountIsExactUpToTheCapThenALowerBound) {
  ASSERT_EQ(rows_.size(), static_cast<size_t>(kCap));  // the load: exactly kCap FUNDRAISING
  lv1::ListLoansRequest all;
  all.mutable_page()->set_page_size(5);
  lv1::ListLoansResponse at_cap = Call(all);
  EXPECT_EQ(at_cap.page().total_count(), kCap);
  EXPECT_FALSE(at_cap.page().total_count_is_lower_bound());
  EXPECT_EQ(at_cap.loans_size(), 5);

  lv1::ListLoansRequest a = QueryA(lv1::LOAN_SORT_EXPIRING_SOONEST);
  lv1::ListLoansResponse narrow = Call(a);
  EXPECT_EQ(narrow.page().total_count(),
            static_cast<int64_t>(Expected(MatchesA, lv1::LOAN_SORT_EXPIRING_SOONEST).size()));
  EXPECT_GT(narrow.page().total_count(), 0);
  EXPECT_FALSE(narrow.page().total_count_is_lower_bound());

  lv1::ListLoansRequest none = QueryA(lv1::LOAN_SORT_NEWEST);
  none.mutable_filter()->clear_countries();
  none.mutable_filter()->add_countries("FR");  // no partner lends there
  lv1::ListLoansResponse empty = Call(none);
  EXPECT_EQ(empty.page().total_count(), 0);
  EXPECT_FALSE(empty.page().total_count_is_lower_bound());
  EXPECT_TRUE(empty.page().next_page_token().empty());

  // One more FUNDRAISING loan than the cap: the count stops at the cap and says so, on every
  // page, while the loans themselves are all still there.
  const int64_t copy = InsertCopy(std::stoll(at_cap.loans(0).id().value()));
  lv1::ListLoansResponse over = Call(all);
  EXPECT_EQ(over.page().total_count(), kCap);
  EXPECT_TRUE(over.page().total_count_is_lower_bound());
  all.mutable_page()->set_page_token(over.page().next_page_token());
  lv1::ListLoansResponse second = Call(all);
  EXPECT_EQ(second.page().total_count(), kCap);
  EXPECT_TRUE(second.page().total_count_is_lower_bound());
  EXPECT_EQ(AllPages(QueryA(lv1::LOAN_SORT_NEWEST), 100).size(),
            static_cast<size_t>(narrow.page().total_count()));
  EXPECT_EQ(AllPages(lv1::ListLoansRequest(), 100).size(), static_cast<size_t>(kCap + 1));
  Delete(copy);
}

TEST_F(LoanCatalogueTest, FiltersAndSortsMatchTheReference) {
  for (lv1::LoanSort sort : kOrderedSorts) {
    SCOPED_TRACE(lv1::LoanSort_Name(sort));
    EXPECT_EQ(AllPages(QueryA(sort), 100), Expected(MatchesA, sort));
    EXPECT_EQ(AllPages(QueryB(sort), 100), Expected(MatchesB, sort));
  }
  lv1::ListLoansRequest left = QueryB(lv1::LOAN_SORT_AMOUNT_LEFT_ASC);
  *left.mutable_filter()->mutable_min_amount_left() = M("100.00");
  *left.mutable_filter()->mutable_max_amount_left() = M("500.00");
  EXPECT_EQ(
      AllPages(left, 100),
      Expected([](const Row& r) { return MatchesB(r) && r.left >= 10'000 && r.left <= 50'000; },
               lv1::LOAN_SORT_AMOUNT_LEFT_ASC));
  lv1::ListLoansRequest rated;
  rated.mutable_filter()->set_min_partner_risk_rating_half_stars(8);
  rated.mutable_filter()->add_countries("PH");
  rated.set_sort(lv1::LOAN_SORT_TRENDING);
  EXPECT_EQ(AllPages(rated, 100),
            Expected([](const Row& r) { return r.rating >= 8 && r.country == "PH"; },
                     lv1::LOAN_SORT_TRENDING));
}

// Women borrowers, 24 months or less: most of the catalogue, for paging.
lv1::ListLoansRequest QueryWomen(lv1::LoanSort sort) {
  lv1::ListLoansRequest req;
  req.mutable_filter()->add_genders(cv1::GENDER_FEMALE);
  req.mutable_filter()->set_max_term_months(24);
  req.set_sort(sort);
  return req;
}
bool MatchesWomen(const Row& r) { return r.gender == cv1::GENDER_FEMALE && r.term_months <= 24; }

TEST_F(LoanCatalogueTest, PagesNeitherRepeatNorSkip) {
  const std::vector<std::string> expected_set = [&] {
    std::vector<std::string> ids = Expected(MatchesWomen, lv1::LOAN_SORT_NEWEST);
    std::sort(ids.begin(), ids.end());
    return ids;
  }();
  ASSERT_GT(expected_set.size(), 300u);
  for (int page_size : {1, 7, 100}) {
    SCOPED_TRACE(page_size);
    for (lv1::LoanSort sort : kOrderedSorts) {
      SCOPED_TRACE(lv1::LoanSort_Name(sort));
      if (page_size == 1 && sort != lv1::LOAN_SORT_AMOUNT_LEFT_ASC) continue;  // slow, once
      EXPECT_EQ(AllPages(QueryWomen(sort), page_size), Expected(MatchesWomen, sort));
    }
    lv1::ListLoansRequest random = QueryWomen(lv1::LOAN_SORT_RANDOM);
    random.set_random_seed(20261121);
    const std::vector<std::string> shuffled = AllPages(random, page_size);
    std::vector<std::string> sorted = shuffled;
    std::sort(sorted.begin(), sorted.end());
    EXPECT_EQ(sorted, expected_set);  // each loan exactly once
    EXPECT_EQ(AllPages(random, 100), shuffled) << "the same seed gives the same order";
    EXPECT_NE(shuffled, Expected(MatchesWomen, lv1::LOAN_SORT_NEWEST));
    random.set_random_seed(7);
    EXPECT_NE(AllPages(random, 100), shuffled) << "another seed, another order";
  }
}

TEST_F(LoanCatalogueTest, NextPageStartsAfterTheLastLoanWhatEverIsAddedBeforeIt) {
  lv1::ListLoansRequest req = QueryWomen(lv1::LOAN_SORT_NEWEST);
  req.mutable_page()->set_page_size(10);
  lv1::ListLoansResponse first = Call(req);
  ASSERT_EQ(first.loans_size(), 10);
  const std::vector<std::string> expected = Expected(MatchesWomen, lv1::LOAN_SORT_NEWEST);
  // A new loan that sorts first: an offset would now repeat the first page's last loan.
  const int64_t newest = InsertCopy(std::stoll(first.loans(0).id().value()),
                                    "SET published_at = now() + interval '1 hour'");
  EXPECT_EQ(Call(req).loans(0).id().value(), std::to_string(newest));
  req.mutable_page()->set_page_token(first.page().next_page_token());
  lv1::ListLoansResponse second = Call(req);
  std::vector<std::string> ids;
  for (const lv1::Loan& l : second.loans()) ids.push_back(l.id().value());
  EXPECT_EQ(ids, std::vector<std::string>(expected.begin() + 10, expected.begin() + 20));
  Delete(newest);
}

TEST_F(LoanCatalogueTest, ExpiringSoonestPagesOnIntoLoansWithoutADeadline) {
  const std::vector<std::string> dated = Expected(MatchesA, lv1::LOAN_SORT_EXPIRING_SOONEST);
  ASSERT_GT(dated.size(), 10u);
  std::vector<std::string> drafts;  // copies of an A loan: they match A, without a deadline
  for (int i = 0; i < 3; ++i) {
    drafts.push_back(std::to_string(
        InsertCopy(std::stoll(dated[i]), "SET status = 1, fundraising_deadline = NULL")));
  }
  lv1::ListLoansRequest req = QueryA(lv1::LOAN_SORT_EXPIRING_SOONEST);
  req.mutable_filter()->add_statuses(lv1::LOAN_STATUS_DRAFT);
  req.mutable_filter()->add_statuses(lv1::LOAN_STATUS_FUNDRAISING);
  std::vector<std::string> expected = dated;
  expected.insert(expected.end(), drafts.begin(), drafts.end());
  const std::string lender = lender_;
  lender_ = stack_->Token(Role::kOps, "catalogue-ops");
  for (int page_size : {1, 7, 100}) {
    SCOPED_TRACE(page_size);
    EXPECT_EQ(AllPages(req, page_size), expected);
  }
  lender_ = lender;  // a lender sees no drafts
  EXPECT_EQ(AllPages(req, 7), dated);
  for (const std::string& id : drafts) Delete(std::stoll(id));
}

// The server answers FUNDRAISING searches from memory (ADR 0017), fed by what changed in
// PostgreSQL, whoever wrote it. A transaction that took its id before a search's read of the
// changes and committed after it is still seen by the next search.
TEST_F(LoanCatalogueTest, ChangesCommittedStraightToTheDatabaseShowInTheNextSearch) {
  ASSERT_GE(rows_.size(), 2u);
  const Row a = rows_[0], b = rows_[1];
  absl::StatusOr<std::unique_ptr<pqxx::connection>> late = ConnectLending(*stack_);
  absl::StatusOr<std::unique_ptr<pqxx::connection>> quick = ConnectLending(*stack_);
  ASSERT_TRUE(late.ok() && quick.ok());
  lv1::ListLoansRequest req;
  req.set_sort(lv1::LOAN_SORT_TRENDING);
  req.mutable_page()->set_page_size(2);
  auto first_two = [&] {
    std::vector<std::string> ids;
    const lv1::ListLoansResponse out = Call(req);
    for (const lv1::Loan& l : out.loans()) ids.push_back(l.id().value());
    return ids;
  };
  const std::vector<std::string> before = first_two();

  pqxx::work slow(**late);  // takes its transaction id now, commits after the next search
  slow.exec_params("UPDATE loans SET trending_score_milli = 2000000000000 WHERE id = $1", a.id);
  pqxx::nontransaction(**quick).exec_params(
      "UPDATE loans SET trending_score_milli = 1999999999999 WHERE id = $1", b.id);
  std::vector<std::string> after_quick = first_two();
  ASSERT_EQ(after_quick.size(), 2u);
  EXPECT_EQ(after_quick[0], std::to_string(b.id)) << "a committed change shows at once";
  EXPECT_NE(after_quick[1], std::to_string(a.id)) << "an uncommitted one does not";
  slow.commit();
  EXPECT_EQ(first_two(), (std::vector<std::string>{std::to_string(a.id), std::to_string(b.id)}));

  pqxx::work restore(**quick);
  restore.exec_params("UPDATE loans SET trending_score_milli = $2 WHERE id = $1", a.id, a.trending);
  restore.exec_params("UPDATE loans SET trending_score_milli = $2 WHERE id = $1", b.id, b.trending);
  restore.commit();
  EXPECT_EQ(first_two(), before);
}

// The feed's probe finds nothing new while the only change is uncommitted, and the change itself
// once it commits, though it is then the newest stamp of all and exactly the horizon.
TEST_F(LoanCatalogueTest, AChangeOpenAcrossSearchesShowsInTheFirstSearchAfterItCommits) {
  ASSERT_GE(rows_.size(), 2u);
  absl::StatusOr<std::unique_ptr<pqxx::connection>> late = ConnectLending(*stack_);
  ASSERT_TRUE(late.ok());
  lv1::ListLoansRequest req;
  req.set_sort(lv1::LOAN_SORT_TRENDING);
  req.mutable_page()->set_page_size(1);
  auto first = [&] { return Call(req).loans(0).id().value(); };
  const std::string before = first();
  const Row a = before == std::to_string(rows_[0].id) ? rows_[1] : rows_[0];

  pqxx::work slow(**late);
  slow.exec_params("UPDATE loans SET trending_score_milli = 2000000000000 WHERE id = $1", a.id);
  EXPECT_EQ(first(), before) << "an uncommitted change does not show";
  EXPECT_EQ(first(), before) << "nor in a search whose probe finds nothing new";
  slow.commit();
  EXPECT_EQ(first(), std::to_string(a.id)) << "a committed one shows in the next search";

  pqxx::nontransaction(**late).exec_params(
      "UPDATE loans SET trending_score_milli = $2 WHERE id = $1", a.id, a.trending);
  EXPECT_EQ(first(), before);
}

TEST_F(LoanCatalogueTest, AFundraisingLoanIsNeverDeletedNorTheLoansTruncated) {
  absl::StatusOr<std::unique_ptr<pqxx::connection>> conn = ConnectLending(*stack_);
  ASSERT_TRUE(conn.ok());
  ASSERT_FALSE(rows_.empty());
  EXPECT_THROW(pqxx::nontransaction(**conn).exec_params("DELETE FROM loans WHERE id = $1",
                                                        rows_[0].id),
               pqxx::sql_error);
  EXPECT_THROW(pqxx::nontransaction(**conn).exec("TRUNCATE loans CASCADE"), pqxx::sql_error);
  EXPECT_EQ(ReadRows().size(), rows_.size());
}

TEST_F(LoanCatalogueTest, CardViewIsTheFullLoanWithoutStoryOrSchedule) {
  lv1::ListLoansRequest full_req = QueryA(lv1::LOAN_SORT_EXPIRING_SOONEST);
  full_req.mutable_page()->set_page_size(20);
  lv1::ListLoansRequest card_req = full_req;
  card_req.set_view(lv1::LOAN_VIEW_CARD);
  const lv1::ListLoansResponse full = Call(full_req);
  const lv1::ListLoansResponse card = Call(card_req);
  ASSERT_EQ(full.loans_size(), 20);
  ASSERT_EQ(card.loans_size(), full.loans_size());
  EXPECT_EQ(card.page().total_count(), full.page().total_count());
  EXPECT_EQ(card.page().total_count_is_lower_bound(), full.page().total_count_is_lower_bound());
  for (int i = 0; i < full.loans_size(); ++i) {
    SCOPED_TRACE(full.loans(i).id().value());
    ASSERT_FALSE(full.loans(i).details().story().empty());
    ASSERT_GT(full.loans(i).details().schedule_size(), 0);
    EXPECT_TRUE(card.loans(i).details().story().empty());
    EXPECT_EQ(card.loans(i).details().schedule_size(), 0);
    lv1::Loan trimmed = full.loans(i);
    trimmed.mutable_details()->clear_story();
    trimmed.mutable_details()->clear_schedule();
    EXPECT_EQ(card.loans(i).SerializeAsString(), trimmed.SerializeAsString())
        << "card:\n" << card.loans(i).DebugString() << "full:\n" << trimmed.DebugString();
  }
  // The view does not change the order, so a card page's token continues a full search.
  full_req.mutable_page()->set_page_token(card.page().next_page_token());
  card_req.mutable_page()->set_page_token(full.page().next_page_token());
  const lv1::ListLoansResponse full_next = Call(full_req);
  const lv1::ListLoansResponse card_next = Call(card_req);
  ASSERT_GT(full_next.loans_size(), 0);
  ASSERT_EQ(card_next.loans_size(), full_next.loans_size());
  const std::vector<std::string> expected = Expected(MatchesA, lv1::LOAN_SORT_EXPIRING_SOONEST);
  EXPECT_EQ(full_next.loans(0).id().value(), expected[20]);
  EXPECT_EQ(card_next.loans(0).id().value(), expected[20]);

  lv1::ListLoansRequest unknown = QueryA(lv1::LOAN_SORT_EXPIRING_SOONEST);
  unknown.set_view(static_cast<lv1::LoanView>(99));
  lv1::ListLoansResponse out;
  const grpc::Status s = loans_->ListLoans(Ctx(lender_).get(), unknown, &out);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("view"), std::string::npos) << s.error_message();
}

TEST_F(LoanCatalogueTest, MalformedOrMismatchedTokensAreInvalidArgument) {
  lv1::ListLoansRequest req = QueryA(lv1::LOAN_SORT_EXPIRING_SOONEST);
  req.mutable_page()->set_page_size(10);
  lv1::ListLoansResponse first = Call(req);
  const std::string token = first.page().next_page_token();
  ASSERT_FALSE(token.empty());
  auto code_with = [&](lv1::ListLoansRequest r, const std::string& t) {
    r.mutable_page()->set_page_token(t);
    lv1::ListLoansResponse out;
    return loans_->ListLoans(Ctx(lender_).get(), r, &out).error_code();
  };
  EXPECT_EQ(code_with(req, token), grpc::StatusCode::OK);
  lv1::ListLoansRequest bigger = req;
  bigger.mutable_page()->set_page_size(50);
  EXPECT_EQ(code_with(bigger, token), grpc::StatusCode::OK) << "the page size may change";
  for (const std::string& bad :
       {std::string("not-a-token"), std::string("42"), std::string("\x01\x02"), token + "x",
        token.substr(0, token.size() - 2), std::string(token.rbegin(), token.rend())}) {
    EXPECT_EQ(code_with(req, bad), grpc::StatusCode::INVALID_ARGUMENT) << bad;
  }
  lv1::ListLoansRequest other_sort = req;
  other_sort.set_sort(lv1::LOAN_SORT_NEWEST);
  EXPECT_EQ(code_with(other_sort, token), grpc::StatusCode::INVALID_ARGUMENT);
  lv1::ListLoansRequest other_filter = req;
  other_filter.mutable_filter()->set_max_term_months(12);
  EXPECT_EQ(code_with(other_filter, token), grpc::StatusCode::INVALID_ARGUMENT);
  lv1::ListLoansRequest random = req;
  random.set_sort(lv1::LOAN_SORT_RANDOM);
  random.set_random_seed(1);
  const std::string random_token = Call(random).page().next_page_token();
  ASSERT_FALSE(random_token.empty());
  EXPECT_EQ(code_with(random, random_token), grpc::StatusCode::OK);
  random.set_random_seed(2);
  EXPECT_EQ(code_with(random, random_token), grpc::StatusCode::INVALID_ARGUMENT);
}

}  // namespace
}  // namespace microlend::testing
