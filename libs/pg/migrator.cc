#include "pg/migrator.h"
#include "common/strings.h"

#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "pg/connect.h"

namespace microlend::pg {
namespace {

// FNV-1a: stable across compilers and runs, unlike std::hash.
std::string Checksum(std::string_view text) {
  uint64_t h = 14695981039346656037ULL;
  for (unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return absl::StrFormat("%016x", h);
}

std::vector<AppliedMigration> ReadApplied(pqxx::transaction_base& tx, const std::string& table) {
  std::vector<AppliedMigration> out;
  for (const auto& row : tx.exec(absl::StrCat(
           "SELECT version, name, extract(epoch FROM applied_at)::BIGINT FROM ",
           table, " ORDER BY version"))) {
    out.push_back({row[0].as<int64_t>(), row[1].as<std::string>(),
                   absl::FromUnixSeconds(row[2].as<int64_t>())});
  }
  return out;
}

}  // namespace

absl::StatusOr<std::vector<AppliedMigration>> ApplyMigrations(
    pqxx::connection& conn, std::string_view schema, const std::vector<Migration>& migrations) {
  try {
    pqxx::work tx(conn);
    std::string quoted_schema = tx.quote_name(std::string(schema));
    std::string table = absl::StrCat(quoted_schema, ".schema_migrations");
    tx.exec_params("SELECT pg_advisory_xact_lock(hashtext($1))",
                   absl::StrCat("microlend.migrations.", AsAbsl(schema)));
    tx.exec(absl::StrCat("CREATE SCHEMA IF NOT EXISTS ", quoted_schema));
    tx.exec(absl::StrCat("CREATE TABLE IF NOT EXISTS ", table,
                         " (version BIGINT PRIMARY KEY, name TEXT NOT NULL, checksum TEXT NOT NULL,"
                         " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"));
    std::map<int64_t, std::string> applied;
    for (const auto& row : tx.exec(absl::StrCat("SELECT version, checksum FROM ", table))) {
      applied[row[0].as<int64_t>()] = row[1].as<std::string>();
    }
    for (const Migration& m : migrations) {
      std::string sum = Checksum(m.sql);
      if (auto it = applied.find(m.version); it != applied.end()) {
        if (it->second != sum) {
          return absl::FailedPreconditionError(absl::StrCat(
              "migration ", AsAbsl(schema), "/", m.version, "_", AsAbsl(m.name),
              " was changed after it was applied; add a new migration instead"));
        }
        continue;
      }
      tx.exec(absl::StrCat("SET LOCAL search_path TO ", quoted_schema));
      tx.exec(std::string(m.sql));
      tx.exec_params(absl::StrCat("INSERT INTO ", table, " (version, name, checksum) VALUES ($1, $2, $3)"),
                     m.version, std::string(m.name), sum);
    }
    std::vector<AppliedMigration> result = ReadApplied(tx, table);
    tx.commit();
    return result;
  } catch (const std::exception& e) {
    return TranslateError(e, absl::StrCat("applying migrations of schema ", AsAbsl(schema)));
  }
}

absl::StatusOr<std::vector<AppliedMigration>> ListAppliedMigrations(pqxx::connection& conn,
                                                                    std::string_view schema) {
  try {
    pqxx::read_transaction tx(conn);
    std::string table = absl::StrCat(tx.quote_name(std::string(schema)), ".schema_migrations");
    return ReadApplied(tx, table);
  } catch (const std::exception& e) {
    return TranslateError(e, absl::StrCat("listing migrations of schema ", AsAbsl(schema)));
  }
}

absl::StatusOr<std::unique_ptr<pqxx::connection>> ConnectAndMigrate(
    const std::string& url, std::string_view schema, const std::vector<Migration>& migrations) {
  absl::StatusOr<std::unique_ptr<pqxx::connection>> conn = Connect(url);
  if (!conn.ok()) return conn.status();
  absl::StatusOr<std::vector<AppliedMigration>> applied =
      ApplyMigrations(**conn, schema, migrations);
  if (!applied.ok()) return applied.status();
  return conn;
}

absl::StatusOr<std::vector<AppliedMigration>> ListAppliedMigrations(const std::string& url,
                                                                    std::string_view schema) {
  absl::StatusOr<std::unique_ptr<pqxx::connection>> conn = Connect(url);
  if (!conn.ok()) return conn.status();
  return ListAppliedMigrations(**conn, schema);
}

}  // namespace microlend::pg
