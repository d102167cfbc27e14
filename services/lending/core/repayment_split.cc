#include "services/lending/core/repayment_split.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <queue>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "common/status_macros.h"

namespace microlend::lending {
namespace {

using Int128 = __int128;

struct Totals {
  int64_t share_sum = 0;       // S
  int64_t credited_after = 0;  // D' = D + amount
};

// Where a funder's credited total after the split may land: [low, high], empty if low > high.
struct Range {
  int64_t low = 0;
  int64_t high = 0;
};

struct FunderBounds {
  int64_t floor = 0;      // floor(E_i) = floor(D' * s_i / S)
  int64_t remainder = 0;  // (D' * s_i) mod S: the fraction of E_i, times S
  Range hard;             // [max(floor(E_i), C_i), ceil(E_i)]
  Range soft;             // hard, narrowed to [C_i + floor(r_i), C_i + ceil(r_i)]
};

bool FitsInt64(Int128 value) {
  return value >= std::numeric_limits<int64_t>::min() &&
         value <= std::numeric_limits<int64_t>::max();
}

absl::StatusOr<Totals> ValidateAndSum(absl::Span<const FunderPosition> funders,
                                      int64_t amount_minor) {
  if (funders.empty()) return absl::InvalidArgumentError("funders is empty: a loan has funders");
  if (amount_minor <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("amount_minor must be positive, got ", amount_minor));
  }
  Int128 share_sum = 0;
  Int128 credited_sum = 0;
  for (size_t i = 0; i < funders.size(); ++i) {
    if (funders[i].share_minor <= 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "funders[", i, "].share_minor must be positive, got ", funders[i].share_minor));
    }
    if (funders[i].credited_minor < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "funders[", i, "].credited_minor must not be negative, got ", funders[i].credited_minor));
    }
    share_sum += funders[i].share_minor;
    credited_sum += funders[i].credited_minor;
  }
  const Int128 credited_after = credited_sum + amount_minor;
  if (!FitsInt64(share_sum) || !FitsInt64(credited_after)) {
    return absl::OutOfRangeError(
        "the sum of the shares, or of the credited plus the amount, overflows int64");
  }
  if (credited_after > share_sum) {
    return absl::InvalidArgumentError(
        absl::StrCat("repaying ", amount_minor, " on top of ", static_cast<int64_t>(credited_sum),
                     " already credited would return ", static_cast<int64_t>(credited_after),
                     ", more than the ", static_cast<int64_t>(share_sum), " lent"));
  }
  return Totals{static_cast<int64_t>(share_sum), static_cast<int64_t>(credited_after)};
}

// Quotients fit in int64: E_i <= s_i since D' <= S, and r_i <= s_i since amount <= S.
absl::StatusOr<std::vector<FunderBounds>> ComputeBounds(absl::Span<const FunderPosition> funders,
                                                        int64_t amount_minor,
                                                        const Totals& totals) {
  const int64_t share_sum = totals.share_sum;
  std::vector<FunderBounds> bounds(funders.size());
  for (size_t i = 0; i < funders.size(); ++i) {
    const FunderPosition& funder = funders[i];
    const Int128 entitled = Int128{totals.credited_after} * funder.share_minor;
    const Int128 part = Int128{amount_minor} * funder.share_minor;
    FunderBounds& b = bounds[i];
    b.floor = static_cast<int64_t>(entitled / share_sum);
    b.remainder = static_cast<int64_t>(entitled % share_sum);
    const int64_t ceil = b.floor + (b.remainder != 0 ? 1 : 0);
    if (funder.credited_minor > ceil) {
      return absl::InvalidArgumentError(absl::StrCat(
          "funders[", i, "] is already credited ", funder.credited_minor,
          ", more than the ceiling ", ceil, " of its entitlement after this repayment"));
    }
    b.hard = {std::max(b.floor, funder.credited_minor), ceil};
    // In 128 bits: credited plus part can pass int64 on nonsense input (it is then empty).
    const Int128 part_floor = part / share_sum;
    const Int128 part_ceil = part_floor + (part % share_sum != 0 ? 1 : 0);
    const Int128 soft_low = std::max<Int128>(b.hard.low, funder.credited_minor + part_floor);
    const Int128 soft_high = std::min<Int128>(b.hard.high, funder.credited_minor + part_ceil);
    b.soft = soft_low <= soft_high
                 ? Range{static_cast<int64_t>(soft_low), static_cast<int64_t>(soft_high)}
                 : Range{1, 0};
  }
  return bounds;
}

// Which funder takes the next leftover unit first.
enum class Priority {
  // Furthest below its entitlement: the largest fraction of E_i. What people expect, and what
  // the soft rule's history is kindest to, but it can strand a later repayment.
  kLargestFraction,
  // Earliest deadline: the least further repayment after which floor(E_i) alone would reach the
  // unit, ceil((S - remainder) / s_i). Never strands a later repayment: a state that could be
  // carried to the end has a schedule of all the units still to come, one per minor unit
  // repaid, each within its funder's [floor, ceil]; any such schedule's first D' - D units can
  // trade a later-deadline unit for an earlier one without breaking it, so the earliest
  // deadlines among the units this split may give are always a safe choice.
  kEarliestDeadline,
};

// The funders whose entitlement is fractional (only they can take a leftover unit), in
// `priority` order; ties go to the larger fraction, then to the first at or after the rotation.
std::vector<size_t> RankClaims(absl::Span<const FunderPosition> funders,
                               const std::vector<FunderBounds>& bounds, int64_t share_sum,
                               uint64_t rotation, Priority priority) {
  struct Claim {
    int64_t deadline;  // 0 when ranking by fraction alone
    int64_t remainder;
    size_t order;  // (index - rotation) mod n
    size_t index;
  };
  const size_t n = funders.size();
  const size_t start = static_cast<size_t>(rotation % n);
  std::vector<Claim> claims;
  for (size_t i = 0; i < n; ++i) {
    const int64_t remainder = bounds[i].remainder;
    if (remainder == 0) continue;
    const int64_t share = funders[i].share_minor;
    const int64_t below = share_sum - remainder;  // (ceil(E_i) - E_i) * S
    const int64_t deadline =
        priority == Priority::kEarliestDeadline ? below / share + (below % share != 0 ? 1 : 0) : 0;
    claims.push_back({deadline, remainder, (i + n - start) % n, i});
  }
  std::sort(claims.begin(), claims.end(), [](const Claim& a, const Claim& b) {
    if (a.deadline != b.deadline) return a.deadline < b.deadline;
    if (a.remainder != b.remainder) return a.remainder > b.remainder;
    return a.order < b.order;
  });
  std::vector<size_t> ranked;
  ranked.reserve(claims.size());
  for (const Claim& claim : claims) ranked.push_back(claim.index);
  return ranked;
}

// New credited totals within `ranges` summing to `credited_after`: every funder at its low, then
// one more unit to each of the best-ranked funders with room. nullopt if the ranges cannot sum
// to it. Each range is at most one unit wide and only fractional entitlements have width.
std::optional<std::vector<int64_t>> Fill(const std::vector<Range>& ranges,
                                         const std::vector<size_t>& ranked,
                                         int64_t credited_after) {
  std::vector<int64_t> totals(ranges.size());
  Int128 low_sum = 0;
  for (size_t i = 0; i < ranges.size(); ++i) {
    if (ranges[i].low > ranges[i].high) return std::nullopt;
    totals[i] = ranges[i].low;
    low_sum += ranges[i].low;
  }
  if (low_sum > credited_after) return std::nullopt;
  int64_t leftover = static_cast<int64_t>(credited_after - low_sum);
  for (size_t i : ranked) {
    if (leftover == 0) break;
    if (ranges[i].low < ranges[i].high) {
      ++totals[i];
      --leftover;
    }
  }
  if (leftover != 0) return std::nullopt;
  return totals;
}

// True when, from `totals`, every later repayment can still keep every funder within a unit of
// its entitlement. It can iff for every later D'' the funders that must stay ahead of floor(E_i)
// until then fit: #{i : totals_i > floor(D'' * s_i / S)} <= D'' - sum of those floors (Hall's
// condition for the units still to hand out; only repayments that complete a funder's floor can
// make it tighter). Scans D'' event by event up to the last deadline of a funder now ahead;
// false, without deciding, if that is more than kMaxSplitLookaheadMinor away.
bool LaterSplitsStayFeasible(absl::Span<const FunderPosition> funders,
                             const std::vector<FunderBounds>& bounds, const Totals& totals,
                             const std::vector<int64_t>& credited) {
  const int64_t share_sum = totals.share_sum;
  // When floor(E_i) reaches `value`, as the total repaid: ceil(value * S / s_i), <= S.
  const auto reaches = [&](size_t i, int64_t value) {
    const Int128 scaled = Int128{value} * share_sum;
    const int64_t share = funders[i].share_minor;
    return static_cast<int64_t>((scaled + share - 1) / share);
  };
  int64_t ahead = 0;
  int64_t horizon = totals.credited_after;
  int64_t floor_sum = 0;
  std::vector<int64_t> floors(funders.size());
  for (size_t i = 0; i < funders.size(); ++i) {
    floors[i] = bounds[i].floor;
    floor_sum += floors[i];
    if (credited[i] > floors[i]) {
      ++ahead;
      horizon = std::max(horizon, reaches(i, credited[i]));
    }
  }
  if (ahead == 0) return true;
  if (horizon - totals.credited_after > kMaxSplitLookaheadMinor) return false;

  using Event = std::pair<int64_t, size_t>;  // (total repaid, funder whose floor rises then)
  std::priority_queue<Event, std::vector<Event>, std::greater<>> events;
  for (size_t i = 0; i < funders.size(); ++i) events.push({reaches(i, floors[i] + 1), i});
  while (events.top().first < horizon) {
    const int64_t repaid = events.top().first;
    while (events.top().first == repaid) {
      const size_t i = events.top().second;
      events.pop();
      ++floors[i];
      ++floor_sum;
      if (floors[i] == credited[i]) --ahead;
      events.push({reaches(i, floors[i] + 1), i});
    }
    if (ahead > repaid - floor_sum) return false;
  }
  return true;
}

absl::Status CheckGuarantees(absl::Span<const FunderPosition> funders,
                             const std::vector<FunderBounds>& bounds, int64_t amount_minor,
                             const std::vector<int64_t>& parts) {
  Int128 sum = 0;
  for (size_t i = 0; i < funders.size(); ++i) {
    const int64_t total = funders[i].credited_minor + parts[i];
    const int64_t ceil = bounds[i].floor + (bounds[i].remainder != 0 ? 1 : 0);
    if (parts[i] < 0 || total < bounds[i].floor || total > ceil) {
      return absl::InternalError(
          absl::StrCat("repayment split broke a guarantee for funders[", i, "]: part ", parts[i],
                       ", total ", total, ", entitlement in [", bounds[i].floor, ", ", ceil, "]"));
    }
    sum += parts[i];
  }
  if (sum != amount_minor) {
    return absl::InternalError(absl::StrCat("repayment split parts sum to ",
                                            static_cast<int64_t>(sum), ", not ", amount_minor));
  }
  return absl::OkStatus();
}

// The new credited totals: the first of these candidates, in order of preference, that leaves
// every later repayment feasible. Soft before hard, and for each the largest fractions first,
// then the earliest deadlines (if any split within those bounds is safe, that one is). The last
// resort, hard bounds by earliest deadline, is safe whenever the credited totals were, so it
// needs no look-ahead. nullopt when even the hard bounds cannot sum to D'.
std::optional<std::vector<int64_t>> ChooseTotals(absl::Span<const FunderPosition> funders,
                                                 const std::vector<FunderBounds>& bounds,
                                                 const Totals& totals, uint64_t rotation) {
  std::vector<Range> hard(funders.size());
  std::vector<Range> soft(funders.size());
  for (size_t i = 0; i < funders.size(); ++i) {
    hard[i] = bounds[i].hard;
    soft[i] = bounds[i].soft;
  }
  const std::vector<size_t> by_fraction =
      RankClaims(funders, bounds, totals.share_sum, rotation, Priority::kLargestFraction);
  const std::vector<size_t> by_deadline =
      RankClaims(funders, bounds, totals.share_sum, rotation, Priority::kEarliestDeadline);
  const std::pair<const std::vector<Range>*, const std::vector<size_t>*> checked[] = {
      {&soft, &by_fraction}, {&soft, &by_deadline}, {&hard, &by_fraction}};
  for (const auto& [ranges, ranked] : checked) {
    std::optional<std::vector<int64_t>> credited = Fill(*ranges, *ranked, totals.credited_after);
    if (credited && LaterSplitsStayFeasible(funders, bounds, totals, *credited)) return credited;
  }
  return Fill(hard, by_deadline, totals.credited_after);
}

}  // namespace

absl::StatusOr<std::vector<int64_t>> SplitRepayment(absl::Span<const FunderPosition> funders,
                                                    int64_t amount_minor, uint64_t rotation) {
  ML_ASSIGN_OR_RETURN(const Totals totals, ValidateAndSum(funders, amount_minor));
  ML_ASSIGN_OR_RETURN(const std::vector<FunderBounds> bounds,
                      ComputeBounds(funders, amount_minor, totals));
  const std::optional<std::vector<int64_t>> credited =
      ChooseTotals(funders, bounds, totals, rotation);
  if (!credited) {
    return absl::InvalidArgumentError(
        "no split keeps every funder within one unit of its entitlement: some are credited too "
        "far ahead for this amount (the credited totals were not produced by SplitRepayment)");
  }

  std::vector<int64_t> parts(funders.size());
  for (size_t i = 0; i < funders.size(); ++i) {
    parts[i] = (*credited)[i] - funders[i].credited_minor;
  }
  ML_RETURN_IF_ERROR(CheckGuarantees(funders, bounds, amount_minor, parts));
  return parts;
}

}  // namespace microlend::lending
