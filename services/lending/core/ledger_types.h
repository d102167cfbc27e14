// The ledger's domain types: accounts, transfer specs (commands), committed transfers, holds,
// rejections. Plain values, no I/O; enum values match the lending.v1 proto numbering so the
// adapter converts with a checked cast.
//
// Amounts inside the ledger are int64 minor units of the account's currency (Money at the
// edges). Balances: balance = credits_posted - debits_posted; available = balance -
// debits_pending. The engine keeps every total within int64 with checked adds.
#ifndef MICROLEND_SERVICES_LENDING_CORE_LEDGER_TYPES_H_
#define MICROLEND_SERVICES_LENDING_CORE_LEDGER_TYPES_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/currency.h"
#include "common/ids.h"
#include "common/money.h"

namespace microlend::lending {

using HoldId = TransferId;  // a hold is a pending transfer; its id is the transfer's

// lending.v1.LoanStatus numbering; kFundraising and later are public.
enum class LoanStatus {
  kDraft = 1, kReview = 2, kFundraising = 3, kFunded = 4, kPayingBack = 5, kEnded = 6,
  kExpired = 7, kRefunded = 8, kDefaulted = 9
};
// "FUNDRAISING", ... as in the proto without its prefix.
std::string_view LoanStatusName(LoanStatus status);

enum class OwnerType {
  kLender = 1,
  kPartner = 2,
  kLoan = 3,
  kPlatform = 4,
  kSponsor = 5,
  kExternalSettlement = 6,
};

enum class AccountKind {
  kLenderWallet = 1,
  kLoanFunding = 2,
  kPartnerSettlement = 3,
  kSponsorBudget = 4,
  kPlatformRevenue = 5,
  kPlatformEscrow = 6,
  kPlatformLoss = 7,
  kExternalCash = 8,
};

struct AccountFlags {
  bool debits_must_not_exceed_credits = false;
  bool credits_must_not_exceed_debits = false;
  friend bool operator==(const AccountFlags&, const AccountFlags&) = default;
};

struct Account {
  AccountId id{0};
  OwnerType owner_type = OwnerType::kPlatform;
  std::string owner_id;
  AccountKind kind = AccountKind::kPlatformRevenue;
  Currency currency = Currency::Usd();
  AccountFlags flags;
  int64_t debits_posted = 0;
  int64_t credits_posted = 0;
  int64_t debits_pending = 0;
  int64_t credits_pending = 0;
  std::string memo;
  absl::Time created_at;

  int64_t balance() const { return credits_posted - debits_posted; }
  int64_t available() const { return credits_posted - debits_posted - debits_pending; }
  friend bool operator==(const Account&, const Account&) = default;
};

// What opening an account asks for (ids assigned by the store when absent).
struct NewAccount {
  std::optional<AccountId> id;
  OwnerType owner_type = OwnerType::kPlatform;
  std::string owner_id;
  AccountKind kind = AccountKind::kPlatformRevenue;
  Currency currency = Currency::Usd();
  AccountFlags flags;
  std::string memo;
};

enum class TransferCode {
  kDeposit = 1,
  kLoanShare = 2,
  kDisbursement = 3,
  kRepayment = 4,
  kRefund = 5,
  kDonation = 6,
  kWithdrawal = 7,
  kCurrencyLoss = 8,
  kWriteOff = 9,
  kMatch = 10,
  kFee = 11,
  kCorrection = 12,
  kOrderEscrow = 13,
  kCurrencyLossCoverage = 14,
  kPartnerRemittance = 15,
  kSponsorFunding = 16,
};
inline constexpr int kMaxTransferCode = 16;

enum class TransferType { kPosted = 1, kPending = 2, kPostPending = 3, kVoidPending = 4 };
enum class HoldState { kPending = 1, kPosted = 2, kVoided = 3, kExpired = 4 };
enum class PendingAction { kNone = 0, kPost = 1, kVoid = 2 };

struct TransferReferences {
  std::optional<LoanId> loan_id;
  std::optional<OrderId> order_id;
  std::optional<RepaymentId> repayment_id;
  std::optional<WithdrawalId> withdrawal_id;
  std::optional<CampaignId> campaign_id;
  std::string external_payment_id;
  friend bool operator==(const TransferReferences&, const TransferReferences&) = default;
};

inline constexpr int64_t kMaxHoldTimeoutMs = int64_t{30} * 24 * 3600 * 1000;
inline constexpr size_t kMaxTransfersPerBatch = 10'000;
inline constexpr size_t kMaxMemoBytes = 256;

// One item of a linked batch, as the client asked (already parsed from the wire: ids and Money
// are well-formed, but nothing is checked against the ledger yet). Three shapes, see
// lending.proto TransferSpec: posted transfer, hold (pending = true), or hold resolution
// (pending_id + action).
struct TransferSpec {
  std::optional<TransferId> id;
  std::optional<AccountId> debit_account_id;
  std::optional<AccountId> credit_account_id;
  std::optional<Money> amount;
  std::optional<TransferCode> code;
  TransferReferences references;
  bool pending = false;
  int64_t timeout_ms = 0;
  std::optional<HoldId> pending_id;
  PendingAction pending_action = PendingAction::kNone;
  std::string memo;
  // Internal, never from the wire: set by the expiry sweep on a void of a hold past its
  // expires_at, which then ends kExpired instead of being rejected.
  bool expiry = false;
  // Internal, never from the wire: set by the withdrawal workflow, the only path allowed to
  // resolve a hold that belongs to a withdrawal (so a withdrawal and its hold never disagree).
  bool withdrawal_step = false;
  // Internal, never from the wire: set by the loan desk on its credits to a loan's funders
  // (repayments, refunds). A posted transfer whose credit account was not loaded then credits it
  // by increment (CommitSet::credit_increments, ADR 0011) instead of being rejected; the store
  // checks the account at write.
  bool credit_by_increment = false;
};

// A committed transfer. Immutable once written.
struct Transfer {
  TransferId id{0};
  AccountId debit_account_id{0};
  AccountId credit_account_id{0};
  Money amount = Money::Zero(Currency::Usd());
  TransferCode code = TransferCode::kCorrection;
  TransferReferences references;
  TransferType type = TransferType::kPosted;
  std::optional<HoldId> pending_id;  // for kPostPending / kVoidPending
  int64_t timeout_ms = 0;            // for kPending
  std::optional<absl::Time> expires_at;
  std::string memo;
  absl::Time created_at;
  std::string batch_request_id;
  int32_t batch_index = 0;
  friend bool operator==(const Transfer&, const Transfer&) = default;
};

// A hold: its pending transfer plus where it stands now. The state is the only mutable part of
// the ledger besides account totals, and it changes at most once (kPending -> final).
struct Hold {
  Transfer transfer;  // type kPending
  HoldState state = HoldState::kPending;
  int64_t posted_amount = 0;  // minor units, for kPosted
  std::optional<TransferId> resolved_by;
  friend bool operator==(const Hold&, const Hold&) = default;
};

enum class RejectReason {
  kAmountInvalid = 1,
  kSameAccount = 2,
  kCurrencyMismatch = 3,
  kCodeMissing = 4,
  kTimeoutInvalid = 5,
  kShapeInvalid = 6,
  kDuplicateIdInBatch = 7,
  kReferenceMissing = 8,
  kDebitAccountNotFound = 20,
  kCreditAccountNotFound = 21,
  kPendingTransferNotFound = 22,
  kLoanNotFound = 23,
  kIdAlreadyExists = 30,
  kExceedsCredits = 40,
  kExceedsDebits = 41,
  kPendingTransferAlreadyPosted = 42,
  kPendingTransferAlreadyVoided = 43,
  kPendingTransferExpired = 44,
  kExceedsPendingAmount = 45,
  kPendingAccountsMismatch = 46,
  kLoanOverfunded = 47,
  kLoanNotFundraising = 48,
};

// The gRPC-canonical code of a rejection (see lending.proto TransferRejectReason).
absl::StatusCode RejectCode(RejectReason reason);

// Why a batch was refused: the first failing item.
struct Rejection {
  int32_t item_index = 0;
  RejectReason reason = RejectReason::kShapeInvalid;
  std::string detail;
  absl::StatusCode code() const { return RejectCode(reason); }
  friend bool operator==(const Rejection&, const Rejection&) = default;
};

}  // namespace microlend::lending

#endif  // MICROLEND_SERVICES_LENDING_CORE_LEDGER_TYPES_H_
