#include "services/lending/core/ledger_engine.h"

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "absl/time/time.h"
#include "common/currency.h"
#include "common/money.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace microlend::lending {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

const absl::Time kNow = absl::FromUnixSeconds(1'800'000'000);

constexpr AccountId kCash{1};    // external cash: unconstrained, pays deposits
constexpr AccountId kWallet{2};  // lender wallet: debits must not exceed credits
constexpr AccountId kLoan{3};    // platform escrow: unconstrained, where shares go in these tests
constexpr AccountId kFunding{6};  // loan kLoanId's funding account (USD 100.00 loan)
constexpr AccountId kEuro{4};    // an EUR account
constexpr AccountId kCapped{5};  // credits must not exceed debits
constexpr AccountId kMissing{99};
constexpr HoldId kLoadedHold{900};      // 30.00 wallet -> loan, pending, expires in 1 hour
constexpr HoldId kOpenHold{901};        // 5.00 cash -> loan, pending, no expiry
constexpr TransferId kExistingId{800};  // a committed transfer's id
constexpr LoanId kLoanId{7};

Currency Eur() { return *Currency::FromCode("EUR"); }
Money Usd(int64_t cents) { return Money::FromMinor(Currency::Usd(), cents); }

Account MakeAccount(AccountId id, AccountKind kind, Currency currency = Currency::Usd()) {
  Account a;
  a.id = id;
  a.owner_type = OwnerType::kPlatform;
  a.owner_id = absl::StrCat("owner-", id.value());
  a.kind = kind;
  a.currency = currency;
  a.created_at = kNow - absl::Hours(24);
  return a;
}

Hold MakeHold(HoldId id, AccountId debit, AccountId credit, int64_t cents,
              std::optional<absl::Time> expires_at) {
  Hold h;
  h.transfer.id = id;
  h.transfer.debit_account_id = debit;
  h.transfer.credit_account_id = credit;
  h.transfer.amount = Usd(cents);
  h.transfer.code = TransferCode::kLoanShare;
  h.transfer.references.loan_id = kLoanId;
  h.transfer.type = TransferType::kPending;
  h.transfer.expires_at = expires_at;
  h.transfer.timeout_ms = expires_at ? 3'600'000 : 0;
  return h;
}

// Wallet: 100.00 deposited from cash, 30.00 of it held for the loan (kLoadedHold). Cash also
// holds 5.00 for the loan (kOpenHold). Capped: 50.00 debited to cash.
Loaded MakeLoaded() {
  Loaded loaded;
  Account cash = MakeAccount(kCash, AccountKind::kExternalCash);
  cash.debits_posted = 10'000;
  cash.credits_posted = 5'000;
  cash.debits_pending = 500;
  Account wallet = MakeAccount(kWallet, AccountKind::kLenderWallet);
  wallet.owner_type = OwnerType::kLender;
  wallet.flags.debits_must_not_exceed_credits = true;
  wallet.credits_posted = 10'000;
  wallet.debits_pending = 3'000;
  Account loan = MakeAccount(kLoan, AccountKind::kPlatformEscrow);
  loan.credits_pending = 3'500;
  Account capped = MakeAccount(kCapped, AccountKind::kPlatformLoss);
  capped.flags.credits_must_not_exceed_debits = true;
  capped.debits_posted = 5'000;
  loaded.accounts = {cash, wallet, loan, MakeAccount(kEuro, AccountKind::kExternalCash, Eur()),
                     capped};
  loaded.holds = {MakeHold(kLoadedHold, kWallet, kLoan, 3'000, kNow + absl::Hours(1)),
                  MakeHold(kOpenHold, kCash, kLoan, 500, std::nullopt)};
  loaded.existing_ids = {kExistingId};
  return loaded;
}

TransferSpec Posted(AccountId debit, AccountId credit, Money amount,
                    TransferCode code = TransferCode::kDeposit) {
  TransferSpec s;
  s.debit_account_id = debit;
  s.credit_account_id = credit;
  s.amount = amount;
  s.code = code;
  return s;
}

TransferSpec NewHold(AccountId debit, AccountId credit, Money amount, int64_t timeout_ms = 0) {
  TransferSpec s = Posted(debit, credit, amount, TransferCode::kOrderEscrow);
  s.pending = true;
  s.timeout_ms = timeout_ms;
  return s;
}

TransferSpec Resolve(HoldId hold, PendingAction action, std::optional<Money> amount = {}) {
  TransferSpec s;
  s.pending_id = hold;
  s.pending_action = action;
  s.amount = amount;
  return s;
}

TransferSpec WithId(TransferSpec s, int64_t id) {
  s.id = TransferId(id);
  return s;
}

class LedgerEngineTest : public ::testing::Test {
 protected:
  std::variant<std::vector<Transfer>, Rejection> Apply(const std::vector<TransferSpec>& specs,
                                                       absl::Time now = kNow) {
    BatchContext context{now, "req-1", [this] { return TransferId(next_id_++); }};
    return LedgerEngine::ApplyBatch(specs, context, working_);
  }

  std::vector<Transfer> ApplyOk(const std::vector<TransferSpec>& specs, absl::Time now = kNow) {
    auto result = Apply(specs, now);
    if (const Rejection* r = std::get_if<Rejection>(&result)) {
      ADD_FAILURE() << "rejected item " << r->item_index << ": " << r->detail;
      return {};
    }
    return std::get<std::vector<Transfer>>(result);
  }

  // Applies a batch that must be rejected, checks the working set did not change, and returns
  // the rejection.
  Rejection ApplyRejected(const std::vector<TransferSpec>& specs, absl::Time now = kNow) {
    const WorkingSet before = working_;
    auto result = Apply(specs, now);
    EXPECT_TRUE(working_ == before) << "a rejected batch changed the working set";
    if (!std::holds_alternative<Rejection>(result)) {
      ADD_FAILURE() << "batch applied";
      return {};
    }
    return std::get<Rejection>(result);
  }

  const Account& Acc(AccountId id) const { return *working_.FindAccount(id); }
  const Hold& HoldOf(HoldId id) const { return *working_.FindHold(id); }

  WorkingSet working_{MakeLoaded()};
  int64_t next_id_ = 1000;
};

MATCHER_P2(IsRejection, index, reason, "") {
  *result_listener << "item " << arg.item_index << " reason " << static_cast<int>(arg.reason)
                   << " (" << arg.detail << ")";
  return arg.item_index == index && arg.reason == reason;
}

TEST_F(LedgerEngineTest, EmptyBatchRejectedAtItemZero) {
  EXPECT_THAT(*LedgerEngine::ValidateShape({}), IsRejection(0, RejectReason::kShapeInvalid));
  Rejection r = ApplyRejected({});
  EXPECT_THAT(r, IsRejection(0, RejectReason::kShapeInvalid));
  EXPECT_THAT(r.detail, HasSubstr("not 0"));
}

TEST_F(LedgerEngineTest, BatchOf10001ItemsRejectedWithItsCount) {
  std::vector<TransferSpec> specs(kMaxTransfersPerBatch + 1, Posted(kCash, kLoan, Usd(1)));
  EXPECT_THAT(*LedgerEngine::ValidateShape(specs), IsRejection(0, RejectReason::kShapeInvalid));
  Rejection r = ApplyRejected(specs);
  EXPECT_THAT(r, IsRejection(0, RejectReason::kShapeInvalid));
  EXPECT_THAT(r.detail, HasSubstr("10001"));
  EXPECT_EQ(next_id_, 1000) << "no id may be consumed by a rejected batch size";
}

TEST_F(LedgerEngineTest, BatchOf10000ItemsApplies) {
  std::vector<TransferSpec> specs(kMaxTransfersPerBatch, Posted(kCash, kLoan, Usd(1)));
  EXPECT_EQ(LedgerEngine::ValidateShape(specs), std::nullopt);
  std::vector<Transfer> applied = ApplyOk(specs);
  ASSERT_EQ(applied.size(), kMaxTransfersPerBatch);
  EXPECT_EQ(applied.back().batch_index, 9'999);
  EXPECT_EQ(applied.back().id, TransferId(1000 + 9'999));
  EXPECT_EQ(Acc(kLoan).credits_posted, 10'000);
  EXPECT_EQ(Acc(kCash).debits_posted, 20'000);
  EXPECT_EQ(working_.TakeCommitSet().events.size(), kMaxTransfersPerBatch);
}

void ExpectShapeRejected(const TransferSpec& spec, RejectReason reason) {
  const std::vector<TransferSpec> specs = {Posted(kCash, kLoan, Usd(1)), spec};
  std::optional<Rejection> r = LedgerEngine::ValidateShape(specs);
  ASSERT_TRUE(r.has_value());
  EXPECT_THAT(*r, IsRejection(1, reason));
  WorkingSet working(MakeLoaded());
  const WorkingSet before = working;
  BatchContext context{kNow, "req", [] { return TransferId(5000); }};
  auto applied = LedgerEngine::ApplyBatch(specs, context, working);
  ASSERT_TRUE(std::holds_alternative<Rejection>(applied));
  EXPECT_THAT(std::get<Rejection>(applied), IsRejection(1, reason));
  EXPECT_TRUE(working == before);
}

TEST_F(LedgerEngineTest, MissingZeroOrNegativeAmountRejected) {
  TransferSpec spec = Posted(kCash, kLoan, Usd(1));
  spec.amount.reset();
  ExpectShapeRejected(spec, RejectReason::kAmountInvalid);
  ExpectShapeRejected(Posted(kCash, kLoan, Usd(0)), RejectReason::kAmountInvalid);
  ExpectShapeRejected(Posted(kCash, kLoan, Usd(-1)), RejectReason::kAmountInvalid);
  ExpectShapeRejected(NewHold(kCash, kLoan, Usd(0)), RejectReason::kAmountInvalid);
}

TEST_F(LedgerEngineTest, MissingCodeRejected) {
  TransferSpec spec = Posted(kCash, kLoan, Usd(1));
  spec.code.reset();
  ExpectShapeRejected(spec, RejectReason::kCodeMissing);
  spec.code = static_cast<TransferCode>(kMaxTransferCode + 1);
  ExpectShapeRejected(spec, RejectReason::kCodeMissing);
}

TEST_F(LedgerEngineTest, LoanCodesWithoutLoanReferenceRejected) {
  for (TransferCode code :
       {TransferCode::kLoanShare, TransferCode::kMatch, TransferCode::kDisbursement,
        TransferCode::kRepayment, TransferCode::kRefund}) {
    ExpectShapeRejected(Posted(kCash, kLoan, Usd(1), code), RejectReason::kReferenceMissing);
    TransferSpec named = Posted(kCash, kLoan, Usd(1), code);
    named.references.loan_id = kLoanId;
    EXPECT_EQ(LedgerEngine::ValidateShape({named}), std::nullopt);
  }
  EXPECT_EQ(LedgerEngine::ValidateShape({Posted(kCash, kLoan, Usd(1), TransferCode::kFee)}),
            std::nullopt);
}

TEST_F(LedgerEngineTest, MemoOver256BytesRejected) {
  TransferSpec spec = Posted(kCash, kLoan, Usd(1));
  spec.memo = std::string(kMaxMemoBytes, 'm');
  EXPECT_EQ(LedgerEngine::ValidateShape({spec}), std::nullopt);
  spec.memo.push_back('m');
  ExpectShapeRejected(spec, RejectReason::kShapeInvalid);
  ExpectShapeRejected(
      [&] {
        TransferSpec void_spec = Resolve(kLoadedHold, PendingAction::kVoid);
        void_spec.memo = spec.memo;
        return void_spec;
      }(),
      RejectReason::kShapeInvalid);
}

TEST_F(LedgerEngineTest, TextTheDatabaseCannotStoreRejected) {
  TransferSpec nul = Posted(kCash, kLoan, Usd(1));
  nul.memo = std::string("a\0b", 3);
  ExpectShapeRejected(nul, RejectReason::kShapeInvalid);
  TransferSpec broken = Posted(kCash, kLoan, Usd(1));
  broken.references.external_payment_id = "\xe3\x81";  // truncated 3-byte sequence
  ExpectShapeRejected(broken, RejectReason::kShapeInvalid);
  TransferSpec fine = Posted(kCash, kLoan, Usd(1));
  fine.memo = "\xe3\x81\x82 ok";  // hiragana A
  EXPECT_EQ(LedgerEngine::ValidateShape({fine}), std::nullopt);
}

TEST_F(LedgerEngineTest, WithdrawalHoldResolvesOnlyThroughTheWithdrawalWorkflow) {
  std::vector<Transfer> held = [&] {
    TransferSpec hold = NewHold(kWallet, kCash, Usd(1000));
    hold.code = TransferCode::kWithdrawal;
    hold.references.withdrawal_id = WithdrawalId(55);
    return ApplyOk({hold});
  }();
  ASSERT_EQ(held.size(), 1u);
  TransferSpec direct = Resolve(held[0].id, PendingAction::kVoid);
  EXPECT_THAT(ApplyRejected({direct}), IsRejection(0, RejectReason::kShapeInvalid));
  direct.withdrawal_step = true;
  EXPECT_EQ(ApplyOk({direct}).size(), 1u);
  EXPECT_EQ(HoldOf(held[0].id).state, HoldState::kVoided);
}

TEST_F(LedgerEngineTest, TimeoutOnlyOnHoldsAndWithinThirtyDays) {
  TransferSpec posted = Posted(kCash, kLoan, Usd(1));
  posted.timeout_ms = 1;
  ExpectShapeRejected(posted, RejectReason::kTimeoutInvalid);
  ExpectShapeRejected(NewHold(kCash, kLoan, Usd(1), -1), RejectReason::kTimeoutInvalid);
  ExpectShapeRejected(NewHold(kCash, kLoan, Usd(1), kMaxHoldTimeoutMs + 1),
                      RejectReason::kTimeoutInvalid);
  TransferSpec resolution = Resolve(kLoadedHold, PendingAction::kPost);
  resolution.timeout_ms = 1;
  ExpectShapeRejected(resolution, RejectReason::kTimeoutInvalid);
  EXPECT_EQ(LedgerEngine::ValidateShape({NewHold(kCash, kLoan, Usd(1), kMaxHoldTimeoutMs)}),
            std::nullopt);
}

TEST_F(LedgerEngineTest, MixedShapesRejected) {
  TransferSpec pending_resolution = Resolve(kLoadedHold, PendingAction::kPost);
  pending_resolution.pending = true;
  ExpectShapeRejected(pending_resolution, RejectReason::kShapeInvalid);
  TransferSpec action_only = Posted(kCash, kLoan, Usd(1));
  action_only.pending_action = PendingAction::kVoid;
  ExpectShapeRejected(action_only, RejectReason::kShapeInvalid);
  ExpectShapeRejected(Resolve(kLoadedHold, PendingAction::kNone), RejectReason::kShapeInvalid);
  TransferSpec expiring_post = Resolve(kLoadedHold, PendingAction::kPost);
  expiring_post.expiry = true;
  ExpectShapeRejected(expiring_post, RejectReason::kShapeInvalid);
  TransferSpec expiring_new = Posted(kCash, kLoan, Usd(1));
  expiring_new.expiry = true;
  ExpectShapeRejected(expiring_new, RejectReason::kShapeInvalid);
}

TEST_F(LedgerEngineTest, NewTransferWithoutAnAccountIdRejected) {
  TransferSpec no_debit = Posted(kCash, kLoan, Usd(1));
  no_debit.debit_account_id.reset();
  ExpectShapeRejected(no_debit, RejectReason::kShapeInvalid);
  TransferSpec no_credit = Posted(kCash, kLoan, Usd(1));
  no_credit.credit_account_id.reset();
  ExpectShapeRejected(no_credit, RejectReason::kShapeInvalid);
}

TEST_F(LedgerEngineTest, ResolutionWithNonPositiveAmountRejected) {
  ExpectShapeRejected(Resolve(kLoadedHold, PendingAction::kPost, Usd(0)),
                      RejectReason::kAmountInvalid);
  ExpectShapeRejected(Resolve(kLoadedHold, PendingAction::kPost, Usd(-5)),
                      RejectReason::kAmountInvalid);
}

TEST_F(LedgerEngineTest, SameAccountOnBothSidesRejected) {
  ExpectShapeRejected(Posted(kCash, kCash, Usd(1)), RejectReason::kSameAccount);
  ExpectShapeRejected(NewHold(kLoan, kLoan, Usd(1)), RejectReason::kSameAccount);
}

TEST_F(LedgerEngineTest, DuplicateClientIdRejectedAtTheLaterItem) {
  const std::vector<TransferSpec> specs = {WithId(Posted(kCash, kLoan, Usd(1)), 50),
                                           WithId(Posted(kCash, kLoan, Usd(2)), 51),
                                           WithId(Posted(kCash, kLoan, Usd(3)), 50)};
  EXPECT_THAT(*LedgerEngine::ValidateShape(specs),
              IsRejection(2, RejectReason::kDuplicateIdInBatch));
  EXPECT_THAT(ApplyRejected(specs), IsRejection(2, RejectReason::kDuplicateIdInBatch));
}

TEST_F(LedgerEngineTest, ApplyReportsTheFirstFailingItemWhateverItsKind) {
  // Item 1 fails on ledger state, item 2 on shape: the batch names item 1.
  EXPECT_THAT(ApplyRejected({Posted(kCash, kLoan, Usd(1)), Posted(kMissing, kLoan, Usd(1)),
                             Posted(kCash, kLoan, Usd(0))}),
              IsRejection(1, RejectReason::kDebitAccountNotFound));
}

TEST_F(LedgerEngineTest, PostedTransferMovesPostedTotals) {
  std::vector<Transfer> applied = ApplyOk({Posted(kCash, kWallet, Usd(2'500))});
  ASSERT_EQ(applied.size(), 1u);
  const Transfer& t = applied[0];
  EXPECT_EQ(t.id, TransferId(1000));
  EXPECT_EQ(t.type, TransferType::kPosted);
  EXPECT_EQ(t.amount, Usd(2'500));
  EXPECT_EQ(t.created_at, kNow);
  EXPECT_EQ(t.batch_request_id, "req-1");
  EXPECT_EQ(t.batch_index, 0);
  EXPECT_EQ(Acc(kCash).debits_posted, 12'500);
  EXPECT_EQ(Acc(kWallet).credits_posted, 12'500);
  EXPECT_EQ(Acc(kWallet).debits_pending, 3'000);
  EXPECT_TRUE(working_.TransferIdTaken(TransferId(1000)));
}

TEST_F(LedgerEngineTest, ClientChosenIdIsKeptAndConsumesNoAllocatedId) {
  std::vector<Transfer> applied =
      ApplyOk({WithId(Posted(kCash, kLoan, Usd(1)), 77), Posted(kCash, kLoan, Usd(1))});
  ASSERT_EQ(applied.size(), 2u);
  EXPECT_EQ(applied[0].id, TransferId(77));
  EXPECT_EQ(applied[1].id, TransferId(1000));
  EXPECT_EQ(applied[1].batch_index, 1);
  EXPECT_EQ(next_id_, 1001);
}

TEST_F(LedgerEngineTest, UnknownAccountsRejected) {
  EXPECT_THAT(ApplyRejected({Posted(kMissing, kLoan, Usd(1))}),
              IsRejection(0, RejectReason::kDebitAccountNotFound));
  EXPECT_THAT(ApplyRejected({Posted(kCash, kMissing, Usd(1))}),
              IsRejection(0, RejectReason::kCreditAccountNotFound));
}

TEST_F(LedgerEngineTest, CurrencyMismatchRejected) {
  EXPECT_THAT(ApplyRejected({Posted(kCash, kEuro, Usd(1))}),
              IsRejection(0, RejectReason::kCurrencyMismatch));
  EXPECT_THAT(ApplyRejected({Posted(kCash, kLoan, Money::FromMinor(Eur(), 1))}),
              IsRejection(0, RejectReason::kCurrencyMismatch));
  EXPECT_THAT(ApplyRejected({NewHold(kEuro, kLoan, Money::FromMinor(Eur(), 1))}),
              IsRejection(0, RejectReason::kCurrencyMismatch));
}

TEST_F(LedgerEngineTest, ClientIdTakenInLedgerRejected) {
  EXPECT_THAT(ApplyRejected({WithId(Posted(kCash, kLoan, Usd(1)), kExistingId.value())}),
              IsRejection(0, RejectReason::kIdAlreadyExists));
  EXPECT_THAT(ApplyRejected({WithId(Posted(kCash, kLoan, Usd(1)), kLoadedHold.value())}),
              IsRejection(0, RejectReason::kIdAlreadyExists));
  EXPECT_THAT(
      ApplyRejected({WithId(Resolve(kOpenHold, PendingAction::kVoid), kExistingId.value())}),
      IsRejection(0, RejectReason::kIdAlreadyExists));
}

TEST_F(LedgerEngineTest, ClientIdTakenByEarlierBatchOfTheGroupRejected) {
  ApplyOk({WithId(Posted(kCash, kLoan, Usd(1)), 60)});
  EXPECT_THAT(ApplyRejected({WithId(Posted(kCash, kLoan, Usd(1)), 60)}),
              IsRejection(0, RejectReason::kIdAlreadyExists));
}

TEST_F(LedgerEngineTest, AllocatedIdAlreadyTakenRejectedNotCrashed) {
  ApplyOk({WithId(Posted(kCash, kLoan, Usd(1)), 1000)});
  EXPECT_THAT(ApplyRejected({Posted(kCash, kLoan, Usd(1))}),
              IsRejection(0, RejectReason::kIdAlreadyExists));
}

TEST_F(LedgerEngineTest, WalletOverdraftRejectedAndWorkingSetUnchanged) {
  // Wallet: 100.00 credited, 30.00 held: 70.00 available.
  const WorkingSet before = working_;
  Rejection r = ApplyRejected({Posted(kWallet, kLoan, Usd(7'001), TransferCode::kDonation)});
  EXPECT_THAT(r, IsRejection(0, RejectReason::kExceedsCredits));
  EXPECT_EQ(r.detail, "account 2 available 70.00 USD < 70.01 USD");
  EXPECT_EQ(r.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(working_ == before);
  EXPECT_EQ(Acc(kWallet), *before.FindAccount(kWallet));
  EXPECT_TRUE(working_.TakeCommitSet().empty());
}

TEST_F(LedgerEngineTest, WalletMayBeDrainedExactly) {
  ApplyOk({Posted(kWallet, kLoan, Usd(7'000), TransferCode::kDonation)});
  EXPECT_EQ(Acc(kWallet).available(), 0);
  EXPECT_THAT(ApplyRejected({Posted(kWallet, kLoan, Usd(1), TransferCode::kDonation)}),
              IsRejection(0, RejectReason::kExceedsCredits));
}

TEST_F(LedgerEngineTest, HoldCountsAgainstAvailable) {
  ApplyOk({NewHold(kWallet, kLoan, Usd(6'000))});
  EXPECT_THAT(ApplyRejected({NewHold(kWallet, kLoan, Usd(1'001))}),
              IsRejection(0, RejectReason::kExceedsCredits));
  EXPECT_THAT(ApplyRejected({Posted(kWallet, kLoan, Usd(1'001), TransferCode::kDonation)}),
              IsRejection(0, RejectReason::kExceedsCredits));
}

TEST_F(LedgerEngineTest, CreditsMustNotExceedDebitsRejectsExcessCredit) {
  // Capped: 50.00 debited, nothing credited.
  ApplyOk({Posted(kCash, kCapped, Usd(4'000))});
  Rejection r = ApplyRejected({NewHold(kCash, kCapped, Usd(1'001))});
  EXPECT_THAT(r, IsRejection(0, RejectReason::kExceedsDebits));
  EXPECT_THAT(r.detail, HasSubstr("10.00 USD < 10.01 USD"));
  ApplyOk({Posted(kCash, kCapped, Usd(1'000))});
}

TEST_F(LedgerEngineTest, TotalBeyondInt64RejectedAsAmountInvalid) {
  const int64_t max = std::numeric_limits<int64_t>::max();
  ApplyOk({Posted(kCash, kLoan, Usd(max - 10'000))});  // cash debits_posted now max
  EXPECT_EQ(Acc(kCash).debits_posted, max);
  EXPECT_THAT(ApplyRejected({Posted(kCash, kLoan, Usd(1))}),
              IsRejection(0, RejectReason::kAmountInvalid));
  EXPECT_THAT(ApplyRejected({Posted(kLoan, kCash, Usd(max))}),
              IsRejection(0, RejectReason::kAmountInvalid));
}

TEST_F(LedgerEngineTest, HoldReservesPendingTotalsAndExpires) {
  std::vector<Transfer> applied = ApplyOk({NewHold(kWallet, kLoan, Usd(1'000), 60'000)});
  ASSERT_EQ(applied.size(), 1u);
  EXPECT_EQ(applied[0].type, TransferType::kPending);
  EXPECT_EQ(applied[0].expires_at, kNow + absl::Minutes(1));
  EXPECT_EQ(Acc(kWallet).debits_pending, 4'000);
  EXPECT_EQ(Acc(kWallet).debits_posted, 0);
  EXPECT_EQ(Acc(kLoan).credits_pending, 4'500);
  const Hold& hold = HoldOf(applied[0].id);
  EXPECT_EQ(hold.state, HoldState::kPending);
  EXPECT_EQ(hold.transfer, applied[0]);
}

TEST_F(LedgerEngineTest, HoldWithoutTimeoutNeverExpires) {
  std::vector<Transfer> applied = ApplyOk({NewHold(kWallet, kLoan, Usd(1'000))});
  EXPECT_EQ(applied.at(0).expires_at, std::nullopt);
  ApplyOk({Resolve(applied[0].id, PendingAction::kPost)}, kNow + absl::Hours(24 * 365));
}

TEST_F(LedgerEngineTest, HoldThenPartialPostReleasesTheRest) {
  std::vector<Transfer> applied = ApplyOk({Resolve(kLoadedHold, PendingAction::kPost, Usd(1'200))});
  ASSERT_EQ(applied.size(), 1u);
  const Transfer& t = applied[0];
  EXPECT_EQ(t.type, TransferType::kPostPending);
  EXPECT_EQ(t.pending_id, kLoadedHold);
  EXPECT_EQ(t.amount, Usd(1'200));
  EXPECT_EQ(t.debit_account_id, kWallet);
  EXPECT_EQ(t.credit_account_id, kLoan);
  EXPECT_EQ(Acc(kWallet).debits_pending, 0);
  EXPECT_EQ(Acc(kWallet).debits_posted, 1'200);
  EXPECT_EQ(Acc(kWallet).available(), 8'800);
  EXPECT_EQ(Acc(kLoan).credits_pending, 500);
  EXPECT_EQ(Acc(kLoan).credits_posted, 1'200);
  const Hold& hold = HoldOf(kLoadedHold);
  EXPECT_EQ(hold.state, HoldState::kPosted);
  EXPECT_EQ(hold.posted_amount, 1'200);
  EXPECT_EQ(hold.resolved_by, t.id);
}

TEST_F(LedgerEngineTest, PostWithoutAmountPostsTheWholeHold) {
  std::vector<Transfer> applied = ApplyOk({Resolve(kLoadedHold, PendingAction::kPost)});
  EXPECT_EQ(applied.at(0).amount, Usd(3'000));
  EXPECT_EQ(HoldOf(kLoadedHold).posted_amount, 3'000);
  EXPECT_EQ(Acc(kWallet).debits_posted, 3'000);
}

TEST_F(LedgerEngineTest, PostOfMoreThanTheHoldRejected) {
  EXPECT_THAT(ApplyRejected({Resolve(kLoadedHold, PendingAction::kPost, Usd(3'001))}),
              IsRejection(0, RejectReason::kExceedsPendingAmount));
  ApplyOk({Resolve(kLoadedHold, PendingAction::kPost, Usd(3'000))});
}

TEST_F(LedgerEngineTest, ResolutionInAnotherCurrencyRejected) {
  EXPECT_THAT(
      ApplyRejected({Resolve(kLoadedHold, PendingAction::kPost, Money::FromMinor(Eur(), 100))}),
      IsRejection(0, RejectReason::kCurrencyMismatch));
}

TEST_F(LedgerEngineTest, HoldThenVoidReleasesIt) {
  std::vector<Transfer> applied = ApplyOk({Resolve(kLoadedHold, PendingAction::kVoid)});
  ASSERT_EQ(applied.size(), 1u);
  EXPECT_EQ(applied[0].type, TransferType::kVoidPending);
  EXPECT_EQ(applied[0].amount, Usd(3'000));
  EXPECT_EQ(Acc(kWallet).debits_pending, 0);
  EXPECT_EQ(Acc(kWallet).debits_posted, 0);
  EXPECT_EQ(Acc(kWallet).available(), 10'000);
  EXPECT_EQ(Acc(kLoan).credits_pending, 500);
  EXPECT_EQ(Acc(kLoan).credits_posted, 0);
  EXPECT_EQ(HoldOf(kLoadedHold).state, HoldState::kVoided);
  EXPECT_EQ(HoldOf(kLoadedHold).resolved_by, applied[0].id);
}

TEST_F(LedgerEngineTest, VoidAmountMustBeTheWholeHold) {
  EXPECT_THAT(ApplyRejected({Resolve(kLoadedHold, PendingAction::kVoid, Usd(1'000))}),
              IsRejection(0, RejectReason::kAmountInvalid));
  ApplyOk({Resolve(kLoadedHold, PendingAction::kVoid, Usd(3'000))});
}

TEST_F(LedgerEngineTest, HoldResolvesAtMostOnce) {
  ApplyOk({Resolve(kLoadedHold, PendingAction::kPost, Usd(1))});
  EXPECT_THAT(ApplyRejected({Resolve(kLoadedHold, PendingAction::kPost)}),
              IsRejection(0, RejectReason::kPendingTransferAlreadyPosted));
  EXPECT_THAT(ApplyRejected({Resolve(kLoadedHold, PendingAction::kVoid)}),
              IsRejection(0, RejectReason::kPendingTransferAlreadyPosted));
  ApplyOk({Resolve(kOpenHold, PendingAction::kVoid)});
  EXPECT_THAT(ApplyRejected({Resolve(kOpenHold, PendingAction::kVoid)}),
              IsRejection(0, RejectReason::kPendingTransferAlreadyVoided));
  EXPECT_THAT(ApplyRejected({Resolve(kOpenHold, PendingAction::kPost)}),
              IsRejection(0, RejectReason::kPendingTransferAlreadyVoided));
}

TEST_F(LedgerEngineTest, ResolvingTwiceInOneBatchRejectedAtTheSecond) {
  EXPECT_THAT(ApplyRejected({Resolve(kLoadedHold, PendingAction::kPost),
                             Resolve(kLoadedHold, PendingAction::kVoid)}),
              IsRejection(1, RejectReason::kPendingTransferAlreadyPosted));
  EXPECT_EQ(HoldOf(kLoadedHold).state, HoldState::kPending);
}

TEST_F(LedgerEngineTest, ResolutionAtOrAfterExpiresAtRejectedAsExpired) {
  const absl::Time expires_at = kNow + absl::Hours(1);
  EXPECT_THAT(ApplyRejected({Resolve(kLoadedHold, PendingAction::kPost)}, expires_at),
              IsRejection(0, RejectReason::kPendingTransferExpired));
  EXPECT_THAT(
      ApplyRejected({Resolve(kLoadedHold, PendingAction::kVoid)}, expires_at + absl::Seconds(1)),
      IsRejection(0, RejectReason::kPendingTransferExpired));
  ApplyOk({Resolve(kLoadedHold, PendingAction::kPost)}, expires_at - absl::Nanoseconds(1));
}

TEST_F(LedgerEngineTest, ExpirySpecMarksTheHoldExpired) {
  std::vector<Transfer> applied =
      ApplyOk({LedgerEngine::ExpirySpec(kLoadedHold)}, kNow + absl::Hours(1));
  ASSERT_EQ(applied.size(), 1u);
  EXPECT_EQ(applied[0].type, TransferType::kVoidPending);
  EXPECT_EQ(HoldOf(kLoadedHold).state, HoldState::kExpired);
  EXPECT_EQ(Acc(kWallet).debits_pending, 0);
  EXPECT_THAT(ApplyRejected({Resolve(kLoadedHold, PendingAction::kPost)}, kNow),
              IsRejection(0, RejectReason::kPendingTransferExpired));
}

TEST_F(LedgerEngineTest, ExpirySpecOnHoldNotPastExpiryRejected) {
  EXPECT_THAT(ApplyRejected({LedgerEngine::ExpirySpec(kLoadedHold)},
                            kNow + absl::Hours(1) - absl::Nanoseconds(1)),
              IsRejection(0, RejectReason::kShapeInvalid));
  EXPECT_THAT(ApplyRejected({LedgerEngine::ExpirySpec(kOpenHold)}, kNow + absl::Hours(1000)),
              IsRejection(0, RejectReason::kShapeInvalid));
}

TEST_F(LedgerEngineTest, UnknownHoldRejected) {
  EXPECT_THAT(ApplyRejected({Resolve(HoldId(12345), PendingAction::kPost)}),
              IsRejection(0, RejectReason::kPendingTransferNotFound));
  // A posted transfer is not a hold.
  ApplyOk({WithId(Posted(kCash, kLoan, Usd(1)), 70)});
  EXPECT_THAT(ApplyRejected({Resolve(HoldId(70), PendingAction::kVoid)}),
              IsRejection(0, RejectReason::kPendingTransferNotFound));
}

TEST(LedgerEngineLoadTest, LoadedPostedTransferIsATakenIdButNotAHold) {
  Loaded loaded = MakeLoaded();
  Hold posted = MakeHold(HoldId(950), kCash, kLoan, 100, std::nullopt);
  posted.transfer.type = TransferType::kPosted;
  loaded.holds.push_back(posted);
  WorkingSet working(std::move(loaded));
  EXPECT_EQ(working.FindHold(HoldId(950)), nullptr);
  EXPECT_TRUE(working.TransferIdTaken(TransferId(950)));
  BatchContext context{kNow, "req", [] { return TransferId(5000); }};
  auto result =
      LedgerEngine::ApplyBatch({Resolve(HoldId(950), PendingAction::kVoid)}, context, working);
  ASSERT_TRUE(std::holds_alternative<Rejection>(result));
  EXPECT_THAT(std::get<Rejection>(result), IsRejection(0, RejectReason::kPendingTransferNotFound));
}

TEST_F(LedgerEngineTest, ResolutionAccountsMustBeTheHolds) {
  TransferSpec wrong_debit = Resolve(kLoadedHold, PendingAction::kPost);
  wrong_debit.debit_account_id = kCash;
  EXPECT_THAT(ApplyRejected({wrong_debit}), IsRejection(0, RejectReason::kPendingAccountsMismatch));
  TransferSpec wrong_credit = Resolve(kLoadedHold, PendingAction::kVoid);
  wrong_credit.credit_account_id = kCash;
  EXPECT_THAT(ApplyRejected({wrong_credit}),
              IsRejection(0, RejectReason::kPendingAccountsMismatch));
  TransferSpec same = Resolve(kLoadedHold, PendingAction::kPost);
  same.debit_account_id = kWallet;
  same.credit_account_id = kLoan;
  ApplyOk({same});
}

TEST_F(LedgerEngineTest, ResolutionCopiesCodeAndReferencesUnlessGiven) {
  TransferSpec post = Resolve(kLoadedHold, PendingAction::kPost, Usd(100));
  std::vector<Transfer> copied = ApplyOk({post});
  EXPECT_EQ(copied.at(0).code, TransferCode::kLoanShare);
  EXPECT_EQ(copied.at(0).references.loan_id, kLoanId);
  TransferSpec void_spec = Resolve(kOpenHold, PendingAction::kVoid);
  void_spec.code = TransferCode::kCorrection;
  void_spec.references.order_id = OrderId(3);
  std::vector<Transfer> given = ApplyOk({void_spec});
  EXPECT_EQ(given.at(0).code, TransferCode::kCorrection);
  EXPECT_EQ(given.at(0).references.order_id, OrderId(3));
  EXPECT_EQ(given.at(0).references.loan_id, std::nullopt);
}

TEST_F(LedgerEngineTest, ResolutionWithLoanCodeButNoLoanRejected) {
  std::vector<Transfer> hold = ApplyOk({NewHold(kCash, kLoan, Usd(100))});  // ORDER_ESCROW
  TransferSpec post = Resolve(hold.at(0).id, PendingAction::kPost);
  post.code = TransferCode::kLoanShare;
  EXPECT_THAT(ApplyRejected({post}), IsRejection(0, RejectReason::kReferenceMissing));
  post.references.loan_id = kLoanId;
  ApplyOk({post});
}

TEST_F(LedgerEngineTest, HoldCreatedAndPostedInTheSameBatch) {
  std::vector<Transfer> applied = ApplyOk({WithId(NewHold(kWallet, kLoan, Usd(2'000)), 40),
                                           Resolve(HoldId(40), PendingAction::kPost, Usd(1'500))});
  ASSERT_EQ(applied.size(), 2u);
  EXPECT_EQ(applied[1].pending_id, HoldId(40));
  EXPECT_EQ(HoldOf(HoldId(40)).state, HoldState::kPosted);
  EXPECT_EQ(Acc(kWallet).debits_pending, 3'000);
  EXPECT_EQ(Acc(kWallet).debits_posted, 1'500);
  CommitSet commit = working_.TakeCommitSet();
  ASSERT_EQ(commit.holds.size(), 1u);
  EXPECT_EQ(commit.holds[0].state, HoldState::kPosted);
  EXPECT_EQ(commit.holds[0].transfer.type, TransferType::kPending);
}

TEST_F(LedgerEngineTest, ResolvingAHoldCreatedLaterInTheBatchRejected) {
  EXPECT_THAT(ApplyRejected({Resolve(HoldId(41), PendingAction::kVoid),
                             WithId(NewHold(kCash, kLoan, Usd(1)), 41)}),
              IsRejection(0, RejectReason::kPendingTransferNotFound));
}

TEST_F(LedgerEngineTest, ThirdItemFailingLeavesTheWorkingSetAsBefore) {
  ApplyOk({Posted(kCash, kLoan, Usd(1))});  // an earlier batch of the same group
  const WorkingSet before = working_;
  const int64_t id_before = next_id_;
  Rejection r = ApplyRejected({WithId(NewHold(kWallet, kLoan, Usd(1'000)), 42),
                               Resolve(kLoadedHold, PendingAction::kPost, Usd(1'000)),
                               Posted(kWallet, kLoan, Usd(10'000), TransferCode::kDonation)});
  EXPECT_THAT(r, IsRejection(2, RejectReason::kExceedsCredits));
  EXPECT_TRUE(working_ == before);
  EXPECT_EQ(working_.FindHold(HoldId(42)), nullptr);
  EXPECT_FALSE(working_.TransferIdTaken(TransferId(42)));
  EXPECT_EQ(HoldOf(kLoadedHold).state, HoldState::kPending);
  EXPECT_EQ(next_id_, id_before + 1) << "the resolution took an id before item 2 failed";
  CommitSet commit = working_.TakeCommitSet();
  ASSERT_EQ(commit.transfers.size(), 1u);
  EXPECT_EQ(commit.transfers[0].amount, Usd(1));
  EXPECT_THAT(commit.holds, IsEmpty());
  EXPECT_EQ(commit.events.size(), 1u);
}

TEST_F(LedgerEngineTest, LaterBatchesApplyAfterARejectedOne) {
  ApplyRejected({Posted(kWallet, kLoan, Usd(99'999), TransferCode::kDonation)});
  ApplyOk({Posted(kWallet, kLoan, Usd(100), TransferCode::kDonation)});
  EXPECT_EQ(Acc(kWallet).debits_posted, 100);
}

TEST_F(LedgerEngineTest, TakeCommitSetSortsTouchedRowsAndEmptiesTheWorkingSet) {
  ApplyOk({Posted(kLoan, kCash, Usd(1), TransferCode::kCorrection),
           Resolve(kOpenHold, PendingAction::kVoid), Resolve(kLoadedHold, PendingAction::kPost),
           Posted(kCash, kWallet, Usd(3))});
  CommitSet commit = working_.TakeCommitSet();
  ASSERT_EQ(commit.transfers.size(), 4u);
  for (size_t i = 0; i < commit.transfers.size(); ++i) {
    EXPECT_EQ(commit.transfers[i].batch_index, static_cast<int32_t>(i));
    EXPECT_EQ(commit.events[i].event_id, absl::StrCat("transfer-", commit.transfers[i].id.value()));
  }
  std::vector<AccountId> accounts;
  for (const Account& a : commit.accounts) accounts.push_back(a.id);
  EXPECT_THAT(accounts, ElementsAre(kCash, kWallet, kLoan));
  EXPECT_EQ(commit.accounts[1], Acc(kWallet));
  ASSERT_EQ(commit.holds.size(), 2u);
  EXPECT_EQ(commit.holds[0].transfer.id, kLoadedHold);
  EXPECT_EQ(commit.holds[1].transfer.id, kOpenHold);
  CommitSet again = working_.TakeCommitSet();
  EXPECT_TRUE(again.empty());
  EXPECT_EQ(Acc(kWallet).debits_posted, 3'000) << "taking keeps the totals for later batches";
}

TEST_F(LedgerEngineTest, TransferEventCarriesTheTransferAsJson) {
  TransferSpec share = Resolve(kLoadedHold, PendingAction::kPost, Usd(2'500));
  share.memo = "basket";
  std::vector<Transfer> applied = ApplyOk({WithId(share, 31)});
  CommitSet commit = working_.TakeCommitSet();
  ASSERT_EQ(commit.events.size(), 1u);
  // The committer writes the event by reference: the balances right after the transfer.
  const OutboxEvent& by_ref = commit.events[0];
  EXPECT_EQ(by_ref.event_id, "transfer-31");
  EXPECT_EQ(by_ref.kind, "transfer_committed");
  EXPECT_EQ(by_ref.account_id, kWallet);
  EXPECT_EQ(by_ref.created_at, kNow);
  EXPECT_EQ(by_ref.payload, "");
  EXPECT_EQ(by_ref.ref, (TransferEventRef{.transfer_id = TransferId(31),
                                          .debit_balance = Acc(kWallet).balance(),
                                          .debit_available = Acc(kWallet).available(),
                                          .credit_balance = Acc(kLoan).balance(),
                                          .credit_available = Acc(kLoan).available()}));
  // Rendered later from the transfer and the accounts' owners, whatever their totals are then.
  Account wallet_later = Acc(kWallet);
  wallet_later.credits_posted += 1'000'000;
  const OutboxEvent event = RenderTransferEvent(by_ref, applied.at(0), wallet_later, Acc(kLoan));
  EXPECT_EQ(event, TransferEvent(applied.at(0), Acc(kWallet), Acc(kLoan)));
  EXPECT_FALSE(event.ref.has_value());
  const nlohmann::json json = nlohmann::json::parse(event.payload);
  EXPECT_EQ(json["id"], "31");
  EXPECT_EQ(json["type"], "post_pending");
  EXPECT_EQ(json["code"], "loan_share");
  EXPECT_EQ(json["debit_account_id"], "2");
  EXPECT_EQ(json["credit_account_id"], "3");
  EXPECT_EQ(json["amount"], "25.00");
  EXPECT_EQ(json["currency"], "USD");
  EXPECT_EQ(json["pending_id"], "900");
  EXPECT_EQ(json["references"], nlohmann::json({{"loan_id", "7"}}));
  EXPECT_EQ(json["created_at"], "2027-01-15T08:00:00Z");
  EXPECT_EQ(json["batch_request_id"], "req-1");
  EXPECT_EQ(json["batch_index"], 0);
  EXPECT_EQ(json["memo"], "basket");
  EXPECT_EQ(json["debit_owner"]["kind"], "lender_wallet");
  EXPECT_EQ(json["debit_owner"]["balance"], "75.00");
  EXPECT_EQ(json["debit_owner"]["available"], "75.00");
  EXPECT_EQ(event.payload.find('\n'), std::string::npos) << "compact JSON";
}

TEST_F(LedgerEngineTest, PostedTransferEventHasNoPendingId) {
  std::vector<Transfer> applied = ApplyOk({Posted(kCash, kWallet, Usd(1))});
  const nlohmann::json json =
      nlohmann::json::parse(TransferEvent(applied.at(0), Acc(kCash), Acc(kWallet)).payload);
  EXPECT_FALSE(json.contains("pending_id"));
  EXPECT_EQ(json["type"], "posted");
  EXPECT_EQ(json["code"], "deposit");
  EXPECT_EQ(json["references"], nlohmann::json::object());
  EXPECT_EQ(json["created_at"], "2027-01-15T08:00:00Z");
  Transfer later = applied.at(0);
  later.created_at = kNow + absl::Milliseconds(1'500);
  EXPECT_EQ(
      nlohmann::json::parse(TransferEvent(later, Acc(kCash), Acc(kWallet)).payload)["created_at"],
      "2027-01-15T08:00:01.5Z");
}

TEST_F(LedgerEngineTest, CollectReferencesNamesAccountsHoldsAndClientIdsOnce) {
  LoadRequest request;
  request.accounts = {kLoan};
  LedgerEngine::CollectReferences(
      {WithId(Posted(kWallet, kLoan, Usd(1)), 12), Resolve(kLoadedHold, PendingAction::kPost),
       Posted(kCash, kWallet, Usd(1))},
      &request);
  EXPECT_THAT(request.accounts, ElementsAre(kCash, kWallet, kLoan));
  EXPECT_THAT(request.holds, ElementsAre(kLoadedHold));
  EXPECT_THAT(request.client_ids, ElementsAre(TransferId(12)));
}

TEST_F(LedgerEngineTest, IdsNeededCountsItemsWithoutClientId) {
  EXPECT_EQ(LedgerEngine::IdsNeeded({WithId(Posted(kWallet, kLoan, Usd(1)), 12),
                                     Resolve(kLoadedHold, PendingAction::kPost),
                                     Posted(kCash, kWallet, Usd(1))}),
            2u);
  EXPECT_EQ(LedgerEngine::IdsNeeded({}), 0u);
}

TEST_F(LedgerEngineTest, ExpirySpecVoidsTheHold) {
  TransferSpec spec = LedgerEngine::ExpirySpec(kOpenHold);
  EXPECT_EQ(spec.pending_id, kOpenHold);
  EXPECT_EQ(spec.pending_action, PendingAction::kVoid);
  EXPECT_TRUE(spec.expiry);
  EXPECT_EQ(LedgerEngine::ValidateShape({spec}), std::nullopt);
}

// A USD 100.00 loan (kLoanId) with its funding account, 60.00 posted and 10.00 held.
WorkingSet LoanWorkingSet(LoanStatus status) {
  Loaded loaded = MakeLoaded();
  Account funding = MakeAccount(kFunding, AccountKind::kLoanFunding);
  funding.owner_type = OwnerType::kLoan;
  funding.owner_id = absl::StrCat(kLoanId.value());
  funding.credits_posted = 6'000;
  funding.credits_pending = 1'000;
  loaded.accounts.push_back(funding);
  LoanMoney loan;
  loan.id = kLoanId;
  loan.status = status;
  loan.usd_amount_minor = 10'000;
  loan.funding_account_id = kFunding;
  loaded.loans.push_back(loan);
  return WorkingSet(std::move(loaded));
}

std::variant<std::vector<Transfer>, Rejection> ApplyToLoan(WorkingSet& working, TransferSpec spec) {
  int64_t next = 5'000;
  BatchContext context{kNow, "req-loan", [&next] { return TransferId(next++); }};
  return LedgerEngine::ApplyBatch({std::move(spec)}, context, working);
}

TransferSpec Share(int64_t cents, bool pending = false) {
  TransferSpec s = Posted(kWallet, kFunding, Usd(cents), TransferCode::kLoanShare);
  s.references.loan_id = kLoanId;
  s.pending = pending;
  return s;
}

TEST(LedgerEngineLoanTest, ASharePostsWhileFundedPlusHeldStaysWithinTheLoanAmount) {
  WorkingSet working = LoanWorkingSet(LoanStatus::kFundraising);
  auto applied = ApplyToLoan(working, Share(3'000));  // 60 + 10 held + 30 = 100
  ASSERT_TRUE(std::holds_alternative<std::vector<Transfer>>(applied));
  EXPECT_EQ(working.FindAccount(kFunding)->credits_posted, 9'000);
}

TEST(LedgerEngineLoanTest, AShareOrHoldBeyondTheRemainingAmountIsOverfundingAndChangesNothing) {
  for (bool pending : {false, true}) {
    WorkingSet working = LoanWorkingSet(LoanStatus::kFundraising);
    const WorkingSet before = working;
    auto applied = ApplyToLoan(working, Share(3'001, pending));
    ASSERT_TRUE(std::holds_alternative<Rejection>(applied));
    EXPECT_EQ(std::get<Rejection>(applied).reason, RejectReason::kLoanOverfunded);
    EXPECT_THAT(std::get<Rejection>(applied).detail, HasSubstr("has 30.00 USD left"));
    EXPECT_TRUE(working == before);
  }
}

TEST(LedgerEngineLoanTest, AShareToALoanNotFundraisingIsRefusedNamingItsStatus) {
  WorkingSet working = LoanWorkingSet(LoanStatus::kFunded);
  auto applied = ApplyToLoan(working, Share(100));
  ASSERT_TRUE(std::holds_alternative<Rejection>(applied));
  EXPECT_EQ(std::get<Rejection>(applied).reason, RejectReason::kLoanNotFundraising);
  EXPECT_THAT(std::get<Rejection>(applied).detail, HasSubstr("FUNDED"));
}

TEST(LedgerEngineLoanTest, OnlySharesAndMatchesCreditALoanFundingAccount) {
  WorkingSet working = LoanWorkingSet(LoanStatus::kFundraising);
  TransferSpec deposit = Posted(kCash, kFunding, Usd(100), TransferCode::kCorrection);
  auto applied = ApplyToLoan(working, deposit);
  ASSERT_TRUE(std::holds_alternative<Rejection>(applied));
  EXPECT_EQ(std::get<Rejection>(applied).reason, RejectReason::kShapeInvalid);
}

TEST(LedgerEngineLoanTest, AShareNamingAnotherLoanThanTheAccountsIsRefused) {
  WorkingSet working = LoanWorkingSet(LoanStatus::kFundraising);
  TransferSpec share = Share(100);
  share.references.loan_id = LoanId(8);
  auto applied = ApplyToLoan(working, share);
  ASSERT_TRUE(std::holds_alternative<Rejection>(applied));
  EXPECT_EQ(std::get<Rejection>(applied).reason, RejectReason::kShapeInvalid);
}

TEST(LedgerEngineLoanTest, AShareToALoanThatWasNotLoadedIsLoanNotFound) {
  Loaded loaded = MakeLoaded();
  Account funding = MakeAccount(kFunding, AccountKind::kLoanFunding);
  funding.owner_type = OwnerType::kLoan;
  funding.owner_id = absl::StrCat(kLoanId.value());
  loaded.accounts.push_back(funding);
  WorkingSet working(std::move(loaded));
  auto applied = ApplyToLoan(working, Share(100));
  ASSERT_TRUE(std::holds_alternative<Rejection>(applied));
  EXPECT_EQ(std::get<Rejection>(applied).reason, RejectReason::kLoanNotFound);
}

TEST(LedgerEngineLoanTest, CollectReferencesAsksForTheLoansASpecNames) {
  LoadRequest request;
  LedgerEngine::CollectReferences({Share(100), Share(200)}, &request);
  EXPECT_THAT(request.loans, ElementsAre(kLoanId));
}

TEST(LedgerEngineDeathTest, ResolvingAHoldWhoseAccountsAreNotLoadedCrashes) {
  Loaded loaded;
  loaded.holds = {MakeHold(kLoadedHold, kWallet, kLoan, 100, std::nullopt)};
  WorkingSet working(std::move(loaded));
  BatchContext context{kNow, "req", [] { return TransferId(1); }};
  EXPECT_DEATH(
      LedgerEngine::ApplyBatch({Resolve(kLoadedHold, PendingAction::kVoid)}, context, working),
      "load a hold's accounts with it");
}

TEST(RejectCode, FollowsTheProtoGroups) {
  EXPECT_EQ(RejectCode(RejectReason::kAmountInvalid), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RejectCode(RejectReason::kReferenceMissing), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RejectCode(RejectReason::kDuplicateIdInBatch), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RejectCode(RejectReason::kDebitAccountNotFound), absl::StatusCode::kNotFound);
  EXPECT_EQ(RejectCode(RejectReason::kLoanNotFound), absl::StatusCode::kNotFound);
  EXPECT_EQ(RejectCode(RejectReason::kIdAlreadyExists), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(RejectCode(RejectReason::kExceedsCredits), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(RejectCode(RejectReason::kLoanNotFundraising), absl::StatusCode::kFailedPrecondition);
  for (int value = 1; value <= 48; ++value) {
    const auto reason = static_cast<RejectReason>(value);
    const bool known = value <= 8 || (value >= 20 && value <= 23) || value == 30 || value >= 40;
    if (!known) continue;
    const absl::StatusCode code = RejectCode(reason);
    const absl::StatusCode want = value <= 8    ? absl::StatusCode::kInvalidArgument
                                  : value <= 23 ? absl::StatusCode::kNotFound
                                  : value == 30 ? absl::StatusCode::kAlreadyExists
                                                : absl::StatusCode::kFailedPrecondition;
    EXPECT_EQ(code, want) << "reason " << value;
  }
}

// ---- credits by increment (ADR 0011) ----------------------------------------------------------

TransferSpec ByIncrement(AccountId debit, AccountId credit, int64_t cents) {
  TransferSpec s = Posted(debit, credit, Usd(cents), TransferCode::kRepayment);
  s.references.loan_id = kLoanId;
  s.credit_by_increment = true;
  return s;
}

TEST_F(LedgerEngineTest, CreditsByIncrementToUnloadedAccountsAddUpPerAccountWithRelativeEvents) {
  constexpr AccountId kFunderA{50};
  constexpr AccountId kFunderB{51};
  std::vector<Transfer> applied = ApplyOk({ByIncrement(kCash, kFunderB, 300),
                                           ByIncrement(kCash, kFunderA, 200),
                                           ByIncrement(kCash, kFunderB, 5)});
  ASSERT_EQ(applied.size(), 3u);
  EXPECT_EQ(applied[0].credit_account_id, kFunderB);
  EXPECT_EQ(applied[2].id, TransferId(1002));
  EXPECT_EQ(Acc(kCash).debits_posted, 10'000 + 505);
  EXPECT_EQ(working_.FindAccount(kFunderA), nullptr) << "an unloaded account stays unloaded";
  CommitSet commit = working_.TakeCommitSet();
  EXPECT_THAT(commit.credit_increments,
              ElementsAre(CreditIncrement{kFunderA, Currency::Usd(), 200},
                          CreditIncrement{kFunderB, Currency::Usd(), 305}));
  ASSERT_EQ(commit.accounts.size(), 1u);
  EXPECT_EQ(commit.accounts[0].id, kCash);
  ASSERT_EQ(commit.events.size(), 3u);
  const TransferEventRef& last = *commit.events[2].ref;
  EXPECT_TRUE(last.credit_by_increment);
  EXPECT_EQ(last.credit_balance, 305) << "what the commit added to B so far";
  EXPECT_EQ(last.debit_balance, Acc(kCash).balance());
  EXPECT_EQ(commit.events[0].ref->credit_balance, 300);
  EXPECT_EQ(commit.events[1].ref->credit_balance, 200);
  EXPECT_THAT(commit.funder_credits, ElementsAre(TransferId(1000), TransferId(1001), TransferId(1002)));
}

TEST_F(LedgerEngineTest, CreditByIncrementToALoadedAccountIsAnOrdinaryCredit) {
  ApplyOk({ByIncrement(kCash, kWallet, 700)});
  EXPECT_EQ(Acc(kWallet).credits_posted, 10'000 + 700);
  CommitSet commit = working_.TakeCommitSet();
  EXPECT_THAT(commit.credit_increments, IsEmpty());
  ASSERT_EQ(commit.events.size(), 1u);
  EXPECT_FALSE(commit.events[0].ref->credit_by_increment);
  EXPECT_EQ(commit.events[0].ref->credit_balance, 10'700);
  EXPECT_THAT(commit.funder_credits, ElementsAre(TransferId(1000)))
      << "still one of the desk's credits to a funder";
}

TEST_F(LedgerEngineTest, AnUnloadedCreditWithoutTheInternalFlagIsCreditAccountNotFound) {
  TransferSpec plain = ByIncrement(kCash, kMissing, 100);
  plain.credit_by_increment = false;
  EXPECT_THAT(ApplyRejected({plain}), IsRejection(0, RejectReason::kCreditAccountNotFound));
  TransferSpec held = ByIncrement(kCash, kMissing, 100);
  held.pending = true;
  EXPECT_THAT(ApplyRejected({held}), IsRejection(0, RejectReason::kCreditAccountNotFound))
      << "a hold cannot credit by increment";
}

TEST_F(LedgerEngineTest, ARejectedBatchTakesBackItsCreditsByIncrement) {
  constexpr AccountId kFunderA{50};
  ApplyOk({ByIncrement(kCash, kFunderA, 100)});
  // The wallet has 70.00 available: the second item exceeds it and the batch is refused whole.
  Rejection r = ApplyRejected({ByIncrement(kCash, kFunderA, 1), ByIncrement(kWallet, kFunderA, 7'001)});
  EXPECT_THAT(r, IsRejection(1, RejectReason::kExceedsCredits));
  CommitSet commit = working_.TakeCommitSet();
  EXPECT_THAT(commit.credit_increments, ElementsAre(CreditIncrement{kFunderA, Currency::Usd(), 100}));
  EXPECT_THAT(commit.funder_credits, ElementsAre(TransferId(1000)));
}

TEST_F(LedgerEngineTest, CreditByIncrementChecksTheDebitCurrencyAndClientId) {
  EXPECT_THAT(ApplyRejected({ByIncrement(kEuro, kMissing, 100)}),
              IsRejection(0, RejectReason::kCurrencyMismatch));
  EXPECT_THAT(ApplyRejected({WithId(ByIncrement(kCash, kMissing, 100), kExistingId.value())}),
              IsRejection(0, RejectReason::kIdAlreadyExists));
}

}  // namespace
}  // namespace microlend::lending
