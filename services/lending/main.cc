// lending server: wiring only. Flags → clock, token signer, PostgreSQL (schema `lending`,
// migrated at start, then the ledger store's pool), Redis (outbox relay target) → ledger
// (group committer), wallets, outbox relay, hold-expiry sweep → gRPC adapters → server until
// SIGTERM, then the background work stops in reverse order.
#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/periodic.h"
#include "common/strings.h"
#include "microlend/lending/v1/lending.grpc.pb.h"
#include "pg/connect.h"
#include "pg/migrator.h"
#include "redis/redis_client.h"
#include "server/admin_service.h"
#include "server/bootstrap.h"
#include "server/runner.h"
#include "services/lending/core/catalogue.h"
#include "services/lending/core/ledger.h"
#include "services/lending/core/loan_desk.h"
#include "services/lending/core/loans.h"
#include "services/lending/core/outbox_relay.h"
#include "services/lending/core/partners.h"
#include "services/lending/core/wallets.h"
#include "services/lending/basket_grpc.h"
#include "services/lending/ledger_grpc.h"
#include "services/lending/loan_grpc.h"
#include "services/lending/partner_grpc.h"
#include "services/lending/store/pg_ledger_store.h"
#include "services/lending/store/pg_loan_store.h"
#include "services/lending/store/pg_partner_store.h"
#include "services/lending/store/redis_event_publisher.h"
#include "services/lending/wallet_grpc.h"

namespace microlend {
namespace {

constexpr char kServer[] = "lending";
namespace lv1 = ::microlend::lending::v1;

int Main(int argc, char** argv) {
  KeepFreedMemoryForReuse();
  BlockTerminationSignals();
  std::vector<FlagSpec> specs = CommonServerFlags(kServer, 50051);
  specs.push_back({"pg_url", "MICROLEND_PG_URL", std::string(kDefaultPgUrl),
                   "PostgreSQL connection string (owns schema lending)"});
  specs.push_back({"redis", "MICROLEND_REDIS", std::string(kDefaultRedis),
                   "Redis host:port (event stream target)"});
  specs.push_back({"pg_pool_size", "MICROLEND_LENDING_PG_POOL", "16",
                   "PostgreSQL connections for the ledger store"});
  specs.push_back({"hold_sweep_ms", "MICROLEND_HOLD_SWEEP_MS", "1000",
                   "how often expired holds are voided"});
  specs.push_back({"clock_control", "MICROLEND_CLOCK_CONTROL", "false",
                   "let ops move the business clock forward (ServerAdmin.AdvanceClock; tests, demos)"});
  specs.push_back({"default_after_days", "MICROLEND_DEFAULT_AFTER_DAYS", "180",
                   "days a loan may stay delinquent after its last due date before it defaults"});
  specs.push_back({"lifecycle_sweep_ms", "MICROLEND_LIFECYCLE_SWEEP_MS", "60000",
                   "how often loans are expired, arrears recomputed and defaults declared"});
  specs.push_back({"log_commit_groups_of", "MICROLEND_LOG_COMMIT_GROUPS_OF", "0",
                   "log the phase times of ledger commits of at least this many transfers (0: off)"});
  specs.push_back({"catalogue_in_memory", "MICROLEND_CATALOGUE_IN_MEMORY", "true",
                   "answer searches of FUNDRAISING loans from memory (ADR 0017); false: from "
                   "PostgreSQL, as a baseline"});
  FlagSet flags(absl::StrCat(kServer, "_server"), specs);
  ParseFlagsOrExit(flags, argc, argv);

  SystemClock system_clock;  // token expiry
  OffsetClock clock;         // the business clock: deadlines, holds, arrears, default
  absl::StatusOr<TokenSigner> signer = SignerFromFlags(flags, kServer);
  if (!signer.ok()) ExitFatal(kServer, signer.status());
  absl::StatusOr<int64_t> max_threads = flags.GetInt("max_threads");
  if (!max_threads.ok()) ExitFatal(kServer, max_threads.status());
  absl::StatusOr<int64_t> pool_size = flags.GetInt("pg_pool_size");
  if (!pool_size.ok()) ExitFatal(kServer, pool_size.status());
  absl::StatusOr<int64_t> sweep_ms = flags.GetInt("hold_sweep_ms");
  if (!sweep_ms.ok()) ExitFatal(kServer, sweep_ms.status());
  absl::StatusOr<int64_t> lifecycle_ms = flags.GetInt("lifecycle_sweep_ms");
  if (!lifecycle_ms.ok()) ExitFatal(kServer, lifecycle_ms.status());
  absl::StatusOr<int64_t> default_after_days = flags.GetInt("default_after_days");
  if (!default_after_days.ok()) ExitFatal(kServer, default_after_days.status());
  const std::string clock_control = flags.GetString("clock_control");
  if (clock_control != "true" && clock_control != "false") {
    ExitFatal(kServer, absl::InvalidArgumentError("--clock_control must be true or false"));
  }

  const std::string pg_url = flags.GetString("pg_url");
  absl::StatusOr<std::unique_ptr<pqxx::connection>> db =
      pg::ConnectAndMigrate(pg_url, kServer, pg::LendingMigrations());
  if (!db.ok()) ExitFatal(kServer, db.status());

  const std::string redis_endpoint = flags.GetString("redis");
  absl::StatusOr<std::unique_ptr<redis::RedisClient>> redis =
      redis::RedisClient::Connect(redis_endpoint, absl::Seconds(2));
  if (!redis.ok()) ExitFatal(kServer, redis.status());
  // Those two connections only proved the dependencies reachable (fail fast, naming which);
  // the store's pool and the relay's publisher own their own.
  db->reset();
  redis->reset();

  absl::StatusOr<std::unique_ptr<lending::PgLedgerStore>> store =
      lending::PgLedgerStore::Create(pg_url, static_cast<int>(*pool_size));
  if (!store.ok()) ExitFatal(kServer, store.status());
  absl::StatusOr<int64_t> log_commit_groups_of = flags.GetInt("log_commit_groups_of");
  if (!log_commit_groups_of.ok() || *log_commit_groups_of < 0) {
    ExitFatal(kServer, absl::InvalidArgumentError("--log_commit_groups_of must be 0 or more"));
  }
  // The committer hands each committed group to the relay through this (ADR 0008): about a
  // two seconds of peak throughput; the relay reads anything older back from PostgreSQL.
  lending::RecentTransfers recent_transfers(/*max_transfers=*/200'000);
  (*store)->set_recent_transfers(&recent_transfers);
  // The committer stays within half of that of the relay (ADR 0010), unless the relay has
  // published nothing for two seconds (Redis down: the outbox absorbs the backlog).
  lending::OutboxBacklog outbox_backlog(/*max_events=*/100'000, absl::Seconds(2));
  lending::Ledger ledger(
      store->get(), &clock,
      {.log_groups_of_transfers = static_cast<size_t>(*log_commit_groups_of),
       .recent_transfers = &recent_transfers,
       .outbox_backlog = &outbox_backlog});
  lending::Wallets wallets(&ledger);
  absl::StatusOr<std::unique_ptr<lending::PgPartnerStore>> partner_store =
      lending::PgPartnerStore::Create(pg_url, static_cast<int>(*pool_size));
  if (!partner_store.ok()) ExitFatal(kServer, partner_store.status());
  lending::PartnerDirectory partner_directory(partner_store->get(), &clock);
  absl::StatusOr<std::unique_ptr<lending::PgLoanStore>> loan_store =
      lending::PgLoanStore::Create(pg_url, static_cast<int>(*pool_size));
  if (!loan_store.ok()) ExitFatal(kServer, loan_store.status());
  // The catalogue of FUNDRAISING loans (ADR 0017), loaded before the server listens.
  std::unique_ptr<lending::FundraisingCatalogue> catalogue;
  if (const std::string in_memory = flags.GetString("catalogue_in_memory"); in_memory == "true") {
    catalogue = std::make_unique<lending::FundraisingCatalogue>(loan_store->get());
    const absl::Time started = absl::Now();
    if (absl::Status loaded = catalogue->Load(); !loaded.ok()) ExitFatal(kServer, loaded);
    LogInfo("catalogue_loaded",
            {{"loans", std::to_string(catalogue->size())},
             {"ms", std::to_string(absl::ToInt64Milliseconds(absl::Now() - started))}});
  } else if (in_memory != "false") {
    ExitFatal(kServer, absl::InvalidArgumentError("--catalogue_in_memory must be true or false"));
  }
  lending::LoanBook loan_book(loan_store->get(), partner_store->get(), &clock, catalogue.get());
  lending::LoanDesk loan_desk(&ledger, &wallets, partner_store->get(), &clock,
                              {.default_after_days = static_cast<int32_t>(*default_after_days)});
  lending::RedisEventPublisher publisher(redis_endpoint);
  // Woken by every commit of this server's committer, the relay publishes at once; idle, it
  // polls less and less often, up to once a second (events written by another server).
  lending::OutboxRelay relay(store->get(), &publisher, &clock,
                             {.max_idle_poll = absl::Seconds(1), .backlog = &outbox_backlog});
  outbox_backlog.OnCommitted([&relay] { relay.Wake(); });
  PeriodicTask hold_sweep(absl::Milliseconds(*sweep_ms), [&ledger] {
    absl::StatusOr<size_t> expired = ledger.ExpireHolds(10'000);
    if (!expired.ok()) LogWarning("hold_sweep_failed", {{"error", AsStd(expired.status().message())}});
  });
  PeriodicTask lifecycle_sweep(absl::Milliseconds(*lifecycle_ms), [&loan_desk] {
    absl::StatusOr<lending::SweepResult> swept = loan_desk.RunSweep(0);
    if (!swept.ok()) {
      LogWarning("lifecycle_sweep_failed", {{"error", AsStd(swept.status().message())}});
    }
  });
  ledger.Start();
  relay.Start();
  hold_sweep.Start();
  lifecycle_sweep.Start();

  GrpcAuthenticator auth(*std::move(signer), &system_clock);
  AdminService admin(
      kServer, &auth, &clock, [pg_url] { return pg::ListAppliedMigrations(pg_url, kServer); },
      {{"postgresql", pg::DescribeEndpoint(pg_url), [pg_url] { return pg::Ping(pg_url); }},
       {"redis", redis_endpoint, [redis_endpoint] { return redis::Ping(redis_endpoint); }}});
  if (clock_control == "true") admin.EnableClockControl(&clock);
  // The lender-profile RPCs of LenderService and the catalogue feed for the matcher answer
  // UNIMPLEMENTED until they land (never a fake success).
  lending::PartnerGrpc partners(&partner_directory, partner_store->get(), &auth, &clock);
  lending::LoanGrpc loans(&loan_book, &loan_desk, store->get(), &auth, &clock);
  lending::BasketGrpc baskets(&loan_desk, &auth);
  lending::WalletGrpc lenders(&ledger, &wallets, store->get(), &auth, &clock);
  lending::LedgerGrpc ledger_grpc(&ledger, store->get(), &auth, &clock);

  ServerOptions options{.server_name = kServer,
                        .listen_address = flags.GetString("listen"),
                        .port_file = flags.GetString("port_file"),
                        .max_threads = static_cast<int>(*max_threads)};
  absl::Status run = RunServer(
      options, {{"microlend.common.v1.ServerAdmin", &admin},
                {lv1::PartnerService::service_full_name(), &partners},
                {lv1::LoanService::service_full_name(), &loans},
                {lv1::BasketService::service_full_name(), &baskets},
                {lv1::LenderService::service_full_name(), &lenders},
                {lv1::LedgerService::service_full_name(), &ledger_grpc}});
  lifecycle_sweep.Stop();
  hold_sweep.Stop();
  ledger.Stop();
  relay.Stop();
  if (!run.ok()) ExitFatal(kServer, run);
  return 0;
}

}  // namespace
}  // namespace microlend

int main(int argc, char** argv) { return microlend::Main(argc, argv); }
