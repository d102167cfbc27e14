#include "common/allocate.h"

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/currency.h"
#include "common/money.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

#ifndef MICROLEND_TESTDATA_DIR
#error "The build must define MICROLEND_TESTDATA_DIR as the absolute path of libs/common/testdata"
#endif

namespace microlend {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr int64_t kMax = std::numeric_limits<int64_t>::max();

Money Usd(int64_t cents) { return Money::FromMinor(Currency::Usd(), cents); }

std::string Message(const absl::Status& status) { return std::string(status.message()); }

std::vector<int64_t> Minor(const std::vector<Money>& parts) {
  std::vector<int64_t> units;
  for (const Money& part : parts) units.push_back(part.minor_units());
  return units;
}

std::vector<int64_t> MinorOf(Money total, std::vector<int64_t> weights, uint64_t rotation) {
  absl::StatusOr<std::vector<Money>> parts = Allocate(total, weights, rotation);
  EXPECT_TRUE(parts.ok()) << parts.status();
  return parts.ok() ? Minor(*parts) : std::vector<int64_t>{};
}

TEST(Allocate, HundredDollarsThreeWaysGivesTheExtraCentToTheFirstParty) {
  absl::StatusOr<Money> total = Money::Parse("100.00", "USD");
  ASSERT_TRUE(total.ok());
  absl::StatusOr<std::vector<Money>> parts = Allocate(*total, std::vector<int64_t>{1, 1, 1}, 0);
  ASSERT_TRUE(parts.ok()) << parts.status();
  ASSERT_EQ(parts->size(), 3u);
  EXPECT_EQ((*parts)[0].ToString(), "33.34");
  EXPECT_EQ((*parts)[1].ToString(), "33.33");
  EXPECT_EQ((*parts)[2].ToString(), "33.33");
}

TEST(Allocate, RotationMovesTheExtraCentAlongAndWrapsAround) {
  EXPECT_THAT(MinorOf(Usd(10000), {1, 1, 1}, 1), ElementsAre(3333, 3334, 3333));
  EXPECT_THAT(MinorOf(Usd(10000), {1, 1, 1}, 2), ElementsAre(3333, 3333, 3334));
  EXPECT_THAT(MinorOf(Usd(10000), {1, 1, 1}, 3), ElementsAre(3334, 3333, 3333));
  // 2^64 - 1 is a multiple of 3.
  EXPECT_THAT(MinorOf(Usd(10000), {1, 1, 1}, std::numeric_limits<uint64_t>::max()),
              ElementsAre(3334, 3333, 3333));
  // Two leftover units starting at index 2 wrap to index 0.
  EXPECT_THAT(MinorOf(Usd(2), {1, 1, 1}, 2), ElementsAre(1, 0, 1));
}

TEST(Allocate, LargerRemainderWinsWhateverTheRotation) {
  // 100 * 1 / 3 leaves remainder 1, 100 * 2 / 3 leaves remainder 2.
  for (uint64_t rotation = 0; rotation < 4; ++rotation) {
    EXPECT_THAT(MinorOf(Usd(100), {1, 2}, rotation), ElementsAre(33, 67)) << rotation;
  }
}

TEST(Allocate, ZeroWeightGetsExactlyZero) {
  EXPECT_THAT(MinorOf(Usd(1000), {1, 0, 1}, 0), ElementsAre(500, 0, 500));
  // Even when the zero-weight party is first in tie order.
  EXPECT_THAT(MinorOf(Usd(1), {0, 1, 1}, 0), ElementsAre(0, 1, 0));
  EXPECT_THAT(MinorOf(Usd(1), {1, 0, 1}, 1), ElementsAre(0, 0, 1));
}

TEST(Allocate, SinglePartyGetsEverything) {
  EXPECT_THAT(MinorOf(Usd(2501), {7}, 12345), ElementsAre(2501));
  EXPECT_THAT(MinorOf(Usd(kMax), {kMax}, 0), ElementsAre(kMax));
}

TEST(Allocate, ZeroTotalGivesZeroToEveryone) {
  EXPECT_THAT(MinorOf(Usd(0), {1, 2, 3}, 5), ElementsAre(0, 0, 0));
}

TEST(Allocate, PartsCarryTheTotalsCurrency) {
  const Money total = Money::FromMinor(Currency::FromCode("KWD").value(), 1000);
  absl::StatusOr<std::vector<Money>> parts = Allocate(total, std::vector<int64_t>{1, 1, 1}, 1);
  ASSERT_TRUE(parts.ok());
  for (const Money& part : *parts) EXPECT_EQ(part.currency(), total.currency());
  EXPECT_THAT(Minor(*parts), ElementsAre(333, 334, 333));
}

TEST(Allocate, ExtremeTotalsAndWeightsStayExact) {
  EXPECT_THAT(MinorOf(Usd(kMax), {kMax - 1, 1}, 0), ElementsAre(kMax - 1, 1));
  EXPECT_THAT(MinorOf(Usd(kMax), {1, 1}, 0), ElementsAre(kMax / 2 + 1, kMax / 2));
  EXPECT_THAT(MinorOf(Usd(1), {kMax / 2, kMax / 2}, 1), ElementsAre(0, 1));
}

TEST(Allocate, NegativeTotalIsInvalidArgument) {
  absl::StatusOr<std::vector<Money>> parts = Allocate(Usd(-1), std::vector<int64_t>{1}, 0);
  ASSERT_EQ(parts.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(parts.status()), HasSubstr("is negative"));
}

TEST(Allocate, EmptyWeightsIsInvalidArgument) {
  absl::StatusOr<std::vector<Money>> parts = Allocate(Usd(100), {}, 0);
  ASSERT_EQ(parts.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(parts.status()), HasSubstr("weights is empty"));
}

TEST(Allocate, NegativeWeightIsInvalidArgumentNamingItsIndex) {
  absl::StatusOr<std::vector<Money>> parts = Allocate(Usd(100), std::vector<int64_t>{1, 2, -3}, 0);
  ASSERT_EQ(parts.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(parts.status()), HasSubstr("weight[2] is -3"));
}

TEST(Allocate, AllZeroWeightsIsInvalidArgument) {
  absl::StatusOr<std::vector<Money>> parts = Allocate(Usd(100), std::vector<int64_t>{0, 0}, 0);
  ASSERT_EQ(parts.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(parts.status()), HasSubstr("all weights are zero"));
}

TEST(Allocate, WeightSumOverflowIsInvalidArgument) {
  absl::StatusOr<std::vector<Money>> parts =
      Allocate(Usd(100), std::vector<int64_t>{kMax, 0, 1}, 0);
  ASSERT_EQ(parts.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(parts.status()), HasSubstr("overflows int64 at weight[2]"));
}

TEST(Allocate, MoreThanMaxPartiesIsInvalidArgumentAndMaxPartiesWorks) {
  std::vector<int64_t> weights(kMaxAllocationParties, 1);
  absl::StatusOr<std::vector<Money>> parts = Allocate(Usd(kMax), weights, 17);
  ASSERT_TRUE(parts.ok()) << parts.status();
  int64_t extra = 0;
  for (const Money& part : *parts) extra += part.minor_units() - kMax / 1'000'000;
  EXPECT_EQ(extra, kMax % 1'000'000);
  EXPECT_EQ((*parts)[17].minor_units(), kMax / 1'000'000 + 1);
  EXPECT_EQ((*parts)[16].minor_units(), kMax / 1'000'000);

  weights.push_back(1);
  parts = Allocate(Usd(100), weights, 0);
  ASSERT_EQ(parts.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(parts.status()), HasSubstr("exceed the limit of 1000000"));
}

// Golden vectors: the "allocate" rows of testdata/money_golden.tsv.
TEST(AllocateGolden, EveryAllocateVectorInGoldenFileHolds) {
  const std::string path = std::string(MICROLEND_TESTDATA_DIR) + "/money_golden.tsv";
  std::ifstream in(path);
  ASSERT_TRUE(in.is_open()) << "cannot open " << path;
  int checked = 0;
  std::string text;
  for (int line = 1; std::getline(in, text); ++line) {
    std::vector<std::string> f = absl::StrSplit(text, '\t');
    if (text.empty() || text[0] == '#' || f[0] != "allocate") continue;
    SCOPED_TRACE(testing::Message() << "money_golden.tsv:" << line << ": " << text);
    ASSERT_EQ(f.size(), 6u);
    absl::StatusOr<Money> total = Money::Parse(f[1], f[3], {.allow_negative = true});
    ASSERT_TRUE(total.ok()) << total.status();
    std::vector<int64_t> weights;
    const std::vector<std::string> weight_texts = absl::StrSplit(f[2], ',');
    for (const std::string& w : weight_texts) {
      if (w == "-") break;  // "-" means no weights at all.
      ASSERT_TRUE(absl::SimpleAtoi(w, &weights.emplace_back())) << w;
    }
    uint64_t rotation = 0;
    ASSERT_TRUE(absl::SimpleAtoi(f[4], &rotation));
    absl::StatusOr<std::vector<Money>> parts = Allocate(*total, weights, rotation);
    std::string outcome;
    if (!parts.ok()) {
      outcome = "!" + absl::StatusCodeToString(parts.status().code());
    } else {
      std::vector<std::string> strings;
      for (const Money& part : *parts) strings.push_back(part.ToString());
      outcome = absl::StrJoin(strings, ",");
    }
    EXPECT_EQ(outcome, f[5]);
    ++checked;
  }
  EXPECT_GE(checked, 10) << "too few allocate rows in " << path;
}

// Property tests over many random splits.

struct RandomCase {
  int64_t total;
  std::vector<int64_t> weights;
  uint64_t rotation;
};

int64_t RandomTotal(std::mt19937_64& rng) {
  switch (rng() % 5) {
    case 0:
      return static_cast<int64_t>(rng() % 100);
    case 1:
      return static_cast<int64_t>(rng() % 10'000'000);
    case 2:
      return static_cast<int64_t>(rng() >> 1);  // Anywhere in [0, INT64_MAX].
    case 3:
      return kMax - static_cast<int64_t>(rng() % 1000);
    default:
      return static_cast<int64_t>(rng() >> (1 + rng() % 63));
  }
}

RandomCase MakeRandomCase(std::mt19937_64& rng) {
  RandomCase c;
  const size_t n = 1 + rng() % 50;
  c.total = RandomTotal(rng);
  // Small weights make many ties; huge ones push total * weight towards 2^126.
  const int64_t caps[] = {4, 1000, kMax / static_cast<int64_t>(n)};
  const auto weight_cap = static_cast<uint64_t>(caps[rng() % 3]);
  int64_t sum = 0;
  for (size_t i = 0; i < n; ++i) {
    const bool zero = rng() % 5 == 0;
    c.weights.push_back(zero ? 0 : static_cast<int64_t>(rng() % (weight_cap + 1)));
    sum += c.weights.back();
  }
  if (sum == 0) c.weights[rng() % n] = 1 + static_cast<int64_t>(rng() % 3);
  c.rotation = rng();
  return c;
}

// Checks the documented rule against 128-bit arithmetic done here, independently of the
// library. Returns false (after reporting) on the first violation.
bool SatisfiesAllocationRule(const RandomCase& c, const std::vector<Money>& parts) {
  const size_t n = c.weights.size();
  if (parts.size() != n) {
    ADD_FAILURE() << "got " << parts.size() << " parts for " << n << " weights";
    return false;
  }
  __int128 weight_sum = 0;
  for (int64_t w : c.weights) weight_sum += w;
  __int128 parts_sum = 0;
  // Rank keys of the worst-ranked party that got an extra unit and the best-ranked that did not.
  __int128 worst_winner_remainder = -1, best_loser_remainder = -1;
  size_t worst_winner_order = 0, best_loser_order = 0;
  for (size_t i = 0; i < n; ++i) {
    const __int128 part = parts[i].minor_units();
    const __int128 exact = static_cast<__int128>(c.total) * c.weights[i];
    parts_sum += part;
    const __int128 error = part * weight_sum - exact;
    if (error <= -weight_sum || error >= weight_sum || part < 0 ||
        (c.weights[i] == 0 && part != 0)) {
      ADD_FAILURE() << "part " << i << " = " << static_cast<int64_t>(part)
                    << " is not within one unit of its share";
      return false;
    }
    const __int128 remainder = exact % weight_sum;
    const size_t order = (i + n - c.rotation % n) % n;
    const bool won = part != exact / weight_sum;
    if (won && (worst_winner_remainder < 0 || remainder < worst_winner_remainder ||
                (remainder == worst_winner_remainder && order > worst_winner_order))) {
      worst_winner_remainder = remainder;
      worst_winner_order = order;
    }
    if (!won && remainder > 0 &&
        (best_loser_remainder < 0 || remainder > best_loser_remainder ||
         (remainder == best_loser_remainder && order < best_loser_order))) {
      best_loser_remainder = remainder;
      best_loser_order = order;
    }
  }
  if (parts_sum != c.total) {
    ADD_FAILURE() << "parts sum to " << static_cast<int64_t>(parts_sum) << ", not " << c.total;
    return false;
  }
  if (worst_winner_remainder >= 0 && best_loser_remainder >= 0 &&
      (best_loser_remainder > worst_winner_remainder ||
       (best_loser_remainder == worst_winner_remainder && best_loser_order < worst_winner_order))) {
    ADD_FAILURE() << "an extra unit went to a party ranked below one that got none";
    return false;
  }
  return true;
}

TEST(AllocateProperty, MillionRandomSplitsSumToTotalStayWithinOneUnitAndRepeat) {
  std::mt19937_64 rng(0x6D6963726F6C656E);  // "microlen"
  constexpr int kCases = 1'000'000;
  for (int i = 0; i < kCases; ++i) {
    const RandomCase c = MakeRandomCase(rng);
    absl::StatusOr<std::vector<Money>> first = Allocate(Usd(c.total), c.weights, c.rotation);
    ASSERT_TRUE(first.ok()) << "case " << i << ": " << first.status();
    ASSERT_TRUE(SatisfiesAllocationRule(c, *first))
        << "case " << i << ": total " << c.total << " weights " << absl::StrJoin(c.weights, ",")
        << " rotation " << c.rotation;
    absl::StatusOr<std::vector<Money>> second = Allocate(Usd(c.total), c.weights, c.rotation);
    ASSERT_TRUE(second.ok());
    ASSERT_EQ(*first, *second) << "case " << i << " is not deterministic";
  }
}

TEST(AllocateProperty, EqualWeightTiesRotateSoEachPartyGetsTheExtraEquallyOften) {
  std::mt19937_64 rng(7);
  for (int i = 0; i < 10'000; ++i) {
    const size_t n = 2 + rng() % 49;
    const std::vector<int64_t> weights(n, 1 + static_cast<int64_t>(rng() % 1'000'000));
    const int64_t total = RandomTotal(rng);
    const uint64_t start = rng() % (std::numeric_limits<uint64_t>::max() - 64);
    const int64_t floor_share = total / static_cast<int64_t>(n);
    std::vector<int64_t> extras(n, 0);
    for (uint64_t rotation = start; rotation < start + n; ++rotation) {
      absl::StatusOr<std::vector<Money>> parts = Allocate(Usd(total), weights, rotation);
      ASSERT_TRUE(parts.ok());
      for (size_t p = 0; p < n; ++p) extras[p] += (*parts)[p].minor_units() - floor_share;
    }
    const int64_t leftover = total % static_cast<int64_t>(n);
    for (size_t p = 0; p < n; ++p) {
      ASSERT_EQ(extras[p], leftover) << "party " << p << " of " << n << ", total " << total;
    }
  }
}

}  // namespace
}  // namespace microlend
