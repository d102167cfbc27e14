#include "common/currency.h"

#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace microlend {
namespace {

using ::testing::HasSubstr;

std::string Message(const absl::Status& status) { return std::string(status.message()); }

TEST(Currency, FromCodeFindsKnownCodesWithTheirExponents) {
  const std::vector<std::pair<std::string, int>> known = {
      {"USD", 2}, {"EUR", 2}, {"GBP", 2}, {"KES", 2}, {"PHP", 2}, {"INR", 2}, {"MXN", 2},
      {"NGN", 2}, {"PKR", 2}, {"BRL", 2}, {"HUF", 2}, {"IDR", 2}, {"COP", 2}, {"MGA", 2},
      {"MRU", 2}, {"STN", 2}, {"SLE", 2}, {"VES", 2}, {"VED", 2}, {"ZWG", 2}, {"XCG", 2},
      {"XCD", 2}, {"JPY", 0}, {"KRW", 0}, {"VND", 0}, {"UGX", 0}, {"XOF", 0}, {"XAF", 0},
      {"XPF", 0}, {"CLP", 0}, {"ISK", 0}, {"PYG", 0}, {"RWF", 0}, {"BIF", 0}, {"DJF", 0},
      {"GNF", 0}, {"KMF", 0}, {"VUV", 0}, {"KWD", 3}, {"BHD", 3}, {"JOD", 3}, {"OMR", 3},
      {"TND", 3}, {"LYD", 3}, {"IQD", 3}};
  for (const auto& [code, exponent] : known) {
    absl::StatusOr<Currency> currency = Currency::FromCode(code);
    ASSERT_TRUE(currency.ok()) << code << ": " << currency.status();
    EXPECT_EQ(currency->code(), code);
    EXPECT_EQ(currency->exponent(), exponent) << code;
  }
}

TEST(Currency, FromCodeRejectsUnknownCodeNamingIt) {
  absl::StatusOr<Currency> currency = Currency::FromCode("XYZ");
  ASSERT_EQ(currency.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(currency.status()), HasSubstr("unknown currency code \"XYZ\""));
}

TEST(Currency, FromCodeRejectsLowercaseInsteadOfNormalising) {
  for (std::string_view code : {"usd", "Usd", "uSD", "USd"}) {
    absl::StatusOr<Currency> currency = Currency::FromCode(code);
    ASSERT_EQ(currency.status().code(), absl::StatusCode::kInvalidArgument) << code;
    EXPECT_THAT(Message(currency.status()), HasSubstr("must be 3 uppercase ASCII letters"));
    EXPECT_THAT(Message(currency.status()), HasSubstr(std::string(code)));
  }
}

TEST(Currency, FromCodeRejectsWrongLength) {
  for (std::string_view code : {"", "U", "US", "USDX", "USD ", " USD", "USDUSD"}) {
    EXPECT_EQ(Currency::FromCode(code).status().code(), absl::StatusCode::kInvalidArgument)
        << "\"" << code << "\"";
  }
}

TEST(Currency, FromCodeRejectsNonLetters) {
  const std::vector<std::string> codes = {"U$D",
                                          "US1",
                                          "123",
                                          std::string("US\0", 3),
                                          "\xEF\xBC\xB5SD",  // full-width U
                                          "U-D"};
  for (const std::string& code : codes) {
    EXPECT_EQ(Currency::FromCode(code).status().code(), absl::StatusCode::kInvalidArgument);
  }
}

TEST(Currency, FundsMetalsUnitsAndWithdrawnCodesAreNotActive) {
  for (std::string_view code :
       {"XAU", "XAG", "XPT", "XPD", "XDR", "XSU", "XUA", "XBA", "XBB", "XBC", "XBD",
        "XTS", "XXX", "CLF", "UYW", "UYI", "BOV", "CHE", "CHW", "COU", "MXV", "USN",
        "HRK", "BGN", "ANG", "SLL", "ZWL", "CUC", "VEF", "MRO", "STD", "DEM", "FRF"}) {
    absl::StatusOr<Currency> currency = Currency::FromCode(code);
    EXPECT_EQ(currency.status().code(), absl::StatusCode::kInvalidArgument) << code;
  }
}

TEST(Currency, UsdIsTheUsdEntry) {
  EXPECT_EQ(Currency::Usd(), Currency::FromCode("USD").value());
  EXPECT_EQ(Currency::Usd().code(), "USD");
  EXPECT_EQ(Currency::Usd().exponent(), 2);
  EXPECT_EQ(Currency::Usd().minor_per_major(), 100);
}

TEST(Currency, MinorPerMajorIsTenToTheExponent) {
  for (const Currency& currency : Currency::AllActive()) {
    int64_t power = 1;
    for (int i = 0; i < currency.exponent(); ++i) power *= 10;
    EXPECT_EQ(currency.minor_per_major(), power) << currency;
    EXPECT_TRUE(currency.exponent() == 0 || currency.exponent() == 2 || currency.exponent() == 3)
        << currency;
    EXPECT_LE(currency.exponent(), Currency::kMaxExponent);
  }
}

TEST(Currency, AllActiveIsSortedUniqueAndRoundTripsThroughFromCode) {
  const std::vector<Currency> all = Currency::AllActive();
  EXPECT_GE(all.size(), 150u);
  std::set<std::string> seen;
  for (size_t i = 0; i < all.size(); ++i) {
    if (i > 0) {
      EXPECT_LT(all[i - 1].code(), all[i].code());
    }
    EXPECT_TRUE(seen.insert(std::string(all[i].code())).second) << all[i];
    absl::StatusOr<Currency> found = Currency::FromCode(all[i].code());
    ASSERT_TRUE(found.ok()) << all[i];
    EXPECT_EQ(*found, all[i]);
  }
}

TEST(Currency, CopiesCompareEqualAndDifferentCodesDiffer) {
  const Currency usd = Currency::FromCode("USD").value();
  Currency copy = usd;
  EXPECT_EQ(copy, usd);
  copy = Currency::FromCode("EUR").value();
  EXPECT_NE(copy, usd);
  EXPECT_EQ(copy.code(), "EUR");
}

TEST(Currency, StreamsItsCode) {
  std::ostringstream out;
  out << Currency::FromCode("KWD").value();
  EXPECT_EQ(out.str(), "KWD");
}

TEST(Currency, IsACheapValueWithNoInvalidDefault) {
  static_assert(!std::is_default_constructible_v<Currency>);
  static_assert(std::is_trivially_copyable_v<Currency>);
  static_assert(sizeof(Currency) == sizeof(void*));
  static_assert(!std::is_constructible_v<Currency, std::string_view>);
  static_assert(!std::is_constructible_v<Currency, const char*>);
}

}  // namespace
}  // namespace microlend
