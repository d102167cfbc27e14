// Versioned SQL migrations for one schema, applied by the owning server at start.
//
// Migrations are compiled into the binary (libs/CMakeLists.txt: embed_migrations) from
// infra/migrations/<schema>/NNNN_name.sql. ApplyMigrations runs every pending one, in version
// order, in ONE transaction under a transaction-level advisory lock: servers starting at the
// same time serialise, and a failing migration leaves the schema as it was. Applied versions
// are recorded in <schema>.schema_migrations with a checksum of their text; running it twice
// changes nothing. An applied migration whose text has since changed is FailedPrecondition
// (never re-run or silently accepted). Database errors come back translated (pg/connect.h).
#ifndef MICROLEND_PG_MIGRATOR_H_
#define MICROLEND_PG_MIGRATOR_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <pqxx/pqxx>

#include "absl/status/statusor.h"
#include "common/migration_info.h"

namespace microlend::pg {

struct Migration {
  int64_t version;
  std::string_view name;
  std::string_view sql;
};

using AppliedMigration = MigrationInfo;

// Returns every applied migration (old and new), in version order.
absl::StatusOr<std::vector<AppliedMigration>> ApplyMigrations(
    pqxx::connection& conn, std::string_view schema, const std::vector<Migration>& migrations);

absl::StatusOr<std::vector<AppliedMigration>> ListAppliedMigrations(pqxx::connection& conn,
                                                                    std::string_view schema);

// Opens a short-lived connection for the call: for status RPCs, off the hot path.
absl::StatusOr<std::vector<AppliedMigration>> ListAppliedMigrations(const std::string& url,
                                                                    std::string_view schema);

// Connects, applies `migrations` to `schema`, and hands back the connection: what a server does
// at start. Unavailable naming the endpoint when PostgreSQL cannot be reached.
absl::StatusOr<std::unique_ptr<pqxx::connection>> ConnectAndMigrate(
    const std::string& url, std::string_view schema, const std::vector<Migration>& migrations);

// Generated per schema by embed_migrations().
const std::vector<Migration>& LendingMigrations();
const std::vector<Migration>& MatchingMigrations();
const std::vector<Migration>& NotifyMigrations();

}  // namespace microlend::pg

#endif  // MICROLEND_PG_MIGRATOR_H_
