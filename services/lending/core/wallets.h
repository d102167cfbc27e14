// Wallets: what a lender does with money, on top of the Ledger. A lender has one wallet per
// currency (owner LENDER, kind LENDER_WALLET, debits must not exceed credits). Money enters from
// and leaves to the currency's external settlement account, and donations go to platform
// revenue; both system accounts are opened on first use.
//
// Statuses: InvalidArgument for a non-positive amount; NotFound when the lender has no wallet
// in that currency; FailedPrecondition (from the ledger: kExceedsCredits) for an overdraft or a
// withdrawal step out of order; plus everything Ledger returns. Thread-safe.
#ifndef MICROLEND_SERVICES_LENDING_CORE_WALLETS_H_
#define MICROLEND_SERVICES_LENDING_CORE_WALLETS_H_

#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "services/lending/core/ledger.h"

namespace microlend::lending {

class Wallets {
 public:
  explicit Wallets(Ledger* ledger) : ledger_(ledger) {}

  // Idempotent by owner key: returns the existing wallet if there is one.
  absl::StatusOr<Account> OpenWallet(LenderId lender, Currency currency);
  absl::StatusOr<Account> FindWallet(LenderId lender, Currency currency);
  absl::StatusOr<AccountId> SettlementAccount(Currency currency);
  absl::StatusOr<AccountId> RevenueAccount(Currency currency);

  LedgerReply Deposit(RequestKey key, LenderId lender, Money amount,
                      std::string external_payment_id, ResultEncoder encoder);
  LedgerReply Donate(RequestKey key, LenderId lender, Money amount, ResultEncoder encoder);
  LedgerReply RequestWithdrawal(RequestKey key, LenderId lender, Money amount,
                                std::string destination, Ledger::WithdrawalEncoder encoder);

  // An account the platform owns or opens for others (loan funding, partner settlement,
  // platform loss, ...): found by its owner key, opened on first use, then cached.
  absl::StatusOr<AccountId> SystemAccount(OwnerType owner_type, const std::string& owner_id,
                                          AccountKind kind, Currency currency);

 private:

  Ledger* ledger_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, AccountId> system_accounts_ ABSL_GUARDED_BY(mu_);
};

}  // namespace microlend::lending

#endif  // MICROLEND_SERVICES_LENDING_CORE_WALLETS_H_
