// Currency: an active ISO 4217 currency and the exponent of its minor unit.
//
// A Currency can only be obtained from the built-in table (FromCode, Usd, AllActive), so
// every Currency value is valid: there is no default or "unknown" currency. It is a pointer
// into a static table, cheap to copy and compare, and immutable: thread-safe.
//
// The table is ISO 4217 List One as in force in November 2026, restricted to currencies that
// circulate: funds codes (BOV, CHE, CHW, CLF, COU, MXV, USN, UYI, UYW), precious metals (XAG,
// XAU, XPD, XPT), bond-market and accounting units (XBA-XBD, XDR, XSU, XUA), XTS and XXX are
// left out. So are codes that were withdrawn: HRK (Croatia adopted EUR in 2023), BGN
// (Bulgaria adopted EUR in 2026), ANG (replaced by XCG in 2025), SLL (replaced by SLE), ZWL
// (replaced by ZWG in 2024) and CUC (withdrawn from circulation in 2021). Exponents are the
// ISO "minor unit" column: 0 (JPY, KRW, VND, UGX, XOF, ...), 2 (most), 3 (BHD, IQD, JOD, KWD,
// LYD, OMR, TND).
//
// Statuses:
//   FromCode -> InvalidArgument if the code is not three uppercase ASCII letters (lowercase is
//               rejected, never normalised, so "usd" on the wire is a client bug we surface)
//               or is not in the table. The message quotes the code.

#ifndef MICROLEND_LIBS_COMMON_CURRENCY_H_
#define MICROLEND_LIBS_COMMON_CURRENCY_H_

#include <cstdint>
#include <iosfwd>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace microlend {

namespace currency_internal {
// One row of the ISO 4217 table. Exposed only so that the accessors below can be inline.
struct Entry {
  char code[4];  // Three letters and a NUL.
  int exponent;
  int64_t minor_per_major;
};
}  // namespace currency_internal

class Currency {
 public:
  // The largest exponent in the table; Money formatting relies on this bound.
  static constexpr int kMaxExponent = 3;

  static absl::StatusOr<Currency> FromCode(std::string_view code);
  static Currency Usd();
  // Every currency in the table, ordered by code.
  static std::vector<Currency> AllActive();

  Currency(const Currency&) = default;
  Currency& operator=(const Currency&) = default;

  std::string_view code() const { return std::string_view(entry_->code, 3); }
  // Number of decimal digits of the minor unit: 2 for USD (cents), 0 for JPY, 3 for KWD.
  int exponent() const { return entry_->exponent; }
  // 10^exponent: 100 for USD, 1 for JPY, 1000 for KWD.
  int64_t minor_per_major() const { return entry_->minor_per_major; }

  // Rows are unique, so identity of the row is identity of the currency.
  friend bool operator==(const Currency& a, const Currency& b) { return a.entry_ == b.entry_; }

 private:
  explicit Currency(const currency_internal::Entry* entry) : entry_(entry) {}

  const currency_internal::Entry* entry_;  // Never null; points into the static table.
};

// Writes the code, e.g. "USD"; for logs and test failure messages.
std::ostream& operator<<(std::ostream& os, const Currency& currency);

}  // namespace microlend

#endif  // MICROLEND_LIBS_COMMON_CURRENCY_H_
