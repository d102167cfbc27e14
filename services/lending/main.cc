// lending server: wiring only. Flags → clock, token signer, PostgreSQL (schema `lending`,
// migrated at start), Redis (outbox relay target) → services → gRPC server until SIGTERM.
#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "microlend/lending/v1/lending.grpc.pb.h"
#include "pg/connect.h"
#include "pg/migrator.h"
#include "redis/redis_client.h"
#include "server/admin_service.h"
#include "server/bootstrap.h"
#include "server/runner.h"

namespace microlend {
namespace {

constexpr char kServer[] = "lending";
namespace lv1 = ::microlend::lending::v1;

int Main(int argc, char** argv) {
  BlockTerminationSignals();
  std::vector<FlagSpec> specs = CommonServerFlags(kServer, 50051);
  specs.push_back({"pg_url", "MICROLEND_PG_URL", std::string(kDefaultPgUrl),
                   "PostgreSQL connection string (owns schema lending)"});
  specs.push_back({"redis", "MICROLEND_REDIS", std::string(kDefaultRedis),
                   "Redis host:port (event stream target)"});
  FlagSet flags(absl::StrCat(kServer, "_server"), specs);
  ParseFlagsOrExit(flags, argc, argv);

  SystemClock clock;
  absl::StatusOr<TokenSigner> signer = SignerFromFlags(flags, kServer);
  if (!signer.ok()) ExitFatal(kServer, signer.status());
  absl::StatusOr<int64_t> max_threads = flags.GetInt("max_threads");
  if (!max_threads.ok()) ExitFatal(kServer, max_threads.status());

  const std::string pg_url = flags.GetString("pg_url");
  absl::StatusOr<std::unique_ptr<pqxx::connection>> db =
      pg::ConnectAndMigrate(pg_url, kServer, pg::LendingMigrations());
  if (!db.ok()) ExitFatal(kServer, db.status());

  const std::string redis_endpoint = flags.GetString("redis");
  absl::StatusOr<std::unique_ptr<redis::RedisClient>> redis =
      redis::RedisClient::Connect(redis_endpoint, absl::Seconds(2));
  if (!redis.ok()) ExitFatal(kServer, redis.status());

  GrpcAuthenticator auth(*std::move(signer), &clock);
  AdminService admin(
      kServer, &auth, &clock, [pg_url] { return pg::ListAppliedMigrations(pg_url, kServer); },
      {{"postgresql", pg::DescribeEndpoint(pg_url), [pg_url] { return pg::Ping(pg_url); }},
       {"redis", redis_endpoint, [redis_endpoint] { return redis::Ping(redis_endpoint); }}});
  // The domain services answer UNIMPLEMENTED until their issues land (never a fake success).
  lv1::PartnerService::Service partners;
  lv1::LoanService::Service loans;
  lv1::BasketService::Service baskets;
  lv1::LenderService::Service lenders;
  lv1::LedgerService::Service ledger;

  ServerOptions options{.server_name = kServer,
                        .listen_address = flags.GetString("listen"),
                        .max_threads = static_cast<int>(*max_threads)};
  absl::Status run = RunServer(
      options, {{"microlend.common.v1.ServerAdmin", &admin},
                {lv1::PartnerService::service_full_name(), &partners},
                {lv1::LoanService::service_full_name(), &loans},
                {lv1::BasketService::service_full_name(), &baskets},
                {lv1::LenderService::service_full_name(), &lenders},
                {lv1::LedgerService::service_full_name(), &ledger}});
  if (!run.ok()) ExitFatal(kServer, run);
  return 0;
}

}  // namespace
}  // namespace microlend

int main(int argc, char** argv) { return microlend::Main(argc, argv); }
