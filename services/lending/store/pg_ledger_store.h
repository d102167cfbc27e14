// PgLedgerStore: the ledger's LedgerStore on PostgreSQL, schema `lending` (tables from
// infra/migrations/lending/0002_ledger.sql; the schema must be migrated before Create()).
//
// Thread-safe. A small pool of `pool_size` connections is shared by all callers: each Transact
// and each read borrows one connection for its duration (waiting up to kBorrowTimeout when all
// are busy, then Unavailable), so at most `pool_size` database calls run at once. A connection
// that broke is dropped and replaced by a fresh one on the next borrow.
//
// Isolation: Transact runs at READ COMMITTED; LoadForUpdate takes row locks (FOR UPDATE, in
// ascending id order) on accounts, holds and withdrawals, which is what serialises concurrent
// writers of the same rows. Paged reads (a page and its total_count) run in one read-only
// REPEATABLE READ transaction; Reconcile too, so all its checks see one snapshot.
//
// Statuses, beyond the LedgerStore contract: every libpqxx exception is caught and translated by
// pg::TranslateError (lost connection or unknown commit outcome -> Unavailable, serialization
// failure / deadlock -> Aborted, unique violation -> AlreadyExists, check / foreign-key
// violation -> FailedPrecondition, e.g. a write that breaks an account's flag or touches a
// transfer, which the database refuses; anything else -> Internal). InvalidArgument for a text
// value with a NUL byte (PostgreSQL cannot store it), a time outside years 1..9999, and a page
// limit below 1. Inside Transact a unique key taken by a concurrent transaction after
// LoadForUpdate looked (a client-chosen transfer id, an idempotency record) is AlreadyExists.
//
// Times are stored with microsecond precision: an absl::Time is truncated to whole microseconds
// on write, so what comes back equals what went in only for whole-microsecond times.
//
// Ids: AllocateTransferIds draws from a PostgreSQL sequence (increasing, gaps possible). A Write
// of client-chosen transfer ids beyond the sequence first raises the sequence past them under a
// lock that makes other transactions' id allocation wait until this one commits.
#ifndef MICROLEND_SERVICES_LENDING_STORE_PG_LEDGER_STORE_H_
#define MICROLEND_SERVICES_LENDING_STORE_PG_LEDGER_STORE_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "pg/pool.h"
#include "services/lending/core/ledger_store.h"
#include "services/lending/core/recent_transfers.h"

namespace microlend::lending {


class PgLedgerStore final : public LedgerStore {
 public:
  static constexpr absl::Duration kBorrowTimeout = absl::Seconds(30);

  // Opens one connection to check that the database is reachable (Unavailable otherwise); the
  // others are opened on demand. `pool_size` must be at least 1 (InvalidArgument otherwise).
  static absl::StatusOr<std::unique_ptr<PgLedgerStore>> Create(std::string url, int pool_size);
  ~PgLedgerStore() override;

  PgLedgerStore(const PgLedgerStore&) = delete;
  PgLedgerStore& operator=(const PgLedgerStore&) = delete;

  // FetchUnpublished renders events by reference from `recent` when it holds their transfers,
  // and reads the rest back (ADR 0008), handing the accounts it read to `recent`. Set before the
  // relay starts; `recent` outlives the store.
  void set_recent_transfers(RecentTransfers* recent) { recent_ = recent; }

  absl::Status Transact(const std::function<absl::Status(LedgerTxn&)>& fn) override;

  absl::StatusOr<Account> CreateAccount(const NewAccount& account, absl::Time now,
                                        const IdempotencyRecord& record) override;
  absl::StatusOr<std::optional<IdempotencyRecord>> FindIdempotency(
      const std::string& caller, const std::string& request_id) override;
  absl::StatusOr<std::vector<IdempotencyRecord>> FindIdempotencies(
      const std::vector<std::pair<std::string, std::string>>& keys) override;

  absl::StatusOr<Account> GetAccount(AccountId id) override;
  absl::StatusOr<std::optional<Account>> FindAccountByOwner(OwnerType owner_type,
                                                            const std::string& owner_id,
                                                            AccountKind kind,
                                                            Currency currency) override;
  absl::StatusOr<Page<Account>> ListAccounts(const AccountFilter& filter,
                                             const PageSpec& page) override;
  absl::StatusOr<Hold> GetTransfer(TransferId id) override;
  absl::StatusOr<std::vector<Transfer>> GetTransfers(const std::vector<TransferId>& ids) override;
  absl::StatusOr<Page<Transfer>> ListTransfers(const TransferFilter& filter,
                                               const PageSpec& page) override;
  // Rows are the account's posted and post_pending transfers (filter.account_id is ignored,
  // filter.types narrows further); NotFound when the account does not exist.
  absl::StatusOr<Page<StatementRow>> Statement(AccountId account, const TransferFilter& filter,
                                               const PageSpec& page) override;
  absl::StatusOr<std::vector<HoldId>> ListExpiredHolds(absl::Time now, size_t limit) override;

  absl::StatusOr<Withdrawal> GetWithdrawal(WithdrawalId id) override;
  absl::StatusOr<LoanMoney> GetLoanMoney(LoanId id) override;
  absl::StatusOr<std::vector<std::pair<BasketItem, std::optional<HoldState>>>> ListBasket(
      LenderId lender) override;
  absl::StatusOr<Page<LoanFunder>> ListFunders(LoanId loan, const PageSpec& page) override;
  absl::StatusOr<int64_t> CountFunders(LoanId loan) override;
  absl::StatusOr<std::vector<RepaymentTarget>> GetRepaymentTargets(
      const std::vector<LoanId>& loans) override;
  absl::StatusOr<std::vector<LoanFunder>> ListPositions(AccountId funder) override;
  absl::StatusOr<Page<RepaymentRecord>> ListRepayments(LoanId loan, const PageSpec& page) override;
  absl::StatusOr<std::vector<LoanId>> ListLoansToExpire(absl::Time now, size_t limit) override;
  absl::StatusOr<std::vector<ActiveLoan>> ListActiveLoans(LoanId after, size_t limit) override;
  absl::StatusOr<bool> SetArrears(LoanId id, int64_t expected_repaid_local, bool delinquent,
                                  int32_t days_in_arrears, int64_t arrears_local_minor) override;
  // One statement: funders joined with their loans and, for loans not yet closed, the schedule
  // aggregated per loan (no query per loan).
  absl::StatusOr<std::vector<PortfolioPosition>> ListPortfolio(AccountId funder,
                                                               size_t limit) override;
  absl::StatusOr<Page<Withdrawal>> ListWithdrawals(std::optional<LenderId> lender,
                                                   std::optional<WithdrawalState> state,
                                                   const PageSpec& page) override;

  absl::StatusOr<std::vector<OutboxEvent>> FetchUnpublished(size_t limit) override;
  absl::Status MarkPublished(const std::vector<int64_t>& sequences, absl::Time at) override;
  absl::StatusOr<int64_t> PublishedThrough() override;

  // `currencies` empty = all; a requested currency without accounts still gets (zero) totals,
  // ordered by code. Findings: balance replay and constrained-account ones by account id, then
  // currency sums, then the outbox. Loan overfunding is not checked here (no loans table).
  absl::StatusOr<ReconcileData> Reconcile(const std::vector<Currency>& currencies,
                                          bool replay_balances,
                                          absl::Time outbox_deadline) override;

 private:
  explicit PgLedgerStore(std::unique_ptr<pg::ConnectionPool> pool);

  std::unique_ptr<pg::ConnectionPool> pool_;
  RecentTransfers* recent_ = nullptr;
};

}  // namespace microlend::lending

#endif  // MICROLEND_SERVICES_LENDING_STORE_PG_LEDGER_STORE_H_
