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

const std::shared_ptr<const RecentTransfers::Group>* RecentTransfers::GroupOf(
    const Slot& slot) const {
  if (slot.group < first_group_) return nullptr;
  return &groups_[slot.group - first_group_];
}

bool RecentTransfers::Find(TransferId id, Found* out) const {
  std::shared_ptr<const Group> group;
  size_t index = 0;
  {
    absl::MutexLock lock(&mu_);
    IndexQueued();
    auto it = index_.find(id);
    if (it == index_.end()) return false;
    const std::shared_ptr<const Group>* held = GroupOf(it->second);
    if (held == nullptr) return false;
    group = *held;
    index = it->second.index;
  }
  const Transfer& t = group->transfers[index];
  auto debit = group->accounts.find(t.debit_account_id);
  auto credit = group->accounts.find(t.credit_account_id);
  if (debit == group->accounts.end() || credit == group->accounts.end()) return false;
  *out = Found{.group = std::move(group), .transfer = &t, .debit = &debit->second,
               .credit = &credit->second};
  return true;
}

std::vector<std::shared_ptr<const RecentTransfers::Group>> RecentTransfers::FindAll(
    const std::vector<TransferId>& ids, std::vector<std::optional<Hit>>* out) const {
  out->assign(ids.size(), std::nullopt);
  std::vector<std::shared_ptr<const Group>> keep;
  absl::MutexLock lock(&mu_);
  IndexQueued();
  for (size_t i = 0; i < ids.size(); ++i) {
    auto it = index_.find(ids[i]);
    if (it == index_.end()) continue;
    const std::shared_ptr<const Group>* held = GroupOf(it->second);
    if (held == nullptr) continue;
    const Group& group = **held;
    const Transfer& t = group.transfers[it->second.index];
    auto debit = group.accounts.find(t.debit_account_id);
    auto credit = group.accounts.find(t.credit_account_id);
    if (debit == group.accounts.end() || credit == group.accounts.end()) continue;
    (*out)[i] = Hit{&t, &debit->second, &credit->second};
    // Hits come in runs from one group: keep each group once per run.
    if (keep.empty() || keep.back() != *held) keep.push_back(*held);
  }
  return keep;
}

size_t RecentTransfers::transfers_held() const {
  absl::MutexLock lock(&mu_);
  IndexQueued();
  return index_.size();
}

}  // namespace microlend::lending
