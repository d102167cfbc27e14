// Distinct id types, so that a LoanId cannot be passed where a LenderId is expected.
//
// An id is a positive int64 (PostgreSQL BIGINT identity, and a natural distribution column for
// Citus). On the wire it is the decimal string of that number. Parse() validates client input and
// returns InvalidArgument naming the field; it never asserts. Values are cheap to copy and
// thread-compatible.
#ifndef MICROLEND_COMMON_IDS_H_
#define MICROLEND_COMMON_IDS_H_

#include <charconv>
#include <compare>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "common/strings.h"

namespace microlend {

template <typename Tag>
class Id {
 public:
  constexpr explicit Id(int64_t value) : value_(value) {}

  constexpr int64_t value() const { return value_; }
  std::string ToString() const { return std::to_string(value_); }

  // Parses the wire form. `field` names the request field in the error message.
  static absl::StatusOr<Id> Parse(std::string_view text, std::string_view field) {
    int64_t value = 0;
    const char* end = text.data() + text.size();
    auto [ptr, ec] = std::from_chars(text.data(), end, value);
    if (text.empty() || ec != std::errc() || ptr != end || value <= 0 || text[0] == '0') {
      return absl::InvalidArgumentError(
          absl::StrCat(AsAbsl(field), " \"", AsAbsl(text.substr(0, 64)), "\" is not a valid id"));
    }
    return Id(value);
  }

  friend constexpr auto operator<=>(Id, Id) = default;

  template <typename H>
  friend H AbslHashValue(H h, Id id) {
    return H::combine(std::move(h), id.value_);
  }

 private:
  int64_t value_;
};

using PartnerId = Id<struct PartnerIdTag>;
using BorrowerId = Id<struct BorrowerIdTag>;
using LoanId = Id<struct LoanIdTag>;
using LenderId = Id<struct LenderIdTag>;
using AccountId = Id<struct AccountIdTag>;
using TransferId = Id<struct TransferIdTag>;
using RepaymentId = Id<struct RepaymentIdTag>;
using WithdrawalId = Id<struct WithdrawalIdTag>;
using OrderId = Id<struct OrderIdTag>;
using CampaignId = Id<struct CampaignIdTag>;
using ShareLinkId = Id<struct ShareLinkIdTag>;

}  // namespace microlend

#endif  // MICROLEND_COMMON_IDS_H_
