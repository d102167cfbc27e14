#include "services/lending/proto_convert.h"

#include <google/protobuf/any.pb.h>
#include <google/protobuf/descriptor.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <openssl/evp.h>

#include <algorithm>
#include <charconv>
#include <memory>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "common/check.h"
#include "common/status_macros.h"
#include "server/grpc_status.h"

namespace microlend::lending {
namespace {

namespace pb = ::google::protobuf;

// The domain enums are declared with the proto numbering; these keep the checked casts honest.
static_assert(static_cast<int>(OwnerType::kExternalSettlement) ==
              v1::ACCOUNT_OWNER_TYPE_EXTERNAL_SETTLEMENT);
static_assert(static_cast<int>(AccountKind::kExternalCash) == v1::ACCOUNT_KIND_EXTERNAL_CASH);
static_assert(static_cast<int>(TransferCode::kSponsorFunding) == v1::TRANSFER_CODE_SPONSOR_FUNDING);
static_assert(kMaxTransferCode == v1::TransferCode_MAX);
static_assert(static_cast<int>(TransferType::kVoidPending) == v1::TRANSFER_TYPE_VOID_PENDING);
static_assert(static_cast<int>(HoldState::kExpired) == v1::HOLD_STATE_EXPIRED);
static_assert(static_cast<int>(PendingAction::kVoid) == v1::PENDING_ACTION_VOID);
static_assert(static_cast<int>(RejectReason::kReferenceMissing) ==
              v1::TRANSFER_REJECT_REASON_REFERENCE_MISSING);
static_assert(static_cast<int>(RejectReason::kLoanNotFound) ==
              v1::TRANSFER_REJECT_REASON_LOAN_NOT_FOUND);
static_assert(static_cast<int>(RejectReason::kIdAlreadyExists) ==
              v1::TRANSFER_REJECT_REASON_ID_ALREADY_EXISTS);
static_assert(static_cast<int>(RejectReason::kLoanNotFundraising) ==
              v1::TRANSFER_REJECT_REASON_LOAN_NOT_FUNDRAISING);

// google.protobuf.Timestamp's range: 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59Z.
constexpr int64_t kMinTimestampSeconds = -62135596800;
constexpr int64_t kMaxTimestampSeconds = 253402300799;

std::string TypeUrl(const pb::Message& message) {
  return absl::StrCat("type.googleapis.com/", message.GetDescriptor()->full_name());
}

template <typename Domain>
absl::StatusOr<std::optional<Domain>> ParseEnum(int wire, bool (*is_valid)(int),
                                                const pb::EnumDescriptor* descriptor,
                                                std::string_view field) {
  if (wire == 0) return std::optional<Domain>();
  if (!is_valid(wire)) {
    return FieldError(field, absl::StrCat("unknown ", descriptor->name(), " value ", wire));
  }
  return std::optional<Domain>(static_cast<Domain>(wire));
}

// A strictly positive decimal int64 without sign or leading zero; nullopt otherwise.
std::optional<int64_t> ParseCursor(std::string_view text) {
  int64_t value = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (text.empty() || text[0] == '0' || ec != std::errc() || ptr != end || value <= 0) {
    return std::nullopt;
  }
  return value;
}

std::string FieldPath(std::string_view prefix, std::string_view name) {
  return prefix.empty() ? std::string(name) : absl::StrCat(AsAbsl(prefix), ".", AsAbsl(name));
}

absl::StatusOr<TransferReferences> ParseReferences(const v1::TransferReferences& in,
                                                   std::string_view prefix) {
  auto field = [prefix](std::string_view name) { return FieldPath(prefix, name); };
  TransferReferences out;
  ML_ASSIGN_OR_RETURN(out.loan_id, ParseOptionalId<LoanId>(in.loan_id(), field("loan_id")));
  ML_ASSIGN_OR_RETURN(out.order_id, ParseOptionalId<OrderId>(in.order_id(), field("order_id")));
  ML_ASSIGN_OR_RETURN(out.repayment_id,
                      ParseOptionalId<RepaymentId>(in.repayment_id(), field("repayment_id")));
  ML_ASSIGN_OR_RETURN(out.withdrawal_id,
                      ParseOptionalId<WithdrawalId>(in.withdrawal_id(), field("withdrawal_id")));
  ML_ASSIGN_OR_RETURN(out.campaign_id,
                      ParseOptionalId<CampaignId>(in.campaign_id(), field("campaign_id")));
  out.external_payment_id = in.external_payment_id();
  return out;
}

// The ids, the pending action and the references of a spec: a malformed one is SHAPE_INVALID.
absl::Status ParseSpecShape(const v1::TransferSpec& in, std::string_view prefix,
                            TransferSpec& out) {
  auto field = [prefix](std::string_view name) { return FieldPath(prefix, name); };
  ML_ASSIGN_OR_RETURN(out.id, ParseOptionalId<TransferId>(in.id(), field("id")));
  ML_RETURN_IF_ERROR(CheckClientChosenId(out.id, field("id")));
  ML_ASSIGN_OR_RETURN(out.debit_account_id,
                      ParseOptionalId<AccountId>(in.debit_account_id(), field("debit_account_id")));
  ML_ASSIGN_OR_RETURN(
      out.credit_account_id,
      ParseOptionalId<AccountId>(in.credit_account_id(), field("credit_account_id")));
  ML_ASSIGN_OR_RETURN(out.pending_id,
                      ParseOptionalId<TransferId>(in.pending_id(), field("pending_id")));
  ML_ASSIGN_OR_RETURN(
      std::optional<PendingAction> action,
      ParseEnum<PendingAction>(in.pending_action(), v1::PendingAction_IsValid,
                               v1::PendingAction_descriptor(), field("pending_action")));
  out.pending_action = action.value_or(PendingAction::kNone);
  ML_ASSIGN_OR_RETURN(out.references, ParseReferences(in.references(), field("references")));
  return absl::OkStatus();
}

// A spec field that failed to parse, with the reject reason a batch client will see for it.
struct SpecError {
  absl::Status status;
  RejectReason reason;
};

// Fills `out` from `in`; nullopt on success. `prefix` is e.g. "transfers[3]".
std::optional<SpecError> ParseSpecFields(const v1::TransferSpec& in, std::string_view prefix,
                                         TransferSpec& out) {
  if (absl::Status shape = ParseSpecShape(in, prefix, out); !shape.ok()) {
    return SpecError{shape, RejectReason::kShapeInvalid};
  }
  absl::StatusOr<std::optional<Money>> amount =
      ParseOptionalPositiveMoney(in.amount(), FieldPath(prefix, "amount"));
  if (!amount.ok()) return SpecError{amount.status(), RejectReason::kAmountInvalid};
  out.amount = *amount;
  const std::string code_field = FieldPath(prefix, "code");
  absl::StatusOr<std::optional<TransferCode>> code = ParseTransferCode(in.code(), code_field);
  if (!code.ok()) return SpecError{code.status(), RejectReason::kShapeInvalid};
  const bool resolution = out.pending_id.has_value() || out.pending_action != PendingAction::kNone;
  if (!code->has_value() && !resolution) {
    return SpecError{FieldError(code_field, "is required unless the item resolves a hold"),
                     RejectReason::kCodeMissing};
  }
  out.code = *code;
  out.pending = in.pending();
  out.timeout_ms = in.timeout_ms();
  out.memo = in.memo();
  return std::nullopt;
}

}  // namespace

// ---- Errors and details -----------------------------------------------------------------------

absl::Status FieldError(std::string_view field, std::string_view description) {
  common::v1::FieldViolations violations;
  common::v1::FieldViolations::Violation* violation = violations.add_violations();
  violation->set_field(std::string(field));
  violation->set_description(std::string(description));
  return AttachDetail(
      absl::InvalidArgumentError(absl::StrCat(AsAbsl(field), ": ", AsAbsl(description))),
      violations);
}

absl::Status AttachDetail(absl::Status status, const pb::Message& detail) {
  if (status.ok()) return status;
  status.SetPayload(TypeUrl(detail), absl::Cord(detail.SerializeAsString()));
  return status;
}

common::v1::RpcStatus ToRpcStatus(const absl::Status& status) {
  common::v1::RpcStatus out;
  out.set_code(static_cast<int32_t>(status.code()));
  out.set_message(std::string(status.message()));
  status.ForEachPayload([&out](absl::string_view type_url, const absl::Cord& payload) {
    pb::Any* any = out.add_details();
    any->set_type_url(std::string(type_url));
    any->set_value(std::string(payload));
  });
  return out;
}

grpc::Status ToGrpcStatusWithDetails(const absl::Status& status) {
  bool has_payload = false;
  status.ForEachPayload(
      [&has_payload](absl::string_view, const absl::Cord&) { has_payload = true; });
  if (status.ok() || !has_payload) return ToGrpcStatus(status);
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()),
                      ToRpcStatus(status).SerializeAsString());
}

// ---- Scalars ----------------------------------------------------------------------------------

absl::StatusOr<Money> ParseMoney(const common::v1::Money& money, std::string_view field) {
  absl::StatusOr<Money> parsed = Money::Parse(money.amount(), money.currency());
  if (!parsed.ok()) return FieldError(field, AsStd(parsed.status().message()));
  return parsed;
}

absl::StatusOr<Money> ParsePositiveMoney(const common::v1::Money& money, std::string_view field) {
  ML_ASSIGN_OR_RETURN(Money parsed, ParseMoney(money, field));
  if (!parsed.is_positive()) {
    return FieldError(field, absl::StrCat("amount must be positive, got \"", money.amount(), "\""));
  }
  return parsed;
}

absl::StatusOr<std::optional<Money>> ParseOptionalPositiveMoney(const common::v1::Money& money,
                                                                std::string_view field) {
  if (money.amount().empty() && money.currency().empty()) return std::optional<Money>();
  ML_ASSIGN_OR_RETURN(Money parsed, ParsePositiveMoney(money, field));
  return std::optional<Money>(parsed);
}

void ToProto(const Money& money, common::v1::Money* out) {
  out->set_amount(money.ToString());
  out->set_currency(std::string(money.currency().code()));
}

absl::StatusOr<absl::Time> ParseTime(const pb::Timestamp& timestamp, std::string_view field) {
  if (timestamp.seconds() < kMinTimestampSeconds || timestamp.seconds() > kMaxTimestampSeconds) {
    return FieldError(
        field, absl::StrCat("seconds ", timestamp.seconds(), " is outside 0001-01-01..9999-12-31"));
  }
  if (timestamp.nanos() < 0 || timestamp.nanos() > 999'999'999) {
    return FieldError(field, absl::StrCat("nanos ", timestamp.nanos(), " is outside 0..999999999"));
  }
  return absl::FromUnixSeconds(timestamp.seconds()) + absl::Nanoseconds(timestamp.nanos());
}

void ToProto(absl::Time time, pb::Timestamp* out) {
  const int64_t seconds = absl::ToUnixSeconds(time);  // rounds toward the infinite past
  out->set_seconds(seconds);
  out->set_nanos(
      static_cast<int32_t>(absl::ToInt64Nanoseconds(time - absl::FromUnixSeconds(seconds))));
}

// ---- Enums ------------------------------------------------------------------------------------

absl::StatusOr<std::optional<OwnerType>> ParseOwnerType(int wire, std::string_view field) {
  return ParseEnum<OwnerType>(wire, v1::AccountOwnerType_IsValid, v1::AccountOwnerType_descriptor(),
                              field);
}

absl::StatusOr<std::optional<AccountKind>> ParseAccountKind(int wire, std::string_view field) {
  return ParseEnum<AccountKind>(wire, v1::AccountKind_IsValid, v1::AccountKind_descriptor(), field);
}

absl::StatusOr<std::optional<TransferCode>> ParseTransferCode(int wire, std::string_view field) {
  return ParseEnum<TransferCode>(wire, v1::TransferCode_IsValid, v1::TransferCode_descriptor(),
                                 field);
}

absl::StatusOr<std::optional<TransferType>> ParseTransferType(int wire, std::string_view field) {
  return ParseEnum<TransferType>(wire, v1::TransferType_IsValid, v1::TransferType_descriptor(),
                                 field);
}

absl::StatusOr<std::optional<WithdrawalState>> ParseWithdrawalStatus(int wire,
                                                                     std::string_view field) {
  switch (wire) {
    case v1::WITHDRAWAL_STATUS_UNSPECIFIED:
      return std::optional<WithdrawalState>();
    case v1::WITHDRAWAL_STATUS_REQUESTED:
      return std::optional(WithdrawalState::kRequested);
    case v1::WITHDRAWAL_STATUS_APPROVED:
      return std::optional(WithdrawalState::kApproved);
    case v1::WITHDRAWAL_STATUS_REJECTED:
      return std::optional(WithdrawalState::kRejected);
    case v1::WITHDRAWAL_STATUS_PAID:
      return std::optional(WithdrawalState::kPaid);
    case v1::WITHDRAWAL_STATUS_CANCELLED:
      return std::optional(WithdrawalState::kCancelled);
  }
  return FieldError(field, absl::StrCat("unknown WithdrawalStatus value ", wire));
}

v1::WithdrawalStatus ToProto(WithdrawalState state) {
  switch (state) {
    case WithdrawalState::kRequested:
      return v1::WITHDRAWAL_STATUS_REQUESTED;
    case WithdrawalState::kApproved:
      return v1::WITHDRAWAL_STATUS_APPROVED;
    case WithdrawalState::kPaid:
      return v1::WITHDRAWAL_STATUS_PAID;
    case WithdrawalState::kRejected:
      return v1::WITHDRAWAL_STATUS_REJECTED;
    case WithdrawalState::kCancelled:
      return v1::WITHDRAWAL_STATUS_CANCELLED;
  }
  return v1::WITHDRAWAL_STATUS_UNSPECIFIED;
}

std::string TransferCodeName(TransferCode code) {
  constexpr std::string_view kPrefix = "TRANSFER_CODE_";
  std::string name = v1::TransferCode_Name(static_cast<v1::TransferCode>(code));
  if (absl::StartsWith(name, AsAbsl(kPrefix))) name.erase(0, kPrefix.size());
  absl::AsciiStrToLower(&name);
  return name;
}

absl::Status ParseTimeRange(const pb::Timestamp* from, const pb::Timestamp* to,
                            std::string_view prefix, TransferFilter* filter) {
  if (from != nullptr) {
    ML_ASSIGN_OR_RETURN(filter->from_time, ParseTime(*from, FieldPath(prefix, "from_time")));
  }
  if (to != nullptr) {
    ML_ASSIGN_OR_RETURN(filter->to_time, ParseTime(*to, FieldPath(prefix, "to_time")));
  }
  if (filter->from_time && filter->to_time && *filter->from_time > *filter->to_time) {
    return FieldError(FieldPath(prefix, "from_time"),
                      absl::StrCat("is after to_time (", absl::FormatTime(*filter->from_time),
                                   " > ", absl::FormatTime(*filter->to_time), ")"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<TransferCode>> ParseTransferCodes(const pb::RepeatedField<int>& codes,
                                                             std::string_view field) {
  std::vector<TransferCode> out;
  out.reserve(codes.size());
  for (int i = 0; i < codes.size(); ++i) {
    const std::string path = absl::StrCat(AsAbsl(field), "[", i, "]");
    ML_ASSIGN_OR_RETURN(std::optional<TransferCode> code, ParseTransferCode(codes[i], path));
    if (!code.has_value()) return FieldError(path, "TRANSFER_CODE_UNSPECIFIED is not a code");
    out.push_back(*code);
  }
  return out;
}

// ---- Ledger objects ---------------------------------------------------------------------------

absl::StatusOr<TransferSpec> ParseTransferSpec(const v1::TransferSpec& spec, int index,
                                               std::string_view list_field) {
  TransferSpec out;
  // First without the item's path, so that a valid item (nearly all of a 10,000-item batch)
  // builds no field paths; only a bad one is parsed again to name its field in full.
  if (!ParseSpecFields(spec, "", out).has_value()) return out;
  const std::string prefix = absl::StrCat(AsAbsl(list_field), "[", index, "]");
  out = TransferSpec{};
  std::optional<SpecError> error = ParseSpecFields(spec, prefix, out);
  if (!error.has_value()) {  // cannot happen (parsing does not depend on the path); stay safe
    error = SpecError{FieldError(prefix, "is malformed"), RejectReason::kShapeInvalid};
  }
  v1::TransferBatchRejection rejection;
  rejection.set_item_index(index);
  rejection.set_reason(static_cast<v1::TransferRejectReason>(error->reason));
  rejection.set_detail(std::string(error->status.message()));
  return AttachDetail(error->status, rejection);
}

void ToProto(const TransferReferences& references, v1::TransferReferences* out) {
  if (references.loan_id) IdToProto(*references.loan_id, out->mutable_loan_id());
  if (references.order_id) IdToProto(*references.order_id, out->mutable_order_id());
  if (references.repayment_id) IdToProto(*references.repayment_id, out->mutable_repayment_id());
  if (references.withdrawal_id) {
    IdToProto(*references.withdrawal_id, out->mutable_withdrawal_id());
  }
  if (references.campaign_id) IdToProto(*references.campaign_id, out->mutable_campaign_id());
  out->set_external_payment_id(references.external_payment_id);
}

void ToProto(const Account& account, v1::Account* out) {
  out->Clear();
  const Currency currency = account.currency;
  IdToProto(account.id, out->mutable_id());
  out->set_owner_type(static_cast<v1::AccountOwnerType>(account.owner_type));
  out->set_owner_id(account.owner_id);
  out->set_kind(static_cast<v1::AccountKind>(account.kind));
  out->set_currency(std::string(currency.code()));
  out->mutable_flags()->set_debits_must_not_exceed_credits(
      account.flags.debits_must_not_exceed_credits);
  out->mutable_flags()->set_credits_must_not_exceed_debits(
      account.flags.credits_must_not_exceed_debits);
  ToProto(Money::FromMinor(currency, account.debits_posted), out->mutable_debits_posted());
  ToProto(Money::FromMinor(currency, account.credits_posted), out->mutable_credits_posted());
  ToProto(Money::FromMinor(currency, account.debits_pending), out->mutable_debits_pending());
  ToProto(Money::FromMinor(currency, account.credits_pending), out->mutable_credits_pending());
  ToProto(Money::FromMinor(currency, account.balance()), out->mutable_balance());
  ToProto(Money::FromMinor(currency, account.available()), out->mutable_available());
  out->set_memo(account.memo);
  ToProto(account.created_at, out->mutable_created_at());
}

void ToProto(const Transfer& transfer, v1::Transfer* out) {
  out->Clear();
  IdToProto(transfer.id, out->mutable_id());
  IdToProto(transfer.debit_account_id, out->mutable_debit_account_id());
  IdToProto(transfer.credit_account_id, out->mutable_credit_account_id());
  ToProto(transfer.amount, out->mutable_amount());
  out->set_code(static_cast<v1::TransferCode>(transfer.code));
  ToProto(transfer.references, out->mutable_references());
  out->set_type(static_cast<v1::TransferType>(transfer.type));
  if (transfer.pending_id) IdToProto(*transfer.pending_id, out->mutable_pending_id());
  out->set_timeout_ms(transfer.timeout_ms);
  if (transfer.expires_at) ToProto(*transfer.expires_at, out->mutable_expires_at());
  out->set_memo(transfer.memo);
  ToProto(transfer.created_at, out->mutable_created_at());
  out->set_batch_request_id(transfer.batch_request_id);
  out->set_batch_index(transfer.batch_index);
}

void ToProto(const Hold& hold, v1::Transfer* out) {
  ToProto(hold.transfer, out);
  if (hold.transfer.type != TransferType::kPending) return;
  out->set_hold_state(static_cast<v1::HoldState>(hold.state));
  if (hold.state != HoldState::kPending) {
    ToProto(Money::FromMinor(hold.transfer.amount.currency(), hold.posted_amount),
            out->mutable_posted_amount());
  }
}

void ToProto(const Withdrawal& withdrawal, v1::Withdrawal* out) {
  out->Clear();
  IdToProto(withdrawal.id, out->mutable_id());
  IdToProto(withdrawal.lender_id, out->mutable_lender_id());
  ToProto(withdrawal.amount, out->mutable_amount());
  out->set_status(ToProto(withdrawal.state));
  IdToProto(withdrawal.hold_id, out->mutable_hold_id());
  out->set_external_payment_id(withdrawal.external_payment_id);
  out->set_reason(withdrawal.reason);
  out->set_destination(withdrawal.destination);
  ToProto(withdrawal.created_at, out->mutable_requested_at());
  switch (withdrawal.state) {
    case WithdrawalState::kRequested:
      break;
    case WithdrawalState::kApproved:
    case WithdrawalState::kRejected:
    case WithdrawalState::kCancelled:
      ToProto(withdrawal.updated_at, out->mutable_decided_at());
      break;
    case WithdrawalState::kPaid:
      ToProto(withdrawal.updated_at, out->mutable_paid_at());
      break;
  }
}

void ToProto(const Rejection& rejection, v1::TransferBatchRejection* out) {
  out->set_item_index(rejection.item_index);
  out->set_reason(static_cast<v1::TransferRejectReason>(rejection.reason));
  out->set_detail(rejection.detail);
}

// ---- FromProto --------------------------------------------------------------------------------

namespace {

absl::StatusOr<int64_t> ParseTotal(const common::v1::Money& money, Currency currency,
                                   std::string_view field) {
  ML_ASSIGN_OR_RETURN(Money parsed, ParseMoney(money, field));
  if (parsed.currency() != currency) {
    return FieldError(field, absl::StrCat("currency ", money.currency(), " differs from the ",
                                          AsAbsl(currency.code()), " of the account"));
  }
  return parsed.minor_units();
}

template <typename T>
absl::StatusOr<T> Required(absl::StatusOr<std::optional<T>> value, std::string_view field) {
  if (!value.ok()) return value.status();
  if (!value->has_value()) return FieldError(field, "is required");
  return **value;
}

}  // namespace

absl::StatusOr<Account> FromProto(const v1::Account& in) {
  Account out;
  ML_ASSIGN_OR_RETURN(out.id, ParseRequiredId<AccountId>(in.id(), "id"));
  ML_ASSIGN_OR_RETURN(out.owner_type,
                      Required(ParseOwnerType(in.owner_type(), "owner_type"), "owner_type"));
  out.owner_id = in.owner_id();
  ML_ASSIGN_OR_RETURN(out.kind, Required(ParseAccountKind(in.kind(), "kind"), "kind"));
  absl::StatusOr<Currency> currency = Currency::FromCode(in.currency());
  if (!currency.ok()) return FieldError("currency", AsStd(currency.status().message()));
  out.currency = *currency;
  out.flags.debits_must_not_exceed_credits = in.flags().debits_must_not_exceed_credits();
  out.flags.credits_must_not_exceed_debits = in.flags().credits_must_not_exceed_debits();
  ML_ASSIGN_OR_RETURN(out.debits_posted,
                      ParseTotal(in.debits_posted(), out.currency, "debits_posted"));
  ML_ASSIGN_OR_RETURN(out.credits_posted,
                      ParseTotal(in.credits_posted(), out.currency, "credits_posted"));
  ML_ASSIGN_OR_RETURN(out.debits_pending,
                      ParseTotal(in.debits_pending(), out.currency, "debits_pending"));
  ML_ASSIGN_OR_RETURN(out.credits_pending,
                      ParseTotal(in.credits_pending(), out.currency, "credits_pending"));
  out.memo = in.memo();
  ML_ASSIGN_OR_RETURN(out.created_at, ParseTime(in.created_at(), "created_at"));
  return out;
}

absl::StatusOr<Transfer> FromProto(const v1::Transfer& in) {
  Transfer out;
  ML_ASSIGN_OR_RETURN(out.id, ParseRequiredId<TransferId>(in.id(), "id"));
  ML_ASSIGN_OR_RETURN(out.debit_account_id,
                      ParseRequiredId<AccountId>(in.debit_account_id(), "debit_account_id"));
  ML_ASSIGN_OR_RETURN(out.credit_account_id,
                      ParseRequiredId<AccountId>(in.credit_account_id(), "credit_account_id"));
  ML_ASSIGN_OR_RETURN(out.amount, ParseMoney(in.amount(), "amount"));
  ML_ASSIGN_OR_RETURN(out.code, Required(ParseTransferCode(in.code(), "code"), "code"));
  ML_ASSIGN_OR_RETURN(out.references, ParseReferences(in.references(), "references"));
  ML_ASSIGN_OR_RETURN(out.type, Required(ParseTransferType(in.type(), "type"), "type"));
  ML_ASSIGN_OR_RETURN(out.pending_id, ParseOptionalId<TransferId>(in.pending_id(), "pending_id"));
  out.timeout_ms = in.timeout_ms();
  if (in.has_expires_at()) {
    ML_ASSIGN_OR_RETURN(out.expires_at, ParseTime(in.expires_at(), "expires_at"));
  }
  out.memo = in.memo();
  ML_ASSIGN_OR_RETURN(out.created_at, ParseTime(in.created_at(), "created_at"));
  out.batch_request_id = in.batch_request_id();
  out.batch_index = in.batch_index();
  return out;
}

// ---- Paging -----------------------------------------------------------------------------------

absl::StatusOr<PageSpec> ParsePage(const common::v1::PageRequest& page, PageKind kind,
                                   bool newest_first) {
  if (page.page_size() < 0) {
    return FieldError("page.page_size",
                      absl::StrCat("must not be negative, got ", page.page_size()));
  }
  const int32_t cap = kind == PageKind::kExport ? kMaxExportPageSize : kMaxPageSize;
  PageSpec out;
  out.limit = page.page_size() == 0 ? kDefaultPageSize : std::min(page.page_size(), cap);
  out.newest_first = newest_first;
  if (!page.page_token().empty()) {
    std::optional<int64_t> cursor = ParseCursor(page.page_token());
    if (!cursor.has_value()) {
      return FieldError("page.page_token",
                        "bad page_token: pass the next_page_token of the previous response "
                        "unchanged, or leave it empty for the first page");
    }
    out.after_id = *cursor;
  }
  return out;
}

void ToPageResponse(int64_t next_after_id, int64_t total_count, common::v1::PageResponse* out) {
  out->set_next_page_token(next_after_id > 0 ? std::to_string(next_after_id) : "");
  out->set_total_count(total_count);
}

// ---- Idempotency ------------------------------------------------------------------------------

namespace {

std::string DeterministicBytes(const pb::Message& message) {
  std::string bytes;
  pb::io::StringOutputStream stream(&bytes);
  pb::io::CodedOutputStream coded(&stream);
  coded.SetSerializationDeterministic(true);
  message.SerializeToCodedStream(&coded);
  coded.Trim();
  return bytes;
}

bool IsLastField(const pb::Descriptor& message, const pb::FieldDescriptor& field) {
  for (int i = 0; i < message.field_count(); ++i) {
    if (message.field(i)->number() > field.number()) return false;
  }
  return true;
}

// The request's bytes without the fields that are not part of its identity: `request_id`, and
// `ids_only` (how the caller wants the answer shown, TransferBatch). Generated code writes fields
// in number order; every request keeps request_id as field 1 and ids_only is a batch's last, so
// those are a prefix and a suffix of the bytes, cut off without copying the (possibly
// 10,000-item) request. Anything else clears them on a copy.
std::string BytesOfIdentity(const pb::Message& request) {
  const pb::Descriptor& type = *request.GetDescriptor();
  const pb::Reflection& reflection = *request.GetReflection();
  const pb::FieldDescriptor* id_field = type.FindFieldByName("request_id");
  const pb::FieldDescriptor* view_field = type.FindFieldByName("ids_only");
  const std::string id = id_field != nullptr && id_field->type() == pb::FieldDescriptor::TYPE_STRING
                             ? reflection.GetString(request, id_field)
                             : std::string();
  const bool view = view_field != nullptr && view_field->type() == pb::FieldDescriptor::TYPE_BOOL &&
                    reflection.GetBool(request, view_field);
  const bool id_is_prefix =
      id_field == nullptr || (id_field->number() == 1 &&
                              id_field->type() == pb::FieldDescriptor::TYPE_STRING && id.size() < 128);
  const bool view_is_suffix =
      !view || (view_field->number() < 16 && IsLastField(type, *view_field) &&
                reflection.GetUnknownFields(request).empty());
  if (id_is_prefix && view_is_suffix) {
    std::string bytes = DeterministicBytes(request);
    // Field 1 length-delimited (tag 0x0a), a one-byte length (under 128), the id.
    const std::string prefix =
        id.empty() ? std::string() : std::string(1, '\x0a') + static_cast<char>(id.size()) + id;
    // The bool's tag (field number, varint wire type: one byte under 16), then 1.
    const std::string suffix =
        view ? std::string{static_cast<char>(view_field->number() << 3), '\x01'} : std::string();
    if (bytes.size() >= prefix.size() + suffix.size() && bytes.compare(0, prefix.size(), prefix) == 0 &&
        bytes.compare(bytes.size() - suffix.size(), suffix.size(), suffix) == 0) {
      return bytes.substr(prefix.size(), bytes.size() - prefix.size() - suffix.size());
    }
  }
  std::unique_ptr<pb::Message> copy(request.New());
  copy->CopyFrom(request);
  if (id_field != nullptr) copy->GetReflection()->ClearField(copy.get(), id_field);
  if (view_field != nullptr && view_field->type() == pb::FieldDescriptor::TYPE_BOOL) {
    copy->GetReflection()->ClearField(copy.get(), view_field);
  }
  return DeterministicBytes(*copy);
}

}  // namespace

std::string BodyHash(const pb::Message& request) {
  const std::string bytes = BytesOfIdentity(request);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  const int ok = EVP_Digest(bytes.data(), bytes.size(), digest, &length, EVP_sha256(), nullptr);
  ML_CHECK(ok == 1 && length == 32, "EVP_Digest(SHA-256) failed");
  return std::string(reinterpret_cast<const char*>(digest), length);
}

std::string EncodeRejection(const Rejection& rejection) {
  v1::TransferBatchRejection out;
  ToProto(rejection, &out);
  return out.SerializeAsString();
}

absl::Status ReplyStatus(const LedgerReply& reply) {
  if (reply.status.ok()) return reply.status;
  v1::TransferBatchRejection rejection;
  if (reply.rejection.has_value()) {
    ToProto(*reply.rejection, &rejection);
    return AttachDetail(reply.status, rejection);
  }
  if (reply.replayed && !reply.payload.empty() && rejection.ParseFromString(reply.payload)) {
    return AttachDetail(reply.status, rejection);
  }
  return reply.status;
}

std::optional<v1::TransferBatchRejection> RejectionDetail(const absl::Status& status) {
  auto payload = status.GetPayload(TypeUrl(v1::TransferBatchRejection::default_instance()));
  v1::TransferBatchRejection rejection;
  if (!payload.has_value() || !rejection.ParseFromString(std::string(*payload))) {
    return std::nullopt;
  }
  return rejection;
}

}  // namespace microlend::lending
