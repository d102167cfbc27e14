// What every PostgreSQL store of the lending schema shares: opening its connection pool (checking
// that the migrations it needs are applied) and the idempotency records of 0001_idempotency.sql.
#ifndef MICROLEND_SERVICES_LENDING_STORE_PG_COMMON_H_
#define MICROLEND_SERVICES_LENDING_STORE_PG_COMMON_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <pqxx/pqxx>

#include "absl/status/statusor.h"
#include "pg/pool.h"
#include "services/lending/core/ledger_store.h"

namespace microlend::lending {

inline constexpr char kLendingSchema[] = "lending";

// A pool whose connections use schema `lending` (plus `setup`, e.g. prepared statements).
// InvalidArgument for a pool size below 1; FailedPrecondition when `required_table` is missing
// (the migrations were not applied); Unavailable when PostgreSQL cannot be reached.
absl::StatusOr<std::unique_ptr<pg::ConnectionPool>> OpenLendingPool(
    std::string url, int pool_size, std::string name, absl::Duration borrow_timeout,
    const std::string& required_table, std::function<void(pqxx::connection&)> setup = nullptr,
    std::function<absl::Status(const std::exception&, std::string_view)> translate = nullptr);

// The remembered outcome of (caller, request_id), if any.
absl::StatusOr<std::optional<IdempotencyRecord>> FindIdempotencyRecord(
    pqxx::transaction_base& tx, const std::string& caller, const std::string& request_id);

// AlreadyExists when (caller, request_id) is already recorded. Called right after locking the
// row a mutation changes: a retry that waited on that lock while the original committed then
// ends in a replay of the original instead of failing on the state the original left.
absl::Status RefuseIfRecorded(pqxx::transaction_base& tx, const IdempotencyRecord& record);

// Inserts `record` with `payload` as its response; AlreadyExists when the key is taken.
absl::Status InsertIdempotencyRecord(pqxx::transaction_base& tx, const IdempotencyRecord& record,
                                     const std::string& payload);

}  // namespace microlend::lending

#endif  // MICROLEND_SERVICES_LENDING_STORE_PG_COMMON_H_
