// notify server: wiring only. Flags → clock, token signer, PostgreSQL (schema `notify`,
// migrated at start), Redis (streams, trending sorted sets) → services → gRPC server until
// SIGTERM.
#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "microlend/notify/v1/notify.grpc.pb.h"
#include "pg/connect.h"
#include "pg/migrator.h"
#include "redis/redis_client.h"
#include "server/admin_service.h"
#include "server/bootstrap.h"
#include "server/runner.h"

namespace microlend {
namespace {

constexpr char kServer[] = "notify";
namespace nv1 = ::microlend::notify::v1;

int Main(int argc, char** argv) {
  KeepFreedMemoryForReuse();
  BlockTerminationSignals();
  std::vector<FlagSpec> specs = CommonServerFlags(kServer, 50053);
  specs.push_back({"pg_url", "MICROLEND_PG_URL", std::string(kDefaultPgUrl),
                   "PostgreSQL connection string (owns schema notify)"});
  specs.push_back({"redis", "MICROLEND_REDIS", std::string(kDefaultRedis),
                   "Redis host:port (event streams, trending)"});
  FlagSet flags(absl::StrCat(kServer, "_server"), specs);
  ParseFlagsOrExit(flags, argc, argv);

  SystemClock clock;
  absl::StatusOr<TokenSigner> signer = SignerFromFlags(flags, kServer);
  if (!signer.ok()) ExitFatal(kServer, signer.status());
  absl::StatusOr<int64_t> max_threads = flags.GetInt("max_threads");
  if (!max_threads.ok()) ExitFatal(kServer, max_threads.status());

  const std::string pg_url = flags.GetString("pg_url");
  absl::StatusOr<std::unique_ptr<pqxx::connection>> db =
      pg::ConnectAndMigrate(pg_url, kServer, pg::NotifyMigrations());
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
  // The domain services answer UNIMPLEMENTED until the notify issue lands (never a fake success).
  nv1::ShareService::Service shares;
  nv1::TrendingService::Service trending;
  nv1::HashtagCampaignService::Service hashtags;
  nv1::InboxService::Service inbox;
  nv1::WebhookService::Service webhooks;

  ServerOptions options{.server_name = kServer,
                        .listen_address = flags.GetString("listen"),
                        .port_file = flags.GetString("port_file"),
                        .max_threads = static_cast<int>(*max_threads)};
  absl::Status run = RunServer(
      options, {{"microlend.common.v1.ServerAdmin", &admin},
                {nv1::ShareService::service_full_name(), &shares},
                {nv1::TrendingService::service_full_name(), &trending},
                {nv1::HashtagCampaignService::service_full_name(), &hashtags},
                {nv1::InboxService::service_full_name(), &inbox},
                {nv1::WebhookService::service_full_name(), &webhooks}});
  if (!run.ok()) ExitFatal(kServer, run);
  return 0;
}

}  // namespace
}  // namespace microlend

int main(int argc, char** argv) { return microlend::Main(argc, argv); }
