#include "common/money.h"
#include "common/strings.h"

#include <cstdint>
#include <limits>
#include <optional>
#include <ostream>
#include <stdexcept>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "boost/multiprecision/cpp_int.hpp"
#include "common/check.h"

namespace microlend {
namespace {

using boost::multiprecision::checked_int128_t;

constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();
constexpr int64_t kInt64Min = std::numeric_limits<int64_t>::min();

// Debian's Abseil is built with its own absl::string_view, distinct from std::string_view.

// Echoes client input back in messages without letting a huge or binary string through.
std::string Quote(std::string_view text) {
  constexpr size_t kMaxQuotedBytes = 48;
  const bool truncated = text.size() > kMaxQuotedBytes;
  return absl::StrCat("\"", absl::CHexEscape(AsAbsl(text.substr(0, kMaxQuotedBytes))),
                      truncated ? "...\"" : "\"");
}

bool IsAsciiDigit(char c) { return c >= '0' && c <= '9'; }

std::string DescribeByte(char c) {
  if (c == ' ' || c == '\t' || c == '\n' || c == '\r') return "whitespace character";
  const auto byte = static_cast<unsigned char>(c);
  if (byte < 0x20 || byte >= 0x7f) return absl::StrFormat("non-ASCII or control byte 0x%02X", byte);
  return absl::StrCat("character '", absl::string_view(&c, 1), "'");
}

// The pieces of -?digits(.digits)? before any currency-specific rule is applied.
struct DecimalParts {
  bool negative = false;
  bool has_point = false;
  std::string_view integer_digits;
  std::string_view fraction_digits;
};

std::string_view TakeDigits(std::string_view text, size_t& pos) {
  const size_t start = pos;
  while (pos < text.size() && IsAsciiDigit(text[pos])) ++pos;
  return text.substr(start, pos - start);
}

// Checks the currency-independent grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?
absl::StatusOr<DecimalParts> SplitDecimal(std::string_view amount) {
  if (amount.empty()) {
    return absl::InvalidArgumentError("amount is empty; expected a decimal such as \"25.00\"");
  }
  DecimalParts parts;
  size_t pos = 0;
  if (amount[0] == '+') {
    return absl::InvalidArgumentError(absl::StrCat(
        "amount ", Quote(amount), " has a '+' sign; write positive amounts without a sign"));
  }
  if (amount[0] == '-') {
    parts.negative = true;
    ++pos;
  }
  parts.integer_digits = TakeDigits(amount, pos);
  if (pos < amount.size() && amount[pos] == '.') {
    parts.has_point = true;
    ++pos;
    parts.fraction_digits = TakeDigits(amount, pos);
  }
  if (pos < amount.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "amount ", Quote(amount), " has an unexpected ", DescribeByte(amount[pos]), " at byte ",
        pos, "; only ASCII digits, a leading '-' and one '.' are allowed"));
  }
  if (parts.integer_digits.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("amount ", Quote(amount),
                     parts.has_point ? " has no digit before the decimal point; write e.g. \"0.5\""
                                     : " has no digits"));
  }
  if (parts.has_point && parts.fraction_digits.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "amount ", Quote(amount), " has no digit after the decimal point; drop the '.'"));
  }
  if (parts.integer_digits.size() > 1 && parts.integer_digits[0] == '0') {
    return absl::InvalidArgumentError(
        absl::StrCat("amount ", Quote(amount), " has a leading zero"));
  }
  return parts;
}

// value = value * 10 + digit for each digit; false on uint64 overflow.
bool AccumulateDigits(std::string_view digits, uint64_t& value) {
  for (char c : digits) {
    if (__builtin_mul_overflow(value, uint64_t{10}, &value) ||
        __builtin_add_overflow(value, static_cast<uint64_t>(c - '0'), &value)) {
      return false;
    }
  }
  return true;
}

// The magnitude in minor units, or nullopt when it exceeds `limit`.
std::optional<uint64_t> MagnitudeInMinorUnits(const DecimalParts& parts, Currency currency,
                                              uint64_t limit) {
  uint64_t major = 0;
  uint64_t fraction = 0;
  if (!AccumulateDigits(parts.integer_digits, major) ||
      !AccumulateDigits(parts.fraction_digits, fraction)) {
    return std::nullopt;
  }
  for (int i = static_cast<int>(parts.fraction_digits.size()); i < currency.exponent(); ++i) {
    fraction *= 10;  // At most 3 digits scaled to at most 3 digits: cannot overflow.
  }
  uint64_t magnitude = 0;
  if (__builtin_mul_overflow(major, static_cast<uint64_t>(currency.minor_per_major()),
                             &magnitude) ||
      __builtin_add_overflow(magnitude, fraction, &magnitude) || magnitude > limit) {
    return std::nullopt;
  }
  return magnitude;
}

absl::Status CheckDecimals(std::string_view amount, const DecimalParts& parts, Currency currency) {
  if (parts.has_point && currency.exponent() == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("amount ", Quote(amount), " has a decimal point but ", AsAbsl(currency.code()),
                     " has no minor unit; write a whole number"));
  }
  if (static_cast<int>(parts.fraction_digits.size()) > currency.exponent()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "amount ", Quote(amount), " has ", parts.fraction_digits.size(), " decimals but ",
        AsAbsl(currency.code()), " allows at most ", currency.exponent()));
  }
  return absl::OkStatus();
}

checked_int128_t RoundedQuotient(const checked_int128_t& numerator, int64_t denominator,
                                 RoundingMode mode) {
  // Boost, like C++, truncates toward zero and gives the remainder the dividend's sign.
  const checked_int128_t quotient = numerator / denominator;
  const checked_int128_t remainder = numerator % denominator;
  if (remainder == 0) return quotient;
  const int sign = numerator < 0 ? -1 : 1;  // The direction "away from zero".
  const checked_int128_t twice_remainder = 2 * abs(remainder);
  switch (mode) {
    case RoundingMode::kDown:
      return quotient;
    case RoundingMode::kFloor:
      return sign < 0 ? quotient - 1 : quotient;
    case RoundingMode::kCeiling:
      return sign > 0 ? quotient + 1 : quotient;
    case RoundingMode::kHalfUp:
      return twice_remainder >= denominator ? quotient + sign : quotient;
    case RoundingMode::kHalfEven:
      if (twice_remainder > denominator) return quotient + sign;
      if (twice_remainder < denominator) return quotient;
      return (quotient % 2 == 0) ? quotient : quotient + sign;
  }
  ML_CHECK(false, absl::StrCat("unknown RoundingMode ", static_cast<int>(mode)));
  return quotient;
}

// nullopt when the rounded result does not fit int64. Requires denominator > 0.
std::optional<int64_t> TryMultiplyDivide(int64_t value, int64_t numerator, int64_t denominator,
                                         RoundingMode mode) {
  try {
    // |value * numerator| <= 2^126, well inside checked_int128_t's +-(2^128 - 1).
    const checked_int128_t product = checked_int128_t(value) * numerator;
    const checked_int128_t result = RoundedQuotient(product, denominator, mode);
    if (result > kInt64Max || result < kInt64Min) return std::nullopt;
    return result.convert_to<int64_t>();
  } catch (const std::overflow_error&) {
    return std::nullopt;
  } catch (const std::range_error&) {
    return std::nullopt;
  }
}

absl::Status NonPositiveDenominator(int64_t denominator) {
  return absl::InvalidArgumentError(
      absl::StrCat("ratio denominator must be positive, got ", denominator));
}

// "25.00 USD", for messages.
std::string Describe(const Money& money) {
  return absl::StrCat(money.ToString(), " ", AsAbsl(money.currency().code()));
}

absl::Status Overflow(std::string_view expression) {
  return absl::OutOfRangeError(
      absl::StrCat(AsAbsl(expression), " does not fit in int64 minor units"));
}

}  // namespace

absl::StatusOr<int64_t> MultiplyDivideRounded(int64_t value, int64_t numerator, int64_t denominator,
                                              RoundingMode mode) {
  if (denominator <= 0) return NonPositiveDenominator(denominator);
  const std::optional<int64_t> result = TryMultiplyDivide(value, numerator, denominator, mode);
  if (!result.has_value()) {
    return absl::OutOfRangeError(
        absl::StrCat(value, " * ", numerator, " / ", denominator, " does not fit in int64"));
  }
  return *result;
}

absl::StatusOr<Money> Money::Parse(std::string_view amount, std::string_view currency_code,
                                   ParseOptions options) {
  absl::StatusOr<Currency> currency = Currency::FromCode(currency_code);
  if (!currency.ok()) return currency.status();
  return Parse(amount, *currency, options);
}

absl::StatusOr<Money> Money::Parse(std::string_view amount, Currency currency,
                                   ParseOptions options) {
  absl::StatusOr<DecimalParts> parts = SplitDecimal(amount);
  if (!parts.ok()) return parts.status();
  if (parts->negative && !options.allow_negative) {
    return absl::InvalidArgumentError(absl::StrCat(
        "amount ", Quote(amount), " is negative; a non-negative amount is required here"));
  }
  if (absl::Status status = CheckDecimals(amount, *parts, currency); !status.ok()) {
    return status;
  }
  // 2^63 is reachable only as INT64_MIN.
  const uint64_t limit = parts->negative ? uint64_t{1} << 63 : static_cast<uint64_t>(kInt64Max);
  const std::optional<uint64_t> magnitude = MagnitudeInMinorUnits(*parts, currency, limit);
  if (!magnitude.has_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat("amount ", Quote(amount), " is too large: ", AsAbsl(currency.code()),
                     " amounts must lie within ", Money(currency, kInt64Min).ToString(), " and ",
                     Money(currency, kInt64Max).ToString()));
  }
  if (parts->negative && *magnitude == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("amount ", Quote(amount), " is a negative zero; write zero without the '-'"));
  }
  // Unsigned negation then conversion is exact for every magnitude up to 2^63.
  const uint64_t bits = parts->negative ? uint64_t{0} - *magnitude : *magnitude;
  return Money(currency, static_cast<int64_t>(bits));
}

std::string Money::ToString() const {
  std::string out;
  AppendTo(&out);
  return out;
}

void Money::AppendTo(std::string* out) const {
  // Unsigned negation so that INT64_MIN has a magnitude (2^63) without overflow.
  const uint64_t magnitude = minor_units_ < 0 ? uint64_t{0} - static_cast<uint64_t>(minor_units_)
                                              : static_cast<uint64_t>(minor_units_);
  const auto per_major = static_cast<uint64_t>(currency_.minor_per_major());
  if (minor_units_ < 0) out->push_back('-');
  absl::StrAppend(out, magnitude / per_major);
  const int exponent = currency_.exponent();
  if (exponent > 0) {
    const size_t start = out->size();
    out->resize(start + static_cast<size_t>(exponent) + 1, '0');
    (*out)[start] = '.';
    uint64_t rest = magnitude % per_major;
    for (int i = exponent; i >= 1; --i, rest /= 10) {
      (*out)[start + static_cast<size_t>(i)] = static_cast<char>('0' + rest % 10);
    }
  }
}

absl::StatusOr<Money> Money::Add(const Money& other) const {
  ML_CHECK(currency_ == other.currency_, absl::StrCat("Money::Add mixes ", AsAbsl(currency_.code()),
                                                      " and ", AsAbsl(other.currency_.code())));
  int64_t sum = 0;
  if (__builtin_add_overflow(minor_units_, other.minor_units_, &sum)) {
    return Overflow(absl::StrCat(Describe(*this), " + ", Describe(other)));
  }
  return Money(currency_, sum);
}

absl::StatusOr<Money> Money::Subtract(const Money& other) const {
  ML_CHECK(currency_ == other.currency_,
           absl::StrCat("Money::Subtract mixes ", AsAbsl(currency_.code()), " and ",
                        AsAbsl(other.currency_.code())));
  int64_t difference = 0;
  if (__builtin_sub_overflow(minor_units_, other.minor_units_, &difference)) {
    return Overflow(absl::StrCat(Describe(*this), " - ", Describe(other)));
  }
  return Money(currency_, difference);
}

absl::StatusOr<Money> Money::Negate() const {
  if (minor_units_ == kInt64Min) return Overflow(absl::StrCat("-(", Describe(*this), ")"));
  return Money(currency_, -minor_units_);
}

absl::StatusOr<Money> Money::MultiplyBy(int64_t factor) const {
  int64_t product = 0;
  if (__builtin_mul_overflow(minor_units_, factor, &product)) {
    return Overflow(absl::StrCat(Describe(*this), " * ", factor));
  }
  return Money(currency_, product);
}

absl::StatusOr<Money> Money::MultiplyByRatio(int64_t numerator, int64_t denominator,
                                             RoundingMode mode) const {
  if (denominator <= 0) return NonPositiveDenominator(denominator);
  const std::optional<int64_t> result =
      TryMultiplyDivide(minor_units_, numerator, denominator, mode);
  if (!result.has_value()) {
    return Overflow(absl::StrCat(Describe(*this), " * ", numerator, " / ", denominator));
  }
  return Money(currency_, *result);
}

std::strong_ordering operator<=>(const Money& a, const Money& b) {
  ML_CHECK(a.currency_ == b.currency_,
           absl::StrCat("comparing Money in ", AsAbsl(a.currency_.code()), " with ",
                        AsAbsl(b.currency_.code())));
  return a.minor_units_ <=> b.minor_units_;
}

std::ostream& operator<<(std::ostream& os, const Money& money) { return os << Describe(money); }

}  // namespace microlend
