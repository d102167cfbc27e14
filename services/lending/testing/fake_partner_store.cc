#include "services/lending/testing/fake_partner_store.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace microlend::lending {

void FakePartnerStore::FailNextMutation(absl::Status status) {
  absl::MutexLock lock(&mu_);
  fail_next_ = std::move(status);
}

size_t FakePartnerStore::partner_count() const {
  absl::MutexLock lock(&mu_);
  return partners_.size();
}

size_t FakePartnerStore::record_count() const {
  absl::MutexLock lock(&mu_);
  return records_.size();
}

std::optional<absl::Status> FakePartnerStore::TakeFailure() {
  return std::exchange(fail_next_, std::nullopt);
}

absl::Status FakePartnerStore::CheckNameFree(const std::string& name, PartnerId self) const {
  const std::string lower = absl::AsciiStrToLower(name);
  for (const auto& [id, partner] : partners_) {
    if (id != self.value() && absl::AsciiStrToLower(partner.name) == lower) {
      return absl::AlreadyExistsError(
          absl::StrCat("a partner named \"", partner.name, "\" exists (id ", id, ")"));
    }
  }
  return absl::OkStatus();
}

absl::Status FakePartnerStore::CheckRecordFree(const IdempotencyRecord& record) const {
  if (records_.contains({record.caller, record.request_id})) {
    return absl::AlreadyExistsError(absl::StrCat("request id \"", record.request_id,
                                                 "\" of caller \"", record.caller,
                                                 "\" is already recorded"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<IdempotencyRecord>> FakePartnerStore::FindIdempotency(
    const std::string& caller, const std::string& request_id) {
  absl::MutexLock lock(&mu_);
  auto it = records_.find({caller, request_id});
  if (it == records_.end()) return std::optional<IdempotencyRecord>();
  return std::optional<IdempotencyRecord>(it->second);
}

absl::StatusOr<Partner> FakePartnerStore::Create(const NewPartner& partner, absl::Time now,
                                                 const IdempotencyRecord& record,
                                                 const PartnerEncoder& encode) {
  absl::MutexLock lock(&mu_);
  if (std::optional<absl::Status> failure = TakeFailure()) return *failure;
  const int64_t id = next_id_++;  // like a sequence: not given back on failure
  if (absl::Status free = CheckNameFree(partner.name, PartnerId(id)); !free.ok()) return free;
  if (absl::Status free = CheckRecordFree(record); !free.ok()) return free;
  Partner created{.id = PartnerId(id),
                  .name = partner.name,
                  .countries = partner.countries,
                  .risk_rating_half_stars = partner.risk_rating_half_stars,
                  .currency_loss_coverage_bps = partner.currency_loss_coverage_bps,
                  .credit_limit = partner.credit_limit,
                  .description = partner.description,
                  .website_url = partner.website_url,
                  .created_at = now,
                  .updated_at = now};
  IdempotencyRecord stored = record;
  stored.payload = encode(created);
  partners_.emplace(id, created);
  records_.emplace(std::make_pair(record.caller, record.request_id), std::move(stored));
  return created;
}

absl::StatusOr<Partner> FakePartnerStore::Get(PartnerId id) {
  absl::MutexLock lock(&mu_);
  auto it = partners_.find(id.value());
  if (it == partners_.end()) {
    return absl::NotFoundError(absl::StrCat("partner ", id.value(), " not found"));
  }
  return it->second;
}

absl::StatusOr<Page<Partner>> FakePartnerStore::List(const PartnerFilter& filter,
                                                     const PageSpec& page) {
  if (page.limit < 1) return absl::InvalidArgumentError("page limit must be at least 1");
  absl::MutexLock lock(&mu_);
  auto matches = [&filter](const Partner& p) {
    if (!filter.statuses.empty() &&
        std::find(filter.statuses.begin(), filter.statuses.end(), p.status) ==
            filter.statuses.end()) {
      return false;
    }
    return filter.country.empty() || std::find(p.countries.begin(), p.countries.end(),
                                               filter.country) != p.countries.end();
  };
  Page<Partner> out;
  for (const auto& [id, partner] : partners_) {
    if (!matches(partner)) continue;
    ++out.total_count;
    if (id <= page.after_id) continue;
    if (out.items.size() == static_cast<size_t>(page.limit)) {
      out.next_after_id = out.items.back().id.value();
      continue;
    }
    out.items.push_back(partner);
  }
  return out;
}

absl::StatusOr<Partner> FakePartnerStore::Update(PartnerId id, int64_t expected_version,
                                                 absl::Time now, const PartnerMutator& mutate,
                                                 const IdempotencyRecord& record,
                                                 const PartnerEncoder& encode) {
  absl::MutexLock lock(&mu_);
  if (std::optional<absl::Status> failure = TakeFailure()) return *failure;
  auto it = partners_.find(id.value());
  if (it == partners_.end()) {
    return absl::NotFoundError(absl::StrCat("partner ", id.value(), " not found"));
  }
  if (expected_version != 0 && expected_version != it->second.version) {
    return absl::AbortedError(absl::StrCat("partner ", id.value(), " is at version ",
                                           it->second.version, ", not ", expected_version));
  }
  Partner updated = it->second;
  if (absl::Status applied = mutate(updated); !applied.ok()) return applied;
  if (absl::Status free = CheckNameFree(updated.name, id); !free.ok()) return free;
  if (absl::Status free = CheckRecordFree(record); !free.ok()) return free;
  ++updated.version;
  updated.updated_at = now;
  IdempotencyRecord stored = record;
  stored.payload = encode(updated);
  it->second = updated;
  records_.emplace(std::make_pair(record.caller, record.request_id), std::move(stored));
  return updated;
}

absl::StatusOr<Partner> FakePartnerStore::UpdateWithExposure(
    PartnerId id, int64_t expected_version, absl::Time now, const PartnerExposureMutator& mutate,
    const IdempotencyRecord& record, const PartnerEncoder& encode) {
  ExposureSource source;
  {
    absl::MutexLock lock(&mu_);
    source = exposure_source_;
  }
  const PartnerExposure exposure = source ? source(id) : PartnerExposure{};
  return Update(
      id, expected_version, now, [&](Partner& partner) { return mutate(partner, exposure); },
      record, encode);
}

void FakePartnerStore::SetExposureSource(ExposureSource source) {
  absl::MutexLock lock(&mu_);
  exposure_source_ = std::move(source);
}

absl::StatusOr<PartnerLoanTotals> FakePartnerStore::LoanTotals(PartnerId id) {
  absl::MutexLock lock(&mu_);
  if (!partners_.contains(id.value())) {
    return absl::NotFoundError(absl::StrCat("partner ", id.value(), " not found"));
  }
  auto it = loan_totals_.find(id.value());
  return it == loan_totals_.end() ? PartnerLoanTotals{} : it->second;
}

void FakePartnerStore::SetLoanTotals(PartnerId id, const PartnerLoanTotals& totals) {
  absl::MutexLock lock(&mu_);
  loan_totals_[id.value()] = totals;
}

}  // namespace microlend::lending
