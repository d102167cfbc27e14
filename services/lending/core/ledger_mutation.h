// Mutation: one unit of work for the Ledger's committer (ledger.h). The committer collects what
// a group of mutations touches (Collect), loads and locks it in one transaction, applies each
// mutation in queue order against the shared Group state, and writes what they produced in the
// same transaction; each caller is answered only after the commit.
//
// Contract for Apply(): decide from the Group only (it holds everything Collect asked for, as of
// this transaction, plus what earlier mutations of the group changed); when refusing, leave the
// Group exactly as it was (the engine guarantees this for ledger batches, so apply the ledger
// batch last or only after every other check passed); never block or do I/O.
// Kinds: ledger batches and withdrawal steps (ledger.cc), the loan lifecycle (loan_desk.cc).
#ifndef MICROLEND_SERVICES_LENDING_CORE_LEDGER_MUTATION_H_
#define MICROLEND_SERVICES_LENDING_CORE_LEDGER_MUTATION_H_

#include <functional>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "services/lending/core/ledger.h"
#include "services/lending/core/ledger_engine.h"

namespace microlend::lending {

class Mutation {
 public:
  virtual ~Mutation() = default;
  virtual void Collect(LoadRequest* out) const = 0;
  virtual size_t IdsNeeded() const = 0;
  virtual size_t TransferCount() const = 0;
  virtual bool NeedsWithdrawalId() const { return false; }
  virtual bool NeedsRepaymentId() const { return false; }

  struct Group {
    WorkingSet working;
    absl::flat_hash_map<WithdrawalId, Withdrawal> withdrawals;
    std::vector<Withdrawal> changed_withdrawals;
    // Ids allocated for the group, lowest at the back: a mutation takes back() and pops it once
    // it succeeds, so ids follow the order of application.
    std::vector<WithdrawalId> fresh_withdrawal_ids;
    std::vector<RepaymentId> fresh_repayment_ids;
    // Funders of the loans asked for in LoadRequest::loan_funders, by loan then account.
    absl::flat_hash_map<LoanId, absl::flat_hash_map<AccountId, LoanFunder>> funders;
    std::vector<LoanFunder> funder_additions;  // shares on loans whose funders were not loaded
    // Funder rows to write whole (changed this group), by (loan, account).
    absl::flat_hash_map<std::pair<LoanId, AccountId>, LoanFunder> changed_funders;
    absl::flat_hash_map<LenderId, std::vector<BasketItem>> baskets;
    std::vector<BasketItem> basket_inserts;
    std::vector<std::pair<LenderId, LoanId>> basket_deletes;
    std::vector<RepaymentRecord> repayments;
    // Funder books of the loans asked for in LoadRequest::loan_books (those that exist), and the
    // loans whose book a repayment of this group changed.
    absl::flat_hash_map<LoanId, FunderBook> books;
    absl::flat_hash_set<LoanId> changed_books;
    std::vector<LoanId> books_to_open;  // loans disbursed in this group
    // Open holds on the loans of LoadRequest::loans_open_holds.
    absl::flat_hash_map<LoanId, std::vector<HoldId>> open_holds;
  };
  virtual LedgerReply Apply(Group& group, const BatchContext& context) = 0;

  RequestKey key;
  std::function<void(LedgerReply)> done;
  LedgerReply reply;
};

// Applies `specs` through the engine as one all-or-nothing batch; on success the reply has the
// transfers and the payload from `encoder`, on rejection the status naming the item.
LedgerReply ApplySpecs(const std::vector<TransferSpec>& specs, Mutation::Group& group,
                       const BatchContext& context, const ResultEncoder& encoder);

// What committed transfers mean for loans: a posted share adds to its funder's row; a loan's
// funded and held amounts follow its funding account; a loan whose shares reach its amount
// becomes FUNDED (and, when pre-disbursed, is disbursed to its partner at once).
void FollowLoanTransfers(Mutation::Group& group, const std::vector<Transfer>& transfers,
                         const BatchContext& context);

}  // namespace microlend::lending

#endif  // MICROLEND_SERVICES_LENDING_CORE_LEDGER_MUTATION_H_
