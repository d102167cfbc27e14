// Ledger throughput through the real lending server on a private PostgreSQL (fsync and
// synchronous_commit on), with pgbench's TPC-B on the same PostgreSQL as the baseline:
//   ledger_single_transfers_per_s    one transfer per CreateTransfers call, many clients
//   ledger_single_p50_ms / _p99_ms   latency of those calls
//   ledger_batched_transfers_per_s   StreamTransferBatches (group commit), batches in flight
//   ledger_batched_relay_drain_ms    after that phase, until the relay has published every event
//   pgbench_tpcb_tps                 pgbench -c 8 -j 2 on the same server
//   ledger_batched_vs_pgbench_ratio
// Flags: --seconds=N per phase (10), --clients=N (64), --accounts=N (1000), --batch=N (500),
// --only=single|batched|pgbench (all three; the ratio needs batched and pgbench).
// The database is vacuumed before the batched phase, as pgbench vacuums before its own run.
#include <cstdio>
#include <cstdlib>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "harness/local_stack.h"
#include "harness/rpc.h"
#include "microlend/lending/v1/lending.grpc.pb.h"

namespace microlend::testing {
namespace {

namespace lv1 = ::microlend::lending::v1;

struct Config {
  int seconds = 10;
  int clients = 64;
  int accounts = 1000;
  int batch = 500;
  std::string only;  // empty: every phase
  bool Runs(std::string_view phase) const { return only.empty() || only == phase; }
};

Config ParseArgs(int argc, char** argv) {
  Config c;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    auto value = [&](std::string_view name, int* out) {
      if (a.substr(0, name.size()) == name) *out = std::atoi(std::string(a.substr(name.size())).c_str());
    };
    value("--seconds=", &c.seconds);
    value("--clients=", &c.clients);
    value("--accounts=", &c.accounts);
    value("--batch=", &c.batch);
    if (a.substr(0, 7) == "--only=") c.only = std::string(a.substr(7));
  }
  return c;
}

// The running stack, so that a fatal error still stops its servers and databases.
std::unique_ptr<LocalStack>* g_stack = nullptr;

void Die(const std::string& what) {
  std::fprintf(stderr, "ledger_bench: %s\n", what.c_str());
  if (g_stack != nullptr) g_stack->reset();
  std::exit(1);
}

std::vector<std::string> OpenFundedWallets(LocalStack& stack, int n) {
  auto lenders = lv1::LenderService::NewStub(Channel(stack.Address(Server::kLending)));
  auto ledger = lv1::LedgerService::NewStub(Channel(stack.Address(Server::kLending)));
  std::string svc = stack.Token(Role::kService, "bench");
  std::vector<std::string> wallets;
  for (int i = 0; i < n; ++i) {
    lv1::DepositRequest dep;
    dep.set_request_id(absl::StrCat("bench-fund-", i));
    dep.mutable_lender_id()->set_value(std::to_string(1 + i));
    *dep.mutable_amount() = M("1000000.00");
    dep.set_external_payment_id(absl::StrCat("bench-card-", i));
    lv1::DepositResponse out;
    grpc::Status s = lenders->Deposit(Ctx(svc).get(), dep, &out);
    if (!s.ok()) Die("deposit: " + s.error_message());
    wallets.push_back(out.transfer().credit_account_id().value());
  }
  return wallets;
}

lv1::TransferSpec RandomTransfer(std::mt19937_64& rng, const std::vector<std::string>& wallets) {
  size_t a = rng() % wallets.size(), b = (a + 1 + rng() % (wallets.size() - 1)) % wallets.size();
  lv1::TransferSpec t;
  t.mutable_debit_account_id()->set_value(wallets[a]);
  t.mutable_credit_account_id()->set_value(wallets[b]);
  *t.mutable_amount() = M("0.01");
  t.set_code(lv1::TRANSFER_CODE_CORRECTION);
  return t;
}

void SingleTransfers(LocalStack& stack, const Config& c, const std::vector<std::string>& wallets) {
  std::string svc = stack.Token(Role::kService, "bench");
  absl::Mutex mu;
  std::vector<double> latencies_ms;
  absl::Time until = absl::Now() + absl::Seconds(c.seconds);
  std::vector<std::thread> threads;
  for (int t = 0; t < c.clients; ++t) {
    threads.emplace_back([&, t] {
      auto stub = lv1::LedgerService::NewStub(Channel(stack.Address(Server::kLending)));
      std::mt19937_64 rng(t);
      std::vector<double> mine;
      for (int i = 0; absl::Now() < until; ++i) {
        lv1::CreateTransfersRequest req;
        req.set_request_id(absl::StrCat("single-", t, "-", i));
        *req.add_transfers() = RandomTransfer(rng, wallets);
        lv1::CreateTransfersResponse out;
        absl::Time start = absl::Now();
        grpc::Status s = stub->CreateTransfers(Ctx(svc).get(), req, &out);
        while (s.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {  // back off, same id
          absl::SleepFor(absl::Milliseconds(5));
          s = stub->CreateTransfers(Ctx(svc).get(), req, &out);
        }
        if (!s.ok()) Die("single transfer: " + s.error_message());
        mine.push_back(absl::ToDoubleMilliseconds(absl::Now() - start));
      }
      absl::MutexLock lock(&mu);
      latencies_ms.insert(latencies_ms.end(), mine.begin(), mine.end());
    });
  }
  for (auto& th : threads) th.join();
  std::sort(latencies_ms.begin(), latencies_ms.end());
  auto pct = [&](double p) { return latencies_ms[static_cast<size_t>(p * (latencies_ms.size() - 1))]; };
  std::printf("ledger_single_transfers_per_s %.0f\n", latencies_ms.size() / double(c.seconds));
  std::printf("ledger_single_p50_ms %.2f\n", pct(0.50));
  std::printf("ledger_single_p99_ms %.2f\n", pct(0.99));
}

double BatchedTransfers(LocalStack& stack, const Config& c, const std::vector<std::string>& wallets) {
  constexpr int kStreams = 4, kInFlight = 32;
  std::string svc = stack.Token(Role::kService, "bench");
  std::atomic<int64_t> committed{0};
  absl::Time until = absl::Now() + absl::Seconds(c.seconds);
  std::vector<std::thread> threads;
  for (int s = 0; s < kStreams; ++s) {
    threads.emplace_back([&, s] {
      auto stub = lv1::LedgerService::NewStub(Channel(stack.Address(Server::kLending)));
      auto ctx = Ctx(svc, absl::Seconds(c.seconds + 120));
      auto stream = stub->StreamTransferBatches(ctx.get());
      std::mt19937_64 rng(100 + s);
      std::atomic<int> answered{0};
      std::thread reader([&] {
        lv1::TransferBatchResult result;
        while (stream->Read(&result)) {
          if (result.status().code() != 0) Die("batch: " + result.status().message());
          committed += result.transfer_ids_size();
          ++answered;
        }
      });
      int sent = 0;
      for (; absl::Now() < until; ++sent) {
        while (sent - answered.load() >= kInFlight && absl::Now() < until) {
          absl::SleepFor(absl::Microseconds(200));
        }
        lv1::TransferBatch batch;
        batch.set_request_id(absl::StrCat("batch-", s, "-", sent));
        batch.set_ids_only(true);  // as the matcher streams: ids back, not the transfers
        for (int i = 0; i < c.batch; ++i) *batch.add_transfers() = RandomTransfer(rng, wallets);
        if (!stream->Write(batch)) break;
      }
      stream->WritesDone();
      reader.join();
      grpc::Status st = stream->Finish();
      if (!st.ok()) Die("stream: " + st.error_message());
    });
  }
  absl::Time start = absl::Now();
  for (auto& th : threads) th.join();
  double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  double rate = committed.load() / seconds;
  std::printf("ledger_batched_transfers_per_s %.0f\n", rate);
  return rate;
}

// How long after the batched phase the outbox relay needs to publish every event to Redis: a
// throughput is sustainable only if the relay keeps up (a few hundred ms: one relay round).
void RelayDrain(LocalStack& stack) {
  const absl::Time start = absl::Now();
  if (absl::Status s = stack.WaitForOutboxDrained(absl::Minutes(5)); !s.ok()) {
    Die(std::string(s.message()));
  }
  std::printf("ledger_batched_relay_drain_ms %.0f\n", absl::ToDoubleMilliseconds(absl::Now() - start));
}

// As pgbench does before its run: each phase starts from a vacuumed database, not from the
// dead rows and pending autovacuum work the previous phase left.
void Vacuum(LocalStack& stack) {
  std::string cmd = absl::StrCat("psql '", stack.pg_url(), "' -qc 'VACUUM ANALYZE' >/dev/null 2>&1");
  if (std::system(cmd.c_str()) != 0) Die("VACUUM failed");
}

double PgbenchTps(LocalStack& stack, const Config& c) {
  std::string port = stack.pg_url().substr(stack.pg_url().find("port=") + 5);
  port = port.substr(0, port.find(' '));
  std::string base = absl::StrCat("pgbench -h 127.0.0.1 -p ", port, " -U microlend ");
  std::string init = absl::StrCat("psql -h 127.0.0.1 -p ", port,
                                  " -U microlend -d postgres -qc 'CREATE DATABASE pgbench' >/dev/null 2>&1; ",
                                  base, "-i -q -s 10 pgbench >/dev/null 2>&1");
  if (std::system(init.c_str()) != 0) Die("pgbench -i failed");
  std::string run = absl::StrCat(base, "-c 8 -j 2 -T ", c.seconds, " pgbench 2>/dev/null");
  FILE* out = popen(run.c_str(), "r");
  if (out == nullptr) Die("pgbench failed to start");
  char line[512];
  double tps = 0;
  while (std::fgets(line, sizeof line, out) != nullptr) {
    std::string_view l = line;
    if (l.substr(0, 6) == "tps = ") tps = std::atof(line + 6);
  }
  pclose(out);
  if (tps <= 0) Die("could not read pgbench tps");
  std::printf("pgbench_tpcb_tps %.0f\n", tps);
  return tps;
}

int Main(int argc, char** argv) {
  Config c = ParseArgs(argc, argv);
  auto stack = LocalStack::Start();
  if (!stack.ok()) Die(stack.status().ToString());
  g_stack = &*stack;
  std::vector<std::string> wallets = OpenFundedWallets(**stack, c.accounts);
  if (c.Runs("single")) SingleTransfers(**stack, c, wallets);
  Vacuum(**stack);
  double batched = c.Runs("batched") ? BatchedTransfers(**stack, c, wallets) : 0;
  if (batched > 0) RelayDrain(**stack);
  double tps = c.Runs("pgbench") ? PgbenchTps(**stack, c) : 0;
  if (batched > 0 && tps > 0) std::printf("ledger_batched_vs_pgbench_ratio %.1f\n", batched / tps);
  return 0;
}

}  // namespace
}  // namespace microlend::testing

int main(int argc, char** argv) { return microlend::testing::Main(argc, argv); }
