// PgPartnerStore: the PartnerStore of core/partners.h on PostgreSQL, schema `lending` (the
// partners table of infra/migrations/lending/0003_partners.sql and the idempotency_records table
// of 0001; the schema must be migrated before Create()).
//
// Thread-safe. Like PgLedgerStore it owns a small pool of `pool_size` connections (opened on
// demand; a call waits up to kBorrowTimeout for a free one, then Unavailable; a broken connection
// is dropped and reopened on the next borrow). The pool is its own, separate from the ledger's.
//
// Transactions: Create and Update run at READ COMMITTED; Update locks the partner row
// (SELECT ... FOR UPDATE) before it checks expected_version and applies the mutator, so
// concurrent updates of one partner serialise and a stale version is Aborted. The partner row
// and its idempotency record commit together. UpdateWithExposure reads the exposure
// (ReadPartnerExposure) after taking that lock, in a statement of its own, so it sees every
// submission or approval committed before (they hold the partner row lock too, see
// LockPartnerRow) and none can commit until it ends. A List page and its total_count are read in one
// REPEATABLE READ read-only transaction.
//
// Statuses, beyond the PartnerStore contract: every libpqxx exception is caught and translated
// by pg::TranslateError (lost connection or unknown commit outcome -> Unavailable, serialization
// failure / deadlock -> Aborted, unique violation -> AlreadyExists, check violation ->
// FailedPrecondition, anything else -> Internal). A name taken by another partner is
// AlreadyExists "a partner named \"X\" exists (id N)"; names compare by PostgreSQL's lower().
// InvalidArgument for text with a NUL byte. Times are stored with microsecond precision.
#ifndef MICROLEND_SERVICES_LENDING_STORE_PG_PARTNER_STORE_H_
#define MICROLEND_SERVICES_LENDING_STORE_PG_PARTNER_STORE_H_

#include <memory>
#include <optional>
#include <string>

#include <pqxx/pqxx>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "pg/pool.h"
#include "services/lending/core/partners.h"

namespace microlend::lending {


class PgPartnerStore final : public PartnerStore {
 public:
  static constexpr absl::Duration kBorrowTimeout = absl::Seconds(30);

  // Opens one connection to check that the database is reachable (Unavailable otherwise) and
  // migrated (FailedPrecondition otherwise). `pool_size` must be at least 1 (InvalidArgument).
  static absl::StatusOr<std::unique_ptr<PgPartnerStore>> Create(std::string url, int pool_size);
  ~PgPartnerStore() override;

  PgPartnerStore(const PgPartnerStore&) = delete;
  PgPartnerStore& operator=(const PgPartnerStore&) = delete;

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
  // One aggregate statement over the partner's loans (loans_partner_idx).
  absl::StatusOr<PartnerLoanTotals> LoanTotals(PartnerId id) override;

 private:
  explicit PgPartnerStore(std::unique_ptr<pg::ConnectionPool> pool);
  absl::StatusOr<Partner> UpdateImpl(PartnerId id, int64_t expected_version, absl::Time now,
                                     bool read_exposure, const PartnerExposureMutator& mutate,
                                     const IdempotencyRecord& record,
                                     const PartnerEncoder& encode);

  std::unique_ptr<pg::ConnectionPool> pool_;
};

// The partner row, locked in `tx` until it ends: kUpdate (FOR UPDATE) for a change of the
// partner, kLoanTransition (FOR NO KEY UPDATE) for a loan transition that must see the partner
// and its exposure unchanged until it commits (PgLoanStore::UpdateWithPartner). The two conflict
// with each other and themselves, so transitions and updates of one partner serialise; neither
// blocks readers, and kLoanTransition lets loans referencing the partner be inserted meanwhile.
// NotFound when there is no such partner.
enum class PartnerRowLock { kUpdate, kLoanTransition };
absl::StatusOr<Partner> LockPartnerRow(pqxx::transaction_base& tx, PartnerId id,
                                       PartnerRowLock lock);
// The partner's exposure (core/partners.h) in one statement over its loans in REVIEW,
// FUNDRAISING, FUNDED, PAYING_BACK and DEFAULTED (the partial index loans_partner_open_idx of
// 0007). Call it after LockPartnerRow: at READ COMMITTED the statement's snapshot then includes
// every transition committed under the lock before.
PartnerExposure ReadPartnerExposure(pqxx::transaction_base& tx, PartnerId id);

}  // namespace microlend::lending

#endif  // MICROLEND_SERVICES_LENDING_STORE_PG_PARTNER_STORE_H_
