#include "services/lending/wallet_grpc.h"

#include <openssl/evp.h>

#include <deque>
#include <utility>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/check.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "services/lending/core/loan_stats.h"
#include "services/lending/proto_convert.h"

namespace microlend::lending {
namespace {

namespace pb = ::google::protobuf;

constexpr char kDeposit[] = "LenderService.Deposit";
constexpr char kRequestWithdrawal[] = "LenderService.RequestWithdrawal";
constexpr char kCancelWithdrawal[] = "LenderService.CancelWithdrawal";
constexpr char kApproveWithdrawal[] = "LenderService.ApproveWithdrawal";
constexpr char kRejectWithdrawal[] = "LenderService.RejectWithdrawal";
constexpr char kMarkWithdrawalPaid[] = "LenderService.MarkWithdrawalPaid";
constexpr char kDonate[] = "LenderService.Donate";

constexpr char kCsvHeader[] =
    "posted_at,transfer_id,code,description,debit,credit,balance,currency,loan_id,reference";

// Decided from the ids alone, before any lookup, so it tells nothing about the other lender.
absl::Status NotYourWallet(LenderId self, LenderId named) {
  return absl::PermissionDeniedError(absl::StrCat("lender ", self.value(),
                                                  " may act only on its own wallet, not lender ",
                                                  named.value(), "'s"));
}

absl::Status WithdrawalNotFound(WithdrawalId id) {
  return absl::NotFoundError(absl::StrCat("withdrawal ", id.value(), " not found"));
}

absl::StatusOr<LenderId> CallerLender(const Principal& caller) {
  absl::StatusOr<LenderId> self = LenderId::Parse(caller.subject, "subject");
  if (!self.ok()) return absl::PermissionDeniedError("the token's subject is not a lender id");
  return self;
}

// The lender a request names (see the header's object rule): for a lender itself, for ops and
// service the named one or nullopt ("all lenders") when empty.
absl::StatusOr<std::optional<LenderId>> NamedLender(const Principal& caller,
                                                    const common::v1::LenderId& lender_id,
                                                    std::string_view field) {
  if (caller.role != Role::kLender) return ParseOptionalId<LenderId>(lender_id, field);
  ML_ASSIGN_OR_RETURN(LenderId self, CallerLender(caller));
  ML_ASSIGN_OR_RETURN(std::optional<LenderId> named, ParseOptionalId<LenderId>(lender_id, field));
  if (named.has_value() && *named != self) return NotYourWallet(self, *named);
  return std::optional<LenderId>(self);
}

// The lender whose wallet a request acts on: ops and service must name one.
absl::StatusOr<LenderId> WalletLender(const Principal& caller,
                                      const common::v1::LenderId& lender_id,
                                      std::string_view field) {
  ML_ASSIGN_OR_RETURN(std::optional<LenderId> lender, NamedLender(caller, lender_id, field));
  if (!lender.has_value()) return FieldError(field, "is required");
  return *lender;
}

absl::Status RequireText(const std::string& text, std::string_view field) {
  if (text.empty()) return FieldError(field, "is required");
  if (text.size() > kMaxMemoBytes) {
    return FieldError(field, absl::StrCat("has ", text.size(), " bytes; at most ", kMaxMemoBytes));
  }
  if (!IsStorableText(text)) return FieldError(field, "must be UTF-8 text without NUL bytes");
  return absl::OkStatus();
}

// A deposit happens once per external payment, whoever reports it and under whatever
// request_id: its idempotency key is the payment. The same payment reported again with the same
// body is a replay of the first credit; with another lender or amount it is ALREADY_EXISTS.
void KeyByPayment(const std::string& external_payment_id, RequestKey* key) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  const int ok = EVP_Digest(external_payment_id.data(), external_payment_id.size(), digest, &length,
                            EVP_sha256(), nullptr);
  ML_CHECK(ok == 1, "EVP_Digest(SHA-256) failed");
  key->caller = "deposit-payment";
  key->request_id = absl::StrCat(
      "pay-", absl::BytesToHexString(absl::string_view(reinterpret_cast<char*>(digest), length)));
}

// Remembers a wallet transfer as its response (without the balance, read afterwards).
template <typename Response>
ResultEncoder TransferEncoder(std::string request_id) {
  return ResultEncoder{
      .success =
          [request_id = std::move(request_id)](const std::vector<Transfer>& transfers, absl::Time) {
            Response out;
            if (!transfers.empty()) ToProto(transfers.front(), out.mutable_transfer());
            out.mutable_mutation()->set_request_id(request_id);
            return out.SerializeAsString();
          },
      .rejection = EncodeRejection};
}

// The memo, or the code in words ("Loan share") when there is none.
std::string Describe(const Transfer& transfer) {
  if (!transfer.memo.empty()) return transfer.memo;
  std::string words = absl::StrReplaceAll(TransferCodeName(transfer.code), {{"_", " "}});
  if (!words.empty()) words[0] = absl::ascii_toupper(static_cast<unsigned char>(words[0]));
  return words;
}

void ToStatementRow(const StatementRow& row, v1::StatementRow* out) {
  const Transfer& transfer = row.transfer;
  IdToProto(transfer.id, out->mutable_transfer_id());
  ToProto(transfer.created_at, out->mutable_posted_at());
  out->set_code(static_cast<v1::TransferCode>(transfer.code));
  out->set_direction(row.signed_amount < 0 ? v1::ENTRY_DIRECTION_DEBIT
                                           : v1::ENTRY_DIRECTION_CREDIT);
  ToProto(transfer.amount, out->mutable_amount());
  ToProto(Money::FromMinor(transfer.amount.currency(), row.balance_after),
          out->mutable_balance_after());
  out->set_description(Describe(transfer));
  ToProto(transfer.references, out->mutable_references());
}

struct StatementQuery {
  LenderId lender{0};
  TransferFilter filter;
};

absl::StatusOr<StatementQuery> ParseStatementFilter(const Principal& caller,
                                                    const v1::StatementFilter& filter) {
  StatementQuery out;
  ML_ASSIGN_OR_RETURN(out.lender, WalletLender(caller, filter.lender_id(), "filter.lender_id"));
  ML_RETURN_IF_ERROR(ParseTimeRange(filter.has_from_time() ? &filter.from_time() : nullptr,
                                    filter.has_to_time() ? &filter.to_time() : nullptr, "filter",
                                    &out.filter));
  ML_ASSIGN_OR_RETURN(out.filter.codes, ParseTransferCodes(filter.codes(), "filter.codes"));
  return out;
}

}  // namespace

WalletGrpc::WalletGrpc(Ledger* ledger, Wallets* wallets, LedgerStore* store,
                       const GrpcAuthenticator* auth, const Clock* clock)
    : ledger_(ledger), wallets_(wallets), store_(store), auth_(auth), clock_(clock) {}

absl::Status WalletGrpc::FillBalance(LenderId lender, Currency currency, v1::Balance* out) {
  ML_ASSIGN_OR_RETURN(Account wallet, wallets_->FindWallet(lender, currency));
  IdToProto(lender, out->mutable_lender_id());
  ToProto(Money::FromMinor(currency, wallet.balance()), out->mutable_posted());
  ToProto(Money::FromMinor(currency, wallet.debits_pending), out->mutable_held());
  ToProto(Money::FromMinor(currency, wallet.available()), out->mutable_available());
  ToProto(clock_->Now(), out->mutable_as_of());
  return absl::OkStatus();
}

grpc::Status WalletGrpc::Deposit(grpc::ServerContext* context, const v1::DepositRequest* request,
                                 v1::DepositResponse* response) {
  return ToGrpcStatusWithDetails([&]() -> absl::Status {
    ML_ASSIGN_OR_RETURN(Principal caller, auth_->Authorize(*context, {Role::kService, Role::kOps}));
    ML_ASSIGN_OR_RETURN(LenderId lender,
                        ParseRequiredId<LenderId>(request->lender_id(), "lender_id"));
    ML_ASSIGN_OR_RETURN(Money amount, ParsePositiveMoney(request->amount(), "amount"));
    ML_RETURN_IF_ERROR(RequireText(request->external_payment_id(), "external_payment_id"));
    ML_ASSIGN_OR_RETURN(RequestKey key,
                        MakeRequestKey(caller, request->request_id(), kDeposit, *request));
    KeyByPayment(request->external_payment_id(), &key);
    LedgerReply reply =
        wallets_->Deposit(std::move(key), lender, amount, request->external_payment_id(),
                          TransferEncoder<v1::DepositResponse>(request->request_id()));
    ML_RETURN_IF_ERROR(DecodeReply(reply, response));
    return FillBalance(lender, amount.currency(), response->mutable_balance());
  }());
}

grpc::Status WalletGrpc::Donate(grpc::ServerContext* context, const v1::DonateRequest* request,
                                v1::DonateResponse* response) {
  return ToGrpcStatusWithDetails([&]() -> absl::Status {
    ML_ASSIGN_OR_RETURN(Principal caller,
                        auth_->Authorize(*context, {Role::kLender, Role::kService}));
    ML_ASSIGN_OR_RETURN(LenderId lender, WalletLender(caller, request->lender_id(), "lender_id"));
    ML_ASSIGN_OR_RETURN(Money amount, ParsePositiveMoney(request->amount(), "amount"));
    ML_ASSIGN_OR_RETURN(RequestKey key,
                        MakeRequestKey(caller, request->request_id(), kDonate, *request));
    LedgerReply reply = wallets_->Donate(
        std::move(key), lender, amount, TransferEncoder<v1::DonateResponse>(request->request_id()));
    ML_RETURN_IF_ERROR(DecodeReply(reply, response));
    return FillBalance(lender, amount.currency(), response->mutable_balance());
  }());
}

grpc::Status WalletGrpc::RequestWithdrawal(grpc::ServerContext* context,
                                           const v1::RequestWithdrawalRequest* request,
                                           v1::RequestWithdrawalResponse* response) {
  return ToGrpcStatusWithDetails([&]() -> absl::Status {
    ML_ASSIGN_OR_RETURN(Principal caller,
                        auth_->Authorize(*context, {Role::kLender, Role::kService}));
    ML_ASSIGN_OR_RETURN(LenderId lender, WalletLender(caller, request->lender_id(), "lender_id"));
    ML_ASSIGN_OR_RETURN(Money amount, ParsePositiveMoney(request->amount(), "amount"));
    ML_RETURN_IF_ERROR(RequireText(request->destination(), "destination"));
    ML_ASSIGN_OR_RETURN(RequestKey key, MakeRequestKey(caller, request->request_id(),
                                                       kRequestWithdrawal, *request));
    auto encode = [request_id = request->request_id()](const Withdrawal& withdrawal) {
      v1::RequestWithdrawalResponse out;
      ToProto(withdrawal, out.mutable_withdrawal());
      out.mutable_mutation()->set_request_id(request_id);
      return out.SerializeAsString();
    };
    LedgerReply reply = wallets_->RequestWithdrawal(std::move(key), lender, amount,
                                                    request->destination(), encode);
    ML_RETURN_IF_ERROR(DecodeReply(reply, response));
    return FillBalance(lender, amount.currency(), response->mutable_balance());
  }());
}

template <typename Response>
absl::Status WalletGrpc::Advance(const Principal& caller, const pb::Message& request,
                                 const std::string& request_id, std::string_view method,
                                 WithdrawalId id, WithdrawalState to, std::string note,
                                 bool decision, Response* response) {
  ML_ASSIGN_OR_RETURN(RequestKey key, MakeRequestKey(caller, request_id, method, request));
  auto encode = [request_id, decided_by = decision ? caller.subject
                                                   : std::string()](const Withdrawal& withdrawal) {
    Response out;
    ToProto(withdrawal, out.mutable_withdrawal());
    out.mutable_withdrawal()->set_decided_by(decided_by);
    out.mutable_mutation()->set_request_id(request_id);
    return out.SerializeAsString();
  };
  return DecodeReply(ledger_->AdvanceWithdrawal(std::move(key), id, to, std::move(note), encode),
                     response);
}

grpc::Status WalletGrpc::CancelWithdrawal(grpc::ServerContext* context,
                                          const v1::CancelWithdrawalRequest* request,
                                          v1::CancelWithdrawalResponse* response) {
  return ToGrpcStatusWithDetails([&]() -> absl::Status {
    ML_ASSIGN_OR_RETURN(Principal caller,
                        auth_->Authorize(*context, {Role::kLender, Role::kService, Role::kOps}));
    ML_ASSIGN_OR_RETURN(WithdrawalId id,
                        ParseRequiredId<WithdrawalId>(request->withdrawal_id(), "withdrawal_id"));
    if (caller.role == Role::kLender) {
      ML_ASSIGN_OR_RETURN(LenderId self, CallerLender(caller));
      absl::StatusOr<Withdrawal> withdrawal = store_->GetWithdrawal(id);
      if (absl::IsNotFound(withdrawal.status())) return WithdrawalNotFound(id);
      if (!withdrawal.ok()) return withdrawal.status();
      if (withdrawal->lender_id != self) return WithdrawalNotFound(id);
    }
    return Advance(caller, *request, request->request_id(), kCancelWithdrawal, id,
                   WithdrawalState::kCancelled, "", /*decision=*/true, response);
  }());
}

grpc::Status WalletGrpc::ApproveWithdrawal(grpc::ServerContext* context,
                                           const v1::ApproveWithdrawalRequest* request,
                                           v1::ApproveWithdrawalResponse* response) {
  return ToGrpcStatusWithDetails([&]() -> absl::Status {
    ML_ASSIGN_OR_RETURN(Principal caller, auth_->Authorize(*context, {Role::kOps}));
    ML_ASSIGN_OR_RETURN(WithdrawalId id,
                        ParseRequiredId<WithdrawalId>(request->withdrawal_id(), "withdrawal_id"));
    return Advance(caller, *request, request->request_id(), kApproveWithdrawal, id,
                   WithdrawalState::kApproved, "", /*decision=*/true, response);
  }());
}

grpc::Status WalletGrpc::RejectWithdrawal(grpc::ServerContext* context,
                                          const v1::RejectWithdrawalRequest* request,
                                          v1::RejectWithdrawalResponse* response) {
  return ToGrpcStatusWithDetails([&]() -> absl::Status {
    ML_ASSIGN_OR_RETURN(Principal caller, auth_->Authorize(*context, {Role::kOps}));
    ML_ASSIGN_OR_RETURN(WithdrawalId id,
                        ParseRequiredId<WithdrawalId>(request->withdrawal_id(), "withdrawal_id"));
    ML_RETURN_IF_ERROR(RequireText(request->reason(), "reason"));
    return Advance(caller, *request, request->request_id(), kRejectWithdrawal, id,
                   WithdrawalState::kRejected, request->reason(), /*decision=*/true, response);
  }());
}

grpc::Status WalletGrpc::MarkWithdrawalPaid(grpc::ServerContext* context,
                                            const v1::MarkWithdrawalPaidRequest* request,
                                            v1::MarkWithdrawalPaidResponse* response) {
  return ToGrpcStatusWithDetails([&]() -> absl::Status {
    ML_ASSIGN_OR_RETURN(Principal caller, auth_->Authorize(*context, {Role::kOps, Role::kService}));
    ML_ASSIGN_OR_RETURN(WithdrawalId id,
                        ParseRequiredId<WithdrawalId>(request->withdrawal_id(), "withdrawal_id"));
    ML_RETURN_IF_ERROR(RequireText(request->external_payment_id(), "external_payment_id"));
    return Advance(caller, *request, request->request_id(), kMarkWithdrawalPaid, id,
                   WithdrawalState::kPaid, request->external_payment_id(), /*decision=*/false,
                   response);
  }());
}

grpc::Status WalletGrpc::ListWithdrawals(grpc::ServerContext* context,
                                         const v1::ListWithdrawalsRequest* request,
                                         v1::ListWithdrawalsResponse* response) {
  return ToGrpcStatusWithDetails([&]() -> absl::Status {
    ML_ASSIGN_OR_RETURN(Principal caller,
                        auth_->Authorize(*context, {Role::kLender, Role::kOps, Role::kService}));
    ML_ASSIGN_OR_RETURN(std::optional<LenderId> lender,
                        NamedLender(caller, request->lender_id(), "lender_id"));
    std::optional<WithdrawalState> state;
    for (int i = 0; i < request->statuses_size(); ++i) {
      const std::string field = absl::StrCat("statuses[", i, "]");
      ML_ASSIGN_OR_RETURN(std::optional<WithdrawalState> one,
                          ParseWithdrawalStatus(request->statuses(i), field));
      if (!one.has_value())
        return FieldError(field, "WITHDRAWAL_STATUS_UNSPECIFIED is not a status");
      if (state.has_value() && *state != *one) {
        return FieldError("statuses",
                          "filtering by more than one status is not supported yet; "
                          "list each status separately");
      }
      state = one;
    }
    ML_ASSIGN_OR_RETURN(PageSpec page,
                        ParsePage(request->page(), PageKind::kList, /*newest_first=*/true));
    ML_ASSIGN_OR_RETURN(Page<Withdrawal> withdrawals, store_->ListWithdrawals(lender, state, page));
    for (const Withdrawal& withdrawal : withdrawals.items) {
      ToProto(withdrawal, response->add_withdrawals());
    }
    ToPageResponse(withdrawals.next_after_id, withdrawals.total_count, response->mutable_page());
    return absl::OkStatus();
  }());
}

grpc::Status WalletGrpc::GetBalance(grpc::ServerContext* context,
                                    const v1::GetBalanceRequest* request,
                                    v1::GetBalanceResponse* response) {
  return ToGrpcStatusWithDetails([&]() -> absl::Status {
    ML_ASSIGN_OR_RETURN(Principal caller,
                        auth_->Authorize(*context, {Role::kLender, Role::kOps, Role::kService}));
    ML_ASSIGN_OR_RETURN(LenderId lender, WalletLender(caller, request->lender_id(), "lender_id"));
    return FillBalance(lender, Currency::Usd(), response->mutable_balance());
  }());
}

absl::Status WalletGrpc::FillStatementBalances(const Account& wallet, const TransferFilter& filter,
                                               v1::GetStatementResponse* response) {
  // The running balance of the last entry before `end` (all codes), or 0 when there is none.
  auto balance_before = [&](absl::Time end) -> absl::StatusOr<int64_t> {
    TransferFilter before;
    before.to_time = end;
    ML_ASSIGN_OR_RETURN(
        Page<StatementRow> last,
        store_->Statement(wallet.id, before,
                          PageSpec{.limit = 1, .after_id = 0, .newest_first = true}));
    return last.items.empty() ? int64_t{0} : last.items.front().balance_after;
  };
  int64_t opening = 0;
  if (filter.from_time) {
    ML_ASSIGN_OR_RETURN(opening, balance_before(*filter.from_time));
  }
  int64_t closing = wallet.balance();
  if (filter.to_time) {
    ML_ASSIGN_OR_RETURN(closing, balance_before(*filter.to_time));
  }
  ToProto(Money::FromMinor(wallet.currency, opening), response->mutable_opening_balance());
  ToProto(Money::FromMinor(wallet.currency, closing), response->mutable_closing_balance());
  return absl::OkStatus();
}

grpc::Status WalletGrpc::GetStatement(grpc::ServerContext* context,
                                      const v1::GetStatementRequest* request,
                                      v1::GetStatementResponse* response) {
  return ToGrpcStatusWithDetails([&]() -> absl::Status {
    ML_ASSIGN_OR_RETURN(Principal caller,
                        auth_->Authorize(*context, {Role::kLender, Role::kOps, Role::kService}));
    ML_ASSIGN_OR_RETURN(StatementQuery query, ParseStatementFilter(caller, request->filter()));
    ML_ASSIGN_OR_RETURN(PageSpec page,
                        ParsePage(request->page(), PageKind::kExport, request->newest_first()));
    ML_ASSIGN_OR_RETURN(Account wallet, wallets_->FindWallet(query.lender, Currency::Usd()));
    ML_ASSIGN_OR_RETURN(Page<StatementRow> rows, store_->Statement(wallet.id, query.filter, page));
    for (const StatementRow& row : rows.items) ToStatementRow(row, response->add_rows());
    ToPageResponse(rows.next_after_id, rows.total_count, response->mutable_page());
    return FillStatementBalances(wallet, query.filter, response);
  }());
}

// ---- ExportStatementCsv -----------------------------------------------------------------------

namespace {

// RFC 4180: a field holding a comma, quote or line break is quoted, quotes doubled.
std::string CsvField(std::string_view text) {
  if (text.find_first_of(",\"\r\n") == std::string_view::npos) return std::string(text);
  return absl::StrCat("\"", absl::StrReplaceAll(AsAbsl(text), {{"\"", "\"\""}}), "\"");
}

std::string Reference(const TransferReferences& references) {
  if (!references.external_payment_id.empty()) return references.external_payment_id;
  if (references.withdrawal_id)
    return absl::StrCat("withdrawal:", references.withdrawal_id->value());
  if (references.repayment_id) return absl::StrCat("repayment:", references.repayment_id->value());
  if (references.order_id) return absl::StrCat("order:", references.order_id->value());
  if (references.campaign_id) return absl::StrCat("campaign:", references.campaign_id->value());
  return "";
}

std::string CsvRow(const StatementRow& row) {
  const Transfer& transfer = row.transfer;
  const std::string amount = transfer.amount.ToString();
  const bool debit = row.signed_amount < 0;
  return absl::StrCat(
      absl::FormatTime("%Y-%m-%d%ET%H:%M:%E*SZ", transfer.created_at, absl::UTCTimeZone()), ",",
      transfer.id.value(), ",", TransferCodeName(transfer.code), ",", CsvField(Describe(transfer)),
      ",", debit ? amount : "", ",", debit ? "" : amount, ",",
      Money::FromMinor(transfer.amount.currency(), row.balance_after).ToString(), ",",
      AsAbsl(transfer.amount.currency().code()), ",",
      transfer.references.loan_id ? transfer.references.loan_id->ToString() : "", ",",
      CsvField(Reference(transfer.references)));
}

// Cuts the CSV text into chunks of at most kCsvChunkBytes (anywhere, even inside a row) and
// counts the rows each chunk completes.
class CsvChunker {
 public:
  explicit CsvChunker(grpc::ServerWriter<v1::ExportStatementCsvChunk>* writer) : writer_(writer) {}

  // False when the client is gone.
  bool AddLine(std::string_view line, bool is_row) {
    buffer_.append(line.data(), line.size());
    buffer_.push_back('\n');
    if (is_row) row_ends_.push_back(sent_bytes_ + buffer_.size());
    while (buffer_.size() >= kCsvChunkBytes) {
      if (!Send(kCsvChunkBytes, /*last=*/false)) return false;
    }
    return true;
  }
  bool Finish() { return Send(buffer_.size(), /*last=*/true); }
  int64_t rows_added() const { return rows_sent_ + static_cast<int64_t>(row_ends_.size()); }

 private:
  bool Send(size_t bytes, bool last) {
    v1::ExportStatementCsvChunk chunk;
    chunk.set_data(buffer_.substr(0, bytes));
    buffer_.erase(0, bytes);
    sent_bytes_ += bytes;
    while (!row_ends_.empty() && row_ends_.front() <= sent_bytes_) {
      row_ends_.pop_front();
      ++rows_sent_;
    }
    chunk.set_rows_so_far(rows_sent_);
    chunk.set_last(last);
    return writer_->Write(chunk);
  }

  grpc::ServerWriter<v1::ExportStatementCsvChunk>* writer_;
  std::string buffer_;
  std::deque<uint64_t> row_ends_;  // end offsets (in the whole CSV) of rows not fully sent
  uint64_t sent_bytes_ = 0;
  int64_t rows_sent_ = 0;
};

absl::Status TooManyRows(int64_t rows) {
  return absl::ResourceExhaustedError(absl::StrCat("the statement range holds ", rows,
                                                   " rows, more than ", kMaxCsvRows,
                                                   "; narrow from_time / to_time"));
}

absl::Status ClientGone() { return absl::CancelledError("the client stopped reading the export"); }

}  // namespace

absl::Status WalletGrpc::StreamCsv(grpc::ServerContext& context, const Account& wallet,
                                   const TransferFilter& filter,
                                   grpc::ServerWriter<v1::ExportStatementCsvChunk>* writer) {
  CsvChunker chunker(writer);
  PageSpec page{.limit = kCsvPageRows, .after_id = 0, .newest_first = false};
  bool first_page = true;
  do {
    if (context.IsCancelled()) return ClientGone();
    ML_ASSIGN_OR_RETURN(Page<StatementRow> rows, store_->Statement(wallet.id, filter, page));
    if (first_page && rows.total_count > kMaxCsvRows) return TooManyRows(rows.total_count);
    if (first_page && !chunker.AddLine(kCsvHeader, /*is_row=*/false)) return ClientGone();
    first_page = false;
    for (const StatementRow& row : rows.items) {
      if (!chunker.AddLine(CsvRow(row), /*is_row=*/true)) return ClientGone();
    }
    if (chunker.rows_added() > kMaxCsvRows) return TooManyRows(chunker.rows_added());
    page.after_id = rows.next_after_id;
  } while (page.after_id != 0);
  if (!chunker.Finish()) return ClientGone();
  return absl::OkStatus();
}

grpc::Status WalletGrpc::ExportStatementCsv(
    grpc::ServerContext* context, const v1::ExportStatementCsvRequest* request,
    grpc::ServerWriter<v1::ExportStatementCsvChunk>* writer) {
  return ToGrpcStatusWithDetails([&]() -> absl::Status {
    ML_ASSIGN_OR_RETURN(Principal caller,
                        auth_->Authorize(*context, {Role::kLender, Role::kOps, Role::kService}));
    ML_ASSIGN_OR_RETURN(StatementQuery query, ParseStatementFilter(caller, request->filter()));
    // Pinning "now" keeps the export one fixed range however long it streams.
    if (!query.filter.to_time) query.filter.to_time = clock_->Now();
    if (active_exports_.fetch_add(1) >= kMaxConcurrentExports) {
      active_exports_.fetch_sub(1);
      common::v1::RetryDelay delay;
      delay.set_retry_after_ms(kExportRetryAfterMs);
      return AttachDetail(
          absl::ResourceExhaustedError(absl::StrCat(
              kMaxConcurrentExports, " statement exports are already running; retry shortly")),
          delay);
    }
    absl::Cleanup release = [this] { active_exports_.fetch_sub(1); };
    ML_ASSIGN_OR_RETURN(Account wallet, wallets_->FindWallet(query.lender, Currency::Usd()));
    return StreamCsv(*context, wallet, query.filter, writer);
  }());
}

// ---- GetPortfolio -----------------------------------------------------------------------------

namespace {

Money UsdMinor(int64_t minor) { return Money::FromMinor(Currency::Usd(), minor); }

absl::StatusOr<std::vector<LoanStatus>> ParseLoanStatuses(const pb::RepeatedField<int>& wire,
                                                          std::string_view field) {
  std::vector<LoanStatus> out;
  for (int i = 0; i < wire.size(); ++i) {
    if (wire[i] == v1::LOAN_STATUS_UNSPECIFIED || !v1::LoanStatus_IsValid(wire[i])) {
      return FieldError(absl::StrCat(AsAbsl(field), "[", i, "]"),
                        absl::StrCat(wire[i], " is not a loan status"));
    }
    out.push_back(static_cast<LoanStatus>(wire[i]));
  }
  return out;
}

void MonthToProto(const MonthlyAmount& amount, v1::MonthlyAmount* out) {
  out->set_year(static_cast<int32_t>(amount.month.year()));
  out->set_month(amount.month.month());
  ToProto(UsdMinor(amount.amount_minor), out->mutable_amount());
}

void LineToProto(const PortfolioLine& line, v1::PortfolioLoan* out) {
  IdToProto(line.loan_id, out->mutable_loan_id());
  out->set_loan_name(line.loan_name);
  out->set_country(line.country);
  out->set_sector(static_cast<common::v1::Sector>(line.sector));
  out->set_status(static_cast<v1::LoanStatus>(line.status));
  out->set_delinquent(line.delinquent);
  ToProto(UsdMinor(line.lent_minor), out->mutable_lent());
  ToProto(UsdMinor(line.repaid_minor), out->mutable_repaid());
  ToProto(UsdMinor(line.outstanding_minor), out->mutable_outstanding());
  ToProto(UsdMinor(line.lost_to_default_minor), out->mutable_lost_to_default());
  ToProto(UsdMinor(line.lost_to_currency_loss_minor), out->mutable_lost_to_currency_loss());
  ToProto(UsdMinor(line.refunded_minor), out->mutable_refunded());
  ToProto(line.first_lent_at, out->mutable_first_lent_at());
  for (const MonthlyAmount& m : line.expected) MonthToProto(m, out->add_expected_repayments());
}

void TotalsToProto(const PortfolioTotals& totals, v1::PortfolioTotals* out) {
  out->set_loan_count(totals.loan_count);
  out->set_active_loan_count(totals.active_loan_count);
  ToProto(UsdMinor(totals.lent_minor), out->mutable_lent());
  ToProto(UsdMinor(totals.repaid_minor), out->mutable_repaid());
  ToProto(UsdMinor(totals.outstanding_minor), out->mutable_outstanding());
  ToProto(UsdMinor(totals.lost_to_default_minor), out->mutable_lost_to_default());
  ToProto(UsdMinor(totals.lost_to_currency_loss_minor), out->mutable_lost_to_currency_loss());
  ToProto(UsdMinor(totals.refunded_minor), out->mutable_refunded());
  out->set_repayment_rate_bps(totals.repayment_rate_bps);
}

}  // namespace

grpc::Status WalletGrpc::GetPortfolio(grpc::ServerContext* context,
                                      const v1::GetPortfolioRequest* request,
                                      v1::GetPortfolioResponse* response) {
  return ToGrpcStatusWithDetails([&]() -> absl::Status {
    ML_ASSIGN_OR_RETURN(Principal caller,
                        auth_->Authorize(*context, {Role::kLender, Role::kOps, Role::kService}));
    ML_ASSIGN_OR_RETURN(LenderId lender, WalletLender(caller, request->lender_id(), "lender_id"));
    ML_ASSIGN_OR_RETURN(std::vector<LoanStatus> statuses,
                        ParseLoanStatuses(request->statuses(), "statuses"));
    ML_ASSIGN_OR_RETURN(PageSpec page, ParsePage(request->page(), PageKind::kList));
    std::vector<PortfolioPosition> positions;
    absl::StatusOr<Account> wallet = wallets_->FindWallet(lender, Currency::Usd());
    if (wallet.ok()) {
      ML_ASSIGN_OR_RETURN(positions, store_->ListPortfolio(wallet->id, kMaxPortfolioLoans + 1));
    } else if (!absl::IsNotFound(wallet.status())) {
      return wallet.status();
    }
    if (positions.size() > kMaxPortfolioLoans) {
      return absl::ResourceExhaustedError(
          absl::StrCat("lender ", lender.value(), " has lent to more than ", kMaxPortfolioLoans,
                       " loans, more than one portfolio read covers"));
    }
    ML_ASSIGN_OR_RETURN(Portfolio portfolio, BuildPortfolio(positions));
    PortfolioPage shown = SelectPortfolioPage(portfolio.loans, statuses, page.after_id, page.limit);
    TotalsToProto(portfolio.totals, response->mutable_totals());
    for (const PortfolioLine& line : shown.loans) LineToProto(line, response->add_loans());
    for (const MonthlyAmount& m : portfolio.expected) {
      MonthToProto(m, response->add_expected_repayments());
    }
    ToPageResponse(shown.next_offset, shown.total_count, response->mutable_page());
    return absl::OkStatus();
  }());
}

}  // namespace microlend::lending
