// FakeLoanStore: an in-memory LoanStore for unit tests, faithful to core/loans.h: ids and
// borrower ids from counters starting at 1 (not rolled back), a mutation's loan and idempotency
// record committed together or not at all, Aborted on a stale expected_version, List ordered
// and paged like PgLoanStore (the random order differs from PostgreSQL's but is as fixed per
// seed). Partner ratings come from the FakePartnerStore-like `partners` when given.
// FailNextMutation makes the next Create or Update fail with the status and write nothing.
// UpdateWithPartner needs `partners`: it reads the partner from it (before taking the fake's
// mutex: the fake does not model the partner row lock, whose races are tested on PostgreSQL)
// and the exposure from the fake's own loans (AddToExposure) under the mutex.
// Thread-safe (one mutex; `encode` and `mutate` run under it and must not call the store).
#ifndef MICROLEND_SERVICES_LENDING_TESTING_FAKE_LOAN_STORE_H_
#define MICROLEND_SERVICES_LENDING_TESTING_FAKE_LOAN_STORE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "services/lending/core/catalogue.h"
#include "services/lending/core/loans.h"

namespace microlend::lending {

// Also the catalogue's feed: every write stamps the loan with a counter, and a read returns the
// loans stamped at or after its horizon and the rating of every partner its loans name.
class FakeLoanStore final : public LoanStore, public CatalogueChangeFeed {
 public:
  // `partners` (optional) supplies partner_risk_rating_half_stars on reads.
  explicit FakeLoanStore(PartnerStore* partners = nullptr) : partners_(partners) {}

  absl::StatusOr<std::optional<IdempotencyRecord>> FindIdempotency(
      const std::string& caller, const std::string& request_id) override;
  absl::StatusOr<Loan> Create(const Loan& loan, absl::Time now, const IdempotencyRecord& record,
                              const LoanEncoder& encode) override;
  absl::StatusOr<Loan> Get(LoanId id) override;
  absl::StatusOr<Loan> Update(LoanId id, int64_t expected_version, absl::Time now,
                              const LoanMutator& mutate, const IdempotencyRecord& record,
                              const LoanEncoder& encode) override;
  absl::StatusOr<Loan> UpdateWithPartner(LoanId id, int64_t expected_version, absl::Time now,
                                         const LoanPartnerMutator& mutate,
                                         const IdempotencyRecord& record,
                                         const LoanEncoder& encode) override;
  absl::StatusOr<Page<Loan>> List(const LoanQuery& query) override;

  absl::StatusOr<CatalogueChanges> CatalogueSnapshot() override;
  absl::StatusOr<CatalogueChanges> CatalogueChangesSince(CatalogueHorizon since) override;
  absl::StatusOr<std::vector<Loan>> ReadFullLoans(const std::vector<LoanId>& ids) override;

  // The partner's exposure over the loans held here (for FakePartnerStore::SetExposureSource).
  PartnerExposure ExposureOf(PartnerId partner) const;
  void FailNextMutation(absl::Status status);
  // The next catalogue read (snapshot or changes) fails with `status`.
  void FailNextCatalogueRead(absl::Status status);
  size_t loan_count() const;
  size_t record_count() const;

 private:
  Loan WithRating(Loan loan) const;
  PartnerExposure ExposureLocked(PartnerId partner) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Update's body: `mutate` runs under the mutex on the current loan after the version check.
  absl::StatusOr<Loan> UpdateLocked(LoanId id, int64_t expected_version, absl::Time now,
                                    const std::function<absl::Status(Loan&)>& mutate,
                                    const IdempotencyRecord& record, const LoanEncoder& encode);
  absl::Status Commit(Loan& loan, const IdempotencyRecord& record, const LoanEncoder& encode)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  PartnerStore* partners_;
  mutable absl::Mutex mu_;
  // Catalogue reads: the loans stamped at or after `since` (all FUNDRAISING ones for nullopt).
  absl::StatusOr<CatalogueChanges> ReadCatalogue(std::optional<CatalogueHorizon> since);

  std::map<int64_t, Loan> loans_ ABSL_GUARDED_BY(mu_);
  std::map<int64_t, uint64_t> stamps_ ABSL_GUARDED_BY(mu_);
  uint64_t next_stamp_ ABSL_GUARDED_BY(mu_) = 1;
  std::map<std::pair<std::string, std::string>, IdempotencyRecord> records_ ABSL_GUARDED_BY(mu_);
  int64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  int64_t next_borrower_id_ ABSL_GUARDED_BY(mu_) = 1;
  std::optional<absl::Status> fail_next_ ABSL_GUARDED_BY(mu_);
  std::optional<absl::Status> fail_next_read_ ABSL_GUARDED_BY(mu_);
};

}  // namespace microlend::lending

#endif  // MICROLEND_SERVICES_LENDING_TESTING_FAKE_LOAN_STORE_H_
