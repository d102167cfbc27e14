// WalletGrpc: the wallet RPCs of microlend.lending.v1.LenderService (deposits, withdrawals,
// donations, balance, statements) and the portfolio of what the wallet lent. The lender-profile
// RPCs (CreateLender, GetLender, UpdateLender) are not implemented here and answer UNIMPLEMENTED.
// Thin: authorize, parse and validate the whole request (bad input is INVALID_ARGUMENT and
// nothing reaches the core), call Wallets / Ledger (mutations) or LedgerStore (reads), map.
//
// Roles (UNAUTHENTICATED without a valid token, PERMISSION_DENIED for a role not listed):
//   Deposit                       service, ops
//   RequestWithdrawal, Donate     lender (its own wallet), service
//   CancelWithdrawal              lender (its own withdrawal), service, ops
//   ApproveWithdrawal,
//   RejectWithdrawal              ops
//   MarkWithdrawalPaid            ops, service
//   ListWithdrawals, GetBalance,
//   GetStatement,
//   ExportStatementCsv,
//   GetPortfolio                  lender (its own), ops, service
// Object rule: for a lender an empty lender_id means itself; another lender's id is
// PERMISSION_DENIED, decided from the ids alone (nothing is looked up, so nothing about the other
// lender is revealed); another lender's withdrawal is NOT_FOUND, exactly as a missing one. Ops
// and service must name the lender (except ListWithdrawals, where empty means all lenders).
// Currency: the amount's currency picks the wallet (Wallets opens one per currency on the first
// deposit); GetBalance, GetStatement and ExportStatementCsv read the USD wallet.
//
// Idempotency: RequestKey{subject, request_id, "LenderService.<Rpc>", BodyHash(request)}; the
// remembered success is the response without `balance`, which is read after the call (its
// `as_of` says when), so a replay returns the original transfer or withdrawal and a current
// balance, with mutation.replayed = true.
//
// ExportStatementCsv streams RFC 4180 CSV ('\n' line ends) in chunks of at most kCsvChunkBytes,
// paging through the statement kCsvPageRows at a time, oldest first, up to the request's
// to_time (or the time of the call). RESOURCE_EXHAUSTED when the range holds more than
// kMaxCsvRows rows or kMaxConcurrentExports exports are already running.
//
//
// GetPortfolio values every loan the lender's USD wallet lent to (core/loan_stats.h: the
// arithmetic, rounding and what each amount means), read in one query (LedgerStore::
// ListPortfolio). Totals and the response's expected_repayments cover the whole portfolio; the
// statuses filter and the page narrow only `loans`, most recent first_lent_at first (page_token:
// the offset into the filtered list). A lender without a wallet has an empty portfolio; one with
// more than kMaxPortfolioLoans loans gets RESOURCE_EXHAUSTED.
//
// Thread-safe. All pointers must outlive the service.
#ifndef MICROLEND_SERVICES_LENDING_WALLET_GRPC_H_
#define MICROLEND_SERVICES_LENDING_WALLET_GRPC_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "microlend/lending/v1/lending.grpc.pb.h"
#include "server/auth_grpc.h"
#include "services/lending/core/ledger.h"
#include "services/lending/core/ledger_store.h"
#include "services/lending/core/wallets.h"

namespace microlend::lending {

inline constexpr size_t kCsvChunkBytes = 64 * 1024;
inline constexpr int32_t kCsvPageRows = 500;
inline constexpr int64_t kMaxCsvRows = 1'000'000;
inline constexpr int kMaxConcurrentExports = 4;
inline constexpr int64_t kExportRetryAfterMs = 1000;

class WalletGrpc final : public v1::LenderService::Service {
 public:
  WalletGrpc(Ledger* ledger, Wallets* wallets, LedgerStore* store, const GrpcAuthenticator* auth,
             const Clock* clock);

  grpc::Status Deposit(grpc::ServerContext* context, const v1::DepositRequest* request,
                       v1::DepositResponse* response) override;
  grpc::Status RequestWithdrawal(grpc::ServerContext* context,
                                 const v1::RequestWithdrawalRequest* request,
                                 v1::RequestWithdrawalResponse* response) override;
  grpc::Status CancelWithdrawal(grpc::ServerContext* context,
                                const v1::CancelWithdrawalRequest* request,
                                v1::CancelWithdrawalResponse* response) override;
  grpc::Status ApproveWithdrawal(grpc::ServerContext* context,
                                 const v1::ApproveWithdrawalRequest* request,
                                 v1::ApproveWithdrawalResponse* response) override;
  grpc::Status RejectWithdrawal(grpc::ServerContext* context,
                                const v1::RejectWithdrawalRequest* request,
                                v1::RejectWithdrawalResponse* response) override;
  grpc::Status MarkWithdrawalPaid(grpc::ServerContext* context,
                                  const v1::MarkWithdrawalPaidRequest* request,
                                  v1::MarkWithdrawalPaidResponse* response) override;
  grpc::Status ListWithdrawals(grpc::ServerContext* context,
                               const v1::ListWithdrawalsRequest* request,
                               v1::ListWithdrawalsResponse* response) override;
  grpc::Status Donate(grpc::ServerContext* context, const v1::DonateRequest* request,
                      v1::DonateResponse* response) override;
  grpc::Status GetBalance(grpc::ServerContext* context, const v1::GetBalanceRequest* request,
                          v1::GetBalanceResponse* response) override;
  grpc::Status GetStatement(grpc::ServerContext* context, const v1::GetStatementRequest* request,
                            v1::GetStatementResponse* response) override;
  grpc::Status ExportStatementCsv(grpc::ServerContext* context,
                                  const v1::ExportStatementCsvRequest* request,
                                  grpc::ServerWriter<v1::ExportStatementCsvChunk>* writer) override;
  grpc::Status GetPortfolio(grpc::ServerContext* context, const v1::GetPortfolioRequest* request,
                            v1::GetPortfolioResponse* response) override;

 private:
  // One step of the withdrawal workflow through Ledger::AdvanceWithdrawal; `decided_by` is
  // echoed in the response for decisions (empty for payment).
  template <typename Response>
  absl::Status Advance(const Principal& caller, const google::protobuf::Message& request,
                       const std::string& request_id, std::string_view method, WithdrawalId id,
                       WithdrawalState to, std::string note, bool decision, Response* response);
  // The lender's wallet balance in `currency` now.
  absl::Status FillBalance(LenderId lender, Currency currency, v1::Balance* out);
  // The closing balance of the statement range and the opening one (just before from_time).
  absl::Status FillStatementBalances(const Account& wallet, const TransferFilter& filter,
                                     v1::GetStatementResponse* response);
  // Streams the CSV of `wallet` for `filter` (its to_time pinned).
  absl::Status StreamCsv(grpc::ServerContext& context, const Account& wallet,
                         const TransferFilter& filter,
                         grpc::ServerWriter<v1::ExportStatementCsvChunk>* writer);

  Ledger* ledger_;
  Wallets* wallets_;
  LedgerStore* store_;
  const GrpcAuthenticator* auth_;
  const Clock* clock_;
  std::atomic<int> active_exports_{0};
};

}  // namespace microlend::lending

#endif  // MICROLEND_SERVICES_LENDING_WALLET_GRPC_H_
