#include "services/lending/core/ledger_types.h"

#include "absl/strings/str_cat.h"
#include "common/check.h"

namespace microlend::lending {

std::string_view LoanStatusName(LoanStatus status) {
  switch (status) {
    case LoanStatus::kDraft: return "DRAFT";
    case LoanStatus::kReview: return "REVIEW";
    case LoanStatus::kFundraising: return "FUNDRAISING";
    case LoanStatus::kFunded: return "FUNDED";
    case LoanStatus::kPayingBack: return "PAYING_BACK";
    case LoanStatus::kEnded: return "ENDED";
    case LoanStatus::kExpired: return "EXPIRED";
    case LoanStatus::kRefunded: return "REFUNDED";
    case LoanStatus::kDefaulted: return "DEFAULTED";
  }
  return "UNKNOWN";
}

// The codes are lending.proto's TransferRejectReason comments: 1-8 are a malformed item (fix the
// request), 20-23 name something that does not exist, 30 a taken id, 40-48 ledger state that
// forbids the item until it changes.
absl::StatusCode RejectCode(RejectReason reason) {
  switch (reason) {
    case RejectReason::kAmountInvalid:
    case RejectReason::kSameAccount:
    case RejectReason::kCurrencyMismatch:
    case RejectReason::kCodeMissing:
    case RejectReason::kTimeoutInvalid:
    case RejectReason::kShapeInvalid:
    case RejectReason::kDuplicateIdInBatch:
    case RejectReason::kReferenceMissing:
      return absl::StatusCode::kInvalidArgument;
    case RejectReason::kDebitAccountNotFound:
    case RejectReason::kCreditAccountNotFound:
    case RejectReason::kPendingTransferNotFound:
    case RejectReason::kLoanNotFound:
      return absl::StatusCode::kNotFound;
    case RejectReason::kIdAlreadyExists:
      return absl::StatusCode::kAlreadyExists;
    case RejectReason::kExceedsCredits:
    case RejectReason::kExceedsDebits:
    case RejectReason::kPendingTransferAlreadyPosted:
    case RejectReason::kPendingTransferAlreadyVoided:
    case RejectReason::kPendingTransferExpired:
    case RejectReason::kExceedsPendingAmount:
    case RejectReason::kPendingAccountsMismatch:
    case RejectReason::kLoanOverfunded:
    case RejectReason::kLoanNotFundraising:
      return absl::StatusCode::kFailedPrecondition;
  }
  ML_CHECK(false, absl::StrCat("unknown RejectReason ", static_cast<int>(reason)));
  return absl::StatusCode::kInternal;
}

}  // namespace microlend::lending
