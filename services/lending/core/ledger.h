// Ledger: the one door to money movement. Every state-changing ledger operation (a linked batch,
// a deposit, a withdrawal step, a hold expiry) becomes a Mutation queued to a single committer
// thread, which takes everything queued (up to a group limit), runs it in ONE database
// transaction — load and lock what the group touches, apply each mutation in order with the
// LedgerEngine, write, commit (one fsync) — and only then answers each caller. Each mutation
// stays all-or-nothing on its own: a rejected one writes nothing but its idempotency record.
//
// Idempotency: a mutation carries a RequestKey (caller, request_id, method, body hash). The
// outcome — success or rejection — is recorded in the same transaction as the effect, with an
// opaque payload the adapter encoded, so a retry gets the original answer marked `replayed`.
// The same key with a different method or body is AlreadyExists and changes nothing.
// Transient failures (Aborted after retries, Unavailable) are not remembered: retry the id.
//
// Thread-safe. Submit* may be called from any number of threads; they block (or call back)
// until the outcome is durable. Beyond `max_queued_mutations` waiting, new work gets
// ResourceExhausted at once instead of queueing.
#ifndef MICROLEND_SERVICES_LENDING_CORE_LEDGER_H_
#define MICROLEND_SERVICES_LENDING_CORE_LEDGER_H_

#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "services/lending/core/ledger_engine.h"
#include "services/lending/core/ledger_store.h"
#include "services/lending/core/outbox_backlog.h"
#include "services/lending/core/recent_transfers.h"

namespace microlend::lending {

struct RequestKey {
  std::string caller;
  std::string request_id;
  std::string method;
  std::string body_hash;
};

// Validates a client request id: 1..128 chars of [A-Za-z0-9._:-]. InvalidArgument otherwise.
absl::Status ValidateRequestId(const std::string& request_id);

// A recorded request id met again: OK when `key` is the same request (same method and body), so
// the remembered outcome is its answer; AlreadyExists naming the original method otherwise.
absl::Status CheckSameRequest(const IdempotencyRecord& stored, const RequestKey& key);

// The rules an account must meet to be opened: lender wallets and sponsor budgets can never go
// negative (debits_must_not_exceed_credits), a lender wallet is owned by a lender, and an account
// takes at most one balance constraint. InvalidArgument naming the rule otherwise.
absl::Status ValidateNewAccount(const NewAccount& account);

// Turns an outcome into the bytes remembered for replays. Supplied by the adapter (it knows the
// wire format); called inside the commit, so it must be cheap and must not block. A linked batch
// without a `success` encoder is remembered as a BatchRecord: its fresh reply carries the
// transfers, and a replay carries the record for the adapter to read them back.
struct ResultEncoder {
  std::function<std::string(const std::vector<Transfer>&, absl::Time committed_at)> success;
  std::function<std::string(const Rejection&)> rejection;
};

// A linked batch's success as the Ledger remembers it when the adapter supplies no success
// encoder: its transfers' ids and commit time, not their bodies (ADR 0008). Transfers are
// immutable, so a replay that reads them back by id answers exactly as the original did, and the
// record stays a few bytes per transfer instead of the whole encoded response.
struct BatchRecord {
  std::vector<TransferId> transfer_ids;  // in batch order
  absl::Time committed_at;
};
// The encoding starts with a zero byte, which no protobuf message does (field number 0 is
// invalid), so a payload tells by its first byte whether it is a BatchRecord or an adapter's own
// encoding. Decode gives nullopt for anything that is not a well-formed BatchRecord.
std::string EncodeBatchRecord(const std::vector<Transfer>& transfers, absl::Time committed_at);
std::optional<BatchRecord> DecodeBatchRecord(std::string_view payload);

struct LedgerReply {
  absl::Status status;  // OK, the rejection's status, AlreadyExists (key reuse), transient errors
  bool replayed = false;
  std::string payload;  // the remembered encoding; set for fresh and replayed outcomes alike
  std::vector<Transfer> transfers;     // fresh success only
  std::optional<Rejection> rejection;  // fresh rejection only
  std::optional<Withdrawal> withdrawal;  // fresh withdrawal steps only
  absl::Time committed_at;
};

struct LedgerOptions {
  size_t max_group_transfers = 20'000;    // transfers per database transaction
  size_t max_queued_mutations = 100'000;  // beyond this: ResourceExhausted
  int max_commit_attempts = 5;            // a group hitting Aborted is retried this often
  absl::Duration outbox_deadline = absl::Seconds(60);
  // Diagnostics: a group of at least this many transfers logs how long each phase took
  // ("ledger_commit": load and lock, apply, write, commit). 0: never.
  size_t log_groups_of_transfers = 0;
  // Handed every committed group's transfers and accounts (for the outbox relay); may be null.
  RecentTransfers* recent_transfers = nullptr;
  // Counts the events each group commits; the committer waits for room in it before each group
  // (ADR 0010). May be null: no waiting.
  OutboxBacklog* outbox_backlog = nullptr;
};

// A unit of work for the committer (internal; see ledger.cc for the kinds).
class Mutation;

class Ledger {
 public:
  // `store` and `clock` must outlive the Ledger. Start() launches the committer thread.
  Ledger(LedgerStore* store, const Clock* clock, LedgerOptions options = {});
  ~Ledger();
  Ledger(const Ledger&) = delete;
  Ledger& operator=(const Ledger&) = delete;

  void Start();
  void Stop();  // answers queued work with Unavailable; idempotent

  LedgerReply SubmitBatch(RequestKey key, std::vector<TransferSpec> specs, ResultEncoder encoder);
  void SubmitBatchAsync(RequestKey key, std::vector<TransferSpec> specs, ResultEncoder encoder,
                        std::function<void(LedgerReply)> done);

  // Opens an account (idempotent per key; `encode` makes the remembered payload).
  LedgerReply CreateAccount(const RequestKey& key, const NewAccount& account,
                            const std::function<std::string(const Account&)>& encode,
                            Account* created);

  // Voids holds past their expiry (state kExpired); returns how many expired.
  absl::StatusOr<size_t> ExpireHolds(size_t limit);

  // Withdrawal workflow (see ledger_store.h Withdrawal): the hold and the state change commit
  // together. `encode` makes the remembered payload from the withdrawal after the step.
  using WithdrawalEncoder = std::function<std::string(const Withdrawal&)>;
  LedgerReply RequestWithdrawal(RequestKey key, LenderId lender, AccountId wallet,
                                AccountId settlement, Money amount, std::string destination,
                                WithdrawalEncoder encode);
  // kApproved, kPaid (posts the hold), kRejected / kCancelled (void the hold).
  LedgerReply AdvanceWithdrawal(RequestKey key, WithdrawalId id, WithdrawalState to,
                                std::string note, WithdrawalEncoder encode);

  // Queues a mutation (ledger_mutation.h; the loan lifecycle's kinds) and waits for its durable
  // outcome. Its `key` may be empty for system work (no idempotency record).
  LedgerReply Submit(std::unique_ptr<Mutation> mutation);
  // Queues every mutation at once, in order, and waits for all their outcomes (one reply each,
  // in the same order). Queued together, they commit in as few transactions as the group cap
  // allows, each applied after the ones before it; each still succeeds or fails on its own.
  // When the queue cannot take them all, those that do not fit are answered ResourceExhausted.
  std::vector<LedgerReply> SubmitAll(std::vector<std::unique_ptr<Mutation>> mutations);

  // The remembered answer when `key`'s request id was already used (a replay, or AlreadyExists
  // for a different request); nullopt when it is new or has no id. Callers whose checks before
  // Submit depend on state that the original request changed ask this first, so that a retry
  // replays instead of failing those checks.
  std::optional<LedgerReply> Recorded(const RequestKey& key);
  // Recorded for each key, in one read of the store; answers in the order of `keys`.
  std::vector<std::optional<LedgerReply>> RecordedAll(const std::vector<RequestKey>& keys);

  LedgerStore* store() const { return store_; }
  const Clock* clock() const { return clock_; }

 private:
  void Enqueue(std::unique_ptr<Mutation> mutation);
  // Queues all under one lock, in order; those refused (stopped, queue full) are answered at once.
  void EnqueueAll(std::vector<std::unique_ptr<Mutation>> mutations);
  LedgerReply SubmitAndWait(std::unique_ptr<Mutation> mutation);
  void CommitterLoop();
  void CommitGroup(std::vector<std::unique_ptr<Mutation>>& group);
  absl::Status TryCommit(std::vector<std::unique_ptr<Mutation>>& group);

  LedgerStore* store_;
  const Clock* clock_;
  LedgerOptions options_;
  absl::Mutex mu_;
  std::deque<std::unique_ptr<Mutation>> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool running_ ABSL_GUARDED_BY(mu_) = false;
  std::thread committer_ ABSL_GUARDED_BY(mu_);
};

}  // namespace microlend::lending

#endif  // MICROLEND_SERVICES_LENDING_CORE_LEDGER_H_
