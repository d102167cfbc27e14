// RecentTransfers: the transfers of the last committed groups, with the accounts each group
// touched, handed from the Ledger's committer to the outbox relay. The relay renders events by
// reference (ADR 0007) from here instead of reading the transfers back from the database it just
// wrote them to (ADR 0008). It is only a cache: whatever it no longer (or never) held — after a
// restart, or when the relay lags by more than the capacity — is read from the store as before.
//
// Holds only committed groups (the committer calls Remember after the commit). Remember only
// queues the group: indexing it (and dropping the oldest groups) is left to the next lookup, so
// the work happens on the relay's thread, not on the committer's, which every commit waits for.
// Transfers are immutable and an account's owner never changes, so what it holds never goes stale; the
// balances an event shows travel with the event itself. One index over all groups, so a lookup
// costs the same whether the groups are one transfer each or 20,000. Thread-safe.
//
// It also keeps the accounts it has seen, by id, for their owner and kind: a group that credits
// accounts by increment (ADR 0011) does not load them, so its transfers find their credit
// accounts there (from an earlier group, or from RememberAccounts after a read-back). The
// balances these accounts carry are stale and not to be used.
#ifndef MICROLEND_SERVICES_LENDING_CORE_RECENT_TRANSFERS_H_
#define MICROLEND_SERVICES_LENDING_CORE_RECENT_TRANSFERS_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "services/lending/core/ledger_types.h"

namespace microlend::lending {

class RecentTransfers {
 public:
  // One committed group.
  struct Group {
    std::vector<Transfer> transfers;
    absl::flat_hash_map<AccountId, Account> accounts;
  };

  // What lookups' pointers point into (groups and accounts seen): keep it while using them.
  using Kept = std::vector<std::shared_ptr<const void>>;

  // A transfer it holds, with both its accounts; valid while `group` and `accounts` are held.
  struct Found {
    std::shared_ptr<const Group> group;
    const Transfer* transfer = nullptr;
    const Account* debit = nullptr;
    const Account* credit = nullptr;
    Kept accounts;  // the accounts seen that debit or credit point to
  };

  // Keeps the newest groups holding at most `max_transfers` in the index (at least the newest
  // group, whatever its size), and at most as many again queued and not yet indexed (when
  // nothing looks transfers up).
  // Keeps up to `max_transfers` accounts seen (forgetting them all when full).
  explicit RecentTransfers(size_t max_transfers)
      : max_transfers_(max_transfers), max_accounts_(max_transfers) {}

  // A committed group's transfers and the accounts it touched (every account its transfers name).
  // Cheap: queues them for the next lookup to index.
  void Remember(std::vector<Transfer> transfers, std::vector<Account> accounts);

  // Accounts read back from the store (by the relay, for transfers it did not hold): later
  // lookups find them as accounts seen.
  void RememberAccounts(const std::vector<Account>& accounts);

  // The transfer with both its accounts (from its group, else from the accounts seen); false
  // when it (or either account) is not held.
  bool Find(TransferId id, Found* out) const;

  // A transfer with both its accounts, valid while its group is held.
  struct Hit {
    const Transfer* transfer;
    const Account* debit;
    const Account* credit;
  };
  // Find for many ids under one lock (the relay's round): (*out)[i] for ids[i], nullopt when not
  // held. Returns what the hits point into (groups and accounts); keep it while using `out`.
  Kept FindAll(const std::vector<TransferId>& ids, std::vector<std::optional<Hit>>* out) const;

  size_t transfers_held() const;
  size_t accounts_seen() const;

 private:
  // Where a transfer is: its group's number (groups are numbered in the order remembered, so
  // groups_[number - first_group_]) and its index there. No reference count per transfer.
  struct Slot {
    uint64_t group;
    uint32_t index;
  };
  struct Queued {
    std::vector<Transfer> transfers;
    std::vector<Account> accounts;
  };
  // Indexes the queued groups, then drops the oldest beyond max_transfers_.
  void IndexQueued() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Adds to the accounts seen, forgetting them all first when full.
  void See(const Account& account) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The account from `group`, else from the accounts seen (adding that one to `kept`); null when
  // neither holds it.
  const Account* AccountOf(const Group& group, AccountId id, Kept* kept) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The group a slot points into, or null once evicted.
  const std::shared_ptr<const Group>* GroupOf(const Slot& slot) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const size_t max_transfers_;
  const size_t max_accounts_;

  // What Remember queued; the committer holds this lock only to append.
  mutable absl::Mutex queue_mu_ ABSL_ACQUIRED_AFTER(mu_);
  mutable std::deque<Queued> queued_ ABSL_GUARDED_BY(queue_mu_);
  mutable size_t queued_transfers_ ABSL_GUARDED_BY(queue_mu_) = 0;

  // The index, built by lookups (logically const: a cache of what was remembered).
  mutable absl::Mutex mu_;
  mutable std::deque<std::shared_ptr<const Group>> groups_ ABSL_GUARDED_BY(mu_);  // oldest first
  mutable uint64_t first_group_ ABSL_GUARDED_BY(mu_) = 0;  // the number of groups_.front()
  mutable absl::flat_hash_map<TransferId, Slot> index_ ABSL_GUARDED_BY(mu_);
  mutable absl::flat_hash_map<AccountId, std::shared_ptr<const Account>> seen_ ABSL_GUARDED_BY(mu_);
};

}  // namespace microlend::lending

#endif  // MICROLEND_SERVICES_LENDING_CORE_RECENT_TRANSFERS_H_
