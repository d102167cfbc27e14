// LoanService handlers that move money or read what money did (see loan_grpc.h for roles).
// Thin: authorize, parse, call LoanDesk, map. Each success is remembered as the full response.
#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "services/lending/loan_grpc.h"
#include "services/lending/proto_convert.h"

namespace microlend::lending {
namespace {

constexpr char kReportDisbursement[] = "LoanService.ReportDisbursement";
constexpr char kPostRepayment[] = "LoanService.PostRepayment";
constexpr char kPostBulkItem[] = "LoanService.PostBulkRepayments.item";
constexpr char kRefundLoan[] = "LoanService.RefundLoan";

Money Usd(int64_t minor) { return Money::FromMinor(Currency::Usd(), minor); }

std::optional<PartnerId> PartnerOf(const Principal& caller) {
  return caller.role == Role::kPartner ? ViewerOf(caller).partner : std::nullopt;
}

void RepaymentToProto(const RepaymentRecord& r, v1::Repayment* out) {
  IdToProto(r.id, out->mutable_id());
  IdToProto(r.loan_id, out->mutable_loan_id());
  IdToProto(r.partner_id, out->mutable_partner_id());
  ToProto(r.local_amount, out->mutable_local_amount());
  out->set_settlement_fx_rate(r.settlement_fx_rate);
  DateToProto(r.repaid_on, out->mutable_repaid_on());
  out->set_partner_reference(r.partner_reference);
  ToProto(Usd(r.expected_usd_minor), out->mutable_expected_usd_amount());
  ToProto(Usd(r.credited_usd_minor), out->mutable_credited_usd_amount());
  ToProto(Usd(r.coverage_usd_minor), out->mutable_partner_coverage_amount());
  ToProto(Usd(r.currency_loss_minor), out->mutable_currency_loss_amount());
  out->set_credited_account_count(r.credited_account_count);
  ToProto(r.posted_at, out->mutable_posted_at());
}

// The loan as it is after an operation: its details as read before, its money as committed.
void LoanAfter(Loan loan, const std::optional<LoanMoney>& money, v1::Loan* out) {
  if (money) OverlayMoney(*money, loan);
  ToProto(loan, out);
}

absl::StatusOr<RepaymentInput> ParseRepayment(const v1::BulkRepaymentItem& item,
                                              std::string_view prefix) {
  RepaymentInput input;
  ML_ASSIGN_OR_RETURN(input.loan_id,
                      ParseRequiredId<LoanId>(item.loan_id(), absl::StrCat(AsAbsl(prefix), "loan_id")));
  ML_ASSIGN_OR_RETURN(input.local_amount,
                      ParsePositiveMoney(item.local_amount(), absl::StrCat(AsAbsl(prefix), "local_amount")));
  input.settlement_fx_rate = item.settlement_fx_rate();
  ML_ASSIGN_OR_RETURN(input.repaid_on,
                      ParseDate(item.repaid_on(), absl::StrCat(AsAbsl(prefix), "repaid_on")));
  input.partner_reference = item.partner_reference();
  return input;
}

}  // namespace

grpc::Status LoanGrpc::ReportDisbursement(grpc::ServerContext* context,
                                          const v1::ReportDisbursementRequest* request,
                                          v1::ReportDisbursementResponse* response) {
  return ToGrpcStatusWithDetails([&]() -> absl::Status {
    ML_ASSIGN_OR_RETURN(Principal caller, auth_->Authorize(*context, {Role::kPartner, Role::kOps}));
    ML_ASSIGN_OR_RETURN(LoanId id, ParseRequiredId<LoanId>(request->loan_id(), "loan_id"));
    ML_ASSIGN_OR_RETURN(absl::CivilDay on, ParseDate(request->disbursed_on(), "disbursed_on"));
    ML_ASSIGN_OR_RETURN(Money local, ParsePositiveMoney(request->local_amount(), "local_amount"));
    ML_ASSIGN_OR_RETURN(RequestKey key, MakeRequestKey(caller, request->request_id(),
                                                       kReportDisbursement, *request));
    ML_ASSIGN_OR_RETURN(Loan loan, book_->Get(ViewerOf(caller), id));
    LedgerReply reply = desk_->ReportDisbursement(
        std::move(key), PartnerOf(caller), id, on, local,
        [&, loan](const DeskOutcome& outcome) {
          v1::ReportDisbursementResponse out;
          LoanAfter(loan, outcome.loan, out.mutable_loan());
          if (outcome.transfer) IdToProto(outcome.transfer->id, out.mutable_disbursement_transfer_id());
          out.mutable_mutation()->set_request_id(request->request_id());
          return out.SerializeAsString();
        });
    return DecodeReply(reply, response);
  }());
}

grpc::Status LoanGrpc::PostRepayment(grpc::ServerContext* context,
                                     const v1::PostRepaymentRequest* request,
                                     v1::PostRepaymentResponse* response) {
  return ToGrpcStatusWithDetails([&]() -> absl::Status {
    ML_ASSIGN_OR_RETURN(Principal caller, auth_->Authorize(*context, {Role::kPartner, Role::kOps}));
    v1::BulkRepaymentItem item;
    *item.mutable_loan_id() = request->loan_id();
    *item.mutable_local_amount() = request->local_amount();
    item.set_settlement_fx_rate(request->settlement_fx_rate());
    *item.mutable_repaid_on() = request->repaid_on();
    item.set_partner_reference(request->partner_reference());
    ML_ASSIGN_OR_RETURN(RepaymentInput input, ParseRepayment(item, ""));
    ML_ASSIGN_OR_RETURN(RequestKey key,
                        MakeRequestKey(caller, request->request_id(), kPostRepayment, *request));
    ML_ASSIGN_OR_RETURN(Loan loan, book_->Get(ViewerOf(caller), input.loan_id));
    LedgerReply reply = desk_->PostRepayment(
        std::move(key), PartnerOf(caller), input, [&, loan](const DeskOutcome& outcome) {
          v1::PostRepaymentResponse out;
          if (outcome.repayment) RepaymentToProto(*outcome.repayment, out.mutable_repayment());
          LoanAfter(loan, outcome.loan, out.mutable_loan());
          out.mutable_mutation()->set_request_id(request->request_id());
          return out.SerializeAsString();
        });
    return DecodeReply(reply, response);
  }());
}

grpc::Status LoanGrpc::PostBulkRepayments(grpc::ServerContext* context,
                                          const v1::PostBulkRepaymentsRequest* request,
                                          v1::PostBulkRepaymentsResponse* response) {
  return ToGrpcStatusWithDetails([&]() -> absl::Status {
    ML_ASSIGN_OR_RETURN(Principal caller, auth_->Authorize(*context, {Role::kPartner, Role::kOps}));
    const int n = request->items_size();
    if (n == 0 || static_cast<size_t>(n) > desk_->options().max_bulk_repayments) {
      return FieldError("items", absl::StrCat("must hold 1 to ",
                                              desk_->options().max_bulk_repayments, " items"));
    }
    ML_ASSIGN_OR_RETURN(RequestKey whole, MakeRequestKey(caller, request->request_id(),
                                                         "LoanService.PostBulkRepayments", *request));
    // Items that parse are posted together (LoanDesk::PostRepayments), so that they commit in
    // as few transactions as fit; each is its own request: a retry replays the items that
    // completed and applies the rest.
    std::vector<absl::Status> statuses(n);
    std::vector<std::string> payloads(n);
    std::vector<RepaymentItem> items;
    std::vector<int> item_index;
    for (int i = 0; i < n; ++i) {
      absl::StatusOr<RepaymentInput> input =
          ParseRepayment(request->items(i), absl::StrCat("items[", i, "]."));
      if (!input.ok()) {
        statuses[i] = input.status();
        continue;
      }
      RequestKey key{.caller = whole.caller,
                     .request_id = absl::StrCat(request->request_id(), "#", i),
                     .method = kPostBulkItem,
                     .body_hash = BodyHash(request->items(i))};
      items.push_back({.key = std::move(key),
                       .input = *std::move(input),
                       .encode = [](const DeskOutcome& outcome) {
                         v1::Repayment out;
                         if (outcome.repayment) RepaymentToProto(*outcome.repayment, &out);
                         return out.SerializeAsString();
                       }});
      item_index.push_back(i);
    }
    std::vector<LedgerReply> replies = desk_->PostRepayments(PartnerOf(caller), std::move(items));
    for (size_t k = 0; k < replies.size(); ++k) {
      absl::Status& status = statuses[item_index[k]];
      status = replies[k].status;
      // The desk names the field ("settlement_fx_rate: ..."); name the item too, as the parse
      // errors above do.
      if (status.code() == absl::StatusCode::kInvalidArgument) {
        status = absl::InvalidArgumentError(
            absl::StrCat("items[", item_index[k], "].", status.message()));
      }
      payloads[item_index[k]] = std::move(replies[k].payload);
    }
    for (int i = 0; i < n; ++i) {
      v1::BulkRepaymentResult* result = response->add_results();
      result->set_index(i);
      absl::Status status = statuses[i];
      if (status.ok() && !result->mutable_repayment()->ParseFromString(payloads[i])) {
        status = absl::InternalError("the remembered repayment is unreadable");
      }
      *result->mutable_status() = ToRpcStatus(status);
      if (status.ok()) {
        response->set_succeeded_count(response->succeeded_count() + 1);
      } else {
        result->clear_repayment();
        response->set_failed_count(response->failed_count() + 1);
      }
    }
    response->mutable_mutation()->set_request_id(request->request_id());
    return absl::OkStatus();
  }());
}

grpc::Status LoanGrpc::ListRepayments(grpc::ServerContext* context,
                                      const v1::ListRepaymentsRequest* request,
                                      v1::ListRepaymentsResponse* response) {
  return ToGrpcStatusWithDetails([&]() -> absl::Status {
    ML_ASSIGN_OR_RETURN(Principal caller, auth_->Authenticate(*context));
    ML_ASSIGN_OR_RETURN(LoanId id, ParseRequiredId<LoanId>(request->loan_id(), "loan_id"));
    ML_ASSIGN_OR_RETURN(PageSpec page, ParsePage(request->page(), PageKind::kList));
    ML_ASSIGN_OR_RETURN(Loan loan, book_->Get(ViewerOf(caller), id));
    ML_ASSIGN_OR_RETURN(Page<RepaymentRecord> found, ledger_store_->ListRepayments(loan.id, page));
    for (const RepaymentRecord& r : found.items) RepaymentToProto(r, response->add_repayments());
    ToPageResponse(found.next_after_id, found.total_count, response->mutable_page());
    return absl::OkStatus();
  }());
}

grpc::Status LoanGrpc::RefundLoan(grpc::ServerContext* context, const v1::RefundLoanRequest* request,
                                  v1::RefundLoanResponse* response) {
  return ToGrpcStatusWithDetails([&]() -> absl::Status {
    ML_ASSIGN_OR_RETURN(Principal caller, auth_->Authorize(*context, {Role::kOps}));
    ML_ASSIGN_OR_RETURN(LoanId id, ParseRequiredId<LoanId>(request->loan_id(), "loan_id"));
    if (request->reason() == v1::REFUND_REASON_UNSPECIFIED ||
        !v1::RefundReason_IsValid(request->reason())) {
      return FieldError("reason", "must name a refund reason");
    }
    if (request->detail().empty()) return FieldError("detail", "is required");
    ML_ASSIGN_OR_RETURN(RequestKey key,
                        MakeRequestKey(caller, request->request_id(), kRefundLoan, *request));
    ML_ASSIGN_OR_RETURN(Loan loan, book_->Get(ViewerOf(caller), id));
    LedgerReply reply = desk_->RefundLoan(
        std::move(key), id, request->detail(), [&, loan](const DeskOutcome& outcome) {
          v1::RefundLoanResponse out;
          LoanAfter(loan, outcome.loan, out.mutable_loan());
          ToProto(Usd(outcome.refunded_minor), out.mutable_refunded_amount());
          out.set_refunded_account_count(outcome.refunded_accounts);
          out.set_voided_hold_count(outcome.voided_holds);
          out.mutable_mutation()->set_request_id(request->request_id());
          return out.SerializeAsString();
        });
    return DecodeReply(reply, response);
  }());
}

grpc::Status LoanGrpc::ListLoanLenders(grpc::ServerContext* context,
                                       const v1::ListLoanLendersRequest* request,
                                       v1::ListLoanLendersResponse* response) {
  return ToGrpcStatusWithDetails([&]() -> absl::Status {
    ML_ASSIGN_OR_RETURN(Principal caller, auth_->Authenticate(*context));
    ML_ASSIGN_OR_RETURN(LoanId id, ParseRequiredId<LoanId>(request->loan_id(), "loan_id"));
    ML_ASSIGN_OR_RETURN(PageSpec page, ParsePage(request->page(), PageKind::kList));
    ML_ASSIGN_OR_RETURN(Loan loan, book_->Get(ViewerOf(caller), id));
    ML_ASSIGN_OR_RETURN(Page<LoanFunder> found, ledger_store_->ListFunders(loan.id, page));
    for (const LoanFunder& f : found.items) {
      v1::LoanLender* out = response->add_lenders();
      if (f.owner_type == OwnerType::kLender) {
        out->mutable_lender_id()->set_value(f.owner_id);
        out->set_display_name(absl::StrCat("Lender ", f.owner_id));
      } else {
        out->set_display_name(absl::StrCat("Sponsor ", f.owner_id));
      }
      ToProto(Usd(f.amount_minor), out->mutable_amount());
      out->set_share_count(f.share_count);
      ToProto(f.first_lent_at, out->mutable_first_lent_at());
    }
    ToPageResponse(found.next_after_id, found.total_count, response->mutable_page());
    return absl::OkStatus();
  }());
}

grpc::Status LoanGrpc::RunLifecycleSweep(grpc::ServerContext* context,
                                         const v1::RunLifecycleSweepRequest* request,
                                         v1::RunLifecycleSweepResponse* response) {
  return ToGrpcStatusWithDetails([&]() -> absl::Status {
    ML_RETURN_IF_ERROR(auth_->Authorize(*context, {Role::kOps, Role::kService}).status());
    if (request->max_items() < 0) return FieldError("max_items", "must not be negative");
    ML_ASSIGN_OR_RETURN(SweepResult result,
                        desk_->RunSweep(static_cast<size_t>(request->max_items())));
    ToProto(result.as_of, response->mutable_as_of());
    response->set_holds_expired(result.holds_expired);
    response->set_loans_expired(result.loans_expired);
    response->set_loans_flagged_delinquent(result.loans_flagged_delinquent);
    response->set_loans_cleared_delinquent(result.loans_cleared_delinquent);
    response->set_loans_defaulted(result.loans_defaulted);
    response->set_more_remaining(result.more_remaining);
    response->mutable_mutation()->set_request_id(request->request_id());
    return absl::OkStatus();
  }());
}

}  // namespace microlend::lending
