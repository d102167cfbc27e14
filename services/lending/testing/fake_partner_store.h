// FakePartnerStore: an in-memory PartnerStore for unit tests, faithful to the contract in
// core/partners.h: names unique ignoring (ASCII) case, ids from a counter starting at 1 that is
// not rolled back, a mutation's partner row and idempotency record committed together or not at
// all, Aborted on a stale expected_version. FailNextMutation makes the next Create or Update
// return the given status without writing anything (e.g. Unavailable for "outcome unknown").
// It holds no loans: LoanTotals of a known partner is all zeros unless a test set them with
// SetLoanTotals (the arithmetic on them is core/loan_stats.h's, tested on its own), and its
// exposure (UpdateWithExposure) is all zeros unless SetExposureSource names where to read it
// (e.g. FakeLoanStore::ExposureOf); the source is called before the fake's mutex is taken.
// Thread-safe (one mutex; `encode` and `mutate` run under it and must not call the store).
#ifndef MICROLEND_SERVICES_LENDING_TESTING_FAKE_PARTNER_STORE_H_
#define MICROLEND_SERVICES_LENDING_TESTING_FAKE_PARTNER_STORE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "services/lending/core/partners.h"

namespace microlend::lending {

class FakePartnerStore final : public PartnerStore {
 public:
  absl::StatusOr<std::optional<IdempotencyRecord>> FindIdempotency(
      const std::string& caller, const std::string& request_id) override;
  absl::StatusOr<Partner> Create(const NewPartner& partner, absl::Time now,
                                 const IdempotencyRecord& record,
                                 const PartnerEncoder& encode) override;
  absl::StatusOr<Partner> Get(PartnerId id) override;
  absl::StatusOr<Page<Partner>> List(const PartnerFilter& filter, const PageSpec& page) override;
  absl::StatusOr<Partner> Update(PartnerId id, int64_t expected_version, absl::Time now,
                                 const PartnerMutator& mutate, const IdempotencyRecord& record,
                                 const PartnerEncoder& encode) override;
  absl::StatusOr<Partner> UpdateWithExposure(PartnerId id, int64_t expected_version,
                                             absl::Time now, const PartnerExposureMutator& mutate,
                                             const IdempotencyRecord& record,
                                             const PartnerEncoder& encode) override;
  absl::StatusOr<PartnerLoanTotals> LoanTotals(PartnerId id) override;

  void FailNextMutation(absl::Status status);
  void SetLoanTotals(PartnerId id, const PartnerLoanTotals& totals);
  using ExposureSource = std::function<PartnerExposure(PartnerId)>;
  void SetExposureSource(ExposureSource source);
  size_t partner_count() const;
  size_t record_count() const;

 private:
  // AlreadyExists when another partner than `self` has `name` (ignoring case).
  absl::Status CheckNameFree(const std::string& name, PartnerId self) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status CheckRecordFree(const IdempotencyRecord& record) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::optional<absl::Status> TakeFailure() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  std::map<int64_t, Partner> partners_ ABSL_GUARDED_BY(mu_);
  std::map<std::pair<std::string, std::string>, IdempotencyRecord> records_ ABSL_GUARDED_BY(mu_);
  int64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  std::optional<absl::Status> fail_next_ ABSL_GUARDED_BY(mu_);
  std::map<int64_t, PartnerLoanTotals> loan_totals_ ABSL_GUARDED_BY(mu_);
  ExposureSource exposure_source_ ABSL_GUARDED_BY(mu_);
};

}  // namespace microlend::lending

#endif  // MICROLEND_SERVICES_LENDING_TESTING_FAKE_PARTNER_STORE_H_
