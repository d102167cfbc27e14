#include "mlctl/marketplace_walk.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/currency.h"
#include "common/money.h"
#include "common/status_macros.h"

namespace microlend::demo {
namespace {

namespace cv1 = ::microlend::common::v1;
namespace lv1 = ::microlend::lending::v1;

absl::Time FromProto(const google::protobuf::Timestamp& t) {
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}
absl::CivilDay DayOf(absl::Time t) { return absl::ToCivilDay(t, absl::UTCTimeZone()); }
absl::CivilDay DayOf(const cv1::CivilDate& d) {
  return absl::CivilDay(d.year(), d.month(), d.day());
}
absl::Time Noon(absl::CivilDay day) {
  return absl::FromCivil(absl::CivilSecond(day.year(), day.month(), day.day(), 12, 0, 0),
                         absl::UTCTimeZone());
}
void SetDate(absl::CivilDay day, cv1::CivilDate* out) {
  out->set_year(static_cast<int32_t>(day.year()));
  out->set_month(day.month());
  out->set_day(day.day());
}
std::string Date(absl::CivilDay day) { return absl::FormatCivilTime(day); }

// Money the server sent; malformed is the server's bug, so it is reported, not guessed at.
int64_t Minor(const cv1::Money& money, absl::Status& error) {
  absl::StatusOr<int64_t> minor = MinorUnits(money);
  if (!minor.ok()) {
    if (error.ok()) error = minor.status();
    return 0;
  }
  return *minor;
}

absl::StatusOr<std::string> LocalWire(int64_t minor, const Country& country) {
  absl::StatusOr<Currency> currency = Currency::FromCode(country.currency);
  if (!currency.ok()) return currency.status();
  return Money::FromMinor(*currency, minor).ToString();
}

bool IsStatus(const lv1::Loan& loan, std::initializer_list<lv1::LoanStatus> statuses) {
  return std::find(statuses.begin(), statuses.end(), loan.status()) != statuses.end();
}

// " (300 requests replayed: done on an earlier run)" when a step's requests were made before.
std::string Replayed(int64_t n) {
  if (n == 0) return "";
  return absl::StrCat(" (", Count(n), " requests replayed: done on an earlier run)");
}

std::string Story(const PlanLoan& loan) {
  if (loan.borrowers.size() > 1) {
    return absl::StrCat(loan.borrowers.size(), " neighbours in ", loan.country.name, ", led by ",
                        loan.borrowers[0].name, ", borrow together ", loan.use, ".");
  }
  return absl::StrCat(loan.name, " runs a small business in ", loan.country.name, " and borrows ",
                      loan.use, ".");
}

}  // namespace

MarketplaceWalk::MarketplaceWalk(const std::shared_ptr<grpc::Channel>& lending, Tokens* tokens)
    : plan_(BuildMarketplacePlan()),
      tokens_(tokens),
      partners_(lv1::PartnerService::NewStub(lending)),
      loans_(lv1::LoanService::NewStub(lending)),
      baskets_(lv1::BasketService::NewStub(lending)),
      lenders_(lv1::LenderService::NewStub(lending)),
      admin_(cv1::ServerAdmin::NewStub(lending)),
      posted_(plan_.loans.size()),
      started_(absl::Now()) {}

std::string MarketplaceWalk::Ops() { return tokens_->Get(Role::kOps, "ops-demo"); }
std::string MarketplaceWalk::PartnerToken(int partner) {
  return tokens_->Get(Role::kPartner, partner_ids_[static_cast<size_t>(partner)]);
}
std::string MarketplaceWalk::LenderToken(int lender) {
  return tokens_->Get(Role::kLender, absl::StrCat(plan_.lenders[static_cast<size_t>(lender)].id));
}
std::string MarketplaceWalk::Elapsed() const {
  return absl::StrFormat("[%5.1fs]", absl::ToDoubleSeconds(absl::Now() - started_));
}

const lv1::Loan& MarketplaceWalk::StateOf(const LoanStates& states, int loan) const {
  static const lv1::Loan kUnknown;
  auto it = states.find(posted_[static_cast<size_t>(loan)].id);
  return it == states.end() ? kUnknown : it->second;
}

absl::Status MarketplaceWalk::Run() {
  std::printf("\nmarketplace: %d loans, %d lenders, %d months of repayments\n", kMarketplaceLoans,
              kMarketplaceLenders, kRepaymentMonths);
  ML_RETURN_IF_ERROR(OpenPartners());
  ML_RETURN_IF_ERROR(PostLoans());
  ML_RETURN_IF_ERROR(Deposit());
  ML_RETURN_IF_ERROR(Fund());
  ML_RETURN_IF_ERROR(Disburse());
  ML_RETURN_IF_ERROR(Repay());
  return ExpireAndDefault();
}

// ---- partners and loans ----------------------------------------------------------------------

absl::Status MarketplaceWalk::OpenPartners() {
  std::set<std::string> countries;
  for (const PlanPartner& partner : plan_.partners) {
    lv1::CreatePartnerRequest req;
    req.set_request_id(absl::StrCat("demo-mkt-partner-", partner.request_suffix));
    req.set_name(partner.name);
    for (const Country& c : partner.countries) {
      req.add_countries(c.code);
      countries.insert(c.code);
    }
    req.set_risk_rating_half_stars(partner.rating_half_stars);
    req.set_currency_loss_coverage_bps(partner.coverage_bps);
    *req.mutable_credit_limit() = UsdMoney(100'000'000);
    lv1::CreatePartnerResponse out;
    ML_RETURN_IF_ERROR(CallWithRetry("CreatePartner", Ops(), kCallDeadline, [&](auto* ctx) {
      return partners_->CreatePartner(ctx, req, &out);
    }));
    partner_ids_.push_back(out.partner().id().value());
  }
  const PlanLoan& loss = plan_.loans[static_cast<size_t>(plan_.currency_loss_loan)];
  const PlanPartner& covering = plan_.partners[static_cast<size_t>(loss.partner)];
  std::printf(
      "%s ops opened %zu field partners in %zu countries; %s covers %d%% of currency loss, "
      "the others none\n",
      Elapsed().c_str(), plan_.partners.size(), countries.size(), covering.name.c_str(),
      covering.coverage_bps / 100);
  return absl::OkStatus();
}

absl::Status MarketplaceWalk::PostLoan(const PlanLoan& plan, std::atomic<int64_t>& replayed) {
  const std::string partner = PartnerToken(plan.partner);
  lv1::CreateLoanDraftRequest create;
  create.set_request_id(absl::StrCat("demo-mkt-loan-", plan.index));
  lv1::LoanDetails* d = create.mutable_details();
  for (const PlanBorrower& b : plan.borrowers) {
    lv1::Borrower* borrower = d->add_borrowers();
    borrower->set_name(b.name);
    borrower->set_gender(b.gender);
  }
  d->set_name(plan.name);
  d->set_story(Story(plan));
  d->set_use(plan.use);
  d->set_sector(plan.sector);
  d->set_country(plan.country.code);
  d->mutable_local_amount()->set_amount(plan.local_amount);
  d->mutable_local_amount()->set_currency(plan.country.currency);
  d->set_posting_fx_rate(plan.country.fx_rate);
  d->set_term_months(plan.term_months);
  d->set_repayment_interval(plan.interval);
  lv1::CreateLoanDraftResponse draft;
  ML_RETURN_IF_ERROR(CallWithRetry("CreateLoanDraft", partner, kCallDeadline, [&](auto* ctx) {
    return loans_->CreateLoanDraft(ctx, create, &draft);
  }));
  lv1::SubmitLoanForReviewRequest submit;
  submit.set_request_id(absl::StrCat("demo-mkt-submit-", plan.index));
  *submit.mutable_loan_id() = draft.loan().id();
  lv1::SubmitLoanForReviewResponse submitted;
  ML_RETURN_IF_ERROR(CallWithRetry("SubmitLoanForReview", partner, kCallDeadline, [&](auto* ctx) {
    return loans_->SubmitLoanForReview(ctx, submit, &submitted);
  }));
  lv1::ReviewLoanRequest review;
  review.set_request_id(absl::StrCat("demo-mkt-review-", plan.index));
  *review.mutable_loan_id() = draft.loan().id();
  review.set_decision(lv1::REVIEW_DECISION_APPROVE);
  lv1::ReviewLoanResponse reviewed;
  ML_RETURN_IF_ERROR(CallWithRetry("ReviewLoan", Ops(), kCallDeadline, [&](auto* ctx) {
    return loans_->ReviewLoan(ctx, review, &reviewed);
  }));

  if (draft.mutation().replayed()) ++replayed;
  const lv1::Loan& loan = reviewed.loan();
  PostedLoan& posted = posted_[static_cast<size_t>(plan.index)];
  absl::Status error;
  posted.id = loan.id().value();
  posted.created_on = DayOf(FromProto(loan.created_at()));
  posted.local_minor = Minor(loan.details().local_amount(), error);
  for (const lv1::ScheduleEntry& entry : loan.details().schedule()) {
    posted.schedule.push_back({DayOf(entry.due_date()), Minor(entry.principal(), error)});
  }
  if (!error.ok()) return error;
  if (Minor(loan.usd_amount(), error) != plan.usd_cents || posted.schedule.empty()) {
    return absl::InternalError(absl::StrCat(
        "loan ", posted.id, " came back as ", loan.usd_amount().amount(), " USD with ",
        posted.schedule.size(), " installments; the plan has ", UsdAmount(plan.usd_cents)));
  }
  return absl::OkStatus();
}

absl::Status MarketplaceWalk::PostLoans() {
  std::atomic<int64_t> replayed{0};
  ML_RETURN_IF_ERROR(ParallelFor(plan_.loans.size(), kRpcThreads,
                                 [&](size_t i) { return PostLoan(plan_.loans[i], replayed); }));
  first_day_ = posted_.front().created_on;
  int64_t usd = 0;
  std::set<int> sectors;
  for (size_t i = 0; i < posted_.size(); ++i) {
    first_day_ = std::min(first_day_, posted_[i].created_on);
    usd += plan_.loans[i].usd_cents;
    sectors.insert(plan_.loans[i].sector);
  }
  std::printf(
      "%s partners posted %s loans (%s USD, %zu sectors, 100 to 1,000 USD, 2 to 14 months)"
      " and ops approved them into fundraising on %s%s\n",
      Elapsed().c_str(), Count(static_cast<int64_t>(posted_.size())).c_str(), Dollars(usd).c_str(),
      sectors.size(), Date(first_day_).c_str(), Replayed(replayed.load()).c_str());
  return absl::OkStatus();
}

// ---- lenders -----------------------------------------------------------------------------------

absl::Status MarketplaceWalk::Deposit() {
  const std::string payments = tokens_->Get(Role::kService, "payments-demo");
  std::atomic<int64_t> total{0}, replayed{0};
  ML_RETURN_IF_ERROR(ParallelFor(plan_.lenders.size(), kRpcThreads, [&](size_t i) {
    const PlanLender& lender = plan_.lenders[i];
    lv1::DepositRequest req;
    req.set_request_id(absl::StrCat("demo-mkt-deposit-", lender.id));
    req.mutable_lender_id()->set_value(absl::StrCat(lender.id));
    *req.mutable_amount() = UsdMoney(lender.deposit_cents);
    req.set_external_payment_id(absl::StrCat("demo-mkt-card-", lender.id));
    req.set_payment_method("card");
    lv1::DepositResponse out;
    total += lender.deposit_cents;
    ML_RETURN_IF_ERROR(CallWithRetry("Deposit", payments, kCallDeadline,
                                     [&](auto* ctx) { return lenders_->Deposit(ctx, req, &out); }));
    if (out.mutation().replayed()) ++replayed;
    return absl::OkStatus();
  }));
  std::printf("%s %s lenders deposited %s USD by card%s\n", Elapsed().c_str(),
              Count(static_cast<int64_t>(plan_.lenders.size())).c_str(),
              Dollars(total.load()).c_str(), Replayed(replayed.load()).c_str());
  return absl::OkStatus();
}

absl::Status MarketplaceWalk::LendNow(const PlanLoan& loan, const PlanShare& share) {
  const PlanLender& lender = plan_.lenders[static_cast<size_t>(share.lender)];
  lv1::LendNowRequest req;
  req.set_request_id(absl::StrCat("demo-mkt-lend-", loan.index, "-", lender.id));
  req.mutable_loan_id()->set_value(posted_[static_cast<size_t>(loan.index)].id);
  *req.mutable_amount() = UsdMoney(share.cents);
  lv1::LendNowResponse out;
  return CallWithRetry(absl::StrCat("LendNow to loan ", req.loan_id().value()),
                       LenderToken(share.lender), kCallDeadline,
                       [&](auto* ctx) { return baskets_->LendNow(ctx, req, &out); });
}

// A basket lender's rounds, one after the other (a basket is one per lender): add each item of a
// round, then check out with its donation. Items of loans no longer fundraising were lent on an
// earlier run and are left out.
absl::Status MarketplaceWalk::BasketRounds(const PlanLender& lender, const LoanStates& states) {
  const int index = static_cast<int>(lender.id - kFirstLenderId);
  const std::string token = LenderToken(index);
  for (size_t c = 0; c < lender.basket_chunks.size(); ++c) {
    const BasketChunk& chunk = lender.basket_chunks[c];
    bool added = false;
    for (const auto& [loan, cents] : chunk.items) {
      if (StateOf(states, loan).status() != lv1::LOAN_STATUS_FUNDRAISING) continue;
      lv1::AddToBasketRequest req;
      req.set_request_id(absl::StrCat("demo-mkt-basket-", loan, "-", lender.id));
      req.mutable_loan_id()->set_value(posted_[static_cast<size_t>(loan)].id);
      *req.mutable_amount() = UsdMoney(cents);
      lv1::AddToBasketResponse out;
      ML_RETURN_IF_ERROR(CallWithRetry("AddToBasket", token, kCallDeadline, [&](auto* ctx) {
        return baskets_->AddToBasket(ctx, req, &out);
      }));
      added = true;
    }
    if (!added) continue;
    lv1::CheckoutRequest checkout;
    checkout.set_request_id(absl::StrCat("demo-mkt-checkout-", lender.id, "-", c));
    if (chunk.donation_cents > 0) *checkout.mutable_donation() = UsdMoney(chunk.donation_cents);
    lv1::CheckoutResponse out;
    ML_RETURN_IF_ERROR(CallWithRetry("Checkout", token, kCallDeadline, [&](auto* ctx) {
      return baskets_->Checkout(ctx, checkout, &out);
    }));
  }
  return absl::OkStatus();
}

absl::Status MarketplaceWalk::Fund() {
  ML_ASSIGN_OR_RETURN(LoanStates states, ReadLoans());
  std::vector<std::function<absl::Status()>> tasks;
  int64_t at_once = 0, in_baskets = 0;
  for (const PlanLoan& loan : plan_.loans) {
    if (StateOf(states, loan.index).status() != lv1::LOAN_STATUS_FUNDRAISING) continue;
    for (const PlanShare& share : loan.shares) {
      if (plan_.lenders[static_cast<size_t>(share.lender)].uses_basket) {
        ++in_baskets;
        continue;
      }
      ++at_once;
      tasks.push_back([this, &loan, &share] { return LendNow(loan, share); });
    }
  }
  for (const PlanLender& lender : plan_.lenders) {
    bool open = false;
    for (const BasketChunk& chunk : lender.basket_chunks) {
      for (const auto& [loan, cents] : chunk.items) {
        open = open || StateOf(states, loan).status() == lv1::LOAN_STATUS_FUNDRAISING;
      }
    }
    if (open) tasks.push_back([&] { return BasketRounds(lender, states); });
  }
  ML_RETURN_IF_ERROR(ParallelFor(tasks.size(), kRpcThreads, [&](size_t i) { return tasks[i](); }));

  ML_ASSIGN_OR_RETURN(states, ReadLoans());
  int64_t lent = 0, funded = 0;
  absl::Status error;
  for (const PlanLoan& loan : plan_.loans) {
    const lv1::Loan& state = StateOf(states, loan.index);
    lent += Minor(state.funded_amount(), error);
    const bool open = IsStatus(state, {lv1::LOAN_STATUS_FUNDRAISING, lv1::LOAN_STATUS_EXPIRED});
    if (loan.role != LoanRole::kExpiry && open) {
      return absl::InternalError(absl::StrCat("loan ", state.id().value(), " is ",
                                              lv1::LoanStatus_Name(state.status()),
                                              " after every planned share was lent"));
    }
    if (!open) ++funded;
  }
  if (!error.ok()) return error;
  if (tasks.empty()) {
    std::printf("%s nothing left to lend: %s loans were funded on an earlier run (%s USD lent)\n",
                Elapsed().c_str(), Count(funded).c_str(), Dollars(lent).c_str());
  } else {
    std::printf(
        "%s lenders lent %s USD: %s shares at once (LendNow), %s through baskets and "
        "checkout; %s loans are fully funded\n",
        Elapsed().c_str(), Dollars(lent).c_str(), Count(at_once).c_str(), Count(in_baskets).c_str(),
        Count(funded).c_str());
  }
  return absl::OkStatus();
}

// ---- disbursement and repayments -------------------------------------------------------------

absl::Status MarketplaceWalk::Disburse() {
  ML_ASSIGN_OR_RETURN(LoanStates states, ReadLoans());
  std::vector<int> funded;
  int64_t usd = 0;
  for (const PlanLoan& loan : plan_.loans) {
    if (StateOf(states, loan.index).status() != lv1::LOAN_STATUS_FUNDED) continue;
    funded.push_back(loan.index);
    usd += loan.usd_cents;
  }
  ML_RETURN_IF_ERROR(ParallelFor(funded.size(), kRpcThreads, [&](size_t i) -> absl::Status {
    const PlanLoan& loan = plan_.loans[static_cast<size_t>(funded[i])];
    const PostedLoan& posted = posted_[static_cast<size_t>(loan.index)];
    lv1::ReportDisbursementRequest req;
    req.set_request_id(absl::StrCat("demo-mkt-disburse-", loan.index));
    req.mutable_loan_id()->set_value(posted.id);
    SetDate(posted.created_on, req.mutable_disbursed_on());
    req.mutable_local_amount()->set_amount(loan.local_amount);
    req.mutable_local_amount()->set_currency(loan.country.currency);
    lv1::ReportDisbursementResponse out;
    return CallWithRetry("ReportDisbursement", PartnerToken(loan.partner), kCallDeadline,
                         [&](auto* ctx) { return loans_->ReportDisbursement(ctx, req, &out); });
  }));
  if (funded.empty()) {
    std::printf("%s every funded loan was disbursed on an earlier run\n", Elapsed().c_str());
  } else {
    std::printf("%s partners reported disbursing %s loans (%s USD) to their borrowers\n",
                Elapsed().c_str(), Count(static_cast<int64_t>(funded.size())).c_str(),
                Dollars(usd).c_str());
  }
  return absl::OkStatus();
}

// The local principal each loan has repaid so far (by plan index): all of it for an ended loan,
// nothing for one that never repaid, otherwise what its schedule says is paid.
absl::StatusOr<std::vector<int64_t>> MarketplaceWalk::RepaidLocal(const LoanStates& states) {
  std::vector<int64_t> repaid(plan_.loans.size(), 0);
  std::vector<int> ask;
  absl::Status error;
  for (const PlanLoan& loan : plan_.loans) {
    const lv1::Loan& state = StateOf(states, loan.index);
    if (state.status() == lv1::LOAN_STATUS_ENDED) {
      repaid[static_cast<size_t>(loan.index)] =
          posted_[static_cast<size_t>(loan.index)].local_minor;
    } else if (IsStatus(state, {lv1::LOAN_STATUS_PAYING_BACK, lv1::LOAN_STATUS_DEFAULTED}) &&
               Minor(state.repaid_amount(), error) > 0) {
      ask.push_back(loan.index);
    }
  }
  if (!error.ok()) return error;
  ML_RETURN_IF_ERROR(ParallelFor(ask.size(), kRpcThreads, [&](size_t i) -> absl::Status {
    lv1::GetRepaymentScheduleRequest req;
    req.mutable_loan_id()->set_value(posted_[static_cast<size_t>(ask[i])].id);
    lv1::GetRepaymentScheduleResponse out;
    ML_RETURN_IF_ERROR(CallWithRetry("GetRepaymentSchedule", Ops(), kCallDeadline, [&](auto* ctx) {
      return loans_->GetRepaymentSchedule(ctx, req, &out);
    }));
    for (const lv1::ScheduleLine& line : out.lines()) {
      ML_ASSIGN_OR_RETURN(int64_t paid, MinorUnits(line.paid()));
      repaid[static_cast<size_t>(ask[i])] += paid;
    }
    return absl::OkStatus();
  }));
  return repaid;
}

absl::Status MarketplaceWalk::Repay() {
  ML_ASSIGN_OR_RETURN(LoanStates states, ReadLoans());
  ML_ASSIGN_OR_RETURN(std::vector<int64_t> repaid, RepaidLocal(states));
  std::vector<int64_t> due_through(plan_.loans.size(), 0);
  for (int month = 1; month <= kRepaymentMonths; ++month) {
    ML_RETURN_IF_ERROR(ReportMonth(month, repaid, due_through));
  }
  return absl::OkStatus();
}

// The batches of month `month`, each partner's loans in plan order, kMaxBulkItems a call. Adds
// the month to `due_through`; returns only the partners whose month is not yet fully repaid by
// the loans' own account (`repaid_local`): a partner's month is sent again whole (the ids are per
// batch), so what went through replays and only what is missing applies.
std::vector<MarketplaceWalk::RepaymentBatch> MarketplaceWalk::MonthBatches(
    int month, const std::vector<int64_t>& repaid_local, std::vector<int64_t>& due_through) const {
  std::vector<RepaymentBatch> pending;
  for (int p = 0; p < static_cast<int>(plan_.partners.size()); ++p) {
    std::vector<RepaymentBatch> batches;
    bool reported = true;
    for (const PlanLoan& loan : plan_.loans) {
      if (loan.partner != p) continue;
      const size_t i = static_cast<size_t>(loan.index);
      const int64_t due = RepaymentLocalMinor(loan, posted_[i].schedule, first_day_, month);
      if (due == 0) continue;
      due_through[i] += due;
      if (repaid_local[i] < due_through[i]) reported = false;
      if (batches.empty() || static_cast<int>(batches.back().items.size()) == kMaxBulkItems) {
        batches.push_back({.partner = p, .number = static_cast<int>(batches.size())});
      }
      batches.back().items.emplace_back(loan.index, due);
    }
    if (!reported) pending.insert(pending.end(), batches.begin(), batches.end());
  }
  return pending;
}

// One PostBulkRepayments call, dated `on`; any failed item fails the walk.
absl::Status MarketplaceWalk::PostRepaymentBatch(int month, absl::CivilDay on,
                                                 const RepaymentBatch& batch,
                                                 std::atomic<int64_t>& items,
                                                 std::atomic<int64_t>& credited) {
  const PlanPartner& partner = plan_.partners[static_cast<size_t>(batch.partner)];
  lv1::PostBulkRepaymentsRequest req;
  req.set_request_id(
      absl::StrCat("demo-mkt-repay-m", month, "-", partner.request_suffix, "-", batch.number));
  for (const auto& [index, local_minor] : batch.items) {
    const PlanLoan& loan = plan_.loans[static_cast<size_t>(index)];
    lv1::BulkRepaymentItem* item = req.add_items();
    item->mutable_loan_id()->set_value(posted_[static_cast<size_t>(index)].id);
    ML_ASSIGN_OR_RETURN(std::string local, LocalWire(local_minor, loan.country));
    item->mutable_local_amount()->set_amount(local);
    item->mutable_local_amount()->set_currency(loan.country.currency);
    item->set_settlement_fx_rate(loan.settlement_fx_rate);
    SetDate(on, item->mutable_repaid_on());
    item->set_partner_reference(absl::StrCat(partner.request_suffix, "-m", month, "-", index));
  }
  lv1::PostBulkRepaymentsResponse out;
  ML_RETURN_IF_ERROR(
      CallWithRetry("PostBulkRepayments", PartnerToken(batch.partner), kBulkCallDeadline,
                    [&](auto* ctx) { return loans_->PostBulkRepayments(ctx, req, &out); }));
  for (const lv1::BulkRepaymentResult& result : out.results()) {
    if (result.status().code() != 0) {
      return absl::InternalError(
          absl::StrCat("repayment of loan ", req.items(result.index()).loan_id().value(), " in ",
                       req.request_id(), " failed: ", result.status().message()));
    }
    ML_ASSIGN_OR_RETURN(int64_t cents, MinorUnits(result.repayment().credited_usd_amount()));
    credited += cents;
  }
  items += out.succeeded_count();
  return absl::OkStatus();
}

// Month `month`: once the business clock has reached the month's last day, each partner reports
// in bulk what fell due on its loans that month, dated that day; then the lifecycle sweep runs.
absl::Status MarketplaceWalk::ReportMonth(int month, const std::vector<int64_t>& repaid_local,
                                          std::vector<int64_t>& due_through) {
  const absl::CivilDay end = AddMonthsClamped(first_day_, month);
  const std::vector<RepaymentBatch> pending = MonthBatches(month, repaid_local, due_through);
  if (pending.empty()) {
    std::printf("%s month %d (to %s): reported on an earlier run\n", Elapsed().c_str(), month,
                Date(end).c_str());
    return absl::OkStatus();
  }
  ML_RETURN_IF_ERROR(MoveClockTo(Noon(end)));
  std::atomic<int64_t> items{0}, credited{0};
  ML_RETURN_IF_ERROR(ParallelFor(pending.size(), kRpcThreads, [&](size_t b) {
    return PostRepaymentBatch(month, end, pending[b], items, credited);
  }));
  ML_ASSIGN_OR_RETURN(lv1::RunLifecycleSweepResponse swept,
                      Sweep(absl::StrCat("demo-mkt-sweep-m", month)));
  std::printf(
      "%s month %d (to %s): partners reported %s repayments in bulk, %s USD to lenders; "
      "sweep: %d expired, %d newly delinquent, %d caught up, %d defaulted\n",
      Elapsed().c_str(), month, Date(end).c_str(), Count(items.load()).c_str(),
      Dollars(credited.load()).c_str(), swept.loans_expired(), swept.loans_flagged_delinquent(),
      swept.loans_cleared_delinquent(), swept.loans_defaulted());
  return absl::OkStatus();
}

// The months of repayments normally carry the clock past the unfunded loan's deadline and the
// defaulting loan's term plus 180 days; if they did not, this moves it there.
absl::Status MarketplaceWalk::ExpireAndDefault() {
  ML_ASSIGN_OR_RETURN(LoanStates states, ReadLoans());
  const lv1::Loan& unfunded = StateOf(states, plan_.expiry_loan);
  if (unfunded.status() == lv1::LOAN_STATUS_FUNDRAISING) {
    ML_RETURN_IF_ERROR(MoveClockTo(FromProto(unfunded.fundraising_deadline()) + absl::Minutes(1)));
    ML_RETURN_IF_ERROR(Sweep("demo-mkt-sweep-expiry").status());
    std::printf("%s the clock passed loan %s's fundraising deadline\n", Elapsed().c_str(),
                unfunded.id().value().c_str());
  }
  const lv1::Loan& failing = StateOf(states, plan_.default_loan);
  if (failing.status() == lv1::LOAN_STATUS_PAYING_BACK) {
    const absl::CivilDay last_due =
        posted_[static_cast<size_t>(plan_.default_loan)].schedule.back().due;
    ML_RETURN_IF_ERROR(MoveClockTo(Noon(last_due + kDefaultAfterDays + 1)));
    ML_RETURN_IF_ERROR(Sweep("demo-mkt-sweep-default").status());
    std::printf("%s the clock passed loan %s's last due date plus %d days\n", Elapsed().c_str(),
                failing.id().value().c_str(), kDefaultAfterDays);
  }
  ML_ASSIGN_OR_RETURN(states, ReadLoans());
  if (StateOf(states, plan_.expiry_loan).status() != lv1::LOAN_STATUS_EXPIRED ||
      StateOf(states, plan_.default_loan).status() != lv1::LOAN_STATUS_DEFAULTED) {
    return absl::InternalError(
        absl::StrCat("loan ", unfunded.id().value(), " is ",
                     lv1::LoanStatus_Name(StateOf(states, plan_.expiry_loan).status()),
                     " (EXPIRED expected) and loan ", failing.id().value(), " is ",
                     lv1::LoanStatus_Name(StateOf(states, plan_.default_loan).status()),
                     " (DEFAULTED expected; is the server's --default_after_days above ",
                     kDefaultAfterDays, "?)"));
  }
  return absl::OkStatus();
}

// ---- reading the server ----------------------------------------------------------------------

absl::StatusOr<MarketplaceWalk::LoanStates> MarketplaceWalk::ReadLoans() {
  LoanStates states;
  lv1::ListLoansRequest req;
  req.set_sort(lv1::LOAN_SORT_LOAN_AMOUNT_ASC);  // stable under paging: amounts never change
  req.mutable_page()->set_page_size(100);
  for (const std::string& id : partner_ids_) req.mutable_filter()->add_partner_ids()->set_value(id);
  for (int s = lv1::LOAN_STATUS_DRAFT; s <= lv1::LOAN_STATUS_DEFAULTED; ++s) {
    req.mutable_filter()->add_statuses(static_cast<lv1::LoanStatus>(s));
  }
  // Bounded: the plan's loans fit in far fewer pages.
  for (int page = 0; page < 1'000; ++page) {
    lv1::ListLoansResponse out;
    ML_RETURN_IF_ERROR(CallWithRetry("ListLoans", Ops(), kCallDeadline,
                                     [&](auto* ctx) { return loans_->ListLoans(ctx, req, &out); }));
    for (lv1::Loan& loan : *out.mutable_loans()) states[loan.id().value()] = std::move(loan);
    if (out.page().next_page_token().empty()) return states;
    req.mutable_page()->set_page_token(out.page().next_page_token());
  }
  return absl::InternalError("ListLoans kept returning pages");
}

absl::StatusOr<absl::Time> MarketplaceWalk::BusinessNow() {
  cv1::GetServerStatusResponse out;
  ML_RETURN_IF_ERROR(CallWithRetry("GetServerStatus", Ops(), kCallDeadline, [&](auto* ctx) {
    return admin_->GetServerStatus(ctx, {}, &out);
  }));
  return FromProto(out.server_time());
}

// AdvanceClock is not idempotent, so it is never retried blindly: after a transient failure the
// clock is read again and only what is still missing is asked for.
absl::Status MarketplaceWalk::MoveClockTo(absl::Time target) {
  for (int attempt = 1;; ++attempt) {
    ML_ASSIGN_OR_RETURN(absl::Time now, BusinessNow());
    if (now >= target) return absl::OkStatus();
    cv1::AdvanceClockRequest req;
    req.set_seconds(absl::ToInt64Seconds(absl::Ceil(target - now, absl::Seconds(1))));
    cv1::AdvanceClockResponse out;
    const grpc::Status moved = admin_->AdvanceClock(Ctx(Ops()).get(), req, &out);
    if (moved.ok()) return absl::OkStatus();
    if (moved.error_code() == grpc::StatusCode::FAILED_PRECONDITION) {
      return absl::FailedPreconditionError(absl::StrCat(
          "AdvanceClock: ", moved.error_message(),
          "; the demo moves the lending server's business clock forward a month at a time: start "
          "lending_server with --clock_control=true (MICROLEND_CLOCK_CONTROL=true; `make run` and "
          "`make demo` do)"));
    }
    const bool transient = moved.error_code() == grpc::StatusCode::UNAVAILABLE ||
                           moved.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED;
    if (!transient || attempt == kMaxAttempts) return Check(moved, "AdvanceClock");
  }
}

absl::StatusOr<lv1::RunLifecycleSweepResponse> MarketplaceWalk::Sweep(
    const std::string& request_id) {
  lv1::RunLifecycleSweepResponse total;
  // Bounded: each pass handles up to 10,000 items and the demo has about a thousand loans.
  for (int pass = 0; pass < 10; ++pass) {
    lv1::RunLifecycleSweepRequest req;
    req.set_request_id(absl::StrCat(request_id, "-", pass));
    lv1::RunLifecycleSweepResponse out;
    ML_RETURN_IF_ERROR(CallWithRetry("RunLifecycleSweep", Ops(), kBulkCallDeadline, [&](auto* ctx) {
      return loans_->RunLifecycleSweep(ctx, req, &out);
    }));
    total.set_loans_expired(total.loans_expired() + out.loans_expired());
    total.set_loans_flagged_delinquent(total.loans_flagged_delinquent() +
                                       out.loans_flagged_delinquent());
    total.set_loans_cleared_delinquent(total.loans_cleared_delinquent() +
                                       out.loans_cleared_delinquent());
    total.set_loans_defaulted(total.loans_defaulted() + out.loans_defaulted());
    *total.mutable_as_of() = out.as_of();
    if (!out.more_remaining()) return total;
  }
  return total;
}

// ---- the summary
// ---------------------------------------------------------------------------------

absl::StatusOr<MarketplaceWalk::Totals> MarketplaceWalk::Tally(const LoanStates& states) const {
  Totals t;
  absl::Status error;
  for (const PlanLoan& loan : plan_.loans) {
    const lv1::Loan& s = StateOf(states, loan.index);
    ++t.by_status[s.status()];
    t.lent += Minor(s.funded_amount(), error);
    t.repaid += Minor(s.repaid_amount(), error);
    const int64_t loss = Minor(s.currency_loss_amount(), error);
    t.fx_loss += loss;
    if (loan.role != LoanRole::kCurrencyLoss && loss > 0) {
      t.fx_loss_elsewhere += loss;
      ++t.loans_elsewhere;
    }
    if (s.delinquent() && s.status() == lv1::LOAN_STATUS_PAYING_BACK) ++t.delinquent;
    if (IsStatus(s, {lv1::LOAN_STATUS_PAYING_BACK, lv1::LOAN_STATUS_ENDED,
                     lv1::LOAN_STATUS_DEFAULTED})) {
      t.disbursed += Minor(s.usd_amount(), error);
    }
    if (IsStatus(s, {lv1::LOAN_STATUS_EXPIRED, lv1::LOAN_STATUS_REFUNDED})) {
      t.refunded += Minor(s.funded_amount(), error);
    }
    if (s.status() == lv1::LOAN_STATUS_DEFAULTED) {
      t.written_off += Minor(s.usd_amount(), error) - Minor(s.repaid_amount(), error);
    }
  }
  if (!error.ok()) return error;
  return t;
}

absl::Status MarketplaceWalk::PrintSummary() {
  ML_ASSIGN_OR_RETURN(LoanStates states, ReadLoans());
  ML_ASSIGN_OR_RETURN(Totals t, Tally(states));
  auto count = [&](lv1::LoanStatus status) { return Count(t.by_status[status]); };
  const int64_t funded =
      t.by_status[lv1::LOAN_STATUS_FUNDED] + t.by_status[lv1::LOAN_STATUS_PAYING_BACK] +
      t.by_status[lv1::LOAN_STATUS_ENDED] + t.by_status[lv1::LOAN_STATUS_DEFAULTED];
  ML_ASSIGN_OR_RETURN(absl::Time now, BusinessNow());
  std::printf("\nmarketplace summary (business clock %s; the wall clock says %s)\n",
              Date(DayOf(now)).c_str(), Date(DayOf(absl::Now())).c_str());
  std::printf(
      "  loans    %s posted, %s funded, %s ended (repaid in full), %s paying back (%s "
      "delinquent), %s expired, %s defaulted\n",
      Count(static_cast<int64_t>(plan_.loans.size())).c_str(), Count(funded).c_str(),
      count(lv1::LOAN_STATUS_ENDED).c_str(), count(lv1::LOAN_STATUS_PAYING_BACK).c_str(),
      Count(t.delinquent).c_str(), count(lv1::LOAN_STATUS_EXPIRED).c_str(),
      count(lv1::LOAN_STATUS_DEFAULTED).c_str());
  std::printf(
      "  USD      %s lent, %s disbursed, %s repaid to lenders, %s refunded, %s lost to "
      "default, %s lost to currency movements\n",
      Dollars(t.lent).c_str(), Dollars(t.disbursed).c_str(), Dollars(t.repaid).c_str(),
      Dollars(t.refunded).c_str(), Dollars(t.written_off).c_str(), Dollars(t.fx_loss).c_str());
  if (t.fx_loss_elsewhere > 0) {
    // Every other loan repays at its posting rate: this is rounding, not a currency move.
    std::printf(
        "           (of which %s on %s loans repaid at their posting rate: per-repayment "
        "rounding of the received USD)\n",
        Dollars(t.fx_loss_elsewhere).c_str(), Count(t.loans_elsewhere).c_str());
  }
  ML_RETURN_IF_ERROR(PrintStories(states));
  auto first_funder = [&](int loan) {
    return plan_.loans[static_cast<size_t>(loan)].shares.front().lender;
  };
  ML_RETURN_IF_ERROR(
      PrintLenderSample(first_funder(plan_.default_loan), "a funder of the defaulted loan"));
  ML_RETURN_IF_ERROR(
      PrintLenderSample(first_funder(plan_.expiry_loan), "a funder of the expired loan"));
  const auto [basket_lender, why] = BasketLenderSample();
  return PrintLenderSample(basket_lender, why);
}

// A lender who uses the basket, preferably one who funded the loan repaid at a loss.
std::pair<int, std::string> MarketplaceWalk::BasketLenderSample() const {
  const PlanLoan& loss = plan_.loans[static_cast<size_t>(plan_.currency_loss_loan)];
  for (const PlanShare& share : loss.shares) {
    if (plan_.lenders[static_cast<size_t>(share.lender)].uses_basket) {
      return {share.lender, "a funder of the loan repaid at a loss"};
    }
  }
  for (size_t i = 0; i < plan_.lenders.size(); ++i) {
    if (plan_.lenders[i].uses_basket) return {static_cast<int>(i), "a basket lender"};
  }
  return {loss.shares.front().lender, "a funder of the loan repaid at a loss"};
}

// The three loans with a part to play, as the server tells their story.
absl::Status MarketplaceWalk::PrintStories(const LoanStates& states) {
  absl::Status error;
  const lv1::Loan& expired = StateOf(states, plan_.expiry_loan);
  std::printf(
      "  expired  loan %s %s (%s): %s of %s USD raised by its deadline %s; its %d lenders "
      "were refunded\n",
      expired.id().value().c_str(), expired.details().name().c_str(),
      expired.details().country().c_str(), Dollars(Minor(expired.funded_amount(), error)).c_str(),
      Dollars(Minor(expired.usd_amount(), error)).c_str(),
      Date(DayOf(FromProto(expired.fundraising_deadline()))).c_str(), expired.lender_count());
  const lv1::Loan& failed = StateOf(states, plan_.default_loan);
  const int64_t failed_usd = Minor(failed.usd_amount(), error);
  const int64_t failed_repaid = Minor(failed.repaid_amount(), error);
  std::printf(
      "  default  loan %s %s (%s): repaid %s of %s USD, then stopped; defaulted on %s and "
      "%s was written off\n",
      failed.id().value().c_str(), failed.details().name().c_str(),
      failed.details().country().c_str(), Dollars(failed_repaid).c_str(),
      Dollars(failed_usd).c_str(), Date(DayOf(FromProto(failed.closed_at()))).c_str(),
      Dollars(failed_usd - failed_repaid).c_str());
  if (!error.ok()) return error;

  const PlanLoan& plan = plan_.loans[static_cast<size_t>(plan_.currency_loss_loan)];
  lv1::ListRepaymentsRequest req;
  req.mutable_loan_id()->set_value(posted_[static_cast<size_t>(plan.index)].id);
  req.mutable_page()->set_page_size(10);
  lv1::ListRepaymentsResponse out;
  ML_RETURN_IF_ERROR(CallWithRetry("ListRepayments", Ops(), kCallDeadline, [&](auto* ctx) {
    return loans_->ListRepayments(ctx, req, &out);
  }));
  for (const lv1::Repayment& r : out.repayments()) {
    if (r.settlement_fx_rate() == plan.country.fx_rate) continue;
    std::printf(
        "  FX loss  loan %s %s (%s): %s %s repaid on %s at %s %s/USD (posted at %s): "
        "expected %s USD; %s covered %s, lenders bore %s\n",
        req.loan_id().value().c_str(), plan.name.c_str(), plan.country.code,
        r.local_amount().amount().c_str(), r.local_amount().currency().c_str(),
        Date(DayOf(r.repaid_on())).c_str(), r.settlement_fx_rate().c_str(), plan.country.currency,
        plan.country.fx_rate, Dollars(Minor(r.expected_usd_amount(), error)).c_str(),
        plan_.partners[static_cast<size_t>(plan.partner)].name.c_str(),
        Dollars(Minor(r.partner_coverage_amount(), error)).c_str(),
        Dollars(Minor(r.currency_loss_amount(), error)).c_str());
  }
  return error;
}

// One lender's wallet, from its statement (every posted entry, by code) and its balance.
absl::Status MarketplaceWalk::PrintLenderSample(int lender, const std::string& why) {
  const PlanLender& plan = plan_.lenders[static_cast<size_t>(lender)];
  const std::string token = LenderToken(lender);
  absl::flat_hash_map<int, int64_t> by_code;
  int64_t shares = 0;
  lv1::GetStatementRequest req;
  req.mutable_filter()->mutable_lender_id()->set_value(absl::StrCat(plan.id));
  req.mutable_page()->set_page_size(500);
  // Bounded: a demo lender has a few hundred entries.
  for (int page = 0; page < 100; ++page) {
    lv1::GetStatementResponse out;
    ML_RETURN_IF_ERROR(CallWithRetry("GetStatement", token, kCallDeadline, [&](auto* ctx) {
      return lenders_->GetStatement(ctx, req, &out);
    }));
    for (const lv1::StatementRow& row : out.rows()) {
      ML_ASSIGN_OR_RETURN(int64_t cents, MinorUnits(row.amount()));
      by_code[row.code()] += cents;
      if (row.code() == lv1::TRANSFER_CODE_LOAN_SHARE) ++shares;
    }
    if (out.page().next_page_token().empty()) break;
    req.mutable_page()->set_page_token(out.page().next_page_token());
  }
  lv1::GetBalanceRequest balance_req;
  balance_req.mutable_lender_id()->set_value(absl::StrCat(plan.id));
  lv1::GetBalanceResponse balance;
  ML_RETURN_IF_ERROR(CallWithRetry("GetBalance", token, kCallDeadline, [&](auto* ctx) {
    return lenders_->GetBalance(ctx, balance_req, &balance);
  }));
  ML_ASSIGN_OR_RETURN(int64_t posted, MinorUnits(balance.balance().posted()));
  ML_ASSIGN_OR_RETURN(int64_t available, MinorUnits(balance.balance().available()));
  std::printf(
      "  lender %lld (%s, %s): deposited %s, lent %s in %lld shares, repaid %s, refunded "
      "%s, donated %s; wallet %s USD (available %s)\n",
      static_cast<long long>(plan.id), why.c_str(),
      plan.uses_basket ? "lends through a basket" : "lends at once",
      Dollars(by_code[lv1::TRANSFER_CODE_DEPOSIT]).c_str(),
      Dollars(by_code[lv1::TRANSFER_CODE_LOAN_SHARE]).c_str(), static_cast<long long>(shares),
      Dollars(by_code[lv1::TRANSFER_CODE_REPAYMENT]).c_str(),
      Dollars(by_code[lv1::TRANSFER_CODE_REFUND]).c_str(),
      Dollars(by_code[lv1::TRANSFER_CODE_DONATION]).c_str(), Dollars(posted).c_str(),
      Dollars(available).c_str());
  return absl::OkStatus();
}

}  // namespace microlend::demo
