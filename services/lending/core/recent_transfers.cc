#include "services/lending/core/recent_transfers.h"

#include <utility>

namespace microlend::lending {

const Transfer* RecentTransfers::Group::FindTransfer(TransferId id) const {
  auto it = index.find(id);
  return it == index.end() ? nullptr : &transfers[it->second];
}

const Account* RecentTransfers::Group::FindAccount(AccountId id) const {
  auto it = accounts.find(id);
  return it == accounts.end() ? nullptr : &it->second;
}

void RecentTransfers::Remember(std::vector<Transfer> transfers, std::vector<Account> accounts) {
  if (transfers.empty()) return;
  auto group = std::make_shared<Group>();
  group->transfers = std::move(transfers);
  group->index.reserve(group->transfers.size());
  for (size_t i = 0; i < group->transfers.size(); ++i) {
    group->index.emplace(group->transfers[i].id, i);
  }
  group->accounts.reserve(accounts.size());
  for (Account& a : accounts) {
    const AccountId id = a.id;
    group->accounts.insert_or_assign(id, std::move(a));
  }
  absl::MutexLock lock(&mu_);
  held_ += group->transfers.size();
  groups_.push_back(std::move(group));
  while (groups_.size() > 1 && held_ > max_transfers_) {
    held_ -= groups_.front()->transfers.size();
    groups_.pop_front();
  }
}

std::vector<std::shared_ptr<const RecentTransfers::Group>> RecentTransfers::Snapshot() const {
  absl::MutexLock lock(&mu_);
  return {groups_.begin(), groups_.end()};
}

bool RecentTransfers::Find(const std::vector<std::shared_ptr<const Group>>& groups, TransferId id,
                           const Transfer** transfer, const Account** debit,
                           const Account** credit) {
  for (auto g = groups.rbegin(); g != groups.rend(); ++g) {
    const Transfer* t = (*g)->FindTransfer(id);
    if (t == nullptr) continue;
    const Account* d = (*g)->FindAccount(t->debit_account_id);
    const Account* c = (*g)->FindAccount(t->credit_account_id);
    if (d == nullptr || c == nullptr) return false;
    *transfer = t;
    *debit = d;
    *credit = c;
    return true;
  }
  return false;
}

}  // namespace microlend::lending
