#include "services/lending/core/catalogue.h"

#include <algorithm>
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

// Where a loan stands in a sort: ascending (keyless, key, id). Loans without a key (no
// deadline under kExpiringSoonest) come last; descending sorts flip their key.
struct Rank {
  bool keyless = false;
  uint64_t key = 0;
  int64_t id = 0;
  friend auto operator<=>(const Rank&, const Rank&) = default;
};

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

// A LoanQuery compiled against the interned strings: the tests of MatchesQuery over an Entry,
// cheapest first.
class FundraisingCatalogue::Filter {
 public:
  Filter(const LoanQuery& q, const absl::flat_hash_map<std::string, uint32_t>& interned)
      : nothing_((q.matchable && *q.matchable) || (q.delinquent && *q.delinquent) ||
                 q.min_days_in_arrears > 0),
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

  // Whether MatchesRest tests anything.
  bool tests_rest() const {
    return by_partner_ || min_left_ || max_left_ || by_deadline_ || !tags_.empty() ||
           !hashtags_.empty();
  }
  // The tests of the facets alone; then MatchesRest.
  bool MatchesFacets(const Facets& f) const {
    if (nothing_) return false;
    if (by_sector_ && (Bit(f.sector) & sectors_) == 0) return false;
    if (by_gender_ && (Bit(f.gender) & genders_) == 0) return false;
    if (by_country_ && !Contains(countries_, f.country)) return false;
    if (f.rating < min_rating_) return false;
    if (max_term_ > 0 && f.term_months > max_term_) return false;
    if (is_group_ && *is_group_ != f.is_group) return false;
    if (by_interval_ && (Bit(f.interval) & intervals_) == 0) return false;
    if (by_region_ && !Contains(regions_, f.region)) return false;
    return true;
  }

  // `left_minor` and `deadline_us` are the loan's keys (Key), `has_deadline` its facet.
  bool MatchesRest(const Entry& e, int64_t left_minor, bool has_deadline,
                   int64_t deadline_us) const {
    if (by_partner_ && !Contains(partners_, e.partner)) return false;
    if (min_left_ && left_minor < *min_left_) return false;
    if (max_left_ && left_minor > *max_left_) return false;
    if (by_deadline_ && (!has_deadline || deadline_us < deadline_from_us_ ||
                         deadline_us > deadline_to_us_)) {
      return false;
    }
    if (!tags_.empty() && !Overlaps(tags_, e.card->details.tags)) return false;
    if (!hashtags_.empty() && !Overlaps(hashtags_, e.card->details.hashtags)) return false;
    return true;
  }

 private:
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
      if (!changes->loans.empty() || !changes->partners.empty()) {  // searches keep scanning
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
    const std::vector<int64_t>* key = nullptr;  // the sort's column (none for kRandom)
    switch (q.sort) {
      case LoanSort::kNewest: key = &keys_[kNewestUs]; break;
      case LoanSort::kExpiringSoonest: key = &keys_[kDeadlineUs]; break;
      case LoanSort::kAmountLeftAsc:
      case LoanSort::kAmountLeftDesc: key = &keys_[kLeftMinor]; break;
      case LoanSort::kLoanAmountAsc:
      case LoanSort::kLoanAmountDesc: key = &keys_[kUsdMinor]; break;
      case LoanSort::kTrending: key = &keys_[kTrendingMilli]; break;
      case LoanSort::kRandom: break;
    }
    auto rank_of = [&](size_t i) -> Rank {
      const int64_t id = ids_[i];
      if (key == nullptr) return Rank{false, RandomSortKey(q.random_seed, LoanId(id)), id};
      if (q.sort == LoanSort::kExpiringSoonest && !facets_[i].has_deadline) return Rank{true, 0, id};
      return KeyRank(q.sort, (*key)[i], id);
    };
    // The first limit + 1 matches after the cursor (one more than a page, to learn whether more
    // follow), kept as a max-heap by rank; every match is counted.
    const size_t keep = static_cast<size_t>(q.limit) + 1;
    const bool tests_rest = filter.tests_rest();
    std::vector<std::pair<Rank, size_t>> best;
    best.reserve(keep + 1);
    int64_t matched = 0;
    for (size_t i = 0; i < facets_.size(); ++i) {
      if (!filter.MatchesFacets(facets_[i])) continue;
      if (tests_rest && !filter.MatchesRest(entries_[i], keys_[kLeftMinor][i],
                                            facets_[i].has_deadline, keys_[kDeadlineUs][i])) {
        continue;
      }
      ++matched;
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
    std::sort_heap(best.begin(), best.end());
    out.total_count = std::min(matched, q.count_cap + 1);
    for (const auto& [rank, i] : best) {
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
      if (entries_[i].partner == p.partner.value()) facets_[i].rating = static_cast<uint8_t>(rating);
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
  if (inserted) {
    facets_.push_back(f);
    ids_.push_back(id);
    for (int k = 0; k < kKeyCount; ++k) keys_[k].push_back(keys[k]);
    entries_.push_back(std::move(e));
  } else {
    const size_t at = slot->second;
    facets_[at] = f;
    for (int k = 0; k < kKeyCount; ++k) keys_[k][at] = keys[k];
    entries_[at] = std::move(e);
  }
}

void FundraisingCatalogue::Remove(LoanId id) {
  auto slot = slot_of_.find(id.value());
  if (slot == slot_of_.end()) return;
  const size_t at = slot->second;
  slot_of_.erase(slot);
  if (at + 1 != entries_.size()) {
    facets_[at] = facets_.back();
    ids_[at] = ids_.back();
    for (std::vector<int64_t>& column : keys_) column[at] = column.back();
    entries_[at] = std::move(entries_.back());
    slot_of_[ids_[at]] = at;
  }
  facets_.pop_back();
  ids_.pop_back();
  for (std::vector<int64_t>& column : keys_) column.pop_back();
  entries_.pop_back();
}

}  // namespace microlend::lending
