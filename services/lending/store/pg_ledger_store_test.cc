// PgLedgerStore against a real PostgreSQL (a private one on a free port, from the test harness).
// Every test starts from a freshly migrated `lending` schema.
#include "services/lending/store/pg_ledger_store.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "harness/shared_stack_test.h"
#include "pg/connect.h"
#include "pg/migrator.h"
#include "services/lending/core/ledger_engine.h"

#ifndef MICROLEND_SOURCE_DIR
#error "define MICROLEND_SOURCE_DIR (the checkout): the tests read infra/migrations/lending from it"
#endif

// The tests build commit sets with designated initializers and leave the other members at
// their defaults, which GCC 12's -Wextra reports for members without a default initializer.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace microlend::lending {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;
using Kind = ReconcileFinding::Kind;

const absl::Time kT0 = absl::FromUnixMicros(1'700'000'000'000'000);

// The lending migrations, read from infra/migrations/lending (NNNN_name.sql).
const std::vector<pg::Migration>& LendingMigrationsFromFiles() {
  static const auto* texts = [] {
    auto* out = new std::vector<std::pair<std::string, std::string>>();  // file stem, sql
    std::filesystem::path dir =
        std::filesystem::path(MICROLEND_SOURCE_DIR) / "infra/migrations/lending";
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
      if (entry.path().extension() != ".sql") continue;
      std::ifstream in(entry.path());
      std::stringstream sql;
      sql << in.rdbuf();
      out->emplace_back(entry.path().stem().string(), sql.str());
    }
    std::sort(out->begin(), out->end());
    return out;
  }();
  static const auto* migrations = [] {
    auto* out = new std::vector<pg::Migration>();
    for (const auto& [stem, sql] : *texts) {
      size_t underscore = stem.find('_');
      out->push_back({std::stoll(stem.substr(0, underscore)),
                      std::string_view(stem).substr(underscore + 1), sql});
    }
    return out;
  }();
  return *migrations;
}

IdempotencyRecord Record(const std::string& request_id) {
  return {.caller = "svc:matching",
          .request_id = request_id,
          .method = "LedgerService.CreateTransfers",
          .body_hash = std::string("\x00\x01\xfe\"\\{}", 7) + std::string(25, 'h'),
          .code = absl::StatusCode::kOk,
          .message = "",
          .payload = std::string("\x00payload\xff", 9)};
}

// A record as large as a batch's response: stored with a binary parameter, not hex.
IdempotencyRecord BigRecord(const std::string& request_id) {
  IdempotencyRecord r = Record(request_id);
  r.payload.clear();
  for (int i = 0; i < 20'000; ++i) r.payload.push_back(static_cast<char>(i * 7));
  return r;
}

NewAccount Wallet(const std::string& lender) {
  return {.owner_type = OwnerType::kLender,
          .owner_id = lender,
          .kind = AccountKind::kLenderWallet,
          .flags = {.debits_must_not_exceed_credits = true},
          .memo = "wallet of " + lender};
}

NewAccount Platform(AccountKind kind) {
  return {.owner_type = OwnerType::kPlatform, .owner_id = "", .kind = kind};
}

Transfer Posted(int64_t id, const Account& debit, const Account& credit, int64_t amount,
                TransferCode code = TransferCode::kDeposit) {
  Transfer t;
  t.id = TransferId(id);
  t.debit_account_id = debit.id;
  t.credit_account_id = credit.id;
  t.amount = Money::FromMinor(debit.currency, amount);
  t.code = code;
  t.type = TransferType::kPosted;
  t.created_at = kT0 + absl::Microseconds(id);
  t.batch_request_id = "batch-" + std::to_string(id);
  return t;
}

OutboxEvent Event(const Transfer& t) {
  return {
      .event_id = absl::StrCat("transfer-", t.id.value()),
      .kind = "transfer_committed",
      .account_id = t.debit_account_id,
      .payload = absl::StrCat(R"({"id":")", t.id.value(), R"(","memo":"a \"quoted\" \\ memo"})"),
      .created_at = t.created_at};
}

// A credit of repayment `repayment` of loan `loan` to a funder, at `batch_index` of the batch
// `batch`, committed at kT0: what the loan desk hands the store.
Transfer FunderCredit(int64_t id, const Account& debit, const Account& credit, int64_t amount,
                      const std::string& batch, int32_t batch_index, int64_t loan,
                      int64_t repayment) {
  Transfer t = Posted(id, debit, credit, amount, TransferCode::kRepayment);
  t.created_at = kT0;
  t.batch_request_id = batch;
  t.batch_index = batch_index;
  t.references.loan_id = LoanId(loan);
  t.references.repayment_id = RepaymentId(repayment);
  return t;
}

// `t` in `commit` as the loan desk's credit to a funder (CommitSet::funder_credits), with its event.
void AddFunderCredit(CommitSet& commit, const Transfer& t) {
  commit.transfers.push_back(t);
  commit.funder_credits.push_back(t.id);
  commit.events.push_back(Event(t));
}

class PgLedgerStoreTest : public microlend::testing::SharedComponentsTest {
 protected:
  void SetUp() override {
    auto c = pg::Connect(stack_->pg_url());
    ASSERT_TRUE(c.ok()) << c.status();
    conn_ = std::move(*c);
    pqxx::nontransaction(*conn_).exec("DROP SCHEMA IF EXISTS lending CASCADE");
    auto applied = pg::ApplyMigrations(*conn_, "lending", LendingMigrationsFromFiles());
    ASSERT_TRUE(applied.ok()) << applied.status();
    auto store = PgLedgerStore::Create(stack_->pg_url(), 4);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
  }

  Account Open(const NewAccount& account, const std::string& request_id = "") {
    auto created = store_->CreateAccount(
        account, kT0,
        Record(request_id.empty()
                   ? "open-" + account.owner_id + std::to_string(static_cast<int>(account.kind))
                   : request_id));
    EXPECT_TRUE(created.ok()) << created.status();
    return created.ok() ? *created : Account{};
  }

  // Writes `commit` in its own transaction.
  absl::Status Commit(const CommitSet& commit) {
    return store_->Transact([&](LedgerTxn& txn) { return txn.Write(commit); });
  }

  // Posted transfers with the account totals they imply (accounts as loaded, updated in place).
  absl::Status Move(std::vector<Transfer> transfers, std::vector<Account*> accounts) {
    CommitSet commit;
    for (const Transfer& t : transfers) {
      for (Account* a : accounts) {
        if (a->id == t.debit_account_id) a->debits_posted += t.amount.minor_units();
        if (a->id == t.credit_account_id) a->credits_posted += t.amount.minor_units();
      }
      commit.events.push_back(Event(t));
    }
    commit.transfers = std::move(transfers);
    for (Account* a : accounts) commit.accounts.push_back(*a);
    return Commit(commit);
  }

  // Runs `sql` directly (not through the store) and translates its failure.
  absl::Status Exec(const std::string& sql) {
    try {
      pqxx::work tx(*conn_);
      tx.exec("SET LOCAL search_path TO lending");
      tx.exec(sql);
      tx.commit();
      return absl::OkStatus();
    } catch (const std::exception& e) {
      return pg::TranslateError(e, "direct SQL");
    }
  }

  // Disbursed loan `loan` (with a partner of its own) and its funder book listing `funders`,
  // written directly: a repayment pack credits only accounts of its loan's book (migration 0012).
  absl::Status OpenBook(int64_t loan, std::vector<AccountId> funders,
                        const std::string& currency = "USD") {
    std::sort(funders.begin(), funders.end());
    std::string ids, zeros, shares;
    for (AccountId id : funders) {
      absl::StrAppend(&ids, ids.empty() ? "" : ",", id.value());
      absl::StrAppend(&shares, shares.empty() ? "" : ",", 2500);
      absl::StrAppend(&zeros, zeros.empty() ? "" : ",", 0);
    }
    return Exec(absl::StrCat(
        "WITH p AS (INSERT INTO partners (name, countries, credit_limit_minor, created_at,"
        " updated_at) VALUES ('partner of loan ", loan, "', '{KE}', 0, now(), now()) RETURNING id),"
        " l AS (INSERT INTO loans (id, partner_id, status, details, created_at, updated_at)"
        " SELECT ", loan, ", p.id, 5, '{}', now(), now() FROM p RETURNING id)"
        " INSERT INTO loan_funder_books (loan_id, currency, account_ids, shares, credited)"
        " SELECT l.id, '", currency, "', '{", ids, "}', '{", shares, "}', '{", zeros, "}' FROM l"));
  }

  int64_t Scalar(const std::string& sql) {
    pqxx::nontransaction tx(*conn_);
    return tx.exec("SELECT (" + sql + ")::bigint")[0][0].as<int64_t>();
  }

  std::unique_ptr<pqxx::connection> conn_;
  std::unique_ptr<PgLedgerStore> store_;
};

TEST_F(PgLedgerStoreTest, CreateWithBadPoolSizeIsInvalidArgument) {
  EXPECT_EQ(PgLedgerStore::Create(stack_->pg_url(), 0).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(PgLedgerStoreTest, CreateAgainstUnreachableServerIsUnavailable) {
  int port = microlend::testing::PickFreePort();
  auto store = PgLedgerStore::Create(
      absl::StrCat("host=127.0.0.1 port=", port, " dbname=microlend user=microlend"), 2);
  EXPECT_EQ(store.status().code(), absl::StatusCode::kUnavailable);
}

TEST_F(PgLedgerStoreTest, CreateAccountAssignsIdAndRemembersRequest) {
  Account a = Open(Wallet("lender-1"), "req-1");
  EXPECT_GT(a.id.value(), 0);
  EXPECT_EQ(a.owner_id, "lender-1");
  EXPECT_TRUE(a.flags.debits_must_not_exceed_credits);
  EXPECT_EQ(a.created_at, kT0);
  EXPECT_EQ(a.memo, "wallet of lender-1");

  auto got = store_->GetAccount(a.id);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, a);
  auto record = store_->FindIdempotency("svc:matching", "req-1");
  ASSERT_TRUE(record.ok()) << record.status();
  ASSERT_TRUE(record->has_value());
  EXPECT_EQ(**record, Record("req-1"));
  auto none = store_->FindIdempotency("svc:matching", "req-unknown");
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  Open(Wallet("lender-2"), "req-2");
  auto some = store_->FindIdempotencies({{"svc:matching", "req-2"},
                                         {"svc:matching", "req-unknown"},
                                         {"svc:other", "req-1"},
                                         {"svc:matching", "req-1"}});
  ASSERT_TRUE(some.ok()) << some.status();
  EXPECT_THAT(*some, UnorderedElementsAre(Record("req-1"), Record("req-2")))
      << "the used keys only, each of its own caller";
  auto no_keys = store_->FindIdempotencies({});
  ASSERT_TRUE(no_keys.ok());
  EXPECT_TRUE(no_keys->empty());
  auto by_owner = store_->FindAccountByOwner(OwnerType::kLender, "lender-1",
                                             AccountKind::kLenderWallet, Currency::Usd());
  ASSERT_TRUE(by_owner.ok());
  ASSERT_TRUE(by_owner->has_value());
  EXPECT_EQ((*by_owner)->id, a.id);
  auto other_currency = store_->FindAccountByOwner(
      OwnerType::kLender, "lender-1", AccountKind::kLenderWallet, *Currency::FromCode("EUR"));
  ASSERT_TRUE(other_currency.ok());
  EXPECT_FALSE(other_currency->has_value());
}

TEST_F(PgLedgerStoreTest, CreateAccountOwnerKeyTakenIsAlreadyExistsNamingTheAccount) {
  Account first = Open(Wallet("lender-1"), "req-1");
  auto again = store_->CreateAccount(Wallet("lender-1"), kT0, Record("req-2"));
  EXPECT_EQ(again.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(again.status().message(), HasSubstr(absl::StrCat("account ", first.id.value())));
  // Nothing of the refused call stays, not even its idempotency record.
  auto record = store_->FindIdempotency("svc:matching", "req-2");
  ASSERT_TRUE(record.ok());
  EXPECT_FALSE(record->has_value());
  // Same owner in another currency is a different key.
  NewAccount eur = Wallet("lender-1");
  eur.currency = *Currency::FromCode("EUR");
  EXPECT_TRUE(store_->CreateAccount(eur, kT0, Record("req-3")).ok());
}

TEST_F(PgLedgerStoreTest, CreateAccountTakenIdOrRequestIdIsAlreadyExists) {
  NewAccount chosen = Wallet("lender-1");
  chosen.id = AccountId(500);
  Account a = Open(chosen, "req-1");
  EXPECT_EQ(a.id, AccountId(500));
  NewAccount same_id = Wallet("lender-2");
  same_id.id = AccountId(500);
  auto taken = store_->CreateAccount(same_id, kT0, Record("req-2"));
  EXPECT_EQ(taken.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(taken.status().message(), HasSubstr("account id 500 is taken"));
  auto replayed = store_->CreateAccount(Wallet("lender-3"), kT0, Record("req-1"));
  EXPECT_EQ(replayed.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(replayed.status().message(), HasSubstr("req-1"));
  // The server's own ids continue past the client's.
  Account next = Open(Wallet("lender-4"), "req-4");
  EXPECT_GT(next.id.value(), 500);
}

TEST_F(PgLedgerStoreTest, MissingRowsAreNotFound) {
  EXPECT_EQ(store_->GetAccount(AccountId(42)).status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(store_->GetAccount(AccountId(42)).status().message(), HasSubstr("42"));
  EXPECT_EQ(store_->GetTransfer(TransferId(42)).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->GetWithdrawal(WithdrawalId(42)).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(PgLedgerStoreTest, TextWithNulByteIsInvalidArgument) {
  NewAccount bad = Wallet("lender-1");
  bad.memo = std::string("a\0b", 3);
  EXPECT_EQ(store_->CreateAccount(bad, kT0, Record("req-1")).status().code(),
            absl::StatusCode::kInvalidArgument);
  Account cash = Open(Platform(AccountKind::kExternalCash));
  Account wallet = Open(Wallet("lender-1"));
  Transfer t = Posted(1, cash, wallet, 10);
  t.memo = std::string("x\0y", 3);
  EXPECT_EQ(Commit({.transfers = {t}}).code(), absl::StatusCode::kInvalidArgument);
}

// A deposit into the wallet and a hold on it for a withdrawal, with everything that goes with
// them; updates the accounts' totals.
CommitSet DepositAndWithdrawalHold(const std::vector<TransferId>& ids, WithdrawalId withdrawal,
                                   Account& cash, Account& wallet, Account& escrow) {
  Transfer deposit = Posted(ids[0].value(), cash, wallet, 100);
  Transfer hold = Posted(ids[1].value(), wallet, escrow, 30, TransferCode::kWithdrawal);
  hold.type = TransferType::kPending;
  hold.timeout_ms = 60'000;
  hold.expires_at = hold.created_at + absl::Minutes(1);
  hold.references.withdrawal_id = withdrawal;
  cash.debits_posted = 100;
  wallet.credits_posted = 100;
  wallet.debits_pending = 30;
  escrow.credits_pending = 30;
  return {.transfers = {deposit, hold},
          .holds = {Hold{.transfer = hold}},
          .accounts = {cash, wallet, escrow},
          .idempotency = {Record("batch-1"), BigRecord("batch-2")},
          .events = {Event(deposit), Event(hold)},
          .withdrawals = {{.id = withdrawal,
                           .lender_id = LenderId(1),
                           .wallet_account_id = wallet.id,
                           .amount = hold.amount,
                           .hold_id = hold.id,
                           .created_at = kT0,
                           .updated_at = kT0}}};
}

TEST_F(PgLedgerStoreTest, TransactWritesCommitSetAndReadsItBack) {
  Account cash = Open(Platform(AccountKind::kExternalCash));
  Account wallet = Open(Wallet("lender-1"));
  Account escrow = Open(Platform(AccountKind::kPlatformEscrow));
  CommitSet commit;
  std::vector<TransferId> ids;
  absl::Status status = store_->Transact([&](LedgerTxn& txn) -> absl::Status {
    auto loaded = txn.LoadForUpdate({.accounts = {cash.id, wallet.id, escrow.id, AccountId(999)}});
    if (!loaded.ok()) return loaded.status();
    EXPECT_EQ(loaded->accounts.size(), 3u);  // the missing one is simply absent
    auto allocated = txn.AllocateTransferIds(2);
    if (!allocated.ok()) return allocated.status();
    ids = *allocated;
    auto withdrawal = txn.AllocateWithdrawalIds(1);
    if (!withdrawal.ok()) return withdrawal.status();
    if (withdrawal->size() != 1) return absl::InternalError("not one withdrawal id");
    commit = DepositAndWithdrawalHold(ids, withdrawal->front(), cash, wallet, escrow);
    return txn.Write(commit);
  });
  ASSERT_TRUE(status.ok()) << status;
  ASSERT_EQ(ids.size(), 2u);
  EXPECT_LT(ids[0], ids[1]);

  status = store_->Transact([&](LedgerTxn& txn) -> absl::Status {
    auto loaded = txn.LoadForUpdate(
        {.accounts = {wallet.id, escrow.id, cash.id},
         .holds = {ids[1], ids[0]},
         .client_ids = {ids[0], TransferId(777)},
         .idempotency = {{"svc:matching", "batch-1"}, {"svc:matching", "batch-2"}},
         .withdrawals = {commit.withdrawals[0].id}});
    if (!loaded.ok()) return loaded.status();
    EXPECT_THAT(loaded->accounts, ElementsAre(cash, wallet, escrow));  // id order
    EXPECT_THAT(loaded->holds, ElementsAre(commit.holds[0]));  // a posted transfer is no hold
    EXPECT_THAT(loaded->existing_ids, ElementsAre(ids[0]));
    EXPECT_THAT(loaded->records,
                UnorderedElementsAre(commit.idempotency[0], commit.idempotency[1]));
    EXPECT_THAT(loaded->withdrawals, ElementsAre(commit.withdrawals[0]));
    return absl::OkStatus();
  });
  ASSERT_TRUE(status.ok()) << status;

  auto hold = store_->GetTransfer(ids[1]);
  ASSERT_TRUE(hold.ok()) << hold.status();
  EXPECT_EQ(*hold, commit.holds[0]);
  auto posted = store_->GetTransfer(ids[0]);
  ASSERT_TRUE(posted.ok());
  EXPECT_EQ(posted->transfer, commit.transfers[0]);
  auto events = store_->FetchUnpublished(10);
  ASSERT_TRUE(events.ok()) << events.status();
  ASSERT_EQ(events->size(), 2u);
  EXPECT_EQ((*events)[0].event_id, commit.events[0].event_id);
  EXPECT_EQ((*events)[0].payload, commit.events[0].payload);
  EXPECT_EQ((*events)[0].account_id, cash.id);
  EXPECT_EQ((*events)[1].event_id, commit.events[1].event_id);
  EXPECT_LT((*events)[0].sequence, (*events)[1].sequence);
}

TEST_F(PgLedgerStoreTest, TimesRoundTripToTheMicrosecond) {
  Account cash = Open(Platform(AccountKind::kExternalCash));
  Account escrow = Open(Platform(AccountKind::kPlatformEscrow));
  Transfer before_epoch = Posted(1, cash, escrow, 5);
  before_epoch.created_at = absl::FromUnixMicros(-1);  // 1969-12-31 23:59:59.999999
  Transfer hold = Posted(2, cash, escrow, 5);
  hold.type = TransferType::kPending;
  hold.created_at = kT0 + absl::Nanoseconds(1'999);                 // stored as kT0 + 1 us
  hold.expires_at = absl::FromUnixMicros(253'402'300'799'999'999);  // 9999-12-31 23:59:59.999999
  ASSERT_TRUE(Commit({.transfers = {before_epoch, hold},
                      .holds = {{.transfer = hold}},
                      .events = {Event(before_epoch)}})
                  .ok());
  EXPECT_EQ(store_->GetTransfer(before_epoch.id)->transfer, before_epoch);
  auto stored = store_->GetTransfer(hold.id);
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->transfer.created_at, kT0 + absl::Microseconds(1));
  EXPECT_EQ(stored->transfer.expires_at, hold.expires_at);
  EXPECT_EQ((*store_->FetchUnpublished(1))[0].created_at, before_epoch.created_at);
  Transfer too_late = Posted(3, cash, escrow, 5);
  too_late.created_at = absl::FromUnixSeconds(253'402'300'800);  // year 10000
  EXPECT_EQ(Commit({.transfers = {too_late}}).code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(PgLedgerStoreTest, TransactWhoseFunctionFailsLeavesNothing) {
  Account cash = Open(Platform(AccountKind::kExternalCash));
  Account wallet = Open(Wallet("lender-1"));
  absl::Status status = store_->Transact([&](LedgerTxn& txn) -> absl::Status {
    cash.debits_posted = 100;
    wallet.credits_posted = 100;
    Transfer t = Posted(1, cash, wallet, 100);
    absl::Status written = txn.Write({.transfers = {t},
                                      .accounts = {cash, wallet},
                                      .idempotency = {Record("batch-1")},
                                      .events = {Event(t)}});
    if (!written.ok()) return written;
    return absl::AbortedError("changed my mind");
  });
  EXPECT_EQ(status.code(), absl::StatusCode::kAborted);
  EXPECT_EQ(store_->GetTransfer(TransferId(1)).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->GetAccount(wallet.id)->credits_posted, 0);
  EXPECT_FALSE(store_->FindIdempotency("svc:matching", "batch-1")->has_value());
  EXPECT_THAT(*store_->FetchUnpublished(10), IsEmpty());
}

TEST_F(PgLedgerStoreTest, FailedCallIsStickyAndNeverCommitted) {
  Account cash = Open(Platform(AccountKind::kExternalCash));
  Account wallet = Open(Wallet("lender-1"));
  ASSERT_TRUE(Commit({.idempotency = {Record("batch-1")}}).ok());
  absl::Status status = store_->Transact([&](LedgerTxn& txn) -> absl::Status {
    // A duplicate idempotency record fails the statement; the function ignores it.
    Transfer t = Posted(1, cash, wallet, 100);
    EXPECT_EQ(txn.Write({.transfers = {t}, .idempotency = {Record("batch-1")}}).code(),
              absl::StatusCode::kAlreadyExists);
    EXPECT_EQ(txn.AllocateTransferIds(1).status().code(), absl::StatusCode::kAlreadyExists);
    return absl::OkStatus();
  });
  EXPECT_EQ(status.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(store_->GetTransfer(TransferId(1)).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(PgLedgerStoreTest, DatabaseRefusesOverdraftOfConstrainedAccount) {
  Account cash = Open(Platform(AccountKind::kExternalCash));
  Account wallet = Open(Wallet("lender-1"));
  ASSERT_TRUE(Move({Posted(1, cash, wallet, 100)}, {&cash, &wallet}).ok());
  // Through the store: totals that break the wallet's flag are refused by the CHECK.
  Account overdrawn = wallet;
  overdrawn.debits_posted = 80;
  overdrawn.debits_pending = 30;
  absl::Status through_store = Commit({.accounts = {overdrawn}});
  EXPECT_EQ(through_store.code(), absl::StatusCode::kFailedPrecondition) << through_store;
  EXPECT_THAT(through_store.message(), HasSubstr("accounts_debits_within_credits"));
  // Written directly.
  absl::Status direct =
      Exec(absl::StrCat("UPDATE accounts SET debits_posted = 101 WHERE id = ", wallet.id.value()));
  EXPECT_EQ(direct.code(), absl::StatusCode::kFailedPrecondition) << direct;
  // Exactly at the limit is fine.
  EXPECT_TRUE(Exec(absl::StrCat("UPDATE accounts SET debits_posted = 70, debits_pending = 30"
                                " WHERE id = ",
                                wallet.id.value()))
                  .ok());
  EXPECT_EQ(
      Exec(absl::StrCat("UPDATE accounts SET credits_posted = -1 WHERE id = ", cash.id.value()))
          .code(),
      absl::StatusCode::kFailedPrecondition);
}

TEST_F(PgLedgerStoreTest, TransfersAreImmutable) {
  Account cash = Open(Platform(AccountKind::kExternalCash));
  Account wallet = Open(Wallet("lender-1"));
  ASSERT_TRUE(Move({Posted(1, cash, wallet, 100)}, {&cash, &wallet}).ok());
  absl::Status update = Exec("UPDATE transfers SET amount = 1 WHERE id = 1");
  EXPECT_EQ(update.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(update.message(), HasSubstr("immutable"));
  EXPECT_EQ(Exec("DELETE FROM transfers WHERE id = 1").code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Exec("TRUNCATE transfers CASCADE").code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(store_->GetTransfer(TransferId(1))->transfer.amount.minor_units(), 100);
  // A second write of the same id is a duplicate.
  EXPECT_EQ(Commit({.transfers = {Posted(1, cash, wallet, 5)}}).code(),
            absl::StatusCode::kAlreadyExists);
}

TEST_F(PgLedgerStoreTest, DatabaseChecksWhatTransfersAndHoldsReference) {
  Account cash = Open(Platform(AccountKind::kExternalCash));
  Account escrow = Open(Platform(AccountKind::kPlatformEscrow));
  NewAccount eur_account = Platform(AccountKind::kPlatformRevenue);
  eur_account.currency = *Currency::FromCode("EUR");
  Account eur = Open(eur_account);
  Account missing = cash;
  missing.id = AccountId(999);
  absl::Status no_account = Commit({.transfers = {Posted(1, cash, missing, 5)}});
  EXPECT_EQ(no_account.code(), absl::StatusCode::kFailedPrecondition) << no_account;
  EXPECT_THAT(no_account.message(), HasSubstr("transfer 1"));
  EXPECT_EQ(Commit({.transfers = {Posted(1, cash, eur, 5)}}).code(),
            absl::StatusCode::kFailedPrecondition);
  Transfer hold = Posted(2, cash, escrow, 50);
  hold.type = TransferType::kPending;
  ASSERT_TRUE(
      Commit({.transfers = {hold, Posted(3, cash, escrow, 50)}, .holds = {{.transfer = hold}}})
          .ok());
  Transfer too_much = Posted(4, cash, escrow, 51);
  too_much.type = TransferType::kPostPending;
  too_much.pending_id = hold.id;
  EXPECT_EQ(Commit({.transfers = {too_much}}).code(), absl::StatusCode::kFailedPrecondition);
  Transfer swapped = Posted(4, escrow, cash, 10);
  swapped.type = TransferType::kPostPending;
  swapped.pending_id = hold.id;
  EXPECT_EQ(Commit({.transfers = {swapped}}).code(), absl::StatusCode::kFailedPrecondition);
  Transfer of_posted = Posted(4, cash, escrow, 10);
  of_posted.type = TransferType::kVoidPending;
  of_posted.pending_id = TransferId(3);
  EXPECT_EQ(Commit({.transfers = {of_posted}}).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Commit({.holds = {{.transfer = Posted(3, cash, escrow, 50)}}}).code(),
            absl::StatusCode::kFailedPrecondition);
  Hold resolved_by_stranger{
      .transfer = hold, .state = HoldState::kVoided, .resolved_by = TransferId(3)};
  EXPECT_EQ(Commit({.holds = {resolved_by_stranger}}).code(),
            absl::StatusCode::kFailedPrecondition);
  // Accounts stay: never deleted, re-keyed or re-denominated; their totals do change.
  std::string where = absl::StrCat(" WHERE id = ", cash.id.value());
  EXPECT_EQ(Exec("DELETE FROM accounts" + where).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Exec("UPDATE accounts SET currency = 'EUR'" + where).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Exec("UPDATE accounts SET id = 4242" + where).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(Exec("UPDATE accounts SET debits_posted = 50" + where).ok());
}

TEST_F(PgLedgerStoreTest, HoldResolvesAtMostOnce) {
  Account cash = Open(Platform(AccountKind::kExternalCash));
  Account escrow = Open(Platform(AccountKind::kPlatformEscrow));
  Transfer hold = Posted(1, cash, escrow, 50);
  hold.type = TransferType::kPending;
  ASSERT_TRUE(Commit({.transfers = {hold}, .holds = {Hold{.transfer = hold}}}).ok());
  Transfer post = Posted(2, cash, escrow, 40);
  post.type = TransferType::kPostPending;
  post.pending_id = hold.id;
  Hold posted{
      .transfer = hold, .state = HoldState::kPosted, .posted_amount = 40, .resolved_by = post.id};
  ASSERT_TRUE(Commit({.transfers = {post}, .holds = {posted}}).ok());
  EXPECT_EQ(*store_->GetTransfer(hold.id), posted);

  // Another process voiding the same hold: the unique pending_id index refuses it.
  Transfer void_it = Posted(3, cash, escrow, 50);
  void_it.type = TransferType::kVoidPending;
  void_it.pending_id = hold.id;
  Hold voided{.transfer = hold, .state = HoldState::kVoided, .resolved_by = void_it.id};
  EXPECT_EQ(Commit({.transfers = {void_it}, .holds = {voided}}).code(),
            absl::StatusCode::kAlreadyExists);
  // And a resolved hold's row is not overwritten.
  EXPECT_EQ(Commit({.holds = {voided}}).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(*store_->GetTransfer(hold.id), posted);
  // A resolution must name its hold, and only resolutions may.
  Transfer orphan = Posted(4, cash, escrow, 5);
  orphan.type = TransferType::kPostPending;
  EXPECT_EQ(Commit({.transfers = {orphan}}).code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(PgLedgerStoreTest, ListExpiredHoldsReturnsPendingHoldsPastExpiry) {
  Account cash = Open(Platform(AccountKind::kExternalCash));
  Account escrow = Open(Platform(AccountKind::kPlatformEscrow));
  std::vector<Hold> holds;
  std::vector<Transfer> transfers;
  for (int64_t id : {3, 1, 2, 4}) {
    Transfer t = Posted(id, cash, escrow, 10);
    t.type = TransferType::kPending;
    t.expires_at = kT0 + absl::Seconds(id);
    transfers.push_back(t);
    holds.push_back({.transfer = t});
  }
  holds[3].state = HoldState::kVoided;  // id 4: resolved, never expires
  ASSERT_TRUE(Commit({.transfers = transfers, .holds = holds}).ok());
  auto expired = store_->ListExpiredHolds(kT0 + absl::Seconds(2), 10);
  ASSERT_TRUE(expired.ok()) << expired.status();
  EXPECT_THAT(*expired, ElementsAre(HoldId(1), HoldId(2)));
  EXPECT_THAT(*store_->ListExpiredHolds(kT0 + absl::Hours(1), 2),
              ElementsAre(HoldId(1), HoldId(2)));
  EXPECT_THAT(*store_->ListExpiredHolds(kT0, 10), IsEmpty());
}

TEST_F(PgLedgerStoreTest, StatementHasRunningBalanceAndPages) {
  Account cash = Open(Platform(AccountKind::kExternalCash));
  Account wallet = Open(Wallet("lender-1"));
  Account loan =
      Open({.owner_type = OwnerType::kLoan, .owner_id = "7", .kind = AccountKind::kLoanFunding});
  Transfer hold = Posted(4, wallet, loan, 20, TransferCode::kLoanShare);
  hold.type = TransferType::kPending;
  Transfer post = Posted(5, wallet, loan, 15, TransferCode::kLoanShare);
  post.type = TransferType::kPostPending;
  post.pending_id = hold.id;
  ASSERT_TRUE(Commit({.transfers = {Posted(1, cash, wallet, 100),
                                    Posted(2, wallet, loan, 25, TransferCode::kLoanShare),
                                    Posted(3, cash, wallet, 50), hold, post,
                                    Posted(6, loan, wallet, 10, TransferCode::kRepayment)}})
                  .ok());
  // Entries: +100 (1), -25 (2), +50 (3), -15 (5); the hold (4) is not an entry.
  auto first = store_->Statement(wallet.id, {}, {.limit = 2});
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->total_count, 5);
  ASSERT_EQ(first->items.size(), 2u);
  EXPECT_EQ(first->items[0].signed_amount, 100);
  EXPECT_EQ(first->items[0].balance_after, 100);
  EXPECT_EQ(first->items[1].signed_amount, -25);
  EXPECT_EQ(first->items[1].balance_after, 75);
  EXPECT_EQ(first->next_after_id, 2);
  auto second = store_->Statement(wallet.id, {}, {.limit = 2, .after_id = first->next_after_id});
  ASSERT_TRUE(second.ok());
  ASSERT_EQ(second->items.size(), 2u);
  EXPECT_EQ(second->items[0].transfer.id, TransferId(3));
  EXPECT_EQ(second->items[0].balance_after, 125);
  EXPECT_EQ(second->items[1].transfer.id, TransferId(5));
  EXPECT_EQ(second->items[1].balance_after, 110);
  EXPECT_EQ(second->next_after_id, 5);
  auto last = store_->Statement(wallet.id, {}, {.limit = 2, .after_id = 5});
  ASSERT_EQ(last->items.size(), 1u);
  EXPECT_EQ(last->items[0].balance_after, 120);
  EXPECT_EQ(last->next_after_id, 0);
  // Filters cut rows, not the balance: the repayment alone still shows the true balance after.
  auto repayments =
      store_->Statement(wallet.id, {.codes = {TransferCode::kRepayment}}, {.limit = 10});
  ASSERT_EQ(repayments->items.size(), 1u);
  EXPECT_EQ(repayments->items[0].balance_after, 120);
  EXPECT_EQ(repayments->total_count, 1);
  auto newest = store_->Statement(wallet.id, {}, {.limit = 2, .newest_first = true});
  ASSERT_EQ(newest->items.size(), 2u);
  EXPECT_EQ(newest->items[0].transfer.id, TransferId(6));
  EXPECT_EQ(newest->items[1].balance_after, 110);
  auto newest_next = store_->Statement(
      wallet.id, {}, {.limit = 2, .after_id = newest->next_after_id, .newest_first = true});
  EXPECT_EQ(newest_next->items[0].transfer.id, TransferId(3));
  auto window = store_->Statement(
      wallet.id, {.from_time = kT0 + absl::Microseconds(2), .to_time = kT0 + absl::Microseconds(5)},
      {.limit = 10});
  ASSERT_EQ(window->items.size(), 2u);  // 2 and 3; 5 is past the exclusive end
  auto posted_only =
      store_->Statement(wallet.id, {.types = {TransferType::kPosted}}, {.limit = 10});
  ASSERT_TRUE(posted_only.ok());
  EXPECT_EQ(posted_only->total_count, 4);  // the post of the hold (5) is left out
  EXPECT_EQ(store_->Statement(wallet.id, {}, {.limit = 0}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->Statement(AccountId(999), {}, {.limit = 10}).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(PgLedgerStoreTest, ListTransfersFilters) {
  Account cash = Open(Platform(AccountKind::kExternalCash));
  Account wallet = Open(Wallet("lender-1"));
  Account other = Open(Wallet("lender-2"));
  Account loan =
      Open({.owner_type = OwnerType::kLoan, .owner_id = "7", .kind = AccountKind::kLoanFunding});
  Transfer share = Posted(3, wallet, loan, 25, TransferCode::kLoanShare);
  share.references.loan_id = LoanId(7);
  Transfer hold = Posted(5, other, loan, 25, TransferCode::kLoanShare);
  hold.type = TransferType::kPending;
  hold.references.loan_id = LoanId(7);
  ASSERT_TRUE(
      Commit({.transfers = {Posted(1, cash, wallet, 100), Posted(2, cash, other, 100), share,
                            Posted(4, loan, wallet, 5, TransferCode::kRepayment), hold}})
          .ok());
  auto ids = [](const absl::StatusOr<Page<Transfer>>& page) {
    std::vector<int64_t> out;
    EXPECT_TRUE(page.ok()) << page.status();
    if (page.ok()) {
      for (const Transfer& t : page->items) out.push_back(t.id.value());
    }
    return out;
  };
  EXPECT_THAT(ids(store_->ListTransfers({}, {.limit = 10})), ElementsAre(1, 2, 3, 4, 5));
  EXPECT_THAT(ids(store_->ListTransfers({.account_id = wallet.id}, {.limit = 10})),
              ElementsAre(1, 3, 4));
  EXPECT_THAT(
      ids(store_->ListTransfers({.account_id = wallet.id}, {.limit = 10, .newest_first = true})),
      ElementsAre(4, 3, 1));
  EXPECT_THAT(ids(store_->ListTransfers({.loan_id = LoanId(7)}, {.limit = 10})), ElementsAre(3, 5));
  EXPECT_THAT(ids(store_->ListTransfers({.types = {TransferType::kPending}}, {.limit = 10})),
              ElementsAre(5));
  EXPECT_THAT(ids(store_->ListTransfers(
                  {.codes = {TransferCode::kRepayment, TransferCode::kDeposit}}, {.limit = 10})),
              ElementsAre(1, 2, 4));
  EXPECT_THAT(ids(store_->ListTransfers({.from_time = kT0 + absl::Microseconds(2),
                                         .to_time = kT0 + absl::Microseconds(4)},
                                        {.limit = 10})),
              ElementsAre(2, 3));
  EXPECT_THAT(ids(store_->ListTransfers(
                  {.account_id = loan.id, .codes = {TransferCode::kLoanShare}}, {.limit = 10})),
              ElementsAre(3, 5));
  auto page = store_->ListTransfers({.account_id = wallet.id}, {.limit = 2});
  EXPECT_EQ(page->total_count, 3);
  EXPECT_EQ(page->next_after_id, 3);
  auto rest = store_->ListTransfers({.account_id = wallet.id}, {.limit = 2, .after_id = 3});
  EXPECT_THAT(ids(rest), ElementsAre(4));
  EXPECT_EQ(rest->next_after_id, 0);
  EXPECT_EQ(rest->total_count, 3);
  auto back = store_->ListTransfers({}, {.limit = 2, .after_id = 4, .newest_first = true});
  EXPECT_THAT(ids(back), ElementsAre(3, 2));
  EXPECT_EQ(back->next_after_id, 2);
}

TEST_F(PgLedgerStoreTest, ListAccountsFiltersAndPages) {
  Account w1 = Open(Wallet("lender-1"));
  Account w2 = Open(Wallet("lender-2"));
  Account cash = Open(Platform(AccountKind::kExternalCash));
  NewAccount eur = Wallet("lender-1");
  eur.currency = *Currency::FromCode("EUR");
  Account w1_eur = Open(eur, "eur");
  auto wallets = store_->ListAccounts({.kind = AccountKind::kLenderWallet}, {.limit = 2});
  ASSERT_TRUE(wallets.ok()) << wallets.status();
  EXPECT_THAT(wallets->items, ElementsAre(w1, w2));
  EXPECT_EQ(wallets->total_count, 3);
  EXPECT_EQ(wallets->next_after_id, w2.id.value());
  auto more = store_->ListAccounts({.kind = AccountKind::kLenderWallet},
                                   {.limit = 2, .after_id = wallets->next_after_id});
  EXPECT_THAT(more->items, ElementsAre(w1_eur));
  EXPECT_EQ(more->next_after_id, 0);
  EXPECT_THAT(store_->ListAccounts({.owner_id = "lender-1"}, {.limit = 10})->items,
              ElementsAre(w1, w1_eur));
  EXPECT_THAT(store_->ListAccounts({.currency = *Currency::FromCode("EUR")}, {.limit = 10})->items,
              ElementsAre(w1_eur));
  EXPECT_THAT(store_->ListAccounts({.owner_type = OwnerType::kPlatform}, {.limit = 10})->items,
              ElementsAre(cash));
  EXPECT_THAT(store_->ListAccounts({.owner_id = "nobody"}, {.limit = 10})->items, IsEmpty());
}

TEST_F(PgLedgerStoreTest, WithdrawalsUpsertAndList) {
  Account cash = Open(Platform(AccountKind::kExternalCash));
  Account wallet = Open(Wallet("lender-1"));
  Transfer hold = Posted(1, wallet, cash, 10, TransferCode::kWithdrawal);
  hold.type = TransferType::kPending;
  Withdrawal w{.id = WithdrawalId(1),
               .lender_id = LenderId(9),
               .wallet_account_id = wallet.id,
               .amount = hold.amount,
               .hold_id = hold.id,
               .created_at = kT0,
               .updated_at = kT0};
  Withdrawal w2 = w;
  w2.id = WithdrawalId(2);
  w2.lender_id = LenderId(10);
  ASSERT_TRUE(
      Commit({.transfers = {hold}, .holds = {{.transfer = hold}}, .withdrawals = {w, w2}}).ok());
  w.state = WithdrawalState::kRejected;
  w.reason = "bank \"details\" wrong";
  w.updated_at = kT0 + absl::Seconds(1);
  ASSERT_TRUE(Commit({.withdrawals = {w}}).ok());
  EXPECT_EQ(*store_->GetWithdrawal(w.id), w);
  auto mine = store_->ListWithdrawals(LenderId(9), std::nullopt, {.limit = 10});
  ASSERT_TRUE(mine.ok()) << mine.status();
  EXPECT_THAT(mine->items, ElementsAre(w));
  EXPECT_THAT(
      store_->ListWithdrawals(std::nullopt, WithdrawalState::kRequested, {.limit = 10})->items,
      ElementsAre(w2));
  auto all =
      store_->ListWithdrawals(std::nullopt, std::nullopt, {.limit = 1, .newest_first = true});
  EXPECT_THAT(all->items, ElementsAre(w2));
  EXPECT_EQ(all->total_count, 2);
  EXPECT_EQ(all->next_after_id, 2);
}

TEST_F(PgLedgerStoreTest, FetchUnpublishedAndMarkPublished) {
  Account cash = Open(Platform(AccountKind::kExternalCash));
  Account wallet = Open(Wallet("lender-1"));
  std::vector<Transfer> transfers;
  for (int64_t id = 1; id <= 5; ++id) transfers.push_back(Posted(id, cash, wallet, id));
  ASSERT_TRUE(Move(transfers, {&cash, &wallet}).ok());
  auto first = store_->FetchUnpublished(3);
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_EQ(first->size(), 3u);
  EXPECT_EQ((*first)[0].event_id, "transfer-1");
  EXPECT_EQ((*first)[2].event_id, "transfer-3");
  EXPECT_EQ((*first)[0].created_at, transfers[0].created_at);
  std::vector<int64_t> published;
  for (const OutboxEvent& e : *first) published.push_back(e.sequence);
  ASSERT_TRUE(store_->MarkPublished(published, kT0).ok());
  auto rest = store_->FetchUnpublished(10);
  ASSERT_TRUE(rest.ok());
  std::vector<std::string> ids;
  for (const OutboxEvent& e : *rest) ids.push_back(e.event_id);
  EXPECT_THAT(ids, ElementsAre("transfer-4", "transfer-5"));
  EXPECT_TRUE(store_->MarkPublished({}, kT0).ok());
  // Marking an older prefix again never moves the cursor back.
  ASSERT_TRUE(store_->MarkPublished({(*first)[0].sequence}, kT0).ok());
  EXPECT_EQ(store_->FetchUnpublished(10)->size(), 2u);
}

TEST_F(PgLedgerStoreTest, EventsOfOneCommitArePackedAndUnpackedInOrder) {
  Account cash = Open(Platform(AccountKind::kExternalCash));
  Account wallet = Open(Wallet("lender-1"));
  std::vector<Transfer> transfers;
  for (int64_t id = 1; id <= 600; ++id) {
    Transfer t = Posted(id, cash, wallet, 1);
    t.created_at = kT0;  // one commit time: packed, 256 to a row
    transfers.push_back(t);
  }
  CommitSet commit;
  for (const Transfer& t : transfers) commit.events.push_back(Event(t));
  commit.events[300].payload = "{\"memo\":\"two\nlines\"}";  // cannot be packed: a row of its own
  commit.transfers = transfers;
  cash.debits_posted += 600;
  wallet.credits_posted += 600;
  commit.accounts = {cash, wallet};
  ASSERT_TRUE(Commit(commit).ok());
  // Rows: 256 events, 44 (up to the odd one), 1, 256, 43.
  EXPECT_EQ(Scalar("SELECT count(*) FROM lending.outbox_events"), 5);
  EXPECT_EQ(Scalar("SELECT sum(event_count) FROM lending.outbox_events"), 600);

  auto first = store_->FetchUnpublished(300);  // whole rows whose events start before 300
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_EQ(first->size(), 300u);
  for (size_t i = 0; i < first->size(); ++i) {
    const OutboxEvent& e = (*first)[i];
    ASSERT_EQ(e, (OutboxEvent{.sequence = e.sequence,
                              .event_id = commit.events[i].event_id,
                              .kind = "transfer_committed",
                              .account_id = cash.id,
                              .payload = commit.events[i].payload,
                              .created_at = kT0}));
  }
  EXPECT_EQ((*first)[0].sequence, (*first)[255].sequence);
  EXPECT_LT((*first)[255].sequence, (*first)[256].sequence);
  std::vector<int64_t> published;
  for (const OutboxEvent& e : *first) published.push_back(e.sequence);
  ASSERT_TRUE(store_->MarkPublished(published, kT0).ok());
  // Reconciliation counts the events, not the rows.
  auto report = store_->Reconcile({}, false, kT0 + absl::Seconds(1));
  ASSERT_TRUE(report.ok());
  ASSERT_EQ(report->findings.size(), 1u);
  EXPECT_EQ(report->findings[0].kind, Kind::kOutboxUnpublished);
  EXPECT_EQ(report->findings[0].count, 300);

  auto rest = store_->FetchUnpublished(1000);
  ASSERT_TRUE(rest.ok());
  ASSERT_EQ(rest->size(), 300u);
  EXPECT_EQ((*rest)[0].event_id, "transfer-301");
  EXPECT_EQ((*rest)[0].payload, "{\"memo\":\"two\nlines\"}");
  EXPECT_EQ(rest->back().event_id, "transfer-600");
}

TEST_F(PgLedgerStoreTest, EventsByReferenceAreRenderedWhenFetched) {
  Account cash = Open(Platform(AccountKind::kExternalCash));
  Account a = Open(Wallet("lender-1"));
  Account b = Open(Wallet("lender-2"));
  CommitSet commit;
  std::vector<OutboxEvent> expected;
  for (int64_t id = 1; id <= 300; ++id) {
    Account* debit = id % 3 == 0 ? &a : &cash;
    Account* credit = id % 3 == 1 ? &a : &b;
    const int64_t amount = id % 3 == 0 ? 1 : id;  // the wallet never overdraws
    Transfer t = Posted(id, *debit, *credit, amount);
    t.created_at = kT0;
    t.memo = id == 7 ? "a \"memo\"\n\twith a \\ line\r" : "";
    debit->debits_posted += amount;
    credit->credits_posted += amount;
    commit.events.push_back(TransferEventByRef(t, *debit, *credit));
    expected.push_back(TransferEvent(t, *debit, *credit));
    commit.transfers.push_back(t);
  }
  commit.accounts = {cash, a, b};
  ASSERT_TRUE(Commit(commit).ok()) << Commit(commit);
  EXPECT_EQ(Scalar("SELECT count(*) FROM lending.outbox_events"), 2);  // 256 + 44
  auto events = store_->FetchUnpublished(1000);
  ASSERT_TRUE(events.ok()) << events.status();
  ASSERT_EQ(events->size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    expected[i].sequence = (*events)[i].sequence;
    ASSERT_EQ((*events)[i], expected[i]) << i;
  }
}

TEST_F(PgLedgerStoreTest, EventsByReferenceAreRenderedFromRecentTransfersWhereHeld) {
  Account cash = Open(Platform(AccountKind::kExternalCash));
  Account a = Open(Wallet("lender-1"));
  CommitSet commit;
  std::vector<OutboxEvent> expected;
  std::vector<Transfer> held;
  for (int64_t id = 1; id <= 40; ++id) {
    Transfer t = Posted(id, cash, a, id);
    t.created_at = kT0;
    cash.debits_posted += id;
    a.credits_posted += id;
    commit.events.push_back(TransferEventByRef(t, cash, a));
    expected.push_back(TransferEvent(t, cash, a));
    commit.transfers.push_back(t);
    if (id <= 20) held.push_back(t);
  }
  commit.accounts = {cash, a};
  ASSERT_TRUE(Commit(commit).ok());
  // The first half is held in memory, the rest is read back. To tell which source rendered an
  // event, the held copy of transfer 5 carries a memo the database does not have.
  held[4].memo = "from memory";
  RecentTransfers recent(/*max_transfers=*/1000);
  recent.Remember(held, {cash, a});
  store_->set_recent_transfers(&recent);
  auto events = store_->FetchUnpublished(1000);
  store_->set_recent_transfers(nullptr);
  ASSERT_TRUE(events.ok()) << events.status();
  ASSERT_EQ(events->size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    expected[i].sequence = (*events)[i].sequence;
    if (i == 4) {
      EXPECT_THAT((*events)[i].payload, HasSubstr("\"memo\":\"from memory\""));
      continue;
    }
    ASSERT_EQ((*events)[i], expected[i]) << i;
  }
}

TEST_F(PgLedgerStoreTest, GetTransfersAnswersInTheOrderAskedWhateverTheGapsBetweenIds) {
  Account cash = Open(Platform(AccountKind::kExternalCash));
  Account a = Open(Wallet("lender-1"));
  CommitSet commit;
  for (int64_t id : std::vector<int64_t>{1, 2, 3, 1'000'000'000'000}) {
    Transfer t = Posted(id, cash, a, id % 1000 + 1);
    t.created_at = kT0;
    cash.debits_posted += t.amount.minor_units();
    a.credits_posted += t.amount.minor_units();
    commit.events.push_back(TransferEventByRef(t, cash, a));
    commit.transfers.push_back(t);
  }
  commit.accounts = {cash, a};
  ASSERT_TRUE(Commit(commit).ok());
  auto got = store_->GetTransfers(
      {TransferId(1'000'000'000'000), TransferId(2), TransferId(1), TransferId(3), TransferId(2)});
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->size(), 5u);
  EXPECT_EQ((*got)[0], commit.transfers[3]);
  EXPECT_EQ((*got)[1], commit.transfers[1]);
  EXPECT_EQ((*got)[2], commit.transfers[0]);
  EXPECT_EQ((*got)[3], commit.transfers[2]);
  EXPECT_EQ((*got)[4], commit.transfers[1]);
  auto missing = store_->GetTransfers({TransferId(2), TransferId(99)});
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("transfer 99"));
  EXPECT_THAT(*store_->GetTransfers({}), IsEmpty());
}

TEST_F(PgLedgerStoreTest, AccountHistoryListsEachTransferOnBothAccounts) {
  Account cash = Open(Platform(AccountKind::kExternalCash));
  Account a = Open(Wallet("lender-1"));
  Account b = Open(Wallet("lender-2"));
  ASSERT_TRUE(Move({Posted(1, cash, a, 100), Posted(2, cash, b, 100)}, {&cash, &a, &b}).ok());
  ASSERT_TRUE(Move({Posted(3, a, b, 30), Posted(4, cash, a, 5)}, {&cash, &a, &b}).ok());
  // One row per account per commit.
  EXPECT_EQ(Scalar("SELECT count(*) FROM lending.account_entries"), 6);
  EXPECT_EQ(Scalar(absl::StrCat("SELECT count(*) FROM lending.account_entries WHERE account_id = ",
                                a.id.value(), " AND transfer_ids = '{3,4}'")),
            1);
  auto report = store_->Reconcile({}, true, kT0);
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->findings.empty());

  // A transfer listed under an account it does not touch, and nothing else wrong.
  ASSERT_TRUE(Exec(absl::StrCat("INSERT INTO account_entries VALUES (", b.id.value(), ", 4, '{4}')"))
                  .ok());
  report = store_->Reconcile({}, true, kT0);
  ASSERT_TRUE(report.ok());
  ASSERT_EQ(report->findings.size(), 1u);
  EXPECT_EQ(report->findings[0].kind, Kind::kAccountHistoryMismatch);
  EXPECT_EQ(report->findings[0].account_id, b.id);
  EXPECT_EQ(report->findings[0].count, 1);
  EXPECT_THAT(report->findings[0].detail, HasSubstr("at transfer 4"));
  // History rows are as immutable as transfers.
  EXPECT_EQ(Exec("DELETE FROM account_entries").code(), absl::StatusCode::kFailedPrecondition);
}

// A batch's run of plain transfers as the committer writes it: consecutive ids and batch
// positions, one request, one commit time (so the store packs them, migration 0009).
std::vector<Transfer> Batch(int64_t first_id, int count, const Account& debit,
                            const Account& credit) {
  std::vector<Transfer> out;
  for (int i = 0; i < count; ++i) {
    Transfer t = Posted(first_id + i, debit, credit, 100 + i);
    t.created_at = kT0;
    t.batch_request_id = "batch";
    t.batch_index = i;
    out.push_back(t);
  }
  return out;
}

TEST_F(PgLedgerStoreTest, RunsOfABatchArePackedAndReadBackExactlyAsWritten) {
  Account cash = Open(Platform(AccountKind::kExternalCash));
  Account wallet = Open(Wallet("lender-1"));
  std::vector<Transfer> batch = Batch(1, 45, cash, wallet);
  batch[9].references.loan_id = LoanId(7);  // a loan transfer stays a row
  batch[20].memo = "tab\there \"quoted\" \\ {braces}, and\nnewline";
  batch[20].references.external_payment_id = "pay-1";
  batch[21].references.order_id = OrderId(5);
  batch[22].references.repayment_id = RepaymentId(6);
  batch[23].code = TransferCode::kDonation;
  ASSERT_TRUE(Move(batch, {&cash, &wallet}).ok());
  // 1-9, then 10 as a row, then 11-42 (32, the most a pack holds), then 43-45.
  EXPECT_EQ(Scalar("SELECT count(*) FROM lending.transfers"), 1);
  EXPECT_EQ(Scalar("SELECT count(*) FROM lending.transfer_packs"), 3);
  EXPECT_EQ(Scalar("SELECT sum(first_id * 1000 + last_id) FROM lending.transfer_packs"),
            1009 + 11042 + 43045);

  std::vector<TransferId> ids;
  for (const Transfer& t : batch) ids.push_back(t.id);
  std::reverse(ids.begin(), ids.end());
  auto got = store_->GetTransfers(ids);
  ASSERT_TRUE(got.ok()) << got.status();
  std::vector<Transfer> expected(batch.rbegin(), batch.rend());
  EXPECT_EQ(*got, expected);
  auto one = store_->GetTransfer(TransferId(21));
  ASSERT_TRUE(one.ok()) << one.status();
  EXPECT_EQ(one->transfer, batch[20]);
  EXPECT_EQ(store_->GetTransfer(TransferId(46)).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->GetTransfers({TransferId(3), TransferId(46)}).status().code(),
            absl::StatusCode::kNotFound);

  // Listings page through rows and packs alike, in id order, with the same filters.
  std::vector<Transfer> listed;
  for (int64_t after = 0;;) {
    auto page = store_->ListTransfers({}, {.limit = 7, .after_id = after});
    ASSERT_TRUE(page.ok()) << page.status();
    EXPECT_EQ(page->total_count, 45);
    listed.insert(listed.end(), page->items.begin(), page->items.end());
    if (page->next_after_id == 0) break;
    after = page->next_after_id;
  }
  EXPECT_EQ(listed, batch);
  auto donations = store_->ListTransfers({.codes = {TransferCode::kDonation}}, {.limit = 10});
  ASSERT_TRUE(donations.ok());
  ASSERT_EQ(donations->items.size(), 1u);
  EXPECT_EQ(donations->items[0], batch[23]);
  auto by_loan = store_->ListTransfers({.loan_id = LoanId(7)}, {.limit = 10});
  ASSERT_TRUE(by_loan.ok());
  EXPECT_THAT(by_loan->items, ElementsAre(batch[9]));
  auto newest = store_->ListTransfers({.account_id = wallet.id}, {.limit = 2, .newest_first = true});
  ASSERT_TRUE(newest.ok());
  EXPECT_THAT(newest->items, ElementsAre(batch[44], batch[43]));
  EXPECT_EQ(newest->total_count, 45);

  // The statement's running balance runs over packed and row transfers.
  auto statement = store_->Statement(wallet.id, {}, {.limit = 100});
  ASSERT_TRUE(statement.ok()) << statement.status();
  ASSERT_EQ(statement->items.size(), 45u);
  int64_t balance = 0;
  for (size_t i = 0; i < batch.size(); ++i) {
    balance += batch[i].amount.minor_units();
    EXPECT_EQ(statement->items[i].transfer, batch[i]);
    EXPECT_EQ(statement->items[i].balance_after, balance);
  }
  auto report = store_->Reconcile({}, true, kT0);
  ASSERT_TRUE(report.ok());
  EXPECT_THAT(report->findings, IsEmpty());
  EXPECT_EQ(report->transfers_checked, 45);
}

TEST_F(PgLedgerStoreTest, PackedIdsAreTakenAndPacksImmutable) {
  Account cash = Open(Platform(AccountKind::kExternalCash));
  Account wallet = Open(Wallet("lender-1"));
  ASSERT_TRUE(Move(Batch(100, 10, cash, wallet), {&cash, &wallet}).ok());
  ASSERT_EQ(Scalar("SELECT count(*) FROM lending.transfer_packs"), 1);
  // A client-chosen id inside the pack is seen as taken, and refused if written anyway.
  ASSERT_TRUE(store_
                  ->Transact([&](LedgerTxn& txn) -> absl::Status {
                    LoadRequest request;
                    request.client_ids = {TransferId(99), TransferId(105), TransferId(110)};
                    auto loaded = txn.LoadForUpdate(request);
                    if (!loaded.ok()) return loaded.status();
                    EXPECT_THAT(loaded->existing_ids, ElementsAre(TransferId(105)));
                    return absl::OkStatus();
                  })
                  .ok());
  EXPECT_EQ(Move({Posted(105, cash, wallet, 1)}, {&cash, &wallet}).code(),
            absl::StatusCode::kAlreadyExists);
  // A pack over a row's id, or over another pack, is refused.
  ASSERT_TRUE(Move({Posted(200, cash, wallet, 1)}, {&cash, &wallet}).ok());
  EXPECT_EQ(Move(Batch(195, 8, cash, wallet), {&cash, &wallet}).code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(Move(Batch(108, 4, cash, wallet), {&cash, &wallet}).code(),
            absl::StatusCode::kAlreadyExists);
  // A pack naming an unknown account, or one account on both sides, is refused.
  Account ghost = wallet;
  ghost.id = AccountId(999);
  EXPECT_EQ(Move(Batch(300, 3, cash, ghost), {&cash}).code(),
            absl::StatusCode::kFailedPrecondition);
  // Accounts that exist, but in another currency than the pack's, on either side; also when the
  // statement's other pack, in their currency, is sound (migration 0012 checks per currency).
  const std::string c = absl::StrCat(cash.id.value()), w = absl::StrCat(wallet.id.value());
  auto packs = [&](const std::string& rows) {
    return Exec(absl::StrCat("INSERT INTO transfer_packs (first_id, last_id, currency, created_at,"
                             " debit_account_ids, credit_account_ids, amounts, codes) VALUES ",
                             rows));
  };
  EXPECT_THAT(packs(absl::StrCat("(400, 401, 'KES', now(), '{", c, ",", c, "}', '{", w, ",", w,
                                 "}', '{5,5}', '{1,1}')"))
                  .message(),
              HasSubstr(absl::StrCat("names account ", std::min(cash.id.value(), wallet.id.value()),
                                     ", which does not exist in its currency")));
  EXPECT_THAT(packs(absl::StrCat("(400, 401, 'USD', now(), '{", c, ",", c, "}', '{", w, ",", w,
                                 "}', '{5,5}', '{1,1}'), (402, 402, 'KES', now(), '{", c,
                                 "}', '{999}', '{5}', '{1}')"))
                  .message(),
              HasSubstr("which does not exist in its currency"));
  EXPECT_THAT(packs(absl::StrCat("(400, 401, 'USD', now(), '{", c, ",", c, "}', '{", w,
                                 ",999}', '{5,5}', '{1,1}')"))
                  .message(),
              HasSubstr("names account 999, which does not exist"))
      << "an unknown credit beside a known one";
  EXPECT_THAT(Exec("INSERT INTO transfer_packs (first_id, last_id, currency, created_at,"
                 " debit_account_ids, credit_account_ids, amounts, codes) VALUES (400, 401, 'USD',"
                 " now(), '{1,1}', '{1,2}', '{5,5}', '{1,1}')")
                .message(),
            HasSubstr("debits and credits the same account"));
  EXPECT_THAT(Exec("INSERT INTO transfer_packs (first_id, last_id, currency, created_at,"
                 " debit_account_ids, credit_account_ids, amounts, codes) VALUES (400, 401, 'USD',"
                 " now(), '{1,2}', '{2,1}', '{5,0}', '{1,1}')")
                .message(),
            HasSubstr("transfer_packs_amounts"));
  EXPECT_THAT(Exec("INSERT INTO transfer_packs (first_id, last_id, currency, created_at,"
                   " debit_account_ids, credit_account_ids, amounts, codes) VALUES (400, 401, 'USD',"
                   " now(), '{1,2}', '{2,1}', '{5,NULL}', '{1,1}')")
                  .message(),
              HasSubstr("transfer_packs_amounts"));
  // Repayment packs (migration 0010): REPAYMENT credits of a loan, credit accounts ascending,
  // credit_hi the last of them, the repayment on the pack. Since migration 0012 they debit one
  // account, not among their credits, and credit only accounts of their loan's funder book, in
  // its currency.
  Account funder = Open(Wallet("lender-2"));
  Account outsider = Open(Wallet("lender-3"));
  ASSERT_TRUE(OpenBook(3, {wallet.id, funder.id}).ok());
  const int64_t lo = std::min(wallet.id.value(), funder.id.value());
  const int64_t hi = std::max(wallet.id.value(), funder.id.value());
  const int64_t out = outsider.id.value();
  struct RepaymentPack {  // 0: the sound pack's value
    int64_t debit_1 = 0, debit_2 = 0, credit_1 = 0, credit_2 = 0, credit_hi = 0;
    std::string codes = "{4,4}", loan = "3", currency = "USD";
  };
  auto repayment_pack = [&](RepaymentPack r) {
    auto or_else = [](int64_t v, int64_t sound) { return v != 0 ? v : sound; };
    const int64_t credit_2 = or_else(r.credit_2, hi);
    return Exec(absl::StrCat(
        "INSERT INTO transfer_packs (first_id, last_id, currency, created_at, debit_account_ids,"
        " credit_account_ids, amounts, codes, loan_id, repayment_id, credit_hi) VALUES"
        " (400, 401, '", r.currency, "', now(), '{", or_else(r.debit_1, cash.id.value()), ",",
        or_else(r.debit_2, cash.id.value()), "}', '{", or_else(r.credit_1, lo), ",", credit_2,
        "}', '{5,5}', '", r.codes, "', ", r.loan, ", 7, ", or_else(r.credit_hi, credit_2), ")"));
  };
  EXPECT_THAT(repayment_pack({.credit_1 = hi, .credit_2 = lo}).message(),
              HasSubstr("out of account order"));
  EXPECT_THAT(repayment_pack({.codes = "{4,1}"}).message(), HasSubstr("transfer_packs_repayment"));
  EXPECT_THAT(repayment_pack({.loan = "NULL"}).message(), HasSubstr("transfer_packs_repayment"));
  EXPECT_THAT(repayment_pack({.credit_hi = lo}).message(), HasSubstr("transfer_packs_repayment"));
  EXPECT_THAT(repayment_pack({.debit_2 = out}).message(),
              HasSubstr("transfer_packs_repayment_debit"))
      << "two debit accounts";
  EXPECT_THAT(repayment_pack({.debit_1 = hi, .debit_2 = hi}).message(),
              HasSubstr("transfer_packs_repayment_debit"))
      << "debits an account it credits";
  EXPECT_THAT(repayment_pack({.debit_1 = 999, .debit_2 = 999}).message(),
              HasSubstr("names account 999, which does not exist in its currency"));
  EXPECT_THAT((out > hi ? repayment_pack({.credit_2 = out}) : repayment_pack({.credit_1 = out}))
                  .message(),
              HasSubstr(absl::StrCat("credits account ", out, ", which is not a funder of loan 3")))
      << "an account that exists, in the pack's currency, but did not fund the loan";
  EXPECT_THAT(repayment_pack({.loan = "4"}).message(),
              HasSubstr("funders of loan 4, which has no funder book in the pack's currency"));
  NewAccount kes = Platform(AccountKind::kPartnerSettlement);
  kes.currency = *Currency::FromCode("KES");
  const int64_t kes_settlement = Open(kes).id.value();
  EXPECT_THAT(repayment_pack({.debit_1 = kes_settlement, .debit_2 = kes_settlement,
                              .currency = "KES"})
                  .message(),
              HasSubstr("funders of loan 3, which has no funder book in the pack's currency"))
      << "a book of USD wallets";
  ASSERT_TRUE(repayment_pack({}).ok()) << "the sound pack the cases above each spoil once";
  EXPECT_EQ(Scalar("SELECT count(*) FROM lending.transfer_packs WHERE repayment_id = 7"), 1);
  EXPECT_EQ(Exec("UPDATE transfer_packs SET amounts = '{1}'").code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Exec("DELETE FROM transfer_packs").code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Exec("TRUNCATE transfer_packs").code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Scalar("SELECT count(*) FROM lending.all_transfers"), 13);
}

// A loan's funder book (migrations 0010, 0012) names existing accounts of its currency. Once
// written only `credited` changes: its loan, currency, accounts and shares stay as they are, and
// it is never deleted, so a repayment pack checked against it credits real accounts.
TEST_F(PgLedgerStoreTest, FunderBooksNameExistingAccountsOfTheirCurrencyAndKeepThem) {
  Account w1 = Open(Wallet("book-1"));
  Account w2 = Open(Wallet("book-2"));
  EXPECT_THAT(OpenBook(10, {w1.id, AccountId(987654)}).message(),
              HasSubstr("the funder book of loan 10 names account 987654, which does not exist"
                        " in its currency"));
  EXPECT_THAT(OpenBook(11, {w1.id, w2.id}, "KES").message(),
              HasSubstr(absl::StrCat("the funder book of loan 11 names account ",
                                     std::min(w1.id.value(), w2.id.value()),
                                     ", which does not exist in its currency")))
      << "USD wallets in a KES book";
  EXPECT_EQ(Scalar("SELECT count(*) FROM lending.loans"), 0) << "a refused book's statement left nothing";

  ASSERT_TRUE(OpenBook(12, {w2.id, w1.id}).ok());
  const std::string accounts = absl::StrCat("{", std::min(w1.id.value(), w2.id.value()), ",",
                                            std::max(w1.id.value(), w2.id.value()), "}");
  ASSERT_TRUE(Exec("WITH p AS (INSERT INTO partners (name, countries, credit_limit_minor,"
                   " created_at, updated_at) VALUES ('bookless', '{KE}', 0, now(), now())"
                   " RETURNING id) INSERT INTO loans (id, partner_id, status, details, created_at,"
                   " updated_at) SELECT 13, p.id, 5, '{}', now(), now() FROM p")
                  .ok());
  EXPECT_TRUE(Exec("UPDATE loan_funder_books SET credited = '{7,9}' WHERE loan_id = 12").ok());
  EXPECT_TRUE(Exec("UPDATE loan_funder_books SET account_ids = account_ids, shares = shares"
                   " WHERE loan_id = 12")
                  .ok())
      << "set to what they are: no change";
  const std::string changes[] = {
      absl::StrCat("account_ids = '{", w1.id.value(), "}', shares = '{2500}', credited = '{0}'"),
      absl::StrCat("account_ids = '{", std::max(w1.id.value(), w2.id.value()), ",",
                   std::min(w1.id.value(), w2.id.value()), "}'"),
      "shares = '{2500,2501}'", "currency = 'KES'", "loan_id = 13"};
  for (const std::string& change : changes) {
    SCOPED_TRACE(change);
    absl::Status s = Exec("UPDATE loan_funder_books SET " + change + " WHERE loan_id = 12");
    EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
    EXPECT_THAT(s.message(), HasSubstr("never change"));
  }
  EXPECT_THAT(Exec("DELETE FROM loan_funder_books").message(), HasSubstr("never deleted"));
  EXPECT_THAT(Exec("TRUNCATE loan_funder_books").message(), HasSubstr("never deleted"));
  EXPECT_EQ(Scalar(absl::StrCat("SELECT count(*) FROM lending.loan_funder_books WHERE loan_id = 12"
                                " AND currency = 'USD' AND account_ids = '", accounts, "'"
                                " AND shares = '{2500,2500}' AND credited = '{7,9}'")),
            1);
}

// A loan's funders are counted from its rows until it is disbursed, from its book after (the
// book fixes them; counting 10,000 rows before each repayment took about 1 ms).
TEST_F(PgLedgerStoreTest, FunderCountsComeFromTheRowsBeforeTheBookOpensAndTheBookAfter) {
  std::vector<Account> wallets = {Open(Wallet("count-1")), Open(Wallet("count-2")),
                                  Open(Wallet("count-3"))};
  ASSERT_TRUE(OpenBook(90, {wallets[0].id, wallets[1].id, wallets[2].id}).ok());
  absl::StatusOr<int64_t> booked = store_->CountFunders(LoanId(90));
  ASSERT_TRUE(booked.ok()) << booked.status();
  EXPECT_EQ(*booked, 3) << "the book's funders, with no funder rows written in this test";

  ASSERT_TRUE(Exec("WITH p AS (INSERT INTO partners (name, countries, credit_limit_minor,"
                   " created_at, updated_at) VALUES ('unbooked', '{KE}', 0, now(), now())"
                   " RETURNING id) INSERT INTO loans (id, partner_id, status, details, created_at,"
                   " updated_at) SELECT 91, p.id, 3, '{}', now(), now() FROM p")
                  .ok());
  for (size_t i = 0; i < 2; ++i) {
    ASSERT_TRUE(Exec(absl::StrCat("INSERT INTO loan_funders (loan_id, account_id, owner_type,"
                                  " owner_id, amount_minor, share_count, first_lent_at) VALUES"
                                  " (91, ", wallets[i].id.value(), ", 1, 'x', 2500, 1, now())"))
                    .ok());
  }
  absl::StatusOr<int64_t> rows = store_->CountFunders(LoanId(91));
  ASSERT_TRUE(rows.ok()) << rows.status();
  EXPECT_EQ(*rows, 2) << "a fundraising loan has no book yet";
  absl::StatusOr<int64_t> none = store_->CountFunders(LoanId(92));
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_EQ(*none, 0) << "no loan at all";

  // GetRepaymentTargets reads the same counts, with each loan's money and schedule, for many
  // loans at once; a missing loan and a draft are left out, as GetLoanMoney finds neither.
  ASSERT_TRUE(Exec("INSERT INTO loan_schedule_entries (loan_id, seq, due_date, principal_minor)"
                   " VALUES (90, 1, '2027-02-28', 600), (90, 0, '2027-01-31', 400)")
                  .ok());
  ASSERT_TRUE(Exec("INSERT INTO loans (id, partner_id, status, details, created_at, updated_at)"
                   " SELECT 93, partner_id, 1, '{}', now(), now() FROM loans WHERE id = 91")
                  .ok());
  absl::StatusOr<std::vector<RepaymentTarget>> targets =
      store_->GetRepaymentTargets({LoanId(93), LoanId(91), LoanId(92), LoanId(90)});
  ASSERT_TRUE(targets.ok()) << targets.status();
  ASSERT_EQ(targets->size(), 2u);
  for (const RepaymentTarget& t : *targets) {
    absl::StatusOr<LoanMoney> money = store_->GetLoanMoney(t.loan.id);
    ASSERT_TRUE(money.ok()) << money.status();
    EXPECT_EQ(t.loan, *money);
  }
  EXPECT_EQ((*targets)[0].loan.id, LoanId(90));
  EXPECT_EQ((*targets)[0].funder_count, 3);
  ASSERT_EQ((*targets)[0].schedule.size(), 2u);
  EXPECT_EQ((*targets)[0].schedule[0].due, absl::CivilDay(2027, 1, 31)) << "in seq order";
  EXPECT_EQ((*targets)[0].schedule[1].principal.minor_units(), 600);
  EXPECT_EQ((*targets)[1].loan.id, LoanId(91));
  EXPECT_EQ((*targets)[1].funder_count, 2);
  EXPECT_TRUE((*targets)[1].schedule.empty());
}

// Only the loan desk's credits to funders (CommitSet::funder_credits) become repayment packs,
// whose credit side funders find through their positions (ADR 0011). The same REPAYMENT credits
// posted by a client stay rows, listed in their accounts' history like any transfer.
TEST_F(PgLedgerStoreTest, OnlyTheLoanDesksFunderCreditsBecomeRepaymentPacks) {
  Account settlement = Open(Platform(AccountKind::kPartnerSettlement));
  std::vector<Account> wallets = {Open(Wallet("funder-1")), Open(Wallet("funder-2")),
                                  Open(Wallet("funder-3"))};
  auto credits = [&](int64_t first_id, int64_t repayment) {
    std::vector<Transfer> out;
    for (int i = 0; i < 3; ++i) {
      out.push_back(FunderCredit(first_id + i, settlement, wallets[i], 100 + i, "repay", i, 77,
                                 repayment));
    }
    return out;
  };
  std::vector<Account*> touched = {&settlement, &wallets[0], &wallets[1], &wallets[2]};
  ASSERT_TRUE(Move(credits(500, 5), touched).ok());
  EXPECT_EQ(Scalar("SELECT count(*) FROM lending.transfers WHERE repayment_id = 5"), 3);
  EXPECT_EQ(Scalar("SELECT count(*) FROM lending.transfer_packs WHERE repayment_id = 5"), 0);
  absl::StatusOr<Page<StatementRow>> statement = store_->Statement(wallets[1].id, {}, {.limit = 10});
  ASSERT_TRUE(statement.ok()) << statement.status();
  ASSERT_EQ(statement->items.size(), 1u);
  EXPECT_EQ(statement->items[0].transfer.id, TransferId(501));
  EXPECT_EQ(statement->items[0].balance_after, 101);

  ASSERT_TRUE(OpenBook(77, {wallets[0].id, wallets[1].id, wallets[2].id}).ok());
  CommitSet desk;
  for (const Transfer& t : credits(600, 6)) AddFunderCredit(desk, t);
  ASSERT_TRUE(Commit(desk).ok());
  EXPECT_EQ(Scalar("SELECT count(*) FROM lending.transfer_packs WHERE repayment_id = 6"
                   " AND loan_id = 77 AND credit_hi = " + std::to_string(wallets[2].id.value())),
            1);
  EXPECT_EQ(Scalar("SELECT count(*) FROM lending.account_entries e, unnest(e.transfer_ids) x"
                   " WHERE x BETWEEN 600 AND 602"),
            3)
      << "only the settlement side is listed in account_entries";
  absl::StatusOr<std::vector<Transfer>> read = store_->GetTransfers({TransferId(602)});
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ((*read)[0].references.loan_id, LoanId(77));
  EXPECT_EQ((*read)[0].references.repayment_id, RepaymentId(6));
  EXPECT_EQ((*read)[0].credit_account_id, wallets[2].id);
}

// A repayment's credits to funders (CommitSet::funder_credits) whose runs break: a pack, a lone
// credit stored as a row, another pack. Reading them back interleaves the two kinds in id order.
TEST_F(PgLedgerStoreTest, ALoneFunderCreditBetweenPacksReadsBackInOrder) {
  Account settlement = Open(Platform(AccountKind::kPartnerSettlement));
  std::vector<Account> wallets;
  for (int i = 0; i < 5; ++i) wallets.push_back(Open(Wallet(absl::StrCat("funder-", i))));
  // Batch positions 0 1 | 5 | 9 10: the gaps end a run, so 702 has no neighbour to pack with.
  const int batch_index[] = {0, 1, 5, 9, 10};
  std::vector<AccountId> funders;
  for (const Account& w : wallets) funders.push_back(w.id);
  ASSERT_TRUE(OpenBook(78, funders).ok());
  CommitSet desk;
  for (int i = 0; i < 5; ++i) {
    AddFunderCredit(desk, FunderCredit(700 + i, settlement, wallets[i], 10 * (i + 1), "repay-lone",
                                       batch_index[i], 78, 8));
  }
  ASSERT_TRUE(Commit(desk).ok());
  EXPECT_EQ(Scalar("SELECT count(*) FROM lending.transfer_packs WHERE repayment_id = 8"), 2);
  EXPECT_EQ(Scalar("SELECT count(*) FROM lending.transfers WHERE repayment_id = 8"), 1);
  EXPECT_EQ(Scalar("SELECT id FROM lending.transfers WHERE repayment_id = 8"), 702);

  absl::StatusOr<std::vector<Transfer>> read = store_->GetTransfers(
      {TransferId(704), TransferId(702), TransferId(700), TransferId(703), TransferId(701)});
  ASSERT_TRUE(read.ok()) << read.status();
  ASSERT_EQ(read->size(), 5u);
  for (const Transfer& t : *read) {
    const Transfer& wrote = desk.transfers[t.id.value() - 700];
    EXPECT_EQ(t, wrote) << "transfer " << t.id.value();
  }
  EXPECT_EQ((*read)[0].id, TransferId(704)) << "in the order asked";
  EXPECT_EQ((*read)[1].id, TransferId(702));

  absl::StatusOr<Page<StatementRow>> statement =
      store_->Statement(settlement.id, {}, {.limit = 10});
  ASSERT_TRUE(statement.ok()) << statement.status();
  ASSERT_EQ(statement->items.size(), 5u);
  int64_t balance = 0;
  for (int i = 0; i < 5; ++i) {
    balance -= 10 * (i + 1);
    EXPECT_EQ(statement->items[i].transfer.id, TransferId(700 + i));
    EXPECT_EQ(statement->items[i].balance_after, balance);
  }
}

// A repayment pack debits one account (migration 0012): a run of funder credits ends where the
// debit account changes, even with the same loan and repayment and ascending credit accounts.
TEST_F(PgLedgerStoreTest, RepaymentPacksEndWhereTheDebitAccountChanges) {
  const Account settlements[] = {Open(Platform(AccountKind::kPartnerSettlement)),
                                 Open(Platform(AccountKind::kPlatformLoss))};
  std::vector<Account> wallets;
  std::vector<AccountId> funders;
  for (int i = 0; i < 6; ++i) {
    wallets.push_back(Open(Wallet(absl::StrCat("debit-run-", i))));
    funders.push_back(wallets.back().id);
  }
  ASSERT_TRUE(OpenBook(80, funders).ok());
  CommitSet desk;
  for (int i = 0; i < 6; ++i) {
    AddFunderCredit(desk, FunderCredit(900 + i, settlements[i / 3], wallets[i], 10 + i,
                                       "repay-two-debits", i, 80, 9));
  }
  ASSERT_TRUE(Commit(desk).ok());
  EXPECT_EQ(Scalar("SELECT count(*) FROM lending.transfer_packs WHERE repayment_id = 9"), 2);
  for (int p = 0; p < 2; ++p) {
    EXPECT_EQ(Scalar(absl::StrCat("SELECT count(*) FROM lending.transfer_packs WHERE repayment_id = 9"
                                  " AND first_id = ", 900 + 3 * p, " AND last_id = ", 902 + 3 * p,
                                  " AND debit_account_ids = '{", settlements[p].id.value(), ",",
                                  settlements[p].id.value(), ",", settlements[p].id.value(), "}'")),
              1)
        << "pack " << p;
  }
  absl::StatusOr<std::vector<Transfer>> read = store_->GetTransfers(
      {TransferId(900), TransferId(901), TransferId(902), TransferId(903), TransferId(904),
       TransferId(905)});
  ASSERT_TRUE(read.ok()) << read.status();
  ASSERT_EQ(read->size(), 6u);
  for (size_t i = 0; i < 6; ++i) EXPECT_EQ((*read)[i], desk.transfers[i]) << "transfer " << 900 + i;
}

// Credits by increment (ADR 0011) add to accounts the commit did not load. An increment to an
// account that is missing, of another currency or credit-limited is refused as a bug (Internal)
// and the whole commit is rolled back.
TEST_F(PgLedgerStoreTest, CreditIncrementsAddToTotalsOrRefuseTheWholeCommit) {
  Account settlement = Open(Platform(AccountKind::kPartnerSettlement));
  Account w1 = Open(Wallet("inc-1"));
  Account w2 = Open(Wallet("inc-2"));
  Account limited = Open({.owner_type = OwnerType::kPlatform,
                          .owner_id = "",
                          .kind = AccountKind::kExternalCash,
                          .flags = {.credits_must_not_exceed_debits = true}});
  ASSERT_TRUE(OpenBook(79, {w1.id, w2.id, limited.id}).ok());
  auto desk = [&](int64_t first_id, std::vector<CreditIncrement> increments) {
    CommitSet c;
    int64_t total = 0;
    for (size_t i = 0; i < increments.size(); ++i) {
      Account credit;
      credit.id = increments[i].account_id;
      AddFunderCredit(c, FunderCredit(first_id + static_cast<int64_t>(i), settlement, credit,
                                      increments[i].amount_minor, absl::StrCat("repay-", first_id),
                                      static_cast<int32_t>(i), 79, first_id));
      total += increments[i].amount_minor;
    }
    Account debited = settlement;
    debited.debits_posted += total;
    c.accounts = {debited};
    c.credit_increments = std::move(increments);
    return c;
  };
  // Changes when any account's total does.
  const std::string balances = "SELECT sum(credits_posted * id) + sum(debits_posted * id)"
                               " FROM lending.accounts";
  const std::string written = "SELECT (SELECT count(*) FROM lending.transfers) +"
                              " (SELECT count(*) FROM lending.transfer_packs) +"
                              " (SELECT count(*) FROM lending.outbox_events)";

  ASSERT_TRUE(Commit(desk(800, {{.account_id = w1.id, .amount_minor = 125},
                                {.account_id = w2.id, .amount_minor = 75}}))
                  .ok());
  settlement = *store_->GetAccount(settlement.id);
  EXPECT_EQ(settlement.debits_posted, 200);
  EXPECT_EQ(Scalar("SELECT credits_posted FROM lending.accounts WHERE id = " +
                   std::to_string(w1.id.value())),
            125);
  EXPECT_EQ(Scalar("SELECT credits_posted FROM lending.accounts WHERE id = " +
                   std::to_string(w2.id.value())),
            75);
  ASSERT_TRUE(Commit(desk(810, {{.account_id = w1.id, .amount_minor = 5}})).ok());
  settlement = *store_->GetAccount(settlement.id);
  EXPECT_EQ(settlement.debits_posted, 205);
  EXPECT_EQ(Scalar("SELECT credits_posted FROM lending.accounts WHERE id = " +
                   std::to_string(w1.id.value())),
            130)
      << "an increment adds to the total, whatever the store last read";

  const int64_t balances_before = Scalar(balances);
  const int64_t written_before = Scalar(written);
  struct Bad {
    std::string what;
    CreditIncrement increment;
    absl::StatusCode code;
    std::string refusal;  // in the error's message
  };
  const Bad bad[] = {
      // The database's pack check (migration 0012) refuses it before the increment is tried.
      {"missing",
       {.account_id = AccountId(987654), .amount_minor = 10},
       absl::StatusCode::kFailedPrecondition,
       "account 987654, which is not a funder of loan 79"},
      {"other currency",
       {.account_id = w2.id, .currency = *Currency::FromCode("KES"), .amount_minor = 10},
       absl::StatusCode::kInternal,
       "1 of the 2 accounts credited by increment are missing, of another currency"},
      {"credit-limited",
       {.account_id = limited.id, .amount_minor = 10},
       absl::StatusCode::kInternal,
       "1 of the 2 accounts credited by increment are missing, of another currency"},
  };
  int64_t next_id = 820;
  for (const Bad& b : bad) {
    SCOPED_TRACE(b.what);
    absl::Status s = Commit(desk(next_id, {{.account_id = w1.id, .amount_minor = 40}, b.increment}));
    next_id += 10;
    EXPECT_EQ(s.code(), b.code) << s;
    EXPECT_NE(s.message().find(b.refusal), std::string::npos) << s;
    EXPECT_EQ(Scalar(balances), balances_before) << "no total changed";
    EXPECT_EQ(Scalar(written), written_before) << "no transfer, pack or event written";
  }
}

TEST_F(PgLedgerStoreTest, AllocatedIdsStayAboveClientChosenIds) {
  Account cash = Open(Platform(AccountKind::kExternalCash));
  Account wallet = Open(Wallet("lender-1"));
  std::vector<TransferId> before;
  ASSERT_TRUE(store_
                  ->Transact([&](LedgerTxn& txn) -> absl::Status {
                    auto ids = txn.AllocateTransferIds(3);
                    if (ids.ok()) before = *ids;
                    return ids.status();
                  })
                  .ok());
  EXPECT_THAT(before, ElementsAre(TransferId(1), TransferId(2), TransferId(3)));
  ASSERT_TRUE(Move({Posted(1'000'000, cash, wallet, 1)}, {&cash, &wallet}).ok());
  ASSERT_TRUE(store_
                  ->Transact([&](LedgerTxn& txn) -> absl::Status {
                    auto ids = txn.AllocateTransferIds(2);
                    if (!ids.ok()) return ids.status();
                    EXPECT_THAT(*ids, ElementsAre(TransferId(1'000'001), TransferId(1'000'002)));
                    // A client id below the sequence changes nothing.
                    return txn.Write({.transfers = {Posted(10, cash, wallet, 1)}});
                  })
                  .ok());
  ASSERT_TRUE(store_
                  ->Transact([&](LedgerTxn& txn) -> absl::Status {
                    auto ids = txn.AllocateTransferIds(1);
                    if (!ids.ok()) return ids.status();
                    EXPECT_THAT(*ids, ElementsAre(TransferId(1'000'003)));
                    return absl::OkStatus();
                  })
                  .ok());
  ASSERT_TRUE(store_
                  ->Transact([&](LedgerTxn& txn) -> absl::Status {
                    auto none = txn.AllocateTransferIds(0);
                    EXPECT_TRUE(none.ok() && none->empty());
                    return none.status();
                  })
                  .ok());
}

// A group's withdrawal and repayment ids come in one statement each, ascending (the committer
// hands them out in apply order), and the next group's are above them.
TEST_F(PgLedgerStoreTest, WithdrawalAndRepaymentIdsAreAllocatedAscendingManyAtATime) {
  std::vector<WithdrawalId> withdrawals;
  std::vector<RepaymentId> repayments;
  ASSERT_TRUE(store_
                  ->Transact([&](LedgerTxn& txn) -> absl::Status {
                    ML_ASSIGN_OR_RETURN(withdrawals, txn.AllocateWithdrawalIds(3));
                    ML_ASSIGN_OR_RETURN(repayments, txn.AllocateRepaymentIds(300));
                    auto none = txn.AllocateRepaymentIds(0);
                    EXPECT_TRUE(none.ok() && none->empty());
                    return absl::OkStatus();
                  })
                  .ok());
  ASSERT_EQ(withdrawals.size(), 3u);
  ASSERT_EQ(repayments.size(), 300u);
  EXPECT_TRUE(std::is_sorted(withdrawals.begin(), withdrawals.end()));
  EXPECT_TRUE(std::adjacent_find(repayments.begin(), repayments.end(),
                                 [](RepaymentId a, RepaymentId b) { return !(a < b); }) ==
              repayments.end())
      << "strictly ascending";
  ASSERT_TRUE(store_
                  ->Transact([&](LedgerTxn& txn) -> absl::Status {
                    ML_ASSIGN_OR_RETURN(std::vector<RepaymentId> next, txn.AllocateRepaymentIds(1));
                    EXPECT_LT(repayments.back(), next.at(0));
                    ML_ASSIGN_OR_RETURN(std::vector<WithdrawalId> more,
                                        txn.AllocateWithdrawalIds(1));
                    EXPECT_LT(withdrawals.back(), more.at(0));
                    return absl::OkStatus();
                  })
                  .ok());
}

TEST_F(PgLedgerStoreTest, ReconcileIsCleanOnConsistentLedger) {
  Account cash = Open(Platform(AccountKind::kExternalCash));
  Account wallet = Open(Wallet("lender-1"));
  Account loan =
      Open({.owner_type = OwnerType::kLoan, .owner_id = "7", .kind = AccountKind::kLoanFunding});
  Transfer hold = Posted(3, wallet, loan, 20, TransferCode::kLoanShare);
  hold.type = TransferType::kPending;
  Transfer post = Posted(4, wallet, loan, 15, TransferCode::kLoanShare);
  post.type = TransferType::kPostPending;
  post.pending_id = hold.id;
  Transfer hold2 = Posted(5, wallet, loan, 10, TransferCode::kLoanShare);
  hold2.type = TransferType::kPending;
  ASSERT_TRUE(
      Move({Posted(1, cash, wallet, 100), Posted(2, wallet, loan, 25)}, {&cash, &wallet, &loan})
          .ok());
  wallet.debits_posted += 15;
  loan.credits_posted += 15;
  wallet.debits_pending += 10;
  loan.credits_pending += 10;
  ASSERT_TRUE(Commit({.transfers = {hold, post, hold2},
                      .holds = {{.transfer = hold,
                                 .state = HoldState::kPosted,
                                 .posted_amount = 15,
                                 .resolved_by = post.id},
                                {.transfer = hold2}},
                      .accounts = {wallet, loan}})
                  .ok());
  auto report = store_->Reconcile({}, true, kT0 - absl::Hours(1));
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_THAT(report->findings, IsEmpty());
  EXPECT_EQ(report->accounts_checked, 3);
  EXPECT_EQ(report->transfers_checked, 5);
  ASSERT_EQ(report->totals.size(), 1u);
  EXPECT_EQ(report->totals[0].currency, Currency::Usd());
  EXPECT_EQ(report->totals[0].balance_sum, 0);
  EXPECT_EQ(report->totals[0].posted_volume, 140);
  EXPECT_EQ(report->totals[0].account_count, 3);
  auto eur_only = store_->Reconcile({*Currency::FromCode("EUR")}, true, kT0 - absl::Hours(1));
  ASSERT_TRUE(eur_only.ok());
  EXPECT_EQ(eur_only->accounts_checked, 0);
  EXPECT_EQ(eur_only->transfers_checked, 0);
  ASSERT_EQ(eur_only->totals.size(), 1u);  // requested, so reported even without accounts
  EXPECT_EQ(eur_only->totals[0].currency, *Currency::FromCode("EUR"));
  EXPECT_EQ(eur_only->totals[0].account_count, 0);
}

TEST_F(PgLedgerStoreTest, ReconcileReportsCorruptedBalanceAndLateEvents) {
  Account cash = Open(Platform(AccountKind::kExternalCash));
  Account wallet = Open(Wallet("lender-1"));
  ASSERT_TRUE(Move({Posted(1, cash, wallet, 100)}, {&cash, &wallet}).ok());
  ASSERT_TRUE(
      Exec(absl::StrCat("UPDATE accounts SET credits_posted = 105 WHERE id = ", wallet.id.value()))
          .ok());
  auto report = store_->Reconcile({Currency::Usd()}, true, kT0 + absl::Seconds(1));
  ASSERT_TRUE(report.ok()) << report.status();
  ASSERT_EQ(report->findings.size(), 3u);
  const ReconcileFinding& replay = report->findings[0];
  EXPECT_EQ(replay.kind, Kind::kBalanceReplayMismatch);
  EXPECT_EQ(replay.account_id, wallet.id);
  EXPECT_EQ(replay.expected, 100);
  EXPECT_EQ(replay.actual, 105);
  EXPECT_THAT(replay.detail, HasSubstr("credits_posted is 105 but its transfers give 100"));
  const ReconcileFinding& sum = report->findings[1];
  EXPECT_EQ(sum.kind, Kind::kCurrencySumNonzero);
  EXPECT_EQ(sum.currency, "USD");
  EXPECT_EQ(sum.expected, 0);
  EXPECT_EQ(sum.actual, 5);
  const ReconcileFinding& late = report->findings[2];
  EXPECT_EQ(late.kind, Kind::kOutboxUnpublished);
  EXPECT_EQ(late.count, 1);
  // Without the replay only the sum shows it; pending totals are replayed too.
  auto quick = store_->Reconcile({}, false, kT0);
  ASSERT_TRUE(quick.ok());
  ASSERT_EQ(quick->findings.size(), 1u);
  EXPECT_EQ(quick->findings[0].kind, Kind::kCurrencySumNonzero);
  ASSERT_TRUE(Exec(absl::StrCat("UPDATE accounts SET credits_posted = 100, credits_pending = 7"
                                " WHERE id = ",
                                wallet.id.value()))
                  .ok());
  auto pending = store_->Reconcile({}, true, kT0);
  ASSERT_TRUE(pending.ok());
  ASSERT_EQ(pending->findings.size(), 1u);
  EXPECT_EQ(pending->findings[0].kind, Kind::kBalanceReplayMismatch);
  EXPECT_THAT(pending->findings[0].detail,
              HasSubstr("credits_pending is 7 but its transfers give 0"));
}

// Migration 0016 compares the limits in BIGINT and checks the currency as a domain: the same
// rows pass and fail as with migration 0002's NUMERIC and regular-expression checks, up to the
// largest totals.
TEST_F(PgLedgerStoreTest, AccountChecksHoldExactlyUpToTheLargestTotals) {
  Account wallet = Open(Wallet("lender-1"));
  Account limited = Open({.owner_type = OwnerType::kPlatform,
                          .owner_id = "",
                          .kind = AccountKind::kExternalCash,
                          .flags = {.credits_must_not_exceed_debits = true}});
  const std::string max = absl::StrCat(std::numeric_limits<int64_t>::max());
  const std::string wallet_row = absl::StrCat(" WHERE id = ", wallet.id.value());
  const std::string limited_row = absl::StrCat(" WHERE id = ", limited.id.value());
  // debits_posted + debits_pending == credits_posted, the sum one past what BIGINT holds.
  EXPECT_TRUE(Exec(absl::StrCat("UPDATE accounts SET credits_posted = ", max,
                                ", debits_posted = 1, debits_pending = ", max, " - 1", wallet_row))
                  .ok());
  EXPECT_EQ(Exec(absl::StrCat("UPDATE accounts SET debits_pending = ", max, wallet_row)).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Exec("UPDATE accounts SET debits_posted = 2" + wallet_row).code(),
            absl::StatusCode::kFailedPrecondition);
  // The mirror limit on a credit-limited account.
  EXPECT_TRUE(Exec(absl::StrCat("UPDATE accounts SET debits_posted = ", max,
                                ", credits_posted = ", max, " - 5, credits_pending = 5",
                                limited_row))
                  .ok());
  EXPECT_EQ(Exec("UPDATE accounts SET credits_pending = 6" + limited_row).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Scalar("SELECT credits_posted + credits_pending FROM lending.accounts" + limited_row),
            std::numeric_limits<int64_t>::max())
      << "the refused updates left the last good totals";
  // A currency of another shape is refused when an account is opened with it.
  for (const char* bad : {"usd", "US1", "US"}) {
    EXPECT_EQ(Exec(absl::StrCat("INSERT INTO accounts (id, owner_type, owner_id, kind, currency)"
                                " VALUES (987654, 1, 'shape', 1, '", bad, "')"))
                  .code(),
              absl::StatusCode::kFailedPrecondition)
        << bad;
  }
  EXPECT_EQ(Scalar("SELECT count(*) FROM lending.accounts WHERE id = 987654"), 0);
}

TEST_F(PgLedgerStoreTest, ReconcileReportsConstrainedAccountPastItsFlag) {
  Account cash = Open(Platform(AccountKind::kExternalCash));
  Account wallet = Open(Wallet("lender-1"));
  ASSERT_TRUE(Exec("ALTER TABLE accounts DROP CONSTRAINT accounts_debits_within_credits").ok());
  ASSERT_TRUE(Move({Posted(1, wallet, cash, 30)}, {&cash, &wallet}).ok());
  auto report = store_->Reconcile({}, true, kT0);
  ASSERT_TRUE(report.ok()) << report.status();
  ASSERT_EQ(report->findings.size(), 1u);
  EXPECT_EQ(report->findings[0].kind, Kind::kConstrainedAccountNegative);
  EXPECT_EQ(report->findings[0].account_id, wallet.id);
  EXPECT_EQ(report->findings[0].actual, -30);
}

TEST_F(PgLedgerStoreTest, ConcurrentTransactionsOnOneAccountSerialise) {
  Account cash = Open(Platform(AccountKind::kExternalCash));
  Account wallet = Open(Wallet("lender-1"));
  constexpr int kThreads = 3, kRounds = 30;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&] {
      for (int r = 0; r < kRounds; ++r) {
        absl::Status s = store_->Transact([&](LedgerTxn& txn) -> absl::Status {
          auto loaded = txn.LoadForUpdate({.accounts = {cash.id, wallet.id}});
          if (!loaded.ok()) return loaded.status();
          auto ids = txn.AllocateTransferIds(1);
          if (!ids.ok()) return ids.status();
          Account c = loaded->accounts[0], w = loaded->accounts[1];
          c.debits_posted += 1;
          w.credits_posted += 1;
          return txn.Write({.transfers = {Posted((*ids)[0].value(), c, w, 1)}, .accounts = {c, w}});
        });
        if (!s.ok()) failures++;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(failures, 0);
  EXPECT_EQ(store_->GetAccount(wallet.id)->credits_posted, kThreads * kRounds);
  EXPECT_THAT(store_->Reconcile({}, true, kT0)->findings, IsEmpty());
}

TEST_F(PgLedgerStoreTest, BrokenConnectionsAreReplaced) {
  Account wallet = Open(Wallet("lender-1"));
  ASSERT_TRUE(Exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                   " WHERE datname = current_database() AND pid <> pg_backend_pid()")
                  .ok());
  absl::Status first = store_->GetAccount(wallet.id).status();
  if (!first.ok()) {
    EXPECT_EQ(first.code(), absl::StatusCode::kUnavailable) << first;
  }
  for (int i = 0; i < 4; ++i) {
    absl::Status again = store_->GetAccount(wallet.id).status();
    if (!again.ok()) {
      EXPECT_EQ(again.code(), absl::StatusCode::kUnavailable) << again;
    }
  }
  auto healed = store_->GetAccount(wallet.id);
  ASSERT_TRUE(healed.ok()) << healed.status();
  EXPECT_EQ(healed->id, wallet.id);
  EXPECT_TRUE(Commit({.idempotency = {Record("after-break")}}).ok());
}

TEST_F(PgLedgerStoreTest, WritesTenThousandTransfersInOneCommit) {
  Account cash = Open(Platform(AccountKind::kExternalCash));
  Account escrow = Open(Platform(AccountKind::kPlatformEscrow));
  constexpr int kCount = 10'000;
  absl::Duration allocate, build, write, total;
  absl::Time start = absl::Now();
  absl::Status status = store_->Transact([&](LedgerTxn& txn) -> absl::Status {
    absl::Time t0 = absl::Now();
    auto ids = txn.AllocateTransferIds(kCount);
    if (!ids.ok()) return ids.status();
    absl::Time t1 = absl::Now();
    CommitSet commit;
    for (TransferId id : *ids) {
      Transfer t = Posted(id.value(), cash, escrow, 7, TransferCode::kLoanShare);
      t.references.loan_id = LoanId(id.value() % 100 + 1);
      t.memo = "share";
      cash.debits_posted += 7;
      escrow.credits_posted += 7;
      commit.events.push_back(Event(t));
      commit.transfers.push_back(std::move(t));
    }
    commit.accounts = {cash, escrow};
    commit.idempotency = {Record("big-batch")};
    absl::Time t2 = absl::Now();
    absl::Status written = txn.Write(commit);
    absl::Time t3 = absl::Now();
    allocate = t1 - t0;
    build = t2 - t1;
    write = t3 - t2;
    return written;
  });
  total = absl::Now() - start;
  ASSERT_TRUE(status.ok()) << status;
  std::printf(
      "[ timing ] 10,000 transfers + 10,000 events in one Transact: allocate ids %s, "
      "build %s, Write %s, total with commit %s\n",
      absl::FormatDuration(allocate).c_str(), absl::FormatDuration(build).c_str(),
      absl::FormatDuration(write).c_str(), absl::FormatDuration(total).c_str());
  auto listed = store_->ListTransfers({.account_id = escrow.id}, {.limit = 1});
  ASSERT_TRUE(listed.ok());
  EXPECT_EQ(listed->total_count, kCount);
  EXPECT_EQ(store_->GetAccount(escrow.id)->credits_posted, 7 * kCount);
  auto report = store_->Reconcile({}, true, kT0 - absl::Hours(1));
  ASSERT_TRUE(report.ok());
  EXPECT_THAT(report->findings, IsEmpty());
  EXPECT_EQ(report->transfers_checked, kCount);
}

}  // namespace
}  // namespace microlend::lending
