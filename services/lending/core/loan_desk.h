// LoanDesk: the loan lifecycle where money moves — lending (baskets, checkout, lend now),
// disbursement, repayments, refunds, and the lifecycle sweep (expiry, arrears, default). Every
// operation is a Mutation of the Ledger's committer (ADR 0005): the loan row is locked and
// changed in the same transaction as its transfers, so a loan's status and amounts never
// disagree with the ledger.
//
// Money flows (all USD, accounts opened on first use):
//   share:        lender wallet -> loan funding (LOAN_SHARE; a basket item is a hold)
//   disbursement: loan funding -> partner settlement (DISBURSEMENT), FUNDED -> PAYING_BACK
//   repayment:    partner settlement -> each funder (REPAYMENT), split by SplitRepayment on the
//                 cumulative entitlement; after a default the credited amount is first recovered
//                 from the loss account (WRITE_OFF reversal)
//   end with currency loss: partner settlement -> platform loss (CURRENCY_LOSS), the funders'
//                 loss that the partner's coverage did not absorb
//   default:      partner settlement -> platform loss (WRITE_OFF), the principal still owed
//   expiry/refund: loan funding -> each funder (REFUND); open holds on the loan are voided
//
// Currency loss (per loan, cumulative): expected = the repaid local principal at the posting rate
// (half-even), received = the sum over repayments of (its expected USD + its local amount at the
// settlement rate − at the posting rate), so a repayment at the posting rate loses nothing to
// rounding; loss = max(0,
// expected - received); the partner covers min(loss, expected x coverage_bps / 10000, rounded
// down); funders bear the rest. Each repayment credits funders the change in (expected - borne
// loss), so the totals over a loan are exact whatever the order of rates.
//
// Rules and codes (lending.proto): shares are USD multiples of the share unit (25.00), or exactly
// the remaining amount when less than one unit remains (InvalidArgument); a loan not FUNDRAISING
// or a share above what remains is FailedPrecondition; so is an overdraft. A basket holds a
// share for basket_hold_ttl, without a hold when the loan's fundraising ends within
// no_hold_within. Overpayment and repayments of a loan not PAYING_BACK/DEFAULTED are
// FailedPrecondition. Thread-safe; everything injected must outlive the desk.
#ifndef MICROLEND_SERVICES_LENDING_CORE_LOAN_DESK_H_
#define MICROLEND_SERVICES_LENDING_CORE_LOAN_DESK_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "services/lending/core/ledger.h"
#include "services/lending/core/loans.h"
#include "services/lending/core/partners.h"
#include "services/lending/core/wallets.h"

namespace microlend::lending {

struct LoanDeskOptions {
  int64_t share_unit_minor = 2'500;
  absl::Duration basket_hold_ttl = absl::Minutes(45);
  absl::Duration no_hold_within = absl::Hours(6);
  size_t max_basket_items = 50;
  int32_t default_after_days = 180;
  size_t max_bulk_repayments = 300;
  size_t default_sweep_items = 10'000;
};

// What an operation produced, for the adapter's encoder (the remembered reply payload).
struct DeskOutcome {
  std::vector<Transfer> shares;          // LendNow, Checkout
  std::optional<Transfer> donation;      // Checkout
  std::optional<BasketItem> item;        // AddToBasket
  std::vector<BasketItem> basket;        // AddToBasket, RemoveFromBasket (after the change)
  std::optional<LoanMoney> loan;         // disbursement, repayment, refund
  std::optional<Transfer> transfer;      // the disbursement
  std::optional<RepaymentRecord> repayment;
  int64_t refunded_minor = 0;
  int32_t refunded_accounts = 0;
  int32_t voided_holds = 0;
};
using DeskEncoder = std::function<std::string(const DeskOutcome&)>;

struct RepaymentInput {
  LoanId loan_id{0};
  Money local_amount = Money::Zero(Currency::Usd());
  std::string settlement_fx_rate;
  absl::CivilDay repaid_on;
  std::string partner_reference;
};

// One repayment of a bulk post (LoanDesk::PostRepayments): its own request, its own outcome.
struct RepaymentItem {
  RequestKey key;
  RepaymentInput input;
  DeskEncoder encode;
};

struct SweepResult {
  absl::Time as_of;
  int32_t holds_expired = 0;
  int32_t loans_expired = 0;
  int32_t loans_flagged_delinquent = 0;
  int32_t loans_cleared_delinquent = 0;
  int32_t loans_defaulted = 0;
  bool more_remaining = false;
};

// Arrears of a loan as of `today`: the oldest due date whose cumulative principal is not yet
// covered by `repaid_local` (strictly before today) gives days_in_arrears; arrears_local is the
// principal due before today and unpaid.
struct Arrears {
  int32_t days = 0;
  int64_t local_minor = 0;
};
Arrears ComputeArrears(const std::vector<ScheduleEntry>& schedule, int64_t repaid_local_minor,
                       absl::CivilDay today);

// The USD side of one repayment (see the header comment); pure, for tests.
struct RepaymentUsd {
  int64_t expected_minor = 0;   // this repayment's change in cumulative expected
  int64_t received_minor = 0;   // local / settlement rate
  int64_t credited_minor = 0;   // to funders
  int64_t coverage_minor = 0;   // change in cumulative partner coverage
  int64_t loss_minor = 0;       // change in cumulative funder loss (negative: recovered)
};
absl::StatusOr<RepaymentUsd> ComputeRepaymentUsd(const LoanMoney& loan, int64_t local_minor,
                                                 std::string_view settlement_fx_rate,
                                                 int32_t coverage_bps);

class LoanDesk {
 public:
  LoanDesk(Ledger* ledger, Wallets* wallets, PartnerStore* partners, const Clock* clock,
           LoanDeskOptions options = {});

  LedgerReply AddToBasket(RequestKey key, LenderId lender, LoanId loan, Money amount,
                          DeskEncoder encode);
  LedgerReply RemoveFromBasket(RequestKey key, LenderId lender, LoanId loan, DeskEncoder encode);
  // The basket with each item's hold state (expired when the hold is no longer pending or its
  // time is up).
  struct BasketLine {
    BasketItem item;
    bool expired = false;
  };
  absl::StatusOr<std::vector<BasketLine>> GetBasket(LenderId lender);
  LedgerReply Checkout(RequestKey key, LenderId lender, std::optional<Money> donation,
                       DeskEncoder encode);
  LedgerReply LendNow(RequestKey key, LenderId lender, LoanId loan, Money amount,
                      DeskEncoder encode);

  // `partner`: the caller's partner (nullopt for ops); another partner's loan is NotFound.
  LedgerReply ReportDisbursement(RequestKey key, std::optional<PartnerId> partner, LoanId loan,
                                 absl::CivilDay disbursed_on, Money local_amount,
                                 DeskEncoder encode);
  LedgerReply PostRepayment(RequestKey key, std::optional<PartnerId> partner,
                            const RepaymentInput& input, DeskEncoder encode);
  // Each item as PostRepayment would post it, but all are queued to the committer before any is
  // awaited: they commit together in as few transactions as the group cap allows (one for a
  // partner's bulk of small loans, instead of one each), each applied after the items before it
  // (two repayments of one loan apply in item order). Each item is checked, replayed,
  // committed or refused on its own; one reply per item, in order.
  std::vector<LedgerReply> PostRepayments(std::optional<PartnerId> partner,
                                          std::vector<RepaymentItem> items);
  LedgerReply RefundLoan(RequestKey key, LoanId loan, std::string detail, DeskEncoder encode);

  // One pass as of the clock: expires basket holds past their time, expires loans past their
  // fundraising deadline (refunds and voids), recomputes arrears, defaults loans still
  // delinquent default_after_days after their last due date. Each item commits on its own.
  // At most `max_items` items (0: options().default_sweep_items). The arrears walk goes on from
  // the loan where the previous pass stopped, around to where it started, so that passes
  // smaller than the number of active loans still reach every loan in turn. Passes run one at
  // a time.
  absl::StatusOr<SweepResult> RunSweep(size_t max_items);

  const LoanDeskOptions& options() const { return options_; }

 private:
  // LendNow (a posted share) and AddToBasket (a hold, or none near the deadline): the same
  // checks before the committer, the same mutation.
  LedgerReply Lend(RequestKey key, LenderId lender, LoanId loan, Money amount, bool to_basket,
                   DeskEncoder encode);
  // The loan's funding and settlement accounts, opened on first use.
  absl::Status EnsureAccounts(const LoanMoney& loan, AccountId* funding, AccountId* settlement);
  // PostRepayment's checks before the committer, on what PostRepayments read for every item at
  // once: `target` (null when the store did not find the loan) and the partners read so far
  // (`owners`, by id, read on first use). The mutation to submit, or a refusal to give at once.
  std::variant<LedgerReply, std::unique_ptr<Mutation>> PrepareRepayment(
      RequestKey key, const std::optional<PartnerId>& partner, const RepaymentInput& input,
      DeskEncoder encode, const RepaymentTarget* target,
      absl::flat_hash_map<PartnerId, absl::StatusOr<Partner>>& owners);
  LedgerReply Expire(LoanId loan);
  LedgerReply Default(LoanId loan);

  Ledger* ledger_;
  Wallets* wallets_;
  PartnerStore* partners_;
  const Clock* clock_;
  LoanDeskOptions options_;
  absl::Mutex sweep_mu_;
  // The last active loan the previous pass's arrears walk reached (0: start from the first).
  LoanId sweep_after_ ABSL_GUARDED_BY(sweep_mu_){0};
};

}  // namespace microlend::lending

#endif  // MICROLEND_SERVICES_LENDING_CORE_LOAN_DESK_H_
