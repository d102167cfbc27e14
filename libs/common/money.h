// Money: an exact amount of one currency, held as int64 minor units (cents for USD, yen for
// JPY, fils for KWD). There is no floating point anywhere on this path and no implicit
// conversion into or out of Money.
//
// Contract:
// - A Money value is immutable and always valid; any int64, INT64_MIN included, is a valid
//   amount. Thread-safe as a value type.
// - Arithmetic is checked and returns absl::StatusOr<Money>: a result outside int64 minor units
//   is OutOfRange (never a wrap); a non-positive ratio denominator is InvalidArgument.
// - Mixing currencies (Add, Subtract, <, <=, >, >=) is a programming error, not bad input:
//   callers must have checked the currency when they validated the request. It crashes via
//   ML_CHECK with a one-line reason. Equality (==, !=) is defined across currencies (10 USD
//   != 10 EUR) so that Money works in containers and test assertions.
// - Parse is the only way in from text, and it is strict: it never rounds and never guesses.
//   Accepted grammar: -?(0|[1-9][0-9]*)(\.[0-9]{1,e})? where e is the currency's exponent (no
//   '.' at all when e is 0). Fewer decimals than e are exact ("25.5" USD is 25.50). Anything
//   else is InvalidArgument with a message that says what to fix: empty strings, spaces,
//   '+', exponents ("1e3"), grouping separators ("1,000"), "NaN"/"inf", non-ASCII digits,
//   leading zeros ("007"), "1." and ".5", too many decimals, a '-' when negatives are not
//   allowed, amounts outside int64 minor units ("too large"), and unknown currencies.
// - Negative zero ("-0", "-0.00") is rejected even when negatives are allowed: ToString never
//   produces it, and a signed zero on the wire is almost always a client formatting bug. So
//   every amount has exactly one canonical spelling, and Parse(ToString()) round-trips.
// - Nothing in this library throws: Boost.Multiprecision exceptions are caught inside and
//   become statuses.

#ifndef MICROLEND_LIBS_COMMON_MONEY_H_
#define MICROLEND_LIBS_COMMON_MONEY_H_

#include <compare>
#include <cstdint>
#include <iosfwd>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "common/currency.h"

namespace microlend {

// How a quotient that is not an integer becomes one. "Half" modes only differ from the
// directed ones when the exact quotient ends in exactly .5.
//   exact quotient:  2.5  -2.5  2.4  -2.4  2.6  -2.6
//   kHalfEven:        2    -2    2    -2    3    -3   (ties to the even neighbour)
//   kHalfUp:          3    -3    2    -2    3    -3   (ties away from zero)
//   kDown:            2    -2    2    -2    2    -2   (toward zero, i.e. truncate)
//   kFloor:           2    -3    2    -3    2    -3   (toward -infinity)
//   kCeiling:         3    -2    3    -2    3    -2   (toward +infinity)
enum class RoundingMode { kHalfEven, kHalfUp, kDown, kFloor, kCeiling };

// Returns value * numerator / denominator rounded once, with `mode`, computed exactly in
// checked 128-bit arithmetic (the product cannot overflow there). The building block for
// pro-rata shares, interest and FX conversion.
// InvalidArgument if denominator <= 0; OutOfRange if the rounded result does not fit int64.
absl::StatusOr<int64_t> MultiplyDivideRounded(int64_t value, int64_t numerator, int64_t denominator,
                                              RoundingMode mode);

// Declared outside Money only because a nested struct with member initialisers cannot be a
// default argument inside its own class; use it as Money::ParseOptions.
struct MoneyParseOptions {
  // Loan amounts, deposits and shares are never negative; only a few ops paths (adjustments,
  // reports) may accept a '-'.
  bool allow_negative = false;
};

class Money {
 public:
  using ParseOptions = MoneyParseOptions;

  static Money FromMinor(Currency currency, int64_t minor_units) {
    return Money(currency, minor_units);
  }
  static Money Zero(Currency currency) { return Money(currency, 0); }

  // Parses a wire amount such as ("25.00", "USD"). See the grammar at the top of this file.
  static absl::StatusOr<Money> Parse(std::string_view amount, std::string_view currency_code,
                                     ParseOptions options = {});
  // Same, for a currency that is already known.
  static absl::StatusOr<Money> Parse(std::string_view amount, Currency currency,
                                     ParseOptions options = {});

  Money(const Money&) = default;
  Money& operator=(const Money&) = default;

  Currency currency() const { return currency_; }
  int64_t minor_units() const { return minor_units_; }
  bool is_zero() const { return minor_units_ == 0; }
  bool is_negative() const { return minor_units_ < 0; }
  bool is_positive() const { return minor_units_ > 0; }

  // Canonical decimal with exactly currency().exponent() decimals and no currency code:
  // "25.00", "-0.05" (USD), "100" (JPY), "1.000" (KWD). The wire format; Parse accepts it back.
  std::string ToString() const;
  // Appends ToString() to *out, without a string of its own.
  void AppendTo(std::string* out) const;

  // Same currency required (ML_CHECK). OutOfRange on overflow.
  absl::StatusOr<Money> Add(const Money& other) const;
  absl::StatusOr<Money> Subtract(const Money& other) const;
  // OutOfRange only for INT64_MIN minor units, which has no positive counterpart.
  absl::StatusOr<Money> Negate() const;
  // OutOfRange on overflow.
  absl::StatusOr<Money> MultiplyBy(int64_t factor) const;
  // this * numerator / denominator, rounded once with `mode` (see MultiplyDivideRounded).
  // InvalidArgument if denominator <= 0, OutOfRange if the result does not fit.
  absl::StatusOr<Money> MultiplyByRatio(int64_t numerator, int64_t denominator,
                                        RoundingMode mode) const;

  friend bool operator==(const Money& a, const Money& b) = default;
  // Crashes (ML_CHECK) when the currencies differ: there is no order between USD and EUR.
  friend std::strong_ordering operator<=>(const Money& a, const Money& b);

 private:
  Money(Currency currency, int64_t minor_units) : currency_(currency), minor_units_(minor_units) {}

  Currency currency_;
  int64_t minor_units_;
};

// Writes e.g. "25.00 USD"; for logs and test failure messages, not for the wire.
std::ostream& operator<<(std::ostream& os, const Money& money);

}  // namespace microlend

#endif  // MICROLEND_LIBS_COMMON_MONEY_H_
