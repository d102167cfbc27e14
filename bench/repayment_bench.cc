// Repayment distribution through the real lending server on a private PostgreSQL (fsync and
// synchronous_commit on): one loan funded by --lenders lenders in $25 shares, disbursed, the
// database vacuumed and analyzed (as pgbench does before its run), then
//   repayment_10k_lenders_ms           one PostRepayment split to every lender, committed
//                                      (median of --repeats, each started once the outbox relay
//                                      has published every earlier event; the name keeps the
//                                      issue's figure even when --lenders is smaller, see
//                                      lenders_per_repayment)
//   repayment_10k_lenders_back_to_back_ms  the same, each sent as soon as the last returned, so
//                                      while the relay publishes the last one's events
//   lenders_per_repayment              lender wallets credited by each of those repayments
//   bulk_repayment_lender_credits_per_s  PostBulkRepayments of --bulk_items items on that loan:
//                                      lender credits committed per second
//   partner_bulk_loans_ms              what a field partner's monthly upload costs: one
//                                      PostBulkRepayments of one repayment for each of
//                                      --bulk_loans loans of --lenders_per_loan lenders each
//                                      (median of --repeats, each once the relay has drained)
//   partner_bulk_lender_credits_per_s  lender credits per second in those calls
//   pgbench_tpcb_tps, repayment_credits_vs_pgbench_ratio   baseline on the same PostgreSQL
// Flags: --lenders=N (10000), --repeats=N (5), --bulk_items=N (20), --clients=N (16),
// --bulk_loans=N (300, the most one call takes), --lenders_per_loan=N (25).
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "harness/local_stack.h"
#include "harness/rpc.h"
#include "microlend/lending/v1/lending.grpc.pb.h"

namespace microlend::testing {
namespace {

namespace lv1 = ::microlend::lending::v1;
namespace cv1 = ::microlend::common::v1;

struct Config {
  int lenders = 10'000;
  int repeats = 5;
  int bulk_items = 20;
  int clients = 16;
  int bulk_loans = 300;
  int lenders_per_loan = 25;
};

Config ParseArgs(int argc, char** argv) {
  Config c;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    auto value = [&](std::string_view name, int* out) {
      if (a.substr(0, name.size()) == name) *out = std::atoi(std::string(a.substr(name.size())).c_str());
    };
    value("--lenders=", &c.lenders);
    value("--repeats=", &c.repeats);
    value("--bulk_items=", &c.bulk_items);
    value("--clients=", &c.clients);
    value("--bulk_loans=", &c.bulk_loans);
    value("--lenders_per_loan=", &c.lenders_per_loan);
  }
  return c;
}

std::unique_ptr<LocalStack>* g_stack = nullptr;

void Die(const std::string& what) {
  std::fprintf(stderr, "repayment_bench: %s\n", what.c_str());
  if (g_stack != nullptr) g_stack->reset();
  std::exit(1);
}

void Check(const grpc::Status& s, const std::string& what) {
  if (!s.ok()) Die(absl::StrCat(what, ": ", s.error_message()));
}

void SetToday(cv1::CivilDate* out) {
  const absl::CivilDay today = absl::ToCivilDay(absl::Now(), absl::UTCTimeZone());
  out->set_year(static_cast<int32_t>(today.year()));
  out->set_month(today.month());
  out->set_day(today.day());
}

struct Partner {
  std::string id;
  std::string token;
};

Partner CreatePartner(LocalStack& stack, const std::string& ops) {
  auto partners = lv1::PartnerService::NewStub(Channel(stack.Address(Server::kLending)));
  lv1::CreatePartnerRequest p;
  p.set_request_id("bench-partner");
  p.set_name("Bench MFI");
  p.add_countries("KE");
  p.set_risk_rating_half_stars(6);
  *p.mutable_credit_limit() = M("100000000.00");
  lv1::CreatePartnerResponse partner;
  Check(partners->CreatePartner(Ctx(ops).get(), p, &partner), "create partner");
  return {partner.partner().id().value(),
          stack.Token(Role::kPartner, partner.partner().id().value())};
}

// A FUNDRAISING loan of `lenders` x $25 (KES at 100), 12 monthly installments.
cv1::LoanId ApprovedLoan(lv1::LoanService::Stub& loans, const Partner& partner,
                         const std::string& ops, const std::string& tag, int lenders) {
  lv1::CreateLoanDraftRequest draft;
  draft.set_request_id(absl::StrCat("bench-loan-", tag));
  lv1::LoanDetails* d = draft.mutable_details();
  lv1::Borrower* b = d->add_borrowers();
  b->set_name("Cooperative");
  b->set_gender(cv1::GENDER_FEMALE);
  d->set_name("Cooperative");
  d->set_story("A cooperative loan for the benchmark.");
  d->set_use("equipment");
  d->set_sector(cv1::SECTOR_AGRICULTURE);
  d->set_country("KE");
  *d->mutable_local_amount() = M(absl::StrCat(lenders * 2'500, ".00"), "KES");
  d->set_posting_fx_rate("100");
  d->set_term_months(12);
  d->set_repayment_interval(lv1::REPAYMENT_INTERVAL_MONTHLY);
  lv1::CreateLoanDraftResponse created;
  Check(loans.CreateLoanDraft(Ctx(partner.token).get(), draft, &created), "create loan");
  lv1::SubmitLoanForReviewRequest submit;
  submit.set_request_id(absl::StrCat("bench-submit-", tag));
  *submit.mutable_loan_id() = created.loan().id();
  lv1::SubmitLoanForReviewResponse submitted;
  Check(loans.SubmitLoanForReview(Ctx(partner.token).get(), submit, &submitted), "submit");
  lv1::ReviewLoanRequest review;
  review.set_request_id(absl::StrCat("bench-review-", tag));
  *review.mutable_loan_id() = created.loan().id();
  review.set_decision(lv1::REVIEW_DECISION_APPROVE);
  lv1::ReviewLoanResponse reviewed;
  Check(loans.ReviewLoan(Ctx(ops).get(), review, &reviewed), "approve");
  return created.loan().id();
}

// Lenders first_lender ... first_lender + count - 1 each deposit $25 and lend it to
// loans[i / per_loan], from --clients threads.
void LendShares(LocalStack& stack, const Config& c, const std::vector<cv1::LoanId>& loans,
                int first_lender, int count, int per_loan) {
  auto ch = Channel(stack.Address(Server::kLending));
  const std::string svc = stack.Token(Role::kService, "bench");
  std::atomic<int> next{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < c.clients; ++t) {
    threads.emplace_back([&] {
      auto lenders = lv1::LenderService::NewStub(ch);
      auto baskets = lv1::BasketService::NewStub(ch);
      for (int i = next++; i < count; i = next++) {
        const int lender = first_lender + i;
        lv1::DepositRequest dep;
        dep.set_request_id(absl::StrCat("bench-dep-", lender));
        dep.mutable_lender_id()->set_value(std::to_string(lender));
        *dep.mutable_amount() = M("25.00");
        dep.set_external_payment_id(absl::StrCat("bench-card-", lender));
        lv1::DepositResponse deposited;
        Check(lenders->Deposit(Ctx(svc).get(), dep, &deposited), "deposit");
        lv1::LendNowRequest lend;
        lend.set_request_id(absl::StrCat("bench-lend-", lender));
        lend.mutable_lender_id()->set_value(std::to_string(lender));
        *lend.mutable_loan_id() = loans[static_cast<size_t>(i / per_loan)];
        *lend.mutable_amount() = M("25.00");
        lv1::LendNowResponse lent;
        Check(baskets->LendNow(Ctx(svc).get(), lend, &lent), "lend");
      }
    });
  }
  for (auto& t : threads) t.join();
}

void Disburse(lv1::LoanService::Stub& loans, const Partner& partner, const cv1::LoanId& loan,
              const std::string& tag, int lenders) {
  lv1::ReportDisbursementRequest disburse;
  disburse.set_request_id(absl::StrCat("bench-disburse-", tag));
  *disburse.mutable_loan_id() = loan;
  SetToday(disburse.mutable_disbursed_on());
  *disburse.mutable_local_amount() = M(absl::StrCat(lenders * 2'500, ".00"), "KES");
  lv1::ReportDisbursementResponse disbursed;
  Check(loans.ReportDisbursement(Ctx(partner.token).get(), disburse, &disbursed), "disburse");
}

// The loans, disbursed: the big one (--lenders lenders, ids from 100,000) first, then
// --bulk_loans small ones (--lenders_per_loan each, lender ids from 1,000,000).
std::vector<cv1::LoanId> FundedLoans(LocalStack& stack, const Config& c, const Partner& partner,
                                     const std::string& ops) {
  auto loans = lv1::LoanService::NewStub(Channel(stack.Address(Server::kLending)));
  std::vector<cv1::LoanId> all = {ApprovedLoan(*loans, partner, ops, "big", c.lenders)};
  LendShares(stack, c, all, 100'000, c.lenders, c.lenders);
  Disburse(*loans, partner, all[0], "big", c.lenders);
  std::vector<cv1::LoanId> small;
  for (int i = 0; i < c.bulk_loans; ++i) {
    small.push_back(
        ApprovedLoan(*loans, partner, ops, absl::StrCat("small-", i), c.lenders_per_loan));
  }
  LendShares(stack, c, small, 1'000'000, c.bulk_loans * c.lenders_per_loan, c.lenders_per_loan);
  for (int i = 0; i < c.bulk_loans; ++i) {
    Disburse(*loans, partner, small[static_cast<size_t>(i)], absl::StrCat("small-", i),
             c.lenders_per_loan);
  }
  all.insert(all.end(), small.begin(), small.end());
  return all;
}

void AddItem(lv1::PostBulkRepaymentsRequest& request, const cv1::LoanId& loan,
             const std::string& kes) {
  lv1::BulkRepaymentItem* item = request.add_items();
  *item->mutable_loan_id() = loan;
  *item->mutable_local_amount() = M(kes, "KES");
  item->set_settlement_fx_rate("100");
  SetToday(item->mutable_repaid_on());
}

struct BulkOutcome {
  absl::Duration took;
  int64_t credits = 0;  // lender wallets credited, over every item
};

// Posts `request` and times it; any failed item ends the benchmark.
BulkOutcome PostBulk(lv1::LoanService::Stub& loans, const std::string& partner_token,
                     const lv1::PostBulkRepaymentsRequest& request) {
  lv1::PostBulkRepaymentsResponse out;
  const absl::Time start = absl::Now();
  Check(loans.PostBulkRepayments(Ctx(partner_token).get(), request, &out), request.request_id());
  BulkOutcome outcome{.took = absl::Now() - start};
  for (const auto& result : out.results()) {
    if (result.status().code() != 0) {
      Die(absl::StrCat(request.request_id(), " item failed: ", result.status().message()));
    }
    outcome.credits += result.repayment().credited_account_count();
  }
  return outcome;
}

// As pgbench (and ledger_bench) do before measuring: the database the repayments meet has its
// statistics and visibility map up to date, as autovacuum keeps a live one, not the statistics of
// the empty tables the setup started from a minute ago (with those, the planner scanned 10,000
// accounts to update one).
void Vacuum(LocalStack& stack) {
  std::string cmd = absl::StrCat("psql '", stack.pg_url(), "' -qc 'VACUUM ANALYZE' >/dev/null 2>&1");
  if (std::system(cmd.c_str()) != 0) Die("VACUUM failed");
}

// pgbench TPC-B on the same PostgreSQL for --seconds 5 (the same way as ledger_bench).
double PgbenchTps(LocalStack& stack) {
  std::string port = stack.pg_url().substr(stack.pg_url().find("port=") + 5);
  port = port.substr(0, port.find(' '));
  const std::string base = absl::StrCat("pgbench -h 127.0.0.1 -p ", port, " -U microlend ");
  const std::string init = absl::StrCat(
      "psql -h 127.0.0.1 -p ", port,
      " -U microlend -d postgres -qc 'CREATE DATABASE pgbench' >/dev/null 2>&1; ", base,
      "-i -q -s 10 pgbench >/dev/null 2>&1");
  if (std::system(init.c_str()) != 0) Die("pgbench -i failed");
  FILE* out = popen(absl::StrCat(base, "-c 8 -j 2 -T 5 pgbench 2>/dev/null").c_str(), "r");
  if (out == nullptr) Die("pgbench failed to start");
  char line[512];
  double tps = 0;
  while (std::fgets(line, sizeof line, out) != nullptr) {
    std::string_view l = line;
    if (l.substr(0, 6) == "tps = ") tps = std::atof(line + 6);
  }
  pclose(out);
  if (tps <= 0) Die("could not read pgbench tps");
  return tps;
}

int Run(const Config& c) {
  absl::StatusOr<std::unique_ptr<LocalStack>> started = LocalStack::Start();
  if (!started.ok()) Die(std::string(started.status().message()));
  std::unique_ptr<LocalStack> stack = *std::move(started);
  g_stack = &stack;
  const std::string ops = stack->Token(Role::kOps, "bench-ops");
  const Partner partner = CreatePartner(*stack, ops);
  const std::string& partner_token = partner.token;
  const std::vector<cv1::LoanId> funded = FundedLoans(*stack, c, partner, ops);
  const cv1::LoanId& loan_id = funded[0];
  Vacuum(*stack);
  auto loans = lv1::LoanService::NewStub(Channel(stack->Address(Server::kLending)));
  // Each repayment: $1.00 per 10 lenders' worth (10 cents a lender), so every lender is credited.
  const int64_t usd_cents = std::max(c.lenders * 10, 100);
  const std::string kes = absl::StrCat(usd_cents, ".00");  // 100 KES per USD: cents -> KES
  // Each repayment: returns its latency; `tag` keeps request ids unique.
  int32_t credited = 0;
  auto repay = [&](const std::string& tag) {
    lv1::PostRepaymentRequest req;
    req.set_request_id(absl::StrCat("bench-repay-", tag));
    *req.mutable_loan_id() = loan_id;
    *req.mutable_local_amount() = M(kes, "KES");
    req.set_settlement_fx_rate("100");
    SetToday(req.mutable_repaid_on());
    lv1::PostRepaymentResponse out;
    const absl::Time start = absl::Now();
    Check(loans->PostRepayment(Ctx(partner_token).get(), req, &out), "repay");
    const double elapsed_ms = absl::ToDoubleMilliseconds(absl::Now() - start);
    credited = out.repayment().credited_account_count();
    return elapsed_ms;
  };
  auto drained = [&]() {
    if (absl::Status s = stack->WaitForOutboxDrained(absl::Minutes(5)); !s.ok()) {
      Die(std::string(s.message()));
    }
  };
  // One repayment at a time, each once the previous one's events are published: the latency of
  // one repayment, not of one competing with the relay's work for the last.
  std::vector<double> ms;
  for (int r = 0; r < c.repeats; ++r) {
    drained();
    ms.push_back(repay(absl::StrCat(r)));
  }
  // Back to back: each while the relay publishes the previous one's events.
  std::vector<double> back_to_back_ms;
  drained();
  for (int r = 0; r < c.repeats; ++r) back_to_back_ms.push_back(repay(absl::StrCat("b", r)));
  std::sort(back_to_back_ms.begin(), back_to_back_ms.end());
  drained();
  std::sort(ms.begin(), ms.end());
  lv1::PostBulkRepaymentsRequest bulk;
  bulk.set_request_id("bench-bulk");
  for (int i = 0; i < c.bulk_items; ++i) AddItem(bulk, loan_id, kes);
  const BulkOutcome one_loan = PostBulk(*loans, partner_token, bulk);
  const double credits_per_s = one_loan.credits / absl::ToDoubleSeconds(one_loan.took);
  // A partner's month: one repayment for each small loan (1/12 of it), in one call.
  std::vector<double> partner_ms;
  int64_t partner_credits = 0;
  double partner_s = 0;
  for (int r = 0; r < c.repeats && c.bulk_loans > 0; ++r) {
    drained();
    lv1::PostBulkRepaymentsRequest month;
    month.set_request_id(absl::StrCat("bench-partner-month-", r));
    const std::string installment = absl::StrCat(c.lenders_per_loan * 2'500 / 12, ".00");
    for (int i = 0; i < c.bulk_loans; ++i) {
      AddItem(month, funded[static_cast<size_t>(1 + i)], installment);
    }
    const BulkOutcome outcome = PostBulk(*loans, partner_token, month);
    partner_ms.push_back(absl::ToDoubleMilliseconds(outcome.took));
    partner_s += absl::ToDoubleSeconds(outcome.took);
    partner_credits += outcome.credits;
  }
  std::sort(partner_ms.begin(), partner_ms.end());
  const double tps = PgbenchTps(*stack);
  std::printf("repayment_10k_lenders_ms %.1f\n", ms[ms.size() / 2]);
  std::printf("repayment_10k_lenders_back_to_back_ms %.1f\n",
              back_to_back_ms[back_to_back_ms.size() / 2]);
  std::printf("lenders_per_repayment %d\n", credited);
  std::printf("bulk_repayment_lender_credits_per_s %.0f\n", credits_per_s);
  if (!partner_ms.empty()) {
    std::printf("partner_bulk_loans %d\n", c.bulk_loans);
    std::printf("partner_bulk_loans_ms %.1f\n", partner_ms[partner_ms.size() / 2]);
    std::printf("partner_bulk_lender_credits_per_s %.0f\n", partner_credits / partner_s);
  }
  std::printf("pgbench_tpcb_tps %.0f\n", tps);
  std::printf("repayment_credits_vs_pgbench_ratio %.1f\n", tps > 0 ? credits_per_s / tps : 0.0);
  g_stack = nullptr;
  return 0;
}

}  // namespace
}  // namespace microlend::testing

int main(int argc, char** argv) {
  return microlend::testing::Run(microlend::testing::ParseArgs(argc, argv));
}
