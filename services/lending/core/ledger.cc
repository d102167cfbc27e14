#include "services/lending/core/ledger.h"

#include "services/lending/core/ledger_mutation.h"

#include <tuple>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "common/check.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "common/strings.h"

namespace microlend::lending {

namespace {

bool IsTransient(const absl::Status& s) {
  return s.code() == absl::StatusCode::kAborted || s.code() == absl::StatusCode::kUnavailable ||
         s.code() == absl::StatusCode::kResourceExhausted;
}

absl::Status RejectionStatus(const Rejection& r) {
  return absl::Status(r.code(), absl::StrCat("transfers[", r.item_index, "]: ", r.detail));
}

class BatchMutation final : public Mutation {
 public:
  BatchMutation(std::vector<TransferSpec> specs, ResultEncoder encoder)
      : specs_(std::move(specs)), encoder_(std::move(encoder)) {}
  void Collect(LoadRequest* out) const override { LedgerEngine::CollectReferences(specs_, out); }
  size_t IdsNeeded() const override { return LedgerEngine::IdsNeeded(specs_); }
  size_t TransferCount() const override { return specs_.size(); }
  LedgerReply Apply(Group& group, const BatchContext& context) override {
    LedgerReply reply = ApplySpecs(specs_, group, context, encoder_);
    if (reply.status.ok() && !encoder_.success && !key.request_id.empty()) {
      reply.payload = EncodeBatchRecord(reply.transfers, reply.committed_at);
    }
    return reply;
  }

 private:
  std::vector<TransferSpec> specs_;
  ResultEncoder encoder_;
};

void PutVarint(uint64_t v, std::string& out) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

bool GetVarint(std::string_view& in, uint64_t& v) {
  v = 0;
  for (int shift = 0; shift < 64 && !in.empty(); shift += 7) {
    const auto byte = static_cast<uint8_t>(in.front());
    in.remove_prefix(1);
    v |= static_cast<uint64_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) return true;
  }
  return false;
}

uint64_t ZigZag(int64_t v) { return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63); }
int64_t UnZigZag(uint64_t v) { return static_cast<int64_t>(v >> 1) ^ -static_cast<int64_t>(v & 1); }

// Zero byte (not protobuf), a format letter, then varints: commit time (zigzag microseconds),
// count, and each id as the zigzag difference from the one before (ids run consecutively, so
// mostly one byte each).
constexpr char kBatchRecordMagic[] = {'\0', 'B'};

class WithdrawalRequestMutation final : public Mutation {
 public:
  WithdrawalRequestMutation(LenderId lender, AccountId wallet, AccountId settlement, Money amount,
                            std::string destination, Ledger::WithdrawalEncoder encode)
      : lender_(lender), wallet_(wallet), settlement_(settlement), amount_(amount),
        destination_(std::move(destination)), encode_(std::move(encode)) {}
  void Collect(LoadRequest* out) const override {
    out->accounts.push_back(wallet_);
    out->accounts.push_back(settlement_);
  }
  size_t IdsNeeded() const override { return 1; }
  size_t TransferCount() const override { return 1; }
  bool NeedsWithdrawalId() const override { return true; }

  LedgerReply Apply(Group& group, const BatchContext& context) override {
    ML_CHECK(!group.fresh_withdrawal_ids.empty(), "withdrawal id not allocated");
    WithdrawalId id = group.fresh_withdrawal_ids.back();
    group.fresh_withdrawal_ids.pop_back();
    TransferSpec hold;
    hold.debit_account_id = wallet_;
    hold.credit_account_id = settlement_;
    hold.amount = amount_;
    hold.code = TransferCode::kWithdrawal;
    hold.pending = true;
    hold.references.withdrawal_id = id;
    LedgerReply reply = ApplySpecs({hold}, group, context, {});
    if (!reply.status.ok()) return reply;
    Withdrawal w{.id = id, .lender_id = lender_, .wallet_account_id = wallet_, .amount = amount_,
                 .state = WithdrawalState::kRequested, .hold_id = reply.transfers[0].id,
                 .destination = destination_, .created_at = context.now,
                 .updated_at = context.now};
    group.withdrawals.insert_or_assign(id, w);
    group.changed_withdrawals.push_back(w);
    reply.withdrawal = w;
    reply.payload = encode_(w);
    return reply;
  }

 private:
  LenderId lender_;
  AccountId wallet_;
  AccountId settlement_;
  Money amount_;
  std::string destination_;
  Ledger::WithdrawalEncoder encode_;
};

std::string_view StateName(WithdrawalState s) {
  switch (s) {
    case WithdrawalState::kRequested: return "requested";
    case WithdrawalState::kApproved: return "approved";
    case WithdrawalState::kPaid: return "paid";
    case WithdrawalState::kRejected: return "rejected";
    case WithdrawalState::kCancelled: return "cancelled";
  }
  return "unknown";
}

bool TransitionAllowed(WithdrawalState from, WithdrawalState to) {
  switch (to) {
    case WithdrawalState::kApproved:
    case WithdrawalState::kCancelled:
      return from == WithdrawalState::kRequested;
    case WithdrawalState::kPaid:
      return from == WithdrawalState::kApproved;
    case WithdrawalState::kRejected:
      return from == WithdrawalState::kRequested || from == WithdrawalState::kApproved;
    case WithdrawalState::kRequested:
      return false;
  }
  return false;
}

class AdvanceWithdrawalMutation final : public Mutation {
 public:
  // `known` was read before queueing; its hold and accounts never change, its state may.
  AdvanceWithdrawalMutation(Withdrawal known, AccountId settlement, WithdrawalState to,
                            std::string note, Ledger::WithdrawalEncoder encode)
      : known_(std::move(known)), settlement_(settlement), to_(to), note_(std::move(note)),
        encode_(std::move(encode)) {}
  void Collect(LoadRequest* out) const override {
    out->withdrawals.push_back(known_.id);
    out->holds.push_back(known_.hold_id);
    out->accounts.push_back(known_.wallet_account_id);
    out->accounts.push_back(settlement_);
  }
  size_t IdsNeeded() const override { return 1; }
  size_t TransferCount() const override { return 1; }

  LedgerReply Apply(Group& group, const BatchContext& context) override {
    auto it = group.withdrawals.find(known_.id);
    ML_CHECK(it != group.withdrawals.end(), "withdrawal vanished while locked");
    Withdrawal w = it->second;
    if (!TransitionAllowed(w.state, to_)) {
      LedgerReply reply;
      reply.status = absl::FailedPreconditionError(absl::StrCat(
          "withdrawal ", w.id.value(), " is ", AsAbsl(StateName(w.state)), "; it cannot become ",
          AsAbsl(StateName(to_))));
      return reply;
    }
    LedgerReply reply;
    reply.committed_at = context.now;
    if (to_ != WithdrawalState::kApproved) {
      TransferSpec resolve;
      resolve.pending_id = w.hold_id;
      resolve.pending_action =
          to_ == WithdrawalState::kPaid ? PendingAction::kPost : PendingAction::kVoid;
      resolve.withdrawal_step = true;
      resolve.memo = note_;  // the adapter bounds and validates the note
      reply = ApplySpecs({resolve}, group, context, {});
      if (!reply.status.ok()) return reply;
    }
    w.state = to_;
    w.updated_at = context.now;
    (to_ == WithdrawalState::kPaid ? w.external_payment_id : w.reason) = note_;
    it->second = w;
    group.changed_withdrawals.push_back(w);
    reply.withdrawal = w;
    reply.payload = encode_(w);
    return reply;
  }

 private:
  Withdrawal known_;
  AccountId settlement_;
  WithdrawalState to_;
  std::string note_;
  Ledger::WithdrawalEncoder encode_;
};

LedgerReply Replay(const IdempotencyRecord& stored, const RequestKey& key) {
  LedgerReply reply;
  if (absl::Status same = CheckSameRequest(stored, key); !same.ok()) {
    reply.status = same;
    return reply;
  }
  reply.replayed = true;
  reply.status = absl::Status(stored.code, stored.message);
  reply.payload = stored.payload;
  return reply;
}

}  // namespace

std::string EncodeBatchRecord(const std::vector<Transfer>& transfers, absl::Time committed_at) {
  std::string out(kBatchRecordMagic, sizeof kBatchRecordMagic);
  out.reserve(16 + 2 * transfers.size());
  PutVarint(ZigZag(absl::ToUnixMicros(committed_at)), out);
  PutVarint(transfers.size(), out);
  int64_t previous = 0;
  for (const Transfer& t : transfers) {
    PutVarint(ZigZag(t.id.value() - previous), out);
    previous = t.id.value();
  }
  return out;
}

std::optional<BatchRecord> DecodeBatchRecord(std::string_view payload) {
  if (payload.substr(0, sizeof kBatchRecordMagic) !=
      std::string_view(kBatchRecordMagic, sizeof kBatchRecordMagic)) {
    return std::nullopt;
  }
  payload.remove_prefix(sizeof kBatchRecordMagic);
  uint64_t micros = 0, count = 0;
  if (!GetVarint(payload, micros) || !GetVarint(payload, count) || count > payload.size()) {
    return std::nullopt;
  }
  BatchRecord record{.committed_at = absl::FromUnixMicros(UnZigZag(micros))};
  record.transfer_ids.reserve(count);
  int64_t previous = 0;
  for (uint64_t i = 0; i < count; ++i) {
    uint64_t delta = 0;
    if (!GetVarint(payload, delta)) return std::nullopt;
    // Unsigned, so that a corrupted record cannot overflow.
    previous = static_cast<int64_t>(static_cast<uint64_t>(previous) +
                                    static_cast<uint64_t>(UnZigZag(delta)));
    if (previous <= 0) return std::nullopt;
    record.transfer_ids.emplace_back(previous);
  }
  if (!payload.empty()) return std::nullopt;
  return record;
}

LedgerReply ApplySpecs(const std::vector<TransferSpec>& specs, Mutation::Group& group,
                       const BatchContext& context, const ResultEncoder& encoder) {
  LedgerReply reply;
  reply.committed_at = context.now;
  auto outcome = LedgerEngine::ApplyBatch(specs, context, group.working);
  if (auto* rejection = std::get_if<Rejection>(&outcome)) {
    reply.status = RejectionStatus(*rejection);
    reply.payload = encoder.rejection ? encoder.rejection(*rejection) : "";
    reply.rejection = *rejection;
    return reply;
  }
  reply.transfers = std::get<std::vector<Transfer>>(std::move(outcome));
  reply.payload = encoder.success ? encoder.success(reply.transfers, context.now) : "";
  return reply;
}

absl::Status CheckSameRequest(const IdempotencyRecord& stored, const RequestKey& key) {
  if (stored.method == key.method && stored.body_hash == key.body_hash) return absl::OkStatus();
  return absl::AlreadyExistsError(absl::StrCat("request_id \"", key.request_id,
                                               "\" was already used for a different request (",
                                               stored.method, ")"));
}

absl::Status ValidateRequestId(const std::string& request_id) {
  if (request_id.empty() || request_id.size() > 128) {
    return absl::InvalidArgumentError("request_id must be 1 to 128 characters");
  }
  for (char c : request_id) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == ':' || c == '-';
    if (!ok) return absl::InvalidArgumentError("request_id may contain only A-Z a-z 0-9 . _ : -");
  }
  return absl::OkStatus();
}

Ledger::Ledger(LedgerStore* store, const Clock* clock, LedgerOptions options)
    : store_(store), clock_(clock), options_(options) {}

Ledger::~Ledger() { Stop(); }

void Ledger::Start() {
  absl::MutexLock lock(&mu_);
  ML_CHECK(!running_ && !committer_.joinable(), "Ledger started twice");
  stopping_ = false;
  running_ = true;
  committer_ = std::thread([this] { CommitterLoop(); });
}

void Ledger::Stop() {
  std::thread committer;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    running_ = false;
    committer.swap(committer_);
  }
  if (committer.joinable()) committer.join();
  std::deque<std::unique_ptr<Mutation>> left;
  {
    absl::MutexLock lock(&mu_);
    left.swap(queue_);
  }
  for (auto& m : left) {
    LedgerReply reply;
    reply.status = absl::UnavailableError("ledger is shutting down");
    m->done(std::move(reply));
  }
}

void Ledger::Enqueue(std::unique_ptr<Mutation> mutation) {
  std::vector<std::unique_ptr<Mutation>> one;
  one.push_back(std::move(mutation));
  EnqueueAll(std::move(one));
}

void Ledger::EnqueueAll(std::vector<std::unique_ptr<Mutation>> mutations) {
  // One critical section for all, so that the committer sees them together and in order.
  absl::Status refused;
  size_t queued = 0;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_ || !running_) {
      refused = absl::UnavailableError("ledger is not running");
    } else {
      for (; queued < mutations.size(); ++queued) {
        if (queue_.size() >= options_.max_queued_mutations) {
          refused = absl::ResourceExhaustedError("ledger queue is full; retry later");
          break;
        }
        queue_.push_back(std::move(mutations[queued]));
      }
    }
  }
  for (size_t i = queued; i < mutations.size(); ++i) {
    LedgerReply reply;
    reply.status = refused;
    mutations[i]->done(std::move(reply));
  }
}

std::optional<LedgerReply> Ledger::Recorded(const RequestKey& key) {
  if (key.request_id.empty()) return std::nullopt;
  absl::StatusOr<std::optional<IdempotencyRecord>> stored =
      store_->FindIdempotency(key.caller, key.request_id);
  if (!stored.ok()) {
    LedgerReply reply;
    reply.status = stored.status();
    return reply;
  }
  if (!stored->has_value()) return std::nullopt;
  return Replay(**stored, key);
}

std::vector<std::optional<LedgerReply>> Ledger::RecordedAll(const std::vector<RequestKey>& keys) {
  std::vector<std::optional<LedgerReply>> out(keys.size());
  std::vector<std::pair<std::string, std::string>> wanted;
  for (const RequestKey& key : keys) {
    if (!key.request_id.empty()) wanted.emplace_back(key.caller, key.request_id);
  }
  if (wanted.empty()) return out;
  absl::StatusOr<std::vector<IdempotencyRecord>> stored = store_->FindIdempotencies(wanted);
  absl::flat_hash_map<std::pair<std::string, std::string>, const IdempotencyRecord*> by_key;
  if (stored.ok()) {
    for (const IdempotencyRecord& r : *stored) {
      by_key.emplace(std::make_pair(r.caller, r.request_id), &r);
    }
  }
  for (size_t i = 0; i < keys.size(); ++i) {
    if (keys[i].request_id.empty()) continue;
    if (!stored.ok()) {
      LedgerReply reply;
      reply.status = stored.status();
      out[i] = std::move(reply);
      continue;
    }
    auto it = by_key.find(std::make_pair(keys[i].caller, keys[i].request_id));
    if (it != by_key.end()) out[i] = Replay(*it->second, keys[i]);
  }
  return out;
}

LedgerReply Ledger::Submit(std::unique_ptr<Mutation> mutation) {
  return SubmitAndWait(std::move(mutation));
}

std::vector<LedgerReply> Ledger::SubmitAll(std::vector<std::unique_ptr<Mutation>> mutations) {
  std::vector<LedgerReply> replies(mutations.size());
  absl::Mutex done_mu;
  size_t pending = mutations.size();
  for (size_t i = 0; i < mutations.size(); ++i) {
    mutations[i]->done = [&, i](LedgerReply reply) {
      absl::MutexLock lock(&done_mu);
      replies[i] = std::move(reply);
      --pending;
    };
  }
  EnqueueAll(std::move(mutations));
  absl::MutexLock lock(&done_mu);
  done_mu.Await(absl::Condition(+[](size_t* left) { return *left == 0; }, &pending));
  return replies;
}

LedgerReply Ledger::SubmitAndWait(std::unique_ptr<Mutation> mutation) {
  std::vector<std::unique_ptr<Mutation>> one;
  one.push_back(std::move(mutation));
  return std::move(SubmitAll(std::move(one)).front());
}

void Ledger::SubmitBatchAsync(RequestKey key, std::vector<TransferSpec> specs,
                              ResultEncoder encoder, std::function<void(LedgerReply)> done) {
  if (std::optional<Rejection> bad = LedgerEngine::ValidateShape(specs)) {
    LedgerReply reply;
    reply.status = RejectionStatus(*bad);
    reply.rejection = *bad;
    done(std::move(reply));
    return;
  }
  auto m = std::make_unique<BatchMutation>(std::move(specs), std::move(encoder));
  m->key = std::move(key);
  m->done = std::move(done);
  Enqueue(std::move(m));
}

LedgerReply Ledger::SubmitBatch(RequestKey key, std::vector<TransferSpec> specs,
                                ResultEncoder encoder) {
  if (std::optional<Rejection> bad = LedgerEngine::ValidateShape(specs)) {
    LedgerReply reply;
    reply.status = RejectionStatus(*bad);
    reply.rejection = *bad;
    return reply;
  }
  auto m = std::make_unique<BatchMutation>(std::move(specs), std::move(encoder));
  m->key = std::move(key);
  return SubmitAndWait(std::move(m));
}

LedgerReply Ledger::RequestWithdrawal(RequestKey key, LenderId lender, AccountId wallet,
                                      AccountId settlement, Money amount, std::string destination,
                                      WithdrawalEncoder encode) {
  LedgerReply reply;
  if (!amount.is_positive()) {
    reply.status = absl::InvalidArgumentError("amount must be positive");
    return reply;
  }
  auto m = std::make_unique<WithdrawalRequestMutation>(lender, wallet, settlement, amount,
                                                       std::move(destination), std::move(encode));
  m->key = std::move(key);
  return SubmitAndWait(std::move(m));
}

LedgerReply Ledger::AdvanceWithdrawal(RequestKey key, WithdrawalId id, WithdrawalState to,
                                      std::string note, WithdrawalEncoder encode) {
  LedgerReply reply;
  absl::StatusOr<Withdrawal> known = store_->GetWithdrawal(id);
  if (!known.ok()) {
    reply.status = known.status();
    return reply;
  }
  absl::StatusOr<Hold> hold = store_->GetTransfer(known->hold_id);
  if (!hold.ok()) {
    reply.status = hold.status();
    return reply;
  }
  auto m = std::make_unique<AdvanceWithdrawalMutation>(
      *std::move(known), hold->transfer.credit_account_id, to, std::move(note), std::move(encode));
  m->key = std::move(key);
  return SubmitAndWait(std::move(m));
}

absl::Status ValidateNewAccount(const NewAccount& account) {
  const bool must_not_go_negative = account.kind == AccountKind::kLenderWallet ||
                                    account.kind == AccountKind::kSponsorBudget;
  if (must_not_go_negative && !account.flags.debits_must_not_exceed_credits) {
    return absl::InvalidArgumentError(
        "lender wallets and sponsor budgets must set debits_must_not_exceed_credits");
  }
  if (account.kind == AccountKind::kLenderWallet && account.owner_type != OwnerType::kLender) {
    return absl::InvalidArgumentError("a lender wallet must be owned by a lender");
  }
  if (account.flags.debits_must_not_exceed_credits && account.flags.credits_must_not_exceed_debits) {
    return absl::InvalidArgumentError("an account takes at most one balance constraint");
  }
  return absl::OkStatus();
}

LedgerReply Ledger::CreateAccount(const RequestKey& key, const NewAccount& account,
                                  const std::function<std::string(const Account&)>& encode,
                                  Account* created) {
  LedgerReply reply;
  if (absl::Status valid = ValidateNewAccount(account); !valid.ok()) {
    reply.status = valid;
    return reply;
  }
  absl::StatusOr<std::optional<IdempotencyRecord>> stored =
      store_->FindIdempotency(key.caller, key.request_id);
  if (!stored.ok()) {
    reply.status = stored.status();
    return reply;
  }
  if (stored->has_value()) {
    reply = Replay(**stored, key);
    if (!reply.status.ok() || !reply.replayed) return reply;
    // Same body, so the same owner key: the account it opened.
    absl::StatusOr<std::optional<Account>> found = store_->FindAccountByOwner(
        account.owner_type, account.owner_id, account.kind, account.currency);
    if (!found.ok() || !found->has_value()) {
      reply.status = found.ok() ? absl::InternalError("replayed account is missing") : found.status();
      return reply;
    }
    *created = **found;
    reply.payload = encode(*created);
    return reply;
  }
  IdempotencyRecord record{.caller = key.caller, .request_id = key.request_id,
                           .method = key.method, .body_hash = key.body_hash};
  absl::StatusOr<Account> made = store_->CreateAccount(account, clock_->Now(), record);
  if (!made.ok()) {
    reply.status = made.status();
    return reply;
  }
  *created = *made;
  reply.payload = encode(*made);
  reply.committed_at = made->created_at;
  return reply;
}

absl::StatusOr<size_t> Ledger::ExpireHolds(size_t limit) {
  ML_ASSIGN_OR_RETURN(std::vector<HoldId> expired, store_->ListExpiredHolds(clock_->Now(), limit));
  // Submitted together so that the committer expires them in a few grouped transactions.
  absl::Mutex mu;
  size_t answered = 0, voided = 0;
  bool all_answered = expired.empty();
  for (HoldId hold : expired) {
    RequestKey none;  // system work: no idempotency record
    TransferSpec spec = LedgerEngine::ExpirySpec(hold);
    // A hold on a loan names it, so the loan's held amount follows (ledger_mutation.h).
    if (absl::StatusOr<Hold> known = store_->GetTransfer(hold); known.ok()) {
      spec.references = known->transfer.references;
    }
    SubmitBatchAsync(none, {std::move(spec)}, {}, [&](LedgerReply reply) {
      absl::MutexLock lock(&mu);
      if (reply.status.ok()) ++voided;
      if (++answered == expired.size()) all_answered = true;
    });
  }
  absl::MutexLock lock(&mu);
  mu.Await(absl::Condition(&all_answered));
  return voided;
}

void Ledger::CommitterLoop() {
  while (true) {
    std::vector<std::unique_ptr<Mutation>> group;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](Ledger* l) ABSL_EXCLUSIVE_LOCKS_REQUIRED(l->mu_) {
            return l->stopping_ || !l->queue_.empty();
          },
          this));
      if (stopping_) return;
      size_t transfers = 0;
      while (!queue_.empty() &&
             (group.empty() || transfers + queue_.front()->TransferCount() <=
                                   options_.max_group_transfers)) {
        transfers += queue_.front()->TransferCount();
        group.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    if (options_.outbox_backlog != nullptr) options_.outbox_backlog->WaitForRoom();
    CommitGroup(group);
  }
}

void Ledger::CommitGroup(std::vector<std::unique_ptr<Mutation>>& group) {
  absl::Status status;
  for (int attempt = 0; attempt < options_.max_commit_attempts; ++attempt) {
    status = TryCommit(group);
    // Aborted: a conflict. AlreadyExists from the write: another process took a key (a
    // request id or client-chosen transfer id) after our load; the retry's load sees it.
    if (status.code() != absl::StatusCode::kAborted &&
        status.code() != absl::StatusCode::kAlreadyExists) {
      break;
    }
  }
  if (status.code() == absl::StatusCode::kAlreadyExists) {
    status = absl::AbortedError(absl::StrCat("commit kept conflicting: ", status.message()));
  }
  // A failure that is neither a conflict nor an outage came from one mutation's data: commit
  // each alone, so that one bad request cannot fail the others it happened to share a group with.
  if (!status.ok() && !IsTransient(status) && group.size() > 1) {
    for (auto& m : group) {
      std::vector<std::unique_ptr<Mutation>> alone;
      alone.push_back(std::move(m));
      CommitGroup(alone);
    }
    return;
  }
  for (auto& m : group) {
    if (!status.ok()) {
      m->reply = LedgerReply{};
      m->reply.status = status;
    }
    m->done(std::move(m->reply));
  }
}

absl::Status Ledger::TryCommit(std::vector<std::unique_ptr<Mutation>>& group) {
  // Whole microseconds, as PostgreSQL keeps timestamps: a fresh answer shows exactly what a read
  // (or a replay, which reads the transfers back) shows later.
  const absl::Time now = absl::FromUnixMicros(absl::ToUnixMicros(clock_->Now()));
  // Phase times for the diagnostics log (wall time: how long, not when).
  absl::Time t0 = absl::Now(), t1 = t0, t2 = t0, t3 = t0;
  size_t ntransfers = 0;
  // What the last attempt wrote, for options_.recent_transfers once it has committed.
  std::vector<Transfer> written_transfers;
  std::vector<Account> written_accounts;
  size_t written_events = 0;
  absl::Status st = store_->Transact([&](LedgerTxn& txn) -> absl::Status {
    written_transfers.clear();
    written_accounts.clear();
    written_events = 0;
    LoadRequest request;
    size_t ids_needed = 0, withdrawal_ids = 0, repayment_ids = 0;
    for (const auto& m : group) {
      m->Collect(&request);
      ids_needed += m->IdsNeeded();
      if (m->NeedsWithdrawalId()) ++withdrawal_ids;
      if (m->NeedsRepaymentId()) ++repayment_ids;
      if (!m->key.request_id.empty()) request.idempotency.emplace_back(m->key.caller, m->key.request_id);
    }
    ML_ASSIGN_OR_RETURN(Loaded loaded, txn.LoadForUpdate(request));
    t1 = absl::Now();
    std::vector<TransferId> ids;
    if (ids_needed > 0) {
      // Allocate spares so that ids a client chose in this same group can be skipped.
      ML_ASSIGN_OR_RETURN(ids, txn.AllocateTransferIds(ids_needed + request.client_ids.size()));
      absl::flat_hash_set<TransferId> chosen(request.client_ids.begin(), request.client_ids.end());
      ids.erase(std::remove_if(ids.begin(), ids.end(),
                               [&](TransferId id) { return chosen.contains(id); }),
                ids.end());
    }
    Mutation::Group g{.working = WorkingSet(Loaded{})};
    ML_ASSIGN_OR_RETURN(g.fresh_withdrawal_ids, txn.AllocateWithdrawalIds(withdrawal_ids));
    ML_ASSIGN_OR_RETURN(g.fresh_repayment_ids, txn.AllocateRepaymentIds(repayment_ids));
    // Mutations take ids from the back: reversed, the first applied gets the lowest, so that
    // ids follow the order in which withdrawals and repayments were applied.
    std::reverse(g.fresh_withdrawal_ids.begin(), g.fresh_withdrawal_ids.end());
    std::reverse(g.fresh_repayment_ids.begin(), g.fresh_repayment_ids.end());
    absl::flat_hash_map<std::pair<std::string, std::string>, IdempotencyRecord> records;
    for (IdempotencyRecord& r : loaded.records) {
      auto k = std::make_pair(r.caller, r.request_id);
      records.emplace(std::move(k), std::move(r));
    }
    for (Withdrawal& w : loaded.withdrawals) g.withdrawals.emplace(w.id, w);
    for (LoanId loan : request.loan_funders) g.funders[loan];  // loaded, possibly none
    for (LoanFunder& f : loaded.funders) g.funders[f.loan_id].insert_or_assign(f.account_id, f);
    for (FunderBook& b : loaded.books) {
      const LoanId loan = b.loan_id;
      g.books.insert_or_assign(loan, std::move(b));
    }
    loaded.books.clear();
    for (LenderId lender : request.baskets) g.baskets[lender];
    for (BasketItem& item : loaded.basket_items) g.baskets[item.lender_id].push_back(item);
    for (LoanId loan : request.loans_open_holds) g.open_holds[loan];
    for (const Hold& h : loaded.holds) {
      if (h.state == HoldState::kPending && h.transfer.references.loan_id &&
          g.open_holds.contains(*h.transfer.references.loan_id)) {
        g.open_holds[*h.transfer.references.loan_id].push_back(h.transfer.id);
      }
    }
    loaded.records.clear();
    loaded.withdrawals.clear();
    loaded.funders.clear();
    loaded.basket_items.clear();
    g.working = WorkingSet(std::move(loaded));

    size_t next_id = 0;
    BatchContext context{.now = now, .request_id = "", .next_id = [&]() {
                           ML_CHECK(next_id < ids.size(), "ran out of allocated transfer ids");
                           return ids[next_id++];
                         }};
    std::vector<IdempotencyRecord> fresh_records;
    for (auto& m : group) {
      auto key = std::make_pair(m->key.caller, m->key.request_id);
      if (!m->key.request_id.empty()) {
        if (auto it = records.find(key); it != records.end()) {
          m->reply = Replay(it->second, m->key);
          continue;
        }
      }
      context.request_id = m->key.request_id;
      m->reply = m->Apply(g, context);
      if (m->reply.status.ok()) FollowLoanTransfers(g, m->reply.transfers, context);
      if (m->key.request_id.empty() || IsTransient(m->reply.status)) continue;
      IdempotencyRecord record{.caller = m->key.caller, .request_id = m->key.request_id,
                               .method = m->key.method, .body_hash = m->key.body_hash,
                               .code = m->reply.status.code(),
                               .message = std::string(m->reply.status.message()),
                               .payload = m->reply.payload};
      records.emplace(key, record);
      fresh_records.push_back(std::move(record));
    }
    t2 = absl::Now();
    CommitSet commit = g.working.TakeCommitSet();
    commit.idempotency = std::move(fresh_records);
    ntransfers = commit.transfers.size();
    // Two steps of one withdrawal in a group: the row is written once, in its final state.
    absl::flat_hash_map<WithdrawalId, size_t> last_change;
    for (size_t i = 0; i < g.changed_withdrawals.size(); ++i) {
      last_change.insert_or_assign(g.changed_withdrawals[i].id, i);
    }
    for (size_t i = 0; i < g.changed_withdrawals.size(); ++i) {
      if (last_change.at(g.changed_withdrawals[i].id) == i) {
        commit.withdrawals.push_back(std::move(g.changed_withdrawals[i]));
      }
    }
    for (auto& [key, funder] : g.changed_funders) commit.funders.push_back(std::move(funder));
    std::sort(commit.funders.begin(), commit.funders.end(),
              [](const LoanFunder& a, const LoanFunder& b) {
                return std::tie(a.loan_id, a.account_id) < std::tie(b.loan_id, b.account_id);
              });
    commit.funder_additions = std::move(g.funder_additions);
    commit.basket_inserts = std::move(g.basket_inserts);
    commit.basket_deletes = std::move(g.basket_deletes);
    commit.repayments = std::move(g.repayments);
    commit.books_to_open = std::move(g.books_to_open);
    for (LoanId loan : g.changed_books) commit.books.push_back(std::move(g.books.at(loan)));
    std::sort(commit.books.begin(), commit.books.end(),
              [](const FunderBook& a, const FunderBook& b) { return a.loan_id < b.loan_id; });
    if (commit.empty()) return absl::OkStatus();
    written_events = commit.events.size();
    absl::Status w = txn.Write(commit);
    t3 = absl::Now();
    if (options_.recent_transfers != nullptr) {
      written_transfers = std::move(commit.transfers);
      written_accounts = std::move(commit.accounts);
    }
    return w;
  });
  const absl::Time t4 = absl::Now();
  if (st.ok() && options_.recent_transfers != nullptr) {
    options_.recent_transfers->Remember(std::move(written_transfers), std::move(written_accounts));
  }
  if (st.ok() && options_.outbox_backlog != nullptr) {
    options_.outbox_backlog->Committed(written_events);
  }
  if (options_.log_groups_of_transfers > 0 && ntransfers >= options_.log_groups_of_transfers) {
    auto ms = [](absl::Duration d) { return absl::StrCat(absl::ToDoubleMilliseconds(d)); };
    LogInfo("ledger_commit", {{"transfers", absl::StrCat(ntransfers)},
                              {"mutations", absl::StrCat(group.size())},
                              {"load_ms", ms(t1 - t0)},
                              {"apply_ms", ms(t2 - t1)},
                              {"write_ms", ms(t3 - t2)},
                              {"commit_ms", ms(t4 - t3)},
                              {"ok", st.ok() ? "true" : "false"}});
  }
  return st;
}

}  // namespace microlend::lending
