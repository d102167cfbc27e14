#include "common/money.h"

#include <cstdint>
#include <fstream>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "common/currency.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

#ifndef MICROLEND_TESTDATA_DIR
#error "The build must define MICROLEND_TESTDATA_DIR as the absolute path of libs/common/testdata"
#endif

namespace microlend {
namespace {

using ::testing::HasSubstr;

constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
constexpr int64_t kMin = std::numeric_limits<int64_t>::min();

Currency Cur(std::string_view code) {
  absl::StatusOr<Currency> currency = Currency::FromCode(code);
  EXPECT_TRUE(currency.ok()) << code;
  return currency.ok() ? *currency : Currency::Usd();
}

Money Usd(int64_t cents) { return Money::FromMinor(Currency::Usd(), cents); }

std::string Message(const absl::Status& status) { return std::string(status.message()); }

struct GoldenRow {
  int line;
  std::string op, a, b, currency, mode, expected;
};

std::vector<GoldenRow> LoadGolden() {
  const std::string path = std::string(MICROLEND_TESTDATA_DIR) + "/money_golden.tsv";
  std::ifstream in(path);
  EXPECT_TRUE(in.is_open()) << "cannot open " << path;
  std::vector<GoldenRow> rows;
  std::string text;
  for (int line = 1; std::getline(in, text); ++line) {
    if (text.empty() || text[0] == '#') continue;
    std::vector<std::string> fields = absl::StrSplit(text, '\t');
    if (fields.size() != 6) {
      ADD_FAILURE() << path << ":" << line << ": expected 6 tab-separated fields, got "
                    << fields.size();
      continue;
    }
    rows.push_back({line, fields[0], fields[1], fields[2], fields[3], fields[4], fields[5]});
  }
  return rows;
}

RoundingMode ModeFromName(const std::string& name) {
  static const std::map<std::string, RoundingMode> kModes = {{"HALF_EVEN", RoundingMode::kHalfEven},
                                                             {"HALF_UP", RoundingMode::kHalfUp},
                                                             {"DOWN", RoundingMode::kDown},
                                                             {"FLOOR", RoundingMode::kFloor},
                                                             {"CEILING", RoundingMode::kCeiling}};
  auto it = kModes.find(name);
  EXPECT_NE(it, kModes.end()) << "unknown rounding mode " << name;
  return it == kModes.end() ? RoundingMode::kHalfEven : it->second;
}

int64_t Int(const std::string& text) {
  int64_t value = 0;
  EXPECT_TRUE(absl::SimpleAtoi(text, &value)) << "not an int64: " << text;
  return value;
}

// "numerator/denominator".
std::pair<int64_t, int64_t> Ratio(const std::string& text) {
  std::vector<std::string> parts = absl::StrSplit(text, '/');
  EXPECT_EQ(parts.size(), 2u) << "not a ratio: " << text;
  if (parts.size() != 2) return {0, 1};
  return {Int(parts[0]), Int(parts[1])};
}

Money Operand(const std::string& amount, const std::string& currency) {
  absl::StatusOr<Money> money = Money::Parse(amount, currency, {.allow_negative = true});
  EXPECT_TRUE(money.ok()) << "bad operand " << amount << " " << currency << ": " << money.status();
  return money.ok() ? *money : Money::Zero(Currency::Usd());
}

// The canonical string of a result, or "!CODE" for a failure.
template <typename T>
std::string Outcome(const absl::StatusOr<T>& result) {
  if (!result.ok()) return "!" + absl::StatusCodeToString(result.status().code());
  if constexpr (std::is_same_v<T, Money>) {
    return result->ToString();
  } else {
    return std::to_string(*result);
  }
}

std::string Evaluate(const GoldenRow& row) {
  if (row.op == "parse") {
    return Outcome(Money::Parse(row.a, row.currency, {.allow_negative = row.b == "neg"}));
  }
  if (row.op == "format") return Money::FromMinor(Cur(row.currency), Int(row.a)).ToString();
  if (row.op == "muldiv") {
    auto [numerator, denominator] = Ratio(row.b);
    return Outcome(
        MultiplyDivideRounded(Int(row.a), numerator, denominator, ModeFromName(row.mode)));
  }
  const Money a = Operand(row.a, row.currency);
  if (row.op == "add") return Outcome(a.Add(Operand(row.b, row.currency)));
  if (row.op == "sub") return Outcome(a.Subtract(Operand(row.b, row.currency)));
  if (row.op == "neg") return Outcome(a.Negate());
  if (row.op == "mul") return Outcome(a.MultiplyBy(Int(row.b)));
  if (row.op == "ratio") {
    auto [numerator, denominator] = Ratio(row.b);
    return Outcome(a.MultiplyByRatio(numerator, denominator, ModeFromName(row.mode)));
  }
  ADD_FAILURE() << "unknown op " << row.op;
  return "";
}

TEST(MoneyGolden, EveryVectorInGoldenFileHolds) {
  const std::vector<GoldenRow> rows = LoadGolden();
  std::map<std::string, int> per_op;
  for (const GoldenRow& row : rows) {
    if (row.op == "allocate") continue;  // allocate_test.cc owns these.
    SCOPED_TRACE(testing::Message()
                 << "money_golden.tsv:" << row.line << ": " << row.op << " " << row.a << " "
                 << row.b << " " << row.currency << " " << row.mode);
    ++per_op[row.op];
    EXPECT_EQ(Evaluate(row), row.expected);
  }
  // Guards against a truncated or misplaced file passing vacuously.
  for (const char* op : {"parse", "format", "add", "sub", "neg", "mul", "ratio", "muldiv"}) {
    EXPECT_GE(per_op[op], 5) << "too few golden rows for " << op;
  }
}

TEST(MoneyParse, TenCentsPlusTwentyCentsIsExactlyThirtyCents) {
  absl::StatusOr<Money> ten = Money::Parse("0.10", "USD");
  absl::StatusOr<Money> twenty = Money::Parse("0.20", "USD");
  ASSERT_TRUE(ten.ok() && twenty.ok());
  absl::StatusOr<Money> sum = ten->Add(*twenty);
  ASSERT_TRUE(sum.ok());
  EXPECT_EQ(sum->minor_units(), 30);
  EXPECT_EQ(*sum, Money::Parse("0.30", "USD").value());
  EXPECT_EQ(sum->ToString(), "0.30");
}

TEST(MoneyParse, FewerDecimalsThanTheExponentAreExact) {
  EXPECT_EQ(Money::Parse("25", "USD")->minor_units(), 2500);
  EXPECT_EQ(Money::Parse("25.5", "USD")->minor_units(), 2550);
  EXPECT_EQ(Money::Parse("1.5", "KWD")->minor_units(), 1500);
  EXPECT_EQ(Money::Parse("100", "JPY")->minor_units(), 100);
}

TEST(MoneyParse, AcceptsAKnownCurrencyDirectly) {
  absl::StatusOr<Money> money = Money::Parse("12.345", Cur("BHD"));
  ASSERT_TRUE(money.ok());
  EXPECT_EQ(money->minor_units(), 12345);
  EXPECT_EQ(money->currency(), Cur("BHD"));
}

struct Malformed {
  std::string amount;
  std::string currency;
  bool allow_negative;
  std::string message_part;  // What the message must say, so a person can fix the input.
};

TEST(MoneyParse, RejectsMalformedAmountsWithAMessageNamingTheProblem) {
  const std::vector<Malformed> cases = {
      {"", "USD", false, "amount is empty"},
      {"1e3", "USD", false, "unexpected character 'e' at byte 1"},
      {"+1", "USD", false, "has a '+' sign"},
      {"1.234", "USD", false, "amount \"1.234\" has 3 decimals but USD allows at most 2"},
      {"1.0000", "KWD", false, "has 4 decimals but KWD allows at most 3"},
      {"1.5", "JPY", false, "has a decimal point but JPY has no minor unit"},
      {"1.0", "JPY", false, "has a decimal point but JPY has no minor unit"},
      {"1,000.00", "USD", false, "unexpected character ',' at byte 1"},
      {" 1.00", "USD", false, "unexpected whitespace character at byte 0"},
      {"1.00 ", "USD", false, "unexpected whitespace character at byte 4"},
      {"1.00\n", "USD", false, "unexpected whitespace character at byte 4"},
      {"\t1", "USD", false, "unexpected whitespace character at byte 0"},
      {"NaN", "USD", false, "unexpected character 'N' at byte 0"},
      {"inf", "USD", false, "unexpected character 'i' at byte 0"},
      {"-inf", "USD", true, "unexpected character 'i' at byte 1"},
      {"\xE2\x88\x9E", "USD", false, "non-ASCII or control byte 0xE2 at byte 0"},  // ∞
      {"\xEF\xBC\x91", "USD", false, "non-ASCII or control byte 0xEF at byte 0"},  // １
      {std::string("1\0", 2), "USD", false, "control byte 0x00 at byte 1"},
      {"007", "USD", false, "amount \"007\" has a leading zero"},
      {"00.50", "USD", false, "has a leading zero"},
      {"-01", "USD", true, "has a leading zero"},
      {"1.", "USD", false, "no digit after the decimal point"},
      {".5", "USD", false, "no digit before the decimal point"},
      {"-.5", "USD", true, "no digit before the decimal point"},
      {"-", "USD", true, "has no digits"},
      {"--1", "USD", true, "unexpected character '-' at byte 1"},
      {"1.2.3", "USD", false, "unexpected character '.' at byte 3"},
      {"-1.00", "USD", false, "is negative; a non-negative amount is required"},
      {"-0", "USD", false, "is negative"},
      {"-0", "USD", true, "negative zero"},
      {"-0.00", "USD", true, "negative zero"},
      {"-0.0", "KWD", true, "negative zero"},
      {"92233720368547758.08", "USD", false, "too large"},
      {"-92233720368547758.09", "USD", true, "too large"},
      {"1234567890123456789012345678901234567890", "USD", false, "too large"},
      {"1.00", "usd", false, "currency code \"usd\" must be 3 uppercase ASCII letters"},
      {"1.00", "XYZ", false, "unknown currency code \"XYZ\""},
  };
  for (const Malformed& c : cases) {
    SCOPED_TRACE(testing::Message() << "amount \"" << c.amount << "\" " << c.currency);
    absl::StatusOr<Money> money =
        Money::Parse(c.amount, c.currency, {.allow_negative = c.allow_negative});
    ASSERT_FALSE(money.ok()) << "parsed as " << *money;
    EXPECT_EQ(money.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(Message(money.status()), HasSubstr(c.message_part));
  }
}

TEST(MoneyParse, TooLargeMessageStatesTheRange) {
  absl::StatusOr<Money> money = Money::Parse("100000000000000000", "USD");
  ASSERT_EQ(money.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(money.status()),
              HasSubstr("too large: USD amounts must lie within -92233720368547758.08 and "
                        "92233720368547758.07"));
}

TEST(MoneyParse, MessageTruncatesAndEscapesHugeInput) {
  const std::string huge = "1" + std::string(100'000, '9') + "\x01";
  absl::StatusOr<Money> money = Money::Parse(huge, "USD");
  ASSERT_EQ(money.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_LT(money.status().message().size(), 300u);
  EXPECT_THAT(Message(money.status()), HasSubstr("...\""));
}

TEST(MoneyParse, AcceptsTheExtremesOfInt64) {
  EXPECT_EQ(Money::Parse("92233720368547758.07", "USD")->minor_units(), kMax);
  EXPECT_EQ(Money::Parse("-92233720368547758.08", "USD", {.allow_negative = true})->minor_units(),
            kMin);
  EXPECT_EQ(Money::Parse("-9223372036854775808", "JPY", {.allow_negative = true})->minor_units(),
            kMin);
}

TEST(MoneyParse, DefaultOptionsRejectNegatives) {
  EXPECT_EQ(Money::Parse("-1.00", "USD").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Money::Parse("-1.00", "USD", {.allow_negative = true})->minor_units(), -100);
}

TEST(MoneyFormat, JpyHasNoDecimalPoint) {
  EXPECT_EQ(Money::FromMinor(Cur("JPY"), 100).ToString(), "100");
  EXPECT_EQ(Money::FromMinor(Cur("JPY"), -5).ToString(), "-5");
  EXPECT_EQ(Money::FromMinor(Cur("VND"), 0).ToString(), "0");
}

TEST(MoneyFormat, KwdHasThreeDecimals) {
  EXPECT_EQ(Money::FromMinor(Cur("KWD"), 1000).ToString(), "1.000");
  EXPECT_EQ(Money::FromMinor(Cur("KWD"), -1).ToString(), "-0.001");
  EXPECT_EQ(Money::FromMinor(Cur("KWD"), 1234567).ToString(), "1234.567");
}

TEST(MoneyFormat, AppendToAppendsExactlyWhatToStringGives) {
  std::string out = "amount=";
  Usd(-5).AppendTo(&out);
  out += ";";
  Money::FromMinor(Cur("KWD"), 1234567).AppendTo(&out);
  out += ";";
  Money::FromMinor(Cur("JPY"), std::numeric_limits<int64_t>::min()).AppendTo(&out);
  EXPECT_EQ(out, "amount=-0.05;1234.567;-9223372036854775808");
  for (int64_t minor : {int64_t{0}, int64_t{7}, int64_t{-100}, std::numeric_limits<int64_t>::max(),
                        std::numeric_limits<int64_t>::min()}) {
    std::string appended;
    Usd(minor).AppendTo(&appended);
    EXPECT_EQ(appended, Usd(minor).ToString()) << minor;
  }
}

TEST(MoneyFormat, SmallNegativeKeepsItsSignAndLeadingZero) {
  EXPECT_EQ(Usd(-5).ToString(), "-0.05");
  EXPECT_EQ(Usd(5).ToString(), "0.05");
  EXPECT_EQ(Usd(0).ToString(), "0.00");
}

TEST(MoneyFormat, Int64MinFormatsWithoutOverflow) {
  EXPECT_EQ(Usd(kMin).ToString(), "-92233720368547758.08");
  EXPECT_EQ(Money::FromMinor(Cur("JPY"), kMin).ToString(), "-9223372036854775808");
  EXPECT_EQ(Money::FromMinor(Cur("KWD"), kMin).ToString(), "-9223372036854775.808");
}

TEST(MoneyFormat, StreamsAmountAndCode) {
  std::ostringstream out;
  out << Usd(2500) << " " << Cur("EUR");
  EXPECT_EQ(out.str(), "25.00 USD EUR");
}

TEST(MoneyRoundTrip, ParseOfToStringRoundTripsRandomInt64sInEveryCurrency) {
  std::mt19937_64 rng(20261121);
  const std::vector<Currency> currencies = Currency::AllActive();
  std::vector<int64_t> values = {0,   1,   -1,   9,    -9,   10,       99,
                                 100, 999, 1000, kMax, kMin, kMax - 1, kMin + 1};
  for (int i = 0; i < 100'000; ++i) {
    const uint64_t bits = rng();
    // Mix full-width values with small ones, whose formatting has leading zeros.
    values.push_back(static_cast<int64_t>(i % 2 == 0 ? bits : bits >> (bits % 64)));
  }
  for (size_t i = 0; i < values.size(); ++i) {
    const Money money = Money::FromMinor(currencies[i % currencies.size()], values[i]);
    const std::string text = money.ToString();
    absl::StatusOr<Money> parsed =
        Money::Parse(text, money.currency().code(), {.allow_negative = true});
    ASSERT_TRUE(parsed.ok()) << text << " " << money.currency() << ": " << parsed.status();
    ASSERT_EQ(*parsed, money) << text;
  }
}

TEST(Money, AddOverflowReturnsOutOfRange) {
  absl::StatusOr<Money> sum = Usd(kMax).Add(Usd(1));
  EXPECT_EQ(sum.status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_THAT(Message(sum.status()), HasSubstr("does not fit in int64 minor units"));
  EXPECT_EQ(Usd(kMin).Add(Usd(-1)).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(Usd(kMax).Add(Usd(kMin))->minor_units(), -1);
}

TEST(Money, SubtractOverflowReturnsOutOfRange) {
  EXPECT_EQ(Usd(kMin).Subtract(Usd(1)).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(Usd(0).Subtract(Usd(kMin)).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(Usd(-1).Subtract(Usd(kMax))->minor_units(), kMin);
}

TEST(Money, NegateOfInt64MinReturnsOutOfRange) {
  EXPECT_EQ(Usd(kMin).Negate().status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(Usd(kMax).Negate()->minor_units(), -kMax);
  EXPECT_EQ(Usd(0).Negate()->minor_units(), 0);
}

TEST(Money, MultiplyByOverflowReturnsOutOfRange) {
  EXPECT_EQ(Usd(kMax).MultiplyBy(2).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(Usd(kMin).MultiplyBy(-1).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(Usd(int64_t{1} << 32).MultiplyBy(int64_t{1} << 31).status().code(),
            absl::StatusCode::kOutOfRange);
  EXPECT_EQ(Usd(-(int64_t{1} << 62)).MultiplyBy(2)->minor_units(), kMin);
}

TEST(Money, MultiplyByRatioOverflowReturnsOutOfRange) {
  absl::StatusOr<Money> result = Usd(kMax).MultiplyByRatio(3, 2, RoundingMode::kHalfEven);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_THAT(Message(result.status()), HasSubstr("* 3 / 2"));
  EXPECT_EQ(Usd(kMin).MultiplyByRatio(-1, 1, RoundingMode::kDown).status().code(),
            absl::StatusCode::kOutOfRange);
  EXPECT_EQ(Usd(kMin).MultiplyByRatio(kMin, kMax, RoundingMode::kDown).status().code(),
            absl::StatusCode::kOutOfRange);
}

TEST(Money, MultiplyByRatioKeepsTheFull128BitProduct) {
  EXPECT_EQ(Usd(kMax).MultiplyByRatio(kMax, kMax, RoundingMode::kDown)->minor_units(), kMax);
  EXPECT_EQ(Usd(kMin).MultiplyByRatio(kMax, kMax, RoundingMode::kDown)->minor_units(), kMin);
  EXPECT_EQ(Usd(kMax).MultiplyByRatio(kMax - 1, kMax, RoundingMode::kDown)->minor_units(),
            kMax - 1);
}

TEST(Money, MultiplyByRatioRejectsNonPositiveDenominator) {
  for (int64_t denominator : {int64_t{0}, int64_t{-1}, kMin}) {
    absl::StatusOr<Money> result = Usd(100).MultiplyByRatio(1, denominator, RoundingMode::kDown);
    EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument) << denominator;
    EXPECT_THAT(Message(result.status()), HasSubstr("denominator must be positive"));
  }
  EXPECT_EQ(MultiplyDivideRounded(1, 1, 0, RoundingMode::kDown).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(Money, ArithmeticKeepsTheCurrency) {
  const Money kwd = Money::FromMinor(Cur("KWD"), 1500);
  EXPECT_EQ(kwd.Add(kwd)->currency(), Cur("KWD"));
  EXPECT_EQ(kwd.Negate()->currency(), Cur("KWD"));
  EXPECT_EQ(kwd.MultiplyBy(3)->currency(), Cur("KWD"));
  EXPECT_EQ(kwd.MultiplyByRatio(1, 3, RoundingMode::kFloor)->currency(), Cur("KWD"));
}

TEST(Money, PredicatesDescribeTheSign) {
  EXPECT_TRUE(Money::Zero(Cur("EUR")).is_zero());
  EXPECT_EQ(Money::Zero(Cur("EUR")).currency(), Cur("EUR"));
  EXPECT_TRUE(Usd(-1).is_negative());
  EXPECT_FALSE(Usd(-1).is_positive());
  EXPECT_TRUE(Usd(1).is_positive());
  EXPECT_FALSE(Usd(0).is_negative());
  EXPECT_FALSE(Usd(0).is_positive());
}

TEST(Money, OrdersAmountsOfTheSameCurrency) {
  EXPECT_LT(Usd(-1), Usd(0));
  EXPECT_LE(Usd(5), Usd(5));
  EXPECT_GT(Usd(kMax), Usd(kMin));
  EXPECT_GE(Usd(7), Usd(6));
  EXPECT_EQ(Usd(5), Usd(5));
  EXPECT_NE(Usd(5), Usd(6));
}

TEST(Money, EqualityAcrossCurrenciesIsFalseNotACrash) {
  EXPECT_NE(Usd(1000), Money::FromMinor(Cur("EUR"), 1000));
  EXPECT_FALSE(Usd(0) == Money::Zero(Cur("JPY")));
}

TEST(Money, IsACheapValueWithoutDefaultOrImplicitConstruction) {
  static_assert(!std::is_default_constructible_v<Money>);
  static_assert(!std::is_constructible_v<Money, double>);
  static_assert(!std::is_constructible_v<Money, int64_t>);
  static_assert(!std::is_convertible_v<Money, int64_t>);
  static_assert(!std::is_convertible_v<Money, double>);
  static_assert(std::is_trivially_copyable_v<Money>);
  static_assert(sizeof(Money) <= 16);
}

struct RoundingCase {
  int64_t value;
  int64_t numerator;
  int64_t denominator;
  int64_t half_even, half_up, down, floor, ceiling;
};

void ExpectRounding(const RoundingCase& c) {
  const std::pair<RoundingMode, int64_t> expectations[] = {{RoundingMode::kHalfEven, c.half_even},
                                                           {RoundingMode::kHalfUp, c.half_up},
                                                           {RoundingMode::kDown, c.down},
                                                           {RoundingMode::kFloor, c.floor},
                                                           {RoundingMode::kCeiling, c.ceiling}};
  for (const auto& [mode, expected] : expectations) {
    SCOPED_TRACE(testing::Message() << c.value << " * " << c.numerator << " / " << c.denominator
                                    << " mode " << static_cast<int>(mode));
    absl::StatusOr<int64_t> result =
        MultiplyDivideRounded(c.value, c.numerator, c.denominator, mode);
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_EQ(*result, expected);
    EXPECT_EQ(Usd(c.value).MultiplyByRatio(c.numerator, c.denominator, mode)->minor_units(),
              expected);
  }
}

TEST(RoundingMode, EachModeRoundsPositiveAndNegativeHalves) {
  // value, num, den: half_even, half_up, down, floor, ceiling
  ExpectRounding({5, 1, 2, 2, 3, 2, 2, 3});        // 2.5
  ExpectRounding({-5, 1, 2, -2, -3, -2, -3, -2});  // -2.5
  ExpectRounding({5, -1, 2, -2, -3, -2, -3, -2});  // -2.5, sign from the numerator
  ExpectRounding({3, 1, 2, 2, 2, 1, 1, 2});        // 1.5
  ExpectRounding({-3, 1, 2, -2, -2, -1, -2, -1});  // -1.5
  ExpectRounding({1, 1, 2, 0, 1, 0, 0, 1});        // 0.5
  ExpectRounding({-1, 1, 2, 0, -1, 0, -1, 0});     // -0.5
  ExpectRounding({kMax, 1, 2, kMax / 2 + 1, kMax / 2 + 1, kMax / 2, kMax / 2, kMax / 2 + 1});
}

TEST(RoundingMode, EachModeRoundsNonHalves) {
  ExpectRounding({24, 1, 10, 2, 2, 2, 2, 3});        // 2.4
  ExpectRounding({-24, 1, 10, -2, -2, -2, -3, -2});  // -2.4
  ExpectRounding({26, 1, 10, 3, 3, 2, 2, 3});        // 2.6
  ExpectRounding({-26, 1, 10, -3, -3, -2, -3, -2});  // -2.6
  ExpectRounding({1, 1, 3, 0, 0, 0, 0, 1});          // 0.333
  ExpectRounding({-1, 1, 3, 0, 0, 0, -1, 0});        // -0.333
  ExpectRounding({9, 1, 3, 3, 3, 3, 3, 3});          // exact
  ExpectRounding({-9, 1, 3, -3, -3, -3, -3, -3});    // exact negative
}

// Rounds value * numerator / denominator by a different route than the library: from the
// floor quotient and a non-negative remainder.
int64_t ReferenceRound(__int128 n, __int128 d, RoundingMode mode) {
  __int128 floor = n / d;
  __int128 rem = n % d;
  if (rem < 0) {
    floor -= 1;
    rem += d;
  }
  if (rem == 0) return static_cast<int64_t>(floor);
  const __int128 ceil = floor + 1;
  const bool negative = n < 0;
  switch (mode) {
    case RoundingMode::kFloor:
      return static_cast<int64_t>(floor);
    case RoundingMode::kCeiling:
      return static_cast<int64_t>(ceil);
    case RoundingMode::kDown:
      return static_cast<int64_t>(negative ? ceil : floor);
    case RoundingMode::kHalfUp:
      if (2 * rem == d) return static_cast<int64_t>(negative ? floor : ceil);
      return static_cast<int64_t>(2 * rem < d ? floor : ceil);
    case RoundingMode::kHalfEven:
      if (2 * rem == d) return static_cast<int64_t>(floor % 2 == 0 ? floor : ceil);
      return static_cast<int64_t>(2 * rem < d ? floor : ceil);
  }
  return 0;
}

TEST(RoundingMode, AgreesWithAnIndependentReferenceOnRandomInputs) {
  std::mt19937_64 rng(42);
  const RoundingMode modes[] = {RoundingMode::kHalfEven, RoundingMode::kHalfUp, RoundingMode::kDown,
                                RoundingMode::kFloor, RoundingMode::kCeiling};
  for (int i = 0; i < 200'000; ++i) {
    const auto value = static_cast<int64_t>(rng() >> (rng() % 64));
    const auto numerator = static_cast<int64_t>(rng() >> (rng() % 64));
    int64_t denominator = static_cast<int64_t>(rng() >> (1 + rng() % 63));
    if (denominator == 0) denominator = 1;
    const int64_t signed_value = (i % 2 == 0) ? value : -value;
    const int64_t signed_numerator = (i % 3 == 0) ? -numerator : numerator;
    const RoundingMode mode = modes[i % 5];
    const __int128 n = static_cast<__int128>(signed_value) * signed_numerator;
    const __int128 floor_quotient = n / denominator;
    absl::StatusOr<int64_t> result =
        MultiplyDivideRounded(signed_value, signed_numerator, denominator, mode);
    // Quotients one step inside the int64 range cannot leave it through rounding.
    if (floor_quotient > kMin + 1 && floor_quotient < kMax - 1) {
      ASSERT_TRUE(result.ok()) << result.status();
      ASSERT_EQ(*result, ReferenceRound(n, denominator, mode))
          << signed_value << " * " << signed_numerator << " / " << denominator;
    } else if (floor_quotient > kMax || floor_quotient < kMin) {
      ASSERT_EQ(result.status().code(), absl::StatusCode::kOutOfRange);
    }
  }
}

TEST(MoneyDeathTest, AddMixingCurrenciesCrashesWithReason) {
  const Money usd = Usd(100);
  const Money eur = Money::FromMinor(Cur("EUR"), 100);
  EXPECT_DEATH((void)usd.Add(eur), "check failed: .*Money::Add mixes USD and EUR");
}

TEST(MoneyDeathTest, SubtractMixingCurrenciesCrashesWithReason) {
  const Money usd = Usd(100);
  const Money jpy = Money::FromMinor(Cur("JPY"), 100);
  EXPECT_DEATH((void)usd.Subtract(jpy), "Money::Subtract mixes USD and JPY");
}

TEST(MoneyDeathTest, OrderingAcrossCurrenciesCrashesWithReason) {
  const Money usd = Usd(100);
  const Money eur = Money::FromMinor(Cur("EUR"), 100);
  EXPECT_DEATH((void)(usd < eur), "comparing Money in USD with EUR");
}

}  // namespace
}  // namespace microlend
