// matching server: wiring only. Flags → clock, token signer, PostgreSQL (schema `matching`:
// the order journal, migrated at start), the lending server it commits fills to (waited for
// until SERVING) → services → gRPC server until SIGTERM.
#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "microlend/matching/v1/matching.grpc.pb.h"
#include "pg/connect.h"
#include "pg/migrator.h"
#include "server/admin_service.h"
#include "server/bootstrap.h"
#include "server/health_client.h"
#include "server/runner.h"

namespace microlend {
namespace {

constexpr char kServer[] = "matching";
namespace mv1 = ::microlend::matching::v1;

int Main(int argc, char** argv) {
  KeepFreedMemoryForReuse();
  BlockTerminationSignals();
  std::vector<FlagSpec> specs = CommonServerFlags(kServer, 50052);
  specs.push_back({"pg_url", "MICROLEND_PG_URL", std::string(kDefaultPgUrl),
                   "PostgreSQL connection string (owns schema matching)"});
  specs.push_back({"lending", "MICROLEND_LENDING_ADDR", "127.0.0.1:50051",
                   "lending server address (ledger commits, loan catalogue)"});
  specs.push_back({"lending_wait_s", "MICROLEND_LENDING_WAIT_S", "30",
                   "how long to wait at start for lending to be SERVING"});
  FlagSet flags(absl::StrCat(kServer, "_server"), specs);
  ParseFlagsOrExit(flags, argc, argv);

  SystemClock clock;
  absl::StatusOr<TokenSigner> signer = SignerFromFlags(flags, kServer);
  if (!signer.ok()) ExitFatal(kServer, signer.status());
  absl::StatusOr<int64_t> max_threads = flags.GetInt("max_threads");
  if (!max_threads.ok()) ExitFatal(kServer, max_threads.status());
  absl::StatusOr<int64_t> lending_wait_s = flags.GetInt("lending_wait_s");
  if (!lending_wait_s.ok()) ExitFatal(kServer, lending_wait_s.status());

  const std::string pg_url = flags.GetString("pg_url");
  absl::StatusOr<std::unique_ptr<pqxx::connection>> db =
      pg::ConnectAndMigrate(pg_url, kServer, pg::MatchingMigrations());
  if (!db.ok()) ExitFatal(kServer, db.status());

  const std::string lending = flags.GetString("lending");
  if (absl::Status s = WaitForServing(lending, absl::Seconds(*lending_wait_s)); !s.ok()) {
    ExitFatal(kServer, absl::UnavailableError(
                           absl::StrCat("lending server at ", lending, " is unreachable: ",
                                        s.message())));
  }

  GrpcAuthenticator auth(*std::move(signer), &clock);
  AdminService admin(
      kServer, &auth, &clock, [pg_url] { return pg::ListAppliedMigrations(pg_url, kServer); },
      {{"postgresql", pg::DescribeEndpoint(pg_url), [pg_url] { return pg::Ping(pg_url); }},
       {"lending", lending, [lending] { return CheckHealth(lending, "", absl::Seconds(2)); }}});
  // Answers UNIMPLEMENTED until the matching issue lands (never a fake success).
  mv1::MatchingService::Service matching;

  ServerOptions options{.server_name = kServer,
                        .listen_address = flags.GetString("listen"),
                        .port_file = flags.GetString("port_file"),
                        .max_threads = static_cast<int>(*max_threads)};
  absl::Status run =
      RunServer(options, {{"microlend.common.v1.ServerAdmin", &admin},
                          {mv1::MatchingService::service_full_name(), &matching}});
  if (!run.ok()) ExitFatal(kServer, run);
  return 0;
}

}  // namespace
}  // namespace microlend

int main(int argc, char** argv) { return microlend::Main(argc, argv); }
