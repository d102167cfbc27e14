// The ledger and lender wallets end to end: the real lending server on a real PostgreSQL and
// Redis. Every scenario ends with a clean reconciliation.
#include <grpcpp/support/status.h>

#include <thread>

#include "absl/container/flat_hash_map.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "harness/local_stack.h"
#include "harness/rpc.h"
#include "harness/shared_stack_test.h"
#include "microlend/lending/v1/lending.grpc.pb.h"
#include "harness/event_stream.h"

namespace microlend::testing {
namespace {

namespace lv1 = ::microlend::lending::v1;
using ::testing::HasSubstr;

class LedgerIntegrationTest : public SharedStackTest {
 protected:
  void SetUp() override {
    auto ch = Channel(stack_->Address(Server::kLending));
    ledger_ = lv1::LedgerService::NewStub(ch);
    lenders_ = lv1::LenderService::NewStub(ch);
    ops_ = stack_->Token(Role::kOps, "ops-1");
    svc_ = stack_->Token(Role::kService, "payments");
  }

  std::string LenderToken(int64_t id) { return stack_->Token(Role::kLender, std::to_string(id)); }

  grpc::Status Deposit(int64_t lender, const std::string& amount, const std::string& rid,
                       lv1::DepositResponse* out = nullptr, const std::string& currency = "USD") {
    lv1::DepositRequest req;
    req.set_request_id(rid);
    req.mutable_lender_id()->set_value(std::to_string(lender));
    *req.mutable_amount() = M(amount, currency);
    req.set_external_payment_id("card-" + rid);
    lv1::DepositResponse local;
    return lenders_->Deposit(Ctx(svc_).get(), req, out != nullptr ? out : &local);
  }

  lv1::Balance Balance(int64_t lender) {
    lv1::GetBalanceRequest req;
    req.mutable_lender_id()->set_value(std::to_string(lender));
    lv1::GetBalanceResponse out;
    grpc::Status s = lenders_->GetBalance(Ctx(LenderToken(lender)).get(), req, &out);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return out.balance();
  }

  std::string WalletAccountId(int64_t lender) {
    lv1::ListAccountsRequest req;
    req.set_owner_type(lv1::ACCOUNT_OWNER_TYPE_LENDER);
    req.set_owner_id(std::to_string(lender));
    req.set_kind(lv1::ACCOUNT_KIND_LENDER_WALLET);
    lv1::ListAccountsResponse out;
    EXPECT_TRUE(ledger_->ListAccounts(Ctx(ops_).get(), req, &out).ok());
    return out.accounts_size() == 1 ? out.accounts(0).id().value() : "";
  }

  lv1::TransferSpec Spec(const std::string& from, const std::string& to, const std::string& amount,
                         bool pending = false) {
    lv1::TransferSpec s;
    s.mutable_debit_account_id()->set_value(from);
    s.mutable_credit_account_id()->set_value(to);
    *s.mutable_amount() = M(amount);
    s.set_code(lv1::TRANSFER_CODE_CORRECTION);
    s.set_pending(pending);
    return s;
  }

  grpc::Status Transfers(const std::string& rid, std::vector<lv1::TransferSpec> specs,
                         lv1::CreateTransfersResponse* out) {
    lv1::CreateTransfersRequest req;
    req.set_request_id(rid);
    for (auto& s : specs) *req.add_transfers() = s;
    return ledger_->CreateTransfers(Ctx(svc_).get(), req, out);
  }

  void ExpectReconciled() {
    // The relay publishes asynchronously; give it a moment before judging the outbox.
    lv1::ReconcileResponse out;
    for (int attempt = 0; attempt < 50; ++attempt) {
      grpc::Status s = ledger_->Reconcile(Ctx(ops_).get(), lv1::ReconcileRequest(), &out);
      ASSERT_TRUE(s.ok()) << s.error_message();
      if (out.report().clean()) return;
      absl::SleepFor(absl::Milliseconds(100));
    }
    ADD_FAILURE() << "reconciliation not clean: " << out.report().DebugString();
  }

  std::unique_ptr<lv1::LedgerService::Stub> ledger_;
  std::unique_ptr<lv1::LenderService::Stub> lenders_;
  std::string ops_, svc_;
};

TEST_F(LedgerIntegrationTest, DepositsShowInBalanceAndStatementWithRunningBalance) {
  ASSERT_TRUE(Deposit(101, "25.00", "dep-101-a").ok());
  ASSERT_TRUE(Deposit(101, "0.10", "dep-101-b").ok());
  ASSERT_TRUE(Deposit(101, "0.20", "dep-101-c").ok());
  lv1::Balance b = Balance(101);
  EXPECT_EQ(b.posted().amount(), "25.30");
  EXPECT_EQ(b.available().amount(), "25.30");
  EXPECT_EQ(b.held().amount(), "0.00");

  lv1::GetStatementRequest req;
  req.mutable_filter()->mutable_lender_id()->set_value("101");
  req.mutable_page()->set_page_size(2);
  lv1::GetStatementResponse page1, page2;
  ASSERT_TRUE(lenders_->GetStatement(Ctx(LenderToken(101)).get(), req, &page1).ok());
  ASSERT_EQ(page1.rows_size(), 2);
  EXPECT_EQ(page1.rows(0).balance_after().amount(), "25.00");
  EXPECT_EQ(page1.rows(1).balance_after().amount(), "25.10");
  EXPECT_EQ(page1.page().total_count(), 3);
  ASSERT_FALSE(page1.page().next_page_token().empty());
  req.mutable_page()->set_page_token(page1.page().next_page_token());
  ASSERT_TRUE(lenders_->GetStatement(Ctx(LenderToken(101)).get(), req, &page2).ok());
  ASSERT_EQ(page2.rows_size(), 1);
  EXPECT_EQ(page2.rows(0).balance_after().amount(), "25.30");
  EXPECT_TRUE(page2.page().next_page_token().empty());
  ExpectReconciled();
}

TEST_F(LedgerIntegrationTest, StatementExportsAsCsv) {
  ASSERT_TRUE(Deposit(102, "7.00", "dep-102-a").ok());
  ASSERT_TRUE(Deposit(102, "3.50", "dep-102-b").ok());
  lv1::ExportStatementCsvRequest req;
  req.mutable_filter()->mutable_lender_id()->set_value("102");
  auto ctx = Ctx(LenderToken(102));
  auto reader = lenders_->ExportStatementCsv(ctx.get(), req);
  lv1::ExportStatementCsvChunk chunk;
  std::string csv;
  while (reader->Read(&chunk)) csv += chunk.data();
  ASSERT_TRUE(reader->Finish().ok());
  EXPECT_THAT(csv, HasSubstr("transfer_id,"));
  EXPECT_THAT(csv, HasSubstr("7.00"));
  EXPECT_THAT(csv, HasSubstr("10.50"));                    // running balance after the second row
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 3);  // header + 2 rows
}

TEST_F(LedgerIntegrationTest, RetryWithSameRequestIdIsReplayedAndDifferentBodyIsAlreadyExists) {
  lv1::DepositResponse first, again;
  ASSERT_TRUE(Deposit(103, "10.00", "dep-103", &first).ok());
  ASSERT_TRUE(Deposit(103, "10.00", "dep-103", &again).ok());
  EXPECT_FALSE(first.mutation().replayed());
  EXPECT_TRUE(again.mutation().replayed());
  EXPECT_EQ(again.transfer().id().value(), first.transfer().id().value());
  grpc::Status other = Deposit(103, "11.00", "dep-103");
  EXPECT_EQ(other.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(Balance(103).posted().amount(), "10.00");
  ExpectReconciled();
}

TEST_F(LedgerIntegrationTest, BadAmountsAreInvalidArgumentAndWriteNothing) {
  ASSERT_TRUE(Deposit(104, "5.00", "dep-104").ok());
  struct Case {
    std::string amount, currency;
  };
  for (const Case& c : std::vector<Case>{{"0.00", "USD"},
                                         {"-1.00", "USD"},
                                         {"1.234", "USD"},
                                         {"1e3", "USD"},
                                         {"", "USD"},
                                         {"1.00", "XYZ"},
                                         {"1.5", "JPY"},
                                         {"+1", "USD"}}) {
    grpc::Status s = Deposit(104, c.amount, "bad-" + c.amount + c.currency, nullptr, c.currency);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << c.amount << " " << c.currency;
    EXPECT_FALSE(s.error_message().empty());
  }
  EXPECT_EQ(Balance(104).posted().amount(), "5.00");
  lv1::DepositRequest no_id;
  no_id.mutable_lender_id()->set_value("104");
  *no_id.mutable_amount() = M("1.00");
  lv1::DepositResponse out;
  EXPECT_EQ(lenders_->Deposit(Ctx(svc_).get(), no_id, &out).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  ExpectReconciled();
}

TEST_F(LedgerIntegrationTest, OverdraftAndCurrencyMismatchAreRejectedNamingTheItem) {
  ASSERT_TRUE(Deposit(105, "20.00", "dep-105").ok());
  ASSERT_TRUE(Deposit(106, "1.00", "dep-106").ok());
  ASSERT_TRUE(Deposit(107, "100", "dep-107-jpy", nullptr, "JPY").ok());
  std::string a = WalletAccountId(105), b = WalletAccountId(106);
  lv1::CreateTransfersResponse out;
  grpc::Status s = Transfers("ovr-1", {Spec(a, b, "5.00"), Spec(a, b, "15.01")}, &out);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("transfers[1]"));
  EXPECT_FALSE(s.error_details().empty());  // TransferBatchRejection in RpcStatus details
  EXPECT_EQ(Balance(105).posted().amount(), "20.00");
  EXPECT_EQ(Balance(106).posted().amount(), "1.00");

  lv1::ListAccountsRequest jreq;
  jreq.set_owner_id("107");
  jreq.set_currency("JPY");
  lv1::ListAccountsResponse jout;
  ASSERT_TRUE(ledger_->ListAccounts(Ctx(ops_).get(), jreq, &jout).ok());
  ASSERT_EQ(jout.accounts_size(), 1);
  lv1::TransferSpec mixed = Spec(jout.accounts(0).id().value(), b, "1.00");
  s = Transfers("mix-1", {mixed}, &out);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  s = Transfers("unknown-1", {Spec("999999", b, "1.00")}, &out);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  ExpectReconciled();
}

// A batch is remembered by its transfers' ids (ADR 0008): a replay through either RPC reads them
// back and answers exactly as the first time, only marked replayed.
TEST_F(LedgerIntegrationTest, ABatchReplayedThroughEitherRpcAnswersWithTheOriginalTransfers) {
  ASSERT_TRUE(Deposit(130, "50.00", "dep-130").ok());
  ASSERT_TRUE(Deposit(131, "1.00", "dep-131").ok());
  const std::string a = WalletAccountId(130), b = WalletAccountId(131);
  lv1::CreateTransfersResponse first, again;
  ASSERT_TRUE(Transfers("batch-130", {Spec(a, b, "1.25"), Spec(b, a, "0.50"), Spec(a, b, "3.00")},
                        &first).ok());
  ASSERT_EQ(first.transfers_size(), 3);
  EXPECT_FALSE(first.mutation().replayed());
  ASSERT_TRUE(Transfers("batch-130", {Spec(a, b, "1.25"), Spec(b, a, "0.50"), Spec(a, b, "3.00")},
                        &again).ok());
  EXPECT_TRUE(again.mutation().replayed());
  lv1::CreateTransfersResponse unmarked = again;
  unmarked.mutable_mutation()->set_replayed(false);
  EXPECT_EQ(unmarked.SerializeAsString(), first.SerializeAsString());

  // The stream answers the same request id with the same transfers; a new batch on it, then
  // replayed through CreateTransfers, likewise.
  auto ctx = Ctx(svc_);
  auto stream = ledger_->StreamTransferBatches(ctx.get());
  lv1::TransferBatch replay, fresh;
  replay.set_request_id("batch-130");
  for (const auto& spec : {Spec(a, b, "1.25"), Spec(b, a, "0.50"), Spec(a, b, "3.00")}) {
    *replay.add_transfers() = spec;
  }
  fresh.set_request_id("batch-130-stream");
  *fresh.add_transfers() = Spec(a, b, "2.00");
  *fresh.add_transfers() = Spec(b, a, "0.25");
  ASSERT_TRUE(stream->Write(replay));
  ASSERT_TRUE(stream->Write(fresh));
  stream->WritesDone();
  lv1::TransferBatchResult replayed_result, fresh_result;
  ASSERT_TRUE(stream->Read(&replayed_result));
  ASSERT_TRUE(stream->Read(&fresh_result));
  ASSERT_TRUE(stream->Finish().ok());
  EXPECT_EQ(replayed_result.status().code(), 0) << replayed_result.status().message();
  EXPECT_TRUE(replayed_result.mutation().replayed());
  ASSERT_EQ(replayed_result.transfers_size(), 3);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(replayed_result.transfers(i).SerializeAsString(), first.transfers(i).SerializeAsString());
  }
  EXPECT_EQ(replayed_result.committed_at().SerializeAsString(), first.committed_at().SerializeAsString());
  ASSERT_EQ(fresh_result.status().code(), 0) << fresh_result.status().message();
  EXPECT_FALSE(fresh_result.mutation().replayed());
  ASSERT_EQ(fresh_result.transfers_size(), 2);

  lv1::CreateTransfersResponse via_unary;
  ASSERT_TRUE(Transfers("batch-130-stream", {Spec(a, b, "2.00"), Spec(b, a, "0.25")}, &via_unary).ok());
  EXPECT_TRUE(via_unary.mutation().replayed());
  ASSERT_EQ(via_unary.transfers_size(), 2);
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(via_unary.transfers(i).SerializeAsString(), fresh_result.transfers(i).SerializeAsString());
  }
  // Applied once each: 50 - 1.25 + 0.50 - 3.00 - 2.00 + 0.25.
  EXPECT_EQ(Balance(130).posted().amount(), "44.50");
  ExpectReconciled();
}

// ids_only answers with the ids alone, fresh or replayed, and is not part of the batch's identity.
TEST_F(LedgerIntegrationTest, AnIdsOnlyBatchIsAnsweredWithTheTransfersIds) {
  ASSERT_TRUE(Deposit(132, "20.00", "dep-132").ok());
  ASSERT_TRUE(Deposit(133, "1.00", "dep-133").ok());
  const std::string a = WalletAccountId(132), b = WalletAccountId(133);
  auto ctx = Ctx(svc_);
  auto stream = ledger_->StreamTransferBatches(ctx.get());
  lv1::TransferBatch batch;
  batch.set_request_id("ids-132");
  batch.set_ids_only(true);
  *batch.add_transfers() = Spec(a, b, "4.00");
  *batch.add_transfers() = Spec(b, a, "1.00");
  lv1::TransferBatch again = batch;  // the same request: a replay, still ids only
  lv1::TransferBatch whole = batch;  // the same request answered in full
  whole.set_ids_only(false);
  lv1::TransferBatch bad = batch;
  bad.set_request_id("ids-132-bad");
  bad.mutable_transfers(0)->mutable_amount()->set_amount("400.00");
  for (const auto* b : {&batch, &again, &whole, &bad}) ASSERT_TRUE(stream->Write(*b));
  stream->WritesDone();
  std::vector<lv1::TransferBatchResult> results(4);
  for (auto& r : results) ASSERT_TRUE(stream->Read(&r));
  ASSERT_TRUE(stream->Finish().ok());

  ASSERT_EQ(results[0].status().code(), 0) << results[0].status().message();
  EXPECT_FALSE(results[0].mutation().replayed());
  EXPECT_EQ(results[0].transfers_size(), 0);
  ASSERT_EQ(results[0].transfer_ids_size(), 2);
  EXPECT_TRUE(results[0].has_committed_at());
  EXPECT_TRUE(results[1].mutation().replayed());
  EXPECT_EQ(results[1].transfer_ids(0).value(), results[0].transfer_ids(0).value());
  EXPECT_EQ(results[1].transfer_ids(1).value(), results[0].transfer_ids(1).value());
  EXPECT_EQ(results[1].committed_at().SerializeAsString(), results[0].committed_at().SerializeAsString());
  EXPECT_TRUE(results[2].mutation().replayed());
  ASSERT_EQ(results[2].transfers_size(), 2);
  EXPECT_EQ(results[2].transfer_ids_size(), 0);
  EXPECT_EQ(results[2].transfers(0).id().value(), results[0].transfer_ids(0).value());
  EXPECT_EQ(results[2].transfers(0).amount().amount(), "4.00");
  EXPECT_EQ(results[2].transfers(1).id().value(), results[0].transfer_ids(1).value());
  EXPECT_EQ(results[3].status().code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(results[3].rejection().item_index(), 0);
  EXPECT_EQ(results[3].transfer_ids_size(), 0);
  EXPECT_EQ(Balance(132).posted().amount(), "17.00");  // applied once
  ExpectReconciled();
}

TEST_F(LedgerIntegrationTest, HoldResolvesAtMostOnce) {
  ASSERT_TRUE(Deposit(108, "50.00", "dep-108").ok());
  ASSERT_TRUE(Deposit(109, "1.00", "dep-109").ok());
  std::string a = WalletAccountId(108), b = WalletAccountId(109);
  lv1::CreateTransfersResponse held;
  ASSERT_TRUE(Transfers("hold-108", {Spec(a, b, "30.00", true)}, &held).ok());
  EXPECT_EQ(Balance(108).available().amount(), "20.00");
  EXPECT_EQ(Balance(108).held().amount(), "30.00");
  std::string hold_id = held.transfers(0).id().value();

  lv1::PostPendingTransferRequest post;
  post.set_request_id("post-108");
  post.mutable_hold_id()->set_value(hold_id);
  *post.mutable_amount() = M("25.00");
  lv1::PostPendingTransferResponse posted;
  ASSERT_TRUE(ledger_->PostPendingTransfer(Ctx(svc_).get(), post, &posted).ok());
  EXPECT_EQ(Balance(108).posted().amount(), "25.00");
  EXPECT_EQ(Balance(108).available().amount(), "25.00");  // the other 5.00 released

  post.set_request_id("post-108-again");
  EXPECT_EQ(ledger_->PostPendingTransfer(Ctx(svc_).get(), post, &posted).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  lv1::VoidPendingTransferRequest void_req;
  void_req.set_request_id("void-108");
  void_req.mutable_hold_id()->set_value(hold_id);
  lv1::VoidPendingTransferResponse voided;
  EXPECT_EQ(ledger_->VoidPendingTransfer(Ctx(svc_).get(), void_req, &voided).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(Balance(109).posted().amount(), "26.00");
  ExpectReconciled();
}

TEST_F(LedgerIntegrationTest, WithdrawalIsHeldApprovedAndPaidOrRejected) {
  ASSERT_TRUE(Deposit(110, "100.00", "dep-110").ok());
  lv1::RequestWithdrawalRequest req;
  req.set_request_id("wd-110-1");
  req.mutable_lender_id()->set_value("110");
  *req.mutable_amount() = M("60.00");
  req.set_destination("bank account ending 0110");
  lv1::RequestWithdrawalResponse wd;
  grpc::Status requested = lenders_->RequestWithdrawal(Ctx(LenderToken(110)).get(), req, &wd);
  ASSERT_TRUE(requested.ok()) << requested.error_message();
  EXPECT_EQ(Balance(110).available().amount(), "40.00");

  lv1::MarkWithdrawalPaidRequest paid;
  paid.set_request_id("wd-110-paid-early");
  *paid.mutable_withdrawal_id() = wd.withdrawal().id();
  paid.set_external_payment_id("bank-77");
  lv1::MarkWithdrawalPaidResponse paid_out;
  EXPECT_EQ(lenders_->MarkWithdrawalPaid(Ctx(ops_).get(), paid, &paid_out).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);

  lv1::ApproveWithdrawalRequest approve;
  approve.set_request_id("wd-110-approve");
  *approve.mutable_withdrawal_id() = wd.withdrawal().id();
  lv1::ApproveWithdrawalResponse approved;
  EXPECT_EQ(
      lenders_->ApproveWithdrawal(Ctx(LenderToken(110)).get(), approve, &approved).error_code(),
      grpc::StatusCode::PERMISSION_DENIED);
  ASSERT_TRUE(lenders_->ApproveWithdrawal(Ctx(ops_).get(), approve, &approved).ok());
  EXPECT_EQ(approved.withdrawal().destination(), "bank account ending 0110");  // ops see where
  paid.set_request_id("wd-110-paid");
  ASSERT_TRUE(lenders_->MarkWithdrawalPaid(Ctx(ops_).get(), paid, &paid_out).ok());
  EXPECT_EQ(paid_out.withdrawal().status(), lv1::WITHDRAWAL_STATUS_PAID);
  EXPECT_EQ(Balance(110).posted().amount(), "40.00");

  req.set_request_id("wd-110-2");
  *req.mutable_amount() = M("40.00");
  ASSERT_TRUE(lenders_->RequestWithdrawal(Ctx(LenderToken(110)).get(), req, &wd).ok());
  lv1::RejectWithdrawalRequest reject;
  reject.set_request_id("wd-110-reject");
  *reject.mutable_withdrawal_id() = wd.withdrawal().id();
  reject.set_reason("account name mismatch");
  lv1::RejectWithdrawalResponse rejected;
  ASSERT_TRUE(lenders_->RejectWithdrawal(Ctx(ops_).get(), reject, &rejected).ok());
  EXPECT_EQ(Balance(110).available().amount(), "40.00");
  ExpectReconciled();
}

TEST_F(LedgerIntegrationTest, LenderCannotTouchAnotherLendersWallet) {
  ASSERT_TRUE(Deposit(111, "10.00", "dep-111").ok());
  lv1::GetBalanceRequest bal;
  bal.mutable_lender_id()->set_value("111");
  lv1::GetBalanceResponse out;
  EXPECT_EQ(lenders_->GetBalance(Ctx(LenderToken(112)).get(), bal, &out).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  lv1::RequestWithdrawalRequest req;
  req.set_request_id("steal-111");
  req.mutable_lender_id()->set_value("111");
  *req.mutable_amount() = M("10.00");
  req.set_destination("bank account ending 0112");
  lv1::RequestWithdrawalResponse wd;
  EXPECT_EQ(lenders_->RequestWithdrawal(Ctx(LenderToken(112)).get(), req, &wd).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  lv1::DepositRequest dep;  // lenders cannot mint money
  dep.set_request_id("mint");
  dep.mutable_lender_id()->set_value("112");
  *dep.mutable_amount() = M("1000.00");
  lv1::DepositResponse dout;
  EXPECT_EQ(lenders_->Deposit(Ctx(LenderToken(112)).get(), dep, &dout).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Balance(111).posted().amount(), "10.00");
  lv1::ReconcileResponse rec;
  EXPECT_EQ(ledger_->Reconcile(Ctx(LenderToken(111)).get(), {}, &rec).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
}

TEST_F(LedgerIntegrationTest, DonationMovesMoneyToPlatformRevenue) {
  ASSERT_TRUE(Deposit(113, "10.00", "dep-113").ok());
  lv1::DonateRequest req;
  req.set_request_id("don-113");
  req.mutable_lender_id()->set_value("113");
  *req.mutable_amount() = M("2.50");
  lv1::DonateResponse out;
  ASSERT_TRUE(lenders_->Donate(Ctx(LenderToken(113)).get(), req, &out).ok());
  EXPECT_EQ(Balance(113).posted().amount(), "7.50");
  *req.mutable_amount() = M("7.51");
  req.set_request_id("don-113-too-much");
  EXPECT_EQ(lenders_->Donate(Ctx(LenderToken(113)).get(), req, &out).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  ExpectReconciled();
}

TEST_F(LedgerIntegrationTest, EveryTransferIsPublishedToTheRedisStreamOnce) {
  ASSERT_TRUE(Deposit(114, "1.00", "dep-114").ok());
  std::vector<lv1::Transfer> transfers;  // every transfer so far, page by page
  lv1::ListTransfersRequest req;
  req.mutable_page()->set_page_size(100);
  do {
    lv1::ListTransfersResponse page;
    ASSERT_TRUE(ledger_->ListTransfers(Ctx(ops_).get(), req, &page).ok());
    transfers.insert(transfers.end(), page.transfers().begin(), page.transfers().end());
    req.mutable_page()->set_page_token(page.page().next_page_token());
  } while (!req.page().page_token().empty());
  ASSERT_FALSE(transfers.empty());
  // The relay publishes asynchronously (it polls every 20 ms): wait for it to catch up.
  std::vector<StreamEvent> events;
  for (int attempt = 0; attempt < 100; ++attempt) {
    absl::StatusOr<std::vector<StreamEvent>> read = ReadStreamEvents(stack_->redis_endpoint());
    ASSERT_TRUE(read.ok()) << read.status();
    events = std::move(*read);
    if (events.size() >= transfers.size()) break;
    absl::SleepFor(absl::Milliseconds(50));
  }
  // At least once; with no crash in between, exactly once: one event per transfer, rendered
  // from it.
  ASSERT_EQ(events.size(), transfers.size());
  absl::flat_hash_map<std::string, const StreamEvent*> by_id;
  for (const StreamEvent& e : events) {
    EXPECT_TRUE(by_id.emplace(e.event_id, &e).second) << "published twice: " << e.event_id;
  }
  for (const lv1::Transfer& t : transfers) {
    auto it = by_id.find("transfer-" + t.id().value());
    ASSERT_NE(it, by_id.end()) << "not published: transfer " << t.id().value();
    const StreamEvent& e = *it->second;
    EXPECT_EQ(e.kind, "transfer_committed");
    EXPECT_EQ(e.account_id, t.debit_account_id().value());
    EXPECT_EQ(e.payload.value("id", ""), t.id().value());
    EXPECT_EQ(e.payload.value("amount", ""), t.amount().amount());
    EXPECT_EQ(e.payload.value("credit_account_id", ""), t.credit_account_id().value());
  }
}

TEST_F(LedgerIntegrationTest, DepositIsCreditedOncePerExternalPaymentWhateverTheRequestId) {
  lv1::DepositRequest req;
  req.set_request_id("proc-a-1");
  req.mutable_lender_id()->set_value("115");
  *req.mutable_amount() = M("40.00");
  req.set_external_payment_id("card-payment-7781");
  lv1::DepositResponse first, again;
  ASSERT_TRUE(lenders_->Deposit(Ctx(svc_).get(), req, &first).ok());
  req.set_request_id("proc-b-9");  // another gateway instance reports the same payment
  ASSERT_TRUE(lenders_->Deposit(Ctx(ops_).get(), req, &again).ok());
  EXPECT_TRUE(again.mutation().replayed());
  EXPECT_EQ(again.transfer().id().value(), first.transfer().id().value());
  *req.mutable_amount() = M("41.00");
  req.set_request_id("proc-c-3");
  EXPECT_EQ(lenders_->Deposit(Ctx(svc_).get(), req, &again).error_code(),
            grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(Balance(115).posted().amount(), "40.00");
  ExpectReconciled();
}

TEST_F(LedgerIntegrationTest, WalletAccountsMustBeProtectedAgainstOverdraft) {
  lv1::CreateAccountRequest req;
  req.set_request_id("acct-unprotected");
  req.set_owner_type(lv1::ACCOUNT_OWNER_TYPE_LENDER);
  req.set_owner_id("116");
  req.set_kind(lv1::ACCOUNT_KIND_LENDER_WALLET);
  req.set_currency("EUR");
  lv1::CreateAccountResponse out;
  grpc::Status s = ledger_->CreateAccount(Ctx(ops_).get(), req, &out);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("debits_must_not_exceed_credits"));
  req.set_owner_type(lv1::ACCOUNT_OWNER_TYPE_PARTNER);
  req.mutable_flags()->set_debits_must_not_exceed_credits(true);
  req.set_request_id("acct-partner-wallet");
  EXPECT_EQ(ledger_->CreateAccount(Ctx(ops_).get(), req, &out).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  req.set_owner_type(lv1::ACCOUNT_OWNER_TYPE_LENDER);
  req.set_request_id("acct-ok");
  ASSERT_TRUE(ledger_->CreateAccount(Ctx(ops_).get(), req, &out).ok());
  EXPECT_TRUE(out.account().flags().debits_must_not_exceed_credits());
}

TEST_F(LedgerIntegrationTest, ClientChosenIdsStayInTheirRange) {
  ASSERT_TRUE(Deposit(117, "5.00", "dep-117").ok());
  ASSERT_TRUE(Deposit(118, "5.00", "dep-118").ok());
  lv1::TransferSpec spec = Spec(WalletAccountId(117), WalletAccountId(118), "1.00");
  spec.mutable_id()->set_value("9223372036854775807");
  lv1::CreateTransfersResponse out;
  grpc::Status s = Transfers("big-id", {spec}, &out);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  spec.mutable_id()->set_value("4000000000000000000");
  ASSERT_TRUE(Transfers("chosen-id", {spec}, &out).ok());
  EXPECT_EQ(out.transfers(0).id().value(), "4000000000000000000");
  // Server-chosen ids keep working after a large chosen one.
  ASSERT_TRUE(
      Transfers("after-chosen", {Spec(WalletAccountId(117), WalletAccountId(118), "1.00")}, &out)
          .ok());
  ExpectReconciled();
}

TEST_F(LedgerIntegrationTest, AWithdrawalsHoldIsResolvedOnlyByTheWithdrawal) {
  ASSERT_TRUE(Deposit(119, "30.00", "dep-119").ok());
  lv1::RequestWithdrawalRequest req;
  req.set_request_id("wd-119");
  req.mutable_lender_id()->set_value("119");
  *req.mutable_amount() = M("30.00");
  req.set_destination("bank account ending 0119");
  lv1::RequestWithdrawalResponse wd;
  ASSERT_TRUE(lenders_->RequestWithdrawal(Ctx(LenderToken(119)).get(), req, &wd).ok());
  lv1::VoidPendingTransferRequest void_req;
  void_req.set_request_id("void-wd-119");
  *void_req.mutable_hold_id() = wd.withdrawal().hold_id();
  lv1::VoidPendingTransferResponse voided;
  grpc::Status s = ledger_->VoidPendingTransfer(Ctx(ops_).get(), void_req, &voided);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("withdrawal"));
  EXPECT_EQ(Balance(119).held().amount(), "30.00");
  ExpectReconciled();
}

TEST_F(LedgerIntegrationTest, TextThatTheDatabaseCannotStoreIsRefusedUpFront) {
  ASSERT_TRUE(Deposit(120, "5.00", "dep-120").ok());
  ASSERT_TRUE(Deposit(121, "5.00", "dep-121").ok());
  lv1::TransferSpec spec = Spec(WalletAccountId(120), WalletAccountId(121), "1.00");
  spec.set_memo(std::string("nul\0byte", 8));
  lv1::CreateTransfersResponse out;
  EXPECT_EQ(Transfers("nul-memo", {spec}, &out).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  // Invalid UTF-8 in a proto3 string never reaches the handler: protobuf refuses to parse it.
  spec.set_memo("\xff\xfe not utf-8");
  EXPECT_FALSE(Transfers("bad-utf8", {spec}, &out).ok());
  lv1::RejectWithdrawalRequest reject;
  reject.set_request_id("long-reason");
  reject.mutable_withdrawal_id()->set_value("1");
  std::string long_reason;
  for (int i = 0; i < 100; ++i) long_reason += "\u3042";  // 300 bytes of hiragana
  reject.set_reason(long_reason);
  lv1::RejectWithdrawalResponse rejected;
  EXPECT_EQ(lenders_->RejectWithdrawal(Ctx(ops_).get(), reject, &rejected).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Balance(120).posted().amount(), "5.00");
  ExpectReconciled();
}

}  // namespace
}  // namespace microlend::testing
