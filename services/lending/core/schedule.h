// Repayment schedules: when each part of a loan's principal is due, generated exactly for the
// regular intervals and validated for every schedule, generated or uploaded.
//
// Contract:
// - GenerateSchedule builds the schedule of a monthly, weekly or bullet loan. The principal is
//   split with Allocate(principal, equal weights, rotation 0) (libs/common/allocate.h): every
//   installment is floor(principal / n) or one minor unit more, the parts sum exactly to the
//   principal, and the leftover minor units go to the EARLIEST installments. Example: 1,000.00
//   USD over 12 months is 83.34 x 4 followed by 83.33 x 8. Same spec, same schedule.
// - Due dates (the term ends on AddMonthsClamped(disbursal_date, term_months)):
//     monthly: term_months installments, the k-th on AddMonthsClamped(disbursal_date, k), so a
//              loan disbursed on Jan 31 is due Feb 28 (29), Mar 31, Apr 30, ...: each month is
//              clamped from the ORIGINAL day, never from the previous due date.
//     weekly:  every 7 days from disbursal_date + 7, as many as fall on or before the end of
//              the term (always at least 4, since a term is at least one month).
//     bullet:  one installment on the end of the term.
//   Irregular schedules are uploaded by the partner and only validated.
// - ValidateSchedule is the invariant of every stored schedule, checked where a schedule is
//   created (uploaded, or generated: GenerateSchedule crashes via ML_CHECK if its own output
//   does not validate) and again where it is consumed (loaded from the database).
// - Statuses: InvalidArgument for any bad input, with a message naming the field or the
//   schedule entry (`schedule[3].due_date ...`) and saying what to fix. Nothing crashes on
//   request data: an entry in another currency is compared before any Money arithmetic.
// - Pure functions of their arguments: thread-safe, no clock, no I/O.

#ifndef MICROLEND_SERVICES_LENDING_CORE_SCHEDULE_H_
#define MICROLEND_SERVICES_LENDING_CORE_SCHEDULE_H_

#include <cstddef>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/civil_time.h"
#include "common/money.h"

namespace microlend::lending {

// 20 years: the longest term a loan may have.
inline constexpr int kMaxTermMonths = 240;
// Ten years of weekly installments; bounds what one upload (and one loan row) can hold. A weekly
// schedule longer than this (terms beyond about 119 months) is rejected by GenerateSchedule.
inline constexpr size_t kMaxScheduleEntries = 520;

// Values match lending.v1.RepaymentInterval, so the adapter converts with a checked cast.
enum class RepaymentInterval { kMonthly = 1, kWeekly = 2, kBullet = 3, kIrregular = 4 };

struct ScheduleEntry {
  absl::CivilDay due;
  Money principal;  // positive, in the loan's local currency

  friend bool operator==(const ScheduleEntry& a, const ScheduleEntry& b) = default;
};

struct ScheduleSpec {
  Money principal;  // the loan's local amount; positive
  RepaymentInterval interval;
  absl::CivilDay disbursal_date;
  int term_months;  // 1..kMaxTermMonths
};

// `day` moved by `months` calendar months (negative moves back), keeping its day of the month
// unless the target month is shorter, in which case it is that month's last day:
// Jan 31 + 1 -> Feb 28 (Feb 29 in a leap year), Jan 31 + 2 -> Mar 31, Feb 29 + 12 -> Feb 28.
absl::CivilDay AddMonthsClamped(absl::CivilDay day, int months);

// The schedule of a monthly, weekly or bullet loan (see the contract above), ordered by due date.
// InvalidArgument when: principal is not positive; term_months is outside 1..kMaxTermMonths;
// interval is irregular (the partner uploads those) or not a known value; the schedule would
// have more than kMaxScheduleEntries installments; or the principal has fewer minor units than
// there are installments (some would be zero).
absl::StatusOr<std::vector<ScheduleEntry>> GenerateSchedule(const ScheduleSpec& spec);

// OK when `entries` is a valid schedule for a loan of `principal` disbursed on `disbursal_date`
// for `term_months`: 1..kMaxScheduleEntries entries, each positive and in principal's currency,
// due dates strictly increasing, the first after disbursal_date, the last no later than
// AddMonthsClamped(disbursal_date, term_months), and the principals summing exactly to
// `principal`. Otherwise InvalidArgument naming the first offending field or entry, e.g.
// "schedule sums to 999.99 USD but the loan is 1000.00 USD".
absl::Status ValidateSchedule(const std::vector<ScheduleEntry>& entries, const Money& principal,
                              absl::CivilDay disbursal_date, int term_months);

}  // namespace microlend::lending

#endif  // MICROLEND_SERVICES_LENDING_CORE_SCHEDULE_H_
