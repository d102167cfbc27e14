// Conversions between the lending.v1 / common.v1 protos and the ledger's domain types, shared by
// the gRPC adapters (ledger_grpc, wallet_grpc). No I/O and no business rules: a Parse* function
// checks only what the wire format itself promises (strict Money, well-formed ids, known enum
// values, sane timestamps and page tokens); what the ledger decides stays in the core.
//
// Errors. Every Parse* returns InvalidArgument whose message starts with the request field path
// ("transfers[3].amount: amount \"1.234\" has 3 decimals but USD allows at most 2") and carries a
// common.v1.FieldViolations payload naming that field; ToGrpcStatusWithDetails turns status
// payloads into RpcStatus details in `grpc-status-details-bin`. A parse error inside a transfer
// spec also carries a TransferBatchRejection payload (the item and the closest reject reason),
// so batch clients read one detail type whatever refused the item.
//
// Idempotency payloads. A mutation's remembered result is the serialized response proto
// (success) or TransferBatchRejection (rejection); DecodeReply decodes either.
//
// All functions are pure and thread-safe.
#ifndef MICROLEND_SERVICES_LENDING_PROTO_CONVERT_H_
#define MICROLEND_SERVICES_LENDING_PROTO_CONVERT_H_

#include <google/protobuf/message.h>
#include <google/protobuf/repeated_field.h>
#include <google/protobuf/timestamp.pb.h>
#include <grpcpp/support/status.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/auth.h"
#include "common/money.h"
#include "common/strings.h"
#include "microlend/common/v1/common.pb.h"
#include "microlend/lending/v1/lending.pb.h"
#include "services/lending/core/ledger.h"
#include "services/lending/core/ledger_store.h"
#include "services/lending/core/ledger_types.h"

namespace microlend::lending {

// Ordinary lists default to 50 rows and cap at 100; lists documented as exports cap at 500.
inline constexpr int32_t kDefaultPageSize = 50;
inline constexpr int32_t kMaxPageSize = 100;
inline constexpr int32_t kMaxExportPageSize = 500;

// ---- Errors and details -----------------------------------------------------------------------

// InvalidArgument "<field>: <description>" with a FieldViolations payload for `field`.
absl::Status FieldError(std::string_view field, std::string_view description);
// `status` with `detail` attached as a payload (keyed by its type URL, replacing one of the same
// type). OK statuses are returned unchanged.
absl::Status AttachDetail(absl::Status status, const google::protobuf::Message& detail);
// The RpcStatus for `status`: code, message and every payload as an Any detail.
common::v1::RpcStatus ToRpcStatus(const absl::Status& status);
// Like ToGrpcStatus, plus `grpc-status-details-bin` (a serialized RpcStatus) when `status` has
// payloads.
grpc::Status ToGrpcStatusWithDetails(const absl::Status& status);

// ---- Scalars ----------------------------------------------------------------------------------

// Strict wire Money (Money::Parse, never rounded, no sign). Zero is accepted.
absl::StatusOr<Money> ParseMoney(const common::v1::Money& money, std::string_view field);
// As ParseMoney, and the amount must be positive.
absl::StatusOr<Money> ParsePositiveMoney(const common::v1::Money& money, std::string_view field);
// An optional positive Money: nullopt when both amount and currency are empty.
absl::StatusOr<std::optional<Money>> ParseOptionalPositiveMoney(const common::v1::Money& money,
                                                                std::string_view field);
void ToProto(const Money& money, common::v1::Money* out);

// An id wrapper message (common.v1.LoanId, AccountId, ...): nullopt when its value is empty.
template <typename IdT, typename ProtoId>
absl::StatusOr<std::optional<IdT>> ParseOptionalId(const ProtoId& proto, std::string_view field) {
  if (proto.value().empty()) return std::optional<IdT>();
  absl::StatusOr<IdT> id = IdT::Parse(proto.value(), field);
  if (!id.ok()) {
    return FieldError(field, absl::StrCat("\"", absl::CHexEscape(proto.value().substr(0, 64)),
                                          "\" is not a valid id (a positive decimal number)"));
  }
  return std::optional<IdT>(*id);
}
template <typename IdT, typename ProtoId>
absl::StatusOr<IdT> ParseRequiredId(const ProtoId& proto, std::string_view field) {
  if (proto.value().empty()) return FieldError(field, "is required");
  absl::StatusOr<std::optional<IdT>> id = ParseOptionalId<IdT>(proto, field);
  if (!id.ok()) return id.status();
  return **id;
}
template <typename IdT, typename ProtoId>
void IdToProto(IdT id, ProtoId* out) {
  out->set_value(id.ToString());
}

// Timestamps: seconds within 0001-01-01..9999-12-31 and nanos within 0..999,999,999.
absl::StatusOr<absl::Time> ParseTime(const google::protobuf::Timestamp& timestamp,
                                     std::string_view field);
void ToProto(absl::Time time, google::protobuf::Timestamp* out);

// ---- Enums (domain values share the proto numbering; unknown wire values are rejected) --------

// UNSPECIFIED (0) gives nullopt ("any" in filters); callers that need a value say so.
absl::StatusOr<std::optional<OwnerType>> ParseOwnerType(int wire, std::string_view field);
absl::StatusOr<std::optional<AccountKind>> ParseAccountKind(int wire, std::string_view field);
absl::StatusOr<std::optional<TransferCode>> ParseTransferCode(int wire, std::string_view field);
absl::StatusOr<std::optional<TransferType>> ParseTransferType(int wire, std::string_view field);
absl::StatusOr<std::optional<WithdrawalState>> ParseWithdrawalStatus(int wire,
                                                                     std::string_view field);
v1::WithdrawalStatus ToProto(WithdrawalState state);
// "loan_share" for kLoanShare: the TransferCode name without prefix, lower case.
std::string TransferCodeName(TransferCode code);

// The optional [from, to) bounds of a list into `filter`; InvalidArgument when from is after to.
// `prefix` is the path of the message holding them ("" or "filter").
absl::Status ParseTimeRange(const google::protobuf::Timestamp* from,
                            const google::protobuf::Timestamp* to, std::string_view prefix,
                            TransferFilter* filter);
// A repeated TransferCode filter; UNSPECIFIED and unknown values are InvalidArgument.
absl::StatusOr<std::vector<TransferCode>> ParseTransferCodes(
    const google::protobuf::RepeatedField<int>& codes, std::string_view field);

// ---- Ledger objects ---------------------------------------------------------------------------

// A transfer spec of a batch; `index` names it in errors ("transfers[3].amount: ...").
// `list_field` is the repeated field's name ("transfers").
absl::StatusOr<TransferSpec> ParseTransferSpec(const v1::TransferSpec& spec, int index,
                                               std::string_view list_field = "transfers");

// Each replaces *out entirely.
void ToProto(const Account& account, v1::Account* out);
void ToProto(const Transfer& transfer, v1::Transfer* out);
// The transfer, plus hold_state and posted_amount when it is a hold (type PENDING).
void ToProto(const Hold& hold, v1::Transfer* out);
void ToProto(const Withdrawal& withdrawal, v1::Withdrawal* out);
void ToProto(const Rejection& rejection, v1::TransferBatchRejection* out);
void ToProto(const TransferReferences& references, v1::TransferReferences* out);

// The inverse of ToProto for accounts and transfers (e.g. for clients of the stream and tests).
// InvalidArgument for malformed fields.
absl::StatusOr<Account> FromProto(const v1::Account& account);
absl::StatusOr<Transfer> FromProto(const v1::Transfer& transfer);

// ---- Paging -----------------------------------------------------------------------------------

enum class PageKind { kList, kExport };

// page_size 0 -> 50, capped at 100 (kList) or 500 (kExport), negative -> InvalidArgument;
// page_token empty -> first page, else the decimal cursor of a previous response; anything else
// is InvalidArgument "bad page_token".
absl::StatusOr<PageSpec> ParsePage(const common::v1::PageRequest& page, PageKind kind,
                                   bool newest_first = false);
void ToPageResponse(int64_t next_after_id, int64_t total_count, common::v1::PageResponse* out);

// ---- Idempotency ------------------------------------------------------------------------------

// SHA-256 (32 raw bytes) of the deterministic serialization of `request` with its top-level
// `request_id` field cleared: a retry with the same body hashes the same whatever its id. A
// top-level bool `ids_only` (how the answer is shown, not what is asked) is cleared too.
std::string BodyHash(const google::protobuf::Message& request);

// Ids a client chooses must stay below 2^62: the server's own ids count up from 1, and a chosen
// id near INT64_MAX would push the id sequence to its end and stop every later allocation.
inline constexpr int64_t kMaxClientChosenId = int64_t{1} << 62;
template <typename IdT>
absl::Status CheckClientChosenId(const std::optional<IdT>& id, std::string_view field) {
  if (id.has_value() && id->value() >= kMaxClientChosenId) {
    return FieldError(field, absl::StrCat("must be below ", kMaxClientChosenId));
  }
  return absl::OkStatus();
}

// The idempotency key of a mutation: request_id validated (InvalidArgument naming the field),
// scoped to the caller's subject, bound to the method and the body hash.
inline absl::StatusOr<RequestKey> MakeRequestKey(const Principal& caller,
                                                 const std::string& request_id,
                                                 std::string_view method,
                                                 const google::protobuf::Message& request) {
  if (absl::Status valid = ValidateRequestId(request_id); !valid.ok()) {
    return FieldError("request_id", AsStd(valid.message()));
  }
  // Request ids are scoped per principal: role and subject, so an ops user and a service that
  // share a subject never share an id space.
  return RequestKey{.caller = absl::StrCat(AsAbsl(RoleName(caller.role)), ":", caller.subject),
                    .request_id = request_id,
                    .method = std::string(method),
                    .body_hash = BodyHash(request)};
}

// The remembered payload of a rejected batch.
std::string EncodeRejection(const Rejection& rejection);

// A LedgerReply's status with its TransferBatchRejection attached (fresh rejection, or decoded
// from the payload of a remembered one). OK when the reply is OK.
absl::Status ReplyStatus(const LedgerReply& reply);

// The TransferBatchRejection attached to `status` (by ReplyStatus or ParseTransferSpec), if any.
std::optional<v1::TransferBatchRejection> RejectionDetail(const absl::Status& status);

// Maps a mutation's reply onto `response`: the remembered payload is the full response, so a
// replay answers exactly the original, with mutation.replayed = true. Errors keep their code and
// message and carry the rejection as a detail (see ReplyStatus).
template <typename Response>
absl::Status DecodeReply(const LedgerReply& reply, Response* response) {
  if (!reply.status.ok()) return ReplyStatus(reply);
  if (!response->ParseFromString(reply.payload)) {
    return absl::InternalError("the ledger's remembered result is unreadable");
  }
  if (reply.replayed) response->mutable_mutation()->set_replayed(true);
  return absl::OkStatus();
}

}  // namespace microlend::lending

#endif  // MICROLEND_SERVICES_LENDING_PROTO_CONVERT_H_
