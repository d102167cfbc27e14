#include "services/lending/testing/fake_ledger_store.h"

#include <cstdint>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/money.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/lending/core/ledger_engine.h"

namespace microlend::lending {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using Kind = ReconcileFinding::Kind;

const absl::Time kNow = absl::FromUnixSeconds(1'800'000'000);

Money Usd(int64_t cents) { return Money::FromMinor(Currency::Usd(), cents); }

IdempotencyRecord Record(const std::string& request_id) {
  IdempotencyRecord r;
  r.caller = "ops";
  r.request_id = request_id;
  r.method = "LedgerService.CreateAccount";
  return r;
}

TransferSpec Posted(AccountId debit, AccountId credit, int64_t cents) {
  TransferSpec s;
  s.debit_account_id = debit;
  s.credit_account_id = credit;
  s.amount = Usd(cents);
  s.code = TransferCode::kDeposit;
  return s;
}

TransferSpec NewHold(AccountId debit, AccountId credit, int64_t cents, int64_t timeout_ms) {
  TransferSpec s = Posted(debit, credit, cents);
  s.pending = true;
  s.timeout_ms = timeout_ms;
  return s;
}

TransferSpec Resolve(HoldId hold, PendingAction action) {
  TransferSpec s;
  s.pending_id = hold;
  s.pending_action = action;
  return s;
}

class FakeLedgerStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    cash_ = Open(OwnerType::kExternalSettlement, "bank", AccountKind::kExternalCash, {});
    wallet_ = Open(OwnerType::kLender, "42", AccountKind::kLenderWallet, {true, false});
  }

  AccountId Open(OwnerType type, const std::string& owner, AccountKind kind, AccountFlags flags) {
    NewAccount a;
    a.owner_type = type;
    a.owner_id = owner;
    a.kind = kind;
    a.flags = flags;
    absl::StatusOr<Account> created = store_.CreateAccount(a, kNow, Record("open-" + owner));
    EXPECT_TRUE(created.ok()) << created.status();
    return created.ok() ? created->id : AccountId(0);
  }

  // The committer's pattern: load what the batch names, then the accounts of the holds it
  // resolves, apply, write.
  absl::StatusOr<std::vector<Transfer>> Commit(const std::vector<TransferSpec>& specs,
                                               absl::Time now = kNow) {
    std::vector<Transfer> applied;
    absl::Status status = store_.Transact([&](LedgerTxn& txn) -> absl::Status {
      LoadRequest request;
      LedgerEngine::CollectReferences(specs, &request);
      absl::StatusOr<Loaded> loaded = txn.LoadForUpdate(request);
      if (!loaded.ok()) return loaded.status();
      LoadRequest hold_accounts;
      for (const Hold& h : loaded->holds) {
        hold_accounts.accounts.push_back(h.transfer.debit_account_id);
        hold_accounts.accounts.push_back(h.transfer.credit_account_id);
      }
      absl::StatusOr<Loaded> more = txn.LoadForUpdate(hold_accounts);
      if (!more.ok()) return more.status();
      for (Account& a : more->accounts) loaded->accounts.push_back(std::move(a));
      absl::StatusOr<std::vector<TransferId>> ids =
          txn.AllocateTransferIds(LedgerEngine::IdsNeeded(specs));
      if (!ids.ok()) return ids.status();
      size_t next = 0;
      WorkingSet working(*std::move(loaded));
      auto result = LedgerEngine::ApplyBatch(
          specs, BatchContext{now, "req", [&] { return ids->at(next++); }}, working);
      if (const Rejection* r = std::get_if<Rejection>(&result)) {
        return absl::FailedPreconditionError(r->detail);
      }
      applied = std::get<std::vector<Transfer>>(result);
      return txn.Write(working.TakeCommitSet());
    });
    if (!status.ok()) return status;
    return applied;
  }

  int64_t Balance(AccountId id) {
    absl::StatusOr<Account> a = store_.GetAccount(id);
    EXPECT_TRUE(a.ok()) << a.status();
    return a.ok() ? a->balance() : 0;
  }

  std::vector<ReconcileFinding::Kind> FindingKinds(absl::Time deadline = kNow) {
    absl::StatusOr<ReconcileData> data = store_.Reconcile({}, true, deadline);
    EXPECT_TRUE(data.ok()) << data.status();
    std::vector<ReconcileFinding::Kind> kinds;
    if (data.ok()) {
      for (const ReconcileFinding& f : data->findings) kinds.push_back(f.kind);
    }
    return kinds;
  }

  FakeLedgerStore store_;
  AccountId cash_{0};
  AccountId wallet_{0};
};

TEST_F(FakeLedgerStoreTest, TransactPublishesWritesWhenFnReturnsOk) {
  ASSERT_TRUE(Commit({Posted(cash_, wallet_, 2'500)}).ok());
  EXPECT_EQ(Balance(wallet_), 2'500);
  EXPECT_EQ(Balance(cash_), -2'500);
  ASSERT_EQ(store_.AllTransfers().size(), 1u);
  ASSERT_EQ(store_.AllEvents().size(), 1u);
  EXPECT_EQ(store_.AllEvents()[0].sequence, 1);
}

TEST_F(FakeLedgerStoreTest, TransactWritesNothingWhenFnFails) {
  const std::vector<IdempotencyRecord> records = store_.AllIdempotency();
  absl::Status status = store_.Transact([&](LedgerTxn& txn) -> absl::Status {
    WorkingSet working(*txn.LoadForUpdate({{cash_, wallet_}, {}, {}, {}, {}}));
    auto result = LedgerEngine::ApplyBatch({Posted(cash_, wallet_, 100)},
                                           {kNow, "req", [] { return TransferId(1); }}, working);
    EXPECT_TRUE(std::holds_alternative<std::vector<Transfer>>(result));
    CommitSet commit = working.TakeCommitSet();
    commit.idempotency.push_back(Record("transfer-req"));
    EXPECT_TRUE(txn.Write(commit).ok());
    return absl::AbortedError("changed my mind");
  });
  EXPECT_EQ(status, absl::AbortedError("changed my mind"));
  EXPECT_THAT(store_.AllTransfers(), IsEmpty());
  EXPECT_THAT(store_.AllEvents(), IsEmpty());
  EXPECT_EQ(store_.AllIdempotency(), records);
  EXPECT_EQ(Balance(wallet_), 0);
  EXPECT_EQ(Balance(cash_), 0);
}

TEST_F(FakeLedgerStoreTest, FailNextTransactSkipsFnOnce) {
  store_.FailNextTransact(absl::UnavailableError("database down"));
  bool ran = false;
  absl::Status status = store_.Transact([&](LedgerTxn&) {
    ran = true;
    return absl::OkStatus();
  });
  EXPECT_EQ(status, absl::UnavailableError("database down"));
  EXPECT_FALSE(ran);
  ASSERT_TRUE(Commit({Posted(cash_, wallet_, 1)}).ok());
  EXPECT_EQ(Balance(wallet_), 1);
}

TEST_F(FakeLedgerStoreTest, FailedWriteAbortsTheTransactionEvenIfFnIgnoresIt) {
  store_.FailNextWrite(absl::AbortedError("serialization failure"));
  absl::Status status = store_.Transact([&](LedgerTxn& txn) {
    CommitSet commit;
    commit.idempotency.push_back(Record("r1"));
    EXPECT_EQ(txn.Write(commit), absl::AbortedError("serialization failure"));
    commit.idempotency[0].request_id = "r2";
    EXPECT_EQ(txn.Write(commit).code(), absl::StatusCode::kAborted);
    return absl::OkStatus();
  });
  EXPECT_EQ(status, absl::AbortedError("serialization failure"));
  EXPECT_EQ(store_.AllIdempotency().size(), 2u) << "only the two accounts' records";
  ASSERT_TRUE(Commit({Posted(cash_, wallet_, 1)}).ok()) << "the hook fires once";
}

TEST_F(FakeLedgerStoreTest, WriteOfATakenKeyIsAlreadyExists) {
  ASSERT_TRUE(Commit({Posted(cash_, wallet_, 1)}).ok());
  const Transfer first = store_.AllTransfers().at(0);
  absl::Status status = store_.Transact([&](LedgerTxn& txn) {
    CommitSet commit;
    commit.transfers.push_back(first);
    return txn.Write(commit);
  });
  EXPECT_EQ(status.code(), absl::StatusCode::kAlreadyExists);
  status = store_.Transact([&](LedgerTxn& txn) {
    CommitSet commit;
    commit.idempotency.push_back(Record("open-42"));
    return txn.Write(commit);
  });
  EXPECT_EQ(status.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(store_.AllTransfers().size(), 1u);
}

TEST_F(FakeLedgerStoreTest, WriteNamingAnUnknownAccountIsFailedPrecondition) {
  Transfer t = Transfer{};
  t.id = TransferId(5);
  t.debit_account_id = cash_;
  t.credit_account_id = AccountId(999);
  absl::Status status = store_.Transact([&](LedgerTxn& txn) {
    CommitSet commit;
    commit.transfers.push_back(t);
    return txn.Write(commit);
  });
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(FakeLedgerStoreTest, LoadsInATransactionSeeItsOwnWrites) {
  absl::Status status = store_.Transact([&](LedgerTxn& txn) -> absl::Status {
    WorkingSet working(*txn.LoadForUpdate({{cash_, wallet_}, {}, {}, {}, {}}));
    LedgerEngine::ApplyBatch({NewHold(cash_, wallet_, 300, 0)},
                             {kNow, "req", [] { return TransferId(77); }}, working);
    if (absl::Status s = txn.Write(working.TakeCommitSet()); !s.ok()) return s;
    absl::StatusOr<Loaded> again =
        txn.LoadForUpdate({{wallet_}, {HoldId(77)}, {TransferId(77), TransferId(78)}, {}, {}});
    EXPECT_TRUE(again.ok());
    // The hold brings its own accounts along, in id order.
    EXPECT_EQ(again->accounts.size(), 2u);
    if (again->accounts.size() != 2u) return absl::InternalError("unexpected accounts");
    EXPECT_EQ(again->accounts.at(0).id, std::min(cash_, wallet_));
    const Account& loaded_wallet =
        again->accounts.at(0).id == wallet_ ? again->accounts.at(0) : again->accounts.at(1);
    EXPECT_EQ(loaded_wallet.credits_pending, 300);
    EXPECT_EQ(again->holds.at(0).state, HoldState::kPending);
    EXPECT_THAT(again->existing_ids, ElementsAre(TransferId(77)));
    EXPECT_EQ(store_.GetAccount(wallet_)->credits_pending, 0) << "not published yet";
    return absl::OkStatus();
  });
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(store_.GetAccount(wallet_)->credits_pending, 300);
}

TEST_F(FakeLedgerStoreTest, AllocatedTransferIdsSkipClientChosenOnes) {
  TransferSpec chosen = Posted(cash_, wallet_, 1);
  chosen.id = TransferId(2);
  ASSERT_TRUE(Commit({chosen}).ok());
  std::vector<TransferId> ids;
  ASSERT_TRUE(store_
                  .Transact([&](LedgerTxn& txn) {
                    ids = *txn.AllocateTransferIds(3);
                    return absl::OkStatus();
                  })
                  .ok());
  EXPECT_THAT(ids, ElementsAre(TransferId(1), TransferId(3), TransferId(4)));
}

TEST_F(FakeLedgerStoreTest, CreateAccountRejectsATakenOwnerKeyOrId) {
  NewAccount again;
  again.owner_type = OwnerType::kLender;
  again.owner_id = "42";
  again.kind = AccountKind::kLenderWallet;
  absl::StatusOr<Account> duplicate = store_.CreateAccount(again, kNow, Record("x"));
  EXPECT_EQ(duplicate.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(duplicate.status().message(), HasSubstr(absl::StrCat("account ", wallet_.value())));
  again.kind = AccountKind::kSponsorBudget;
  again.id = cash_;
  EXPECT_EQ(store_.CreateAccount(again, kNow, Record("y")).status().code(),
            absl::StatusCode::kAlreadyExists);
  again.currency = *Currency::FromCode("EUR");
  again.kind = AccountKind::kLenderWallet;
  again.id.reset();
  ASSERT_TRUE(store_.CreateAccount(again, kNow, Record("z")).ok()) << "another currency";
}

TEST_F(FakeLedgerStoreTest, CreateAccountStoresItsIdempotencyRecord) {
  absl::StatusOr<std::optional<IdempotencyRecord>> found = store_.FindIdempotency("ops", "open-42");
  ASSERT_TRUE(found.ok());
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ((*found)->method, "LedgerService.CreateAccount");
  EXPECT_EQ(*store_.FindIdempotency("ops", "nope"), std::nullopt);
  EXPECT_EQ(*store_.FindIdempotency("someone-else", "open-42"), std::nullopt);
}

TEST_F(FakeLedgerStoreTest, AccountsAreFoundByOwnerAndListedByFilter) {
  absl::StatusOr<std::optional<Account>> found = store_.FindAccountByOwner(
      OwnerType::kLender, "42", AccountKind::kLenderWallet, Currency::Usd());
  ASSERT_TRUE(found.ok() && found->has_value());
  EXPECT_EQ((*found)->id, wallet_);
  EXPECT_TRUE((*found)->flags.debits_must_not_exceed_credits);
  EXPECT_EQ(store_.GetAccount(AccountId(999)).status().code(), absl::StatusCode::kNotFound);
  AccountFilter lenders;
  lenders.owner_type = OwnerType::kLender;
  absl::StatusOr<Page<Account>> page = store_.ListAccounts(lenders, {});
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->items.size(), 1u);
  EXPECT_EQ(page->items[0].id, wallet_);
  EXPECT_EQ(page->total_count, 1);
}

TEST_F(FakeLedgerStoreTest, StatementHasRunningBalanceAndOnlyPostedMoney) {
  ASSERT_TRUE(Commit({Posted(cash_, wallet_, 10'000)}).ok());
  absl::StatusOr<std::vector<Transfer>> holds =
      Commit({NewHold(wallet_, cash_, 3'000, 0), NewHold(wallet_, cash_, 1'000, 0)});
  ASSERT_TRUE(holds.ok()) << holds.status();
  TransferSpec post = Resolve(holds->at(0).id, PendingAction::kPost);
  post.amount = Usd(2'000);
  ASSERT_TRUE(Commit({post, Resolve(holds->at(1).id, PendingAction::kVoid)}).ok());
  ASSERT_TRUE(Commit({Posted(cash_, wallet_, 500)}).ok());

  absl::StatusOr<Page<StatementRow>> page = store_.Statement(wallet_, {}, {});
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_EQ(page->items.size(), 3u);
  EXPECT_EQ(page->total_count, 3);
  EXPECT_EQ(page->items[0].signed_amount, 10'000);
  EXPECT_EQ(page->items[0].balance_after, 10'000);
  EXPECT_EQ(page->items[1].transfer.type, TransferType::kPostPending);
  EXPECT_EQ(page->items[1].signed_amount, -2'000);
  EXPECT_EQ(page->items[1].balance_after, 8'000);
  EXPECT_EQ(page->items[2].balance_after, 8'500);
  EXPECT_EQ(page->items[2].balance_after, Balance(wallet_));
  EXPECT_EQ(page->next_after_id, 0);
}

TEST_F(FakeLedgerStoreTest, StatementPagesByTransferId) {
  ASSERT_TRUE(
      Commit({Posted(cash_, wallet_, 1), Posted(cash_, wallet_, 2), Posted(cash_, wallet_, 3)})
          .ok());
  PageSpec spec;
  spec.limit = 2;
  absl::StatusOr<Page<StatementRow>> first = store_.Statement(wallet_, {}, spec);
  ASSERT_TRUE(first.ok());
  ASSERT_EQ(first->items.size(), 2u);
  EXPECT_EQ(first->next_after_id, first->items[1].transfer.id.value());
  spec.after_id = first->next_after_id;
  absl::StatusOr<Page<StatementRow>> second = store_.Statement(wallet_, {}, spec);
  ASSERT_TRUE(second.ok());
  ASSERT_EQ(second->items.size(), 1u);
  EXPECT_EQ(second->items[0].balance_after, 6);
  EXPECT_EQ(second->next_after_id, 0);
  EXPECT_EQ(store_.Statement(AccountId(999), {}, {}).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(FakeLedgerStoreTest, ListExpiredHoldsReturnsPendingHoldsPastExpiry) {
  ASSERT_TRUE(Commit({Posted(cash_, wallet_, 10'000)}).ok());
  absl::StatusOr<std::vector<Transfer>> holds =
      Commit({NewHold(wallet_, cash_, 1, 1'000), NewHold(wallet_, cash_, 1, 5'000),
              NewHold(wallet_, cash_, 1, 0), NewHold(wallet_, cash_, 1, 1'000)});
  ASSERT_TRUE(holds.ok());
  ASSERT_TRUE(Commit({Resolve(holds->at(3).id, PendingAction::kVoid)}).ok());
  EXPECT_THAT(*store_.ListExpiredHolds(kNow + absl::Seconds(1), 10), ElementsAre(holds->at(0).id));
  EXPECT_THAT(*store_.ListExpiredHolds(kNow + absl::Seconds(1) - absl::Nanoseconds(1), 10),
              IsEmpty());
  EXPECT_THAT(*store_.ListExpiredHolds(kNow + absl::Hours(1), 10),
              ElementsAre(holds->at(0).id, holds->at(1).id));
  EXPECT_THAT(*store_.ListExpiredHolds(kNow + absl::Hours(1), 1), ElementsAre(holds->at(0).id));
  ASSERT_TRUE(Commit({LedgerEngine::ExpirySpec(holds->at(0).id)}, kNow + absl::Hours(1)).ok());
  EXPECT_EQ(store_.GetTransfer(holds->at(0).id)->state, HoldState::kExpired);
  EXPECT_THAT(*store_.ListExpiredHolds(kNow + absl::Hours(1), 10), ElementsAre(holds->at(1).id));
}

TEST_F(FakeLedgerStoreTest, PublishedEventsAreNotFetchedAgain) {
  ASSERT_TRUE(Commit({Posted(cash_, wallet_, 1), Posted(cash_, wallet_, 2)}).ok());
  ASSERT_TRUE(Commit({Posted(cash_, wallet_, 3)}).ok());
  absl::StatusOr<std::vector<OutboxEvent>> events = store_.FetchUnpublished(2);
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 2u);
  EXPECT_EQ((*events)[0].sequence, 1);
  EXPECT_EQ((*events)[1].sequence, 2);
  ASSERT_TRUE(store_.MarkPublished({1, 2}, kNow).ok());
  events = store_.FetchUnpublished(10);
  ASSERT_EQ(events->size(), 1u);
  EXPECT_EQ((*events)[0].sequence, 3);
  EXPECT_EQ((*events)[0].event_id, absl::StrCat("transfer-", store_.AllTransfers()[2].id.value()));
}

TEST_F(FakeLedgerStoreTest, GetTransferReturnsHoldsWithTheirState) {
  absl::StatusOr<std::vector<Transfer>> hold = Commit({NewHold(cash_, wallet_, 5, 0)});
  ASSERT_TRUE(hold.ok());
  absl::StatusOr<Hold> got = store_.GetTransfer(hold->at(0).id);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->transfer, hold->at(0));
  EXPECT_EQ(got->state, HoldState::kPending);
  EXPECT_EQ(store_.GetTransfer(TransferId(12345)).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(FakeLedgerStoreTest, ReconcileOfAConsistentLedgerFindsNothing) {
  ASSERT_TRUE(Commit({Posted(cash_, wallet_, 10'000), NewHold(wallet_, cash_, 4'000, 0)}).ok());
  ASSERT_TRUE(store_.MarkPublished({1, 2}, kNow).ok());
  absl::StatusOr<ReconcileData> data = store_.Reconcile({}, true, kNow);
  ASSERT_TRUE(data.ok());
  EXPECT_THAT(data->findings, IsEmpty());
  ASSERT_EQ(data->totals.size(), 1u);
  EXPECT_EQ(data->totals[0].balance_sum, 0);
  EXPECT_EQ(data->totals[0].posted_volume, 10'000);
  EXPECT_EQ(data->totals[0].account_count, 2);
  EXPECT_EQ(data->accounts_checked, 2);
  EXPECT_EQ(data->transfers_checked, 2);
}

TEST_F(FakeLedgerStoreTest, ReconcileDetectsATamperedBalance) {
  ASSERT_TRUE(Commit({Posted(cash_, wallet_, 10'000)}).ok());
  ASSERT_TRUE(store_.MarkPublished({1}, kNow).ok());
  store_.CorruptAccountForTest(wallet_, 1);
  absl::StatusOr<ReconcileData> data = store_.Reconcile({}, true, kNow);
  ASSERT_TRUE(data.ok());
  ASSERT_EQ(data->findings.size(), 2u);
  const ReconcileFinding& replay = data->findings[0];
  EXPECT_EQ(replay.kind, Kind::kBalanceReplayMismatch);
  EXPECT_EQ(replay.account_id, wallet_);
  EXPECT_EQ(replay.expected, 10'000);
  EXPECT_EQ(replay.actual, 10'001);
  EXPECT_EQ(data->findings[1].kind, Kind::kCurrencySumNonzero);
  EXPECT_EQ(data->findings[1].actual, 1);
  absl::StatusOr<ReconcileData> no_replay = store_.Reconcile({}, false, kNow);
  ASSERT_TRUE(no_replay.ok());
  ASSERT_EQ(no_replay->findings.size(), 1u) << "the sum still shows it";
}

TEST_F(FakeLedgerStoreTest, ReconcileReportsAnOverdrawnWallet) {
  ASSERT_TRUE(Commit({Posted(cash_, wallet_, 100), Posted(wallet_, cash_, 100)}).ok());
  store_.CorruptAccountForTest(wallet_, -1);
  EXPECT_THAT(FindingKinds(kNow - absl::Hours(1)),
              ElementsAre(Kind::kBalanceReplayMismatch, Kind::kConstrainedAccountNegative,
                          Kind::kCurrencySumNonzero));
}

TEST_F(FakeLedgerStoreTest, ReconcileCountsLateUnpublishedEvents) {
  ASSERT_TRUE(Commit({Posted(cash_, wallet_, 1), Posted(cash_, wallet_, 2)}).ok());
  EXPECT_THAT(FindingKinds(kNow), IsEmpty()) << "not older than the deadline";
  absl::StatusOr<ReconcileData> data = store_.Reconcile({}, false, kNow + absl::Seconds(1));
  ASSERT_TRUE(data.ok());
  ASSERT_EQ(data->findings.size(), 1u);
  EXPECT_EQ(data->findings[0].kind, Kind::kOutboxUnpublished);
  EXPECT_EQ(data->findings[0].count, 2);
}

TEST_F(FakeLedgerStoreTest, ReconcileLimitedToCurrenciesSkipsOthers) {
  ASSERT_TRUE(Commit({Posted(cash_, wallet_, 1)}).ok());
  store_.CorruptAccountForTest(wallet_, 1);
  absl::StatusOr<ReconcileData> data =
      store_.Reconcile({*Currency::FromCode("EUR")}, true, kNow - absl::Hours(1));
  ASSERT_TRUE(data.ok());
  EXPECT_THAT(data->findings, IsEmpty());
  ASSERT_EQ(data->totals.size(), 1u);
  EXPECT_EQ(data->totals[0].account_count, 0);
}

TEST_F(FakeLedgerStoreTest, ConcurrentTransactionsDoNotLoseUpdates) {
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 25; ++i) EXPECT_TRUE(Commit({Posted(cash_, wallet_, 1)}).ok());
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(Balance(wallet_), 100);
  EXPECT_THAT(FindingKinds(kNow - absl::Hours(1)), IsEmpty());
}

}  // namespace
}  // namespace microlend::lending
