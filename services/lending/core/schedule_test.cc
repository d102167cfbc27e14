#include "services/lending/core/schedule.h"

#include <cstdint>
#include <fstream>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/civil_time.h"
#include "common/currency.h"
#include "common/money.h"
#include "common/strings.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

#ifndef MICROLEND_LENDING_TESTDATA_DIR
#error "The build must define MICROLEND_LENDING_TESTDATA_DIR as services/lending/core/testdata"
#endif

namespace microlend::lending {
namespace {

using ::testing::HasSubstr;

Currency Cur(const std::string& code) {
  absl::StatusOr<Currency> currency = Currency::FromCode(code);
  EXPECT_TRUE(currency.ok()) << currency.status();
  return currency.ok() ? *currency : Currency::Usd();
}

Money Usd(int64_t cents) { return Money::FromMinor(Currency::Usd(), cents); }

Money Amount(const std::string& amount, const std::string& currency) {
  absl::StatusOr<Money> money = Money::Parse(amount, currency, {.allow_negative = true});
  EXPECT_TRUE(money.ok()) << amount << " " << currency << ": " << money.status();
  return money.ok() ? *money : Usd(0);
}

absl::CivilDay Day(const std::string& text) {
  absl::CivilDay day;
  EXPECT_TRUE(absl::ParseCivilTime(text, &day)) << "not a date: " << text;
  return day;
}

std::string Message(const absl::Status& status) { return std::string(status.message()); }

// "2026-02-28=100.00;2026-03-31=100.00": the golden file's spelling of a schedule.
std::string Render(const std::vector<ScheduleEntry>& entries) {
  return absl::StrJoin(entries, ";", [](std::string* out, const ScheduleEntry& entry) {
    absl::StrAppend(out, absl::FormatCivilTime(entry.due), "=", entry.principal.ToString());
  });
}

std::string Describe(const ScheduleSpec& spec) {
  return absl::StrCat(spec.principal.ToString(), " ", AsAbsl(spec.principal.currency().code()),
                      " interval=", static_cast<int>(spec.interval), " from ",
                      absl::FormatCivilTime(spec.disbursal_date), " for ", spec.term_months,
                      " months");
}

std::vector<ScheduleEntry> MustGenerate(const ScheduleSpec& spec) {
  absl::StatusOr<std::vector<ScheduleEntry>> entries = GenerateSchedule(spec);
  EXPECT_TRUE(entries.ok()) << Describe(spec) << ": " << entries.status();
  return entries.ok() ? *std::move(entries) : std::vector<ScheduleEntry>{};
}

struct GoldenRow {
  int line;
  std::string principal, currency, interval, disbursal_date, term_months, expected;
};

std::vector<GoldenRow> LoadGolden() {
  const std::string path = std::string(MICROLEND_LENDING_TESTDATA_DIR) + "/schedules.tsv";
  std::ifstream in(path);
  EXPECT_TRUE(in.is_open()) << "cannot open " << path;
  std::vector<GoldenRow> rows;
  std::string text;
  for (int line = 1; std::getline(in, text); ++line) {
    if (text.empty() || text[0] == '#') continue;
    std::vector<std::string> f = absl::StrSplit(text, '\t');
    if (f.size() != 6) {
      ADD_FAILURE() << path << ":" << line << ": expected 6 tab-separated fields, got " << f.size();
      continue;
    }
    rows.push_back({line, f[0], f[1], f[2], f[3], f[4], f[5]});
  }
  return rows;
}

RepaymentInterval IntervalFromName(const std::string& name) {
  static const std::map<std::string, RepaymentInterval> kIntervals = {
      {"MONTHLY", RepaymentInterval::kMonthly},
      {"WEEKLY", RepaymentInterval::kWeekly},
      {"BULLET", RepaymentInterval::kBullet},
      {"IRREGULAR", RepaymentInterval::kIrregular}};
  auto it = kIntervals.find(name);
  EXPECT_NE(it, kIntervals.end()) << "unknown interval " << name;
  return it == kIntervals.end() ? static_cast<RepaymentInterval>(0) : it->second;
}

TEST(ScheduleGolden, GeneratesEveryScheduleInTheDataFileExactly) {
  const std::vector<GoldenRow> rows = LoadGolden();
  ASSERT_GE(rows.size(), 15u) << "the golden file lost rows";
  for (const GoldenRow& row : rows) {
    SCOPED_TRACE(absl::StrCat("schedules.tsv:", row.line));
    int term_months = 0;
    ASSERT_TRUE(absl::SimpleAtoi(row.term_months, &term_months)) << row.term_months;
    const ScheduleSpec spec{Amount(row.principal, row.currency), IntervalFromName(row.interval),
                            Day(row.disbursal_date), term_months};
    absl::StatusOr<std::vector<ScheduleEntry>> entries = GenerateSchedule(spec);
    if (!entries.ok()) {
      EXPECT_EQ("!" + absl::StatusCodeToString(entries.status().code()), row.expected)
          << entries.status();
      continue;
    }
    EXPECT_EQ(Render(*entries), row.expected);
    EXPECT_TRUE(ValidateSchedule(*entries, spec.principal, spec.disbursal_date, term_months).ok());
  }
}

TEST(AddMonthsClamped, ClampsEachMonthFromTheOriginalDayNotCumulatively) {
  const absl::CivilDay jan31 = Day("2026-01-31");
  EXPECT_EQ(AddMonthsClamped(jan31, 1), Day("2026-02-28"));
  EXPECT_EQ(AddMonthsClamped(jan31, 2), Day("2026-03-31"));
  EXPECT_EQ(AddMonthsClamped(jan31, 3), Day("2026-04-30"));
  EXPECT_EQ(AddMonthsClamped(jan31, 12), Day("2027-01-31"));
  EXPECT_EQ(AddMonthsClamped(Day("2026-05-15"), 0), Day("2026-05-15"));
}

TEST(AddMonthsClamped, HandlesLeapYearsYearEndsAndNegativeMonths) {
  EXPECT_EQ(AddMonthsClamped(Day("2028-01-31"), 1), Day("2028-02-29"));
  EXPECT_EQ(AddMonthsClamped(Day("2028-02-29"), 12), Day("2029-02-28"));
  EXPECT_EQ(AddMonthsClamped(Day("2028-02-29"), 48), Day("2032-02-29"));
  EXPECT_EQ(AddMonthsClamped(Day("2026-12-31"), 2), Day("2027-02-28"));
  EXPECT_EQ(AddMonthsClamped(Day("2026-03-31"), -1), Day("2026-02-28"));
  EXPECT_EQ(AddMonthsClamped(Day("2026-01-15"), -13), Day("2024-12-15"));
  EXPECT_EQ(AddMonthsClamped(Day("2026-01-31"), 240), Day("2046-01-31"));
}

TEST(GenerateSchedule, IssueCaseGivesTheLeftoverCentsToTheEarliestInstallments) {
  const std::vector<ScheduleEntry> entries =
      MustGenerate({Amount("1000.00", "USD"), RepaymentInterval::kMonthly, Day("2026-01-31"), 12});
  ASSERT_EQ(entries.size(), 12u);
  Money sum = Usd(0);
  for (size_t i = 0; i < entries.size(); ++i) {
    EXPECT_EQ(entries[i].principal, Usd(i < 4 ? 8334 : 8333)) << "installment " << i;
    sum = *sum.Add(entries[i].principal);
  }
  EXPECT_EQ(sum, Usd(100000));
  EXPECT_EQ(entries[0].due, Day("2026-02-28"));
  EXPECT_EQ(entries[1].due, Day("2026-03-31"));
  EXPECT_EQ(entries[11].due, Day("2027-01-31"));
}

TEST(GenerateSchedule, RejectsIrregularBecauseThePartnerUploadsThose) {
  absl::StatusOr<std::vector<ScheduleEntry>> entries =
      GenerateSchedule({Usd(100000), RepaymentInterval::kIrregular, Day("2026-01-01"), 12});
  EXPECT_EQ(entries.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(entries.status()),
              HasSubstr("irregular schedules are uploaded by the partner"));
}

TEST(GenerateSchedule, RejectsAnUnknownIntervalNamingTheField) {
  for (int value : {0, 5, -1}) {
    absl::StatusOr<std::vector<ScheduleEntry>> entries = GenerateSchedule(
        {Usd(100000), static_cast<RepaymentInterval>(value), Day("2026-01-01"), 12});
    EXPECT_EQ(entries.status().code(), absl::StatusCode::kInvalidArgument) << value;
    EXPECT_EQ(Message(entries.status()),
              absl::StrCat("interval ", value, " is not a known repayment interval"));
  }
}

TEST(GenerateSchedule, RejectsAPrincipalThatIsNotPositive) {
  for (int64_t cents : {int64_t{0}, int64_t{-1}, std::numeric_limits<int64_t>::min()}) {
    absl::StatusOr<std::vector<ScheduleEntry>> entries =
        GenerateSchedule({Usd(cents), RepaymentInterval::kMonthly, Day("2026-01-01"), 12});
    EXPECT_EQ(entries.status().code(), absl::StatusCode::kInvalidArgument) << cents;
    EXPECT_THAT(Message(entries.status()), HasSubstr("principal must be positive, got "));
  }
}

TEST(GenerateSchedule, RejectsATermOutsideOneTo240Months) {
  for (int term : {0, -1, kMaxTermMonths + 1, std::numeric_limits<int>::max()}) {
    absl::StatusOr<std::vector<ScheduleEntry>> entries =
        GenerateSchedule({Usd(100000), RepaymentInterval::kBullet, Day("2026-01-01"), term});
    EXPECT_EQ(entries.status().code(), absl::StatusCode::kInvalidArgument) << term;
    EXPECT_EQ(Message(entries.status()),
              absl::StrCat("term_months must be between 1 and 240, got ", term));
  }
}

TEST(GenerateSchedule, AcceptsTheBoundaryTerms) {
  EXPECT_EQ(MustGenerate({Usd(100), RepaymentInterval::kMonthly, Day("2026-01-31"), 1}).size(), 1u);
  const std::vector<ScheduleEntry> longest =
      MustGenerate({Usd(100000), RepaymentInterval::kMonthly, Day("2026-01-31"), kMaxTermMonths});
  ASSERT_EQ(longest.size(), 240u);
  EXPECT_EQ(longest.back().due, Day("2046-01-31"));
  const std::vector<ScheduleEntry> bullet =
      MustGenerate({Usd(100000), RepaymentInterval::kBullet, Day("2026-01-31"), kMaxTermMonths});
  ASSERT_EQ(bullet.size(), 1u);
  EXPECT_EQ(bullet[0], (ScheduleEntry{Day("2046-01-31"), Usd(100000)}));
}

TEST(GenerateSchedule, RejectsAPrincipalTooSmallToGiveEveryInstallmentAMinorUnit) {
  absl::StatusOr<std::vector<ScheduleEntry>> entries =
      GenerateSchedule({Usd(5), RepaymentInterval::kMonthly, Day("2026-01-01"), 12});
  EXPECT_EQ(entries.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(entries.status()),
              HasSubstr("principal 0.05 USD is too small for 12 installments"));
  // One minor unit per installment is the smallest that works; in JPY that is one yen.
  EXPECT_EQ(MustGenerate({Usd(12), RepaymentInterval::kMonthly, Day("2026-01-01"), 12}).size(),
            12u);
  absl::StatusOr<std::vector<ScheduleEntry>> yen = GenerateSchedule(
      {Money::FromMinor(Cur("JPY"), 3), RepaymentInterval::kWeekly, Day("2026-01-01"), 1});
  EXPECT_EQ(yen.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(yen.status()), HasSubstr("principal 3 JPY is too small for 4 installments"));
}

TEST(GenerateSchedule, WeeklyIncludesADueDateFallingExactlyOnTheEndOfTheTerm) {
  // February 2026 has exactly four weeks.
  const std::vector<ScheduleEntry> entries =
      MustGenerate({Usd(400), RepaymentInterval::kWeekly, Day("2026-02-01"), 1});
  ASSERT_EQ(entries.size(), 4u);
  EXPECT_EQ(entries.back().due, Day("2026-03-01"));
}

TEST(GenerateSchedule, WeeklyLongerThanMaxScheduleEntriesIsRejected) {
  const std::vector<ScheduleEntry> longest =
      MustGenerate({Usd(1000000), RepaymentInterval::kWeekly, Day("2026-01-01"), 119});
  EXPECT_EQ(longest.size(), 517u);
  absl::StatusOr<std::vector<ScheduleEntry>> too_long =
      GenerateSchedule({Usd(1000000), RepaymentInterval::kWeekly, Day("2026-01-01"), 120});
  EXPECT_EQ(too_long.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(too_long.status()),
              HasSubstr("a weekly schedule over term_months 120 would have 521 installments, "
                        "more than the 520 allowed"));
}

// A valid irregular upload: 1000.00 USD disbursed 2026-01-31 over 3 months (ends 2026-04-30).
std::vector<ScheduleEntry> Upload() {
  return {{Day("2026-02-10"), Usd(10000)},
          {Day("2026-02-28"), Usd(40000)},
          {Day("2026-03-15"), Usd(20000)},
          {Day("2026-04-30"), Usd(30000)}};
}

absl::Status ValidateUpload(const std::vector<ScheduleEntry>& entries) {
  return ValidateSchedule(entries, Usd(100000), Day("2026-01-31"), 3);
}

void ExpectInvalid(const absl::Status& status, const std::string& message) {
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_EQ(Message(status), message);
}

TEST(ValidateSchedule, AcceptsAValidUploadedSchedule) {
  EXPECT_TRUE(ValidateUpload(Upload()).ok());
}

TEST(ValidateSchedule, RejectsAnEmptySchedule) {
  ExpectInvalid(ValidateUpload({}), "schedule must have at least one entry");
}

TEST(ValidateSchedule, AcceptsMaxScheduleEntriesAndRejectsOneMore) {
  std::vector<ScheduleEntry> daily;
  for (int i = 1; i <= static_cast<int>(kMaxScheduleEntries) + 1; ++i) {
    daily.push_back({Day("2026-01-01") + i, Usd(1)});
  }
  ExpectInvalid(ValidateSchedule(daily, Usd(521), Day("2026-01-01"), 24),
                "schedule has 521 entries; at most 520 are allowed");
  daily.pop_back();
  EXPECT_TRUE(ValidateSchedule(daily, Usd(520), Day("2026-01-01"), 24).ok());
}

TEST(ValidateSchedule, RejectsAZeroOrNegativeEntryNamingItsIndex) {
  std::vector<ScheduleEntry> entries = Upload();
  entries[2].principal = Usd(0);
  ExpectInvalid(ValidateUpload(entries), "schedule[2].principal must be positive, got 0.00 USD");
  entries[2].principal = Usd(-5);
  ExpectInvalid(ValidateUpload(entries), "schedule[2].principal must be positive, got -0.05 USD");
}

TEST(ValidateSchedule, RejectsAnEntryInAnotherCurrencyWithoutCrashing) {
  std::vector<ScheduleEntry> entries = Upload();
  entries[1].principal = Money::FromMinor(Cur("EUR"), 40000);
  ExpectInvalid(ValidateUpload(entries),
                "schedule[1].principal is in EUR but the loan is in USD: every entry must be in "
                "the loan's local currency");
}

TEST(ValidateSchedule, RejectsAFirstDueDateOnOrBeforeDisbursal) {
  std::vector<ScheduleEntry> entries = Upload();
  entries[0].due = Day("2026-01-31");
  ExpectInvalid(ValidateUpload(entries),
                "schedule[0].due_date 2026-01-31 must be after the disbursal date 2026-01-31");
  entries[0].due = Day("2025-12-01");
  EXPECT_EQ(ValidateUpload(entries).code(), absl::StatusCode::kInvalidArgument);
  entries[0].due = Day("2026-02-01");
  EXPECT_TRUE(ValidateUpload(entries).ok());
}

TEST(ValidateSchedule, RejectsDueDatesThatDoNotStrictlyIncrease) {
  std::vector<ScheduleEntry> entries = Upload();
  entries[2].due = entries[1].due;
  ExpectInvalid(ValidateUpload(entries),
                "schedule[2].due_date 2026-02-28 must be after schedule[1].due_date 2026-02-28: "
                "due dates strictly increase");
  entries = Upload();
  std::swap(entries[1].due, entries[2].due);
  ExpectInvalid(ValidateUpload(entries),
                "schedule[2].due_date 2026-02-28 must be after schedule[1].due_date 2026-03-15: "
                "due dates strictly increase");
}

TEST(ValidateSchedule, RejectsADueDateAfterTheClampedEndOfTheTerm) {
  std::vector<ScheduleEntry> entries = Upload();
  entries[3].due = Day("2026-05-01");
  ExpectInvalid(ValidateUpload(entries),
                "schedule[3].due_date 2026-05-01 is after the end of the term on 2026-04-30 "
                "(2026-01-31 plus term_months)");
  // Disbursed Jan 31 for one month: the term ends Feb 28, not Mar 3.
  const std::vector<ScheduleEntry> one = {{Day("2026-03-01"), Usd(100)}};
  EXPECT_EQ(ValidateSchedule(one, Usd(100), Day("2026-01-31"), 1).code(),
            absl::StatusCode::kInvalidArgument);
  const std::vector<ScheduleEntry> on_end = {{Day("2026-02-28"), Usd(100)}};
  EXPECT_TRUE(ValidateSchedule(on_end, Usd(100), Day("2026-01-31"), 1).ok());
}

TEST(ValidateSchedule, RejectsASumThatIsOffByOneCentInEitherDirection) {
  std::vector<ScheduleEntry> entries = Upload();
  entries[3].principal = Usd(29999);
  ExpectInvalid(ValidateUpload(entries), "schedule sums to 999.99 USD but the loan is 1000.00 USD");
  entries[3].principal = Usd(30001);
  ExpectInvalid(ValidateUpload(entries),
                "schedule sums to 1000.01 USD but the loan is 1000.00 USD");
}

TEST(ValidateSchedule, RejectsASumBeyondInt64AsInvalidArgument) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  const std::vector<ScheduleEntry> entries = {{Day("2026-02-01"), Usd(kMax)},
                                              {Day("2026-03-01"), Usd(1)}};
  absl::Status status = ValidateSchedule(entries, Usd(kMax), Day("2026-01-01"), 12);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(status), HasSubstr("schedule principals overflow at schedule[1]"));
}

TEST(ValidateSchedule, RejectsABadLoanPrincipalOrTerm) {
  ExpectInvalid(ValidateSchedule(Upload(), Usd(0), Day("2026-01-31"), 3),
                "principal must be positive, got 0.00 USD");
  ExpectInvalid(ValidateSchedule(Upload(), Usd(100000), Day("2026-01-31"), 0),
                "term_months must be between 1 and 240, got 0");
  ExpectInvalid(ValidateSchedule(Upload(), Usd(100000), Day("2026-01-31"), 241),
                "term_months must be between 1 and 240, got 241");
}

constexpr int kRandomSpecs = 10'000;

ScheduleSpec RandomSpec(std::mt19937_64& rng) {
  static const std::vector<Currency> kCurrencies = {Cur("USD"), Cur("JPY"), Cur("KWD")};
  static constexpr RepaymentInterval kIntervals[] = {
      RepaymentInterval::kMonthly, RepaymentInterval::kWeekly, RepaymentInterval::kBullet};
  // Log-uniform principals, from a few minor units (too small to split) to 10^12.
  const int digits = std::uniform_int_distribution<int>(1, 12)(rng);
  int64_t top = 1;
  for (int i = 0; i < digits; ++i) top *= 10;
  const int64_t minor = std::uniform_int_distribution<int64_t>(1, top)(rng);
  const absl::CivilDay first = Day("2025-01-01");
  const int64_t span = Day("2030-12-31") - first;
  return {Money::FromMinor(kCurrencies[rng() % kCurrencies.size()], minor), kIntervals[rng() % 3],
          first + std::uniform_int_distribution<int64_t>(0, span)(rng),
          std::uniform_int_distribution<int>(1, 36)(rng)};
}

// How many installments the rule in schedule.h gives, computed without the code under test.
size_t ExpectedCount(const ScheduleSpec& spec, absl::CivilDay term_end) {
  switch (spec.interval) {
    case RepaymentInterval::kMonthly:
      return spec.term_months;
    case RepaymentInterval::kBullet:
      return 1;
    default:
      return static_cast<size_t>((term_end - spec.disbursal_date) / 7);
  }
}

void ExpectScheduleProperties(const ScheduleSpec& spec, const std::vector<ScheduleEntry>& entries) {
  const absl::CivilDay term_end = AddMonthsClamped(spec.disbursal_date, spec.term_months);
  ASSERT_EQ(entries.size(), ExpectedCount(spec, term_end));
  EXPECT_TRUE(
      ValidateSchedule(entries, spec.principal, spec.disbursal_date, spec.term_months).ok());
  const int64_t n = static_cast<int64_t>(entries.size());
  const int64_t floor = spec.principal.minor_units() / n;
  const int64_t leftover = spec.principal.minor_units() % n;
  int64_t sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    const ScheduleEntry& entry = entries[i];
    EXPECT_EQ(entry.principal.currency(), spec.principal.currency());
    EXPECT_EQ(entry.principal.minor_units(), floor + (i < leftover ? 1 : 0)) << "entry " << i;
    EXPECT_GT(entry.due, i == 0 ? spec.disbursal_date : entries[i - 1].due) << "entry " << i;
    sum += entry.principal.minor_units();
  }
  EXPECT_EQ(sum, spec.principal.minor_units());
  EXPECT_LE(entries.back().due, term_end);
  if (spec.interval != RepaymentInterval::kWeekly) {
    EXPECT_EQ(entries.back().due, term_end);
  }
}

TEST(ScheduleProperty, EveryGeneratedScheduleValidatesSumsExactlyAndIncreases) {
  std::mt19937_64 rng(20260131);
  int generated = 0;
  for (int i = 0; i < kRandomSpecs; ++i) {
    const ScheduleSpec spec = RandomSpec(rng);
    SCOPED_TRACE(Describe(spec));
    absl::StatusOr<std::vector<ScheduleEntry>> entries = GenerateSchedule(spec);
    if (!entries.ok()) {
      // The only way a spec in range fails: fewer minor units than installments (<= 157 here).
      EXPECT_EQ(entries.status().code(), absl::StatusCode::kInvalidArgument);
      EXPECT_THAT(Message(entries.status()), HasSubstr("is too small for"));
      EXPECT_LT(spec.principal.minor_units(), 160);
      continue;
    }
    ++generated;
    ExpectScheduleProperties(spec, *entries);
    if (testing::Test::HasFailure()) break;
  }
  EXPECT_GT(generated, kRandomSpecs * 9 / 10);
}

// Each kind of corruption of a valid schedule, with the message that must name it.
std::vector<std::pair<std::vector<ScheduleEntry>, std::string>> Mutations(
    const ScheduleSpec& spec, const std::vector<ScheduleEntry>& valid, std::mt19937_64& rng) {
  const size_t i = rng() % valid.size();
  const Money one = Money::FromMinor(spec.principal.currency(), 1);
  std::vector<std::pair<std::vector<ScheduleEntry>, std::string>> out;
  std::vector<ScheduleEntry> m = valid;
  m[i].principal = *m[i].principal.Add(one);
  out.push_back({m, "schedule sums to "});
  m = valid;
  m[i].principal = *m[i].principal.Subtract(one);
  out.push_back(
      {m, m[i].principal.is_zero() ? ".principal must be positive" : "schedule sums to "});
  m = valid;
  m[i].principal = Money::Zero(spec.principal.currency());
  out.push_back({m, absl::StrCat("schedule[", i, "].principal must be positive")});
  m = valid;
  m[i].principal = Money::FromMinor(Cur("EUR"), m[i].principal.minor_units());
  out.push_back({m, absl::StrCat("schedule[", i, "].principal is in EUR")});
  m = valid;
  m.back().due = AddMonthsClamped(spec.disbursal_date, spec.term_months) + 1;
  out.push_back({m, "is after the end of the term"});
  if (valid.size() >= 2) {
    m = valid;
    const size_t j = i + 1 < m.size() ? i + 1 : i - 1;
    std::swap(m[i].due, m[j].due);
    out.push_back({m, "due dates strictly increase"});
  }
  return out;
}

TEST(ScheduleProperty, EveryKindOfMutationOfAValidScheduleIsRejected) {
  std::mt19937_64 rng(777);
  for (int i = 0; i < kRandomSpecs; ++i) {
    const ScheduleSpec spec = RandomSpec(rng);
    absl::StatusOr<std::vector<ScheduleEntry>> valid = GenerateSchedule(spec);
    if (!valid.ok()) continue;
    SCOPED_TRACE(Describe(spec));
    for (const auto& [mutated, message] : Mutations(spec, *valid, rng)) {
      const absl::Status status =
          ValidateSchedule(mutated, spec.principal, spec.disbursal_date, spec.term_months);
      EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << message;
      EXPECT_THAT(Message(status), HasSubstr(message));
    }
    if (testing::Test::HasFailure()) break;
  }
}

}  // namespace
}  // namespace microlend::lending
