#include "services/lending/core/schedule.h"

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/civil_time.h"
#include "common/allocate.h"
#include "common/check.h"
#include "common/currency.h"
#include "common/money.h"
#include "common/status_macros.h"
#include "common/strings.h"

namespace microlend::lending {
namespace {

// "1000.00 USD": what a partner can compare with what they sent.
std::string Describe(const Money& money) {
  return absl::StrCat(money.ToString(), " ", AsAbsl(money.currency().code()));
}

std::string Day(absl::CivilDay day) { return absl::FormatCivilTime(day); }

absl::Status ValidateTerm(int term_months) {
  if (term_months < 1 || term_months > kMaxTermMonths) {
    return absl::InvalidArgumentError(
        absl::StrCat("term_months must be between 1 and ", kMaxTermMonths, ", got ", term_months));
  }
  return absl::OkStatus();
}

absl::Status ValidatePrincipal(const Money& principal) {
  if (!principal.is_positive()) {
    return absl::InvalidArgumentError(
        absl::StrCat("principal must be positive, got ", Describe(principal)));
  }
  return absl::OkStatus();
}

std::vector<absl::CivilDay> MonthlyDueDates(absl::CivilDay disbursal_date, int term_months) {
  std::vector<absl::CivilDay> due;
  due.reserve(term_months);
  for (int k = 1; k <= term_months; ++k) due.push_back(AddMonthsClamped(disbursal_date, k));
  return due;
}

absl::StatusOr<std::vector<absl::CivilDay>> WeeklyDueDates(absl::CivilDay disbursal_date,
                                                           int term_months) {
  const absl::CivilDay term_end = AddMonthsClamped(disbursal_date, term_months);
  const int64_t count = (term_end - disbursal_date) / 7;
  // A term of at least one month spans at least 28 days.
  ML_CHECK(count >= 4, "a term of one month or more holds at least 4 weeks");
  if (count > static_cast<int64_t>(kMaxScheduleEntries)) {
    return absl::InvalidArgumentError(
        absl::StrCat("a weekly schedule over term_months ", term_months, " would have ", count,
                     " installments, more than the ", kMaxScheduleEntries,
                     " allowed: use a shorter term or a monthly interval"));
  }
  std::vector<absl::CivilDay> due;
  due.reserve(count);
  for (int64_t k = 1; k <= count; ++k) due.push_back(disbursal_date + 7 * k);
  return due;
}

absl::StatusOr<std::vector<absl::CivilDay>> DueDates(const ScheduleSpec& spec) {
  switch (spec.interval) {
    case RepaymentInterval::kMonthly:
      return MonthlyDueDates(spec.disbursal_date, spec.term_months);
    case RepaymentInterval::kWeekly:
      return WeeklyDueDates(spec.disbursal_date, spec.term_months);
    case RepaymentInterval::kBullet:
      return std::vector<absl::CivilDay>{AddMonthsClamped(spec.disbursal_date, spec.term_months)};
    case RepaymentInterval::kIrregular:
      return absl::InvalidArgumentError(
          "interval: irregular schedules are uploaded by the partner, not generated");
  }
  return absl::InvalidArgumentError(absl::StrCat("interval ", static_cast<int>(spec.interval),
                                                 " is not a known repayment interval"));
}

// Entry i on its own and against its predecessor; the sum is checked by the caller.
absl::Status ValidateEntry(const std::vector<ScheduleEntry>& entries, size_t i,
                           const Money& principal, absl::CivilDay disbursal_date,
                           absl::CivilDay term_end) {
  const ScheduleEntry& entry = entries[i];
  const std::string name = absl::StrCat("schedule[", i, "]");
  if (entry.principal.currency() != principal.currency()) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ".principal is in ", AsAbsl(entry.principal.currency().code()),
                     " but the loan is in ", AsAbsl(principal.currency().code()),
                     ": every entry must be in the loan's local currency"));
  }
  if (!entry.principal.is_positive()) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ".principal must be positive, got ", Describe(entry.principal)));
  }
  if (i == 0 && entry.due <= disbursal_date) {
    return absl::InvalidArgumentError(absl::StrCat(name, ".due_date ", Day(entry.due),
                                                   " must be after the disbursal date ",
                                                   Day(disbursal_date)));
  }
  if (i > 0 && entry.due <= entries[i - 1].due) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ".due_date ", Day(entry.due), " must be after schedule[", i - 1,
                     "].due_date ", Day(entries[i - 1].due), ": due dates strictly increase"));
  }
  if (entry.due > term_end) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ".due_date ", Day(entry.due), " is after the end of the term on ",
                     Day(term_end), " (", Day(disbursal_date), " plus term_months)"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::CivilDay AddMonthsClamped(absl::CivilDay day, int months) {
  const absl::CivilMonth month = absl::CivilMonth(day) + months;
  const absl::CivilDay first = absl::CivilDay(month);
  const int64_t days_in_month = absl::CivilDay(month + 1) - first;
  return first + (std::min<int64_t>(day.day(), days_in_month) - 1);
}

absl::StatusOr<std::vector<ScheduleEntry>> GenerateSchedule(const ScheduleSpec& spec) {
  ML_RETURN_IF_ERROR(ValidatePrincipal(spec.principal));
  ML_RETURN_IF_ERROR(ValidateTerm(spec.term_months));
  ML_ASSIGN_OR_RETURN(std::vector<absl::CivilDay> due, DueDates(spec));
  const int64_t count = static_cast<int64_t>(due.size());
  if (spec.principal.minor_units() < count) {
    return absl::InvalidArgumentError(
        absl::StrCat("principal ", Describe(spec.principal), " is too small for ", count,
                     " installments: each needs at least one minor unit"));
  }
  const std::vector<int64_t> weights(due.size(), 1);
  absl::StatusOr<std::vector<Money>> parts = Allocate(spec.principal, weights, 0);
  ML_CHECK(parts.ok(), absl::StrCat("equal-weight split failed: ", parts.status().ToString()));
  std::vector<ScheduleEntry> entries;
  entries.reserve(due.size());
  for (size_t i = 0; i < due.size(); ++i) entries.push_back({due[i], (*parts)[i]});
  const absl::Status valid =
      ValidateSchedule(entries, spec.principal, spec.disbursal_date, spec.term_months);
  ML_CHECK(valid.ok(), absl::StrCat("generated schedule is invalid: ", valid.ToString()));
  return entries;
}

absl::Status ValidateSchedule(const std::vector<ScheduleEntry>& entries, const Money& principal,
                              absl::CivilDay disbursal_date, int term_months) {
  ML_RETURN_IF_ERROR(ValidatePrincipal(principal));
  ML_RETURN_IF_ERROR(ValidateTerm(term_months));
  if (entries.empty()) {
    return absl::InvalidArgumentError("schedule must have at least one entry");
  }
  if (entries.size() > kMaxScheduleEntries) {
    return absl::InvalidArgumentError(absl::StrCat("schedule has ", entries.size(),
                                                   " entries; at most ", kMaxScheduleEntries,
                                                   " are allowed"));
  }
  const absl::CivilDay term_end = AddMonthsClamped(disbursal_date, term_months);
  Money sum = Money::Zero(principal.currency());
  for (size_t i = 0; i < entries.size(); ++i) {
    ML_RETURN_IF_ERROR(ValidateEntry(entries, i, principal, disbursal_date, term_end));
    absl::StatusOr<Money> next = sum.Add(entries[i].principal);
    if (!next.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("schedule principals overflow at schedule[", i,
                                                     "]: they sum to far more than the loan's ",
                                                     Describe(principal)));
    }
    sum = *next;
  }
  if (sum != principal) {
    return absl::InvalidArgumentError(
        absl::StrCat("schedule sums to ", Describe(sum), " but the loan is ", Describe(principal)));
  }
  return absl::OkStatus();
}

}  // namespace microlend::lending
