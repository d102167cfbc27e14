#include "common/allocate.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "boost/multiprecision/cpp_int.hpp"
#include "common/check.h"

namespace microlend {
namespace {

using boost::multiprecision::checked_int128_t;

// Returns the sum of the weights once every input rule of allocate.h holds.
absl::StatusOr<int64_t> ValidateAndSumWeights(const Money& total,
                                              absl::Span<const int64_t> weights) {
  if (total.is_negative()) {
    return absl::InvalidArgumentError(
        absl::StrCat("total ", total.ToString(), " ", std::string(total.currency().code()),
                     " is negative; allocate its negation and negate the parts"));
  }
  if (weights.empty()) {
    return absl::InvalidArgumentError("weights is empty; at least one party is needed");
  }
  if (weights.size() > kMaxAllocationParties) {
    return absl::InvalidArgumentError(
        absl::StrCat(weights.size(), " parties exceed the limit of ", kMaxAllocationParties));
  }
  int64_t sum = 0;
  for (size_t i = 0; i < weights.size(); ++i) {
    if (weights[i] < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("weight[", i, "] is ", weights[i], "; weights must not be negative"));
    }
    if (__builtin_add_overflow(sum, weights[i], &sum)) {
      return absl::InvalidArgumentError(
          absl::StrCat("the sum of the weights overflows int64 at weight[", i, "]"));
    }
  }
  if (sum == 0) {
    return absl::InvalidArgumentError("all weights are zero; at least one must be positive");
  }
  return sum;
}

// A party that may receive one of the leftover minor units.
struct Candidate {
  int64_t remainder;  // (total * weight) mod weight_sum, in [1, weight_sum).
  size_t order;       // (index - rotation) mod N: the tie-break position.
};

bool RanksBefore(const Candidate& a, const Candidate& b) {
  if (a.remainder != b.remainder) return a.remainder > b.remainder;
  return a.order < b.order;
}

// Fills `units` with the floors of the exact shares and returns the parties with a
// non-zero remainder. Cannot overflow: total * weight < 2^126 and the floor is <= total.
std::vector<Candidate> FloorShares(int64_t total, absl::Span<const int64_t> weights,
                                   int64_t weight_sum, size_t start, std::vector<int64_t>& units) {
  const size_t n = weights.size();
  std::vector<Candidate> candidates;
  try {
    for (size_t i = 0; i < n; ++i) {
      if (weights[i] == 0) continue;
      checked_int128_t quotient;
      checked_int128_t remainder;
      boost::multiprecision::divide_qr(checked_int128_t(total) * weights[i],
                                       checked_int128_t(weight_sum), quotient, remainder);
      units[i] = quotient.convert_to<int64_t>();
      if (remainder != 0) {
        candidates.push_back({remainder.convert_to<int64_t>(), (i + n - start) % n});
      }
    }
  } catch (const std::overflow_error& e) {
    ML_CHECK(false, absl::StrCat("128-bit overflow in an allocation share: ", e.what()));
  } catch (const std::range_error& e) {
    ML_CHECK(false, absl::StrCat("128-bit range error in an allocation share: ", e.what()));
  }
  return candidates;
}

}  // namespace

absl::StatusOr<std::vector<Money>> Allocate(Money total, absl::Span<const int64_t> weights,
                                            uint64_t rotation) {
  const absl::StatusOr<int64_t> weight_sum = ValidateAndSumWeights(total, weights);
  if (!weight_sum.ok()) return weight_sum.status();

  const size_t n = weights.size();
  const size_t start = static_cast<size_t>(rotation % n);
  std::vector<int64_t> units(n, 0);
  std::vector<Candidate> candidates =
      FloorShares(total.minor_units(), weights, *weight_sum, start, units);

  int64_t floor_sum = 0;
  for (int64_t unit : units) floor_sum += unit;  // <= total, so no overflow.
  const int64_t leftover = total.minor_units() - floor_sum;
  // The leftover is the sum of remainder / weight_sum over the candidates, each < 1.
  ML_CHECK(
      leftover == 0 || (leftover > 0 && static_cast<uint64_t>(leftover) < candidates.size()),
      absl::StrCat("allocation leftover ", leftover, " with ", candidates.size(), " candidates"));

  if (leftover > 0) {
    const auto winners_end = candidates.begin() + leftover;
    std::nth_element(candidates.begin(), winners_end - 1, candidates.end(), RanksBefore);
    for (auto it = candidates.begin(); it != winners_end; ++it) {
      units[(it->order + start) % n] += 1;
    }
  }

  std::vector<Money> parts;
  parts.reserve(n);
  for (int64_t unit : units) parts.push_back(Money::FromMinor(total.currency(), unit));
  return parts;
}

}  // namespace microlend
