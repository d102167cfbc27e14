// RecentTransfers: the transfers of the last few committed groups, with the accounts each group
// touched, handed from the Ledger's committer to the outbox relay. The relay renders events by
// reference (ADR 0007) from here instead of reading the transfers back from the database it just
// wrote them to (ADR 0008). It is only a cache: whatever it no longer (or never) held — after a
// restart, or when the relay lags by more than the capacity — is read from the store as before.
//
// Holds only committed groups (the committer calls Remember after the commit). Transfers are
// immutable and an account's owner never changes, so what it holds never goes stale; the
// balances an event shows travel with the event itself. Thread-safe.
#ifndef MICROLEND_SERVICES_LENDING_CORE_RECENT_TRANSFERS_H_
#define MICROLEND_SERVICES_LENDING_CORE_RECENT_TRANSFERS_H_

#include <cstddef>
#include <deque>
#include <memory>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "services/lending/core/ledger_types.h"

namespace microlend::lending {

class RecentTransfers {
 public:
  // One committed group, indexed.
  struct Group {
    std::vector<Transfer> transfers;
    absl::flat_hash_map<TransferId, size_t> index;  // into `transfers`
    absl::flat_hash_map<AccountId, Account> accounts;
    const Transfer* FindTransfer(TransferId id) const;
    const Account* FindAccount(AccountId id) const;
  };

  // Keeps the newest groups holding at most `max_transfers` in all (at least the newest group,
  // whatever its size).
  explicit RecentTransfers(size_t max_transfers) : max_transfers_(max_transfers) {}

  // A committed group's transfers and the accounts it touched (every account its transfers name).
  void Remember(std::vector<Transfer> transfers, std::vector<Account> accounts);

  // What it holds now, oldest group first; the groups stay valid while the caller keeps them.
  std::vector<std::shared_ptr<const Group>> Snapshot() const;

  // A transfer from `groups` (newest first) with both its accounts; false when any is missing.
  static bool Find(const std::vector<std::shared_ptr<const Group>>& groups, TransferId id,
                   const Transfer** transfer, const Account** debit, const Account** credit);

 private:
  const size_t max_transfers_;
  mutable absl::Mutex mu_;
  std::deque<std::shared_ptr<const Group>> groups_ ABSL_GUARDED_BY(mu_);
  size_t held_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace microlend::lending

#endif  // MICROLEND_SERVICES_LENDING_CORE_RECENT_TRANSFERS_H_
