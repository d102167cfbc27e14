#include "services/lending/core/partners.h"

#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/escaping.h"
#include "common/status_macros.h"
#include "common/strings.h"

namespace microlend::lending {
namespace {

// ISO 3166-1 alpha-2 officially assigned codes (249), two letters each, sorted.
constexpr std::string_view kIsoCountries =
    "ADAEAFAGAIALAMAOAQARASATAUAWAXAZBABBBDBEBFBGBHBIBJBLBMBNBOBQBRBSBTBVBWBYBZCACCCDCFCGCHCICK"
    "CLCMCNCOCRCUCVCWCXCYCZDEDJDKDMDODZECEEEGEHERESETFIFJFKFMFOFRGAGBGDGEGFGGGHGIGLGMGNGPGQGRGS"
    "GTGUGWGYHKHMHNHRHTHUIDIEILIMINIOIQIRISITJEJMJOJPKEKGKHKIKMKNKPKRKWKYKZLALBLCLILKLRLSLTLULV"
    "LYMAMCMDMEMFMGMHMKMLMMMNMOMPMQMRMSMTMUMVMWMXMYMZNANCNENFNGNINLNONPNRNUNZOMPAPEPFPGPHPKPLPM"
    "PNPRPSPTPWPYQARERORSRURWSASBSCSDSESGSHSISJSKSLSMSNSOSRSSSTSVSXSYSZTCTDTFTGTHTJTKTLTMTNTOTR"
    "TTTVTWTZUAUGUMUSUYUZVAVCVEVGVIVNVUWFWSYEYTZAZMZW";
static_assert(kIsoCountries.size() == 2 * 249);

absl::Status FieldInvalid(std::string_view field, std::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(AsAbsl(field), ": ", AsAbsl(what)));
}

absl::Status ValidateText(std::string_view field, const std::string& text, size_t max_chars,
                          bool required) {
  if (required && text.empty()) return FieldInvalid(field, "is required");
  if (!IsStorableText(text)) return FieldInvalid(field, "must be UTF-8 text without NUL bytes");
  size_t chars = 0;
  for (char c : text) chars += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  if (chars > max_chars) {
    return FieldInvalid(field, absl::StrCat("has ", chars, " characters; at most ", max_chars,
                                            " are allowed"));
  }
  return absl::OkStatus();
}

absl::Status ValidateName(const std::string& name) {
  ML_RETURN_IF_ERROR(ValidateText("name", name, kMaxPartnerNameChars, /*required=*/true));
  if (name.find_first_not_of(" \t\r\n") == std::string::npos) {
    return FieldInvalid("name", "must not be blank");
  }
  return absl::OkStatus();
}

absl::Status ValidateWebsiteUrl(const std::string& url) {
  ML_RETURN_IF_ERROR(ValidateText("website_url", url, kMaxWebsiteUrlChars, /*required=*/false));
  if (url.empty()) return absl::OkStatus();
  const bool http = url.starts_with("http://") || url.starts_with("https://");
  const size_t host = url.find("://") + 3;
  if (!http || host >= url.size() || url.find_first_of(" \t\r\n") != std::string::npos) {
    return FieldInvalid("website_url", "must be an http:// or https:// URL without spaces");
  }
  return absl::OkStatus();
}

absl::Status ValidateRating(int32_t half_stars) {
  if (half_stars < 0 || half_stars > kMaxRiskRatingHalfStars) {
    return FieldInvalid("risk_rating_half_stars",
                        absl::StrCat(half_stars, " is outside 0..", kMaxRiskRatingHalfStars));
  }
  return absl::OkStatus();
}

absl::Status ValidateCoverage(int32_t bps) {
  if (bps < 0 || bps > kMaxCoverageBps) {
    return FieldInvalid("currency_loss_coverage_bps",
                        absl::StrCat(bps, " is outside 0..", kMaxCoverageBps, " bps"));
  }
  return absl::OkStatus();
}

absl::Status ValidateCreditLimit(const Money& limit) {
  if (limit.currency() != Currency::Usd()) {
    return FieldInvalid("credit_limit", absl::StrCat("must be USD, not ",
                                                     AsAbsl(limit.currency().code())));
  }
  if (limit.minor_units() < 0) return FieldInvalid("credit_limit", "must not be negative");
  return absl::OkStatus();
}

}  // namespace

std::string_view PartnerStatusName(PartnerStatus status) {
  switch (status) {
    case PartnerStatus::kActive:
      return "ACTIVE";
    case PartnerStatus::kPaused:
      return "PAUSED";
    case PartnerStatus::kClosed:
      return "CLOSED";
  }
  return "UNKNOWN";
}

bool IsIsoCountryCode(std::string_view code) {
  if (code.size() != 2) return false;
  for (size_t i = 0; i < kIsoCountries.size(); i += 2) {
    if (kIsoCountries.substr(i, 2) == code) return true;
  }
  return false;
}

absl::Status ValidateCountries(const std::vector<std::string>& countries,
                               std::string_view field) {
  if (countries.empty()) return FieldInvalid(field, "at least one country is required");
  absl::flat_hash_set<std::string> seen;
  for (size_t i = 0; i < countries.size(); ++i) {
    const std::string& code = countries[i];
    const std::string item = absl::StrCat(AsAbsl(field), "[", i, "]");
    if (!IsIsoCountryCode(code)) {
      return FieldInvalid(item, absl::StrCat("\"", absl::CHexEscape(code.substr(0, 16)),
                                             "\" is not an ISO 3166-1 alpha-2 code in upper case"));
    }
    if (!seen.insert(code).second) {
      return FieldInvalid(item, absl::StrCat("\"", code, "\" is listed twice"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateNewPartner(const NewPartner& partner) {
  ML_RETURN_IF_ERROR(ValidateName(partner.name));
  ML_RETURN_IF_ERROR(ValidateCountries(partner.countries));
  ML_RETURN_IF_ERROR(ValidateRating(partner.risk_rating_half_stars));
  ML_RETURN_IF_ERROR(ValidateCoverage(partner.currency_loss_coverage_bps));
  ML_RETURN_IF_ERROR(ValidateCreditLimit(partner.credit_limit));
  ML_RETURN_IF_ERROR(
      ValidateText("description", partner.description, kMaxDescriptionChars, /*required=*/false));
  return ValidateWebsiteUrl(partner.website_url);
}

absl::Status ValidatePatch(const PartnerPatch& patch) {
  if (patch.empty()) return FieldInvalid("update_mask", "names no field to change");
  if (patch.name) ML_RETURN_IF_ERROR(ValidateName(*patch.name));
  if (patch.countries) ML_RETURN_IF_ERROR(ValidateCountries(*patch.countries));
  if (patch.risk_rating_half_stars) ML_RETURN_IF_ERROR(ValidateRating(*patch.risk_rating_half_stars));
  if (patch.currency_loss_coverage_bps) {
    ML_RETURN_IF_ERROR(ValidateCoverage(*patch.currency_loss_coverage_bps));
  }
  if (patch.credit_limit) ML_RETURN_IF_ERROR(ValidateCreditLimit(*patch.credit_limit));
  if (patch.description) {
    ML_RETURN_IF_ERROR(
        ValidateText("description", *patch.description, kMaxDescriptionChars, /*required=*/false));
  }
  if (patch.website_url) ML_RETURN_IF_ERROR(ValidateWebsiteUrl(*patch.website_url));
  return absl::OkStatus();
}

absl::Status CheckTransition(const Partner& partner, PartnerStatus to) {
  if (partner.status == PartnerStatus::kClosed) {
    return absl::FailedPreconditionError(absl::StrCat(
        "partner ", partner.id.value(), " is CLOSED; a closed partner cannot become ",
        AsAbsl(PartnerStatusName(to))));
  }
  return absl::OkStatus();
}

namespace {

std::string Usd(int64_t minor) { return Money::FromMinor(Currency::Usd(), minor).ToString(); }

absl::Status CheckExposureSane(const Partner& partner, const PartnerExposure& e) {
  for (int64_t figure : {e.review_loans, e.fundraising_loans, e.funded_loans, e.review_minor,
                         e.fundraising_minor, e.funded_minor, e.outstanding_minor}) {
    if (figure < 0) {
      return absl::InternalError(absl::StrCat("partner ", partner.id.value(),
                                              "'s exposure has a negative figure: its loan rows "
                                              "break their invariants"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckCreditLimit(const Partner& partner, const PartnerExposure& exposure,
                              const Money& loan_usd, CreditCheck check) {
  ML_RETURN_IF_ERROR(CheckExposureSane(partner, exposure));
  if (loan_usd.currency() != Currency::Usd() || loan_usd.is_negative() ||
      partner.credit_limit.currency() != Currency::Usd()) {
    return absl::InternalError("the credit limit and the loan's amount must be USD, not negative");
  }
  const int64_t in_review = check == CreditCheck::kSubmission ? exposure.review_minor : 0;
  int64_t total = 0;
  int64_t with_loan = 0;
  if (__builtin_add_overflow(exposure.fundraising_minor, exposure.funded_minor, &total) ||
      __builtin_add_overflow(total, exposure.outstanding_minor, &total) ||
      __builtin_add_overflow(total, in_review, &total) ||
      __builtin_add_overflow(total, loan_usd.minor_units(), &with_loan)) {
    return absl::InternalError(
        absl::StrCat("partner ", partner.id.value(), "'s exposure overflows 64 bits"));
  }
  if (with_loan <= partner.credit_limit.minor_units()) return absl::OkStatus();
  std::string parts = absl::StrCat("fundraising ", Usd(exposure.fundraising_minor), ", funded ",
                                   Usd(exposure.funded_minor), ", outstanding ",
                                   Usd(exposure.outstanding_minor));
  if (check == CreditCheck::kSubmission) {
    absl::StrAppend(&parts, ", in review ", Usd(exposure.review_minor));
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "loan of ", loan_usd.ToString(), " USD would exceed partner ", partner.id.value(),
      "'s credit limit of ", partner.credit_limit.ToString(), " USD: exposure ", Usd(total),
      " USD (", parts, ") + ", loan_usd.ToString(), " = ", Usd(with_loan), " USD"));
}

absl::Status CheckClosable(const Partner& partner, const PartnerExposure& exposure) {
  ML_RETURN_IF_ERROR(CheckExposureSane(partner, exposure));
  const int64_t open =
      exposure.review_loans + exposure.fundraising_loans + exposure.funded_loans;
  if (open == 0) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "partner ", partner.id.value(), " cannot be CLOSED while ", open, " of its loans ",
      open == 1 ? "is" : "are", " open (", exposure.review_loans, " in REVIEW, ",
      exposure.fundraising_loans, " FUNDRAISING, ", exposure.funded_loans,
      " FUNDED): return the loans in review and let the others end (funded and disbursed, "
      "expired or refunded) first; it may be PAUSED meanwhile"));
}

namespace {

void ApplyPatch(const PartnerPatch& patch, Partner& partner) {
  if (patch.name) partner.name = *patch.name;
  if (patch.countries) partner.countries = *patch.countries;
  if (patch.risk_rating_half_stars) partner.risk_rating_half_stars = *patch.risk_rating_half_stars;
  if (patch.currency_loss_coverage_bps) {
    partner.currency_loss_coverage_bps = *patch.currency_loss_coverage_bps;
  }
  if (patch.credit_limit) partner.credit_limit = *patch.credit_limit;
  if (patch.description) partner.description = *patch.description;
  if (patch.website_url) partner.website_url = *patch.website_url;
}

IdempotencyRecord RecordFor(const RequestKey& key) {
  return IdempotencyRecord{.caller = key.caller, .request_id = key.request_id,
                           .method = key.method, .body_hash = key.body_hash};
}

PartnerReply Failed(absl::Status status) {
  PartnerReply reply;
  reply.status = std::move(status);
  return reply;
}

}  // namespace

bool PartnerDirectory::ReplayIfRecorded(const RequestKey& key, PartnerReply& reply) {
  absl::StatusOr<std::optional<IdempotencyRecord>> stored =
      store_->FindIdempotency(key.caller, key.request_id);
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
  reply = PartnerReply{.status = absl::Status(record.code, record.message),
                       .replayed = true,
                       .payload = record.payload};
  return true;
}

PartnerReply PartnerDirectory::Finish(const RequestKey& key, absl::StatusOr<Partner> result,
                                      const PartnerEncoder& encode) {
  PartnerReply reply;
  if (!result.ok()) {
    // The same key committed by a concurrent retry: answer as a replay would.
    if (absl::IsAlreadyExists(result.status()) && ReplayIfRecorded(key, reply)) return reply;
    return Failed(result.status());
  }
  reply.payload = encode(*result);
  reply.partner = *std::move(result);
  return reply;
}

PartnerReply PartnerDirectory::Create(const RequestKey& key, const NewPartner& partner,
                                      const PartnerEncoder& encode) {
  if (absl::Status valid = ValidateNewPartner(partner); !valid.ok()) return Failed(valid);
  PartnerReply reply;
  if (ReplayIfRecorded(key, reply)) return reply;
  return Finish(key, store_->Create(partner, clock_->Now(), RecordFor(key), encode), encode);
}

PartnerReply PartnerDirectory::Update(const RequestKey& key, PartnerId id,
                                      const PartnerPatch& patch, int64_t expected_version,
                                      const PartnerEncoder& encode) {
  if (absl::Status valid = ValidatePatch(patch); !valid.ok()) return Failed(valid);
  if (expected_version < 0) return Failed(FieldInvalid("expected_version", "must not be negative"));
  PartnerReply reply;
  if (ReplayIfRecorded(key, reply)) return reply;
  auto mutate = [&patch](Partner& partner) -> absl::Status {
    if (partner.status == PartnerStatus::kClosed) {
      return absl::FailedPreconditionError(
          absl::StrCat("partner ", partner.id.value(), " is CLOSED and cannot be updated"));
    }
    ApplyPatch(patch, partner);
    return absl::OkStatus();
  };
  return Finish(key,
                store_->Update(id, expected_version, clock_->Now(), mutate, RecordFor(key), encode),
                encode);
}

PartnerReply PartnerDirectory::SetStatus(const RequestKey& key, PartnerId id, PartnerStatus to,
                                         const std::string& reason, const PartnerEncoder& encode) {
  if (absl::Status valid = ValidateText("reason", reason, kMaxDescriptionChars, /*required=*/true);
      !valid.ok()) {
    return Failed(valid);
  }
  PartnerReply reply;
  if (ReplayIfRecorded(key, reply)) return reply;
  auto mutate = [&](Partner& partner, const PartnerExposure& exposure) -> absl::Status {
    ML_RETURN_IF_ERROR(CheckTransition(partner, to));
    if (to == PartnerStatus::kClosed) ML_RETURN_IF_ERROR(CheckClosable(partner, exposure));
    partner.status = to;
    partner.status_reason = reason;
    return absl::OkStatus();
  };
  return Finish(key, store_->UpdateWithExposure(id, /*expected_version=*/0, clock_->Now(), mutate,
                                                RecordFor(key), encode),
                encode);
}

}  // namespace microlend::lending
