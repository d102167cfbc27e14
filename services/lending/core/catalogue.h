// The catalogue of FUNDRAISING loans, in memory (ADR 0017): what a lender browses, answered
// without a database query per search.
//
// FundraisingCatalogue holds every FUNDRAISING loan as a card (LoanView::kCard) with the compact
// facts its filters and sorts read, and answers the LoanQuery searches it Serves(): those over
// FUNDRAISING loans only, the catalogue's default. Everything else (ops listing drafts, a
// partner's own loans in every status) stays with LoanStore::List.
//
// Freshness: a search reflects every change committed before the search began. Before it
// answers, it waits for a read of the feed (CatalogueChangeFeed::ChangesSince) that started after the
// search did; searches that arrive while a read is running share the next one, so under load
// there is at most one read in flight and one queued, whatever the number of searches.
//
// Answers are the same as LoanStore::List's for the same loans: the filters of MatchesQuery, the
// orders of LoanSortKey with ties by ascending id, the cursors of IsAfter, total_count capped at
// count_cap + 1 (here counted exactly, then capped). kRandom orders by RandomSortKey, as
// FakeLoanStore does; PgLoanStore orders it by md5 for the queries it still answers, and a query
// never moves between the two (Serves depends on the statuses only, which a page token keeps).
//
// Thread-safe. The feed must outlive the catalogue.
#ifndef MICROLEND_SERVICES_LENDING_CORE_CATALOGUE_H_
#define MICROLEND_SERVICES_LENDING_CORE_CATALOGUE_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/btree_map.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/ids.h"
#include "services/lending/core/ledger_store.h"
#include "services/lending/core/loans.h"

namespace microlend::lending {

// Where the feed's next read starts. Opaque to the core: the store's own position (PgLoanStore:
// a transaction id horizon). 0 = before everything.
struct CatalogueHorizon {
  uint64_t value = 0;
  friend bool operator==(const CatalogueHorizon&, const CatalogueHorizon&) = default;
};

struct PartnerRating {
  PartnerId partner{0};
  int32_t risk_rating_half_stars = 0;
};

// What a feed read returns: the loans that may have changed (each as it is now, any status; a
// loan no longer FUNDRAISING leaves the catalogue), the partners' ratings that may have changed,
// and where the next read starts. A read may repeat changes an earlier one returned.
struct CatalogueChanges {
  std::vector<Loan> loans;
  std::vector<PartnerRating> partners;
  CatalogueHorizon next;
};

// The seam the catalogue reads through: PgLoanStore in store/, FakeLoanStore in testing/.
// Statuses: Unavailable when the database cannot be read.
class CatalogueChangeFeed {
 public:
  virtual ~CatalogueChangeFeed() = default;
  // Every FUNDRAISING loan and every partner's rating, and the horizon to read changes from.
  virtual absl::StatusOr<CatalogueChanges> CatalogueSnapshot() = 0;
  // Every loan and partner rating changed at or after `since` (at least: a read may return more).
  virtual absl::StatusOr<CatalogueChanges> CatalogueChangesSince(CatalogueHorizon since) = 0;
  // The loans in full (story and schedule included), in the order of `ids`; DataLoss when one
  // is missing (loans are never deleted).
  virtual absl::StatusOr<std::vector<Loan>> ReadFullLoans(const std::vector<LoanId>& ids) = 0;
};

namespace catalogue_internal {
// Where a loan stands in a sort: ascending (keyless, key, id). Loans without a key (no deadline
// under kExpiringSoonest) come last; descending sorts store their key flipped.
struct Rank {
  bool keyless = false;
  uint64_t key = 0;
  int64_t id = 0;
  friend auto operator<=>(const Rank&, const Rank&) = default;
};
}  // namespace catalogue_internal

class FundraisingCatalogue {
 public:
  explicit FundraisingCatalogue(CatalogueChangeFeed* feed) : feed_(feed) {}
  FundraisingCatalogue(const FundraisingCatalogue&) = delete;
  FundraisingCatalogue& operator=(const FundraisingCatalogue&) = delete;

  // Whether List answers `query`: its statuses are FUNDRAISING only (or unset, which means that).
  static bool Serves(const LoanQuery& query);

  // Reads the feed's snapshot; searches wait for it. Call once, before serving.
  absl::Status Load();
  // LoanStore::List's answer for a query Serves() (FailedPrecondition otherwise, or before Load).
  // InvalidArgument for a limit below 1, a negative count cap, a cursor without the key its
  // sort needs; Unavailable when the feed cannot be read.
  absl::StatusOr<Page<Loan>> List(const LoanQuery& query);

  // Loans held now (for tests and logs).
  size_t size() const;

  // How the searches so far found their page (for tests and logs): by walking the sort's order
  // until the page was full, or by ranking every match.
  struct SearchCounts {
    int64_t walked = 0;
    int64_t ranked = 0;
  };
  SearchCounts search_counts() const;

 private:
  using Rank = catalogue_internal::Rank;
  // Slots of loans as bits (bit i of word i / 64 is slot i); words past the end are zero.
  using Bitmap = std::vector<uint64_t>;

  // What a loan's filters read of it, one per slot: 16 bytes. The bitmap indexes below are built
  // from these; the region is tested loan by loan, as the rarest filter with the most values.
  struct Facets {
    uint32_t country = 0;  // interned
    uint32_t region = 0;   // interned, lower-cased
    uint16_t term_months = 0;
    uint8_t sector = 0;
    uint8_t gender = 0;    // 0 without borrowers
    uint8_t interval = 0;  // 0 when unset
    uint8_t rating = 0;    // the partner's, kept current by partner changes
    bool is_group = false;
    bool has_deadline = false;
    friend bool operator==(const Facets&, const Facets&) = default;
  };
  // The facets with a bitmap of slots per value: a search ORs the bitmaps of the values it
  // accepts per facet and ANDs the facets, reading a few kilobytes a facet value, not every loan.
  enum Indexed { kByCountry, kBySector, kByGender, kByInterval, kByRating, kByTerm, kIndexedCount };
  // The sort keys, one column each (LoanSortKey's values).
  enum Key { kNewestUs, kDeadlineUs, kLeftMinor, kUsdMinor, kTrendingMilli, kKeyCount };
  // Every sort but kRandom keeps the loans in its order (LoanSort's value - 1), rank to slot:
  // a search walks it from its cursor and stops once its page is full.
  static constexpr int kOrderCount = 7;
  // The rest of a loan, read only for the loans that pass the bitmaps and only by searches that
  // filter on them (partner, tags), and for the page's cards.
  struct Entry {
    int64_t partner = 0;
    std::shared_ptr<const Loan> card;
  };
  class Filter;

  // Ensures a feed read that started after this call has been applied (see the header comment).
  absl::Status CatchUp();
  bool NotReading() const ABSL_SHARED_LOCKS_REQUIRED(read_mu_) { return !reading_; }
  void Apply(CatalogueChanges changes) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Upsert(const Loan& loan) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Remove(LoanId id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  uint32_t Intern(const std::string& value) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Sets (or clears) slot's bits in the bitmap indexes for facets_[slot].
  void Index(size_t slot, bool set) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The rank of slot's loan in order `order`, from its keys and facets.
  Rank RankIn(int order, size_t slot) const ABSL_SHARED_LOCKS_REQUIRED(mu_);

  CatalogueChangeFeed* const feed_;

  // Reads of the feed, one at a time: started_/finished_ count them, `reading_` while one runs.
  mutable absl::Mutex read_mu_;
  bool loaded_ ABSL_GUARDED_BY(read_mu_) = false;
  bool reading_ ABSL_GUARDED_BY(read_mu_) = false;
  uint64_t started_ ABSL_GUARDED_BY(read_mu_) = 0;
  uint64_t finished_ ABSL_GUARDED_BY(read_mu_) = 0;
  absl::Status last_read_ ABSL_GUARDED_BY(read_mu_);
  CatalogueHorizon horizon_ ABSL_GUARDED_BY(read_mu_);

  // The loans: searches read under a reader lock, feed reads apply under the writer lock.
  mutable absl::Mutex mu_;
  // Parallel columns by slot: facets_[i], ids_[i] and keys_[k][i] are entries_[i]'s loan's.
  // A removed loan's slot is filled by the last one.
  std::vector<Facets> facets_ ABSL_GUARDED_BY(mu_);
  std::vector<int64_t> ids_ ABSL_GUARDED_BY(mu_);
  std::vector<int64_t> keys_[kKeyCount] ABSL_GUARDED_BY(mu_);
  std::vector<Entry> entries_ ABSL_GUARDED_BY(mu_);
  // The bitmap indexes: slots by facet value, and the slots of group loans.
  absl::flat_hash_map<uint32_t, Bitmap> by_[kIndexedCount] ABSL_GUARDED_BY(mu_);
  Bitmap groups_ ABSL_GUARDED_BY(mu_);
  absl::btree_map<Rank, uint32_t> orders_[kOrderCount] ABSL_GUARDED_BY(mu_);
  mutable std::atomic<int64_t> walked_{0}, ranked_{0};
  absl::flat_hash_map<int64_t, size_t> slot_of_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<int64_t, int32_t> rating_of_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, uint32_t> interned_ ABSL_GUARDED_BY(mu_);
};

}  // namespace microlend::lending

#endif  // MICROLEND_SERVICES_LENDING_CORE_CATALOGUE_H_
