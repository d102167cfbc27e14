#include "services/lending/testing/fake_loan_store.h"

#include <algorithm>
#include <set>
#include <utility>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"

namespace microlend::lending {
namespace {

absl::Status NotFound(LoanId id) {
  return absl::NotFoundError(absl::StrCat("loan ", id.value(), " not found"));
}

// True when a sorts before b under `query` (ties by ascending id).
bool Before(const LoanQuery& query, const Loan& a, const Loan& b) {
  auto usd = [](const Loan& l) { return l.usd_amount ? l.usd_amount->minor_units() : 0; };
  auto deadline = [](const Loan& l) {
    return l.fundraising_deadline ? *l.fundraising_deadline : absl::InfiniteFuture();
  };
  auto newest = [](const Loan& l) { return l.posted_at ? *l.posted_at : l.created_at; };
  const int64_t ia = a.id.value(), ib = b.id.value();
  switch (query.sort) {
    case LoanSort::kNewest:
      return std::tuple(-absl::ToUnixMicros(newest(a)), ia) <
             std::tuple(-absl::ToUnixMicros(newest(b)), ib);
    case LoanSort::kExpiringSoonest:
      return std::tuple(deadline(a), ia) < std::tuple(deadline(b), ib);
    case LoanSort::kAmountLeftAsc:
      return std::tuple(a.remaining_minor(), ia) < std::tuple(b.remaining_minor(), ib);
    case LoanSort::kAmountLeftDesc:
      return std::tuple(-a.remaining_minor(), ia) < std::tuple(-b.remaining_minor(), ib);
    case LoanSort::kLoanAmountAsc:
      return std::tuple(usd(a), ia) < std::tuple(usd(b), ib);
    case LoanSort::kLoanAmountDesc:
      return std::tuple(-usd(a), ia) < std::tuple(-usd(b), ib);
    case LoanSort::kTrending:
      return std::tuple(-a.trending_score_milli, ia) < std::tuple(-b.trending_score_milli, ib);
    case LoanSort::kRandom:
      return std::tuple(RandomSortKey(query.random_seed, a.id), ia) <
             std::tuple(RandomSortKey(query.random_seed, b.id), ib);
  }
  return ia < ib;
}

}  // namespace

void FakeLoanStore::FailNextMutation(absl::Status status) {
  absl::MutexLock lock(&mu_);
  fail_next_ = std::move(status);
}

void FakeLoanStore::FailNextCatalogueRead(absl::Status status) {
  absl::MutexLock lock(&mu_);
  fail_next_read_ = std::move(status);
}

size_t FakeLoanStore::loan_count() const {
  absl::MutexLock lock(&mu_);
  return loans_.size();
}

size_t FakeLoanStore::record_count() const {
  absl::MutexLock lock(&mu_);
  return records_.size();
}

Loan FakeLoanStore::WithRating(Loan loan) const {
  if (partners_ != nullptr) {
    absl::StatusOr<Partner> partner = partners_->Get(loan.partner_id);
    if (partner.ok()) loan.partner_risk_rating_half_stars = partner->risk_rating_half_stars;
  }
  return loan;
}

absl::StatusOr<std::optional<IdempotencyRecord>> FakeLoanStore::FindIdempotency(
    const std::string& caller, const std::string& request_id) {
  absl::MutexLock lock(&mu_);
  auto it = records_.find({caller, request_id});
  if (it == records_.end()) return std::optional<IdempotencyRecord>();
  return std::optional<IdempotencyRecord>(it->second);
}

absl::Status FakeLoanStore::Commit(Loan& loan, const IdempotencyRecord& record,
                                   const LoanEncoder& encode) {
  if (records_.contains({record.caller, record.request_id})) {
    return absl::AlreadyExistsError(absl::StrCat("request id \"", record.request_id,
                                                 "\" of caller \"", record.caller,
                                                 "\" is already recorded"));
  }
  for (Borrower& b : loan.details.borrowers) {
    if (!b.id) b.id = BorrowerId(next_borrower_id_++);
  }
  IdempotencyRecord stored = record;
  stored.payload = encode(loan);
  loans_[loan.id.value()] = loan;
  stamps_[loan.id.value()] = next_stamp_++;
  records_.emplace(std::make_pair(record.caller, record.request_id), std::move(stored));
  return absl::OkStatus();
}

absl::StatusOr<Loan> FakeLoanStore::Create(const Loan& loan, absl::Time now,
                                           const IdempotencyRecord& record,
                                           const LoanEncoder& encode) {
  Loan created = WithRating(loan);
  absl::MutexLock lock(&mu_);
  if (std::optional<absl::Status> failure = std::exchange(fail_next_, std::nullopt)) return *failure;
  created.id = LoanId(next_id_++);
  created.version = 1;
  created.created_at = created.updated_at = now;
  if (absl::Status committed = Commit(created, record, encode); !committed.ok()) return committed;
  return created;
}

absl::StatusOr<Loan> FakeLoanStore::Get(LoanId id) {
  Loan loan;
  {
    absl::MutexLock lock(&mu_);
    auto it = loans_.find(id.value());
    if (it == loans_.end()) return NotFound(id);
    loan = it->second;
  }
  return WithRating(std::move(loan));
}

PartnerExposure FakeLoanStore::ExposureOf(PartnerId partner) const {
  absl::MutexLock lock(&mu_);
  return ExposureLocked(partner);
}

PartnerExposure FakeLoanStore::ExposureLocked(PartnerId partner) const {
  PartnerExposure exposure;
  for (const auto& [id, loan] : loans_) {
    if (loan.partner_id == partner) AddToExposure(loan, exposure);
  }
  return exposure;
}

absl::StatusOr<Loan> FakeLoanStore::Update(LoanId id, int64_t expected_version, absl::Time now,
                                           const LoanMutator& mutate,
                                           const IdempotencyRecord& record,
                                           const LoanEncoder& encode) {
  return UpdateLocked(id, expected_version, now, mutate, record, encode);
}

absl::StatusOr<Loan> FakeLoanStore::UpdateWithPartner(LoanId id, int64_t expected_version,
                                                      absl::Time now,
                                                      const LoanPartnerMutator& mutate,
                                                      const IdempotencyRecord& record,
                                                      const LoanEncoder& encode) {
  if (partners_ == nullptr) {
    return absl::FailedPreconditionError("FakeLoanStore::UpdateWithPartner needs a PartnerStore");
  }
  absl::StatusOr<Loan> current = Get(id);
  if (!current.ok()) return current.status();
  absl::StatusOr<Partner> partner = partners_->Get(current->partner_id);
  if (!partner.ok()) return partner.status();
  auto with_partner = [&](Loan& loan) ABSL_NO_THREAD_SAFETY_ANALYSIS {
    // Runs under mu_ (UpdateLocked).
    return mutate(loan, *partner, ExposureLocked(loan.partner_id));
  };
  return UpdateLocked(id, expected_version, now, with_partner, record, encode);
}

absl::StatusOr<Loan> FakeLoanStore::UpdateLocked(LoanId id, int64_t expected_version,
                                                 absl::Time now,
                                                 const std::function<absl::Status(Loan&)>& mutate,
                                                 const IdempotencyRecord& record,
                                                 const LoanEncoder& encode) {
  absl::StatusOr<Loan> current = Get(id);
  if (!current.ok()) return current.status();
  absl::MutexLock lock(&mu_);
  if (std::optional<absl::Status> failure = std::exchange(fail_next_, std::nullopt)) return *failure;
  Loan updated = *current;
  updated.details.schedule = loans_[id.value()].details.schedule;
  if (expected_version != 0 && expected_version != updated.version) {
    return absl::AbortedError(absl::StrCat("loan ", id.value(), " is at version ",
                                           updated.version, ", not ", expected_version));
  }
  if (absl::Status applied = mutate(updated); !applied.ok()) return applied;
  ++updated.version;
  updated.updated_at = now;
  if (absl::Status committed = Commit(updated, record, encode); !committed.ok()) return committed;
  return updated;
}

absl::StatusOr<Page<Loan>> FakeLoanStore::List(const LoanQuery& query) {
  if (query.limit < 1) return absl::InvalidArgumentError("page limit must be at least 1");
  std::vector<Loan> all;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, loan] : loans_) all.push_back(loan);
  }
  std::vector<Loan> matches;
  for (Loan& loan : all) {
    Loan rated = WithRating(std::move(loan));
    if (MatchesQuery(query, rated)) matches.push_back(std::move(rated));
  }
  std::sort(matches.begin(), matches.end(),
            [&query](const Loan& a, const Loan& b) { return Before(query, a, b); });
  Page<Loan> out;
  const int64_t matched = static_cast<int64_t>(matches.size());
  out.total_count = std::min(matched, query.count_cap + 1);
  for (const Loan& loan : matches) {
    if (query.after && !IsAfter(query, *query.after, loan)) continue;
    if (out.items.size() == static_cast<size_t>(query.limit)) {
      out.next_after_id = out.items.back().id.value();
      break;
    }
    out.items.push_back(loan);
    ApplyView(query.view, out.items.back());
  }
  return out;
}

absl::StatusOr<CatalogueChanges> FakeLoanStore::CatalogueSnapshot() {
  return ReadCatalogue(std::nullopt);
}

absl::StatusOr<CatalogueChanges> FakeLoanStore::CatalogueChangesSince(CatalogueHorizon since) {
  return ReadCatalogue(since);
}

absl::StatusOr<CatalogueChanges> FakeLoanStore::ReadCatalogue(
    std::optional<CatalogueHorizon> since) {
  CatalogueChanges out;
  std::vector<Loan> loans;
  std::set<int64_t> partners;
  {
    absl::MutexLock lock(&mu_);
    if (std::optional<absl::Status> failure = std::exchange(fail_next_read_, std::nullopt)) {
      return *failure;
    }
    for (const auto& [id, loan] : loans_) {
      partners.insert(loan.partner_id.value());
      const bool wanted = since ? stamps_.at(id) >= since->value
                                : loan.status == LoanStatus::kFundraising;
      if (wanted) loans.push_back(loan);
    }
    out.next.value = next_stamp_;
  }
  for (Loan& loan : loans) {
    out.loans.push_back(WithRating(std::move(loan)));
    ApplyView(LoanView::kCard, out.loans.back());
  }
  for (int64_t partner : partners) {
    if (partners_ == nullptr) break;  // ratings stay as the loans were written
    Loan rated;
    rated.partner_id = PartnerId(partner);
    rated = WithRating(std::move(rated));
    out.partners.push_back({rated.partner_id, rated.partner_risk_rating_half_stars});
  }
  return out;
}

absl::StatusOr<std::vector<Loan>> FakeLoanStore::ReadFullLoans(const std::vector<LoanId>& ids) {
  std::vector<Loan> out;
  for (LoanId id : ids) {
    absl::StatusOr<Loan> loan = Get(id);
    if (!loan.ok()) return absl::DataLossError(loan.status().message());
    out.push_back(*std::move(loan));
  }
  return out;
}

}  // namespace microlend::lending
