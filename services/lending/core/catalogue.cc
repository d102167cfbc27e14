#include "services/lending/core/catalogue.h"

#include <algorithm>
#include <bit>
#include <limits>
#include <tuple>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/check.h"

namespace microlend::lending {
namespace {

// A set of small enum values (sector, gender, repayment interval) as bits; 0 for a value out of
// range, which no set contains.
uint32_t Bit(int64_t value) { return value >= 0 && value < 32 ? 1u << value : 0; }

using catalogue_internal::Rank;
using Bitmap = std::vector<uint64_t>;

// A search ranks every match, rather than walk its sort's order, when the walk would visit more
// than this many loans for each match ranked: ranking a match reads its sort key and id at
// random (a cache miss each), a step of the walk reads the next entry of the order and one bit.
constexpr int64_t kWalkStepsPerRankedMatch = 8;

void SetBit(Bitmap& b, size_t slot) {
  const size_t word = slot / 64;
  if (b.size() <= word) b.resize(word + 1, 0);
  b[word] |= uint64_t{1} << (slot % 64);
}
void ClearBit(Bitmap& b, size_t slot) {
  const size_t word = slot / 64;
  if (word < b.size()) b[word] &= ~(uint64_t{1} << (slot % 64));
}
bool TestBit(const Bitmap& b, size_t slot) {
  const size_t word = slot / 64;
  return word < b.size() && ((b[word] >> (slot % 64)) & 1) != 0;
}
uint64_t Word(const Bitmap& b, size_t word) { return word < b.size() ? b[word] : 0; }

// The sort key column a sort reads; -1 for kRandom, which has none.
int KeyOf(LoanSort sort) {
  switch (sort) {
    case LoanSort::kNewest: return 0;
    case LoanSort::kExpiringSoonest: return 1;
    case LoanSort::kAmountLeftAsc:
    case LoanSort::kAmountLeftDesc: return 2;
    case LoanSort::kLoanAmountAsc:
    case LoanSort::kLoanAmountDesc: return 3;
    case LoanSort::kTrending: return 4;
    case LoanSort::kRandom: break;
  }
  return -1;
}

uint64_t Ascending(int64_t v) { return static_cast<uint64_t>(v) ^ (uint64_t{1} << 63); }
uint64_t Descending(int64_t v) { return ~Ascending(v); }

// The rank of a sort key as LoanSortKey gives it (kRandom has none: see RankOfCursor).
Rank KeyRank(LoanSort sort, int64_t key, int64_t id) {
  switch (sort) {
    case LoanSort::kNewest:
    case LoanSort::kAmountLeftDesc:
    case LoanSort::kLoanAmountDesc:
    case LoanSort::kTrending:
      return {false, Descending(key), id};
    case LoanSort::kExpiringSoonest:
    case LoanSort::kAmountLeftAsc:
    case LoanSort::kLoanAmountAsc:
    case LoanSort::kRandom:
      break;
  }
  return {false, Ascending(key), id};
}

absl::StatusOr<Rank> RankOfCursor(const LoanQuery& q, const LoanCursor& cursor) {
  const int64_t id = cursor.id.value();
  if (q.sort == LoanSort::kRandom) return Rank{false, RandomSortKey(q.random_seed, cursor.id), id};
  if (!cursor.key) {
    if (q.sort == LoanSort::kExpiringSoonest) return Rank{true, 0, id};
    return absl::InvalidArgumentError("the page cursor has no sort key");
  }
  return KeyRank(q.sort, *cursor.key, id);
}

}  // namespace

// A LoanQuery compiled against the interned strings: the tests of MatchesQuery, through the
// bitmap indexes where a facet has one and loan by loan for the rest.
class FundraisingCatalogue::Filter {
 public:
  Filter(const LoanQuery& q, const absl::flat_hash_map<std::string, uint32_t>& interned)
      : nothing_(q.matchable && *q.matchable),
        delinquent_(q.delinquent),
        min_days_in_arrears_(q.min_days_in_arrears),
        is_group_(q.is_group),
        min_rating_(q.min_partner_risk_rating_half_stars),
        max_term_(q.max_term_months),
        min_left_(q.min_amount_left_minor),
        max_left_(q.max_amount_left_minor),
        tags_(q.tags),
        hashtags_(q.hashtags) {
    auto ids = [&interned](const std::vector<std::string>& values, bool lower) {
      std::vector<uint32_t> out;
      for (const std::string& v : values) {
        auto it = interned.find(lower ? absl::AsciiStrToLower(v) : v);
        if (it != interned.end()) out.push_back(it->second);
      }
      return out;
    };
    by_country_ = !q.countries.empty();
    countries_ = ids(q.countries, false);
    by_region_ = !q.regions.empty();
    regions_ = ids(q.regions, true);
    for (int32_t s : q.sectors) sectors_ |= Bit(s);
    by_sector_ = !q.sectors.empty();
    for (Gender g : q.genders) genders_ |= Bit(static_cast<int64_t>(g));
    by_gender_ = !q.genders.empty();
    for (RepaymentInterval i : q.repayment_intervals) intervals_ |= Bit(static_cast<int64_t>(i));
    by_interval_ = !q.repayment_intervals.empty();
    for (PartnerId p : q.partner_ids) partners_.push_back(p.value());
    by_partner_ = !q.partner_ids.empty();
    if (q.expiring_within_hours > 0) {  // as PgLoanStore bounds it: now .. now + hours
      by_deadline_ = true;
      deadline_from_us_ = absl::ToUnixMicros(q.now);
      const int64_t max_hours =
          (std::numeric_limits<int64_t>::max() - deadline_from_us_) / 3'600'000'000LL;
      deadline_to_us_ =
          deadline_from_us_ + std::min(q.expiring_within_hours, max_hours) * 3'600'000'000LL;
    }
  }

  // The slots of `c` that match, and how many.
  Bitmap Matches(const FundraisingCatalogue& c, int64_t& count) const
      ABSL_SHARED_LOCKS_REQUIRED(c.mu_) {
    const size_t slots = c.facets_.size();
    Bitmap out((slots + 63) / 64, ~uint64_t{0});
    if (slots % 64 != 0) out.back() = (uint64_t{1} << (slots % 64)) - 1;
    count = 0;
    if (nothing_) {
      std::fill(out.begin(), out.end(), 0);
      return out;
    }
    Bitmap accepted(out.size());
    // Keeps in `out` the slots whose value of `facet` is one `accepts` takes.
    auto narrow = [&](Indexed facet, auto accepts) {
      std::fill(accepted.begin(), accepted.end(), 0);
      for (const auto& [value, with_value] : c.by_[facet]) {
        if (!accepts(value)) continue;
        const size_t words = std::min(accepted.size(), with_value.size());
        for (size_t w = 0; w < words; ++w) accepted[w] |= with_value[w];
      }
      for (size_t w = 0; w < out.size(); ++w) out[w] &= accepted[w];
    };
    if (by_sector_) narrow(kBySector, [&](uint32_t v) { return (Bit(v) & sectors_) != 0; });
    if (by_gender_) narrow(kByGender, [&](uint32_t v) { return (Bit(v) & genders_) != 0; });
    if (by_country_) narrow(kByCountry, [&](uint32_t v) { return Contains(countries_, v); });
    if (min_rating_ > 0) {
      narrow(kByRating, [&](uint32_t v) { return static_cast<int64_t>(v) >= min_rating_; });
    }
    if (max_term_ > 0) {
      narrow(kByTerm, [&](uint32_t v) { return static_cast<int64_t>(v) <= max_term_; });
    }
    if (by_interval_) narrow(kByInterval, [&](uint32_t v) { return (Bit(v) & intervals_) != 0; });
    if (is_group_) {
      for (size_t w = 0; w < out.size(); ++w) {
        out[w] &= *is_group_ ? Word(c.groups_, w) : ~Word(c.groups_, w);
      }
    }
    const bool loan_by_loan = by_region_ || by_partner_ || min_left_ || max_left_ ||
                              by_deadline_ || !tags_.empty() || !hashtags_.empty() ||
                              delinquent_ || min_days_in_arrears_ > 0;
    for (size_t w = 0; w < out.size(); ++w) {
      if (loan_by_loan) {
        for (uint64_t bits = out[w]; bits != 0; bits &= bits - 1) {
          const size_t i = w * 64 + std::countr_zero(bits);
          if (!MatchesRest(c.facets_[i].region, c.entries_[i], c.keys_[kLeftMinor][i],
                           c.facets_[i].has_deadline, c.keys_[kDeadlineUs][i])) {
            out[w] &= ~(uint64_t{1} << (i % 64));
          }
        }
      }
      count += std::popcount(out[w]);
    }
    return out;
  }

 private:
  // `left_minor` and `deadline_us` are the loan's keys (Key), `has_deadline` its facet.
  bool MatchesRest(uint32_t region, const Entry& e, int64_t left_minor, bool has_deadline,
                   int64_t deadline_us) const {
    if (by_region_ && !Contains(regions_, region)) return false;
    if (by_partner_ && !Contains(partners_, e.partner)) return false;
    if (min_left_ && left_minor < *min_left_) return false;
    if (max_left_ && left_minor > *max_left_) return false;
    if (by_deadline_ && (!has_deadline || deadline_us < deadline_from_us_ ||
                         deadline_us > deadline_to_us_)) {
      return false;
    }
    if (delinquent_ && *delinquent_ != e.card->delinquent) return false;
    if (e.card->days_in_arrears < min_days_in_arrears_) return false;
    if (!tags_.empty() && !Overlaps(tags_, e.card->details.tags)) return false;
    if (!hashtags_.empty() && !Overlaps(hashtags_, e.card->details.hashtags)) return false;
    return true;
  }

  template <typename T>
  static bool Contains(const std::vector<T>& set, T value) {
    return std::find(set.begin(), set.end(), value) != set.end();
  }
  static bool Overlaps(const std::vector<std::string>& a, const std::vector<std::string>& b) {
    for (const std::string& x : a) {
      if (std::find(b.begin(), b.end(), x) != b.end()) return true;
    }
    return false;
  }

  bool nothing_;
  std::optional<bool> delinquent_;
  int32_t min_days_in_arrears_;
  std::optional<bool> is_group_;
  int32_t min_rating_;
  int32_t max_term_;
  std::optional<int64_t> min_left_, max_left_;
  const std::vector<std::string>& tags_;
  const std::vector<std::string>& hashtags_;
  bool by_country_ = false, by_region_ = false, by_sector_ = false, by_gender_ = false;
  bool by_interval_ = false, by_partner_ = false, by_deadline_ = false;
  std::vector<uint32_t> countries_, regions_;
  std::vector<int64_t> partners_;
  uint32_t sectors_ = 0, genders_ = 0, intervals_ = 0;
  int64_t deadline_from_us_ = 0, deadline_to_us_ = 0;
};

bool FundraisingCatalogue::Serves(const LoanQuery& query) {
  return std::all_of(query.statuses.begin(), query.statuses.end(),
                     [](LoanStatus s) { return s == LoanStatus::kFundraising; });
}

absl::Status FundraisingCatalogue::Load() {
  absl::StatusOr<CatalogueChanges> snapshot = feed_->CatalogueSnapshot();
  if (!snapshot.ok()) return snapshot.status();
  const CatalogueHorizon next = snapshot->next;
  {
    absl::WriterMutexLock lock(&mu_);
    Apply(*std::move(snapshot));
  }
  absl::MutexLock lock(&read_mu_);
  horizon_ = next;
  loaded_ = true;
  return absl::OkStatus();
}

size_t FundraisingCatalogue::size() const {
  absl::ReaderMutexLock lock(&mu_);
  return entries_.size();
}

absl::Status FundraisingCatalogue::CatchUp() {
  absl::MutexLock lock(&read_mu_);
  if (!loaded_) return absl::UnavailableError("the loan catalogue is still loading");
  const uint64_t needed = started_ + 1;  // the first read to start after this call
  while (finished_ < needed) {
    if (reading_) {
      read_mu_.Await(absl::Condition(this, &FundraisingCatalogue::NotReading));
      continue;
    }
    reading_ = true;
    const uint64_t read = ++started_;
    const CatalogueHorizon since = horizon_;
    read_mu_.Unlock();
    absl::StatusOr<CatalogueChanges> changes = feed_->CatalogueChangesSince(since);
    CatalogueHorizon next = since;
    if (changes.ok()) {
      next = changes->next;
      if (!changes->loans.empty() || !changes->partners.empty()) {  // searches keep searching
        absl::WriterMutexLock write(&mu_);
        Apply(*std::move(changes));
      }
    }
    read_mu_.Lock();
    reading_ = false;
    finished_ = read;
    last_read_ = changes.status();
    horizon_ = next;
  }
  return last_read_;
}

absl::StatusOr<Page<Loan>> FundraisingCatalogue::List(const LoanQuery& q) {
  if (!Serves(q)) {
    return absl::FailedPreconditionError("the catalogue holds FUNDRAISING loans only");
  }
  if (q.limit < 1) return absl::InvalidArgumentError(absl::StrCat("page limit ", q.limit, " is below 1"));
  if (q.count_cap < 0) return absl::InvalidArgumentError("count cap is negative");
  std::optional<Rank> after;
  if (q.after) {
    absl::StatusOr<Rank> rank = RankOfCursor(q, *q.after);
    if (!rank.ok()) return rank.status();
    after = *rank;
  }
  if (absl::Status caught_up = CatchUp(); !caught_up.ok()) return caught_up;

  Page<Loan> out;
  std::vector<LoanId> ids;
  {
    absl::ReaderMutexLock lock(&mu_);
    const Filter filter(q, interned_);
    int64_t matched = 0;
    const Bitmap matches = filter.Matches(*this, matched);
    out.total_count = std::min(matched, q.count_cap + 1);
    // The page: the first limit + 1 matches after the cursor (one more than a page, to learn
    // whether more follow), as slots in rank order.
    const size_t keep = static_cast<size_t>(q.limit) + 1;
    std::vector<size_t> page;
    page.reserve(keep);
    // Walking the order visits about keep * size / matched loans to fill the page.
    const int64_t walk_steps =
        matched == 0 ? 0 : static_cast<int64_t>(keep) * static_cast<int64_t>(facets_.size()) / matched;
    if (q.sort != LoanSort::kRandom && walk_steps <= kWalkStepsPerRankedMatch * matched) {
      walked_.fetch_add(1, std::memory_order_relaxed);
      const absl::btree_map<Rank, uint32_t>& order = orders_[static_cast<int>(q.sort) - 1];
      for (auto it = after ? order.upper_bound(*after) : order.begin();
           it != order.end() && page.size() < keep; ++it) {
        if (TestBit(matches, it->second)) page.push_back(it->second);
      }
    } else {
      ranked_.fetch_add(1, std::memory_order_relaxed);
      const int key = KeyOf(q.sort);
      auto rank_of = [&](size_t i) -> Rank {
        const int64_t id = ids_[i];
        if (key < 0) return Rank{false, RandomSortKey(q.random_seed, LoanId(id)), id};
        if (q.sort == LoanSort::kExpiringSoonest && !facets_[i].has_deadline) return Rank{true, 0, id};
        return KeyRank(q.sort, keys_[key][i], id);
      };
      // A max-heap by rank of the best `keep` so far.
      std::vector<std::pair<Rank, size_t>> best;
      best.reserve(keep + 1);
      for (size_t w = 0; w < matches.size(); ++w) {
        for (uint64_t bits = matches[w]; bits != 0; bits &= bits - 1) {
          const size_t i = w * 64 + std::countr_zero(bits);
          const Rank rank = rank_of(i);
          if (after && !(rank > *after)) continue;
          if (best.size() == keep && !(rank < best.front().first)) continue;
          best.emplace_back(rank, i);
          std::push_heap(best.begin(), best.end());
          if (best.size() > keep) {
            std::pop_heap(best.begin(), best.end());
            best.pop_back();
          }
        }
      }
      std::sort_heap(best.begin(), best.end());
      for (const auto& ranked : best) page.push_back(ranked.second);
    }
    for (size_t i : page) {
      if (out.items.size() == static_cast<size_t>(q.limit)) {
        out.next_after_id = out.items.back().id.value();
        break;
      }
      out.items.push_back(*entries_[i].card);
      out.items.back().partner_risk_rating_half_stars = facets_[i].rating;
      ids.push_back(LoanId(ids_[i]));
    }
  }
  if (q.view == LoanView::kFull && !ids.empty()) {
    // Stories and schedules are not kept: the page's loans are read whole, as they are now.
    absl::StatusOr<std::vector<Loan>> full = feed_->ReadFullLoans(ids);
    if (!full.ok()) return full.status();
    ML_CHECK(full->size() == ids.size(), "ReadFullLoans returned another number of loans");
    out.items = *std::move(full);
  }
  return out;
}

void FundraisingCatalogue::Apply(CatalogueChanges changes) {
  for (const PartnerRating& p : changes.partners) {
    ML_CHECK(p.risk_rating_half_stars >= 0 && p.risk_rating_half_stars <= 255,
             "a partner's rating is out of range");
    int32_t& rating = rating_of_[p.partner.value()];
    if (rating == p.risk_rating_half_stars) continue;
    rating = p.risk_rating_half_stars;
    for (size_t i = 0; i < entries_.size(); ++i) {
      if (entries_[i].partner != p.partner.value()) continue;
      Index(i, false);
      facets_[i].rating = static_cast<uint8_t>(rating);
      Index(i, true);
    }
  }
  for (const Loan& loan : changes.loans) {
    if (loan.status == LoanStatus::kFundraising) {
      Upsert(loan);
    } else {
      Remove(loan.id);
    }
  }
}

uint32_t FundraisingCatalogue::Intern(const std::string& value) {
  return interned_.try_emplace(value, static_cast<uint32_t>(interned_.size())).first->second;
}

void FundraisingCatalogue::Upsert(const Loan& loan) {
  auto card = std::make_shared<Loan>(loan);
  ApplyView(LoanView::kCard, *card);
  const LoanDetails& d = card->details;
  // The stores keep these in range (migration 0004's checks, partners' 0..10 rating): a value
  // out of range would silently match the wrong searches.
  ML_CHECK(d.sector >= 0 && d.sector < 32, "a loan's sector is out of range");
  ML_CHECK(d.term_months >= 0 && d.term_months <= 0xFFFF, "a loan's term is out of range");
  Facets f;
  f.country = Intern(d.country);
  f.region = Intern(absl::AsciiStrToLower(d.region));
  f.term_months = static_cast<uint16_t>(d.term_months);
  f.sector = static_cast<uint8_t>(d.sector);
  const std::optional<Gender> gender = loan.borrower_gender();
  f.gender = gender ? static_cast<uint8_t>(*gender) : 0;
  f.interval = d.repayment_interval ? static_cast<uint8_t>(*d.repayment_interval) : 0;
  auto rating = rating_of_.find(loan.partner_id.value());
  const int32_t stars =
      rating != rating_of_.end() ? rating->second : loan.partner_risk_rating_half_stars;
  ML_CHECK(stars >= 0 && stars <= 255, "a partner's rating is out of range");
  f.rating = static_cast<uint8_t>(stars);
  f.is_group = loan.is_group();
  f.has_deadline = loan.fundraising_deadline.has_value();
  int64_t keys[kKeyCount];
  keys[kNewestUs] = absl::ToUnixMicros(loan.posted_at.value_or(loan.created_at));
  keys[kDeadlineUs] = f.has_deadline ? absl::ToUnixMicros(*loan.fundraising_deadline) : 0;
  keys[kLeftMinor] = loan.remaining_minor();
  keys[kUsdMinor] = loan.usd_amount ? loan.usd_amount->minor_units() : 0;
  keys[kTrendingMilli] = loan.trending_score_milli;
  Entry e;
  e.partner = loan.partner_id.value();
  e.card = std::move(card);
  const int64_t id = loan.id.value();
  auto [slot, inserted] = slot_of_.try_emplace(id, entries_.size());
  const size_t at = slot->second;
  if (inserted) {
    facets_.push_back(f);
    ids_.push_back(id);
    for (int k = 0; k < kKeyCount; ++k) keys_[k].push_back(keys[k]);
    entries_.push_back(std::move(e));
    Index(at, true);
    for (int o = 0; o < kOrderCount; ++o) orders_[o].emplace(RankIn(o, at), at);
    return;
  }
  Rank was[kOrderCount];
  for (int o = 0; o < kOrderCount; ++o) was[o] = RankIn(o, at);
  if (!(facets_[at] == f)) {
    Index(at, false);
    facets_[at] = f;
    Index(at, true);
  }
  for (int k = 0; k < kKeyCount; ++k) keys_[k][at] = keys[k];
  entries_[at] = std::move(e);
  for (int o = 0; o < kOrderCount; ++o) {
    const Rank now = RankIn(o, at);
    if (now == was[o]) continue;
    orders_[o].erase(was[o]);
    orders_[o].emplace(now, at);
  }
}

void FundraisingCatalogue::Remove(LoanId id) {
  auto slot = slot_of_.find(id.value());
  if (slot == slot_of_.end()) return;
  const size_t at = slot->second;
  slot_of_.erase(slot);
  for (int o = 0; o < kOrderCount; ++o) orders_[o].erase(RankIn(o, at));
  Index(at, false);
  const size_t last = entries_.size() - 1;
  if (at != last) {  // the last loan moves into the freed slot
    Index(last, false);
    facets_[at] = facets_[last];
    ids_[at] = ids_[last];
    for (std::vector<int64_t>& column : keys_) column[at] = column[last];
    entries_[at] = std::move(entries_[last]);
    slot_of_[ids_[at]] = at;
    Index(at, true);
    for (int o = 0; o < kOrderCount; ++o) {
      auto moved = orders_[o].find(RankIn(o, at));
      ML_CHECK(moved != orders_[o].end(), "a catalogue loan is missing from a sort order");
      moved->second = static_cast<uint32_t>(at);
    }
  }
  facets_.pop_back();
  ids_.pop_back();
  for (std::vector<int64_t>& column : keys_) column.pop_back();
  entries_.pop_back();
}

void FundraisingCatalogue::Index(size_t slot, bool set) {
  const Facets& f = facets_[slot];
  const uint32_t values[kIndexedCount] = {f.country, f.sector,  f.gender,
                                          f.interval, f.rating, f.term_months};
  for (int k = 0; k < kIndexedCount; ++k) {
    if (set) {
      SetBit(by_[k][values[k]], slot);
    } else if (auto it = by_[k].find(values[k]); it != by_[k].end()) {
      ClearBit(it->second, slot);
    }
  }
  if (f.is_group) set ? SetBit(groups_, slot) : ClearBit(groups_, slot);
}

FundraisingCatalogue::Rank FundraisingCatalogue::RankIn(int order, size_t slot) const {
  static_assert(kNewestUs == 0 && kDeadlineUs == 1 && kLeftMinor == 2 && kUsdMinor == 3 &&
                kTrendingMilli == 4 && kKeyCount == 5, "KeyOf numbers the keys as Key does");
  const LoanSort sort = static_cast<LoanSort>(order + 1);
  const int64_t id = ids_[slot];
  if (sort == LoanSort::kExpiringSoonest && !facets_[slot].has_deadline) return Rank{true, 0, id};
  return KeyRank(sort, keys_[KeyOf(sort)][slot], id);
}

FundraisingCatalogue::SearchCounts FundraisingCatalogue::search_counts() const {
  return {.walked = walked_.load(std::memory_order_relaxed),
          .ranked = ranked_.load(std::memory_order_relaxed)};
}

}  // namespace microlend::lending
