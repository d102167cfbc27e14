// MarketplaceWalk: the marketplace part of `mlctl demo`, played against the real lending server
// from BuildMarketplacePlan() (demo_plan.h). Ops opens the partners; partners post the loans and
// ops approves them; lenders deposit and lend (LendNow, and baskets with Checkout); partners
// report disbursements, then months of repayments in bulk while the lending server's business
// clock is moved forward a month at a time (ServerAdmin.AdvanceClock) and the lifecycle sweep
// runs; one loan repays at a worse FX rate, one stops repaying and defaults, one is never fully
// funded and expires. PrintSummary() then reads everything back from the server.
//
// Re-runs: every request has a fixed id, so nothing is ever applied twice. Each step also reads
// the state first and skips what is done (loans that are no longer fundraising are not lent to
// again, months already reported are not reported again), so a second run is quick, and the clock
// only moves when the state needs it: to reach a month whose repayments are still to be
// reported, or an expiry or a default still to happen. The clock only moves forward and restarts
// at the wall clock with the server, so dates come from the loans (their creation day), never
// from the clock.
//
// Needs the lending server started with --clock_control=true whenever the clock must move (a
// clear FAILED_PRECONDITION otherwise). Not thread-safe; it runs its calls on a few threads.
#ifndef MICROLEND_TOOLS_MLCTL_MARKETPLACE_WALK_H_
#define MICROLEND_TOOLS_MLCTL_MARKETPLACE_WALK_H_

#include <grpcpp/channel.h>

#include <atomic>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "microlend/common/v1/common.grpc.pb.h"
#include "microlend/lending/v1/lending.grpc.pb.h"
#include "mlctl/demo_plan.h"
#include "mlctl/demo_rpc.h"

namespace microlend::demo {

// Calls in flight at once; the lending server groups concurrent ledger mutations into one
// transaction, so a few parallel calls go much further than one.
inline constexpr int kRpcThreads = 8;
// The lending server's default --default_after_days.
inline constexpr int kDefaultAfterDays = 180;

class MarketplaceWalk {
 public:
  MarketplaceWalk(const std::shared_ptr<grpc::Channel>& lending, Tokens* tokens);

  // Every step of the walk, printing one line per step.
  absl::Status Run();
  // Loans, money, losses and three lenders' wallets, as the server reports them now.
  absl::Status PrintSummary();

 private:
  struct PostedLoan {
    std::string id;
    absl::CivilDay created_on;
    std::vector<Installment> schedule;
    int64_t local_minor = 0;
  };
  using LoanStates = absl::flat_hash_map<std::string, lending::v1::Loan>;
  struct Totals {
    absl::flat_hash_map<int, int64_t> by_status;  // loans by lending.v1.LoanStatus
    int64_t delinquent = 0;
    int64_t lent = 0, disbursed = 0, repaid = 0, refunded = 0, written_off = 0;  // USD cents
    int64_t fx_loss = 0;            // borne by lenders, all loans
    int64_t fx_loss_elsewhere = 0;  // of which on loans repaid at their posting rate
    int64_t loans_elsewhere = 0;
  };
  struct RepaymentBatch {
    int partner = 0;
    int number = 0;  // among the partner's batches of the month; names the request
    std::vector<std::pair<int, int64_t>> items;  // (loan index, local minor units)
  };

  absl::Status OpenPartners();
  absl::Status PostLoans();
  absl::Status PostLoan(const PlanLoan& plan, std::atomic<int64_t>& replayed);
  absl::Status Deposit();
  absl::Status Fund();
  absl::Status LendNow(const PlanLoan& loan, const PlanShare& share);
  absl::Status BasketRounds(const PlanLender& lender, const LoanStates& states);
  absl::Status Disburse();
  absl::Status Repay();
  absl::Status ReportMonth(int month, const std::vector<int64_t>& repaid_local,
                           std::vector<int64_t>& due_through);
  std::vector<RepaymentBatch> MonthBatches(int month, const std::vector<int64_t>& repaid_local,
                                           std::vector<int64_t>& due_through) const;
  absl::Status PostRepaymentBatch(int month, absl::CivilDay on, const RepaymentBatch& batch,
                                  std::atomic<int64_t>& items, std::atomic<int64_t>& credited);
  absl::Status ExpireAndDefault();
  absl::Status PrintStories(const LoanStates& states);
  absl::Status PrintLenderSample(int lender, const std::string& why);
  std::pair<int, std::string> BasketLenderSample() const;

  absl::StatusOr<LoanStates> ReadLoans();
  absl::StatusOr<Totals> Tally(const LoanStates& states) const;
  const lending::v1::Loan& StateOf(const LoanStates& states, int loan) const;
  absl::StatusOr<std::vector<int64_t>> RepaidLocal(const LoanStates& states);
  absl::StatusOr<absl::Time> BusinessNow();
  absl::Status MoveClockTo(absl::Time target);
  absl::StatusOr<lending::v1::RunLifecycleSweepResponse> Sweep(const std::string& request_id);
  std::string Elapsed() const;
  std::string Ops();
  std::string PartnerToken(int partner);
  std::string LenderToken(int lender);

  MarketplacePlan plan_;
  Tokens* tokens_;
  std::unique_ptr<lending::v1::PartnerService::Stub> partners_;
  std::unique_ptr<lending::v1::LoanService::Stub> loans_;
  std::unique_ptr<lending::v1::BasketService::Stub> baskets_;
  std::unique_ptr<lending::v1::LenderService::Stub> lenders_;
  std::unique_ptr<common::v1::ServerAdmin::Stub> admin_;
  std::vector<std::string> partner_ids_;  // by plan partner
  std::vector<PostedLoan> posted_;        // by plan loan
  absl::CivilDay first_day_;              // the earliest creation day: month k ends k months later
  absl::Time started_;
};

}  // namespace microlend::demo

#endif  // MICROLEND_TOOLS_MLCTL_MARKETPLACE_WALK_H_
