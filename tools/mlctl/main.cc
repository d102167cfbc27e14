// mlctl: the microlend command-line client for local use, scripts and the demo.
//   mlctl token  --role ops --subject ops-1 [--ttl_hours 24]   print a signed bearer token
//   mlctl health --target 127.0.0.1:50051 [--service NAME]     exit 0 when SERVING
//   mlctl wait   --targets a,b,c [--timeout_s 60]              wait until all are SERVING
//   mlctl whoami --target ... --token ...                      the principal behind a token
//   mlctl status --target ... --token ...                      ServerAdmin.GetServerStatus
//   mlctl demo   [--lending ...] [--matching ...] [--notify ...]
// The token secret comes from --auth_secret or MICROLEND_AUTH_SECRET, like the servers.
#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include <cstdio>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/auth.h"
#include "common/config.h"
#include "microlend/common/v1/common.grpc.pb.h"
#include "microlend/lending/v1/lending.grpc.pb.h"
#include "mlctl/demo_rpc.h"
#include "mlctl/marketplace_walk.h"
#include "common/strings.h"
#include "server/bootstrap.h"
#include "server/grpc_status.h"
#include "server/health_client.h"

namespace microlend {
namespace {

namespace cv1 = ::microlend::common::v1;
namespace lv1 = ::microlend::lending::v1;

FlagSet MakeFlags() {
  return FlagSet(
      "mlctl <token|health|wait|whoami|status|demo>",
      {{"auth_secret", "MICROLEND_AUTH_SECRET", std::string(kDevAuthSecret), "token secret"},
       {"role", "", "ops", "token role: lender, partner, ops, service"},
       {"subject", "", "ops-1", "token subject (lender or partner id for those roles)"},
       {"ttl_hours", "", "24", "token lifetime"},
       {"target", "", "127.0.0.1:50051", "server address"},
       {"targets", "", "127.0.0.1:50051,127.0.0.1:50052,127.0.0.1:50053", "addresses to wait for"},
       {"service", "", "", "service name for health (empty: whole server)"},
       {"timeout_s", "", "60", "how long wait may take"},
       {"token", "MICROLEND_TOKEN", "", "bearer token for whoami/status"},
       {"lending", "MICROLEND_LENDING_ADDR", "127.0.0.1:50051", "lending address"},
       {"matching", "MICROLEND_MATCHING_ADDR", "127.0.0.1:50052", "matching address"},
       {"notify", "MICROLEND_NOTIFY_ADDR", "127.0.0.1:50053", "notify address"}});
}

absl::StatusOr<std::string> MintToken(const FlagSet& flags, Role role, const std::string& subject) {
  absl::StatusOr<TokenSigner> signer = TokenSigner::Create(flags.GetString("auth_secret"));
  if (!signer.ok()) return signer.status();
  absl::StatusOr<int64_t> ttl = flags.GetInt("ttl_hours");
  if (!ttl.ok()) return ttl.status();
  return signer->Mint({subject, role}, absl::Now(), absl::Hours(*ttl));
}

std::unique_ptr<cv1::ServerAdmin::Stub> AdminStub(const std::string& target) {
  return cv1::ServerAdmin::NewStub(grpc::CreateChannel(target, grpc::InsecureChannelCredentials()));
}

void Authorize(grpc::ClientContext* ctx, const std::string& token) {
  ctx->AddMetadata("authorization", absl::StrCat("Bearer ", token));
  ctx->set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
}

absl::StatusOr<cv1::GetServerStatusResponse> Status(const std::string& target,
                                                    const std::string& token) {
  grpc::ClientContext ctx;
  Authorize(&ctx, token);
  cv1::GetServerStatusResponse response;
  grpc::Status s = AdminStub(target)->GetServerStatus(&ctx, {}, &response);
  if (!s.ok()) return FromGrpcStatus(s);
  return response;
}

void PrintStatus(const std::string& target, const cv1::GetServerStatusResponse& r) {
  std::printf("%-9s %-16s version %s, %d migrations applied\n", r.service().c_str(),
              target.c_str(), r.version().c_str(), r.migrations_size());
  for (const auto& d : r.dependencies()) {
    std::printf("          depends on %-10s %-28s %s\n", d.name().c_str(), d.endpoint().c_str(),
                d.reachable() ? "reachable" : d.detail().c_str());
  }
}

absl::Status WhoAmI(const std::string& target, const std::string& token) {
  grpc::ClientContext ctx;
  Authorize(&ctx, token);
  cv1::WhoAmIResponse response;
  grpc::Status s = AdminStub(target)->WhoAmI(&ctx, {}, &response);
  if (!s.ok()) return FromGrpcStatus(s);
  std::fflush(stdout);
  std::printf("subject=%s role=%s\n", response.principal().subject().c_str(),
              cv1::Role_Name(response.principal().role()).c_str());
  return absl::OkStatus();
}

using demo::Check;

// A short walk through the ledger as a payment processor, a lender and ops would use it.
absl::Status LedgerWalk(const FlagSet& flags) {
  const std::string lender_id = "1";
  absl::StatusOr<std::string> svc = MintToken(flags, Role::kService, "payments-demo");
  absl::StatusOr<std::string> lender = MintToken(flags, Role::kLender, lender_id);
  if (!svc.ok()) return svc.status();
  if (!lender.ok()) return lender.status();
  auto channel = grpc::CreateChannel(flags.GetString("lending"), grpc::InsecureChannelCredentials());
  auto wallets = lv1::LenderService::NewStub(channel);
  const std::string run = absl::StrCat(absl::ToUnixMicros(absl::Now()));

  lv1::DepositRequest dep;
  dep.set_request_id(absl::StrCat("demo-deposit-", run));
  dep.mutable_lender_id()->set_value(lender_id);
  dep.mutable_amount()->set_amount("100.00");
  dep.mutable_amount()->set_currency("USD");
  dep.set_external_payment_id(absl::StrCat("demo-card-", run));
  lv1::DepositResponse deposited;
  grpc::ClientContext c1;
  Authorize(&c1, *svc);
  if (absl::Status s = Check(wallets->Deposit(&c1, dep, &deposited), "deposit"); !s.ok()) return s;
  grpc::ClientContext c1b;  // the processor retries: the same request is a replay, not a credit
  Authorize(&c1b, *svc);
  lv1::DepositResponse again;
  if (absl::Status s = Check(wallets->Deposit(&c1b, dep, &again), "deposit retry"); !s.ok()) return s;
  std::printf("lender %s deposited 100.00 USD (transfer %s); retry replayed=%s\n",
              lender_id.c_str(), deposited.transfer().id().value().c_str(),
              again.mutation().replayed() ? "true" : "false");

  lv1::DonateRequest donate;
  donate.set_request_id(absl::StrCat("demo-donate-", run));
  donate.mutable_lender_id()->set_value(lender_id);
  donate.mutable_amount()->set_amount("5.00");
  donate.mutable_amount()->set_currency("USD");
  lv1::DonateResponse donated;
  grpc::ClientContext c2;
  Authorize(&c2, *lender);
  if (absl::Status s = Check(wallets->Donate(&c2, donate, &donated), "donate"); !s.ok()) return s;

  lv1::RequestWithdrawalRequest wd;
  wd.set_request_id(absl::StrCat("demo-withdraw-", run));
  wd.mutable_lender_id()->set_value(lender_id);
  wd.mutable_amount()->set_amount("20.00");
  wd.mutable_amount()->set_currency("USD");
  wd.set_destination("demo bank account");
  lv1::RequestWithdrawalResponse requested;
  grpc::ClientContext c3;
  Authorize(&c3, *lender);
  if (absl::Status s = Check(wallets->RequestWithdrawal(&c3, wd, &requested), "withdrawal");
      !s.ok()) {
    return s;
  }

  lv1::GetBalanceRequest bal;
  bal.mutable_lender_id()->set_value(lender_id);
  lv1::GetBalanceResponse balance;
  grpc::ClientContext c4;
  Authorize(&c4, *lender);
  if (absl::Status s = Check(wallets->GetBalance(&c4, bal, &balance), "balance"); !s.ok()) return s;
  std::printf("lender %s donated 5.00 and asked to withdraw 20.00: posted %s, held %s, available %s\n",
              lender_id.c_str(), balance.balance().posted().amount().c_str(),
              balance.balance().held().amount().c_str(),
              balance.balance().available().amount().c_str());
  return absl::OkStatus();
}

bool OnlyLateEvents(const lv1::ReconcileReport& report) {
  for (const lv1::Discrepancy& d : report.discrepancies()) {
    if (d.kind() != lv1::DISCREPANCY_KIND_OUTBOX_UNPUBLISHED) return false;
  }
  return !report.discrepancies_truncated();
}

// Ops reconcile every invariant of the ledger. Events the relay has not published yet are waited
// for (a bounded number of times); any other discrepancy fails the demo at once.
absl::Status Reconcile(const FlagSet& flags, const std::string& ops) {
  auto ledger = lv1::LedgerService::NewStub(
      grpc::CreateChannel(flags.GetString("lending"), grpc::InsecureChannelCredentials()));
  lv1::ReconcileResponse rec;
  for (int attempt = 1;; ++attempt) {
    grpc::ClientContext ctx;
    Authorize(&ctx, ops);
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(120)));
    if (absl::Status s = demo::Check(ledger->Reconcile(&ctx, {}, &rec), "reconcile"); !s.ok()) {
      return s;
    }
    if (rec.report().clean() || !OnlyLateEvents(rec.report()) || attempt == 30) break;
    absl::SleepFor(absl::Seconds(1));
  }
  std::printf("reconciliation: %s (%lld accounts and %lld transfers checked in %lld ms)\n",
              rec.report().clean() ? "clean" : "DISCREPANCIES",
              static_cast<long long>(rec.report().accounts_checked()),
              static_cast<long long>(rec.report().transfers_checked()),
              static_cast<long long>(rec.report().duration_ms()));
  if (!rec.report().clean()) return absl::DataLossError(rec.report().DebugString());
  return absl::OkStatus();
}

struct DemoPartner {
  const char* name;
  std::vector<const char*> countries;
  int rating_half_stars;
};

struct DemoLoan {
  int partner;  // index into kDemoPartners
  const char* borrower;
  cv1::Gender gender;
  cv1::Sector sector;
  const char* country;
  const char* use;
  const char* amount;
  const char* currency;
  const char* fx_rate;  // local units per USD
  int term_months;
  lv1::RepaymentInterval interval;
};

const DemoPartner kDemoPartners[] = {
    {"Juhudi Microfinance (demo)", {"KE", "UG"}, 7},
    {"Bayanihan Credit (demo)", {"PH"}, 8},
    {"Andes Solidarity Fund (demo)", {"PE", "BO"}, 6},
};

const DemoLoan kDemoLoans[] = {
    {0, "Amina", cv1::GENDER_FEMALE, cv1::SECTOR_FOOD, "KE", "to buy a vegetable cart", "64750",
     "KES", "129.5", 12, lv1::REPAYMENT_INTERVAL_MONTHLY},
    {0, "Joseph", cv1::GENDER_MALE, cv1::SECTOR_AGRICULTURE, "UG", "to buy seed and fertiliser",
     "3700000", "UGX", "3700", 8, lv1::REPAYMENT_INTERVAL_MONTHLY},
    {0, "Grace", cv1::GENDER_FEMALE, cv1::SECTOR_RETAIL, "KE", "to stock a kiosk", "38850", "KES",
     "129.5", 6, lv1::REPAYMENT_INTERVAL_WEEKLY},
    {1, "Maricel", cv1::GENDER_FEMALE, cv1::SECTOR_CLOTHING, "PH", "to buy a sewing machine",
     "29100", "PHP", "58.2", 10, lv1::REPAYMENT_INTERVAL_MONTHLY},
    {1, "Rodel", cv1::GENDER_MALE, cv1::SECTOR_TRANSPORTATION, "PH", "to repair a tricycle",
     "46560", "PHP", "58.2", 14, lv1::REPAYMENT_INTERVAL_MONTHLY},
    {2, "Rosa", cv1::GENDER_FEMALE, cv1::SECTOR_ARTS, "PE", "to buy alpaca wool", "2812.50", "PEN",
     "3.75", 9, lv1::REPAYMENT_INTERVAL_MONTHLY},
    {2, "Evo", cv1::GENDER_MALE, cv1::SECTOR_AGRICULTURE, "BO", "to plant quinoa", "6910", "BOB",
     "6.91", 12, lv1::REPAYMENT_INTERVAL_BULLET},
};

std::unique_ptr<grpc::ClientContext> DemoCtx(const std::string& token) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  Authorize(ctx.get(), token);
  return ctx;
}

// Ops opens the demo partners (fixed request ids: a second run replays, it never duplicates).
absl::StatusOr<std::vector<std::string>> SeedPartners(lv1::PartnerService::Stub& partners,
                                                      const std::string& ops) {
  std::vector<std::string> ids;
  for (size_t i = 0; i < std::size(kDemoPartners); ++i) {
    lv1::CreatePartnerRequest req;
    req.set_request_id(absl::StrCat("demo-partner-", i));
    req.set_name(kDemoPartners[i].name);
    for (const char* c : kDemoPartners[i].countries) req.add_countries(c);
    req.set_risk_rating_half_stars(kDemoPartners[i].rating_half_stars);
    req.mutable_credit_limit()->set_amount("250000.00");
    req.mutable_credit_limit()->set_currency("USD");
    lv1::CreatePartnerResponse out;
    if (absl::Status s = Check(partners.CreatePartner(DemoCtx(ops).get(), req, &out), "partner");
        !s.ok()) {
      return s;
    }
    ids.push_back(out.partner().id().value());
  }
  return ids;
}

// Each partner posts its loans, submits them, and ops approves them into fundraising.
absl::Status SeedLoans(const FlagSet& flags, lv1::LoanService::Stub& loans, const std::string& ops,
                       const std::vector<std::string>& partner_ids) {
  for (size_t i = 0; i < std::size(kDemoLoans); ++i) {
    const DemoLoan& l = kDemoLoans[i];
    absl::StatusOr<std::string> partner = MintToken(flags, Role::kPartner, partner_ids[l.partner]);
    if (!partner.ok()) return partner.status();
    lv1::CreateLoanDraftRequest create;
    create.set_request_id(absl::StrCat("demo-loan-", i));
    lv1::LoanDetails* d = create.mutable_details();
    lv1::Borrower* b = d->add_borrowers();
    b->set_name(l.borrower);
    b->set_gender(l.gender);
    d->set_name(l.borrower);
    d->set_story(absl::StrCat(l.borrower, " runs a small business and borrows ", l.use, "."));
    d->set_use(l.use);
    d->set_sector(l.sector);
    d->set_country(l.country);
    d->mutable_local_amount()->set_amount(l.amount);
    d->mutable_local_amount()->set_currency(l.currency);
    d->set_posting_fx_rate(l.fx_rate);
    d->set_term_months(l.term_months);
    d->set_repayment_interval(l.interval);
    lv1::CreateLoanDraftResponse draft;
    if (absl::Status s = Check(loans.CreateLoanDraft(DemoCtx(*partner).get(), create, &draft),
                               "loan draft");
        !s.ok()) {
      return s;
    }
    lv1::SubmitLoanForReviewRequest submit;
    submit.set_request_id(absl::StrCat("demo-submit-", i));
    *submit.mutable_loan_id() = draft.loan().id();
    lv1::SubmitLoanForReviewResponse submitted;
    if (absl::Status s = Check(loans.SubmitLoanForReview(DemoCtx(*partner).get(), submit,
                                                         &submitted), "submit");
        !s.ok()) {
      return s;
    }
    lv1::ReviewLoanRequest review;
    review.set_request_id(absl::StrCat("demo-review-", i));
    *review.mutable_loan_id() = draft.loan().id();
    review.set_decision(lv1::REVIEW_DECISION_APPROVE);
    lv1::ReviewLoanResponse reviewed;
    if (absl::Status s = Check(loans.ReviewLoan(DemoCtx(ops).get(), review, &reviewed), "review");
        !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

// Partners post loans, ops approves them, and a lender browses the catalogue.
absl::Status CatalogueWalk(const FlagSet& flags, const std::string& ops) {
  auto channel = grpc::CreateChannel(flags.GetString("lending"), grpc::InsecureChannelCredentials());
  auto partners = lv1::PartnerService::NewStub(channel);
  auto loans = lv1::LoanService::NewStub(channel);
  absl::StatusOr<std::vector<std::string>> partner_ids = SeedPartners(*partners, ops);
  if (!partner_ids.ok()) return partner_ids.status();
  if (absl::Status s = SeedLoans(flags, *loans, ops, *partner_ids); !s.ok()) return s;

  absl::StatusOr<std::string> lender = MintToken(flags, Role::kLender, "1");
  if (!lender.ok()) return lender.status();
  lv1::ListLoansRequest list;
  list.set_sort(lv1::LOAN_SORT_LOAN_AMOUNT_DESC);
  list.mutable_page()->set_page_size(5);
  list.mutable_filter()->add_statuses(lv1::LOAN_STATUS_FUNDRAISING);
  list.set_view(lv1::LOAN_VIEW_CARD);  // the summary shows no story or schedule
  lv1::ListLoansResponse page;
  if (absl::Status s = Check(loans->ListLoans(DemoCtx(*lender).get(), list, &page), "catalogue");
      !s.ok()) {
    return s;
  }
  // Counts are exact up to 1,000; beyond, the server reports a lower bound.
  std::printf("catalogue: %lld%s loans fundraising; the largest:\n",
              static_cast<long long>(page.page().total_count()),
              page.page().total_count_is_lower_bound() ? "+" : "");
  for (const lv1::Loan& loan : page.loans()) {
    std::printf("  loan %-4s %-8s %s  %12s %s = %8s USD, %8s USD left to fund\n",
                loan.id().value().c_str(), loan.details().name().c_str(),
                loan.details().country().c_str(),
                loan.details().local_amount().amount().c_str(),
                loan.details().local_amount().currency().c_str(),
                loan.usd_amount().amount().c_str(), loan.remaining_amount().amount().c_str());
  }
  return absl::OkStatus();
}

// Calls each service with minted tokens (WhoAmI as a lender, GetServerStatus as ops), runs the
// marketplace (marketplace_walk.h), seeds the catalogue, walks the ledger, prints the summary and
// reconciles; fails if anything fails or reconciliation is not clean. Safe to run again: every
// request has a fixed id (the ledger walk's are per run: it shows a retry replaying).
absl::Status Demo(const FlagSet& flags) {
  const absl::Time started = absl::Now();
  absl::StatusOr<std::string> ops = MintToken(flags, Role::kOps, "ops-demo");
  absl::StatusOr<std::string> lender = MintToken(flags, Role::kLender, "1");
  if (!ops.ok()) return ops.status();
  if (!lender.ok()) return lender.status();
  for (const char* name : {"lending", "matching", "notify"}) {
    const std::string& target = flags.GetString(name);
    if (absl::Status s = CheckHealth(target, "", absl::Seconds(5)); !s.ok()) return s;
    if (absl::Status s = WhoAmI(target, *lender); !s.ok()) return s;
    absl::StatusOr<cv1::GetServerStatusResponse> st = Status(target, *ops);
    if (!st.ok()) return st.status();
    PrintStatus(target, *st);
  }
  absl::StatusOr<TokenSigner> signer = TokenSigner::Create(flags.GetString("auth_secret"));
  if (!signer.ok()) return signer.status();
  demo::Tokens tokens(*std::move(signer));
  demo::MarketplaceWalk marketplace(
      grpc::CreateChannel(flags.GetString("lending"), grpc::InsecureChannelCredentials()), &tokens);
  if (absl::Status s = marketplace.Run(); !s.ok()) return s;
  // The seed catalogue is posted after the marketplace moved the clock, so it stays fundraising.
  if (absl::Status s = CatalogueWalk(flags, *ops); !s.ok()) return s;
  if (absl::Status s = LedgerWalk(flags); !s.ok()) return s;
  if (absl::Status s = marketplace.PrintSummary(); !s.ok()) return s;
  if (absl::Status s = Reconcile(flags, *ops); !s.ok()) return s;
  std::printf("demo: done in %.1fs\n", absl::ToDoubleSeconds(absl::Now() - started));
  return absl::OkStatus();
}

absl::Status Run(const std::string& command, const FlagSet& flags) {
  if (command == "token") {
    absl::StatusOr<Role> role = ParseRole(flags.GetString("role"));
    if (!role.ok()) return role.status();
    absl::StatusOr<std::string> token = MintToken(flags, *role, flags.GetString("subject"));
    if (!token.ok()) return token.status();
    std::printf("%s\n", token->c_str());
    return absl::OkStatus();
  }
  if (command == "health") {
    return CheckHealth(flags.GetString("target"), flags.GetString("service"), absl::Seconds(5));
  }
  if (command == "wait") {
    absl::StatusOr<int64_t> timeout = flags.GetInt("timeout_s");
    if (!timeout.ok()) return timeout.status();
    for (absl::string_view t : absl::StrSplit(flags.GetString("targets"), ',', absl::SkipEmpty())) {
      if (absl::Status s = WaitForServing(std::string(t), absl::Seconds(*timeout)); !s.ok()) return s;
    }
    return absl::OkStatus();
  }
  if (command == "whoami") return WhoAmI(flags.GetString("target"), flags.GetString("token"));
  if (command == "status") {
    absl::StatusOr<cv1::GetServerStatusResponse> st =
        Status(flags.GetString("target"), flags.GetString("token"));
    if (!st.ok()) return st.status();
    PrintStatus(flags.GetString("target"), *st);
    return absl::OkStatus();
  }
  if (command == "demo") return Demo(flags);
  return absl::InvalidArgumentError(absl::StrCat("unknown command \"", command, "\"\n", flags.Usage()));
}

}  // namespace
}  // namespace microlend

int main(int argc, char** argv) {
  microlend::FlagSet flags = microlend::MakeFlags();
  if (argc < 2 || std::string_view(argv[1]).substr(0, 1) == "-") {
    std::fprintf(stderr, "%s", flags.Usage().c_str());
    return 2;
  }
  microlend::ParseFlagsOrExit(flags, argc - 1, argv + 1);
  absl::Status status = microlend::Run(argv[1], flags);
  if (!status.ok()) {
    std::fprintf(stderr, "mlctl %s: %s\n", argv[1], status.ToString().c_str());
    return 1;
  }
  return 0;
}
