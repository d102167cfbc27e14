#include "services/lending/ledger_grpc.h"

#include <algorithm>
#include <deque>
#include <memory>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "services/lending/proto_convert.h"

namespace microlend::lending {
namespace {

namespace pb = ::google::protobuf;

constexpr char kCreateAccount[] = "LedgerService.CreateAccount";
constexpr char kCreateTransfers[] = "LedgerService.CreateTransfers";
constexpr char kPostPendingTransfer[] = "LedgerService.PostPendingTransfer";
constexpr char kVoidPendingTransfer[] = "LedgerService.VoidPendingTransfer";

static_assert(static_cast<int>(ReconcileFinding::Kind::kOutboxUnpublished) ==
              v1::DISCREPANCY_KIND_OUTBOX_UNPUBLISHED);
static_assert(static_cast<int>(ReconcileFinding::Kind::kAccountHistoryMismatch) ==
              v1::DISCREPANCY_KIND_ACCOUNT_HISTORY_MISMATCH);

bool Owns(const Principal& caller, const Account& account) {
  switch (caller.role) {
    case Role::kOps:
    case Role::kService:
      return true;
    case Role::kLender:
      return account.owner_type == OwnerType::kLender && account.owner_id == caller.subject;
    case Role::kPartner:
      return account.owner_type == OwnerType::kPartner && account.owner_id == caller.subject;
  }
  return false;
}

absl::Status AccountNotFound(AccountId id) {
  return absl::NotFoundError(absl::StrCat("account ", id.value(), " not found"));
}

absl::Status TransferNotFound(TransferId id) {
  return absl::NotFoundError(absl::StrCat("transfer ", id.value(), " not found"));
}

absl::StatusOr<Currency> ParseCurrency(const std::string& code, std::string_view field) {
  absl::StatusOr<Currency> currency = Currency::FromCode(code);
  if (!currency.ok()) return FieldError(field, AsStd(currency.status().message()));
  return currency;
}

absl::Status ParseOwner(const v1::CreateAccountRequest& request, NewAccount& out) {
  ML_ASSIGN_OR_RETURN(std::optional<OwnerType> owner_type,
                      ParseOwnerType(request.owner_type(), "owner_type"));
  if (!owner_type.has_value()) return FieldError("owner_type", "is required");
  out.owner_type = *owner_type;
  const bool system_owner =
      out.owner_type == OwnerType::kPlatform || out.owner_type == OwnerType::kExternalSettlement;
  if (request.owner_id().empty() && !system_owner) {
    return FieldError("owner_id", absl::StrCat("is required for owner type ",
                                               v1::AccountOwnerType_Name(request.owner_type())));
  }
  out.owner_id = request.owner_id();
  return absl::OkStatus();
}

absl::StatusOr<NewAccount> ParseNewAccount(const v1::CreateAccountRequest& request) {
  NewAccount out;
  ML_ASSIGN_OR_RETURN(out.id, ParseOptionalId<AccountId>(request.id(), "id"));
  ML_RETURN_IF_ERROR(CheckClientChosenId(out.id, "id"));
  ML_RETURN_IF_ERROR(ParseOwner(request, out));
  ML_ASSIGN_OR_RETURN(std::optional<AccountKind> kind, ParseAccountKind(request.kind(), "kind"));
  if (!kind.has_value()) return FieldError("kind", "is required");
  out.kind = *kind;
  ML_ASSIGN_OR_RETURN(out.currency, ParseCurrency(request.currency(), "currency"));
  out.flags.debits_must_not_exceed_credits = request.flags().debits_must_not_exceed_credits();
  out.flags.credits_must_not_exceed_debits = request.flags().credits_must_not_exceed_debits();
  if (out.flags.debits_must_not_exceed_credits && out.flags.credits_must_not_exceed_debits) {
    return FieldError("flags",
                      "debits_must_not_exceed_credits and "
                      "credits_must_not_exceed_debits may not both be set");
  }
  if (request.memo().size() > kMaxMemoBytes) {
    return FieldError("memo", absl::StrCat("is ", request.memo().size(), " bytes; at most ",
                                           kMaxMemoBytes, " are allowed"));
  }
  out.memo = request.memo();
  return out;
}

absl::StatusOr<AccountFilter> ParseAccountFilter(const v1::ListAccountsRequest& request) {
  AccountFilter out;
  ML_ASSIGN_OR_RETURN(out.owner_type, ParseOwnerType(request.owner_type(), "owner_type"));
  out.owner_id = request.owner_id();
  ML_ASSIGN_OR_RETURN(out.kind, ParseAccountKind(request.kind(), "kind"));
  if (!request.currency().empty()) {
    ML_ASSIGN_OR_RETURN(out.currency, ParseCurrency(request.currency(), "currency"));
  }
  return out;
}

absl::StatusOr<TransferFilter> ParseTransferFilter(const v1::ListTransfersRequest& request) {
  TransferFilter out;
  ML_ASSIGN_OR_RETURN(out.account_id,
                      ParseOptionalId<AccountId>(request.account_id(), "account_id"));
  ML_ASSIGN_OR_RETURN(out.loan_id, ParseOptionalId<LoanId>(request.loan_id(), "loan_id"));
  ML_RETURN_IF_ERROR(ParseTimeRange(request.has_from_time() ? &request.from_time() : nullptr,
                                    request.has_to_time() ? &request.to_time() : nullptr, "",
                                    &out));
  ML_ASSIGN_OR_RETURN(out.codes, ParseTransferCodes(request.codes(), "codes"));
  for (int i = 0; i < request.types_size(); ++i) {
    const std::string field = absl::StrCat("types[", i, "]");
    ML_ASSIGN_OR_RETURN(std::optional<TransferType> type,
                        ParseTransferType(request.types(i), field));
    if (!type.has_value()) return FieldError(field, "TRANSFER_TYPE_UNSPECIFIED is not a type");
    out.types.push_back(*type);
  }
  return out;
}

// A linked batch ready for the Ledger.
struct BatchCommand {
  RequestKey key;
  std::vector<TransferSpec> specs;
};

// Parses a batch of CreateTransfers or of the stream. Both key as CreateTransfers: the two
// messages serialize identically, so a batch's outcome can be learnt through either RPC.
absl::StatusOr<BatchCommand> ParseBatch(const Principal& caller, const std::string& request_id,
                                        const pb::RepeatedPtrField<v1::TransferSpec>& transfers,
                                        const pb::Message& request) {
  if (transfers.empty() || static_cast<size_t>(transfers.size()) > kMaxTransfersPerBatch) {
    return FieldError("transfers", absl::StrCat("must hold 1..", kMaxTransfersPerBatch,
                                                " items, got ", transfers.size()));
  }
  BatchCommand out;
  out.specs.reserve(transfers.size());
  for (int i = 0; i < transfers.size(); ++i) {
    ML_ASSIGN_OR_RETURN(TransferSpec spec, ParseTransferSpec(transfers[i], i));
    out.specs.push_back(std::move(spec));
  }
  ML_ASSIGN_OR_RETURN(out.key, MakeRequestKey(caller, request_id, kCreateTransfers, request));
  return out;
}

// A linked batch is remembered as a BatchRecord (ids, not bodies: ADR 0008); only a rejection
// is encoded here.
ResultEncoder BatchEncoder() { return ResultEncoder{.success = nullptr, .rejection = EncodeRejection}; }

// The answer of a linked batch: built once from the committed transfers when fresh, read back by
// id for a replay remembered as a BatchRecord, decoded for one remembered whole (before ADR 0008).
absl::Status BatchResponse(LedgerStore& store, const LedgerReply& reply,
                           const std::string& request_id, v1::CreateTransfersResponse* out) {
  if (!reply.status.ok()) return DecodeReply(reply, out);
  std::optional<BatchRecord> record;
  if (reply.replayed) {
    record = DecodeBatchRecord(reply.payload);
    if (!record.has_value()) return DecodeReply(reply, out);
  }
  absl::Time committed_at = reply.committed_at;
  const std::vector<Transfer>* transfers = &reply.transfers;
  std::vector<Transfer> read_back;
  if (record.has_value()) {
    absl::StatusOr<std::vector<Transfer>> got = store.GetTransfers(record->transfer_ids);
    if (!got.ok()) {  // its code kept: UNAVAILABLE and ABORTED stay worth a retry
      return absl::Status(got.status().code(),
                          absl::StrCat("reading back the transfers of request \"", request_id,
                                       "\": ", got.status().message()));
    }
    read_back = *std::move(got);
    transfers = &read_back;
    committed_at = record->committed_at;
  }
  out->mutable_transfers()->Reserve(static_cast<int>(transfers->size()));
  for (const Transfer& transfer : *transfers) ToProto(transfer, out->add_transfers());
  ToProto(committed_at, out->mutable_committed_at());
  out->mutable_mutation()->set_request_id(request_id);
  out->mutable_mutation()->set_replayed(reply.replayed);
  return absl::OkStatus();
}

// Signed figures of a finding are in its currency; without a known one they are left out.
void ToDiscrepancy(const ReconcileFinding& finding, v1::Discrepancy* out) {
  out->set_kind(static_cast<v1::DiscrepancyKind>(finding.kind));
  if (finding.account_id) IdToProto(*finding.account_id, out->mutable_account_id());
  absl::StatusOr<Currency> currency = Currency::FromCode(finding.currency);
  if (currency.ok() && finding.kind != ReconcileFinding::Kind::kOutboxUnpublished &&
      finding.kind != ReconcileFinding::Kind::kAccountHistoryMismatch) {
    ToProto(Money::FromMinor(*currency, finding.expected), out->mutable_expected());
    ToProto(Money::FromMinor(*currency, finding.actual), out->mutable_actual());
  }
  out->set_count(finding.count);
  out->set_detail(finding.detail);
}

void ToCurrencySum(const CurrencyTotals& totals, v1::CurrencySum* out) {
  out->set_currency(std::string(totals.currency.code()));
  ToProto(Money::FromMinor(totals.currency, totals.balance_sum), out->mutable_sum());
  ToProto(Money::FromMinor(totals.currency, totals.posted_volume), out->mutable_posted_volume());
  out->set_account_count(totals.account_count);
}

}  // namespace

LedgerGrpc::LedgerGrpc(Ledger* ledger, LedgerStore* store, const GrpcAuthenticator* auth,
                       const Clock* clock)
    : ledger_(ledger), store_(store), auth_(auth), clock_(clock) {}

grpc::Status LedgerGrpc::CreateAccount(grpc::ServerContext* context,
                                       const v1::CreateAccountRequest* request,
                                       v1::CreateAccountResponse* response) {
  return ToGrpcStatusWithDetails([&]() -> absl::Status {
    ML_ASSIGN_OR_RETURN(Principal caller, auth_->Authorize(*context, {Role::kOps, Role::kService}));
    ML_ASSIGN_OR_RETURN(NewAccount account, ParseNewAccount(*request));
    ML_ASSIGN_OR_RETURN(RequestKey key,
                        MakeRequestKey(caller, request->request_id(), kCreateAccount, *request));
    const std::string& request_id = request->request_id();
    auto encode = [&request_id](const Account& created) {
      v1::CreateAccountResponse out;
      ToProto(created, out.mutable_account());
      out.mutable_mutation()->set_request_id(request_id);
      return out.SerializeAsString();
    };
    Account created;
    return DecodeReply(ledger_->CreateAccount(key, account, encode, &created), response);
  }());
}

absl::StatusOr<Account> LedgerGrpc::VisibleAccount(const Principal& caller, AccountId id) const {
  absl::StatusOr<Account> account = store_->GetAccount(id);
  if (absl::IsNotFound(account.status())) return AccountNotFound(id);
  if (!account.ok()) return account.status();
  if (!Owns(caller, *account)) return AccountNotFound(id);
  return account;
}

grpc::Status LedgerGrpc::GetAccount(grpc::ServerContext* context,
                                    const v1::GetAccountRequest* request,
                                    v1::GetAccountResponse* response) {
  return ToGrpcStatusWithDetails([&]() -> absl::Status {
    ML_ASSIGN_OR_RETURN(
        Principal caller,
        auth_->Authorize(*context, {Role::kOps, Role::kService, Role::kLender, Role::kPartner}));
    ML_ASSIGN_OR_RETURN(AccountId id,
                        ParseRequiredId<AccountId>(request->account_id(), "account_id"));
    ML_ASSIGN_OR_RETURN(Account account, VisibleAccount(caller, id));
    ToProto(account, response->mutable_account());
    return absl::OkStatus();
  }());
}

grpc::Status LedgerGrpc::ListAccounts(grpc::ServerContext* context,
                                      const v1::ListAccountsRequest* request,
                                      v1::ListAccountsResponse* response) {
  return ToGrpcStatusWithDetails([&]() -> absl::Status {
    ML_RETURN_IF_ERROR(auth_->Authorize(*context, {Role::kOps, Role::kService}).status());
    ML_ASSIGN_OR_RETURN(AccountFilter filter, ParseAccountFilter(*request));
    ML_ASSIGN_OR_RETURN(PageSpec page, ParsePage(request->page(), PageKind::kList));
    ML_ASSIGN_OR_RETURN(Page<Account> accounts, store_->ListAccounts(filter, page));
    for (const Account& account : accounts.items) ToProto(account, response->add_accounts());
    ToPageResponse(accounts.next_after_id, accounts.total_count, response->mutable_page());
    return absl::OkStatus();
  }());
}

grpc::Status LedgerGrpc::CreateTransfers(grpc::ServerContext* context,
                                         const v1::CreateTransfersRequest* request,
                                         v1::CreateTransfersResponse* response) {
  return ToGrpcStatusWithDetails([&]() -> absl::Status {
    ML_ASSIGN_OR_RETURN(Principal caller, auth_->Authorize(*context, {Role::kOps, Role::kService}));
    ML_ASSIGN_OR_RETURN(BatchCommand batch,
                        ParseBatch(caller, request->request_id(), request->transfers(), *request));
    LedgerReply reply =
        ledger_->SubmitBatch(std::move(batch.key), std::move(batch.specs), BatchEncoder());
    return BatchResponse(*store_, reply, request->request_id(), response);
  }());
}

template <typename Response>
absl::Status LedgerGrpc::ResolveHold(const Principal& caller, const pb::Message& request,
                                     const std::string& request_id, std::string_view method,
                                     TransferSpec spec, Response* response) {
  const HoldId hold_id = *spec.pending_id;
  ML_ASSIGN_OR_RETURN(RequestKey key, MakeRequestKey(caller, request_id, method, request));
  ResultEncoder encoder{.success =
                            [request_id](const std::vector<Transfer>& transfers, absl::Time) {
                              Response out;
                              if (!transfers.empty())
                                ToProto(transfers.front(), out.mutable_transfer());
                              out.mutable_mutation()->set_request_id(request_id);
                              return out.SerializeAsString();
                            },
                        .rejection = EncodeRejection};
  std::vector<TransferSpec> specs;
  specs.push_back(std::move(spec));
  LedgerReply reply = ledger_->SubmitBatch(std::move(key), std::move(specs), std::move(encoder));
  ML_RETURN_IF_ERROR(DecodeReply(reply, response));
  // A hold resolves once, so reading it back gives the same answer on every replay.
  ML_ASSIGN_OR_RETURN(Hold hold, store_->GetTransfer(hold_id));
  ToProto(hold, response->mutable_hold());
  return absl::OkStatus();
}

grpc::Status LedgerGrpc::PostPendingTransfer(grpc::ServerContext* context,
                                             const v1::PostPendingTransferRequest* request,
                                             v1::PostPendingTransferResponse* response) {
  return ToGrpcStatusWithDetails([&]() -> absl::Status {
    ML_ASSIGN_OR_RETURN(Principal caller, auth_->Authorize(*context, {Role::kOps, Role::kService}));
    TransferSpec spec;
    ML_ASSIGN_OR_RETURN(spec.pending_id, ParseRequiredId<HoldId>(request->hold_id(), "hold_id"));
    ML_ASSIGN_OR_RETURN(spec.amount, ParseOptionalPositiveMoney(request->amount(), "amount"));
    ML_ASSIGN_OR_RETURN(spec.id, ParseOptionalId<TransferId>(request->id(), "id"));
    spec.pending_action = PendingAction::kPost;
    return ResolveHold(caller, *request, request->request_id(), kPostPendingTransfer,
                       std::move(spec), response);
  }());
}

grpc::Status LedgerGrpc::VoidPendingTransfer(grpc::ServerContext* context,
                                             const v1::VoidPendingTransferRequest* request,
                                             v1::VoidPendingTransferResponse* response) {
  return ToGrpcStatusWithDetails([&]() -> absl::Status {
    ML_ASSIGN_OR_RETURN(Principal caller, auth_->Authorize(*context, {Role::kOps, Role::kService}));
    TransferSpec spec;
    ML_ASSIGN_OR_RETURN(spec.pending_id, ParseRequiredId<HoldId>(request->hold_id(), "hold_id"));
    ML_ASSIGN_OR_RETURN(spec.id, ParseOptionalId<TransferId>(request->id(), "id"));
    if (request->reason().size() > kMaxMemoBytes) {
      return FieldError("reason", absl::StrCat("is ", request->reason().size(), " bytes; at most ",
                                               kMaxMemoBytes, " are allowed"));
    }
    spec.memo = request->reason();
    spec.pending_action = PendingAction::kVoid;
    return ResolveHold(caller, *request, request->request_id(), kVoidPendingTransfer,
                       std::move(spec), response);
  }());
}

absl::StatusOr<Hold> LedgerGrpc::VisibleTransfer(const Principal& caller, TransferId id) const {
  absl::StatusOr<Hold> hold = store_->GetTransfer(id);
  if (absl::IsNotFound(hold.status())) return TransferNotFound(id);
  if (!hold.ok()) return hold.status();
  if (caller.role == Role::kOps || caller.role == Role::kService) return hold;
  for (AccountId side : {hold->transfer.debit_account_id, hold->transfer.credit_account_id}) {
    absl::StatusOr<Account> account = store_->GetAccount(side);
    if (account.ok() && Owns(caller, *account)) return hold;
    if (!account.ok() && !absl::IsNotFound(account.status())) return account.status();
  }
  return TransferNotFound(id);
}

grpc::Status LedgerGrpc::GetTransfer(grpc::ServerContext* context,
                                     const v1::GetTransferRequest* request,
                                     v1::GetTransferResponse* response) {
  return ToGrpcStatusWithDetails([&]() -> absl::Status {
    ML_ASSIGN_OR_RETURN(
        Principal caller,
        auth_->Authorize(*context, {Role::kOps, Role::kService, Role::kLender, Role::kPartner}));
    ML_ASSIGN_OR_RETURN(TransferId id,
                        ParseRequiredId<TransferId>(request->transfer_id(), "transfer_id"));
    ML_ASSIGN_OR_RETURN(Hold hold, VisibleTransfer(caller, id));
    ToProto(hold, response->mutable_transfer());
    return absl::OkStatus();
  }());
}

grpc::Status LedgerGrpc::ListTransfers(grpc::ServerContext* context,
                                       const v1::ListTransfersRequest* request,
                                       v1::ListTransfersResponse* response) {
  return ToGrpcStatusWithDetails([&]() -> absl::Status {
    ML_RETURN_IF_ERROR(auth_->Authorize(*context, {Role::kOps, Role::kService}).status());
    ML_ASSIGN_OR_RETURN(TransferFilter filter, ParseTransferFilter(*request));
    ML_ASSIGN_OR_RETURN(PageSpec page,
                        ParsePage(request->page(), PageKind::kExport, request->newest_first()));
    ML_ASSIGN_OR_RETURN(Page<Transfer> transfers, store_->ListTransfers(filter, page));
    for (const Transfer& transfer : transfers.items) {
      ToProto(transfer, response->add_transfers());
    }
    ToPageResponse(transfers.next_after_id, transfers.total_count, response->mutable_page());
    return absl::OkStatus();
  }());
}

grpc::Status LedgerGrpc::Reconcile(grpc::ServerContext* context,
                                   const v1::ReconcileRequest* request,
                                   v1::ReconcileResponse* response) {
  return ToGrpcStatusWithDetails([&]() -> absl::Status {
    ML_RETURN_IF_ERROR(auth_->Authorize(*context, {Role::kOps}).status());
    std::vector<Currency> currencies;
    for (int i = 0; i < request->currencies_size(); ++i) {
      ML_ASSIGN_OR_RETURN(Currency currency, ParseCurrency(request->currencies(i),
                                                           absl::StrCat("currencies[", i, "]")));
      currencies.push_back(currency);
    }
    const absl::Time started = clock_->Now();
    ML_ASSIGN_OR_RETURN(ReconcileData data,
                        store_->Reconcile(currencies, !request->skip_balance_replay(),
                                          started - kOutboxRelayDeadline));
    v1::ReconcileReport* report = response->mutable_report();
    report->set_clean(data.findings.empty());
    ToProto(started, report->mutable_checked_at());
    for (const CurrencyTotals& totals : data.totals) {
      ToCurrencySum(totals, report->add_currency_sums());
    }
    const size_t shown = std::min(data.findings.size(), static_cast<size_t>(kMaxDiscrepancies));
    for (size_t i = 0; i < shown; ++i) ToDiscrepancy(data.findings[i], report->add_discrepancies());
    report->set_discrepancies_truncated(shown < data.findings.size());
    report->set_accounts_checked(data.accounts_checked);
    report->set_transfers_checked(data.transfers_checked);
    report->set_duration_ms(absl::ToInt64Milliseconds(clock_->Now() - started));
    return absl::OkStatus();
  }());
}

// ---- StreamTransferBatches --------------------------------------------------------------------

namespace {

// One batch of a stream, answered in arrival order once `done`.
struct StreamSlot {
  std::string request_id;
  bool ids_only = false;   // TransferBatch.ids_only
  bool submitted = false;  // handed to the Ledger: counts against kMaxUnansweredBatches
  bool done = false;
  absl::Status early;  // the answer of a batch that was never submitted
  LedgerReply reply;   // the Ledger's answer of a submitted one
};

// Shared by the reader (the handler thread), the writer thread and the Ledger's callbacks, which
// may outlive the handler (hence shared ownership).
struct StreamState {
  absl::Mutex mu;
  std::deque<std::shared_ptr<StreamSlot>> slots ABSL_GUARDED_BY(mu);
  size_t unanswered ABSL_GUARDED_BY(mu) = 0;
  bool reading_done ABSL_GUARDED_BY(mu) = false;
  bool write_failed ABSL_GUARDED_BY(mu) = false;

  bool HasRoom() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    return slots.size() < kMaxQueuedBatchResults || write_failed;
  }
  bool FrontReadyOrFinished() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    return slots.empty() ? reading_done : slots.front()->done;
  }
};

v1::TransferBatchResult ToBatchResult(LedgerStore& store, const StreamSlot& slot) {
  v1::TransferBatchResult out;
  out.set_request_id(slot.request_id);
  out.mutable_mutation()->set_request_id(slot.request_id);
  absl::Status status = slot.submitted ? ReplyStatus(slot.reply) : slot.early;
  std::optional<BatchRecord> record;
  if (status.ok() && slot.ids_only) {
    // The ids alone: from the fresh transfers, or from the record of a replay (no read back).
    record = slot.reply.replayed ? DecodeBatchRecord(slot.reply.payload)
                                 : BatchRecord{.committed_at = slot.reply.committed_at};
    if (record.has_value() && !slot.reply.replayed) {
      record->transfer_ids.reserve(slot.reply.transfers.size());
      for (const Transfer& t : slot.reply.transfers) record->transfer_ids.push_back(t.id);
    }
  }
  if (record.has_value()) {
    out.mutable_transfer_ids()->Reserve(static_cast<int>(record->transfer_ids.size()));
    for (TransferId id : record->transfer_ids) IdToProto(id, out.add_transfer_ids());
    ToProto(record->committed_at, out.mutable_committed_at());
    out.mutable_mutation()->set_replayed(slot.reply.replayed);
  } else if (status.ok()) {
    v1::CreateTransfersResponse committed;
    status = BatchResponse(store, slot.reply, slot.request_id, &committed);
    if (status.ok()) {
      if (slot.ids_only) {  // a replay remembered whole, before ADR 0008
        for (const v1::Transfer& t : committed.transfers()) *out.add_transfer_ids() = t.id();
      } else {
        out.mutable_transfers()->Swap(committed.mutable_transfers());
      }
      *out.mutable_committed_at() = committed.committed_at();
      *out.mutable_mutation() = committed.mutation();
    }
  }
  if (!status.ok()) {
    if (std::optional<v1::TransferBatchRejection> rejection = RejectionDetail(status)) {
      *out.mutable_rejection() = *std::move(rejection);
    }
    out.mutable_mutation()->set_replayed(slot.reply.replayed);
  }
  *out.mutable_status() = ToRpcStatus(status);
  return out;
}

// Writes the answers in arrival order, each once it is done, until the reader has finished and
// every answer is written, or the client stops accepting writes.
void WriteResults(LedgerStore& store, StreamState& state,
                  grpc::ServerReaderWriter<v1::TransferBatchResult, v1::TransferBatch>* stream) {
  while (true) {
    std::shared_ptr<StreamSlot> slot;
    {
      absl::MutexLock lock(&state.mu);
      state.mu.Await(absl::Condition(&state, &StreamState::FrontReadyOrFinished));
      if (state.slots.empty()) return;
      slot = std::move(state.slots.front());
      state.slots.pop_front();
      if (slot->submitted) --state.unanswered;
    }
    if (!stream->Write(ToBatchResult(store, *slot))) {
      absl::MutexLock lock(&state.mu);
      state.write_failed = true;
      return;
    }
  }
}

absl::Status StreamFull() {
  common::v1::RetryDelay delay;
  delay.set_retry_after_ms(kStreamRetryAfterMs);
  return AttachDetail(absl::ResourceExhaustedError(absl::StrCat(
                          kMaxUnansweredBatches,
                          " batches are already unanswered on this stream; resend this one "
                          "with the same request_id once some are answered")),
                      delay);
}

void Enqueue(StreamState& state, std::shared_ptr<StreamSlot> slot) {
  absl::MutexLock lock(&state.mu);
  if (slot->submitted) ++state.unanswered;
  state.slots.push_back(std::move(slot));
}

}  // namespace

grpc::Status LedgerGrpc::StreamTransferBatches(
    grpc::ServerContext* context,
    grpc::ServerReaderWriter<v1::TransferBatchResult, v1::TransferBatch>* stream) {
  absl::StatusOr<Principal> caller = auth_->Authorize(*context, {Role::kService, Role::kOps});
  if (!caller.ok()) return ToGrpcStatusWithDetails(caller.status());
  auto state = std::make_shared<StreamState>();
  std::thread writer([this, &state, stream] { WriteResults(*store_, *state, stream); });
  v1::TransferBatch batch;
  while (stream->Read(&batch)) {
    auto slot = std::make_shared<StreamSlot>();
    slot->request_id = batch.request_id();
    slot->ids_only = batch.ids_only();
    bool refuse = false;
    {
      absl::MutexLock lock(&state->mu);
      state->mu.Await(absl::Condition(state.get(), &StreamState::HasRoom));
      if (state->write_failed) break;
      refuse = state->unanswered >= kMaxUnansweredBatches;
    }
    absl::StatusOr<BatchCommand> command =
        refuse ? StreamFull() : ParseBatch(*caller, batch.request_id(), batch.transfers(), batch);
    if (!command.ok()) {
      slot->early = command.status();
      slot->done = true;
      Enqueue(*state, std::move(slot));
      continue;
    }
    slot->submitted = true;
    Enqueue(*state, slot);
    ledger_->SubmitBatchAsync(std::move(command->key), std::move(command->specs),
                              BatchEncoder(), [state, slot](LedgerReply reply) {
                                absl::MutexLock lock(&state->mu);
                                slot->reply = std::move(reply);
                                slot->done = true;
                              });
  }
  {
    absl::MutexLock lock(&state->mu);
    state->reading_done = true;
  }
  writer.join();
  return grpc::Status::OK;
}

}  // namespace microlend::lending
