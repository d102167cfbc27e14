#include "services/lending/partner_grpc.h"

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "services/lending/proto_convert.h"

namespace microlend::lending {
namespace {

constexpr char kCreatePartner[] = "PartnerService.CreatePartner";
constexpr char kUpdatePartner[] = "PartnerService.UpdatePartner";
constexpr char kSetPartnerStatus[] = "PartnerService.SetPartnerStatus";

static_assert(static_cast<int>(PartnerStatus::kActive) == v1::PARTNER_STATUS_ACTIVE);
static_assert(static_cast<int>(PartnerStatus::kPaused) == v1::PARTNER_STATUS_PAUSED);
static_assert(static_cast<int>(PartnerStatus::kClosed) == v1::PARTNER_STATUS_CLOSED);

// The core's InvalidArgument "<field>: <what>" gets the FieldViolations detail the API promises.
absl::Status WithFieldDetail(const absl::Status& status) {
  if (!absl::IsInvalidArgument(status)) return status;
  std::string_view message = AsStd(status.message());
  const size_t colon = message.find(": ");
  if (colon == std::string_view::npos) return status;
  return FieldError(message.substr(0, colon), message.substr(colon + 2));
}

absl::StatusOr<PartnerStatus> ParseStatus(int wire, std::string_view field) {
  if (wire == v1::PARTNER_STATUS_UNSPECIFIED) return FieldError(field, "is required");
  if (!v1::PartnerStatus_IsValid(wire)) {
    return FieldError(field, absl::StrCat(wire, " is not a PartnerStatus"));
  }
  return static_cast<PartnerStatus>(wire);
}

absl::StatusOr<Money> ParseCreditLimit(const common::v1::Money& money) {
  if (money.amount().empty() && money.currency().empty()) {
    return FieldError("credit_limit", "is required (USD, may be \"0\")");
  }
  ML_ASSIGN_OR_RETURN(Money limit, ParseMoney(money, "credit_limit"));
  if (limit.currency() != Currency::Usd()) {
    return FieldError("credit_limit",
                      absl::StrCat("must be USD, not ", AsAbsl(limit.currency().code())));
  }
  return limit;
}

std::vector<std::string> Countries(const google::protobuf::RepeatedPtrField<std::string>& in) {
  return std::vector<std::string>(in.begin(), in.end());
}

absl::StatusOr<NewPartner> ParseNewPartner(const v1::CreatePartnerRequest& request) {
  NewPartner partner{.name = request.name(),
                     .countries = Countries(request.countries()),
                     .risk_rating_half_stars = request.risk_rating_half_stars(),
                     .description = request.description(),
                     .website_url = request.website_url()};
  if (request.has_currency_loss_coverage_bps()) {
    partner.currency_loss_coverage_bps = request.currency_loss_coverage_bps();
  }
  ML_ASSIGN_OR_RETURN(partner.credit_limit, ParseCreditLimit(request.credit_limit()));
  ML_RETURN_IF_ERROR(WithFieldDetail(ValidateNewPartner(partner)));
  return partner;
}

// The patch named by update_mask, with values from `partner`. Unknown and immutable paths are
// InvalidArgument; values are validated by the caller.
absl::StatusOr<PartnerPatch> ParsePatch(const v1::UpdatePartnerRequest& request) {
  if (request.update_mask().paths().empty()) {
    return FieldError("update_mask", "is required: name the fields to change");
  }
  const v1::Partner& p = request.partner();
  PartnerPatch patch;
  for (const std::string& path : request.update_mask().paths()) {
    if (path == "name") {
      patch.name = p.name();
    } else if (path == "countries") {
      patch.countries = Countries(p.countries());
    } else if (path == "risk_rating_half_stars") {
      patch.risk_rating_half_stars = p.risk_rating_half_stars();
    } else if (path == "currency_loss_coverage_bps") {
      patch.currency_loss_coverage_bps = p.currency_loss_coverage_bps();
    } else if (path == "credit_limit") {
      ML_ASSIGN_OR_RETURN(Money limit, ParseCreditLimit(p.credit_limit()));
      patch.credit_limit = limit;
    } else if (path == "description") {
      patch.description = p.description();
    } else if (path == "website_url") {
      patch.website_url = p.website_url();
    } else if (path == "id" || path == "status" || path == "status_reason" ||
               path == "settlement_account_id" || path == "created_at" || path == "updated_at" ||
               path == "version") {
      return FieldError("update_mask",
                        absl::StrCat("\"", path, "\" cannot be changed by UpdatePartner",
                                     path == "status" ? " (use SetPartnerStatus)" : ""));
    } else {
      return FieldError("update_mask", absl::StrCat("unknown path \"",
                                                    absl::CHexEscape(path.substr(0, 64)), "\""));
    }
  }
  return patch;
}

// Ops may change any mutable field; a partner only its own description and website_url.
absl::Status CheckMayUpdate(const Principal& caller, PartnerId id, const PartnerPatch& patch) {
  if (caller.role == Role::kOps) return absl::OkStatus();
  if (caller.subject != id.ToString()) {
    return absl::PermissionDeniedError(
        absl::StrCat("partner ", caller.subject, " may not update partner ", id.value()));
  }
  if (!patch.OnlyProfileText()) {
    return absl::PermissionDeniedError(
        "a partner may change only its own description and website_url");
  }
  return absl::OkStatus();
}

// A mutation's reply onto `response`: the remembered payload is the full response.
template <typename Response>
absl::Status DecodePartnerReply(const PartnerReply& reply, Response* response) {
  if (!reply.status.ok()) return WithFieldDetail(reply.status);
  if (!response->ParseFromString(reply.payload)) {
    return absl::InternalError("the remembered partner result is unreadable");
  }
  if (reply.replayed) response->mutable_mutation()->set_replayed(true);
  return absl::OkStatus();
}

template <typename Response>
PartnerEncoder EncoderFor(const std::string& request_id) {
  return [&request_id](const Partner& partner) {
    Response out;
    ToProto(partner, out.mutable_partner());
    out.mutable_mutation()->set_request_id(request_id);
    return out.SerializeAsString();
  };
}

absl::StatusOr<PartnerFilter> ParseFilter(const v1::ListPartnersRequest& request) {
  PartnerFilter filter;
  for (int i = 0; i < request.statuses_size(); ++i) {
    ML_ASSIGN_OR_RETURN(PartnerStatus status,
                        ParseStatus(request.statuses(i), absl::StrCat("statuses[", i, "]")));
    filter.statuses.push_back(status);
  }
  if (!request.country().empty() && !IsIsoCountryCode(request.country())) {
    return FieldError("country",
                      absl::StrCat("\"", absl::CHexEscape(request.country().substr(0, 16)),
                                   "\" is not an ISO 3166-1 alpha-2 code in upper case"));
  }
  filter.country = request.country();
  return filter;
}

}  // namespace

void ToProto(const Partner& partner, v1::Partner* out) {
  out->Clear();
  IdToProto(partner.id, out->mutable_id());
  out->set_name(partner.name);
  for (const std::string& country : partner.countries) out->add_countries(country);
  out->set_risk_rating_half_stars(partner.risk_rating_half_stars);
  out->set_currency_loss_coverage_bps(partner.currency_loss_coverage_bps);
  ToProto(partner.credit_limit, out->mutable_credit_limit());
  out->set_status(static_cast<v1::PartnerStatus>(partner.status));
  out->set_status_reason(partner.status_reason);
  out->set_description(partner.description);
  out->set_website_url(partner.website_url);
  if (partner.settlement_account_id) {
    IdToProto(*partner.settlement_account_id, out->mutable_settlement_account_id());
  }
  ToProto(partner.created_at, out->mutable_created_at());
  ToProto(partner.updated_at, out->mutable_updated_at());
  out->set_version(partner.version);
}

PartnerGrpc::PartnerGrpc(PartnerDirectory* directory, PartnerStore* store,
                         const GrpcAuthenticator* auth, const Clock* clock)
    : directory_(directory), store_(store), auth_(auth), clock_(clock) {}

grpc::Status PartnerGrpc::CreatePartner(grpc::ServerContext* context,
                                        const v1::CreatePartnerRequest* request,
                                        v1::CreatePartnerResponse* response) {
  return ToGrpcStatusWithDetails([&]() -> absl::Status {
    ML_ASSIGN_OR_RETURN(Principal caller, auth_->Authorize(*context, {Role::kOps}));
    ML_ASSIGN_OR_RETURN(RequestKey key,
                        MakeRequestKey(caller, request->request_id(), kCreatePartner, *request));
    ML_ASSIGN_OR_RETURN(NewPartner partner, ParseNewPartner(*request));
    PartnerReply reply = directory_->Create(
        key, partner, EncoderFor<v1::CreatePartnerResponse>(request->request_id()));
    return DecodePartnerReply(reply, response);
  }());
}

grpc::Status PartnerGrpc::GetPartner(grpc::ServerContext* context,
                                     const v1::GetPartnerRequest* request,
                                     v1::GetPartnerResponse* response) {
  return ToGrpcStatusWithDetails([&]() -> absl::Status {
    ML_RETURN_IF_ERROR(auth_->Authenticate(*context).status());
    ML_ASSIGN_OR_RETURN(PartnerId id,
                        ParseRequiredId<PartnerId>(request->partner_id(), "partner_id"));
    ML_ASSIGN_OR_RETURN(Partner partner, store_->Get(id));
    ToProto(partner, response->mutable_partner());
    return absl::OkStatus();
  }());
}

grpc::Status PartnerGrpc::ListPartners(grpc::ServerContext* context,
                                       const v1::ListPartnersRequest* request,
                                       v1::ListPartnersResponse* response) {
  return ToGrpcStatusWithDetails([&]() -> absl::Status {
    ML_RETURN_IF_ERROR(auth_->Authenticate(*context).status());
    ML_ASSIGN_OR_RETURN(PartnerFilter filter, ParseFilter(*request));
    ML_ASSIGN_OR_RETURN(PageSpec page, ParsePage(request->page(), PageKind::kList));
    ML_ASSIGN_OR_RETURN(Page<Partner> partners, store_->List(filter, page));
    for (const Partner& partner : partners.items) ToProto(partner, response->add_partners());
    ToPageResponse(partners.next_after_id, partners.total_count, response->mutable_page());
    return absl::OkStatus();
  }());
}

grpc::Status PartnerGrpc::UpdatePartner(grpc::ServerContext* context,
                                        const v1::UpdatePartnerRequest* request,
                                        v1::UpdatePartnerResponse* response) {
  return ToGrpcStatusWithDetails([&]() -> absl::Status {
    ML_ASSIGN_OR_RETURN(Principal caller,
                        auth_->Authorize(*context, {Role::kOps, Role::kPartner}));
    ML_ASSIGN_OR_RETURN(RequestKey key,
                        MakeRequestKey(caller, request->request_id(), kUpdatePartner, *request));
    ML_ASSIGN_OR_RETURN(PartnerId id,
                        ParseRequiredId<PartnerId>(request->partner().id(), "partner.id"));
    ML_ASSIGN_OR_RETURN(PartnerPatch patch, ParsePatch(*request));
    ML_RETURN_IF_ERROR(CheckMayUpdate(caller, id, patch));
    if (request->expected_version() < 0) {
      return FieldError("expected_version", "must not be negative (0 = no check)");
    }
    ML_RETURN_IF_ERROR(WithFieldDetail(ValidatePatch(patch)));
    PartnerReply reply =
        directory_->Update(key, id, patch, request->expected_version(),
                           EncoderFor<v1::UpdatePartnerResponse>(request->request_id()));
    return DecodePartnerReply(reply, response);
  }());
}

grpc::Status PartnerGrpc::SetPartnerStatus(grpc::ServerContext* context,
                                           const v1::SetPartnerStatusRequest* request,
                                           v1::SetPartnerStatusResponse* response) {
  return ToGrpcStatusWithDetails([&]() -> absl::Status {
    ML_ASSIGN_OR_RETURN(Principal caller, auth_->Authorize(*context, {Role::kOps}));
    ML_ASSIGN_OR_RETURN(RequestKey key, MakeRequestKey(caller, request->request_id(),
                                                       kSetPartnerStatus, *request));
    ML_ASSIGN_OR_RETURN(PartnerId id,
                        ParseRequiredId<PartnerId>(request->partner_id(), "partner_id"));
    ML_ASSIGN_OR_RETURN(PartnerStatus status, ParseStatus(request->status(), "status"));
    if (request->reason().empty()) return FieldError("reason", "is required");
    PartnerReply reply =
        directory_->SetStatus(key, id, status, request->reason(),
                              EncoderFor<v1::SetPartnerStatusResponse>(request->request_id()));
    return DecodePartnerReply(reply, response);
  }());
}

grpc::Status PartnerGrpc::GetPartnerStats(grpc::ServerContext* context,
                                          const v1::GetPartnerStatsRequest* request,
                                          v1::GetPartnerStatsResponse* response) {
  return ToGrpcStatusWithDetails([&]() -> absl::Status {
    ML_RETURN_IF_ERROR(auth_->Authenticate(*context).status());
    ML_ASSIGN_OR_RETURN(PartnerId id,
                        ParseRequiredId<PartnerId>(request->partner_id(), "partner_id"));
    ML_ASSIGN_OR_RETURN(PartnerLoanTotals totals, store_->LoanTotals(id));
    ML_ASSIGN_OR_RETURN(PartnerStats stats, ComputePartnerStats(id, totals, clock_->Now()));
    v1::PartnerStats* out = response->mutable_stats();
    IdToProto(stats.partner_id, out->mutable_partner_id());
    out->set_loans_posted(stats.totals.loans_posted);
    out->set_loans_active(stats.totals.loans_active);
    ToProto(Money::FromMinor(Currency::Usd(), stats.totals.raised_minor),
            out->mutable_amount_raised());
    ToProto(Money::FromMinor(Currency::Usd(), stats.totals.outstanding_minor),
            out->mutable_amount_outstanding());
    out->set_delinquency_rate_bps(stats.delinquency_rate_bps);
    out->set_default_rate_bps(stats.default_rate_bps);
    out->set_par30_bps(stats.par30_bps);
    out->set_currency_loss_rate_bps(stats.currency_loss_rate_bps);
    ToProto(stats.computed_at, out->mutable_computed_at());
    return absl::OkStatus();
  }());
}

}  // namespace microlend::lending
