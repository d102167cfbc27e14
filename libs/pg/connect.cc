#include "pg/connect.h"
#include "common/strings.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace microlend::pg {

std::string DescribeEndpoint(const std::string& url) {
  std::string host = "localhost", port = "5432", db = "";
  for (absl::string_view part : absl::StrSplit(url, ' ', absl::SkipEmpty())) {
    std::pair<absl::string_view, absl::string_view> kv = absl::StrSplit(part, absl::MaxSplits('=', 1));
    if (kv.first == "host" || kv.first == "hostaddr") host = std::string(kv.second);
    if (kv.first == "port") port = std::string(kv.second);
    if (kv.first == "dbname") db = std::string(kv.second);
  }
  return absl::StrCat(host, ":", port, "/", db);
}

absl::StatusOr<std::unique_ptr<pqxx::connection>> Connect(const std::string& url) {
  try {
    return std::make_unique<pqxx::connection>(url);
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat("PostgreSQL at ", DescribeEndpoint(url),
                                               " is unreachable: ", e.what()));
  }
}

absl::Status Ping(const std::string& url) {
  absl::StatusOr<std::unique_ptr<pqxx::connection>> conn = Connect(url);
  if (!conn.ok()) return conn.status();
  try {
    pqxx::nontransaction tx(**conn);
    tx.exec("SELECT 1");
    return absl::OkStatus();
  } catch (const std::exception& e) {
    return TranslateError(e, "PostgreSQL ping");
  }
}

absl::Status TranslateError(const std::exception& e, std::string_view what) {
  std::string message = absl::StrCat(AsAbsl(what), ": ", e.what());
  if (dynamic_cast<const InvalidText*>(&e) != nullptr) return absl::InvalidArgumentError(message);
  if (dynamic_cast<const pqxx::broken_connection*>(&e) != nullptr ||
      dynamic_cast<const pqxx::in_doubt_error*>(&e) != nullptr) {
    return absl::UnavailableError(message);
  }
  if (dynamic_cast<const pqxx::transaction_rollback*>(&e) != nullptr) {
    return absl::AbortedError(message);  // serialization failure, deadlock
  }
  if (dynamic_cast<const pqxx::unique_violation*>(&e) != nullptr) {
    return absl::AlreadyExistsError(message);
  }
  if (dynamic_cast<const pqxx::integrity_constraint_violation*>(&e) != nullptr) {
    return absl::FailedPreconditionError(message);
  }
  return absl::InternalError(message);
}

}  // namespace microlend::pg
