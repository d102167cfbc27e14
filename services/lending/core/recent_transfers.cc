#include "services/lending/core/recent_transfers.h"

#include <utility>

#include "common/check.h"

namespace microlend::lending {

void RecentTransfers::Remember(std::vector<Transfer> transfers, std::vector<Account> accounts) {
  if (transfers.empty()) return;
  ML_CHECK(transfers.size() <= UINT32_MAX, "RecentTransfers: a group of more than 2^32 transfers");
  std::deque<Queued> dropped;  // destroyed after the lock is released
  absl::MutexLock lock(&queue_mu_);
  queued_transfers_ += transfers.size();
  queued_.push_back(Queued{std::move(transfers), std::move(accounts)});
  // Nobody looking: keep the queue itself within bounds.
  while (queued_.size() > 1 && queued_transfers_ > max_transfers_) {
    queued_transfers_ -= queued_.front().transfers.size();
    dropped.push_back(std::move(queued_.front()));
    queued_.pop_front();
  }
}

void RecentTransfers::IndexQueued() const {
  std::deque<Queued> queued;
  {
    absl::MutexLock lock(&queue_mu_);
    queued.swap(queued_);
    queued_transfers_ = 0;
  }
  for (Queued& q : queued) {
    auto group = std::make_shared<Group>();
    group->transfers = std::move(q.transfers);
    group->accounts.reserve(q.accounts.size());
    for (Account& a : q.accounts) {
      See(a);
      const AccountId id = a.id;
      group->accounts.insert_or_assign(id, std::move(a));
    }
    const uint64_t number = first_group_ + groups_.size();
    index_.reserve(index_.size() + group->transfers.size());
    for (size_t i = 0; i < group->transfers.size(); ++i) {
      index_.insert_or_assign(group->transfers[i].id, Slot{number, static_cast<uint32_t>(i)});
    }
    groups_.push_back(std::move(group));
    while (groups_.size() > 1 && index_.size() > max_transfers_) {
      for (const Transfer& t : groups_.front()->transfers) {
        auto it = index_.find(t.id);
        if (it != index_.end() && it->second.group == first_group_) index_.erase(it);
      }
      groups_.pop_front();
      ++first_group_;
    }
  }
}

void RecentTransfers::See(const Account& account) const {
  auto it = seen_.find(account.id);
  if (it != seen_.end()) return;  // an account's owner and kind never change
  if (seen_.size() >= max_accounts_) seen_.clear();
  seen_.emplace(account.id, std::make_shared<const Account>(account));
}

const Account* RecentTransfers::AccountOf(const Group& group, AccountId id, Kept* kept) const {
  if (auto it = group.accounts.find(id); it != group.accounts.end()) return &it->second;
  auto it = seen_.find(id);
  if (it == seen_.end()) return nullptr;
  kept->push_back(it->second);
  return it->second.get();
}

void RecentTransfers::RememberAccounts(const std::vector<Account>& accounts) {
  absl::MutexLock lock(&mu_);
  for (const Account& a : accounts) See(a);
}

const std::shared_ptr<const RecentTransfers::Group>* RecentTransfers::GroupOf(
    const Slot& slot) const {
  if (slot.group < first_group_) return nullptr;
  return &groups_[slot.group - first_group_];
}

bool RecentTransfers::Find(TransferId id, Found* out) const {
  absl::MutexLock lock(&mu_);
  IndexQueued();
  auto it = index_.find(id);
  if (it == index_.end()) return false;
  const std::shared_ptr<const Group>* held = GroupOf(it->second);
  if (held == nullptr) return false;
  const Transfer& t = (*held)->transfers[it->second.index];
  Kept kept;
  const Account* debit = AccountOf(**held, t.debit_account_id, &kept);
  const Account* credit = AccountOf(**held, t.credit_account_id, &kept);
  if (debit == nullptr || credit == nullptr) return false;
  *out = Found{.group = *held, .transfer = &t, .debit = debit, .credit = credit,
               .accounts = std::move(kept)};
  return true;
}

RecentTransfers::Kept RecentTransfers::FindAll(const std::vector<TransferId>& ids,
                                               std::vector<std::optional<Hit>>* out) const {
  out->assign(ids.size(), std::nullopt);
  Kept keep;
  const void* last_group = nullptr;
  absl::MutexLock lock(&mu_);
  IndexQueued();
  for (size_t i = 0; i < ids.size(); ++i) {
    auto it = index_.find(ids[i]);
    if (it == index_.end()) continue;
    const std::shared_ptr<const Group>* held = GroupOf(it->second);
    if (held == nullptr) continue;
    const Group& group = **held;
    const Transfer& t = group.transfers[it->second.index];
    const Account* debit = AccountOf(group, t.debit_account_id, &keep);
    const Account* credit = AccountOf(group, t.credit_account_id, &keep);
    if (debit == nullptr || credit == nullptr) continue;
    (*out)[i] = Hit{&t, debit, credit};
    // Hits come in runs from one group: keep each group once per run.
    if (last_group != held->get()) {
      keep.push_back(*held);
      last_group = held->get();
    }
  }
  return keep;
}

size_t RecentTransfers::transfers_held() const {
  absl::MutexLock lock(&mu_);
  IndexQueued();
  return index_.size();
}

size_t RecentTransfers::accounts_seen() const {
  absl::MutexLock lock(&mu_);
  IndexQueued();
  return seen_.size();
}

}  // namespace microlend::lending
