// LedgerGrpc: the gRPC adapter of microlend.lending.v1.LedgerService. Thin: each handler
// authorizes the caller, parses and validates the whole request into a domain command (bad input
// is INVALID_ARGUMENT and nothing reaches the core), calls the Ledger (mutations) or the
// LedgerStore (reads), and maps the result. No business rules live here.
//
// Roles (UNAUTHENTICATED without a valid token, PERMISSION_DENIED for a role not listed):
//   CreateAccount, ListAccounts, CreateTransfers, PostPendingTransfer,
//   VoidPendingTransfer, ListTransfers, StreamTransferBatches       ops, service
//   GetAccount, GetTransfer                                          ops, service; lender and
//       partner only for their own accounts (owner LENDER / PARTNER with owner_id == subject) or
//       transfers touching one; anything else is NOT_FOUND, exactly as for a missing id
//   Reconcile                                                        ops
//
// Idempotency: every mutation runs under RequestKey{subject, request_id, "LedgerService.<Rpc>",
// BodyHash(request)}; the remembered success is the full response proto, except a linked batch's,
// which is a BatchRecord of its transfer ids (ADR 0008) whose transfers a replay reads back, so
// a replay returns the original answer with mutation.replayed = true, and a remembered rejection comes back with its original code,
// message and TransferBatchRejection. StreamTransferBatches keys each batch exactly like
// CreateTransfers ("LedgerService.CreateTransfers"; TransferBatch and CreateTransfersRequest are
// the same on the wire), so a batch may be retried through either RPC and learns its outcome.
//
// Batch rejections: the item's code and message, with `grpc-status-details-bin` holding an
// RpcStatus whose details carry the TransferBatchRejection (and FieldViolations for malformed
// fields).
//
// StreamTransferBatches: a batch with ids_only is answered with its transfers' ids and commit
// time only (fresh, or from the record of a replay, with no read back); ids_only is left out of
// the body hash. Each batch is submitted with Ledger::SubmitBatchAsync as it arrives; a
// writer thread answers them strictly in request order, each once its outcome is durable. At
// most kMaxUnansweredBatches submitted batches wait for an answer; beyond that a batch is
// answered RESOURCE_EXHAUSTED in-band without being submitted. Invalid batches and rejections
// are answered in-band and the stream goes on; so is UNAVAILABLE (the sync API cannot end a
// stream while its reader is blocked: resend such a batch with the same request_id). When the
// client stops reading, at most kMaxQueuedBatchResults answers are buffered before the server
// stops reading too (flow control, not queueing). The stream ends at once (its status) on an
// authentication or role failure; otherwise OK after the client half-closes and every answer
// is written.
//
// Thread-safe: the handlers share only the collaborators below, which are thread-safe. All four
// pointers must outlive the service.
#ifndef MICROLEND_SERVICES_LENDING_LEDGER_GRPC_H_
#define MICROLEND_SERVICES_LENDING_LEDGER_GRPC_H_

#include <grpcpp/grpcpp.h>

#include <cstddef>
#include <cstdint>

#include "common/clock.h"
#include "microlend/lending/v1/lending.grpc.pb.h"
#include "server/auth_grpc.h"
#include "services/lending/core/ledger.h"
#include "services/lending/core/ledger_store.h"

namespace microlend::lending {

inline constexpr size_t kMaxUnansweredBatches = 256;
inline constexpr size_t kMaxQueuedBatchResults = 1024;
// The RetryDelay hint sent with an in-band RESOURCE_EXHAUSTED.
inline constexpr int64_t kStreamRetryAfterMs = 10;
// Reconcile: outbox events older than this and still unpublished are discrepancies.
inline constexpr absl::Duration kOutboxRelayDeadline = absl::Seconds(60);
inline constexpr int kMaxDiscrepancies = 1000;

class LedgerGrpc final : public v1::LedgerService::Service {
 public:
  LedgerGrpc(Ledger* ledger, LedgerStore* store, const GrpcAuthenticator* auth, const Clock* clock);

  grpc::Status CreateAccount(grpc::ServerContext* context, const v1::CreateAccountRequest* request,
                             v1::CreateAccountResponse* response) override;
  grpc::Status GetAccount(grpc::ServerContext* context, const v1::GetAccountRequest* request,
                          v1::GetAccountResponse* response) override;
  grpc::Status ListAccounts(grpc::ServerContext* context, const v1::ListAccountsRequest* request,
                            v1::ListAccountsResponse* response) override;
  grpc::Status CreateTransfers(grpc::ServerContext* context,
                               const v1::CreateTransfersRequest* request,
                               v1::CreateTransfersResponse* response) override;
  grpc::Status PostPendingTransfer(grpc::ServerContext* context,
                                   const v1::PostPendingTransferRequest* request,
                                   v1::PostPendingTransferResponse* response) override;
  grpc::Status VoidPendingTransfer(grpc::ServerContext* context,
                                   const v1::VoidPendingTransferRequest* request,
                                   v1::VoidPendingTransferResponse* response) override;
  grpc::Status GetTransfer(grpc::ServerContext* context, const v1::GetTransferRequest* request,
                           v1::GetTransferResponse* response) override;
  grpc::Status ListTransfers(grpc::ServerContext* context, const v1::ListTransfersRequest* request,
                             v1::ListTransfersResponse* response) override;
  grpc::Status StreamTransferBatches(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<v1::TransferBatchResult, v1::TransferBatch>* stream) override;
  grpc::Status Reconcile(grpc::ServerContext* context, const v1::ReconcileRequest* request,
                         v1::ReconcileResponse* response) override;

 private:
  // Resolves a hold (post or void) as a one-item batch and fills `response` with the resolving
  // transfer and the hold as it stands afterwards.
  template <typename Response>
  absl::Status ResolveHold(const Principal& caller, const google::protobuf::Message& request,
                           const std::string& request_id, std::string_view method,
                           TransferSpec spec, Response* response);
  // The account or transfer if `caller` may see it; NotFound otherwise (same as missing).
  absl::StatusOr<Account> VisibleAccount(const Principal& caller, AccountId id) const;
  absl::StatusOr<Hold> VisibleTransfer(const Principal& caller, TransferId id) const;

  Ledger* ledger_;
  LedgerStore* store_;
  const GrpcAuthenticator* auth_;
  const Clock* clock_;
};

}  // namespace microlend::lending

#endif  // MICROLEND_SERVICES_LENDING_LEDGER_GRPC_H_
