// FakeLedgerStore: an in-memory LedgerStore for unit tests, faithful to the contract in
// core/ledger_store.h, with hooks to make the next call fail and accessors to inspect what was
// committed.
//
// Semantics worth knowing:
// - Transactions are serialized (one at a time). Transact runs fn against the committed state;
//   the first Write copies it into a staged state, later loads in the same transaction see the
//   staged writes, and the staged state is published only when fn returns OK and every Write
//   succeeded. A failed Write poisons the transaction, as in PostgreSQL: Transact then returns
//   that Write's status even if fn ignores it and returns OK.
// - Write is checked like the database would: a transfer id, an idempotency key or an event id
//   already present is AlreadyExists; a transfer or account update naming an unknown account is
//   FailedPrecondition (a foreign key). Account updates change the four totals only.
// - Ids: transfer, withdrawal and account ids come from counters starting at 1 that skip ids
//   already taken (client-chosen ones included). Like database sequences, ids handed out in a
//   rolled-back transaction are not reused. Event sequences are assigned at Write (1, 2, ...)
//   and only committed ones count.
// - Reads (Get*, List*, Find*, Statement, Reconcile, FetchUnpublished) see one consistent
//   committed snapshot and never wait for a running transaction.
// - Pages: accounts and withdrawals by id, statements by transfer id (cursor: the id);
//   ListTransfers in commit order (cursor: the 1-based commit position). LoadForUpdate returns
//   rows sorted by id; a hold id that names a non-pending transfer is absent from `holds`.
// - CreateAccount and MarkPublished are transactions of their own; FailNextTransact does not
//   affect them. Reconcile has no loans, so it never reports kLoanOverfunded.
// Thread-safe. fn must not call Transact, CreateAccount, MarkPublished or the test hooks of the
// same store (they wait for the running transaction); plain reads from fn are fine.
#ifndef MICROLEND_SERVICES_LENDING_TESTING_FAKE_LEDGER_STORE_H_
#define MICROLEND_SERVICES_LENDING_TESTING_FAKE_LEDGER_STORE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "services/lending/core/ledger_store.h"

namespace microlend::lending {

class FakeLedgerStore final : public LedgerStore {
 public:
  FakeLedgerStore();
  ~FakeLedgerStore() override;

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
  absl::StatusOr<Page<StatementRow>> Statement(AccountId account, const TransferFilter& filter,
                                               const PageSpec& page) override;
  absl::StatusOr<std::vector<HoldId>> ListExpiredHolds(absl::Time now, size_t limit) override;
  absl::StatusOr<Withdrawal> GetWithdrawal(WithdrawalId id) override;
  // Loans are not modelled: no loan is found and every loan list is empty.
  absl::StatusOr<LoanMoney> GetLoanMoney(LoanId id) override;
  absl::StatusOr<std::vector<std::pair<BasketItem, std::optional<HoldState>>>> ListBasket(
      LenderId lender) override;
  absl::StatusOr<Page<LoanFunder>> ListFunders(LoanId loan, const PageSpec& page) override;
  absl::StatusOr<int64_t> CountFunders(LoanId loan) override;
  // Like GetLoanMoney, finds no loan: none.
  absl::StatusOr<std::vector<RepaymentTarget>> GetRepaymentTargets(
      const std::vector<LoanId>& loans) override;
  absl::StatusOr<std::vector<LoanFunder>> ListPositions(AccountId funder) override;
  absl::StatusOr<Page<RepaymentRecord>> ListRepayments(LoanId loan, const PageSpec& page) override;
  absl::StatusOr<std::vector<LoanId>> ListLoansToExpire(absl::Time now, size_t limit) override;
  absl::StatusOr<std::vector<ActiveLoan>> ListActiveLoans(LoanId after, size_t limit) override;
  absl::StatusOr<bool> SetArrears(LoanId id, int64_t expected_repaid_local, bool delinquent,
                                  int32_t days_in_arrears, int64_t arrears_local_minor) override;
  // Empty: loans are not modelled (the portfolio is tested against PostgreSQL; its arithmetic is
  // core/loan_stats.h's, unit-tested on its own).
  absl::StatusOr<std::vector<PortfolioPosition>> ListPortfolio(AccountId funder,
                                                               size_t limit) override;
  absl::StatusOr<Page<Withdrawal>> ListWithdrawals(std::optional<LenderId> lender,
                                                   std::optional<WithdrawalState> state,
                                                   const PageSpec& page) override;
  absl::StatusOr<std::vector<OutboxEvent>> FetchUnpublished(size_t limit) override;
  absl::Status MarkPublished(const std::vector<int64_t>& sequences, absl::Time at) override;
  absl::StatusOr<int64_t> PublishedThrough() override;
  absl::StatusOr<ReconcileData> Reconcile(const std::vector<Currency>& currencies,
                                          bool replay_balances,
                                          absl::Time outbox_deadline) override;

  // Test hooks. The next Transact returns `status` without running fn; the next Write (in any
  // transaction) returns `status` without writing.
  void FailNextTransact(absl::Status status);
  void FailNextWrite(absl::Status status);
  // Adds `delta_credits_posted` to an account's stored credits_posted behind the ledger's back,
  // so that Reconcile has something to find. Crashes if the account does not exist.
  void CorruptAccountForTest(AccountId id, int64_t delta_credits_posted);

  // Committed state, for assertions: transfers in commit order, events by sequence,
  // idempotency records by (caller, request_id).
  std::vector<Transfer> AllTransfers();
  std::vector<OutboxEvent> AllEvents();
  std::vector<IdempotencyRecord> AllIdempotency();
  // Transactions committed through Transact so far.
  int64_t CommittedTransactions();

  struct State;  // the committed ledger; defined in the .cc

 private:
  class Txn;
  int64_t next_repayment_id_ = 1;

  std::shared_ptr<const State> Snapshot() const ABSL_LOCKS_EXCLUDED(mu_);
  // The committed state, for a writer to change in place (copied first while a reader still
  // holds a snapshot of it).
  State& MutableState() ABSL_EXCLUSIVE_LOCKS_REQUIRED(txn_mu_, mu_);
  std::optional<absl::Status> TakeFailure(std::optional<absl::Status>* slot)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Held for a whole transaction and by every other writer: writers run one at a time.
  absl::Mutex txn_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  int64_t next_transfer_id_ ABSL_GUARDED_BY(txn_mu_) = 1;
  int64_t next_withdrawal_id_ ABSL_GUARDED_BY(txn_mu_) = 1;
  int64_t next_account_id_ ABSL_GUARDED_BY(txn_mu_) = 1;
  int64_t committed_transactions_ ABSL_GUARDED_BY(mu_) = 0;

  // Guards the pointer to the committed state and the failure hooks. A state handed out as a
  // snapshot is never changed again: writers copy it first.
  mutable absl::Mutex mu_;
  std::shared_ptr<State> state_ ABSL_GUARDED_BY(mu_);
  std::optional<absl::Status> fail_next_transact_ ABSL_GUARDED_BY(mu_);
  std::optional<absl::Status> fail_next_write_ ABSL_GUARDED_BY(mu_);
};

}  // namespace microlend::lending

#endif  // MICROLEND_SERVICES_LENDING_TESTING_FAKE_LEDGER_STORE_H_
