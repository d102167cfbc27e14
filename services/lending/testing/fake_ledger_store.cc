#include "services/lending/testing/fake_ledger_store.h"

#include "services/lending/core/ledger_engine.h"

#include <algorithm>
#include <limits>
#include <map>
#include <set>
#include <tuple>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "common/check.h"
#include "common/strings.h"

namespace microlend::lending {
namespace {

using IdempotencyKey = std::pair<std::string, std::string>;  // (caller, request_id)
using OwnerKey = std::tuple<OwnerType, std::string, AccountKind, std::string>;

OwnerKey KeyOf(OwnerType type, const std::string& owner_id, AccountKind kind, Currency currency) {
  return {type, owner_id, kind, std::string(currency.code())};
}

Hold HoldOf(const Transfer& pending) {
  Hold hold;
  hold.transfer = pending;
  return hold;
}

void SetTotals(Account& account, const Account& from) {
  account.debits_posted = from.debits_posted;
  account.credits_posted = from.credits_posted;
  account.debits_pending = from.debits_pending;
  account.credits_pending = from.credits_pending;
}

}  // namespace

struct FakeLedgerStore::State {
  std::map<AccountId, Account> accounts;
  std::map<OwnerKey, AccountId> owners;
  std::vector<Transfer> transfers;  // commit order
  absl::flat_hash_map<TransferId, size_t> transfer_index;
  std::map<HoldId, Hold> holds;
  std::map<IdempotencyKey, IdempotencyRecord> idempotency;
  std::vector<OutboxEvent> events;  // events[i].sequence == i + 1
  std::vector<bool> published;
  absl::flat_hash_set<std::string> event_ids;
  std::map<WithdrawalId, Withdrawal> withdrawals;

  int64_t next_sequence() const { return static_cast<int64_t>(events.size()) + 1; }

  // Applies a CommitSet that the transaction already checked (events carry their sequences).
  void Apply(const CommitSet& commit) {
    for (const Transfer& t : commit.transfers) {
      transfer_index.emplace(t.id, transfers.size());
      transfers.push_back(t);
      if (t.type == TransferType::kPending) holds.insert_or_assign(t.id, HoldOf(t));
    }
    for (const Hold& hold : commit.holds) holds.insert_or_assign(hold.transfer.id, hold);
    for (const Account& account : commit.accounts) SetTotals(accounts.at(account.id), account);
    absl::flat_hash_map<AccountId, int64_t> added;
    for (const CreditIncrement& c : commit.credit_increments) {
      accounts.at(c.account_id).credits_posted += c.amount_minor;
      added[c.account_id] = c.amount_minor;
    }
    for (const IdempotencyRecord& r : commit.idempotency) {
      idempotency.emplace(IdempotencyKey(r.caller, r.request_id), r);
    }
    for (OutboxEvent event : commit.events) {
      ML_CHECK(event.sequence == next_sequence(), "outbox sequence out of order");
      if (event.ref.has_value()) {  // rendered now, as the real store renders it when fetched
        const Transfer& t = transfers.at(transfer_index.at(event.ref->transfer_id));
        if (event.ref->credit_by_increment) {  // as PgLedgerStore makes it absolute
          const Account& credit = accounts.at(t.credit_account_id);
          const int64_t all = added.at(t.credit_account_id);
          event.ref->credit_balance += credit.balance() - all;
          event.ref->credit_available += credit.available() - all;
        }
        events.push_back(RenderTransferEvent(event, t, accounts.at(t.debit_account_id),
                                             accounts.at(t.credit_account_id)));
      } else {
        events.push_back(event);
      }
      published.push_back(false);
      event_ids.insert(event.event_id);
    }
    for (const Withdrawal& w : commit.withdrawals) withdrawals.insert_or_assign(w.id, w);
  }
};

namespace {

using State = FakeLedgerStore::State;

// What a running transaction wrote, indexed so that its later loads and writes see it.
struct Delta {
  absl::flat_hash_map<AccountId, Account> accounts;
  absl::flat_hash_set<TransferId> transfer_ids;
  absl::flat_hash_map<HoldId, Hold> holds;
  std::map<IdempotencyKey, IdempotencyRecord> idempotency;
  absl::flat_hash_set<std::string> event_ids;
  absl::flat_hash_map<WithdrawalId, Withdrawal> withdrawals;
  int64_t event_count = 0;
  std::vector<CommitSet> sets;
};

// The committed state seen through a transaction's own writes.
class View {
 public:
  View(const State& base, const Delta& delta) : base_(base), delta_(delta) {}

  const Account* FindAccount(AccountId id) const {
    if (auto it = delta_.accounts.find(id); it != delta_.accounts.end()) return &it->second;
    auto it = base_.accounts.find(id);
    return it == base_.accounts.end() ? nullptr : &it->second;
  }
  const Hold* FindHold(HoldId id) const {
    if (auto it = delta_.holds.find(id); it != delta_.holds.end()) return &it->second;
    auto it = base_.holds.find(id);
    return it == base_.holds.end() ? nullptr : &it->second;
  }
  bool TransferExists(TransferId id) const {
    return delta_.transfer_ids.contains(id) || base_.transfer_index.contains(id);
  }
  const IdempotencyRecord* FindRecord(const IdempotencyKey& key) const {
    if (auto it = delta_.idempotency.find(key); it != delta_.idempotency.end()) {
      return &it->second;
    }
    auto it = base_.idempotency.find(key);
    return it == base_.idempotency.end() ? nullptr : &it->second;
  }
  bool EventExists(const std::string& event_id) const {
    return delta_.event_ids.contains(event_id) || base_.event_ids.contains(event_id);
  }
  const Withdrawal* FindWithdrawal(WithdrawalId id) const {
    if (auto it = delta_.withdrawals.find(id); it != delta_.withdrawals.end()) {
      return &it->second;
    }
    auto it = base_.withdrawals.find(id);
    return it == base_.withdrawals.end() ? nullptr : &it->second;
  }

 private:
  const State& base_;
  const Delta& delta_;
};

absl::Status ForeignKey(std::string_view what, int64_t id) {
  return absl::FailedPreconditionError(
      absl::StrCat("foreign key: ", AsAbsl(what), " ", id, " does not exist"));
}

absl::Status CheckTransfers(const View& view, const CommitSet& commit) {
  absl::flat_hash_set<TransferId> ids;
  for (const Transfer& t : commit.transfers) {
    if (view.TransferExists(t.id) || !ids.insert(t.id).second) {
      return absl::AlreadyExistsError(absl::StrCat("transfer ", t.id.value(), " already exists"));
    }
    if (view.FindAccount(t.debit_account_id) == nullptr) {
      return ForeignKey("account", t.debit_account_id.value());
    }
    if (view.FindAccount(t.credit_account_id) == nullptr) {
      return ForeignKey("account", t.credit_account_id.value());
    }
  }
  for (const Hold& hold : commit.holds) {
    if (!view.TransferExists(hold.transfer.id) && !ids.contains(hold.transfer.id)) {
      return ForeignKey("transfer", hold.transfer.id.value());
    }
  }
  for (const Account& account : commit.accounts) {
    if (view.FindAccount(account.id) == nullptr) return ForeignKey("account", account.id.value());
  }
  return absl::OkStatus();
}

// Credits by increment go only to existing, unlimited accounts of their currency (as
// PgLedgerStore checks them).
absl::Status CheckIncrements(const View& view, const CommitSet& commit) {
  for (const CreditIncrement& c : commit.credit_increments) {
    const Account* a = view.FindAccount(c.account_id);
    if (a == nullptr || a->currency != c.currency || a->flags.credits_must_not_exceed_debits) {
      return absl::InternalError(absl::StrCat("account ", c.account_id.value(),
                                              " cannot be credited by increment"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckKeys(const View& view, const CommitSet& commit) {
  std::set<IdempotencyKey> keys;
  for (const IdempotencyRecord& r : commit.idempotency) {
    IdempotencyKey key(r.caller, r.request_id);
    if (view.FindRecord(key) != nullptr || !keys.insert(key).second) {
      return absl::AlreadyExistsError(
          absl::StrCat("request id ", r.request_id, " of ", r.caller, " is already recorded"));
    }
  }
  absl::flat_hash_set<std::string> event_ids;
  for (const OutboxEvent& event : commit.events) {
    if (view.EventExists(event.event_id) || !event_ids.insert(event.event_id).second) {
      return absl::AlreadyExistsError(absl::StrCat("event ", event.event_id, " already exists"));
    }
  }
  return absl::OkStatus();
}

// Records `commit` (whose events get their sequences here) in the transaction's delta.
void Stage(const View& view, CommitSet commit, int64_t first_sequence, Delta& delta) {
  for (const Transfer& t : commit.transfers) {
    delta.transfer_ids.insert(t.id);
    if (t.type == TransferType::kPending) delta.holds.insert_or_assign(t.id, HoldOf(t));
  }
  for (const Hold& hold : commit.holds) delta.holds.insert_or_assign(hold.transfer.id, hold);
  for (const Account& account : commit.accounts) {
    Account updated = *view.FindAccount(account.id);
    SetTotals(updated, account);
    delta.accounts.insert_or_assign(account.id, std::move(updated));
  }
  for (const CreditIncrement& c : commit.credit_increments) {
    auto staged = delta.accounts.find(c.account_id);
    Account updated = staged != delta.accounts.end() ? staged->second : *view.FindAccount(c.account_id);
    updated.credits_posted += c.amount_minor;
    delta.accounts.insert_or_assign(c.account_id, std::move(updated));
  }
  for (const IdempotencyRecord& r : commit.idempotency) {
    delta.idempotency.emplace(IdempotencyKey(r.caller, r.request_id), r);
  }
  for (OutboxEvent& event : commit.events) {
    event.sequence = first_sequence + delta.event_count++;
    delta.event_ids.insert(event.event_id);
  }
  for (const Withdrawal& w : commit.withdrawals) delta.withdrawals.insert_or_assign(w.id, w);
  delta.sets.push_back(std::move(commit));
}

template <typename Id>
void SortUnique(std::vector<Id>& ids) {
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
}

}  // namespace

class FakeLedgerStore::Txn final : public LedgerTxn {
 public:
  Txn(FakeLedgerStore* store, std::shared_ptr<const State> base)
      : store_(store), base_(std::move(base)) {}

  absl::StatusOr<Loaded> LoadForUpdate(const LoadRequest& request) override {
    if (!poisoned_.ok()) return Aborted();
    const View view(*base_, delta_);
    Loaded out;
    std::vector<AccountId> accounts = request.accounts;
    for (HoldId id : Sorted(request.holds)) {
      if (const Hold* h = view.FindHold(id)) {
        out.holds.push_back(*h);
        accounts.push_back(h->transfer.debit_account_id);
        accounts.push_back(h->transfer.credit_account_id);
      }
    }
    for (AccountId id : Sorted(accounts)) {
      if (const Account* a = view.FindAccount(id)) out.accounts.push_back(*a);
    }
    for (TransferId id : Sorted(request.client_ids)) {
      if (view.TransferExists(id)) out.existing_ids.push_back(id);
    }
    for (const auto& key : request.idempotency) {
      if (const IdempotencyRecord* r = view.FindRecord(key)) out.records.push_back(*r);
    }
    for (WithdrawalId id : Sorted(request.withdrawals)) {
      if (const Withdrawal* w = view.FindWithdrawal(id)) out.withdrawals.push_back(*w);
    }
    return out;
  }

  absl::StatusOr<std::vector<TransferId>> AllocateTransferIds(size_t count) override {
    if (!poisoned_.ok()) return Aborted();
    store_->txn_mu_.AssertHeld();
    const View view(*base_, delta_);
    std::vector<TransferId> ids;
    ids.reserve(count);
    while (ids.size() < count) {
      const TransferId id(store_->next_transfer_id_++);
      if (!view.TransferExists(id)) ids.push_back(id);
    }
    return ids;
  }

  absl::StatusOr<std::vector<WithdrawalId>> AllocateWithdrawalIds(size_t count) override {
    if (!poisoned_.ok()) return Aborted();
    store_->txn_mu_.AssertHeld();
    const View view(*base_, delta_);
    std::vector<WithdrawalId> ids;
    while (ids.size() < count) {
      const WithdrawalId id(store_->next_withdrawal_id_++);
      if (view.FindWithdrawal(id) == nullptr) ids.push_back(id);
    }
    return ids;
  }

  absl::StatusOr<std::vector<RepaymentId>> AllocateRepaymentIds(size_t count) override {
    if (!poisoned_.ok()) return Aborted();
    std::vector<RepaymentId> ids;
    while (ids.size() < count) ids.emplace_back(store_->next_repayment_id_++);
    return ids;
  }

  absl::Status Write(const CommitSet& commit) override {
    if (!poisoned_.ok()) return Aborted();
    if (std::optional<absl::Status> failure = store_->TakeFailure(&store_->fail_next_write_)) {
      poisoned_ = *failure;
      return *failure;
    }
    const View view(*base_, delta_);
    absl::Status status = CheckTransfers(view, commit);
    if (status.ok()) status = CheckKeys(view, commit);
    if (status.ok()) status = CheckIncrements(view, commit);
    if (!status.ok()) {
      poisoned_ = status;
      return status;
    }
    Stage(view, commit, base_->next_sequence(), delta_);
    return absl::OkStatus();
  }

  // The first failed Write's status: the transaction cannot commit.
  const absl::Status& poisoned() const { return poisoned_; }
  std::vector<CommitSet> TakeStaged() { return std::move(delta_.sets); }

 private:
  template <typename Id>
  static std::vector<Id> Sorted(std::vector<Id> ids) {
    SortUnique(ids);
    return ids;
  }
  absl::Status Aborted() const {
    return absl::AbortedError(
        absl::StrCat("transaction aborted by an earlier failed write: ", poisoned_.ToString()));
  }

  FakeLedgerStore* store_;
  std::shared_ptr<const State> base_;  // no other writer runs while this transaction does
  Delta delta_;
  absl::Status poisoned_;
};

FakeLedgerStore::FakeLedgerStore() : state_(std::make_shared<State>()) {}
FakeLedgerStore::~FakeLedgerStore() = default;

std::shared_ptr<const FakeLedgerStore::State> FakeLedgerStore::Snapshot() const {
  absl::MutexLock lock(&mu_);
  return state_;
}

FakeLedgerStore::State& FakeLedgerStore::MutableState() {
  // No new reader can take the pointer while mu_ is held, so a count of one means no snapshot
  // of this state is out.
  if (state_.use_count() != 1) state_ = std::make_shared<State>(*state_);
  return *state_;
}

std::optional<absl::Status> FakeLedgerStore::TakeFailure(std::optional<absl::Status>* slot) {
  absl::MutexLock lock(&mu_);
  std::optional<absl::Status> failure = std::move(*slot);
  slot->reset();
  return failure;
}

void FakeLedgerStore::FailNextTransact(absl::Status status) {
  absl::MutexLock lock(&mu_);
  fail_next_transact_ = std::move(status);
}

void FakeLedgerStore::FailNextWrite(absl::Status status) {
  absl::MutexLock lock(&mu_);
  fail_next_write_ = std::move(status);
}

absl::Status FakeLedgerStore::Transact(const std::function<absl::Status(LedgerTxn&)>& fn) {
  absl::MutexLock txn_lock(&txn_mu_);
  if (std::optional<absl::Status> failure = TakeFailure(&fail_next_transact_)) return *failure;
  std::vector<CommitSet> staged;
  {
    Txn txn(this, Snapshot());
    absl::Status status = fn(txn);
    if (status.ok()) status = txn.poisoned();
    if (!status.ok()) return status;
    staged = txn.TakeStaged();
  }
  absl::MutexLock lock(&mu_);
  State& state = MutableState();
  for (const CommitSet& commit : staged) state.Apply(commit);
  ++committed_transactions_;
  return absl::OkStatus();
}

int64_t FakeLedgerStore::CommittedTransactions() {
  absl::MutexLock lock(&mu_);
  return committed_transactions_;
}

namespace {

// Rows ascending by key (the cursor value); `page` picks a window of them.
template <typename T>
Page<T> Paginate(std::vector<std::pair<int64_t, T>> rows, const PageSpec& page) {
  ML_CHECK(page.limit > 0, "page limit must be positive (the caller caps it)");
  if (page.newest_first) std::reverse(rows.begin(), rows.end());
  auto beyond = [&](int64_t key) {
    if (page.after_id == 0) return true;
    return page.newest_first ? key < page.after_id : key > page.after_id;
  };
  Page<T> out;
  out.total_count = static_cast<int64_t>(rows.size());
  int64_t last_key = 0;
  for (auto& [key, item] : rows) {
    if (!beyond(key)) continue;
    if (out.items.size() == static_cast<size_t>(page.limit)) {
      out.next_after_id = last_key;
      break;
    }
    out.items.push_back(std::move(item));
    last_key = key;
  }
  return out;
}

bool Matches(const TransferFilter& f, const Transfer& t) {
  if (f.account_id && t.debit_account_id != *f.account_id && t.credit_account_id != *f.account_id) {
    return false;
  }
  if (f.from_time && t.created_at < *f.from_time) return false;
  if (f.to_time && t.created_at >= *f.to_time) return false;
  if (!f.codes.empty() && std::find(f.codes.begin(), f.codes.end(), t.code) == f.codes.end()) {
    return false;
  }
  if (!f.types.empty() && std::find(f.types.begin(), f.types.end(), t.type) == f.types.end()) {
    return false;
  }
  return !f.loan_id || t.references.loan_id == f.loan_id;
}

bool Matches(const AccountFilter& f, const Account& a) {
  return (!f.owner_type || a.owner_type == *f.owner_type) &&
         (f.owner_id.empty() || a.owner_id == f.owner_id) && (!f.kind || a.kind == *f.kind) &&
         (!f.currency || a.currency == *f.currency);
}

bool MovesPostedMoney(const Transfer& t) {
  return t.type == TransferType::kPosted || t.type == TransferType::kPostPending;
}

absl::Status CheckNewAccount(const State& state, const NewAccount& account,
                             const IdempotencyRecord& record) {
  if (account.id.has_value() && state.accounts.contains(*account.id)) {
    return absl::AlreadyExistsError(
        absl::StrCat("account ", account.id->value(), " already exists"));
  }
  auto owner = state.owners.find(
      KeyOf(account.owner_type, account.owner_id, account.kind, account.currency));
  if (owner != state.owners.end()) {
    return absl::AlreadyExistsError(absl::StrCat(
        "account ", owner->second.value(), " already exists for this owner, kind and currency"));
  }
  if (state.idempotency.contains(IdempotencyKey(record.caller, record.request_id))) {
    return absl::AlreadyExistsError(absl::StrCat("request id ", record.request_id, " of ",
                                                 record.caller, " is already recorded"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Account> FakeLedgerStore::CreateAccount(const NewAccount& account, absl::Time now,
                                                       const IdempotencyRecord& record) {
  absl::MutexLock txn_lock(&txn_mu_);
  absl::MutexLock lock(&mu_);
  if (absl::Status status = CheckNewAccount(*state_, account, record); !status.ok()) {
    return status;
  }
  State& state = MutableState();
  Account created;
  created.id = account.id.value_or(AccountId(next_account_id_));
  while (!account.id.has_value() && state.accounts.contains(created.id)) {
    created.id = AccountId(++next_account_id_);
  }
  if (!account.id.has_value()) ++next_account_id_;
  created.owner_type = account.owner_type;
  created.owner_id = account.owner_id;
  created.kind = account.kind;
  created.currency = account.currency;
  created.flags = account.flags;
  created.memo = account.memo;
  created.created_at = now;
  state.accounts.emplace(created.id, created);
  state.owners.emplace(KeyOf(created.owner_type, created.owner_id, created.kind, created.currency),
                       created.id);
  state.idempotency.emplace(IdempotencyKey(record.caller, record.request_id), record);
  return created;
}

absl::StatusOr<std::optional<IdempotencyRecord>> FakeLedgerStore::FindIdempotency(
    const std::string& caller, const std::string& request_id) {
  std::shared_ptr<const State> state = Snapshot();
  auto it = state->idempotency.find(IdempotencyKey(caller, request_id));
  if (it == state->idempotency.end()) return std::nullopt;
  return it->second;
}

absl::StatusOr<std::vector<IdempotencyRecord>> FakeLedgerStore::FindIdempotencies(
    const std::vector<std::pair<std::string, std::string>>& keys) {
  std::shared_ptr<const State> state = Snapshot();
  std::vector<IdempotencyRecord> found;
  for (const auto& [caller, request_id] : keys) {
    auto it = state->idempotency.find(IdempotencyKey(caller, request_id));
    if (it != state->idempotency.end()) found.push_back(it->second);
  }
  return found;
}

absl::StatusOr<Account> FakeLedgerStore::GetAccount(AccountId id) {
  std::shared_ptr<const State> state = Snapshot();
  auto it = state->accounts.find(id);
  if (it == state->accounts.end()) {
    return absl::NotFoundError(absl::StrCat("account ", id.value(), " not found"));
  }
  return it->second;
}

absl::StatusOr<std::optional<Account>> FakeLedgerStore::FindAccountByOwner(
    OwnerType owner_type, const std::string& owner_id, AccountKind kind, Currency currency) {
  std::shared_ptr<const State> state = Snapshot();
  auto it = state->owners.find(KeyOf(owner_type, owner_id, kind, currency));
  if (it == state->owners.end()) return std::nullopt;
  return state->accounts.at(it->second);
}

absl::StatusOr<Page<Account>> FakeLedgerStore::ListAccounts(const AccountFilter& filter,
                                                            const PageSpec& page) {
  std::shared_ptr<const State> state = Snapshot();
  std::vector<std::pair<int64_t, Account>> rows;
  for (const auto& [id, account] : state->accounts) {
    if (Matches(filter, account)) rows.emplace_back(id.value(), account);
  }
  return Paginate(std::move(rows), page);
}

absl::StatusOr<Hold> FakeLedgerStore::GetTransfer(TransferId id) {
  std::shared_ptr<const State> state = Snapshot();
  if (auto hold = state->holds.find(id); hold != state->holds.end()) return hold->second;
  auto it = state->transfer_index.find(id);
  if (it == state->transfer_index.end()) {
    return absl::NotFoundError(absl::StrCat("transfer ", id.value(), " not found"));
  }
  return HoldOf(state->transfers[it->second]);
}

absl::StatusOr<std::vector<Transfer>> FakeLedgerStore::GetTransfers(
    const std::vector<TransferId>& ids) {
  std::shared_ptr<const State> state = Snapshot();
  std::vector<Transfer> out;
  out.reserve(ids.size());
  for (TransferId id : ids) {
    auto it = state->transfer_index.find(id);
    if (it == state->transfer_index.end()) {
      return absl::NotFoundError(absl::StrCat("transfer ", id.value(), " not found"));
    }
    out.push_back(state->transfers[it->second]);
  }
  return out;
}

absl::StatusOr<Page<Transfer>> FakeLedgerStore::ListTransfers(const TransferFilter& filter,
                                                              const PageSpec& page) {
  std::shared_ptr<const State> state = Snapshot();
  std::vector<std::pair<int64_t, Transfer>> rows;
  for (size_t i = 0; i < state->transfers.size(); ++i) {
    const Transfer& t = state->transfers[i];
    if (Matches(filter, t)) rows.emplace_back(static_cast<int64_t>(i) + 1, t);
  }
  return Paginate(std::move(rows), page);
}

absl::StatusOr<Page<StatementRow>> FakeLedgerStore::Statement(AccountId account,
                                                              const TransferFilter& filter,
                                                              const PageSpec& page) {
  std::shared_ptr<const State> state = Snapshot();
  if (!state->accounts.contains(account)) {
    return absl::NotFoundError(absl::StrCat("account ", account.value(), " not found"));
  }
  std::vector<const Transfer*> posted;
  for (const Transfer& t : state->transfers) {
    const bool touches = t.debit_account_id == account || t.credit_account_id == account;
    if (touches && MovesPostedMoney(t)) posted.push_back(&t);
  }
  std::sort(posted.begin(), posted.end(),
            [](const Transfer* a, const Transfer* b) { return a->id < b->id; });
  TransferFilter rest = filter;
  rest.account_id.reset();
  std::vector<std::pair<int64_t, StatementRow>> rows;
  int64_t balance = 0;
  for (const Transfer* t : posted) {
    const int64_t units = t->amount.minor_units();
    const int64_t signed_amount = t->credit_account_id == account ? units : -units;
    balance += signed_amount;
    if (Matches(rest, *t))
      rows.emplace_back(t->id.value(), StatementRow{*t, signed_amount, balance});
  }
  return Paginate(std::move(rows), page);
}

absl::StatusOr<std::vector<HoldId>> FakeLedgerStore::ListExpiredHolds(absl::Time now,
                                                                      size_t limit) {
  std::shared_ptr<const State> state = Snapshot();
  std::vector<HoldId> out;
  for (const auto& [id, hold] : state->holds) {
    if (out.size() >= limit) break;
    const std::optional<absl::Time>& expires_at = hold.transfer.expires_at;
    if (hold.state == HoldState::kPending && expires_at && *expires_at <= now) out.push_back(id);
  }
  return out;
}

// Loans are not modelled (see the header): the loan lifecycle is tested against PostgreSQL.
absl::StatusOr<LoanMoney> FakeLedgerStore::GetLoanMoney(LoanId id) {
  return absl::NotFoundError(absl::StrCat("loan ", id.value(), " not found"));
}
absl::StatusOr<std::vector<std::pair<BasketItem, std::optional<HoldState>>>>
FakeLedgerStore::ListBasket(LenderId) {
  return std::vector<std::pair<BasketItem, std::optional<HoldState>>>{};
}
absl::StatusOr<Page<LoanFunder>> FakeLedgerStore::ListFunders(LoanId, const PageSpec&) {
  return Page<LoanFunder>{};
}
absl::StatusOr<int64_t> FakeLedgerStore::CountFunders(LoanId) { return 0; }
absl::StatusOr<std::vector<RepaymentTarget>> FakeLedgerStore::GetRepaymentTargets(
    const std::vector<LoanId>&) {
  return std::vector<RepaymentTarget>{};
}
absl::StatusOr<std::vector<LoanFunder>> FakeLedgerStore::ListPositions(AccountId) {
  return std::vector<LoanFunder>{};
}
absl::StatusOr<Page<RepaymentRecord>> FakeLedgerStore::ListRepayments(LoanId, const PageSpec&) {
  return Page<RepaymentRecord>{};
}
absl::StatusOr<std::vector<LoanId>> FakeLedgerStore::ListLoansToExpire(absl::Time, size_t) {
  return std::vector<LoanId>{};
}
absl::StatusOr<std::vector<ActiveLoan>> FakeLedgerStore::ListActiveLoans(LoanId, size_t) {
  return std::vector<ActiveLoan>{};
}
absl::StatusOr<bool> FakeLedgerStore::SetArrears(LoanId, int64_t, bool, int32_t, int64_t) {
  return false;
}
absl::StatusOr<std::vector<PortfolioPosition>> FakeLedgerStore::ListPortfolio(AccountId, size_t) {
  return std::vector<PortfolioPosition>{};
}

absl::StatusOr<Withdrawal> FakeLedgerStore::GetWithdrawal(WithdrawalId id) {
  std::shared_ptr<const State> state = Snapshot();
  auto it = state->withdrawals.find(id);
  if (it == state->withdrawals.end()) {
    return absl::NotFoundError(absl::StrCat("withdrawal ", id.value(), " not found"));
  }
  return it->second;
}

absl::StatusOr<Page<Withdrawal>> FakeLedgerStore::ListWithdrawals(
    std::optional<LenderId> lender, std::optional<WithdrawalState> state_filter,
    const PageSpec& page) {
  std::shared_ptr<const State> state = Snapshot();
  std::vector<std::pair<int64_t, Withdrawal>> rows;
  for (const auto& [id, w] : state->withdrawals) {
    if ((!lender || w.lender_id == *lender) && (!state_filter || w.state == *state_filter)) {
      rows.emplace_back(id.value(), w);
    }
  }
  return Paginate(std::move(rows), page);
}

absl::StatusOr<std::vector<OutboxEvent>> FakeLedgerStore::FetchUnpublished(size_t limit) {
  std::shared_ptr<const State> state = Snapshot();
  std::vector<OutboxEvent> out;
  for (size_t i = 0; i < state->events.size() && out.size() < limit; ++i) {
    if (!state->published[i]) out.push_back(state->events[i]);
  }
  return out;
}

absl::StatusOr<int64_t> FakeLedgerStore::PublishedThrough() {
  std::shared_ptr<const State> state = Snapshot();
  int64_t through = 0;
  while (through < static_cast<int64_t>(state->published.size()) &&
         state->published[static_cast<size_t>(through)]) {
    ++through;
  }
  return through;
}

absl::Status FakeLedgerStore::MarkPublished(const std::vector<int64_t>& sequences, absl::Time) {
  absl::MutexLock txn_lock(&txn_mu_);
  absl::MutexLock lock(&mu_);
  State& state = MutableState();
  for (int64_t sequence : sequences) {
    if (sequence >= 1 && sequence <= static_cast<int64_t>(state.events.size())) {
      state.published[static_cast<size_t>(sequence - 1)] = true;
    }
  }
  return absl::OkStatus();
}

void FakeLedgerStore::CorruptAccountForTest(AccountId id, int64_t delta_credits_posted) {
  absl::MutexLock txn_lock(&txn_mu_);
  absl::MutexLock lock(&mu_);
  State& state = MutableState();
  auto it = state.accounts.find(id);
  ML_CHECK(it != state.accounts.end(), absl::StrCat("no account ", id.value(), " to corrupt"));
  it->second.credits_posted += delta_credits_posted;
}

namespace {

ReconcileFinding Finding(ReconcileFinding::Kind kind) {
  return ReconcileFinding{kind, std::nullopt, "", 0, 0, 0, ""};
}

int64_t Clamp(__int128 value) {
  return static_cast<int64_t>(std::clamp<__int128>(value, std::numeric_limits<int64_t>::min(),
                                                   std::numeric_limits<int64_t>::max()));
}

struct ReplayedTotals {
  __int128 debits_posted = 0;
  __int128 credits_posted = 0;
  __int128 debits_pending = 0;
  __int128 credits_pending = 0;
};

// Each account's totals rebuilt from the transfers: posted and post-pending move posted money,
// a hold counts as pending while it is pending, a void moves nothing.
absl::flat_hash_map<AccountId, ReplayedTotals> Replay(const State& state) {
  absl::flat_hash_map<AccountId, ReplayedTotals> out;
  for (const Transfer& t : state.transfers) {
    const int64_t amount = t.amount.minor_units();
    if (MovesPostedMoney(t)) {
      out[t.debit_account_id].debits_posted += amount;
      out[t.credit_account_id].credits_posted += amount;
    } else if (t.type == TransferType::kPending &&
               state.holds.at(t.id).state == HoldState::kPending) {
      out[t.debit_account_id].debits_pending += amount;
      out[t.credit_account_id].credits_pending += amount;
    }
  }
  return out;
}

std::optional<ReconcileFinding> ReplayMismatch(const Account& a, const ReplayedTotals& r) {
  if (r.debits_posted == a.debits_posted && r.credits_posted == a.credits_posted &&
      r.debits_pending == a.debits_pending && r.credits_pending == a.credits_pending) {
    return std::nullopt;
  }
  ReconcileFinding f = Finding(ReconcileFinding::Kind::kBalanceReplayMismatch);
  f.account_id = a.id;
  f.currency = std::string(a.currency.code());
  f.expected = Clamp(r.credits_posted - r.debits_posted);
  f.actual = a.balance();
  f.detail =
      absl::StrCat("account ", a.id.value(), " stores debits/credits posted ", a.debits_posted, "/",
                   a.credits_posted, " pending ", a.debits_pending, "/", a.credits_pending,
                   "; its transfers give ", Clamp(r.debits_posted), "/", Clamp(r.credits_posted),
                   " pending ", Clamp(r.debits_pending), "/", Clamp(r.credits_pending));
  return f;
}

std::optional<ReconcileFinding> ConstraintBroken(const Account& a) {
  const __int128 debits = __int128{a.debits_posted} + a.debits_pending;
  const __int128 credits = __int128{a.credits_posted} + a.credits_pending;
  const bool over_debited = a.flags.debits_must_not_exceed_credits && debits > a.credits_posted;
  const bool over_credited = a.flags.credits_must_not_exceed_debits && credits > a.debits_posted;
  if (!over_debited && !over_credited) return std::nullopt;
  ReconcileFinding f = Finding(ReconcileFinding::Kind::kConstrainedAccountNegative);
  f.account_id = a.id;
  f.currency = std::string(a.currency.code());
  f.expected = 0;
  f.actual = over_debited ? Clamp(a.credits_posted - debits) : Clamp(a.debits_posted - credits);
  f.detail = absl::StrCat("account ", a.id.value(), over_debited ? " debits" : " credits",
                          " (posted + pending) exceed its posted ",
                          over_debited ? "credits" : "debits", " by ", -f.actual);
  return f;
}

struct CurrencySums {
  Currency currency;
  __int128 balance = 0;
  __int128 volume = 0;
  int64_t accounts = 0;
};

std::optional<ReconcileFinding> OutboxLate(const State& state, absl::Time deadline) {
  int64_t late = 0;
  for (size_t i = 0; i < state.events.size(); ++i) {
    if (!state.published[i] && state.events[i].created_at < deadline) ++late;
  }
  if (late == 0) return std::nullopt;
  ReconcileFinding f = Finding(ReconcileFinding::Kind::kOutboxUnpublished);
  f.count = late;
  f.detail = absl::StrCat(late, " outbox events older than ", absl::FormatTime(deadline),
                          " are unpublished");
  return f;
}

}  // namespace

absl::StatusOr<ReconcileData> FakeLedgerStore::Reconcile(const std::vector<Currency>& currencies,
                                                         bool replay_balances,
                                                         absl::Time outbox_deadline) {
  std::shared_ptr<const State> state = Snapshot();
  std::map<std::string, CurrencySums> sums;
  for (Currency c : currencies) sums.try_emplace(std::string(c.code()), CurrencySums{c});
  auto in_scope = [&](Currency c) {
    return currencies.empty() || sums.contains(std::string(c.code()));
  };
  ReconcileData out;
  absl::flat_hash_map<AccountId, ReplayedTotals> replayed;
  if (replay_balances) replayed = Replay(*state);
  for (const auto& [id, account] : state->accounts) {
    if (!in_scope(account.currency)) continue;
    CurrencySums& sum =
        sums.try_emplace(std::string(account.currency.code()), CurrencySums{account.currency})
            .first->second;
    sum.balance += account.balance();
    ++sum.accounts;
    ++out.accounts_checked;
    if (replay_balances) {
      if (auto f = ReplayMismatch(account, replayed[id])) out.findings.push_back(std::move(*f));
    }
    if (auto f = ConstraintBroken(account)) out.findings.push_back(std::move(*f));
  }
  for (const Transfer& t : state->transfers) {
    if (!in_scope(t.amount.currency())) continue;
    ++out.transfers_checked;
    if (MovesPostedMoney(t))
      sums.at(std::string(t.amount.currency().code())).volume += t.amount.minor_units();
  }
  for (const auto& [code, sum] : sums) {
    out.totals.push_back({sum.currency, Clamp(sum.balance), Clamp(sum.volume), sum.accounts});
    if (sum.balance == 0) continue;
    ReconcileFinding f = Finding(ReconcileFinding::Kind::kCurrencySumNonzero);
    f.currency = code;
    f.actual = Clamp(sum.balance);
    f.detail = absl::StrCat(code, " balances sum to ", f.actual, " minor units, not 0");
    out.findings.push_back(std::move(f));
  }
  if (auto f = OutboxLate(*state, outbox_deadline)) out.findings.push_back(std::move(*f));
  return out;
}

std::vector<Transfer> FakeLedgerStore::AllTransfers() { return Snapshot()->transfers; }

std::vector<OutboxEvent> FakeLedgerStore::AllEvents() { return Snapshot()->events; }

std::vector<IdempotencyRecord> FakeLedgerStore::AllIdempotency() {
  std::shared_ptr<const State> state = Snapshot();
  std::vector<IdempotencyRecord> out;
  for (const auto& [key, record] : state->idempotency) out.push_back(record);
  return out;
}

}  // namespace microlend::lending
