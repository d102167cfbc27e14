#include "services/lending/core/loan_stats.h"

#include <algorithm>
#include <limits>
#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/allocate.h"
#include "common/check.h"
#include "common/status_macros.h"
#include "common/strings.h"

namespace microlend::lending {
namespace {

absl::Status AddTo(int64_t* sum, int64_t value) {
  if (__builtin_add_overflow(*sum, value, sum)) {
    return absl::OutOfRangeError("a portfolio total overflows 64 bits");
  }
  return absl::OkStatus();
}

absl::Status BadPosition(const PortfolioPosition& p, std::string_view what) {
  return absl::InternalError(absl::StrCat("the position of account ", p.funder.account_id.value(),
                                          " in loan ", p.loan.id.value(), " ", AsAbsl(what)));
}

// floor(share x loss / principal): the lender's part of the funders' currency loss.
absl::StatusOr<int64_t> CurrencyLossPart(const PortfolioPosition& p) {
  const LoanMoney& loan = p.loan;
  const LoanFunder& f = p.funder;
  switch (loan.status) {
    case LoanStatus::kEnded:
      return f.amount_minor - f.repaid_minor - f.refunded_minor;
    case LoanStatus::kPayingBack:
    case LoanStatus::kDefaulted:
      if (loan.currency_loss_minor == 0) return 0;
      if (loan.usd_amount_minor <= 0) return BadPosition(p, "has currency loss but no principal");
      return static_cast<int64_t>(static_cast<__int128>(f.amount_minor) * loan.currency_loss_minor /
                                  loan.usd_amount_minor);
    default:
      return 0;
  }
}

// The lender's outstanding over the unpaid part of each schedule line (see the header).
absl::StatusOr<std::vector<MonthlyAmount>> ExpectedByMonth(const PortfolioPosition& p,
                                                           int64_t outstanding_minor) {
  std::vector<MonthlyAmount> out;
  if (outstanding_minor <= 0 || p.schedule.empty()) return out;
  std::vector<int64_t> unpaid;
  int64_t unapplied = p.loan.repaid_local_minor;
  bool any = false;
  for (const ScheduleEntry& entry : p.schedule) {
    const int64_t paid = std::min(unapplied, entry.principal.minor_units());
    unapplied -= paid;
    unpaid.push_back(entry.principal.minor_units() - paid);
    any = any || unpaid.back() > 0;
  }
  if (!any) return out;
  ML_ASSIGN_OR_RETURN(std::vector<Money> parts,
                      Allocate(Money::FromMinor(Currency::Usd(), outstanding_minor), unpaid,
                               /*rotation=*/0));
  std::map<absl::CivilMonth, int64_t> months;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (parts[i].minor_units() > 0) {
      months[absl::CivilMonth(p.schedule[i].due)] += parts[i].minor_units();
    }
  }
  for (const auto& [month, amount] : months) out.push_back({month, amount});
  return out;
}

bool IsOpen(LoanStatus status) {
  return status == LoanStatus::kFundraising || status == LoanStatus::kFunded ||
         status == LoanStatus::kPayingBack;
}

}  // namespace

int32_t RateBps(int64_t numerator, int64_t denominator) {
  ML_CHECK(numerator >= 0 && denominator >= 0,
           absl::StrCat("rate of ", numerator, " / ", denominator, " has a negative term"));
  if (denominator == 0) return 0;
  const __int128 bps = static_cast<__int128>(numerator) * 10'000 / denominator;
  return bps > std::numeric_limits<int32_t>::max() ? std::numeric_limits<int32_t>::max()
                                                   : static_cast<int32_t>(bps);
}

absl::StatusOr<PortfolioLine> ValuePosition(const PortfolioPosition& p) {
  const LoanFunder& f = p.funder;
  PortfolioLine line{.loan_id = p.loan.id,
                     .loan_name = p.loan_name,
                     .country = p.country,
                     .sector = p.sector,
                     .status = p.loan.status,
                     .delinquent = p.loan.delinquent,
                     .lent_minor = f.amount_minor,
                     .repaid_minor = f.repaid_minor,
                     .refunded_minor = f.refunded_minor,
                     .first_lent_at = f.first_lent_at};
  ML_ASSIGN_OR_RETURN(line.lost_to_currency_loss_minor, CurrencyLossPart(p));
  const int64_t rest =
      f.amount_minor - f.repaid_minor - f.refunded_minor - line.lost_to_currency_loss_minor;
  if (IsOpen(p.loan.status)) {
    line.outstanding_minor = rest;
  } else if (p.loan.status == LoanStatus::kDefaulted) {
    line.lost_to_default_minor = rest;
  } else if (rest != 0) {
    return BadPosition(p, absl::StrCat("is closed (", AsAbsl(LoanStatusName(p.loan.status)),
                                       ") with ", rest, " unaccounted for"));
  }
  if (line.repaid_minor < 0 || line.refunded_minor < 0 || line.lost_to_currency_loss_minor < 0 ||
      rest < 0) {
    return BadPosition(p, absl::StrCat("has a negative part (lent ", f.amount_minor, ", repaid ",
                                       f.repaid_minor, ", refunded ", f.refunded_minor,
                                       ", currency loss ", line.lost_to_currency_loss_minor, ")"));
  }
  ML_ASSIGN_OR_RETURN(line.expected, ExpectedByMonth(p, line.outstanding_minor));
  return line;
}

absl::StatusOr<Portfolio> BuildPortfolio(const std::vector<PortfolioPosition>& positions) {
  Portfolio out;
  PortfolioTotals& t = out.totals;
  int64_t closed_repaid = 0;
  int64_t closed_lost = 0;
  std::map<absl::CivilMonth, int64_t> months;
  for (const PortfolioPosition& position : positions) {
    ML_ASSIGN_OR_RETURN(PortfolioLine line, ValuePosition(position));
    ++t.loan_count;
    if (IsOpen(line.status)) ++t.active_loan_count;
    ML_RETURN_IF_ERROR(AddTo(&t.lent_minor, line.lent_minor));
    ML_RETURN_IF_ERROR(AddTo(&t.repaid_minor, line.repaid_minor));
    ML_RETURN_IF_ERROR(AddTo(&t.outstanding_minor, line.outstanding_minor));
    ML_RETURN_IF_ERROR(AddTo(&t.lost_to_default_minor, line.lost_to_default_minor));
    ML_RETURN_IF_ERROR(AddTo(&t.lost_to_currency_loss_minor, line.lost_to_currency_loss_minor));
    ML_RETURN_IF_ERROR(AddTo(&t.refunded_minor, line.refunded_minor));
    if (line.status == LoanStatus::kEnded || line.status == LoanStatus::kDefaulted) {
      ML_RETURN_IF_ERROR(AddTo(&closed_repaid, line.repaid_minor));
      ML_RETURN_IF_ERROR(AddTo(&closed_lost, line.lost_to_default_minor));
      ML_RETURN_IF_ERROR(AddTo(&closed_lost, line.lost_to_currency_loss_minor));
    }
    // Each month is at most the outstanding total, which did not overflow.
    for (const MonthlyAmount& m : line.expected) months[m.month] += m.amount_minor;
    out.loans.push_back(std::move(line));
  }
  int64_t closed_total = closed_repaid;
  ML_RETURN_IF_ERROR(AddTo(&closed_total, closed_lost));
  t.repayment_rate_bps = RateBps(closed_repaid, closed_total);
  for (const auto& [month, amount] : months) out.expected.push_back({month, amount});
  return out;
}

PortfolioPage SelectPortfolioPage(const std::vector<PortfolioLine>& loans,
                                  const std::vector<LoanStatus>& statuses, int64_t offset,
                                  int32_t limit) {
  PortfolioPage page;
  for (const PortfolioLine& line : loans) {
    if (!statuses.empty() &&
        std::find(statuses.begin(), statuses.end(), line.status) == statuses.end()) {
      continue;
    }
    const int64_t index = page.total_count++;
    if (index < offset) continue;
    if (page.loans.size() < static_cast<size_t>(std::max(limit, 0))) {
      page.loans.push_back(line);
    } else if (page.next_offset == 0) {
      page.next_offset = offset + limit;
    }
  }
  return page;
}

absl::StatusOr<PartnerStats> ComputePartnerStats(PartnerId partner, const PartnerLoanTotals& totals,
                                                 absl::Time computed_at) {
  for (int64_t value :
       {totals.loans_posted, totals.loans_active, totals.raised_minor, totals.outstanding_minor,
        totals.arrears_minor, totals.par30_outstanding_minor, totals.disbursed_principal_minor,
        totals.defaulted_outstanding_minor, totals.currency_loss_minor, totals.repaid_minor}) {
    if (value < 0) {
      return absl::InternalError(
          absl::StrCat("partner ", partner.value(), "'s loan totals have a negative sum"));
    }
  }
  return PartnerStats{
      .partner_id = partner,
      .totals = totals,
      .delinquency_rate_bps = RateBps(totals.arrears_minor, totals.outstanding_minor),
      .default_rate_bps =
          RateBps(totals.defaulted_outstanding_minor, totals.disbursed_principal_minor),
      .par30_bps = RateBps(totals.par30_outstanding_minor, totals.outstanding_minor),
      .currency_loss_rate_bps = RateBps(totals.currency_loss_minor, totals.repaid_minor),
      .computed_at = computed_at};
}

}  // namespace microlend::lending
