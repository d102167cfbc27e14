// Allocate: split an amount among parties in proportion to weights, exactly.
//
// The rule (largest remainder, rotated ties), for total T >= 0 and weights w_i with sum W:
//   1. Party i first gets floor(T * w_i / W) minor units, and has remainder
//      r_i = (T * w_i) mod W.
//   2. The leftover L = T - sum of the floors is always smaller than the number of parties
//      with r_i > 0. One extra minor unit goes to each of the L parties ranked first by
//      (r_i descending, (i - rotation) mod N ascending).
// So the parts sum exactly to T, every part is within one minor unit of its exact share
// T * w_i / W (|part_i * W - T * w_i| < W), a zero weight gets exactly zero, and the same
// inputs always give the same parts. Ties between equal remainders go to the party at
// position `rotation mod N` first and then onward, wrapping around: callers pass something that
// changes from one split to the next (e.g. the repayment's sequence number) so that no party
// is always the one favoured by rounding. Example, 100.00 USD with weights [1, 1, 1]:
//   rotation 0 -> [33.34, 33.33, 33.33], 1 -> [33.33, 33.34, 33.33], 2 -> [33.33, 33.33, 33.34].
//
// To split a negative amount (a loss), negate it, allocate, and negate the parts.
//
// Statuses: InvalidArgument when total is negative, weights is empty or has more than
// kMaxAllocationParties entries, a weight is negative, all weights are zero, or the weights'
// sum overflows int64. Nothing else fails: all intermediates are exact 128-bit values.
//
// Cost: O(N) time on average and O(N) memory; 10,000 parties take well under a millisecond.
// Thread-safe: a pure function.

#ifndef MICROLEND_LIBS_COMMON_ALLOCATE_H_
#define MICROLEND_LIBS_COMMON_ALLOCATE_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/money.h"

namespace microlend {

// Far above any loan's lender count; bounds the memory a single request can make us use.
inline constexpr size_t kMaxAllocationParties = 1'000'000;

// Returns one part per weight, in the order of `weights`, each in total's currency.
absl::StatusOr<std::vector<Money>> Allocate(Money total, absl::Span<const int64_t> weights,
                                            uint64_t rotation);

}  // namespace microlend

#endif  // MICROLEND_LIBS_COMMON_ALLOCATE_H_
