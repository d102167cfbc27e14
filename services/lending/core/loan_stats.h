// Loan statistics: what loans did with lenders' money, seen by one lender (its portfolio,
// lending.v1 LenderService.GetPortfolio) and by one partner (its track record, PartnerService.
// GetPartnerStats). Pure functions over rows the stores read (LedgerStore::ListPortfolio,
// PartnerStore::LoanTotals), so the arithmetic is the same whichever store produced them.
// All amounts are USD minor units. Thread-safe: no state, no clock, no I/O.
//
// Rates are basis points with integer arithmetic: floor(numerator x 10000 / denominator) with a
// 128-bit intermediate (rounded down, never up), 0 when the denominator is 0, and capped at
// INT32_MAX (a ratio above 214,748x, which only a currency loss far larger than the principal
// repaid could reach).
//
// A lender's part of one loan (s = what it lent, C = what repayments credited it, R = what expiry
// or refund returned, U = the loan's USD principal, L = the loan's currency loss borne by
// funders, cumulative):
//   lost_to_currency_loss  ENDED: s - C, the lender's exact unrecovered amount; since repayments
//                          are split on the cumulative entitlement (core/repayment_split.h) this
//                          is floor or ceil of s x L / U, and the loan's lenders' parts sum
//                          exactly to L. PAYING_BACK, DEFAULTED: floor(s x L / U), rounded down
//                          (not Allocate, which needs every funder of the loan; floor never
//                          makes outstanding or lost_to_default negative). Otherwise 0.
//   outstanding            PAYING_BACK: s - C - currency loss part; FUNDRAISING, FUNDED: s - R
//                          (the money is out and nothing came back yet); otherwise 0.
//   lost_to_default        DEFAULTED: s - C - currency loss part (recoveries after the default
//                          lower it); otherwise 0.
//   refunded               R.
// So for every loan s = repaid + outstanding + lost_to_default + lost_to_currency_loss +
// refunded, exactly.
//
// Expected repayments of one loan: the lender's outstanding split over the unpaid part of each
// schedule line (repayments pay the lines in order, earliest first), in proportion to the line's
// unpaid local principal, with Allocate (largest remainder, rotation 0). The posting rate is one
// rate for the whole loan, so each part is the lender's share of that line's USD at the posting
// rate to within a cent, and the parts sum exactly to the outstanding amount. Lines are summed by
// the calendar month of their due date.
//
// Totals cover every position given (the adapter passes the whole portfolio, whatever the page
// or status filter). active_loan_count counts loans not yet closed (FUNDRAISING, FUNDED,
// PAYING_BACK). repayment_rate_bps = repaid / (repaid + lost_to_default + lost_to_currency_loss)
// over ENDED and DEFAULTED loans.
//
// Partner stats (definitions of lending.v1.PartnerStats; "active" = PAYING_BACK or DEFAULTED,
// a loan's outstanding principal = U - repaid_usd - currency_loss, i.e. the principal at the
// posting rate not yet repaid):
//   delinquency_rate_bps   arrears on active loans / outstanding on active loans; a loan's
//                          arrears are its local arrears at the posting rate (floor), capped at
//                          its outstanding
//   default_rate_bps       outstanding of DEFAULTED loans / U of disbursed loans (PAYING_BACK,
//                          ENDED, DEFAULTED)
//   par30_bps              outstanding of active loans more than 30 days in arrears /
//                          outstanding on active loans
//   currency_loss_rate_bps funders' currency loss / USD repaid to lenders, over all loans
//   amount_raised          funded USD of loans not EXPIRED or REFUNDED (returned money was not
//                          raised)
#ifndef MICROLEND_SERVICES_LENDING_CORE_LOAN_STATS_H_
#define MICROLEND_SERVICES_LENDING_CORE_LOAN_STATS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "common/ids.h"
#include "services/lending/core/ledger_store.h"

namespace microlend::lending {

// The most loans one portfolio read returns; a lender with more gets ResourceExhausted.
inline constexpr size_t kMaxPortfolioLoans = 50'000;

// floor(numerator x 10000 / denominator), 0 when denominator is 0, capped at INT32_MAX. Both
// must be >= 0 (a negative one is a bug in the caller: crashes).
int32_t RateBps(int64_t numerator, int64_t denominator);

struct MonthlyAmount {
  absl::CivilMonth month;
  int64_t amount_minor = 0;
  friend bool operator==(const MonthlyAmount&, const MonthlyAmount&) = default;
};

// One loan of a lender's portfolio, this lender's part only.
struct PortfolioLine {
  LoanId loan_id{0};
  std::string loan_name;
  std::string country;
  int32_t sector = 0;
  LoanStatus status = LoanStatus::kFundraising;
  bool delinquent = false;
  int64_t lent_minor = 0;
  int64_t repaid_minor = 0;
  int64_t outstanding_minor = 0;
  int64_t lost_to_default_minor = 0;
  int64_t lost_to_currency_loss_minor = 0;
  int64_t refunded_minor = 0;
  absl::Time first_lent_at;
  std::vector<MonthlyAmount> expected;  // ascending months, no zero amounts
  friend bool operator==(const PortfolioLine&, const PortfolioLine&) = default;
};

struct PortfolioTotals {
  int64_t loan_count = 0;
  int64_t active_loan_count = 0;
  int64_t lent_minor = 0;
  int64_t repaid_minor = 0;
  int64_t outstanding_minor = 0;
  int64_t lost_to_default_minor = 0;
  int64_t lost_to_currency_loss_minor = 0;
  int64_t refunded_minor = 0;
  int32_t repayment_rate_bps = 0;
  friend bool operator==(const PortfolioTotals&, const PortfolioTotals&) = default;
};

struct Portfolio {
  PortfolioTotals totals;
  std::vector<PortfolioLine> loans;     // in the order of the positions given
  std::vector<MonthlyAmount> expected;  // over every loan, ascending months
};

// One position valued (see the header comment). Internal when the row breaks the invariants
// (a part would be negative, or the loan's USD principal is 0 once repayments started).
absl::StatusOr<PortfolioLine> ValuePosition(const PortfolioPosition& position);

// Every position valued, with totals. Internal as ValuePosition.
absl::StatusOr<Portfolio> BuildPortfolio(const std::vector<PortfolioPosition>& positions);

// The page of `loans` after skipping `offset` of those whose status is in `statuses` (empty =
// all): at most `limit` lines; next_offset is 0 when no more match; total_count counts matches.
struct PortfolioPage {
  std::vector<PortfolioLine> loans;
  int64_t next_offset = 0;
  int64_t total_count = 0;
};
PortfolioPage SelectPortfolioPage(const std::vector<PortfolioLine>& loans,
                                  const std::vector<LoanStatus>& statuses, int64_t offset,
                                  int32_t limit);

// Sums over one partner's loans (those that reached FUNDRAISING), as the store reads them in one
// aggregate; the definitions are those of the header comment.
struct PartnerLoanTotals {
  int64_t loans_posted = 0;
  int64_t loans_active = 0;
  int64_t raised_minor = 0;
  int64_t outstanding_minor = 0;        // active loans
  int64_t arrears_minor = 0;            // active loans
  int64_t par30_outstanding_minor = 0;  // active loans more than 30 days in arrears
  int64_t disbursed_principal_minor = 0;
  int64_t defaulted_outstanding_minor = 0;
  int64_t currency_loss_minor = 0;
  int64_t repaid_minor = 0;
  friend bool operator==(const PartnerLoanTotals&, const PartnerLoanTotals&) = default;
};

struct PartnerStats {
  PartnerId partner_id{0};
  PartnerLoanTotals totals;
  int32_t delinquency_rate_bps = 0;
  int32_t default_rate_bps = 0;
  int32_t par30_bps = 0;
  int32_t currency_loss_rate_bps = 0;
  absl::Time computed_at;
  friend bool operator==(const PartnerStats&, const PartnerStats&) = default;
};

// The rates from the totals. Internal when a total is negative (the loan rows break their
// invariants).
absl::StatusOr<PartnerStats> ComputePartnerStats(PartnerId partner, const PartnerLoanTotals& totals,
                                                 absl::Time computed_at);

}  // namespace microlend::lending

#endif  // MICROLEND_SERVICES_LENDING_CORE_LOAN_STATS_H_
