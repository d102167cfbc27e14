#include "common/currency.h"
#include "common/strings.h"

#include <algorithm>
#include <array>
#include <cstddef>
#include <ostream>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace microlend {
namespace {

using currency_internal::Entry;

struct Row {
  char code[4];
  int exponent;
};

// Sorted by code so that lookups can binary-search; the static_asserts below keep it so.
// See currency.h for what is in and out, and why.
constexpr Row kRows[] = {
    {"AED", 2}, {"AFN", 2}, {"ALL", 2}, {"AMD", 2}, {"AOA", 2}, {"ARS", 2}, {"AUD", 2}, {"AWG", 2},
    {"AZN", 2}, {"BAM", 2}, {"BBD", 2}, {"BDT", 2}, {"BHD", 3}, {"BIF", 0}, {"BMD", 2}, {"BND", 2},
    {"BOB", 2}, {"BRL", 2}, {"BSD", 2}, {"BTN", 2}, {"BWP", 2}, {"BYN", 2}, {"BZD", 2}, {"CAD", 2},
    {"CDF", 2}, {"CHF", 2}, {"CLP", 0}, {"CNY", 2}, {"COP", 2}, {"CRC", 2}, {"CUP", 2}, {"CVE", 2},
    {"CZK", 2}, {"DJF", 0}, {"DKK", 2}, {"DOP", 2}, {"DZD", 2}, {"EGP", 2}, {"ERN", 2}, {"ETB", 2},
    {"EUR", 2}, {"FJD", 2}, {"FKP", 2}, {"GBP", 2}, {"GEL", 2}, {"GHS", 2}, {"GIP", 2}, {"GMD", 2},
    {"GNF", 0}, {"GTQ", 2}, {"GYD", 2}, {"HKD", 2}, {"HNL", 2}, {"HTG", 2}, {"HUF", 2}, {"IDR", 2},
    {"ILS", 2}, {"INR", 2}, {"IQD", 3}, {"IRR", 2}, {"ISK", 0}, {"JMD", 2}, {"JOD", 3}, {"JPY", 0},
    {"KES", 2}, {"KGS", 2}, {"KHR", 2}, {"KMF", 0}, {"KPW", 2}, {"KRW", 0}, {"KWD", 3}, {"KYD", 2},
    {"KZT", 2}, {"LAK", 2}, {"LBP", 2}, {"LKR", 2}, {"LRD", 2}, {"LSL", 2}, {"LYD", 3}, {"MAD", 2},
    {"MDL", 2}, {"MGA", 2}, {"MKD", 2}, {"MMK", 2}, {"MNT", 2}, {"MOP", 2}, {"MRU", 2}, {"MUR", 2},
    {"MVR", 2}, {"MWK", 2}, {"MXN", 2}, {"MYR", 2}, {"MZN", 2}, {"NAD", 2}, {"NGN", 2}, {"NIO", 2},
    {"NOK", 2}, {"NPR", 2}, {"NZD", 2}, {"OMR", 3}, {"PAB", 2}, {"PEN", 2}, {"PGK", 2}, {"PHP", 2},
    {"PKR", 2}, {"PLN", 2}, {"PYG", 0}, {"QAR", 2}, {"RON", 2}, {"RSD", 2}, {"RUB", 2}, {"RWF", 0},
    {"SAR", 2}, {"SBD", 2}, {"SCR", 2}, {"SDG", 2}, {"SEK", 2}, {"SGD", 2}, {"SHP", 2}, {"SLE", 2},
    {"SOS", 2}, {"SRD", 2}, {"SSP", 2}, {"STN", 2}, {"SVC", 2}, {"SYP", 2}, {"SZL", 2}, {"THB", 2},
    {"TJS", 2}, {"TMT", 2}, {"TND", 3}, {"TOP", 2}, {"TRY", 2}, {"TTD", 2}, {"TWD", 2}, {"TZS", 2},
    {"UAH", 2}, {"UGX", 0}, {"USD", 2}, {"UYU", 2}, {"UZS", 2}, {"VED", 2}, {"VES", 2}, {"VND", 0},
    {"VUV", 0}, {"WST", 2}, {"XAF", 0}, {"XCD", 2}, {"XCG", 2}, {"XOF", 0}, {"XPF", 0}, {"YER", 2},
    {"ZAR", 2}, {"ZMW", 2}, {"ZWG", 2},
};
constexpr size_t kRowCount = sizeof(kRows) / sizeof(kRows[0]);

constexpr bool IsUpperAscii(char c) { return c >= 'A' && c <= 'Z'; }

constexpr bool RowsAreValid() {
  for (size_t i = 0; i < kRowCount; ++i) {
    const Row& row = kRows[i];
    if (!IsUpperAscii(row.code[0]) || !IsUpperAscii(row.code[1]) || !IsUpperAscii(row.code[2]) ||
        row.code[3] != '\0') {
      return false;
    }
    if (row.exponent != 0 && row.exponent != 2 && row.exponent != 3) return false;
    if (row.exponent > Currency::kMaxExponent) return false;
    if (i > 0 && !(std::string_view(kRows[i - 1].code) < std::string_view(row.code))) {
      return false;
    }
  }
  return true;
}
static_assert(RowsAreValid(), "kRows must be sorted, unique, uppercase, with exponent 0/2/3");

constexpr int64_t PowerOfTen(int exponent) {
  int64_t result = 1;
  for (int i = 0; i < exponent; ++i) result *= 10;
  return result;
}

constexpr std::array<Entry, kRowCount> BuildTable() {
  std::array<Entry, kRowCount> table{};
  for (size_t i = 0; i < kRowCount; ++i) {
    for (int c = 0; c < 4; ++c) table[i].code[c] = kRows[i].code[c];
    table[i].exponent = kRows[i].exponent;
    table[i].minor_per_major = PowerOfTen(kRows[i].exponent);
  }
  return table;
}

constexpr std::array<Entry, kRowCount> kTable = BuildTable();

constexpr size_t IndexOf(std::string_view code) {
  for (size_t i = 0; i < kRowCount; ++i) {
    if (std::string_view(kRows[i].code) == code) return i;
  }
  return kRowCount;
}
constexpr size_t kUsdIndex = IndexOf("USD");
static_assert(kUsdIndex < kRowCount, "USD must be in the table");

// nullptr when absent.
const Entry* Find(std::string_view code) {
  const Entry* it = std::lower_bound(
      kTable.begin(), kTable.end(), code,
      [](const Entry& entry, std::string_view key) { return std::string_view(entry.code) < key; });
  if (it == kTable.end() || std::string_view(it->code) != code) return nullptr;
  return it;
}

// Debian's Abseil is built with its own absl::string_view, distinct from std::string_view.

bool IsThreeUppercaseLetters(std::string_view code) {
  return code.size() == 3 && std::all_of(code.begin(), code.end(), IsUpperAscii);
}

}  // namespace

absl::StatusOr<Currency> Currency::FromCode(std::string_view code) {
  if (!IsThreeUppercaseLetters(code)) {
    return absl::InvalidArgumentError(
        absl::StrCat("currency code \"", absl::CHexEscape(AsAbsl(code.substr(0, 16))),
                     code.size() > 16 ? "..." : "",
                     "\" must be 3 uppercase ASCII letters (ISO 4217), e.g. \"USD\""));
  }
  const Entry* entry = Find(code);
  if (entry == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("unknown currency code \"", AsAbsl(code),
                                                   "\": not an active ISO 4217 currency"));
  }
  return Currency(entry);
}

Currency Currency::Usd() { return Currency(&kTable[kUsdIndex]); }

std::vector<Currency> Currency::AllActive() {
  std::vector<Currency> all;
  all.reserve(kTable.size());
  for (const Entry& entry : kTable) all.push_back(Currency(&entry));
  return all;
}

std::ostream& operator<<(std::ostream& os, const Currency& currency) {
  return os << currency.code();
}

}  // namespace microlend
