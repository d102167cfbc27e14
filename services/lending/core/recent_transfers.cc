#include "services/lending/core/recent_transfers.h"

#include <utility>

namespace microlend::lending {

void RecentTransfers::Remember(std::vector<Transfer> transfers, std::vector<Account> accounts) {
  if (transfers.empty()) return;
  auto group = std::make_shared<Group>();
  group->transfers = std::move(transfers);
  group->accounts.reserve(accounts.size());
  for (Account& a : accounts) {
    const AccountId id = a.id;
    group->accounts.insert_or_assign(id, std::move(a));
  }
  absl::MutexLock lock(&mu_);
  index_.reserve(index_.size() + group->transfers.size());
  for (size_t i = 0; i < group->transfers.size(); ++i) {
    index_.insert_or_assign(group->transfers[i].id, Slot{group, i});
  }
  groups_.push_back(std::move(group));
  while (groups_.size() > 1 && index_.size() > max_transfers_) {
    for (const Transfer& t : groups_.front()->transfers) {
      auto it = index_.find(t.id);
      if (it != index_.end() && it->second.group == groups_.front()) index_.erase(it);
    }
    groups_.pop_front();
  }
}

bool RecentTransfers::Find(TransferId id, Found* out) const {
  std::shared_ptr<const Group> group;
  size_t index = 0;
  {
    absl::MutexLock lock(&mu_);
    auto it = index_.find(id);
    if (it == index_.end()) return false;
    group = it->second.group;
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
  for (size_t i = 0; i < ids.size(); ++i) {
    auto it = index_.find(ids[i]);
    if (it == index_.end()) continue;
    const Group& group = *it->second.group;
    const Transfer& t = group.transfers[it->second.index];
    auto debit = group.accounts.find(t.debit_account_id);
    auto credit = group.accounts.find(t.credit_account_id);
    if (debit == group.accounts.end() || credit == group.accounts.end()) continue;
    (*out)[i] = Hit{&t, &debit->second, &credit->second};
    // Hits come in runs from one group: keep each group once per run.
    if (keep.empty() || keep.back() != it->second.group) keep.push_back(it->second.group);
  }
  return keep;
}

size_t RecentTransfers::transfers_held() const {
  absl::MutexLock lock(&mu_);
  return index_.size();
}

}  // namespace microlend::lending
