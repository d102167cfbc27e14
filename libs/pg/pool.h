// ConnectionPool: a fixed number of PostgreSQL connections shared by one store's threads.
//
// Each slot holds an idle connection, lends it out, or is unopened (never connected, or its
// connection broke). Borrow() opens an unopened slot on demand, outside the lock, and runs the
// pool's `setup` on the new connection (search_path, prepared statements). When every slot is
// busy for `borrow_timeout`, Borrow is Unavailable naming the endpoint. A Lease gives its
// connection back when destroyed, unless the connection broke (Fail/Note with an Unavailable
// status), in which case the slot is reopened on a later Borrow. Thread-safe.
#ifndef MICROLEND_PG_POOL_H_
#define MICROLEND_PG_POOL_H_

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <pqxx/pqxx>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace microlend::pg {

class ConnectionPool {
 public:
  struct Options {
    std::string url;
    int size = 8;
    std::string name = "store";  // for messages: "ledger", "partner"
    absl::Duration borrow_timeout = absl::Seconds(30);
    // Runs once on each new connection; may throw (translated with `translate`).
    std::function<void(pqxx::connection&)> setup;
    // Turns a libpqxx exception into a status; defaults to pg::TranslateError.
    std::function<absl::Status(const std::exception&, std::string_view)> translate;
  };

  class Lease {
   public:
    Lease(ConnectionPool* pool, std::unique_ptr<pqxx::connection> conn)
        : pool_(pool), conn_(std::move(conn)) {}
    Lease(Lease&& other) noexcept;
    Lease& operator=(Lease&&) = delete;
    ~Lease();

    pqxx::connection& conn() { return *conn_; }
    // Translates `e`; a lost connection is not given back to the pool.
    absl::Status Fail(const std::exception& e, std::string_view what);
    void Note(const absl::Status& status);

   private:
    ConnectionPool* pool_;
    std::unique_ptr<pqxx::connection> conn_;
    bool broken_ = false;
  };

  // InvalidArgument when size < 1.
  static absl::StatusOr<std::unique_ptr<ConnectionPool>> Create(Options options);

  absl::StatusOr<Lease> Borrow();
  absl::Status Translate(const std::exception& e, std::string_view what) const;

 private:
  explicit ConnectionPool(Options options);
  absl::StatusOr<std::unique_ptr<pqxx::connection>> Open() const;
  void Release(std::unique_ptr<pqxx::connection> conn);

  const Options options_;
  absl::Mutex mu_;
  absl::CondVar available_;
  std::vector<std::unique_ptr<pqxx::connection>> idle_ ABSL_GUARDED_BY(mu_);
  int unopened_ ABSL_GUARDED_BY(mu_);
};

// A consistent read-only snapshot, for paged reads and reconciliation.
using ReadTxn = pqxx::transaction<pqxx::repeatable_read, pqxx::read_only>;

// For a read of one statement, which sees one snapshot by itself: one round trip, where a
// read_transaction takes three (BEGIN, the statement, COMMIT). Reads on the hot paths use it.
using OneStatementRead = pqxx::nontransaction;

// Runs `fn(Txn&)` in a transaction of type Txn on a borrowed connection and commits when the
// returned status (or StatusOr) is OK. Exceptions are translated by the pool; none escapes.
template <typename Txn, typename Fn>
auto RunIn(ConnectionPool& pool, std::string_view what, Fn&& fn)
    -> std::invoke_result_t<Fn, Txn&> {
  absl::StatusOr<ConnectionPool::Lease> lease = pool.Borrow();
  if (!lease.ok()) return lease.status();
  try {
    Txn tx(lease->conn());
    auto result = fn(tx);
    if (result.ok()) tx.commit();
    return result;
  } catch (const std::exception& e) {
    return lease->Fail(e, what);
  }
}

}  // namespace microlend::pg

#endif  // MICROLEND_PG_POOL_H_
