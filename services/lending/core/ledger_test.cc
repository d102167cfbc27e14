// The Ledger facade (group committer, idempotency, withdrawals, expiry) and the outbox relay,
// against the in-memory FakeLedgerStore.
#include "services/lending/core/ledger.h"

#include <atomic>
#include <thread>

#include "common/strings.h"
#include "gtest/gtest.h"
#include "services/lending/core/ledger_mutation.h"
#include "services/lending/core/outbox_backlog.h"
#include "services/lending/core/outbox_relay.h"
#include "services/lending/core/wallets.h"
#include "services/lending/testing/fake_ledger_store.h"

namespace microlend::lending {
namespace {

const absl::Time kStart = absl::FromUnixSeconds(1'800'000'000);

Money Usd(std::string_view amount) { return *Money::Parse(amount, "USD"); }

RequestKey Key(std::string id, std::string body = "body", std::string caller = "svc") {
  return RequestKey{.caller = std::move(caller), .request_id = std::move(id),
                    .method = "Test.Batch", .body_hash = std::move(body)};
}

ResultEncoder Encoder() {
  return {.success = [](const std::vector<Transfer>& t, absl::Time) {
            return absl::StrCat("ok:", t.size(), ":", t.empty() ? 0 : t[0].id.value());
          },
          .rejection = [](const Rejection& r) {
            return absl::StrCat("rejected:", r.item_index, ":", static_cast<int>(r.reason));
          }};
}

class LedgerTest : public ::testing::Test {
 protected:
  LedgerTest() : clock_(kStart), ledger_(&store_, &clock_), wallets_(&ledger_) { ledger_.Start(); }
  ~LedgerTest() override { ledger_.Stop(); }

  Account Wallet(int64_t lender) { return *wallets_.OpenWallet(LenderId(lender), Currency::Usd()); }
  int64_t Available(int64_t lender) {
    return wallets_.FindWallet(LenderId(lender), Currency::Usd())->available();
  }
  LedgerReply Deposit(int64_t lender, std::string_view amount, std::string id) {
    return wallets_.Deposit(Key(std::move(id), absl::StrCat("dep", lender, AsAbsl(amount))), LenderId(lender),
                            Usd(amount), "ext-1", Encoder());
  }
  TransferSpec Move(const Account& from, const Account& to, std::string_view amount,
                    bool pending = false) {
    TransferSpec s;
    s.debit_account_id = from.id;
    s.credit_account_id = to.id;
    s.amount = Usd(amount);
    s.code = TransferCode::kCorrection;
    s.pending = pending;
    return s;
  }
  // `outbox_deadline`: events created before it must have been published (only the relay test
  // runs a relay, so the others judge balances alone).
  void ExpectReconciled(absl::Time outbox_deadline = absl::InfinitePast()) {
    absl::StatusOr<ReconcileData> r = store_.Reconcile({}, true, outbox_deadline);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_TRUE(r->findings.empty()) << r->findings.size() << " findings, first: "
                                     << (r->findings.empty() ? "" : r->findings[0].detail);
  }

  FakeLedgerStore store_;
  FakeClock clock_;
  Ledger ledger_;
  Wallets wallets_;
};

TEST_F(LedgerTest, DepositCreditsWalletAndRetryIsReplayed) {
  LedgerReply first = Deposit(1, "25.00", "d1");
  ASSERT_TRUE(first.status.ok()) << first.status;
  EXPECT_FALSE(first.replayed);
  ASSERT_EQ(first.transfers.size(), 1u);
  LedgerReply again = Deposit(1, "25.00", "d1");
  ASSERT_TRUE(again.status.ok()) << again.status;
  EXPECT_TRUE(again.replayed);
  EXPECT_EQ(again.payload, first.payload);
  EXPECT_EQ(Available(1), 2500);  // applied once
  ExpectReconciled();
}

TEST_F(LedgerTest, SameRequestIdWithDifferentBodyIsAlreadyExistsAndChangesNothing) {
  ASSERT_TRUE(Deposit(1, "25.00", "d1").status.ok());
  LedgerReply other = Deposit(1, "50.00", "d1");
  EXPECT_EQ(other.status.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(Available(1), 2500);
}

TEST_F(LedgerTest, RequestIdsAreScopedPerCaller) {
  Account a = Wallet(1);
  ASSERT_TRUE(Deposit(1, "10.00", "same").status.ok());
  Account b = Wallet(2);
  LedgerReply r = ledger_.SubmitBatch(Key("same", "dep110.00", "someone-else"),
                                      {Move(a, b, "1.00")}, Encoder());
  EXPECT_TRUE(r.status.ok()) << r.status;
  EXPECT_FALSE(r.replayed);
}

TEST_F(LedgerTest, OverdraftIsRejectedRememberedAndMovesNothing) {
  Account a = Wallet(1), b = Wallet(2);
  ASSERT_TRUE(Deposit(1, "10.00", "d1").status.ok());
  LedgerReply r = ledger_.SubmitBatch(Key("x1"), {Move(a, b, "10.01")}, Encoder());
  EXPECT_EQ(r.status.code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(r.rejection.has_value());
  EXPECT_EQ(r.rejection->reason, RejectReason::kExceedsCredits);
  EXPECT_EQ(Available(1), 1000);
  EXPECT_EQ(Available(2), 0);
  // A retry gets the remembered failure, even after the wallet could afford it.
  ASSERT_TRUE(Deposit(1, "5.00", "d2").status.ok());
  LedgerReply retry = ledger_.SubmitBatch(Key("x1"), {Move(a, b, "10.01")}, Encoder());
  EXPECT_EQ(retry.status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(retry.replayed);
  EXPECT_EQ(retry.payload, r.payload);
  EXPECT_EQ(Available(2), 0);
  ExpectReconciled();
}

TEST_F(LedgerTest, LinkedBatchIsAllOrNothing) {
  Account a = Wallet(1), b = Wallet(2), c = Wallet(3);
  ASSERT_TRUE(Deposit(1, "30.00", "d1").status.ok());
  LedgerReply r = ledger_.SubmitBatch(
      Key("batch"), {Move(a, b, "10.00"), Move(a, c, "10.00"), Move(a, b, "10.01")}, Encoder());
  EXPECT_EQ(r.status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(r.rejection->item_index, 2);
  EXPECT_EQ(Available(1), 3000);
  EXPECT_EQ(Available(2), 0);
  EXPECT_EQ(Available(3), 0);
}

TEST_F(LedgerTest, BatchWithoutSuccessEncoderIsRememberedByTransferIdsAndReplaysThem) {
  Account a = Wallet(1), b = Wallet(2), c = Wallet(3);
  ASSERT_TRUE(Deposit(1, "30.00", "d1").status.ok());
  const ResultEncoder by_reference{.success = nullptr, .rejection = Encoder().rejection};
  LedgerReply first = ledger_.SubmitBatch(
      Key("refs"), {Move(a, b, "1.00"), Move(a, c, "2.00"), Move(c, b, "0.50")}, by_reference);
  ASSERT_TRUE(first.status.ok()) << first.status;
  ASSERT_EQ(first.transfers.size(), 3u);
  LedgerReply again = ledger_.SubmitBatch(
      Key("refs"), {Move(a, b, "1.00"), Move(a, c, "2.00"), Move(c, b, "0.50")}, by_reference);
  ASSERT_TRUE(again.status.ok()) << again.status;
  EXPECT_TRUE(again.replayed);
  EXPECT_TRUE(again.transfers.empty());  // the adapter reads them back by id
  std::optional<BatchRecord> record = DecodeBatchRecord(again.payload);
  ASSERT_TRUE(record.has_value());
  EXPECT_EQ(record->committed_at, first.committed_at);
  ASSERT_EQ(record->transfer_ids.size(), 3u);
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(record->transfer_ids[i], first.transfers[i].id);
  absl::StatusOr<std::vector<Transfer>> read_back = store_.GetTransfers(record->transfer_ids);
  ASSERT_TRUE(read_back.ok()) << read_back.status();
  EXPECT_EQ(*read_back, first.transfers);
  EXPECT_EQ(Available(1), 2700);  // applied once

  LedgerReply rejected =
      ledger_.SubmitBatch(Key("refs-bad"), {Move(a, b, "1.00"), Move(b, c, "99.00")}, by_reference);
  EXPECT_EQ(rejected.status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(rejected.payload, "rejected:1:" + std::to_string(static_cast<int>(rejected.rejection->reason)));
}

TEST(BatchRecordTest, RoundTripsIdsInBatchOrderWhateverTheirGaps) {
  std::vector<Transfer> transfers;
  for (int64_t id : std::vector<int64_t>{41, 42, 43, 7, 9'000'000'000'000, 44}) {
    Transfer t;
    t.id = TransferId(id);
    transfers.push_back(t);
  }
  const absl::Time at = absl::FromUnixMicros(1'800'000'000'123'456);
  const std::string encoded = EncodeBatchRecord(transfers, at);
  std::optional<BatchRecord> record = DecodeBatchRecord(encoded);
  ASSERT_TRUE(record.has_value());
  EXPECT_EQ(record->committed_at, at);
  ASSERT_EQ(record->transfer_ids.size(), transfers.size());
  for (size_t i = 0; i < transfers.size(); ++i) EXPECT_EQ(record->transfer_ids[i], transfers[i].id);
  EXPECT_LT(encoded.size(), 40u);  // a few bytes per id, not the transfers' bodies
}

TEST(BatchRecordTest, AnythingElseIsNotABatchRecord) {
  Transfer t;
  t.id = TransferId(5);
  const std::string encoded = EncodeBatchRecord({t}, absl::FromUnixSeconds(1));
  EXPECT_FALSE(DecodeBatchRecord("").has_value());
  EXPECT_FALSE(DecodeBatchRecord("\x0a\x02\x08\x05").has_value());  // a protobuf message
  EXPECT_FALSE(DecodeBatchRecord(encoded.substr(0, encoded.size() - 1)).has_value());  // cut short
  EXPECT_FALSE(DecodeBatchRecord(encoded + "x").has_value());                         // trailing bytes
  EXPECT_TRUE(DecodeBatchRecord(encoded).has_value());
}

TEST_F(LedgerTest, InvalidShapeIsRefusedBeforeQueueingAndNotRemembered) {
  Account a = Wallet(1);
  LedgerReply r = ledger_.SubmitBatch(Key("bad"), {Move(a, a, "1.00")}, Encoder());
  EXPECT_EQ(r.status.code(), absl::StatusCode::kInvalidArgument);
  for (const IdempotencyRecord& rec : store_.AllIdempotency()) EXPECT_NE(rec.request_id, "bad");
  LedgerReply empty = ledger_.SubmitBatch(Key("empty"), {}, Encoder());
  EXPECT_EQ(empty.status.code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(LedgerTest, AbortedCommitIsRetriedTransparently) {
  Wallet(1);
  store_.FailNextTransact(absl::AbortedError("serialization failure"));
  LedgerReply r = Deposit(1, "1.00", "d1");
  EXPECT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(Available(1), 100);
}

TEST_F(LedgerTest, UnavailableCommitIsNotRememberedSoTheRetryApplies) {
  Wallet(1);
  store_.FailNextWrite(absl::UnavailableError("connection lost"));
  LedgerReply r = Deposit(1, "1.00", "d1");
  EXPECT_EQ(r.status.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(Available(1), 0);
  LedgerReply retry = Deposit(1, "1.00", "d1");
  EXPECT_TRUE(retry.status.ok()) << retry.status;
  EXPECT_FALSE(retry.replayed);
  EXPECT_EQ(Available(1), 100);
}

TEST_F(LedgerTest, ConcurrentSubmittersShareTransactionsAndAllApplyExactlyOnce) {
  constexpr int kThreads = 16, kPerThread = 200;
  for (int t = 0; t < kThreads; ++t) Wallet(t + 1);
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        if (Deposit(t + 1, "0.01", absl::StrCat("t", t, "-", i)).status.ok()) ++ok;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(ok.load(), kThreads * kPerThread);
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(Available(t + 1), kPerThread);
  EXPECT_EQ(store_.AllEvents().size(), static_cast<size_t>(kThreads * kPerThread));
  ExpectReconciled();
}

// Stands for a mutation of `transfers` transfers; records when the committer applies it.
class RecordingMutation final : public Mutation {
 public:
  RecordingMutation(int number, size_t transfers, std::vector<int>* applied)
      : number_(number), transfers_(transfers), applied_(applied) {}
  void Collect(LoadRequest*) const override {}
  size_t IdsNeeded() const override { return 0; }
  size_t TransferCount() const override { return transfers_; }
  LedgerReply Apply(Group&, const BatchContext&) override {
    applied_->push_back(number_);
    LedgerReply reply;
    reply.payload = absl::StrCat("applied ", number_);
    return reply;
  }

 private:
  int number_;
  size_t transfers_;
  std::vector<int>* applied_;  // only the committer thread appends
};

TEST_F(LedgerTest, MutationsSubmittedTogetherCommitInOrderInAsFewTransactionsAsTheCapAllows) {
  std::vector<int> applied;
  const int64_t before = store_.CommittedTransactions();
  // The default cap is 20,000 transfers a transaction: 6 of 5,000 fit in two.
  std::vector<std::unique_ptr<Mutation>> all;
  for (int i = 0; i < 6; ++i) all.push_back(std::make_unique<RecordingMutation>(i, 5'000, &applied));
  std::vector<LedgerReply> replies = ledger_.SubmitAll(std::move(all));
  ASSERT_EQ(replies.size(), 6u);
  for (int i = 0; i < 6; ++i) {
    EXPECT_TRUE(replies[i].status.ok()) << replies[i].status;
    EXPECT_EQ(replies[i].payload, absl::StrCat("applied ", i));
  }
  EXPECT_EQ(applied, (std::vector<int>{0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(store_.CommittedTransactions() - before, 2);

  // The same six submitted one by one: a transaction each.
  const int64_t between = store_.CommittedTransactions();
  for (int i = 0; i < 6; ++i) {
    EXPECT_TRUE(ledger_.Submit(std::make_unique<RecordingMutation>(10 + i, 5'000, &applied))
                    .status.ok());
  }
  EXPECT_EQ(store_.CommittedTransactions() - between, 6);
}

TEST_F(LedgerTest, SubmitAllToAStoppedLedgerAnswersEachUnavailable) {
  ledger_.Stop();
  std::vector<int> applied;
  std::vector<std::unique_ptr<Mutation>> all;
  for (int i = 0; i < 3; ++i) all.push_back(std::make_unique<RecordingMutation>(i, 1, &applied));
  std::vector<LedgerReply> replies = ledger_.SubmitAll(std::move(all));
  ASSERT_EQ(replies.size(), 3u);
  for (const LedgerReply& r : replies) EXPECT_EQ(r.status.code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(applied.empty());
}

TEST_F(LedgerTest, SubmitAllBeyondTheQueueCapAnswersTheRestResourceExhausted) {
  FakeLedgerStore store;
  Ledger small(&store, &clock_, LedgerOptions{.max_queued_mutations = 2});
  // SubmitAll queues under one lock, so the committer cannot drain the queue in between: the
  // first two are queued and the other three refused.
  small.Start();
  std::vector<int> applied;
  std::vector<std::unique_ptr<Mutation>> all;
  for (int i = 0; i < 5; ++i) all.push_back(std::make_unique<RecordingMutation>(i, 1, &applied));
  std::vector<LedgerReply> replies = small.SubmitAll(std::move(all));
  small.Stop();
  ASSERT_EQ(replies.size(), 5u);
  for (int i = 0; i < 2; ++i) EXPECT_TRUE(replies[i].status.ok()) << i << replies[i].status;
  for (int i = 2; i < 5; ++i) {
    EXPECT_EQ(replies[i].status.code(), absl::StatusCode::kResourceExhausted) << i;
  }
  EXPECT_EQ(applied, (std::vector<int>{0, 1}));
}

TEST_F(LedgerTest, DuplicateRequestIdsInOneGroupApplyOnce) {
  Wallet(1);
  std::vector<std::thread> threads;
  std::atomic<int> replays{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      LedgerReply r = Deposit(1, "3.00", "same-id");
      ASSERT_TRUE(r.status.ok()) << r.status;
      if (r.replayed) ++replays;
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(replays.load(), 7);
  EXPECT_EQ(Available(1), 300);
}

std::string EncodeWithdrawal(const Withdrawal& w) {
  return absl::StrCat("w:", w.id.value(), ":", static_cast<int>(w.state));
}

TEST_F(LedgerTest, WithdrawalHoldsThenPaysAfterApproval) {
  ASSERT_TRUE(Deposit(1, "100.00", "d1").status.ok());
  LedgerReply req = wallets_.RequestWithdrawal(Key("w1"), LenderId(1), Usd("60.00"), "iban-1",
                                                EncodeWithdrawal);
  ASSERT_TRUE(req.status.ok()) << req.status;
  ASSERT_TRUE(req.withdrawal.has_value());
  EXPECT_EQ(Available(1), 4000);  // held, not yet gone
  WithdrawalId id = req.withdrawal->id;
  LedgerReply early = ledger_.AdvanceWithdrawal(Key("w2"), id, WithdrawalState::kPaid, "bank-1",
                                                EncodeWithdrawal);
  EXPECT_EQ(early.status.code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(ledger_.AdvanceWithdrawal(Key("w3"), id, WithdrawalState::kApproved, "",
                                        EncodeWithdrawal).status.ok());
  LedgerReply paid = ledger_.AdvanceWithdrawal(Key("w4"), id, WithdrawalState::kPaid, "bank-1",
                                               EncodeWithdrawal);
  ASSERT_TRUE(paid.status.ok()) << paid.status;
  EXPECT_EQ(paid.withdrawal->state, WithdrawalState::kPaid);
  EXPECT_EQ(store_.GetWithdrawal(id)->destination, "iban-1");
  Account w = *wallets_.FindWallet(LenderId(1), Currency::Usd());
  EXPECT_EQ(w.balance(), 4000);
  EXPECT_EQ(w.debits_pending, 0);
  ExpectReconciled();
}

TEST_F(LedgerTest, RejectedWithdrawalReleasesTheHold) {
  ASSERT_TRUE(Deposit(1, "100.00", "d1").status.ok());
  LedgerReply req = wallets_.RequestWithdrawal(Key("w1"), LenderId(1), Usd("100.00"), "iban-1",
                                                EncodeWithdrawal);
  ASSERT_TRUE(req.status.ok());
  EXPECT_EQ(Available(1), 0);
  LedgerReply more = wallets_.RequestWithdrawal(Key("w2"), LenderId(1), Usd("0.01"), "iban-1",
                                                 EncodeWithdrawal);
  EXPECT_EQ(more.status.code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(ledger_.AdvanceWithdrawal(Key("w3"), req.withdrawal->id, WithdrawalState::kRejected,
                                        "kyc", EncodeWithdrawal).status.ok());
  EXPECT_EQ(Available(1), 10000);
  LedgerReply twice = ledger_.AdvanceWithdrawal(Key("w4"), req.withdrawal->id,
                                                WithdrawalState::kPaid, "x", EncodeWithdrawal);
  EXPECT_EQ(twice.status.code(), absl::StatusCode::kFailedPrecondition);
  ExpectReconciled();
}

TEST_F(LedgerTest, ExpiredHoldsAreVoidedByTheSweepAndCannotBePosted) {
  Account a = Wallet(1), b = Wallet(2);
  ASSERT_TRUE(Deposit(1, "50.00", "d1").status.ok());
  TransferSpec hold = Move(a, b, "50.00", /*pending=*/true);
  hold.timeout_ms = 45 * 60 * 1000;
  LedgerReply held = ledger_.SubmitBatch(Key("h1"), {hold}, Encoder());
  ASSERT_TRUE(held.status.ok()) << held.status;
  EXPECT_EQ(Available(1), 0);
  EXPECT_EQ(*ledger_.ExpireHolds(100), 0u);  // not yet
  clock_.Advance(absl::Minutes(46));
  TransferSpec post;
  post.pending_id = held.transfers[0].id;
  post.pending_action = PendingAction::kPost;
  LedgerReply late = ledger_.SubmitBatch(Key("p1"), {post}, Encoder());
  EXPECT_EQ(late.status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(*ledger_.ExpireHolds(100), 1u);
  EXPECT_EQ(Available(1), 5000);
  EXPECT_EQ(store_.GetTransfer(held.transfers[0].id)->state, HoldState::kExpired);
  EXPECT_EQ(*ledger_.ExpireHolds(100), 0u);  // resolves at most once
  ExpectReconciled();
}

TEST_F(LedgerTest, ManyExpiredHoldsExpireInOneSweep) {
  Account a = Wallet(1), b = Wallet(2);
  ASSERT_TRUE(Deposit(1, "50.00", "d1").status.ok());
  for (int i = 0; i < 50; ++i) {
    TransferSpec hold = Move(a, b, "1.00", /*pending=*/true);
    hold.timeout_ms = 1000;
    ASSERT_TRUE(ledger_.SubmitBatch(Key(absl::StrCat("h", i)), {hold}, Encoder()).status.ok());
  }
  EXPECT_EQ(Available(1), 0);
  clock_.Advance(absl::Seconds(2));
  EXPECT_EQ(*ledger_.ExpireHolds(1000), 50u);
  EXPECT_EQ(Available(1), 5000);
  EXPECT_EQ(*ledger_.ExpireHolds(1000), 0u);
  ExpectReconciled();
}

TEST_F(LedgerTest, StoppedLedgerAnswersUnavailable) {
  Wallet(1);
  ledger_.Stop();
  EXPECT_EQ(Deposit(1, "1.00", "d1").status.code(), absl::StatusCode::kUnavailable);
}

class FlakyPublisher final : public EventPublisher {
 public:
  absl::Status Publish(const std::vector<OutboxEvent>& events) override {
    if (fail_next_) {
      fail_next_ = false;
      return absl::UnavailableError("redis down");
    }
    for (const OutboxEvent& e : events) published.push_back(e.event_id);
    return absl::OkStatus();
  }
  bool fail_next_ = true;
  std::vector<std::string> published;
};

TEST_F(LedgerTest, OutboxRelayPublishesEveryEventInOrderDespiteAFailure) {
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(Deposit(1, "1.00", absl::StrCat("d", i)).status.ok());
  FlakyPublisher publisher;
  OutboxRelay relay(&store_, &publisher, &clock_, {.batch_size = 2});
  EXPECT_EQ(relay.RelayOnce().status().code(), absl::StatusCode::kUnavailable);
  size_t total = 0;
  while (true) {
    absl::StatusOr<size_t> n = relay.RelayOnce();
    ASSERT_TRUE(n.ok()) << n.status();
    if (*n == 0) break;
    total += *n;
  }
  EXPECT_EQ(total, 5u);
  std::vector<std::string> expected;
  for (const OutboxEvent& e : store_.AllEvents()) expected.push_back(e.event_id);
  EXPECT_EQ(publisher.published, expected);
  ExpectReconciled(clock_.Now() + absl::Seconds(1));  // every event was published
}


// An outbox with sequence gaps, as PostgreSQL produces them (rolled-back or late commits).
class GappyOutbox final : public OutboxSource {
 public:
  void Add(int64_t sequence, absl::Time created_at) {
    events_.push_back({.sequence = sequence, .event_id = absl::StrCat("e", sequence),
                       .kind = "test", .payload = "{}", .created_at = created_at});
    std::sort(events_.begin(), events_.end(),
              [](const OutboxEvent& a, const OutboxEvent& b) { return a.sequence < b.sequence; });
  }
  absl::StatusOr<std::vector<OutboxEvent>> FetchUnpublished(size_t limit) override {
    std::vector<OutboxEvent> out;
    for (const OutboxEvent& e : events_) {
      if (e.sequence > cursor_ && out.size() < limit) out.push_back(e);
    }
    return out;
  }
  absl::Status MarkPublished(const std::vector<int64_t>& sequences, absl::Time) override {
    for (int64_t s : sequences) cursor_ = std::max(cursor_, s);
    return absl::OkStatus();
  }
  absl::StatusOr<int64_t> PublishedThrough() override { return cursor_; }

 private:
  std::vector<OutboxEvent> events_;
  int64_t cursor_ = 0;
};

class RecordingPublisher final : public EventPublisher {
 public:
  absl::Status Publish(const std::vector<OutboxEvent>& events) override {
    for (const OutboxEvent& e : events) published.push_back(e.sequence);
    return absl::OkStatus();
  }
  std::vector<int64_t> published;
};

TEST(OutboxRelayTest, WaitsAtAFreshGapAndStepsOverItOnceSettled) {
  FakeClock clock(kStart);
  GappyOutbox outbox;
  for (int64_t s : {1, 2, 4}) outbox.Add(s, kStart);  // 3 may still be committing
  RecordingPublisher publisher;
  OutboxRelay relay(&outbox, &publisher, &clock, {.gap_settle = absl::Seconds(5)});
  EXPECT_EQ(*relay.RelayOnce(), 2u);
  EXPECT_EQ(*relay.RelayOnce(), 0u);  // 4 waits behind the gap
  clock.Advance(absl::Seconds(6));    // 3 never came: it rolled back
  EXPECT_EQ(*relay.RelayOnce(), 1u);
  EXPECT_EQ(publisher.published, (std::vector<int64_t>{1, 2, 4}));
}

TEST(OutboxRelayTest, ALateCommitFillingTheGapIsPublishedInOrder) {
  FakeClock clock(kStart);
  GappyOutbox outbox;
  for (int64_t s : {1, 2, 4}) outbox.Add(s, kStart);
  RecordingPublisher publisher;
  OutboxRelay relay(&outbox, &publisher, &clock);
  EXPECT_EQ(*relay.RelayOnce(), 2u);
  outbox.Add(3, kStart);  // the in-doubt commit becomes visible
  EXPECT_EQ(*relay.RelayOnce(), 2u);
  EXPECT_EQ(publisher.published, (std::vector<int64_t>{1, 2, 3, 4}));
}

TEST(OutboxRelayTest, EventsSharingASequenceArePublishedTogetherAndAGapAfterThemStillWaits) {
  FakeClock clock(kStart);
  GappyOutbox outbox;
  for (int64_t s : {1, 2, 2, 2, 3, 5}) outbox.Add(s, kStart);  // 2 is a row of three events
  RecordingPublisher publisher;
  OutboxRelay relay(&outbox, &publisher, &clock, {.gap_settle = absl::Seconds(5)});
  EXPECT_EQ(*relay.RelayOnce(), 5u);
  EXPECT_EQ(*relay.RelayOnce(), 0u);  // 5 waits behind 4
  EXPECT_EQ(publisher.published, (std::vector<int64_t>{1, 2, 2, 2, 3}));
}


// GappyOutbox and a publisher for a relay running on its own thread: every call under a lock,
// with a way to wait for the relay's rounds and publications.
class ThreadedOutbox final : public OutboxSource, public EventPublisher {
 public:
  void Add(int64_t sequence) {
    absl::MutexLock lock(&mu_);
    outbox_.Add(sequence, kStart);
  }
  absl::StatusOr<std::vector<OutboxEvent>> FetchUnpublished(size_t limit) override {
    absl::MutexLock lock(&mu_);
    ++rounds_;
    return outbox_.FetchUnpublished(limit);
  }
  absl::Status MarkPublished(const std::vector<int64_t>& sequences, absl::Time at) override {
    absl::MutexLock lock(&mu_);
    return outbox_.MarkPublished(sequences, at);
  }
  absl::StatusOr<int64_t> PublishedThrough() override {
    absl::MutexLock lock(&mu_);
    return outbox_.PublishedThrough();
  }
  absl::Status Publish(const std::vector<OutboxEvent>& events) override {
    absl::MutexLock lock(&mu_);
    published_ += events.size();
    return absl::OkStatus();
  }
  // Waits up to `timeout` until the relay has fetched `rounds` times / published `events`.
  bool AwaitRounds(int rounds, absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    auto done = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return rounds_ >= rounds; };
    return mu_.AwaitWithTimeout(absl::Condition(&done), timeout);
  }
  bool AwaitPublished(size_t events, absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    auto done = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return published_ >= events; };
    return mu_.AwaitWithTimeout(absl::Condition(&done), timeout);
  }

 private:
  absl::Mutex mu_;
  GappyOutbox outbox_ ABSL_GUARDED_BY(mu_);
  int rounds_ ABSL_GUARDED_BY(mu_) = 0;
  size_t published_ ABSL_GUARDED_BY(mu_) = 0;
};

TEST(OutboxRelayTest, ACommitWakesAnIdleRelayInsteadOfWaitingForItsNextPoll) {
  FakeClock clock(kStart);
  ThreadedOutbox outbox;
  OutboxBacklog backlog(/*max_events=*/1000, absl::Seconds(2));
  OutboxRelay relay(&outbox, &outbox, &clock,
                    {.idle_poll = absl::Minutes(10), .max_idle_poll = absl::Minutes(10),
                     .backlog = &backlog});
  backlog.OnCommitted([&relay] { relay.Wake(); });
  relay.Start();
  ASSERT_TRUE(outbox.AwaitRounds(1, absl::Seconds(30)));  // found nothing: idle for 10 minutes
  outbox.Add(1);
  EXPECT_FALSE(outbox.AwaitPublished(1, absl::Milliseconds(200))) << "published before a wake";
  backlog.Committed(1);
  EXPECT_TRUE(outbox.AwaitPublished(1, absl::Seconds(30)));
  // After a round that published, the relay looks again at once, finds nothing and idles.
  ASSERT_TRUE(outbox.AwaitRounds(3, absl::Seconds(30)));
  outbox.Add(2);
  backlog.Committed(0);  // a group without events does not wake it
  EXPECT_FALSE(outbox.AwaitPublished(2, absl::Milliseconds(200)));
  relay.Stop();  // does not wait out the idle poll either
}

}  // namespace
}  // namespace microlend::lending
