// PgLoanStore: the LoanStore of core/loans.h on PostgreSQL, schema `lending` (the loans and
// loan_schedule_entries tables of infra/migrations/lending/0004_loans.sql and the
// idempotency_records table of 0001; the schema must be migrated before Create()).
//
// Thread-safe. Owns its own pool of `pool_size` connections (opened on demand; a borrow waits up
// to kBorrowTimeout, then Unavailable).
//
// Transactions: Create and Update run at READ COMMITTED; Update locks the loan row
// (SELECT ... FOR UPDATE) before it checks expected_version and applies the mutator, then
// rewrites the row, replaces the schedule entries and inserts the idempotency record in the same
// transaction. UpdateWithPartner (submission, review) then also locks the partner row (FOR NO
// KEY UPDATE: loan first, then partner, the order every loan transition takes; the ledger locks
// loans only and partner updates lock only the partner) and reads the partner's exposure.
// A List page, its schedules and its (capped) total_count are read by one statement, so from
// one snapshot (a second statement, with its own snapshot, only past the end of the loans with a
// deadline under kExpiringSoonest, or to count for an empty page); the partner rating is joined
// from partners at read time. List statements are prepared on each connection (at most
// kMaxPreparedStatements different ones; later ones are planned each time), and the pool's
// connections run with jit off.
//
// Statuses, beyond the LoanStore contract: libpqxx exceptions are translated by
// pg::TranslateError (lost connection -> Unavailable, serialization failure -> Aborted, unique
// violation -> AlreadyExists, check violation -> FailedPrecondition, else Internal); a foreign
// key violation on partner_id is NotFound. InvalidArgument for text with a NUL byte. DataLoss
// when a stored row does not decode.
#ifndef MICROLEND_SERVICES_LENDING_STORE_PG_LOAN_STORE_H_
#define MICROLEND_SERVICES_LENDING_STORE_PG_LOAN_STORE_H_

#include <functional>
#include <memory>
#include <optional>
#include <pqxx/pqxx>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "pg/pool.h"
#include "services/lending/core/catalogue.h"
#include "services/lending/core/loans.h"

namespace microlend::lending {

class PgLoanStore final : public LoanStore, public CatalogueChangeFeed {
 public:
  static constexpr absl::Duration kBorrowTimeout = absl::Seconds(30);

  // Unavailable when the database is unreachable, FailedPrecondition when it is not migrated,
  // InvalidArgument for a pool size below 1.
  static absl::StatusOr<std::unique_ptr<PgLoanStore>> Create(std::string url, int pool_size);
  ~PgLoanStore() override;

  PgLoanStore(const PgLoanStore&) = delete;
  PgLoanStore& operator=(const PgLoanStore&) = delete;

  absl::StatusOr<std::optional<IdempotencyRecord>> FindIdempotency(
      const std::string& caller, const std::string& request_id) override;
  absl::StatusOr<Loan> Create(const Loan& loan, absl::Time now, const IdempotencyRecord& record,
                              const LoanEncoder& encode) override;
  absl::StatusOr<Loan> Get(LoanId id) override;
  absl::StatusOr<Loan> Update(LoanId id, int64_t expected_version, absl::Time now,
                              const LoanMutator& mutate, const IdempotencyRecord& record,
                              const LoanEncoder& encode) override;
  // Locks the loan's partner row with PartnerRowLock::kLoanTransition after the loan row, then
  // reads the partner and ReadPartnerExposure (store/pg_partner_store.h) in the same transaction.
  absl::StatusOr<Loan> UpdateWithPartner(LoanId id, int64_t expected_version, absl::Time now,
                                         const LoanPartnerMutator& mutate,
                                         const IdempotencyRecord& record,
                                         const LoanEncoder& encode) override;
  absl::StatusOr<Page<Loan>> List(const LoanQuery& query) override;

  // The catalogue's feed (ADR 0017, migration 0014): one statement each, so one snapshot for
  // the loans, the partners' ratings and the next horizon (that snapshot's xmin: every
  // transaction below it had ended, so every later write of a stamped row carries an id at or
  // above it). The horizon is the xid8 value.
  absl::StatusOr<CatalogueChanges> CatalogueSnapshot() override;
  absl::StatusOr<CatalogueChanges> CatalogueChangesSince(CatalogueHorizon since) override;
  absl::StatusOr<std::vector<Loan>> ReadFullLoans(const std::vector<LoanId>& ids) override;

 private:
  using TxnMutator = std::function<absl::Status(pqxx::transaction_base&, Loan&)>;

  PgLoanStore(std::unique_ptr<pg::ConnectionPool> pool,
              std::unique_ptr<pg::ConnectionPool> feed_pool);
  // Update's transaction: `mutate` runs on the locked loan after the version check.
  absl::StatusOr<Loan> UpdateImpl(LoanId id, int64_t expected_version, absl::Time now,
                                  const TxnMutator& mutate, const IdempotencyRecord& record,
                                  const LoanEncoder& encode);

  // Distinct List statements prepared on the connections: they differ by the filters a search
  // sets, its sort, page size and whether it has a cursor, so a few dozen cover the traffic.
  static constexpr size_t kMaxPreparedStatements = 64;

  // The loans (as cards) and partner ratings `sql` reads with `params`, with its horizon.
  absl::StatusOr<CatalogueChanges> ReadCatalogue(
      pqxx::transaction_base& tx, const std::string& sql,
      const std::vector<std::optional<std::string>>& params);
  // Runs `sql` as a statement prepared on tx's connection, so that PostgreSQL plans it once per
  // connection (and keeps a generic plan when it is no worse than the custom ones): planning a
  // catalogue statement costs about as much as running it.
  pqxx::result Exec(pqxx::transaction_base& tx, const std::string& sql,
                    const std::vector<std::optional<std::string>>& params);

  std::unique_ptr<pg::ConnectionPool> pool_;
  // One connection for the catalogue's change feed (one read at a time), on generic plans
  // (plan_cache_mode force_generic_plan): planning the change read each time cost 0.5 ms, more
  // than running it, and a search waits for it.
  std::unique_ptr<pg::ConnectionPool> feed_pool_;
  absl::Mutex mu_;
  absl::flat_hash_set<std::string> prepared_ ABSL_GUARDED_BY(mu_);
};

}  // namespace microlend::lending

#endif  // MICROLEND_SERVICES_LENDING_STORE_PG_LOAN_STORE_H_
