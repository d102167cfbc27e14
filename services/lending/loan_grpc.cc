#include "services/lending/loan_grpc.h"

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/allocate.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "services/lending/proto_convert.h"

namespace microlend::lending {
namespace {

constexpr char kCreateLoanDraft[] = "LoanService.CreateLoanDraft";
constexpr char kUpdateLoanDraft[] = "LoanService.UpdateLoanDraft";
constexpr char kSubmitLoan[] = "LoanService.SubmitLoanForReview";
constexpr char kReviewLoan[] = "LoanService.ReviewLoan";

static_assert(static_cast<int>(LoanStatus::kDraft) == v1::LOAN_STATUS_DRAFT);
static_assert(static_cast<int>(LoanStatus::kDefaulted) == v1::LOAN_STATUS_DEFAULTED);
static_assert(static_cast<int>(RepaymentInterval::kIrregular) == v1::REPAYMENT_INTERVAL_IRREGULAR);
static_assert(static_cast<int>(Gender::kMixed) == common::v1::GENDER_MIXED);
static_assert(kMaxSector == common::v1::Sector_MAX);
static_assert(static_cast<int>(LoanSort::kRandom) == v1::LOAN_SORT_RANDOM);

absl::Status WithFieldDetail(const absl::Status& status, std::string_view prefix = "") {
  if (!absl::IsInvalidArgument(status)) return status;
  std::string_view message = AsStd(status.message());
  const size_t colon = message.find(": ");
  if (colon == std::string_view::npos) return status;
  const std::string_view field = message.substr(0, colon);
  const bool top_level = field == "update_mask" || field == "expected_version" || field == "reason";
  return FieldError(absl::StrCat(top_level ? "" : AsAbsl(prefix), AsAbsl(field)),
                    message.substr(colon + 2));
}

}  // namespace

Viewer ViewerOf(const Principal& caller) {
  Viewer viewer{.ops = caller.role == Role::kOps};
  if (caller.role == Role::kPartner) {
    absl::StatusOr<PartnerId> id = PartnerId::Parse(caller.subject, "subject");
    if (id.ok()) viewer.partner = *id;
  }
  return viewer;
}

absl::StatusOr<absl::CivilDay> ParseDate(const common::v1::CivilDate& date, std::string_view field) {
  const absl::CivilDay day(date.year(), date.month(), date.day());
  if (date.year() < 1 || date.year() > 9999 || day.year() != date.year() ||
      day.month() != date.month() || day.day() != date.day()) {
    return FieldError(field, absl::StrCat(date.year(), "-", date.month(), "-", date.day(),
                                          " is not a valid date"));
  }
  return day;
}

void DateToProto(absl::CivilDay day, common::v1::CivilDate* out) {
  out->set_year(static_cast<int32_t>(day.year()));
  out->set_month(day.month());
  out->set_day(day.day());
}

namespace {

absl::StatusOr<std::vector<Borrower>> ParseBorrowers(const v1::LoanDetails& in) {
  std::vector<Borrower> out;
  for (int i = 0; i < in.borrowers_size(); ++i) {
    const v1::Borrower& b = in.borrowers(i);
    const int gender = b.gender();
    if (gender < 1 || gender > 3) {
      return FieldError(absl::StrCat("details.borrowers[", i, "].gender"),
                        "must be GENDER_FEMALE, GENDER_MALE or GENDER_NONBINARY");
    }
    out.push_back({.name = b.name(), .gender = static_cast<Gender>(gender), .primary = b.primary()});
  }
  return out;
}

absl::StatusOr<std::vector<ScheduleEntry>> ParseSchedule(const v1::LoanDetails& in) {
  std::vector<ScheduleEntry> out;
  for (int i = 0; i < in.schedule_size(); ++i) {
    const std::string field = absl::StrCat("details.schedule[", i, "]");
    ML_ASSIGN_OR_RETURN(absl::CivilDay due, ParseDate(in.schedule(i).due_date(), field + ".due_date"));
    ML_ASSIGN_OR_RETURN(Money principal,
                        ParsePositiveMoney(in.schedule(i).principal(), field + ".principal"));
    out.push_back({due, principal});
  }
  return out;
}

// The proto's details; enum values are checked here, the rest by the core.
absl::StatusOr<LoanDetails> ParseDetails(const v1::LoanDetails& in) {
  LoanDetails d{.name = in.name(), .story = in.story(), .use = in.use(), .sector = in.sector(),
                .activity = in.activity(), .country = in.country(), .region = in.region(),
                .town = in.town(),
                .tags = std::vector<std::string>(in.tags().begin(), in.tags().end()),
                .hashtags = std::vector<std::string>(in.hashtags().begin(), in.hashtags().end()),
                .image_url = in.image_url(), .posting_fx_rate = in.posting_fx_rate(),
                .term_months = in.term_months(),
                .fundraising_window_days = in.fundraising_window_days(),
                .pre_disbursed = in.pre_disbursed()};
  ML_ASSIGN_OR_RETURN(d.borrowers, ParseBorrowers(in));
  if (in.sector() < 0 || in.sector() > kMaxSector) {
    return FieldError("details.sector", absl::StrCat(in.sector(), " is not a Sector"));
  }
  ML_ASSIGN_OR_RETURN(d.local_amount,
                      ParseOptionalPositiveMoney(in.local_amount(), "details.local_amount"));
  const int interval = in.repayment_interval();
  if (interval < 0 || interval > static_cast<int>(RepaymentInterval::kIrregular)) {
    return FieldError("details.repayment_interval", absl::StrCat(interval, " is not an interval"));
  }
  if (interval != 0) d.repayment_interval = static_cast<RepaymentInterval>(interval);
  ML_ASSIGN_OR_RETURN(d.schedule, ParseSchedule(in));
  if (!d.schedule.empty() && d.repayment_interval &&
      *d.repayment_interval != RepaymentInterval::kIrregular) {
    return FieldError("details.schedule",
                      "is generated by the server for MONTHLY, WEEKLY and BULLET loans; upload one"
                      " only for IRREGULAR");
  }
  if (in.has_disbursed_on()) {
    ML_ASSIGN_OR_RETURN(absl::CivilDay day, ParseDate(in.disbursed_on(), "details.disbursed_on"));
    d.disbursed_on = day;
  }
  return d;
}

Money Usd(int64_t minor) { return Money::FromMinor(Currency::Usd(), minor); }

template <typename Response>
absl::Status DecodeLoanReply(const LoanReply& reply, Response* response) {
  if (!reply.status.ok()) return WithFieldDetail(reply.status, "details.");
  if (!response->ParseFromString(reply.payload)) {
    return absl::InternalError("the remembered loan result is unreadable");
  }
  if (reply.replayed) response->mutable_mutation()->set_replayed(true);
  return absl::OkStatus();
}

template <typename Response>
LoanEncoder EncoderFor(const std::string& request_id) {
  return [&request_id](const Loan& loan) {
    Response out;
    ToProto(loan, out.mutable_loan());
    out.mutable_mutation()->set_request_id(request_id);
    return out.SerializeAsString();
  };
}

template <typename T, typename Parse>
absl::StatusOr<std::vector<T>> ParseEnums(const google::protobuf::RepeatedField<int>& wire,
                                          std::string_view field, int max, Parse&& parse) {
  std::vector<T> out;
  for (int i = 0; i < wire.size(); ++i) {
    if (wire[i] < 1 || wire[i] > max) {
      return FieldError(absl::StrCat(AsAbsl(field), "[", i, "]"),
                        absl::StrCat(wire[i], " is not a valid value"));
    }
    out.push_back(parse(wire[i]));
  }
  return out;
}

absl::StatusOr<std::optional<int64_t>> ParseAmountLeft(const common::v1::Money& money,
                                                       std::string_view field) {
  if (money.amount().empty() && money.currency().empty()) return std::optional<int64_t>();
  ML_ASSIGN_OR_RETURN(Money amount, ParseMoney(money, field));
  if (amount.currency() != Currency::Usd()) return FieldError(field, "must be USD");
  return std::optional<int64_t>(amount.minor_units());
}

absl::Status ParseEnumFilters(const v1::LoanFilter& f, LoanQuery& q) {
  ML_ASSIGN_OR_RETURN(q.statuses, ParseEnums<LoanStatus>(f.statuses(), "filter.statuses", 9,
                                                         [](int v) { return static_cast<LoanStatus>(v); }));
  ML_ASSIGN_OR_RETURN(q.sectors, ParseEnums<int32_t>(f.sectors(), "filter.sectors", kMaxSector,
                                                     [](int v) { return v; }));
  ML_ASSIGN_OR_RETURN(q.genders, ParseEnums<Gender>(f.genders(), "filter.genders", 4,
                                                    [](int v) { return static_cast<Gender>(v); }));
  ML_ASSIGN_OR_RETURN(q.repayment_intervals,
                      ParseEnums<RepaymentInterval>(f.repayment_intervals(),
                                                    "filter.repayment_intervals", 4, [](int v) {
                                                      return static_cast<RepaymentInterval>(v);
                                                    }));
  if (f.borrower_type() == common::v1::BORROWER_TYPE_GROUP) q.is_group = true;
  if (f.borrower_type() == common::v1::BORROWER_TYPE_INDIVIDUAL) q.is_group = false;
  if (f.borrower_type() < 0 || f.borrower_type() > common::v1::BORROWER_TYPE_GROUP) {
    return FieldError("filter.borrower_type", "is not a BorrowerType");
  }
  return absl::OkStatus();
}

absl::Status ParseScalarFilters(const v1::LoanFilter& f, LoanQuery& q) {
  for (int i = 0; i < f.countries_size(); ++i) {
    if (!IsIsoCountryCode(f.countries(i))) {
      return FieldError(absl::StrCat("filter.countries[", i, "]"),
                        "is not an ISO 3166-1 alpha-2 code in upper case");
    }
    q.countries.push_back(f.countries(i));
  }
  q.regions.assign(f.regions().begin(), f.regions().end());
  for (int i = 0; i < f.partner_ids_size(); ++i) {
    ML_ASSIGN_OR_RETURN(PartnerId id, ParseRequiredId<PartnerId>(
                                          f.partner_ids(i), absl::StrCat("filter.partner_ids[", i, "]")));
    q.partner_ids.push_back(id);
  }
  if (f.min_partner_risk_rating_half_stars() < 0 || f.max_term_months() < 0 ||
      f.expiring_within_hours() < 0 || f.min_days_in_arrears() < 0) {
    return FieldError("filter", "numbers must not be negative");
  }
  q.min_partner_risk_rating_half_stars = f.min_partner_risk_rating_half_stars();
  q.max_term_months = f.max_term_months();
  q.expiring_within_hours = f.expiring_within_hours();
  q.min_days_in_arrears = f.min_days_in_arrears();
  q.tags.assign(f.tags().begin(), f.tags().end());
  q.hashtags.assign(f.hashtags().begin(), f.hashtags().end());
  if (f.has_matchable()) q.matchable = f.matchable();
  if (f.has_delinquent()) q.delinquent = f.delinquent();
  ML_ASSIGN_OR_RETURN(q.min_amount_left_minor,
                      ParseAmountLeft(f.min_amount_left(), "filter.min_amount_left"));
  ML_ASSIGN_OR_RETURN(q.max_amount_left_minor,
                      ParseAmountLeft(f.max_amount_left(), "filter.max_amount_left"));
  if (q.min_amount_left_minor && q.max_amount_left_minor &&
      *q.min_amount_left_minor > *q.max_amount_left_minor) {
    return FieldError("filter.min_amount_left", "is above max_amount_left");
  }
  return absl::OkStatus();
}

// ListLoans page tokens: base64url of "l1.<key>.<id>.<check>", the cursor after the last loan of
// the page (<key> "-" when it has none) and <check>, 16 hex digits of the SHA-256 of the request
// without its page size and view (so: filters, sort, seed) and of the cursor, so that a token
// only continues the search that issued it and a damaged one is refused.
std::string TokenCheck(const v1::ListLoansRequest& request, absl::string_view position) {
  v1::ListLoansRequest search = request;
  search.clear_page();
  search.clear_view();  // the view does not change the order: a token serves both
  search.mutable_page()->set_page_token(std::string(position));
  return absl::BytesToHexString(BodyHash(search).substr(0, 8));
}

std::string LoanPageToken(const v1::ListLoansRequest& request, const LoanCursor& cursor) {
  const std::string position =
      absl::StrCat("l1.", cursor.key ? absl::StrCat(*cursor.key) : "-", ".", cursor.id.value());
  return absl::WebSafeBase64Escape(absl::StrCat(position, ".", TokenCheck(request, position)));
}

absl::StatusOr<LoanCursor> ParseLoanPageToken(const v1::ListLoansRequest& request, LoanSort sort) {
  const absl::Status bad = FieldError(
      "page.page_token",
      "bad page_token: pass the next_page_token of the previous response unchanged, with the "
      "same filters, sort and seed, or leave it empty for the first page");
  std::string text;
  if (!absl::WebSafeBase64Unescape(request.page().page_token(), &text)) return bad;
  const size_t check_at = text.rfind('.');
  if (check_at == std::string::npos) return bad;
  const absl::string_view position = absl::string_view(text).substr(0, check_at);
  if (absl::string_view(text).substr(check_at + 1) != TokenCheck(request, position)) return bad;
  std::vector<absl::string_view> parts = absl::StrSplit(position, '.');
  if (parts.size() != 3 || parts[0] != "l1") return bad;
  LoanCursor cursor;
  int64_t value = 0;
  if (parts[1] != "-") {
    if (!absl::SimpleAtoi(parts[1], &value)) return bad;
    cursor.key = value;
  }
  if (!absl::SimpleAtoi(parts[2], &value) || value < 1) return bad;
  cursor.id = LoanId(value);
  // Only a loan without a fundraising deadline has no key; under kRandom none has one.
  const bool keyless_allowed = sort == LoanSort::kExpiringSoonest || sort == LoanSort::kRandom;
  if ((!cursor.key && !keyless_allowed) || (cursor.key && sort == LoanSort::kRandom)) return bad;
  return cursor;
}

absl::StatusOr<LoanQuery> ParseQuery(const v1::ListLoansRequest& request, const Viewer& viewer) {
  LoanQuery q{.viewer = viewer};
  ML_RETURN_IF_ERROR(ParseEnumFilters(request.filter(), q));
  ML_RETURN_IF_ERROR(ParseScalarFilters(request.filter(), q));
  const int sort = request.sort();
  if (sort < 0 || sort > v1::LOAN_SORT_RANDOM) return FieldError("sort", "is not a LoanSort");
  q.sort = sort == 0 ? LoanSort::kNewest : static_cast<LoanSort>(sort);
  q.random_seed = request.random_seed();
  switch (request.view()) {
    case v1::LOAN_VIEW_UNSPECIFIED:
    case v1::LOAN_VIEW_FULL: q.view = LoanView::kFull; break;
    case v1::LOAN_VIEW_CARD: q.view = LoanView::kCard; break;
    default: return FieldError("view", "is not a LoanView");
  }
  common::v1::PageRequest size_only = request.page();
  size_only.clear_page_token();
  ML_ASSIGN_OR_RETURN(PageSpec page, ParsePage(size_only, PageKind::kList));
  q.limit = std::min(page.limit, kMaxLoanPageSize);
  if (!request.page().page_token().empty()) {
    ML_ASSIGN_OR_RETURN(q.after, ParseLoanPageToken(request, q.sort));
  }
  return q;
}

}  // namespace

void ToProto(const Loan& loan, v1::Loan* out) {
  out->Clear();
  IdToProto(loan.id, out->mutable_id());
  IdToProto(loan.partner_id, out->mutable_partner_id());
  v1::LoanDetails* d = out->mutable_details();
  const LoanDetails& in = loan.details;
  for (const Borrower& b : in.borrowers) {
    v1::Borrower* pb = d->add_borrowers();
    if (b.id) IdToProto(*b.id, pb->mutable_id());
    pb->set_name(b.name);
    pb->set_gender(static_cast<common::v1::Gender>(b.gender));
    pb->set_primary(b.primary);
  }
  d->set_name(in.name);
  d->set_story(in.story);
  d->set_use(in.use);
  d->set_sector(static_cast<common::v1::Sector>(in.sector));
  d->set_activity(in.activity);
  d->set_country(in.country);
  d->set_region(in.region);
  d->set_town(in.town);
  for (const std::string& tag : in.tags) d->add_tags(tag);
  for (const std::string& tag : in.hashtags) d->add_hashtags(tag);
  d->set_image_url(in.image_url);
  if (in.local_amount) ToProto(*in.local_amount, d->mutable_local_amount());
  d->set_posting_fx_rate(in.posting_fx_rate);
  d->set_term_months(in.term_months);
  if (in.repayment_interval) {
    d->set_repayment_interval(static_cast<v1::RepaymentInterval>(*in.repayment_interval));
  }
  for (const ScheduleEntry& e : in.schedule) {
    v1::ScheduleEntry* pe = d->add_schedule();
    DateToProto(e.due, pe->mutable_due_date());
    ToProto(e.principal, pe->mutable_principal());
  }
  d->set_fundraising_window_days(in.fundraising_window_days);
  d->set_pre_disbursed(in.pre_disbursed);
  if (in.disbursed_on) DateToProto(*in.disbursed_on, d->mutable_disbursed_on());
  if (!in.borrowers.empty()) {
    out->set_borrower_type(loan.is_group() ? common::v1::BORROWER_TYPE_GROUP
                                           : common::v1::BORROWER_TYPE_INDIVIDUAL);
    out->set_borrower_gender(static_cast<common::v1::Gender>(*loan.borrower_gender()));
  }
  out->set_status(static_cast<v1::LoanStatus>(loan.status));
  if (loan.review_return) {
    out->mutable_review_return()->set_reason(loan.review_return->reason);
    ToProto(loan.review_return->returned_at, out->mutable_review_return()->mutable_returned_at());
    out->mutable_review_return()->set_reviewer(loan.review_return->reviewer);
  }
  if (loan.usd_amount) ToProto(*loan.usd_amount, out->mutable_usd_amount());
  ToProto(Usd(loan.funded_minor), out->mutable_funded_amount());
  ToProto(Usd(loan.held_minor), out->mutable_held_amount());
  ToProto(Usd(loan.remaining_minor()), out->mutable_remaining_amount());
  out->set_lender_count(loan.lender_count);
  ToProto(Usd(loan.repaid_usd_minor), out->mutable_repaid_amount());
  if (loan.disbursed_at && loan.usd_amount) {
    const int64_t outstanding = loan.status == LoanStatus::kEnded
                                    ? 0
                                    : loan.usd_amount->minor_units() - loan.repaid_usd_minor -
                                          loan.currency_loss_minor;
    ToProto(Usd(std::max<int64_t>(outstanding, 0)), out->mutable_outstanding_amount());
  }
  out->set_delinquent(loan.delinquent);
  out->set_days_in_arrears(loan.days_in_arrears);
  if (loan.details.local_amount) {
    ToProto(Money::FromMinor(loan.details.local_amount->currency(), loan.arrears_local_minor),
            out->mutable_arrears_local_amount());
  }
  out->set_ended_with_currency_loss(loan.ended_with_currency_loss);
  ToProto(Usd(loan.currency_loss_minor), out->mutable_currency_loss_amount());
  if (loan.funding_account_id.value() != 0) {
    IdToProto(loan.funding_account_id, out->mutable_funding_account_id());
  }
  if (loan.funded_at) ToProto(*loan.funded_at, out->mutable_funded_at());
  if (loan.disbursed_at) ToProto(*loan.disbursed_at, out->mutable_disbursed_at());
  if (loan.closed_at) ToProto(*loan.closed_at, out->mutable_closed_at());
  out->set_partner_risk_rating_half_stars(loan.partner_risk_rating_half_stars);
  out->set_trending_score_milli(loan.trending_score_milli);
  ToProto(loan.created_at, out->mutable_created_at());
  if (loan.submitted_at) ToProto(*loan.submitted_at, out->mutable_submitted_at());
  if (loan.posted_at) ToProto(*loan.posted_at, out->mutable_posted_at());
  if (loan.fundraising_deadline) {
    ToProto(*loan.fundraising_deadline, out->mutable_fundraising_deadline());
  }
  ToProto(loan.updated_at, out->mutable_updated_at());
  out->set_version(loan.version);
}

LoanGrpc::LoanGrpc(LoanBook* book, LoanDesk* desk, LedgerStore* ledger_store,
                   const GrpcAuthenticator* auth, const Clock* clock)
    : book_(book), desk_(desk), ledger_store_(ledger_store), auth_(auth), clock_(clock) {}

grpc::Status LoanGrpc::CreateLoanDraft(grpc::ServerContext* context,
                                       const v1::CreateLoanDraftRequest* request,
                                       v1::CreateLoanDraftResponse* response) {
  return ToGrpcStatusWithDetails([&]() -> absl::Status {
    ML_ASSIGN_OR_RETURN(Principal caller, auth_->Authorize(*context, {Role::kOps, Role::kPartner}));
    ML_ASSIGN_OR_RETURN(RequestKey key,
                        MakeRequestKey(caller, request->request_id(), kCreateLoanDraft, *request));
    ML_ASSIGN_OR_RETURN(std::optional<PartnerId> named,
                        ParseOptionalId<PartnerId>(request->partner_id(), "partner_id"));
    PartnerId partner(0);
    if (caller.role == Role::kOps) {
      if (!named) return FieldError("partner_id", "is required for ops");
      partner = *named;
    } else {
      ML_ASSIGN_OR_RETURN(partner, PartnerId::Parse(caller.subject, "subject"));
      if (named && *named != partner) {
        return absl::PermissionDeniedError(absl::StrCat(
            "partner ", caller.subject, " may not create loans for partner ", named->value()));
      }
    }
    ML_ASSIGN_OR_RETURN(LoanDetails details, ParseDetails(request->details()));
    LoanReply reply = book_->CreateDraft(
        key, partner, details, EncoderFor<v1::CreateLoanDraftResponse>(request->request_id()));
    return DecodeLoanReply(reply, response);
  }());
}

grpc::Status LoanGrpc::UpdateLoanDraft(grpc::ServerContext* context,
                                       const v1::UpdateLoanDraftRequest* request,
                                       v1::UpdateLoanDraftResponse* response) {
  return ToGrpcStatusWithDetails([&]() -> absl::Status {
    ML_ASSIGN_OR_RETURN(Principal caller, auth_->Authorize(*context, {Role::kOps, Role::kPartner}));
    ML_ASSIGN_OR_RETURN(RequestKey key,
                        MakeRequestKey(caller, request->request_id(), kUpdateLoanDraft, *request));
    ML_ASSIGN_OR_RETURN(LoanId id, ParseRequiredId<LoanId>(request->loan_id(), "loan_id"));
    if (request->expected_version() < 0) {
      return FieldError("expected_version", "must not be negative (0 = no check)");
    }
    LoanPatch patch;
    patch.paths.assign(request->update_mask().paths().begin(), request->update_mask().paths().end());
    ML_ASSIGN_OR_RETURN(patch.values, ParseDetails(request->details()));
    LoanReply reply =
        book_->UpdateDraft(key, ViewerOf(caller), id, patch, request->expected_version(),
                           EncoderFor<v1::UpdateLoanDraftResponse>(request->request_id()));
    return DecodeLoanReply(reply, response);
  }());
}

grpc::Status LoanGrpc::SubmitLoanForReview(grpc::ServerContext* context,
                                           const v1::SubmitLoanForReviewRequest* request,
                                           v1::SubmitLoanForReviewResponse* response) {
  return ToGrpcStatusWithDetails([&]() -> absl::Status {
    ML_ASSIGN_OR_RETURN(Principal caller, auth_->Authorize(*context, {Role::kOps, Role::kPartner}));
    ML_ASSIGN_OR_RETURN(RequestKey key,
                        MakeRequestKey(caller, request->request_id(), kSubmitLoan, *request));
    ML_ASSIGN_OR_RETURN(LoanId id, ParseRequiredId<LoanId>(request->loan_id(), "loan_id"));
    if (request->expected_version() < 0) {
      return FieldError("expected_version", "must not be negative (0 = no check)");
    }
    LoanReply reply =
        book_->Submit(key, ViewerOf(caller), id, request->expected_version(),
                      EncoderFor<v1::SubmitLoanForReviewResponse>(request->request_id()));
    return DecodeLoanReply(reply, response);
  }());
}

grpc::Status LoanGrpc::ReviewLoan(grpc::ServerContext* context,
                                  const v1::ReviewLoanRequest* request,
                                  v1::ReviewLoanResponse* response) {
  return ToGrpcStatusWithDetails([&]() -> absl::Status {
    ML_ASSIGN_OR_RETURN(Principal caller, auth_->Authorize(*context, {Role::kOps}));
    ML_ASSIGN_OR_RETURN(RequestKey key,
                        MakeRequestKey(caller, request->request_id(), kReviewLoan, *request));
    ML_ASSIGN_OR_RETURN(LoanId id, ParseRequiredId<LoanId>(request->loan_id(), "loan_id"));
    if (request->decision() != v1::REVIEW_DECISION_APPROVE &&
        request->decision() != v1::REVIEW_DECISION_RETURN) {
      return FieldError("decision", "must be APPROVE or RETURN");
    }
    const ReviewDecision decision = request->decision() == v1::REVIEW_DECISION_APPROVE
                                        ? ReviewDecision::kApprove
                                        : ReviewDecision::kReturn;
    LoanReply reply = book_->Review(key, caller.subject, id, decision, request->reason(),
                                    EncoderFor<v1::ReviewLoanResponse>(request->request_id()));
    return DecodeLoanReply(reply, response);
  }());
}

grpc::Status LoanGrpc::GetLoan(grpc::ServerContext* context, const v1::GetLoanRequest* request,
                               v1::GetLoanResponse* response) {
  return ToGrpcStatusWithDetails([&]() -> absl::Status {
    ML_ASSIGN_OR_RETURN(Principal caller, auth_->Authenticate(*context));
    ML_ASSIGN_OR_RETURN(LoanId id, ParseRequiredId<LoanId>(request->loan_id(), "loan_id"));
    ML_ASSIGN_OR_RETURN(Loan loan, book_->Get(ViewerOf(caller), id));
    ToProto(loan, response->mutable_loan());
    return absl::OkStatus();
  }());
}

grpc::Status LoanGrpc::ListLoans(grpc::ServerContext* context, const v1::ListLoansRequest* request,
                                 v1::ListLoansResponse* response) {
  return ToGrpcStatusWithDetails([&]() -> absl::Status {
    ML_ASSIGN_OR_RETURN(Principal caller, auth_->Authenticate(*context));
    ML_ASSIGN_OR_RETURN(LoanQuery query, ParseQuery(*request, ViewerOf(caller)));
    const int64_t count_cap = query.count_cap;
    const LoanSort sort = query.sort;
    ML_ASSIGN_OR_RETURN(Page<Loan> loans, book_->List(std::move(query)));
    for (const Loan& loan : loans.items) ToProto(loan, response->add_loans());
    common::v1::PageResponse* page = response->mutable_page();
    if (loans.next_after_id != 0 && !loans.items.empty()) {
      const Loan& last = loans.items.back();
      page->set_next_page_token(
          LoanPageToken(*request, {.key = LoanSortKey(last, sort), .id = last.id}));
    }
    const bool capped = loans.total_count > count_cap;
    page->set_total_count(capped ? count_cap : loans.total_count);
    page->set_total_count_is_lower_bound(capped);
    return absl::OkStatus();
  }());
}

grpc::Status LoanGrpc::GetRepaymentSchedule(grpc::ServerContext* context,
                                            const v1::GetRepaymentScheduleRequest* request,
                                            v1::GetRepaymentScheduleResponse* response) {
  return ToGrpcStatusWithDetails([&]() -> absl::Status {
    ML_ASSIGN_OR_RETURN(Principal caller, auth_->Authenticate(*context));
    ML_ASSIGN_OR_RETURN(LoanId id, ParseRequiredId<LoanId>(request->loan_id(), "loan_id"));
    ML_ASSIGN_OR_RETURN(Loan loan, book_->Get(ViewerOf(caller), id));
    IdToProto(loan.id, response->mutable_loan_id());
    if (!loan.details.local_amount) return absl::OkStatus();
    const Money zero = Money::Zero(loan.details.local_amount->currency());
    Money total = zero;
    const absl::CivilDay today = absl::ToCivilDay(clock_->Now(), absl::UTCTimeZone());
    // The loan's USD amount split over the lines by their principal, so the lines add up to it
    // exactly (converting each line alone would drift by up to half a cent per line).
    std::vector<Money> expected_usd;
    if (loan.usd_amount) {
      std::vector<int64_t> weights;
      for (const ScheduleEntry& entry : loan.details.schedule) {
        weights.push_back(entry.principal.minor_units());
      }
      absl::StatusOr<std::vector<Money>> split =
          weights.empty() ? absl::StatusOr<std::vector<Money>>(std::vector<Money>{})
                          : Allocate(*loan.usd_amount, weights, /*rotation=*/0);
      if (split.ok()) expected_usd = *std::move(split);
    }
    // Repayments pay the lines in order, earliest first.
    int64_t unapplied = loan.repaid_local_minor;
    for (size_t i = 0; i < loan.details.schedule.size(); ++i) {
      const ScheduleEntry& entry = loan.details.schedule[i];
      v1::ScheduleLine* line = response->add_lines();
      DateToProto(entry.due, line->mutable_due_date());
      ToProto(entry.principal, line->mutable_principal());
      const int64_t paid = std::min(unapplied, entry.principal.minor_units());
      unapplied -= paid;
      ToProto(Money::FromMinor(zero.currency(), paid), line->mutable_paid());
      if (i < expected_usd.size()) ToProto(expected_usd[i], line->mutable_expected_usd());
      // A due date passes only once disbursed.
      const bool active = loan.status == LoanStatus::kPayingBack ||
                          loan.status == LoanStatus::kDefaulted;
      if (paid == entry.principal.minor_units()) {
        line->set_status(v1::SCHEDULE_ENTRY_STATUS_PAID);
      } else if (active && entry.due < today) {
        line->set_status(v1::SCHEDULE_ENTRY_STATUS_OVERDUE);
      } else if (paid > 0) {
        line->set_status(v1::SCHEDULE_ENTRY_STATUS_PARTIALLY_PAID);
      } else {
        line->set_status(v1::SCHEDULE_ENTRY_STATUS_UPCOMING);
      }
      ML_ASSIGN_OR_RETURN(total, total.Add(entry.principal));
    }
    const Money paid_local = Money::FromMinor(zero.currency(), loan.repaid_local_minor);
    ToProto(total, response->mutable_total_local());
    ToProto(paid_local, response->mutable_paid_local());
    ML_ASSIGN_OR_RETURN(Money outstanding, total.Subtract(paid_local));
    ToProto(outstanding, response->mutable_outstanding_local());
    ToProto(Money::FromMinor(zero.currency(), loan.arrears_local_minor),
            response->mutable_arrears_local());
    response->set_days_in_arrears(loan.days_in_arrears);
    return absl::OkStatus();
  }());
}

}  // namespace microlend::lending
