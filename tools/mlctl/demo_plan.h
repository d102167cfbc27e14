// The demo marketplace as data: which partners ops opens, which loans they post, which lender
// lends how much to which loan (at once or through a basket), and which repayments each partner
// reports each month. `mlctl demo` (marketplace_walk.h) plays it against the real services.
//
// Contract:
// - BuildMarketplacePlan is a pure function of nothing: every run builds the same plan, so every
//   request the walk derives from it (ids, bodies) is the same, and a second run replays.
// - Amounts are exact: a loan's USD amount is a multiple of the 25.00 share unit and its local
//   amount is that USD amount times the posting rate with no remainder, so the server's USD
//   conversion gives back exactly the planned USD amount. The shares of every loan but the one
//   meant to expire sum to its USD amount; a lender's deposit covers its shares and donations.
// - Three loans play a part (LoanRole): one repays once at a worse FX rate (currency loss, at the
//   partner with currency-loss coverage), one stops repaying after its first month and defaults,
//   one is only partly funded and expires. The rest repay on schedule.
// - RepaymentLocalMinor says what a partner reports for a loan in month k, from the loan's
//   schedule as the server generated it (the walk reads it back; the plan does not guess it).
// Thread-safe: pure functions and plain values.
#ifndef MICROLEND_TOOLS_MLCTL_DEMO_PLAN_H_
#define MICROLEND_TOOLS_MLCTL_DEMO_PLAN_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/civil_time.h"
#include "microlend/common/v1/common.pb.h"
#include "microlend/lending/v1/lending.pb.h"

namespace microlend::demo {

inline constexpr int kMarketplaceLoans = 1'050;
inline constexpr int kMarketplaceLenders = 300;
// Marketplace lender ids are kFirstLenderId.. (lender 1 is the ledger walk's).
inline constexpr int64_t kFirstLenderId = 1'001;
inline constexpr int64_t kShareUnitCents = 2'500;
// Months of repayments the walk reports (the defaulting loan needs its 2-month term plus 180
// days, which 8 months always cover).
inline constexpr int kRepaymentMonths = 8;
// Items per PostBulkRepayments call (the server takes up to 300).
inline constexpr int kMaxBulkItems = 300;
// Items per basket checkout (the server's basket holds up to 50).
inline constexpr int kBasketChunkItems = 10;

struct Country {
  const char* code;  // ISO 3166-1 alpha-2
  const char* name;
  const char* currency;  // ISO 4217
  const char* fx_rate;   // local units per USD, at most 2 decimals (see the contract)
};

struct PlanPartner {
  std::string request_suffix;  // stable part of its request id
  std::string name;
  std::vector<Country> countries;
  int32_t rating_half_stars = 0;
  int32_t coverage_bps = 0;  // currency-loss coverage
};

enum class LoanRole { kRegular, kCurrencyLoss, kDefault, kExpiry };

struct PlanShare {
  int lender = 0;  // index into MarketplacePlan::lenders
  int64_t cents = 0;
};

struct PlanBorrower {
  std::string name;
  common::v1::Gender gender = common::v1::GENDER_FEMALE;
};

struct PlanLoan {
  int index = 0;    // position in MarketplacePlan::loans; names its request ids
  int partner = 0;  // index into MarketplacePlan::partners
  LoanRole role = LoanRole::kRegular;
  std::vector<PlanBorrower> borrowers;  // more than one: a group loan
  std::string name;
  common::v1::Sector sector = common::v1::SECTOR_UNSPECIFIED;
  std::string use;
  Country country{};
  int64_t usd_cents = 0;
  std::string local_amount;  // wire decimal in country.currency
  int32_t term_months = 0;
  lending::v1::RepaymentInterval interval = lending::v1::REPAYMENT_INTERVAL_MONTHLY;
  std::vector<PlanShare> shares;  // sum == usd_cents, except for the loan that expires
  // The rate of every repayment; worse than the posting rate for the currency-loss loan.
  std::string settlement_fx_rate;
};

// One basket round of a basket lender: add these shares, then check out with `donation_cents`.
struct BasketChunk {
  std::vector<std::pair<int, int64_t>> items;  // (loan index, cents)
  int64_t donation_cents = 0;
};

struct PlanLender {
  int64_t id = 0;
  int64_t deposit_cents = 0;
  bool uses_basket = false;
  std::vector<BasketChunk> basket_chunks;  // empty unless uses_basket
};

struct MarketplacePlan {
  std::vector<PlanPartner> partners;
  std::vector<PlanLoan> loans;
  std::vector<PlanLender> lenders;
  int currency_loss_loan = 0;  // indices into loans
  int default_loan = 0;
  int expiry_loan = 0;
};

MarketplacePlan BuildMarketplacePlan();

// Cents as a wire decimal: 2500 -> "25.00".
std::string UsdAmount(int64_t cents);

// `day` moved by `months`, clamped to the end of a shorter month (Jan 31 + 1 -> Feb 28), as the
// server's schedules do.
absl::CivilDay AddMonthsClamped(absl::CivilDay day, int months);

struct Installment {
  absl::CivilDay due;
  int64_t local_minor = 0;
};

// The local minor units `loan` repays in month `month` (1-based) of the walk, whose months end on
// AddMonthsClamped(first_day, month): a regular or currency-loss loan pays what falls due in that
// month, the defaulting loan pays its first month only, the expiring loan nothing.
int64_t RepaymentLocalMinor(const PlanLoan& loan, const std::vector<Installment>& schedule,
                            absl::CivilDay first_day, int month);

}  // namespace microlend::demo

#endif  // MICROLEND_TOOLS_MLCTL_DEMO_PLAN_H_
