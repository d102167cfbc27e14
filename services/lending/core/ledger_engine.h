// LedgerEngine: the rules of the ledger as pure functions over an in-memory working set. No I/O,
// no clock (time comes in the context), deterministic. The committer loads a working set for a
// group of batches, applies each batch in turn, and writes what the working set accumulated.
//
// ApplyBatch is all-or-nothing per batch: either every item applies (the working set now holds
// the new totals, holds, transfers and events) or the first failing item is returned as a
// Rejection and the working set is exactly as before the call.
//
// Rules (lending.proto TransferSpec / TransferRejectReason):
// - posted transfer and hold: debit != credit, both exist, same currency as each other and as
//   the amount, amount > 0, code given, LOAN_SHARE/MATCH/DISBURSEMENT/REPAYMENT/REFUND name a
//   loan, memo <= 256 bytes, 0 <= timeout_ms <= 30 days and only on holds;
// - debits_must_not_exceed_credits: debits_posted + debits_pending + amount <= credits_posted
//   (and the mirror for credits_must_not_exceed_debits);
// - a hold adds to debits_pending/credits_pending; posting moves `amount` (<= hold) to posted
//   and releases the whole hold from pending; voiding releases it; a hold resolves once, and a
//   hold past its expires_at counts as expired (resolution rejected, kPendingTransferExpired);
// - a client-chosen id must be new in the ledger and in the batch; later items of the same
//   batch may resolve a hold created by an earlier item;
// - totals stay within int64 (an overflow is kAmountInvalid);
// - only LOAN_SHARE and MATCH credit a loan funding account (kShapeInvalid otherwise), naming
//   the account's loan, which must be loaded (kLoanNotFound), FUNDRAISING (kLoanNotFundraising)
//   and keep credits posted + pending within its USD amount (kLoanOverfunded): a loan is never
//   funded and held beyond its amount.
// - a posted transfer with credit_by_increment (internal) whose credit account is not in the
//   working set credits it by increment: the debit account is checked as usual, the amount
//   must not be pending, and the account's currency and flags are left to the store, which
//   refuses a missing, other-currency or credit-limited account at write (Internal: the loan
//   desk credits only funders' accounts). An account that is loaded is credited as usual.
#ifndef MICROLEND_SERVICES_LENDING_CORE_LEDGER_ENGINE_H_
#define MICROLEND_SERVICES_LENDING_CORE_LEDGER_ENGINE_H_

#include <functional>
#include <optional>
#include <variant>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "services/lending/core/ledger_store.h"
#include "services/lending/core/ledger_types.h"

namespace microlend::lending {

// Accounts, holds and known ids for a group of batches, and what applying them produced.
class WorkingSet {
 public:
  explicit WorkingSet(Loaded loaded);

  const Account* FindAccount(AccountId id) const;
  const Hold* FindHold(HoldId id) const;
  bool TransferIdTaken(TransferId id) const;
  const LoanMoney* FindLoan(LoanId id) const;
  // The loan for a change outside the engine (the loan lifecycle); marks it for writing.
  LoanMoney* MutableLoan(LoanId id);

  // Everything applied so far, ready for LedgerTxn::Write (idempotency and withdrawals are
  // added by the caller).
  CommitSet TakeCommitSet();

  // Equal when every account, hold, known id, and everything accumulated so far are equal (a
  // rejected batch leaves the working set equal to what it was).
  friend bool operator==(const WorkingSet&, const WorkingSet&) = default;

 private:
  friend class LedgerEngine;
  absl::flat_hash_map<AccountId, Account> accounts_;
  absl::flat_hash_map<HoldId, Hold> holds_;
  absl::flat_hash_set<TransferId> taken_ids_;
  std::vector<Transfer> transfers_;
  absl::flat_hash_set<AccountId> touched_accounts_;
  absl::flat_hash_set<HoldId> touched_holds_;
  std::vector<OutboxEvent> events_;
  absl::flat_hash_map<LoanId, LoanMoney> loans_;
  absl::flat_hash_set<LoanId> touched_loans_;
  absl::flat_hash_map<AccountId, CreditIncrement> credit_increments_;
  std::vector<TransferId> funder_credits_;
};

struct BatchContext {
  absl::Time now;
  std::string request_id;
  // Supplies ids for items without a client-chosen one; called once per such item.
  std::function<TransferId()> next_id;
};

class LedgerEngine {
 public:
  // Checks what needs no ledger state: counts (1..kMaxTransfersPerBatch), shapes, amounts,
  // codes, references, timeouts, memo, duplicate client ids in the batch.
  static std::optional<Rejection> ValidateShape(const std::vector<TransferSpec>& specs);

  // Adds to `out` what a batch references, for LoadForUpdate.
  static void CollectReferences(const std::vector<TransferSpec>& specs, LoadRequest* out);

  // How many ids the batch needs from BatchContext::next_id.
  static size_t IdsNeeded(const std::vector<TransferSpec>& specs);

  static std::variant<std::vector<Transfer>, Rejection> ApplyBatch(
      const std::vector<TransferSpec>& specs, const BatchContext& context, WorkingSet& working);

  // The spec that voids an expired hold (used by the expiry sweep).
  static TransferSpec ExpirySpec(HoldId hold);
};

// The outbox event for a committed transfer (JSON payload; event id "transfer-<id>"), with the
// accounts as they are right after it.
OutboxEvent TransferEvent(const Transfer& transfer, const Account& debit, const Account& credit);

// The same event by reference, as the committer writes it: no payload, `ref` holding the
// balances that RenderTransferEvent needs later.
OutboxEvent TransferEventByRef(const Transfer& transfer, const Account& debit, const Account& credit);

// Renders `event` (by reference, of `transfer`) in full: the payload TransferEvent would have
// given. `debit` and `credit` supply the owners (their totals are not used). Returns the event
// with its payload set and `ref` cleared; its sequence is kept.
OutboxEvent RenderTransferEvent(OutboxEvent event, const Transfer& transfer, const Account& debit,
                                const Account& credit);

}  // namespace microlend::lending

#endif  // MICROLEND_SERVICES_LENDING_CORE_LEDGER_ENGINE_H_
