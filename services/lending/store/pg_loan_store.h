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
// A List page, its schedules and its total_count are read in one REPEATABLE READ
// read-only transaction; the partner rating is joined from partners at read time.
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
#include <string>

#include <pqxx/pqxx>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "pg/pool.h"
#include "services/lending/core/loans.h"

namespace microlend::lending {

class PgLoanStore final : public LoanStore {
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

 private:
  using TxnMutator = std::function<absl::Status(pqxx::transaction_base&, Loan&)>;

  explicit PgLoanStore(std::unique_ptr<pg::ConnectionPool> pool);
  // Update's transaction: `mutate` runs on the locked loan after the version check.
  absl::StatusOr<Loan> UpdateImpl(LoanId id, int64_t expected_version, absl::Time now,
                                  const TxnMutator& mutate, const IdempotencyRecord& record,
                                  const LoanEncoder& encode);

  std::unique_ptr<pg::ConnectionPool> pool_;
};

}  // namespace microlend::lending

#endif  // MICROLEND_SERVICES_LENDING_STORE_PG_LOAN_STORE_H_
