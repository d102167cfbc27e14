// LoanGrpc: the gRPC adapter of microlend.lending.v1.LoanService for what moves no money:
// drafts, review, the catalogue and schedules. Thin: each handler authorizes the caller, parses
// the request into a domain command (bad input is INVALID_ARGUMENT naming the field, nothing
// reaches the core), calls LoanBook, and maps the result. The rules live in core/loans.h.
//
// Roles (UNAUTHENTICATED without a valid token, PERMISSION_DENIED for a role not listed):
//   CreateLoanDraft            partner (for itself: partner_id empty or its own; another is
//                              PERMISSION_DENIED), ops (partner_id required)
//   UpdateLoanDraft, SubmitLoanForReview   partner (its own loans; others NOT_FOUND), ops
//   ReviewLoan                 ops
//   GetLoan, ListLoans, GetRepaymentSchedule   any authenticated role; DRAFT and REVIEW loans
//                              only to their partner and ops (others NOT_FOUND / not listed)
//   ReportDisbursement, PostRepayment, PostBulkRepayments   partner (its own loans; others
//                              NOT_FOUND), ops
//   ListRepayments, ListLoanLenders   any authenticated role for public loans
//   RefundLoan                 ops
//   RunLifecycleSweep          ops, service
// The money-moving handlers (loan_money_grpc.cc) call LoanDesk (core/loan_desk.h); the rest of
// LoanService (catalogue watch, matchability, trending) stays UNIMPLEMENTED for now.
//
// Idempotency: mutations run under RequestKey{role:subject, request_id, "LoanService.<Rpc>",
// BodyHash(request)}; the remembered success is the full response, replayed with
// mutation.replayed = true.
//
// ListLoans pages by keyset: next_page_token holds the sort key and id of the page's last loan
// and a hash of the search (filters, sort, seed; not the view, so a client may switch views
// between pages); the next page starts after that loan, so pages
// neither repeat nor skip loans while nothing changes, and page 100 costs what page 1 costs. A
// malformed token, or one used with another search, is INVALID_ARGUMENT. At most
// kMaxLoanPageSize loans a page. total_count is exact up to kLoanCountCap (core/loans.h); beyond
// it total_count is kLoanCountCap and total_count_is_lower_bound is set. view LOAN_VIEW_CARD
// returns the loans without story and schedule (LoanView::kCard, ADR 0013); an unknown view is
// INVALID_ARGUMENT.
//
// Thread-safe; the collaborators must outlive the service.
#ifndef MICROLEND_SERVICES_LENDING_LOAN_GRPC_H_
#define MICROLEND_SERVICES_LENDING_LOAN_GRPC_H_

#include <grpcpp/grpcpp.h>

#include "common/clock.h"
#include "microlend/lending/v1/lending.grpc.pb.h"
#include "server/auth_grpc.h"
#include "services/lending/core/loan_desk.h"
#include "services/lending/core/loans.h"

namespace microlend::lending {

class LoanGrpc final : public v1::LoanService::Service {
 public:
  LoanGrpc(LoanBook* book, LoanDesk* desk, LedgerStore* ledger_store,
           const GrpcAuthenticator* auth, const Clock* clock);

  grpc::Status CreateLoanDraft(grpc::ServerContext* context,
                               const v1::CreateLoanDraftRequest* request,
                               v1::CreateLoanDraftResponse* response) override;
  grpc::Status UpdateLoanDraft(grpc::ServerContext* context,
                               const v1::UpdateLoanDraftRequest* request,
                               v1::UpdateLoanDraftResponse* response) override;
  grpc::Status SubmitLoanForReview(grpc::ServerContext* context,
                                   const v1::SubmitLoanForReviewRequest* request,
                                   v1::SubmitLoanForReviewResponse* response) override;
  grpc::Status ReviewLoan(grpc::ServerContext* context, const v1::ReviewLoanRequest* request,
                          v1::ReviewLoanResponse* response) override;
  grpc::Status GetLoan(grpc::ServerContext* context, const v1::GetLoanRequest* request,
                       v1::GetLoanResponse* response) override;
  grpc::Status ListLoans(grpc::ServerContext* context, const v1::ListLoansRequest* request,
                         v1::ListLoansResponse* response) override;
  grpc::Status GetRepaymentSchedule(grpc::ServerContext* context,
                                    const v1::GetRepaymentScheduleRequest* request,
                                    v1::GetRepaymentScheduleResponse* response) override;

  grpc::Status ReportDisbursement(grpc::ServerContext* context,
                                  const v1::ReportDisbursementRequest* request,
                                  v1::ReportDisbursementResponse* response) override;
  grpc::Status PostRepayment(grpc::ServerContext* context, const v1::PostRepaymentRequest* request,
                             v1::PostRepaymentResponse* response) override;
  grpc::Status PostBulkRepayments(grpc::ServerContext* context,
                                  const v1::PostBulkRepaymentsRequest* request,
                                  v1::PostBulkRepaymentsResponse* response) override;
  grpc::Status ListRepayments(grpc::ServerContext* context,
                              const v1::ListRepaymentsRequest* request,
                              v1::ListRepaymentsResponse* response) override;
  grpc::Status RefundLoan(grpc::ServerContext* context, const v1::RefundLoanRequest* request,
                          v1::RefundLoanResponse* response) override;
  grpc::Status ListLoanLenders(grpc::ServerContext* context,
                               const v1::ListLoanLendersRequest* request,
                               v1::ListLoanLendersResponse* response) override;
  grpc::Status RunLifecycleSweep(grpc::ServerContext* context,
                                 const v1::RunLifecycleSweepRequest* request,
                                 v1::RunLifecycleSweepResponse* response) override;

 private:
  LoanBook* book_;
  LoanDesk* desk_;
  LedgerStore* ledger_store_;
  const GrpcAuthenticator* auth_;
  const Clock* clock_;
};

// The wire form of a loan (replaces *out).
void ToProto(const Loan& loan, v1::Loan* out);
// Who is asking, for loan visibility (ops; a partner's own loans).
Viewer ViewerOf(const Principal& caller);
absl::StatusOr<absl::CivilDay> ParseDate(const common::v1::CivilDate& date, std::string_view field);
void DateToProto(absl::CivilDay day, common::v1::CivilDate* out);

}  // namespace microlend::lending

#endif  // MICROLEND_SERVICES_LENDING_LOAN_GRPC_H_
