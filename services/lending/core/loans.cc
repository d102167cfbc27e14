#include "services/lending/core/loans.h"

#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "nlohmann/json.hpp"
#include "services/lending/core/catalogue.h"

namespace microlend::lending {
namespace {

absl::Status FieldInvalid(std::string_view field, std::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(AsAbsl(field), ": ", AsAbsl(what)));
}

absl::Status CheckText(std::string_view field, const std::string& text, size_t max_chars) {
  if (!IsStorableText(text)) return FieldInvalid(field, "must be UTF-8 text without NUL bytes");
  size_t chars = 0;
  for (char c : text) chars += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  if (chars > max_chars) {
    return FieldInvalid(field, absl::StrCat("has ", chars, " characters; at most ", max_chars));
  }
  return absl::OkStatus();
}

absl::Status CheckLabels(std::string_view field, const std::vector<std::string>& labels,
                         size_t max_count) {
  if (labels.size() > max_count) {
    return FieldInvalid(field, absl::StrCat("has ", labels.size(), " entries; at most ", max_count));
  }
  absl::flat_hash_set<std::string> seen;
  for (size_t i = 0; i < labels.size(); ++i) {
    const std::string& label = labels[i];
    const bool ok = !label.empty() && label.size() <= 64 &&
                    std::all_of(label.begin(), label.end(), [](char c) {
                      return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
                    });
    const std::string item = absl::StrCat(AsAbsl(field), "[", i, "]");
    if (!ok) {
      return FieldInvalid(item, absl::StrCat("\"", absl::CHexEscape(label.substr(0, 64)),
                                             "\" must be 1..64 characters of [a-z0-9_]"));
    }
    if (!seen.insert(label).second) return FieldInvalid(item, absl::StrCat("\"", label, "\" is listed twice"));
  }
  return absl::OkStatus();
}

absl::Status CheckBorrowers(const std::vector<Borrower>& borrowers) {
  if (borrowers.size() > kMaxBorrowers) {
    return FieldInvalid("borrowers", absl::StrCat("at most ", kMaxBorrowers, " borrowers"));
  }
  int primaries = 0;
  for (size_t i = 0; i < borrowers.size(); ++i) {
    const Borrower& b = borrowers[i];
    const std::string field = absl::StrCat("borrowers[", i, "]");
    if (b.name.empty()) return FieldInvalid(field + ".name", "is required");
    ML_RETURN_IF_ERROR(CheckText(field + ".name", b.name, kMaxShortTextChars));
    if (b.gender != Gender::kFemale && b.gender != Gender::kMale && b.gender != Gender::kNonbinary) {
      return FieldInvalid(field + ".gender", "must be FEMALE, MALE or NONBINARY");
    }
    primaries += b.primary;
  }
  if (primaries > 1) return FieldInvalid("borrowers", "at most one borrower may be primary");
  return absl::OkStatus();
}

absl::Status CheckTexts(const LoanDetails& d) {
  ML_RETURN_IF_ERROR(CheckText("name", d.name, kMaxShortTextChars));
  ML_RETURN_IF_ERROR(CheckText("story", d.story, kMaxStoryChars));
  ML_RETURN_IF_ERROR(CheckText("use", d.use, kMaxShortTextChars));
  ML_RETURN_IF_ERROR(CheckText("activity", d.activity, kMaxShortTextChars));
  ML_RETURN_IF_ERROR(CheckText("region", d.region, kMaxShortTextChars));
  ML_RETURN_IF_ERROR(CheckText("town", d.town, kMaxShortTextChars));
  ML_RETURN_IF_ERROR(CheckText("image_url", d.image_url, kMaxWebsiteUrlChars));
  if (!d.image_url.empty() && !d.image_url.starts_with("https://")) {
    return FieldInvalid("image_url", "must be an https:// URL");
  }
  return absl::OkStatus();
}

absl::Status CheckPlace(const Partner& partner, const LoanDetails& d) {
  if (d.country.empty()) return absl::OkStatus();
  if (!IsIsoCountryCode(d.country)) {
    return FieldInvalid("country", absl::StrCat("\"", absl::CHexEscape(d.country.substr(0, 16)),
                                                "\" is not an ISO 3166-1 alpha-2 code in upper case"));
  }
  if (std::find(partner.countries.begin(), partner.countries.end(), d.country) ==
      partner.countries.end()) {
    return FieldInvalid("country", absl::StrCat(d.country, " is not among partner ",
                                                partner.id.value(), "'s countries"));
  }
  return absl::OkStatus();
}

absl::Status CheckNumbers(const LoanDetails& d) {
  if (d.sector < 0 || d.sector > kMaxSector) {
    return FieldInvalid("sector", absl::StrCat(d.sector, " is not a Sector"));
  }
  if (d.term_months != 0 && (d.term_months < 1 || d.term_months > kMaxTermMonths)) {
    return FieldInvalid("term_months", absl::StrCat(d.term_months, " is outside 1..", kMaxTermMonths));
  }
  if (d.fundraising_window_days != 0 &&
      (d.fundraising_window_days < 1 || d.fundraising_window_days > kMaxFundraisingWindowDays)) {
    return FieldInvalid("fundraising_window_days",
                        absl::StrCat(d.fundraising_window_days, " is outside 1..",
                                     kMaxFundraisingWindowDays));
  }
  if (d.local_amount && !d.local_amount->is_positive()) {
    return FieldInvalid("local_amount", "must be positive");
  }
  if (!d.pre_disbursed && d.disbursed_on) {
    return FieldInvalid("disbursed_on", "is only for a pre-disbursed loan");
  }
  return absl::OkStatus();
}

// Fills the generated schedule of a regular interval, or checks an uploaded one's currency.
absl::Status PrepareSchedule(Loan& loan) {
  LoanDetails& d = loan.details;
  const bool regular = d.repayment_interval && *d.repayment_interval != RepaymentInterval::kIrregular;
  if (regular) {
    d.schedule.clear();
    if (!d.local_amount || d.term_months == 0) return absl::OkStatus();
    absl::StatusOr<std::vector<ScheduleEntry>> generated = GenerateSchedule(
        {.principal = *d.local_amount, .interval = *d.repayment_interval,
         .disbursal_date = DisbursalAnchor(d, loan.created_at), .term_months = d.term_months});
    if (!generated.ok()) return generated.status();
    d.schedule = *std::move(generated);
    return absl::OkStatus();
  }
  if (!d.schedule.empty() && !d.local_amount) {
    // The entries' currency is the loan's: without an amount there is nothing to check them by.
    return FieldInvalid("schedule", "needs local_amount: upload the schedule with the amount");
  }
  for (size_t i = 0; i < d.schedule.size(); ++i) {
    if (d.local_amount && d.schedule[i].principal.currency() != d.local_amount->currency()) {
      return FieldInvalid(absl::StrCat("schedule[", i, "].principal"),
                          absl::StrCat("must be in ", AsAbsl(d.local_amount->currency().code())));
    }
  }
  if (d.schedule.size() > kMaxScheduleEntries) {
    return FieldInvalid("schedule", absl::StrCat("at most ", kMaxScheduleEntries, " entries"));
  }
  return absl::OkStatus();
}

}  // namespace

void OverlayMoney(const LoanMoney& m, Loan& loan) {
  loan.status = m.status;
  loan.funded_minor = m.funded_minor;
  loan.held_minor = m.held_minor;
  loan.funding_account_id = m.funding_account_id;
  loan.funded_at = m.funded_at;
  loan.disbursed_at = m.disbursed_at;
  loan.closed_at = m.closed_at;
  loan.repaid_usd_minor = m.repaid_usd_minor;
  loan.repaid_local_minor = m.repaid_local_minor;
  loan.currency_loss_minor = m.currency_loss_minor;
  loan.written_off_minor = m.written_off_minor;
  loan.delinquent = m.delinquent;
  loan.days_in_arrears = m.days_in_arrears;
  loan.arrears_local_minor = m.arrears_local_minor;
  loan.ended_with_currency_loss = m.ended_with_currency_loss;
}

std::optional<Gender> Loan::borrower_gender() const {
  if (details.borrowers.empty()) return std::nullopt;
  const Gender first = details.borrowers.front().gender;
  for (const Borrower& b : details.borrowers) {
    if (b.gender != first) return Gender::kMixed;
  }
  return first;
}

int64_t Loan::remaining_minor() const {
  if (!usd_amount) return 0;
  return usd_amount->minor_units() - funded_minor - held_minor;
}

absl::CivilDay DisbursalAnchor(const LoanDetails& details, absl::Time created_at) {
  if (details.disbursed_on) return *details.disbursed_on;
  return absl::ToCivilDay(created_at, absl::UTCTimeZone());
}

absl::StatusOr<int64_t> ParseFxRate(std::string_view rate, std::string_view field) {
  const size_t dot = rate.find('.');
  const std::string_view whole = rate.substr(0, dot);
  const std::string_view fraction = dot == std::string_view::npos ? "" : rate.substr(dot + 1);
  auto digits = [](std::string_view s) {
    return std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
  };
  const bool shape = !whole.empty() && digits(whole) && digits(fraction) &&
                     (dot == std::string_view::npos || !fraction.empty()) &&
                     (whole.size() == 1 || whole[0] != '0');
  if (!shape || fraction.size() > kMaxFxRateDecimals || whole.size() > 10) {
    return FieldInvalid(field, absl::StrCat("\"", absl::CHexEscape(AsAbsl(rate.substr(0, 32))),
                                            "\" must be a positive decimal with at most 10 integer"
                                            " digits and 8 decimals, e.g. \"129.5\""));
  }
  int64_t scaled = 0;
  for (char c : whole) scaled = scaled * 10 + (c - '0');
  for (int i = 0; i < kMaxFxRateDecimals; ++i) {
    scaled = scaled * 10 + (i < static_cast<int>(fraction.size()) ? fraction[i] - '0' : 0);
  }
  if (scaled == 0) return FieldInvalid(field, "must be positive");
  return scaled;
}

absl::StatusOr<Money> ConvertToUsd(const Money& local, std::string_view rate) {
  ML_ASSIGN_OR_RETURN(int64_t scaled_rate, ParseFxRate(rate));
  // usd_cents = local_minor / 10^e * 100 / (scaled_rate / 10^8) = local_minor * 10^(10-e) / rate.
  int64_t numerator = 1;
  for (int i = 0; i < 10 - local.currency().exponent(); ++i) numerator *= 10;
  ML_ASSIGN_OR_RETURN(int64_t cents, MultiplyDivideRounded(local.minor_units(), numerator,
                                                           scaled_rate, RoundingMode::kHalfEven));
  return Money::FromMinor(Currency::Usd(), cents);
}

absl::Status NormalizeDraft(const Partner& partner, Loan& loan) {
  LoanDetails& d = loan.details;
  ML_RETURN_IF_ERROR(CheckBorrowers(d.borrowers));
  ML_RETURN_IF_ERROR(CheckTexts(d));
  ML_RETURN_IF_ERROR(CheckPlace(partner, d));
  ML_RETURN_IF_ERROR(CheckNumbers(d));
  ML_RETURN_IF_ERROR(CheckLabels("tags", d.tags, kMaxTags));
  ML_RETURN_IF_ERROR(CheckLabels("hashtags", d.hashtags, kMaxHashtags));
  if (!d.posting_fx_rate.empty()) ML_RETURN_IF_ERROR(ParseFxRate(d.posting_fx_rate).status());
  loan.usd_amount.reset();
  if (d.local_amount && !d.posting_fx_rate.empty()) {
    absl::StatusOr<Money> usd = ConvertToUsd(*d.local_amount, d.posting_fx_rate);
    if (!usd.ok()) return FieldInvalid("local_amount", AsStd(usd.status().message()));
    if (usd->minor_units() < kMinUsdAmountMinor) {
      return FieldInvalid("local_amount",
                          absl::StrCat("converts to ", usd->ToString(),
                                       " USD at the posting rate; at least 25.00 USD is required"));
    }
    loan.usd_amount = *usd;
  }
  return PrepareSchedule(loan);
}

absl::Status CheckComplete(const Loan& loan) {
  const LoanDetails& d = loan.details;
  if (d.borrowers.empty()) return FieldInvalid("borrowers", "at least one borrower is required");
  if (d.name.empty()) return FieldInvalid("name", "is required");
  if (d.story.empty()) return FieldInvalid("story", "is required");
  if (d.use.empty()) return FieldInvalid("use", "is required");
  if (d.sector == 0) return FieldInvalid("sector", "is required");
  if (d.country.empty()) return FieldInvalid("country", "is required");
  if (!d.local_amount) return FieldInvalid("local_amount", "is required");
  if (d.posting_fx_rate.empty()) return FieldInvalid("posting_fx_rate", "is required");
  if (d.term_months == 0) return FieldInvalid("term_months", "is required");
  if (!d.repayment_interval) return FieldInvalid("repayment_interval", "is required");
  if (d.pre_disbursed && !d.disbursed_on) {
    return FieldInvalid("disbursed_on", "is required for a pre-disbursed loan");
  }
  if (!loan.usd_amount) return absl::InternalError("a complete draft has no usd_amount");
  return ValidateSchedule(d.schedule, *d.local_amount, DisbursalAnchor(d, loan.created_at),
                          d.term_months);
}

absl::Status CheckPartnerActive(const Partner& partner) {
  if (partner.status == PartnerStatus::kActive) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat("partner ", partner.id.value(), " is ",
                                                    AsAbsl(PartnerStatusName(partner.status)),
                                                    "; only an ACTIVE partner may post loans"));
}

void AddToExposure(const Loan& loan, PartnerExposure& exposure) {
  const int64_t usd = loan.usd_amount ? loan.usd_amount->minor_units() : 0;
  switch (loan.status) {
    case LoanStatus::kReview:
      ++exposure.review_loans;
      exposure.review_minor += usd;
      return;
    case LoanStatus::kFundraising:
      ++exposure.fundraising_loans;
      exposure.fundraising_minor += usd;
      return;
    case LoanStatus::kFunded:
      ++exposure.funded_loans;
      exposure.funded_minor += usd;
      return;
    case LoanStatus::kPayingBack:
    case LoanStatus::kDefaulted:
      exposure.outstanding_minor += usd - loan.repaid_usd_minor - loan.currency_loss_minor;
      return;
    case LoanStatus::kDraft:
    case LoanStatus::kEnded:
    case LoanStatus::kExpired:
    case LoanStatus::kRefunded:
      return;
  }
}

namespace {

template <typename T>
bool AnyOf(const std::vector<T>& wanted, const T& value) {
  return wanted.empty() || std::find(wanted.begin(), wanted.end(), value) != wanted.end();
}

bool Intersects(const std::vector<std::string>& wanted, const std::vector<std::string>& have) {
  if (wanted.empty()) return true;
  for (const std::string& w : wanted) {
    if (std::find(have.begin(), have.end(), w) != have.end()) return true;
  }
  return false;
}

bool MatchesAmounts(const LoanQuery& q, const Loan& loan) {
  const int64_t left = loan.remaining_minor();
  if (q.min_amount_left_minor && left < *q.min_amount_left_minor) return false;
  if (q.max_amount_left_minor && left > *q.max_amount_left_minor) return false;
  if (q.expiring_within_hours > 0) {
    if (!loan.fundraising_deadline) return false;
    if (*loan.fundraising_deadline < q.now ||
        *loan.fundraising_deadline > q.now + absl::Hours(q.expiring_within_hours)) {
      return false;
    }
  }
  return true;
}

}  // namespace

bool MatchesQuery(const LoanQuery& q, const Loan& loan) {
  const LoanDetails& d = loan.details;
  if (!q.viewer.MaySee(loan)) return false;
  if (q.statuses.empty() ? loan.status != LoanStatus::kFundraising : !AnyOf(q.statuses, loan.status)) {
    return false;
  }
  if (!AnyOf(q.countries, d.country) || !AnyOf(q.sectors, d.sector) ||
      !AnyOf(q.partner_ids, loan.partner_id)) {
    return false;
  }
  if (!q.regions.empty() &&
      std::none_of(q.regions.begin(), q.regions.end(),
                   [&d](const std::string& r) { return absl::EqualsIgnoreCase(r, d.region); })) {
    return false;
  }
  if (!q.genders.empty()) {
    std::optional<Gender> gender = loan.borrower_gender();
    if (!gender || !AnyOf(q.genders, *gender)) return false;
  }
  if (q.is_group && *q.is_group != loan.is_group()) return false;
  if (loan.partner_risk_rating_half_stars < q.min_partner_risk_rating_half_stars) return false;
  if (q.max_term_months > 0 && d.term_months > q.max_term_months) return false;
  if (!Intersects(q.tags, d.tags) || !Intersects(q.hashtags, d.hashtags)) return false;
  if (!q.repayment_intervals.empty() &&
      (!d.repayment_interval || !AnyOf(q.repayment_intervals, *d.repayment_interval))) {
    return false;
  }
  if (q.matchable && *q.matchable) return false;
  if (q.delinquent && *q.delinquent != loan.delinquent) return false;
  if (loan.days_in_arrears < q.min_days_in_arrears) return false;
  return MatchesAmounts(q, loan);
}

uint64_t RandomSortKey(int64_t seed, LoanId id) {
  // splitmix64 of the pair: a fixed permutation per seed.
  uint64_t z = static_cast<uint64_t>(seed) * 0x9E3779B97F4A7C15ULL + static_cast<uint64_t>(id.value());
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

std::optional<int64_t> LoanSortKey(const Loan& loan, LoanSort sort) {
  const int64_t usd = loan.usd_amount ? loan.usd_amount->minor_units() : 0;
  switch (sort) {
    case LoanSort::kNewest:
      return absl::ToUnixMicros(loan.posted_at.value_or(loan.created_at));
    case LoanSort::kExpiringSoonest:
      if (!loan.fundraising_deadline) return std::nullopt;
      return absl::ToUnixMicros(*loan.fundraising_deadline);
    case LoanSort::kAmountLeftAsc:
    case LoanSort::kAmountLeftDesc:
      return usd - loan.funded_minor - loan.held_minor;
    case LoanSort::kLoanAmountAsc:
    case LoanSort::kLoanAmountDesc:
      return usd;
    case LoanSort::kTrending:
      return loan.trending_score_milli;
    case LoanSort::kRandom:
      return std::nullopt;
  }
  return std::nullopt;
}

bool IsAfter(const LoanQuery& query, const LoanCursor& cursor, const Loan& loan) {
  const int64_t id = loan.id.value();
  if (query.sort == LoanSort::kRandom) {
    return std::pair(RandomSortKey(query.random_seed, loan.id), id) >
           std::pair(RandomSortKey(query.random_seed, cursor.id), cursor.id.value());
  }
  const std::optional<int64_t> key = LoanSortKey(loan, query.sort);
  if (key != cursor.key) {
    if (!key || !cursor.key) return !key;  // loans without a key come last
    const bool descending =
        query.sort == LoanSort::kNewest || query.sort == LoanSort::kAmountLeftDesc ||
        query.sort == LoanSort::kLoanAmountDesc || query.sort == LoanSort::kTrending;
    return descending ? *key < *cursor.key : *key > *cursor.key;
  }
  return id > cursor.id.value();
}

void ApplyView(LoanView view, Loan& loan) {
  if (view == LoanView::kFull) return;
  loan.details.story.clear();
  loan.details.schedule.clear();
}

std::string DetailsToJson(const LoanDetails& d) {
  nlohmann::json j;
  nlohmann::json borrowers = nlohmann::json::array();
  for (const Borrower& b : d.borrowers) {
    borrowers.push_back({{"id", b.id ? b.id->value() : 0}, {"name", b.name},
                         {"gender", static_cast<int>(b.gender)}, {"primary", b.primary}});
  }
  j["borrowers"] = borrowers;
  j["name"] = d.name;
  j["story"] = d.story;
  j["use"] = d.use;
  j["activity"] = d.activity;
  j["image_url"] = d.image_url;
  j["fundraising_window_days"] = d.fundraising_window_days;
  j["pre_disbursed"] = d.pre_disbursed;
  if (d.disbursed_on) {
    j["disbursed_on"] = {d.disbursed_on->year(), d.disbursed_on->month(), d.disbursed_on->day()};
  }
  return j.dump();
}

absl::StatusOr<LoanDetails> DetailsFromJson(std::string_view text) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return absl::DataLossError("loan details are not JSON");
  try {
    LoanDetails d;
    for (const nlohmann::json& b : j.at("borrowers")) {
      const int64_t id = b.at("id").get<int64_t>();
      d.borrowers.push_back({.id = id > 0 ? std::optional<BorrowerId>(BorrowerId(id)) : std::nullopt,
                             .name = b.at("name").get<std::string>(),
                             .gender = static_cast<Gender>(b.at("gender").get<int>()),
                             .primary = b.at("primary").get<bool>()});
    }
    d.name = j.at("name").get<std::string>();
    d.story = j.at("story").get<std::string>();
    d.use = j.at("use").get<std::string>();
    d.activity = j.at("activity").get<std::string>();
    d.image_url = j.at("image_url").get<std::string>();
    d.fundraising_window_days = j.at("fundraising_window_days").get<int32_t>();
    d.pre_disbursed = j.at("pre_disbursed").get<bool>();
    if (j.contains("disbursed_on")) {
      const nlohmann::json& day = j.at("disbursed_on");
      d.disbursed_on = absl::CivilDay(day.at(0).get<int64_t>(), day.at(1).get<int>(),
                                      day.at(2).get<int>());
    }
    return d;
  } catch (const std::exception& e) {
    return absl::DataLossError(absl::StrCat("loan details JSON: ", e.what()));
  }
}

absl::Status ApplyLoanPatch(const LoanPatch& patch, LoanDetails& d) {
  if (patch.paths.empty()) return FieldInvalid("update_mask", "is required: name the fields to change");
  const LoanDetails& v = patch.values;
  for (const std::string& path : patch.paths) {
    if (path == "borrowers") d.borrowers = v.borrowers;
    else if (path == "name") d.name = v.name;
    else if (path == "story") d.story = v.story;
    else if (path == "use") d.use = v.use;
    else if (path == "sector") d.sector = v.sector;
    else if (path == "activity") d.activity = v.activity;
    else if (path == "country") d.country = v.country;
    else if (path == "region") d.region = v.region;
    else if (path == "town") d.town = v.town;
    else if (path == "tags") d.tags = v.tags;
    else if (path == "hashtags") d.hashtags = v.hashtags;
    else if (path == "image_url") d.image_url = v.image_url;
    else if (path == "local_amount") d.local_amount = v.local_amount;
    else if (path == "posting_fx_rate") d.posting_fx_rate = v.posting_fx_rate;
    else if (path == "term_months") d.term_months = v.term_months;
    else if (path == "repayment_interval") d.repayment_interval = v.repayment_interval;
    else if (path == "schedule") d.schedule = v.schedule;
    else if (path == "fundraising_window_days") d.fundraising_window_days = v.fundraising_window_days;
    else if (path == "pre_disbursed") d.pre_disbursed = v.pre_disbursed;
    else if (path == "disbursed_on") d.disbursed_on = v.disbursed_on;
    else {
      return FieldInvalid("update_mask", absl::StrCat("unknown path \"",
                                                      absl::CHexEscape(path.substr(0, 64)), "\""));
    }
  }
  return absl::OkStatus();
}

namespace {

IdempotencyRecord RecordFor(const RequestKey& key) {
  return IdempotencyRecord{.caller = key.caller, .request_id = key.request_id,
                           .method = key.method, .body_hash = key.body_hash};
}

LoanReply Failed(absl::Status status) {
  LoanReply reply;
  reply.status = std::move(status);
  return reply;
}

absl::Status NotFound(LoanId id) {
  return absl::NotFoundError(absl::StrCat("loan ", id.value(), " not found"));
}

absl::Status NotDraft(const Loan& loan, std::string_view action) {
  return absl::FailedPreconditionError(absl::StrCat(
      "loan ", loan.id.value(), " is ", AsAbsl(LoanStatusName(loan.status)), "; only a DRAFT can ",
      AsAbsl(action)));
}

}  // namespace

bool LoanBook::ReplayIfRecorded(const RequestKey& key, LoanReply& reply) {
  absl::StatusOr<std::optional<IdempotencyRecord>> stored =
      loans_->FindIdempotency(key.caller, key.request_id);
  if (!stored.ok()) {
    reply = Failed(stored.status());
    return true;
  }
  if (!stored->has_value()) return false;
  const IdempotencyRecord& record = **stored;
  if (absl::Status same = CheckSameRequest(record, key); !same.ok()) {
    reply = Failed(same);
    return true;
  }
  reply = LoanReply{.status = absl::Status(record.code, record.message), .replayed = true,
                    .payload = record.payload};
  return true;
}

LoanReply LoanBook::Finish(const RequestKey& key, absl::StatusOr<Loan> result,
                           const LoanEncoder& encode) {
  LoanReply reply;
  if (!result.ok()) {
    if (absl::IsAlreadyExists(result.status()) && ReplayIfRecorded(key, reply)) return reply;
    return Failed(result.status());
  }
  reply.payload = encode(*result);
  reply.loan = *std::move(result);
  return reply;
}

absl::StatusOr<Loan> LoanBook::GetEditable(const Viewer& viewer, LoanId id) {
  ML_ASSIGN_OR_RETURN(Loan loan, loans_->Get(id));
  // A loan never changes partner, so this still holds in a transaction that follows.
  if (!viewer.MayEdit(loan)) return NotFound(id);
  return loan;
}

absl::StatusOr<std::pair<Loan, Partner>> LoanBook::LoadEditable(const Viewer& viewer, LoanId id) {
  ML_ASSIGN_OR_RETURN(Loan loan, GetEditable(viewer, id));
  ML_ASSIGN_OR_RETURN(Partner partner, partners_->Get(loan.partner_id));
  return std::make_pair(std::move(loan), std::move(partner));
}

LoanReply LoanBook::CreateDraft(const RequestKey& key, PartnerId partner_id,
                                const LoanDetails& details, const LoanEncoder& encode) {
  LoanReply reply;
  if (ReplayIfRecorded(key, reply)) return reply;
  absl::StatusOr<Partner> partner = partners_->Get(partner_id);
  if (!partner.ok()) return Failed(partner.status());
  if (absl::Status active = CheckPartnerActive(*partner); !active.ok()) return Failed(active);
  const absl::Time now = clock_->Now();
  Loan loan{.partner_id = partner_id, .details = details, .created_at = now, .updated_at = now};
  loan.partner_risk_rating_half_stars = partner->risk_rating_half_stars;
  if (absl::Status valid = NormalizeDraft(*partner, loan); !valid.ok()) return Failed(valid);
  return Finish(key, loans_->Create(loan, now, RecordFor(key), encode), encode);
}

LoanReply LoanBook::UpdateDraft(const RequestKey& key, const Viewer& viewer, LoanId id,
                                const LoanPatch& patch, int64_t expected_version,
                                const LoanEncoder& encode) {
  if (expected_version < 0) return Failed(FieldInvalid("expected_version", "must not be negative"));
  LoanDetails probe;
  if (absl::Status paths = ApplyLoanPatch(patch, probe); !paths.ok()) return Failed(paths);
  LoanReply reply;
  if (ReplayIfRecorded(key, reply)) return reply;
  absl::StatusOr<std::pair<Loan, Partner>> loaded = LoadEditable(viewer, id);
  if (!loaded.ok()) return Failed(loaded.status());
  const Partner& partner = loaded->second;
  auto mutate = [&](Loan& loan) -> absl::Status {
    if (loan.status != LoanStatus::kDraft) return NotDraft(loan, "be updated");
    ML_RETURN_IF_ERROR(ApplyLoanPatch(patch, loan.details));
    return NormalizeDraft(partner, loan);
  };
  return Finish(key, loans_->Update(id, expected_version, clock_->Now(), mutate, RecordFor(key),
                                    encode),
                encode);
}

LoanReply LoanBook::Submit(const RequestKey& key, const Viewer& viewer, LoanId id,
                           int64_t expected_version, const LoanEncoder& encode) {
  if (expected_version < 0) return Failed(FieldInvalid("expected_version", "must not be negative"));
  LoanReply reply;
  if (ReplayIfRecorded(key, reply)) return reply;
  const absl::Time now = clock_->Now();
  // Before the store's version check, so that a stranger learns nothing of the loan.
  if (absl::StatusOr<Loan> editable = GetEditable(viewer, id); !editable.ok()) {
    return Failed(editable.status());
  }
  auto mutate = [&](Loan& loan, const Partner& partner,
                    const PartnerExposure& exposure) -> absl::Status {
    if (loan.status != LoanStatus::kDraft) return NotDraft(loan, "be submitted for review");
    ML_RETURN_IF_ERROR(CheckPartnerActive(partner));
    ML_RETURN_IF_ERROR(NormalizeDraft(partner, loan));
    ML_RETURN_IF_ERROR(CheckComplete(loan));
    ML_RETURN_IF_ERROR(
        CheckCreditLimit(partner, exposure, *loan.usd_amount, CreditCheck::kSubmission));
    loan.status = LoanStatus::kReview;
    loan.submitted_at = now;
    loan.review_return.reset();
    return absl::OkStatus();
  };
  return Finish(key,
                loans_->UpdateWithPartner(id, expected_version, now, mutate, RecordFor(key),
                                          encode),
                encode);
}

LoanReply LoanBook::Review(const RequestKey& key, const std::string& reviewer, LoanId id,
                           ReviewDecision decision, const std::string& reason,
                           const LoanEncoder& encode) {
  if (decision == ReviewDecision::kReturn && reason.empty()) {
    return Failed(FieldInvalid("reason", "is required to return a loan"));
  }
  if (absl::Status text = CheckText("reason", reason, kMaxDescriptionChars); !text.ok()) {
    return Failed(text);
  }
  LoanReply reply;
  if (ReplayIfRecorded(key, reply)) return reply;
  const absl::Time now = clock_->Now();
  auto mutate = [&](Loan& loan, const Partner& partner,
                    const PartnerExposure& exposure) -> absl::Status {
    if (loan.status != LoanStatus::kReview) {
      return absl::FailedPreconditionError(absl::StrCat(
          "loan ", loan.id.value(), " is ", AsAbsl(LoanStatusName(loan.status)),
          "; only a loan in REVIEW can be reviewed"));
    }
    if (decision == ReviewDecision::kReturn) {
      loan.status = LoanStatus::kDraft;
      loan.review_return = ReviewReturn{.reason = reason, .returned_at = now, .reviewer = reviewer};
      return absl::OkStatus();
    }
    ML_RETURN_IF_ERROR(CheckPartnerActive(partner));
    if (!loan.usd_amount) {
      return absl::InternalError(
          absl::StrCat("loan ", loan.id.value(), " is in REVIEW without a USD amount"));
    }
    ML_RETURN_IF_ERROR(
        CheckCreditLimit(partner, exposure, *loan.usd_amount, CreditCheck::kApproval));
    const int32_t window = loan.details.fundraising_window_days > 0
                               ? loan.details.fundraising_window_days
                               : kDefaultFundraisingWindowDays;
    loan.status = LoanStatus::kFundraising;
    loan.posted_at = now;
    loan.fundraising_deadline = now + absl::Hours(24 * window);
    return absl::OkStatus();
  };
  return Finish(key, loans_->UpdateWithPartner(id, 0, now, mutate, RecordFor(key), encode),
                encode);
}

absl::StatusOr<Loan> LoanBook::Get(const Viewer& viewer, LoanId id) {
  ML_ASSIGN_OR_RETURN(Loan loan, loans_->Get(id));
  if (!viewer.MaySee(loan)) return absl::NotFoundError(absl::StrCat("loan ", id.value(), " not found"));
  return loan;
}

absl::StatusOr<Page<Loan>> LoanBook::List(LoanQuery query) {
  query.now = clock_->Now();
  if (catalogue_ != nullptr && FundraisingCatalogue::Serves(query)) return catalogue_->List(query);
  return loans_->List(query);
}

}  // namespace microlend::lending
