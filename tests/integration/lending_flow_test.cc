// The loan lifecycle where money moves, end to end over gRPC against the real lending server and
// PostgreSQL: lending (lend now, baskets, checkout), the funding race, disbursement, repayments
// split to the cent (with currency loss), expiry and default driven by the server's business
// clock (ServerAdmin.AdvanceClock, never sleeping), and the bad input of each step. Every test
// ends with a clean reconciliation. The suite shares one stack; the tests that move the clock
// come last.
#include <grpcpp/support/status.h>

#include <atomic>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "harness/local_stack.h"
#include "harness/rpc.h"
#include "harness/marketplace_test.h"
#include "harness/shared_stack_test.h"
#include "microlend/common/v1/common.grpc.pb.h"
#include "microlend/lending/v1/lending.grpc.pb.h"

namespace microlend::testing {
namespace {

namespace lv1 = ::microlend::lending::v1;
namespace cv1 = ::microlend::common::v1;
using ::testing::HasSubstr;

class LendingFlowTest : public MarketplaceTest {
 protected:
  grpc::Status LendNow(int64_t lender, const lv1::Loan& loan, int64_t cents,
                       lv1::LendNowResponse* out = nullptr, const std::string& rid = Rid()) {
    lv1::LendNowRequest req;
    req.set_request_id(rid);
    *req.mutable_loan_id() = loan.id();
    *req.mutable_amount() = M(Amount(cents));
    lv1::LendNowResponse local;
    return baskets_->LendNow(Ctx(LenderToken(lender)).get(), req, out ? out : &local);
  }

  grpc::Status AddToBasket(int64_t lender, const lv1::Loan& loan, int64_t cents) {
    lv1::AddToBasketRequest req;
    req.set_request_id(Rid());
    *req.mutable_loan_id() = loan.id();
    *req.mutable_amount() = M(Amount(cents));
    lv1::AddToBasketResponse out;
    return baskets_->AddToBasket(Ctx(LenderToken(lender)).get(), req, &out);
  }

  lv1::Balance Balance(int64_t lender) {
    lv1::GetBalanceRequest req;
    req.mutable_lender_id()->set_value(std::to_string(lender));
    lv1::GetBalanceResponse out;
    grpc::Status s = lenders_->GetBalance(Ctx(LenderToken(lender)).get(), req, &out);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return out.balance();
  }
  int64_t Posted(int64_t lender) { return Cents(Balance(lender).posted()); }
  int64_t Available(int64_t lender) { return Cents(Balance(lender).available()); }

  grpc::Status Disburse(const std::string& partner, const lv1::Loan& loan,
                        const std::string& kes = "100000.00") {
    lv1::ReportDisbursementRequest req;
    req.set_request_id(Rid());
    *req.mutable_loan_id() = loan.id();
    Today(req.mutable_disbursed_on());
    *req.mutable_local_amount() = M(kes, "KES");
    lv1::ReportDisbursementResponse out;
    return loans_->ReportDisbursement(Ctx(PartnerToken(partner)).get(), req, &out);
  }

  grpc::Status Repay(const std::string& partner, const lv1::Loan& loan, const std::string& kes,
                     const std::string& rate = "100", lv1::PostRepaymentResponse* out = nullptr,
                     const std::string& rid = Rid()) {
    lv1::PostRepaymentRequest req;
    req.set_request_id(rid);
    *req.mutable_loan_id() = loan.id();
    *req.mutable_local_amount() = M(kes, "KES");
    req.set_settlement_fx_rate(rate);
    Today(req.mutable_repaid_on());
    lv1::PostRepaymentResponse local;
    return loans_->PostRepayment(Ctx(PartnerToken(partner)).get(), req, out ? out : &local);
  }

  // Funds `loan` (USD `total` cents) with one lender per share in `shares` (cents); returns the
  // lenders, each having deposited exactly its share.
  std::vector<int64_t> Fund(const lv1::Loan& loan, const std::vector<int64_t>& shares) {
    std::vector<int64_t> lenders;
    for (int64_t share : shares) {
      const int64_t lender = NewLender();
      Deposit(lender, share);
      grpc::Status s = LendNow(lender, loan, share);
      EXPECT_TRUE(s.ok()) << s.error_message();
      lenders.push_back(lender);
    }
    return lenders;
  }
};

TEST_F(LendingFlowTest, ThirtySevenLendersAreRepaidTheirSharesToTheCent) {
  const std::string partner = MakePartner();
  const lv1::Loan loan = MakeLoan(partner);  // USD 1,000.00
  // 37 lenders in uneven shares: 75.00, 50.00 and 35 x 25.00 = 1,000.00.
  std::vector<int64_t> shares = {7500, 5000};
  for (int i = 0; i < 35; ++i) shares.push_back(2500);
  const std::vector<int64_t> lenders = Fund(loan, shares);
  lv1::Loan funded = GetLoan(loan);
  EXPECT_EQ(funded.status(), lv1::LOAN_STATUS_FUNDED);
  EXPECT_EQ(funded.lender_count(), 37);
  EXPECT_EQ(Cents(funded.funded_amount()), 100000);
  EXPECT_EQ(Cents(funded.remaining_amount()), 0);
  for (int64_t lender : lenders) EXPECT_EQ(Posted(lender), 0);

  ASSERT_TRUE(Disburse(partner, loan).ok());
  EXPECT_EQ(GetLoan(loan).status(), lv1::LOAN_STATUS_PAYING_BACK);
  // 12 monthly repayments with odd cents: 83.33 x 11 and 83.37.
  int64_t credited = 0;
  for (int month = 0; month < 12; ++month) {
    lv1::PostRepaymentResponse out;
    grpc::Status s = Repay(partner, loan, month < 11 ? "8333.00" : "8337.00", "100", &out);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(Cents(out.repayment().credited_usd_amount()), month < 11 ? 8333 : 8337);
    EXPECT_EQ(Cents(out.repayment().currency_loss_amount()), 0);
    credited += Cents(out.repayment().credited_usd_amount());
  }
  EXPECT_EQ(credited, 100000);
  int64_t total = 0;
  for (size_t i = 0; i < lenders.size(); ++i) {
    EXPECT_EQ(Posted(lenders[i]), shares[i]) << "lender " << lenders[i];
    total += Posted(lenders[i]);
  }
  EXPECT_EQ(total, 100000);
  lv1::Loan ended = GetLoan(loan);
  EXPECT_EQ(ended.status(), lv1::LOAN_STATUS_ENDED);
  EXPECT_EQ(Cents(ended.repaid_amount()), 100000);
  EXPECT_FALSE(ended.ended_with_currency_loss());
  // A repayment of an ended loan is refused and moves nothing.
  grpc::Status late = Repay(partner, loan, "1.00");
  EXPECT_EQ(late.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << late.error_message();
  EXPECT_THAT(late.error_message(), HasSubstr("ENDED"));

  lv1::ListLoanLendersRequest list;
  *list.mutable_loan_id() = loan.id();
  list.mutable_page()->set_page_size(100);
  lv1::ListLoanLendersResponse listed;
  ASSERT_TRUE(loans_->ListLoanLenders(Ctx(ops_).get(), list, &listed).ok());
  EXPECT_EQ(listed.lenders_size(), 37);

  // A lender's statement finds its repayment credits (packed, through its position in the loan,
  // ADR 0011) among its deposit and its share, with the running balance ending at its wallet's.
  for (size_t i : {size_t{0}, size_t{1}, size_t{20}, size_t{36}}) {
    lv1::GetStatementRequest req;
    req.mutable_filter()->mutable_lender_id()->set_value(std::to_string(lenders[i]));
    req.mutable_page()->set_page_size(500);
    lv1::GetStatementResponse statement;
    grpc::Status s = lenders_->GetStatement(Ctx(LenderToken(lenders[i])).get(), req, &statement);
    ASSERT_TRUE(s.ok()) << s.error_message();
    ASSERT_EQ(statement.rows_size(), 14) << "deposit, share, 12 repayment credits";
    EXPECT_EQ(statement.page().total_count(), 14);
    int64_t repaid = 0, credits = 0;
    for (const lv1::StatementRow& row : statement.rows()) {
      if (row.code() != lv1::TRANSFER_CODE_REPAYMENT) continue;
      ++credits;
      repaid += Cents(row.amount());
      EXPECT_EQ(row.direction(), lv1::ENTRY_DIRECTION_CREDIT);
      EXPECT_EQ(row.references().loan_id().value(), loan.id().value());
      EXPECT_TRUE(row.references().has_repayment_id());
    }
    EXPECT_EQ(credits, 12);
    EXPECT_EQ(repaid, shares[i]);
    EXPECT_EQ(Cents(statement.rows(13).balance_after()), Posted(lenders[i]));
  }
  // The loan's transfers list every credit: 12 repayments x 37 funders, summing to the repaid.
  lv1::ListTransfersRequest by_loan;
  *by_loan.mutable_loan_id() = loan.id();
  by_loan.add_codes(lv1::TRANSFER_CODE_REPAYMENT);
  by_loan.mutable_page()->set_page_size(500);
  lv1::ListTransfersResponse loan_transfers;
  ASSERT_TRUE(ledger_->ListTransfers(Ctx(ops_).get(), by_loan, &loan_transfers).ok());
  EXPECT_EQ(loan_transfers.page().total_count(), 12 * 37);
  ASSERT_EQ(loan_transfers.transfers_size(), 12 * 37);
  int64_t listed_total = 0;
  for (const lv1::Transfer& t : loan_transfers.transfers()) listed_total += Cents(t.amount());
  EXPECT_EQ(listed_total, 100000);
  ExpectReconciled();
}

TEST_F(LendingFlowTest, TwoHundredLendersRacingForTheLastFiveHundredNeverOverFund) {
  const std::string partner = MakePartner();
  const lv1::Loan loan = MakeLoan(partner);  // USD 1,000.00
  Fund(loan, {50000});
  std::vector<int64_t> racers;
  for (int i = 0; i < 200; ++i) {
    racers.push_back(NewLender());
    Deposit(racers.back(), 2500);
  }
  std::atomic<int> won{0}, refused{0}, other{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 200; ++i) {
    threads.emplace_back([&, i] {
      // Half hold through the basket, half lend at once: both race for the same room.
      grpc::Status s = i % 2 == 0 ? LendNow(racers[i], loan, 2500) : AddToBasket(racers[i], loan, 2500);
      if (s.ok()) {
        ++won;
      } else if (s.error_code() == grpc::StatusCode::FAILED_PRECONDITION) {
        ++refused;
      } else {
        ++other;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(won.load(), 20);
  EXPECT_EQ(refused.load(), 180);
  EXPECT_EQ(other.load(), 0);
  lv1::Loan after = GetLoan(loan);
  EXPECT_EQ(Cents(after.funded_amount()) + Cents(after.held_amount()), 100000);
  EXPECT_EQ(Cents(after.remaining_amount()), 0);
  // The losers hold nothing: their whole deposit is still available.
  int losers_untouched = 0;
  for (int64_t lender : racers) {
    if (Available(lender) == 2500) ++losers_untouched;
  }
  EXPECT_EQ(losers_untouched, 180);
  ExpectReconciled();
}

TEST_F(LendingFlowTest, CurrencyLossOfFifteenPercentIsSplitWithTheTenPercentCoverage) {
  const std::string partner = MakePartner(/*coverage_bps=*/1000);
  const lv1::Loan loan = MakeLoan(partner);  // KES 100,000.00 = USD 1,000.00 at 100
  const std::vector<int64_t> lenders = Fund(loan, {50000, 30000, 20000});
  ASSERT_TRUE(Disburse(partner, loan).ok());
  // The shilling fell 15%: 100,000.00 KES now buys 850.00 USD.
  lv1::PostRepaymentResponse out;
  ASSERT_TRUE(Repay(partner, loan, "100000.00", "117.64705882", &out).ok());
  // Expected 1,000.00; received 850.00; loss 150.00; the partner covers 10% of 1,000.00 = 100.00;
  // lenders bear 50.00 and are credited 950.00.
  EXPECT_EQ(Cents(out.repayment().expected_usd_amount()), 100000);
  EXPECT_EQ(Cents(out.repayment().partner_coverage_amount()), 10000);
  EXPECT_EQ(Cents(out.repayment().credited_usd_amount()), 95000);
  EXPECT_EQ(Cents(out.repayment().currency_loss_amount()), 5000);
  EXPECT_EQ(out.loan().status(), lv1::LOAN_STATUS_ENDED);
  EXPECT_TRUE(out.loan().ended_with_currency_loss());
  EXPECT_EQ(Cents(out.loan().currency_loss_amount()), 5000);
  EXPECT_EQ(Posted(lenders[0]), 47500);
  EXPECT_EQ(Posted(lenders[1]), 28500);
  EXPECT_EQ(Posted(lenders[2]), 19000);
  ExpectReconciled();
}

TEST_F(LendingFlowTest, BasketHoldsThenCheckoutPostsEveryShareAndTheDonation) {
  const std::string partner = MakePartner();
  const lv1::Loan a = MakeLoan(partner);
  const lv1::Loan b = MakeLoan(partner);
  const int64_t lender = NewLender();
  Deposit(lender, 10000);
  ASSERT_TRUE(AddToBasket(lender, a, 5000).ok());
  ASSERT_TRUE(AddToBasket(lender, b, 2500).ok());
  EXPECT_EQ(AddToBasket(lender, a, 2500).error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(Available(lender), 2500);
  EXPECT_EQ(Cents(GetLoan(a).held_amount()), 5000);
  lv1::CheckoutRequest req;
  req.set_request_id(Rid());
  *req.mutable_donation() = M("5.00");
  lv1::CheckoutResponse out;
  grpc::Status s = baskets_->Checkout(Ctx(LenderToken(lender)).get(), req, &out);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(out.shares_size(), 2);
  EXPECT_EQ(Cents(out.total()), 8000);
  EXPECT_EQ(Posted(lender), 2000);
  EXPECT_EQ(Cents(GetLoan(a).funded_amount()), 5000);
  EXPECT_EQ(Cents(GetLoan(a).held_amount()), 0);
  // Replayed: the same answer, nothing posted twice.
  lv1::CheckoutResponse again;
  ASSERT_TRUE(baskets_->Checkout(Ctx(LenderToken(lender)).get(), req, &again).ok());
  EXPECT_TRUE(again.mutation().replayed());
  EXPECT_EQ(Posted(lender), 2000);
  // Now the basket is empty.
  lv1::CheckoutRequest empty;
  empty.set_request_id(Rid());
  EXPECT_EQ(baskets_->Checkout(Ctx(LenderToken(lender)).get(), empty, &out).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  // Removing an item voids its hold.
  Deposit(lender, 500);
  ASSERT_TRUE(AddToBasket(lender, b, 2500).ok());
  EXPECT_EQ(Available(lender), 0);
  lv1::RemoveFromBasketRequest remove;
  remove.set_request_id(Rid());
  *remove.mutable_loan_id() = b.id();
  lv1::RemoveFromBasketResponse removed;
  ASSERT_TRUE(baskets_->RemoveFromBasket(Ctx(LenderToken(lender)).get(), remove, &removed).ok());
  EXPECT_EQ(removed.basket().items_size(), 0);
  EXPECT_EQ(Available(lender), 2500);
  EXPECT_EQ(Cents(GetLoan(b).held_amount()), 0);
  remove.set_request_id(Rid());
  EXPECT_EQ(baskets_->RemoveFromBasket(Ctx(LenderToken(lender)).get(), remove, &removed).error_code(),
            grpc::StatusCode::NOT_FOUND);
  ExpectReconciled();
}

TEST_F(LendingFlowTest, BadLendingAndRepaymentInputIsRefusedAndMovesNothing) {
  const std::string partner = MakePartner();
  const std::string other_partner = MakePartner();
  const lv1::Loan loan = MakeLoan(partner);
  const int64_t lender = NewLender();
  Deposit(lender, 200000);
  EXPECT_EQ(LendNow(lender, loan, 3000).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(LendNow(lender, loan, 0).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(LendNow(lender, loan, 102500).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  {
    lv1::LendNowRequest req;
    req.set_request_id(Rid());
    *req.mutable_loan_id() = loan.id();
    *req.mutable_amount() = M("25.00", "EUR");
    lv1::LendNowResponse out;
    EXPECT_EQ(baskets_->LendNow(Ctx(LenderToken(lender)).get(), req, &out).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
    req.set_request_id(Rid());
    *req.mutable_amount() = M("25.00");
    req.mutable_lender_id()->set_value(std::to_string(lender + 1));
    EXPECT_EQ(baskets_->LendNow(Ctx(LenderToken(lender)).get(), req, &out).error_code(),
              grpc::StatusCode::NOT_FOUND);
  }
  // No wallet at all.
  EXPECT_EQ(LendNow(NewLender(), loan, 2500).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  // More than the wallet holds.
  const int64_t poor = NewLender();
  Deposit(poor, 2400);
  EXPECT_EQ(LendNow(poor, loan, 2500).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(Posted(lender), 200000);
  EXPECT_EQ(Available(poor), 2400);
  EXPECT_EQ(Cents(GetLoan(loan).funded_amount()), 0);

  // Repayments before disbursement, by another partner, too much.
  lv1::LendNowResponse share;
  ASSERT_TRUE(LendNow(lender, loan, 100000, &share).ok());
  lv1::LendNowResponse replay;
  ASSERT_TRUE(LendNow(lender, loan, 100000, &replay, share.mutation().request_id()).ok());
  EXPECT_TRUE(replay.mutation().replayed());
  EXPECT_EQ(Posted(lender), 100000);
  EXPECT_EQ(LendNow(lender, loan, 2500).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  grpc::Status early = Repay(partner, loan, "100.00");
  EXPECT_EQ(early.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << early.error_message();
  EXPECT_EQ(Disburse(partner, loan, "99999.00").error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(Disburse(other_partner, loan).error_code(), grpc::StatusCode::NOT_FOUND);
  ASSERT_TRUE(Disburse(partner, loan).ok());
  EXPECT_EQ(Repay(other_partner, loan, "100.00").error_code(), grpc::StatusCode::NOT_FOUND);
  grpc::Status over = Repay(partner, loan, "100000.01");
  EXPECT_EQ(over.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(over.error_message(), HasSubstr("overpayment"));
  EXPECT_EQ(Repay(partner, loan, "100.00", "-3").error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  {
    lv1::PostRepaymentRequest req;
    req.set_request_id(Rid());
    *req.mutable_loan_id() = loan.id();
    *req.mutable_local_amount() = M("100.00", "UGX");
    req.set_settlement_fx_rate("100");
    req.mutable_repaid_on()->set_year(2026);
    req.mutable_repaid_on()->set_month(1);
    req.mutable_repaid_on()->set_day(1);
    lv1::PostRepaymentResponse out;
    EXPECT_EQ(loans_->PostRepayment(Ctx(PartnerToken(partner)).get(), req, &out).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
  }
  EXPECT_EQ(Posted(lender), 100000);
  EXPECT_EQ(Cents(GetLoan(loan).repaid_amount()), 0);
  ExpectReconciled();
}

TEST_F(LendingFlowTest, BulkRepaymentsApplyEachItemAndReplayTheCompletedOnes) {
  const std::string partner = MakePartner();
  const lv1::Loan a = MakeLoan(partner, "50000.00");
  const lv1::Loan b = MakeLoan(partner, "50000.00");
  const std::vector<int64_t> la = Fund(a, {25000, 25000});
  const std::vector<int64_t> lb = Fund(b, {50000});
  ASSERT_TRUE(Disburse(partner, a, "50000.00").ok());
  ASSERT_TRUE(Disburse(partner, b, "50000.00").ok());
  lv1::PostBulkRepaymentsRequest req;
  req.set_request_id(Rid());
  const absl::CivilDay today = absl::ToCivilDay(absl::Now(), absl::UTCTimeZone());
  for (const auto& [loan, kes] : std::vector<std::pair<lv1::Loan, std::string>>{
           {a, "1000.01"}, {b, "60000.00"}, {b, "2000.00"}}) {
    lv1::BulkRepaymentItem* item = req.add_items();
    *item->mutable_loan_id() = loan.id();
    *item->mutable_local_amount() = M(kes, "KES");
    item->set_settlement_fx_rate("100");
    item->mutable_repaid_on()->set_year(static_cast<int32_t>(today.year()));
    item->mutable_repaid_on()->set_month(today.month());
    item->mutable_repaid_on()->set_day(today.day());
  }
  lv1::PostBulkRepaymentsResponse out;
  ASSERT_TRUE(loans_->PostBulkRepayments(Ctx(PartnerToken(partner)).get(), req, &out).ok());
  EXPECT_EQ(out.succeeded_count(), 2);
  EXPECT_EQ(out.failed_count(), 1);
  EXPECT_EQ(out.results(1).status().code(), grpc::StatusCode::FAILED_PRECONDITION);
  // 10.00 USD split 5.00 / 5.00 (and one cent more to one of them).
  EXPECT_EQ(Posted(la[0]) + Posted(la[1]), 1000);
  EXPECT_EQ(Posted(lb[0]), 2000);
  lv1::PostBulkRepaymentsResponse again;
  ASSERT_TRUE(loans_->PostBulkRepayments(Ctx(PartnerToken(partner)).get(), req, &again).ok());
  EXPECT_EQ(again.succeeded_count(), 2);
  EXPECT_EQ(Posted(lb[0]), 2000);
  lv1::PostBulkRepaymentsRequest none;
  none.set_request_id(Rid());
  EXPECT_EQ(loans_->PostBulkRepayments(Ctx(PartnerToken(partner)).get(), none, &out).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  ExpectReconciled();
}

// A bulk's items are queued to the committer together and commit in shared transactions, yet
// each applies after the items before it and fails alone.
TEST_F(LendingFlowTest, BulkItemsOfOneLoanApplyInItemOrderAndEachFailsAlone) {
  const std::string partner = MakePartner();
  const lv1::Loan a = MakeLoan(partner, "50000.00");
  const std::vector<int64_t> lenders = Fund(a, {10000, 15000, 25000});
  ASSERT_TRUE(Disburse(partner, a, "50000.00").ok());
  lv1::PostBulkRepaymentsRequest req;
  req.set_request_id(Rid());
  const absl::CivilDay today = absl::ToCivilDay(absl::Now(), absl::UTCTimeZone());
  auto add = [&](const std::string& loan_id, const std::string& kes, const std::string& rate) {
    lv1::BulkRepaymentItem* item = req.add_items();
    item->mutable_loan_id()->set_value(loan_id);
    *item->mutable_local_amount() = M(kes, "KES");
    item->set_settlement_fx_rate(rate);
    item->mutable_repaid_on()->set_year(static_cast<int32_t>(today.year()));
    item->mutable_repaid_on()->set_month(today.month());
    item->mutable_repaid_on()->set_day(today.day());
  };
  add(a.id().value(), "20000.00", "100");    // 200.00 USD
  add(a.id().value(), "100.00", "not-a-rate");  // refused before the committer
  add(a.id().value(), "30000.00", "100");    // the remaining 300.00 USD: the loan is repaid
  add(a.id().value(), "100.00", "100");      // after item 2, nothing is left to repay
  add("999999", "100.00", "100");            // no such loan
  lv1::PostBulkRepaymentsResponse out;
  ASSERT_TRUE(loans_->PostBulkRepayments(Ctx(PartnerToken(partner)).get(), req, &out).ok());
  ASSERT_EQ(out.results_size(), 5);
  EXPECT_EQ(out.succeeded_count(), 2);
  EXPECT_EQ(out.failed_count(), 3);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(out.results(i).index(), i);
  EXPECT_EQ(out.results(0).status().code(), grpc::StatusCode::OK);
  EXPECT_EQ(out.results(1).status().code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(out.results(1).status().message(), ::testing::HasSubstr("items[1]."));
  EXPECT_EQ(out.results(2).status().code(), grpc::StatusCode::OK);
  EXPECT_EQ(out.results(3).status().code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(out.results(4).status().code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_FALSE(out.results(1).has_repayment());
  EXPECT_FALSE(out.results(3).has_repayment());
  // Item 0 applied before item 2: its repayment id is the lower one, and 200.00 then 300.00 USD.
  EXPECT_LT(std::stoll(out.results(0).repayment().id().value()),
            std::stoll(out.results(2).repayment().id().value()));
  EXPECT_EQ(out.results(0).repayment().credited_usd_amount().amount(), "200.00");
  EXPECT_EQ(out.results(2).repayment().credited_usd_amount().amount(), "300.00");
  // Every lender got its share back exactly, and the loan is repaid.
  EXPECT_EQ(Posted(lenders[0]), 10000);
  EXPECT_EQ(Posted(lenders[1]), 15000);
  EXPECT_EQ(Posted(lenders[2]), 25000);
  EXPECT_EQ(GetLoan(a).status(), lv1::LOAN_STATUS_ENDED);
  ExpectReconciled();
}

// A partner's bulk names many loans, read together before the committer: each item is still
// checked against its own loan and fails alone.
TEST_F(LendingFlowTest, BulkItemsAreEachCheckedAgainstTheirOwnLoan) {
  const std::string partner = MakePartner();
  const std::string other = MakePartner();
  std::vector<lv1::Loan> repaying;
  std::vector<int64_t> lenders;
  for (int i = 0; i < 4; ++i) {
    repaying.push_back(MakeLoan(partner, "10000.00"));
    const std::vector<int64_t> funded = Fund(repaying.back(), {5000, 5000});
    lenders.insert(lenders.end(), funded.begin(), funded.end());
    ASSERT_TRUE(Disburse(partner, repaying.back(), "10000.00").ok());
  }
  const lv1::Loan fundraising = MakeLoan(partner, "10000.00");
  Fund(fundraising, {2500});
  const lv1::Loan others = MakeLoan(other, "10000.00");
  Fund(others, {10000});
  ASSERT_TRUE(Disburse(other, others, "10000.00").ok());
  lv1::PostBulkRepaymentsRequest req;
  req.set_request_id(Rid());
  auto add = [&](const lv1::Loan& loan, const std::string& kes, const std::string& currency) {
    lv1::BulkRepaymentItem* item = req.add_items();
    *item->mutable_loan_id() = loan.id();
    *item->mutable_local_amount() = M(kes, currency);
    item->set_settlement_fx_rate("100");
    Today(item->mutable_repaid_on());
  };
  add(repaying[0], "2000.00", "KES");
  add(others, "2000.00", "KES");       // another partner's loan
  add(repaying[1], "2000.00", "KES");
  add(fundraising, "2000.00", "KES");  // not disbursed
  add(repaying[2], "2000.00", "UGX");  // not the loan's currency
  add(repaying[3], "2000.00", "KES");
  add(repaying[0], "2000.00", "KES");  // the same loan again, after item 0
  lv1::PostBulkRepaymentsResponse out;
  ASSERT_TRUE(loans_->PostBulkRepayments(Ctx(PartnerToken(partner)).get(), req, &out).ok());
  ASSERT_EQ(out.results_size(), 7);
  const grpc::StatusCode want[] = {grpc::StatusCode::OK, grpc::StatusCode::NOT_FOUND,
                                   grpc::StatusCode::OK, grpc::StatusCode::FAILED_PRECONDITION,
                                   grpc::StatusCode::INVALID_ARGUMENT, grpc::StatusCode::OK,
                                   grpc::StatusCode::OK};
  for (int i = 0; i < 7; ++i) {
    EXPECT_EQ(out.results(i).status().code(), want[i]) << "item " << i << ": "
                                                       << out.results(i).status().message();
  }
  EXPECT_THAT(out.results(4).status().message(), ::testing::HasSubstr("items[4].local_amount"));
  EXPECT_EQ(out.succeeded_count(), 4);
  // 20.00 USD per repayment, 10.00 to each of a loan's two lenders; loan 0 was repaid twice.
  const int64_t credited[] = {2000, 2000, 1000, 1000, 0, 0, 1000, 1000};
  for (size_t i = 0; i < 8; ++i) EXPECT_EQ(Posted(lenders[i]), credited[i]) << "lender " << i;
  EXPECT_EQ(Cents(GetLoan(others).repaid_amount()), 0);
  EXPECT_EQ(Cents(GetLoan(fundraising).repaid_amount()), 0);
  EXPECT_EQ(Cents(GetLoan(repaying[2]).repaid_amount()), 0);
  ExpectReconciled();
}

// --- the clock moves from here on -------------------------------------------------------------

TEST_F(LendingFlowTest, AnExpiredLoanRefundsEveryShareAndVoidsItsHolds) {
  const std::string partner = MakePartner();
  const lv1::Loan loan = MakeLoan(partner);
  const std::vector<int64_t> lenders = Fund(loan, {2500, 5000});
  const int64_t holder = NewLender();
  Deposit(holder, 2500);
  ASSERT_TRUE(AddToBasket(holder, loan, 2500).ok());
  EXPECT_EQ(Available(holder), 0);
  AdvanceDays(31);
  lv1::RunLifecycleSweepResponse swept = Sweep();
  EXPECT_GE(swept.loans_expired(), 1);
  lv1::Loan expired = GetLoan(loan);
  EXPECT_EQ(expired.status(), lv1::LOAN_STATUS_EXPIRED);
  EXPECT_EQ(Cents(expired.held_amount()), 0);
  EXPECT_EQ(Posted(lenders[0]), 2500);
  EXPECT_EQ(Posted(lenders[1]), 5000);
  EXPECT_EQ(Available(holder), 2500);
  // A second pass at the same instant finds nothing more for this loan.
  EXPECT_EQ(GetLoan(loan).status(), lv1::LOAN_STATUS_EXPIRED);
  EXPECT_EQ(LendNow(holder, loan, 2500).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  ExpectReconciled();
}

TEST_F(LendingFlowTest, AStillDelinquentLoanDefaultsAndALateFullRepaymentEndsIt) {
  const std::string partner = MakePartner();
  const lv1::Loan loan = MakeLoan(partner);
  const std::vector<int64_t> lenders = Fund(loan, {60000, 40000});
  ASSERT_TRUE(Disburse(partner, loan).ok());
  ASSERT_TRUE(Repay(partner, loan, "8000.00").ok());  // 80.00 USD, less than one installment
  AdvanceDays(62);
  Sweep();
  lv1::Loan late = GetLoan(loan);
  EXPECT_TRUE(late.delinquent());
  EXPECT_GT(late.days_in_arrears(), 0);
  EXPECT_EQ(late.status(), lv1::LOAN_STATUS_PAYING_BACK);
  // Ops find it among the partner's paying-back loans by the delinquency filters, and only there.
  const lv1::Loan current = MakeLoan(partner);
  Fund(current, {100000});
  ASSERT_TRUE(Disburse(partner, current).ok());
  auto listed = [&](std::optional<bool> delinquent, int32_t min_days) {
    lv1::ListLoansRequest req;
    req.mutable_filter()->add_statuses(lv1::LOAN_STATUS_PAYING_BACK);
    req.mutable_filter()->add_partner_ids()->set_value(partner);
    if (delinquent) req.mutable_filter()->set_delinquent(*delinquent);
    req.mutable_filter()->set_min_days_in_arrears(min_days);
    lv1::ListLoansResponse out;
    grpc::Status s = loans_->ListLoans(Ctx(ops_).get(), req, &out);
    EXPECT_TRUE(s.ok()) << s.error_message();
    std::vector<std::string> ids;
    for (const lv1::Loan& l : out.loans()) ids.push_back(l.id().value());
    return ids;
  };
  using Ids = std::vector<std::string>;
  EXPECT_EQ(listed(true, 0), Ids{loan.id().value()});
  EXPECT_EQ(listed(false, 0), Ids{current.id().value()});
  EXPECT_EQ(listed(std::nullopt, late.days_in_arrears()), Ids{loan.id().value()});
  EXPECT_EQ(listed(std::nullopt, late.days_in_arrears() + 1), Ids{});
  // A year of term plus 180 days later, still behind: defaulted, written off.
  AdvanceDays(365 + 181);
  lv1::RunLifecycleSweepResponse swept = Sweep();
  EXPECT_GE(swept.loans_defaulted(), 1);
  EXPECT_EQ(GetLoan(loan).status(), lv1::LOAN_STATUS_DEFAULTED);
  // Later repayments still reach the lenders; the full one ends the loan.
  lv1::PostRepaymentResponse out;
  ASSERT_TRUE(Repay(partner, loan, "92000.00", "100", &out).ok());
  EXPECT_EQ(out.loan().status(), lv1::LOAN_STATUS_ENDED);
  EXPECT_EQ(Posted(lenders[0]), 60000);
  EXPECT_EQ(Posted(lenders[1]), 40000);
  ExpectReconciled();
}

// A pass smaller than the number of active loans goes on from the loan where the last pass
// stopped (RunLifecycleSweep, max_items), so passes of one item each still reach every loan in
// turn; before, each pass started again from the first active loan and never reached the rest.
// Last in the file: it moves the shared clock and leaves loans delinquent.
TEST_F(LendingFlowTest, SweepPassesOfOneItemReachEveryActiveLoanInTurn) {
  const std::string partner = MakePartner();
  std::vector<lv1::Loan> loans;
  for (int i = 0; i < 3; ++i) {
    loans.push_back(MakeLoan(partner));
    Fund(loans.back(), {60000, 40000});
    ASSERT_TRUE(Disburse(partner, loans.back()).ok());
  }
  AdvanceDays(62);  // no repayment: each loan is now behind its schedule
  auto flagged = [&] {
    int n = 0;
    for (const lv1::Loan& loan : loans) n += GetLoan(loan).delinquent() ? 1 : 0;
    return n;
  };
  // Every pass handles one item: a hold or loan to expire, or the next active loan, this test's
  // or an earlier test's. Far fewer than 200 loans are active in this suite.
  int passes = 0;
  int flagged_by_passes = 0;
  while (flagged() < 3 && passes < 200) {
    lv1::RunLifecycleSweepResponse swept = Sweep(1);
    flagged_by_passes += swept.loans_flagged_delinquent();
    EXPECT_LE(swept.loans_flagged_delinquent(), 1) << "one item per pass";
    ++passes;
  }
  EXPECT_EQ(flagged(), 3) << "after " << passes << " passes";
  EXPECT_GE(flagged_by_passes, 3);
  // A full pass at the same instant finds nothing left to flag.
  EXPECT_EQ(Sweep().loans_flagged_delinquent(), 0);
}

}  // namespace
}  // namespace microlend::testing
