#include "services/lending/store/pg_common.h"

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "pg/params.h"

namespace microlend::lending {

absl::StatusOr<std::unique_ptr<pg::ConnectionPool>> OpenLendingPool(
    std::string url, int pool_size, std::string name, absl::Duration borrow_timeout,
    const std::string& required_table, std::function<void(pqxx::connection&)> setup,
    std::function<absl::Status(const std::exception&, std::string_view)> translate) {
  absl::StatusOr<std::unique_ptr<pg::ConnectionPool>> pool = pg::ConnectionPool::Create(
      {.url = std::move(url),
       .size = pool_size,
       .name = std::move(name),
       .borrow_timeout = borrow_timeout,
       // set_variable (not a plain SET) so that libpqxx restores it if it reconnects by itself.
       .setup = [setup = std::move(setup)](pqxx::connection& conn) {
         conn.set_variable("search_path", kLendingSchema);
         if (setup) setup(conn);
       },
       .translate = std::move(translate)});
  if (!pool.ok()) return pool.status();
  absl::Status ready = pg::RunIn<pqxx::read_transaction>(
      **pool, "checking the lending schema", [&](pqxx::read_transaction& tx) -> absl::Status {
        if (tx.exec_params("SELECT to_regclass($1) IS NOT NULL", required_table)[0][0].as<bool>()) {
          return absl::OkStatus();
        }
        return absl::FailedPreconditionError(absl::StrCat(
            "schema ", kLendingSchema, " has no table ", required_table,
            ": apply the lending migrations first"));
      });
  if (!ready.ok()) return ready;
  return pool;
}

absl::StatusOr<std::optional<IdempotencyRecord>> FindIdempotencyRecord(
    pqxx::transaction_base& tx, const std::string& caller, const std::string& request_id) {
  pqxx::result r = tx.exec_params(
      "SELECT caller, request_id, method, encode(body_sha256, 'hex'), status_code,"
      " status_text, encode(coalesce(response, ''::bytea), 'hex')"
      " FROM idempotency_records WHERE caller = $1 AND request_id = $2",
      pg::TextParam(caller), pg::TextParam(request_id));
  if (r.empty()) return std::optional<IdempotencyRecord>();
  return std::optional<IdempotencyRecord>(IdempotencyRecord{
      .caller = r[0][0].as<std::string>(),
      .request_id = r[0][1].as<std::string>(),
      .method = r[0][2].as<std::string>(),
      .body_hash = absl::HexStringToBytes(r[0][3].as<std::string>()),
      .code = static_cast<absl::StatusCode>(r[0][4].as<int>()),
      .message = r[0][5].as<std::string>(),
      .payload = absl::HexStringToBytes(r[0][6].as<std::string>())});
}

absl::Status RefuseIfRecorded(pqxx::transaction_base& tx, const IdempotencyRecord& record) {
  absl::StatusOr<std::optional<IdempotencyRecord>> found =
      FindIdempotencyRecord(tx, record.caller, record.request_id);
  if (!found.ok()) return found.status();
  if (found->has_value()) {
    return absl::AlreadyExistsError(absl::StrCat("request id \"", record.request_id,
                                                 "\" is already recorded"));
  }
  return absl::OkStatus();
}

absl::Status InsertIdempotencyRecord(pqxx::transaction_base& tx, const IdempotencyRecord& r,
                                     const std::string& payload) {
  pqxx::result inserted = tx.exec_params(
      "INSERT INTO idempotency_records (caller, request_id, method, body_sha256, status_code,"
      " status_text, response) VALUES ($1, $2, $3, decode($4, 'hex'), $5::int, $6,"
      " decode($7, 'hex')) ON CONFLICT DO NOTHING",
      pg::TextParam(r.caller), pg::TextParam(r.request_id), pg::TextParam(r.method),
      absl::BytesToHexString(r.body_hash), static_cast<int>(r.code), pg::TextParam(r.message),
      absl::BytesToHexString(payload));
  if (inserted.affected_rows() == 0) {
    return absl::AlreadyExistsError(absl::StrCat("request id \"", r.request_id, "\" of caller \"",
                                                 r.caller, "\" is already recorded"));
  }
  return absl::OkStatus();
}

}  // namespace microlend::lending
