#include "pg/pool.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "pg/connect.h"

namespace microlend::pg {

ConnectionPool::Lease::Lease(Lease&& other) noexcept
    : pool_(std::exchange(other.pool_, nullptr)),
      conn_(std::move(other.conn_)),
      broken_(other.broken_) {}

ConnectionPool::Lease::~Lease() {
  if (pool_ == nullptr) return;
  if (broken_ || !conn_->is_open()) conn_.reset();
  pool_->Release(std::move(conn_));
}

absl::Status ConnectionPool::Lease::Fail(const std::exception& e, std::string_view what) {
  absl::Status status = pool_->Translate(e, what);
  Note(status);
  return status;
}

void ConnectionPool::Lease::Note(const absl::Status& status) {
  if (absl::IsUnavailable(status)) broken_ = true;
}

absl::StatusOr<std::unique_ptr<ConnectionPool>> ConnectionPool::Create(Options options) {
  if (options.size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(options.name, " pool size must be at least 1, got ", options.size));
  }
  return std::unique_ptr<ConnectionPool>(new ConnectionPool(std::move(options)));
}

ConnectionPool::ConnectionPool(Options options)
    : options_(std::move(options)), unopened_(options_.size) {}

absl::Status ConnectionPool::Translate(const std::exception& e, std::string_view what) const {
  return options_.translate ? options_.translate(e, what) : TranslateError(e, what);
}

absl::StatusOr<ConnectionPool::Lease> ConnectionPool::Borrow() {
  {
    absl::MutexLock lock(&mu_);
    const absl::Time deadline = absl::Now() + options_.borrow_timeout;
    while (idle_.empty() && unopened_ == 0) {
      if (available_.WaitWithDeadline(&mu_, deadline) && idle_.empty() && unopened_ == 0) {
        return absl::UnavailableError(absl::StrCat(
            "all ", options_.size, " ", options_.name, " connections to PostgreSQL at ",
            DescribeEndpoint(options_.url), " stayed busy for ",
            absl::FormatDuration(options_.borrow_timeout)));
      }
    }
    if (!idle_.empty()) {
      std::unique_ptr<pqxx::connection> conn = std::move(idle_.back());
      idle_.pop_back();
      return Lease(this, std::move(conn));
    }
    --unopened_;
  }
  absl::StatusOr<std::unique_ptr<pqxx::connection>> opened = Open();
  if (!opened.ok()) {
    Release(nullptr);
    return opened.status();
  }
  return Lease(this, *std::move(opened));
}

absl::StatusOr<std::unique_ptr<pqxx::connection>> ConnectionPool::Open() const {
  ML_ASSIGN_OR_RETURN(std::unique_ptr<pqxx::connection> conn, Connect(options_.url));
  try {
    if (options_.setup) options_.setup(*conn);
  } catch (const std::exception& e) {
    return Translate(e, absl::StrCat("setting up a ", options_.name, " connection"));
  }
  return conn;
}

void ConnectionPool::Release(std::unique_ptr<pqxx::connection> conn) {
  absl::MutexLock lock(&mu_);
  if (conn != nullptr) {
    idle_.push_back(std::move(conn));
  } else {
    ++unopened_;
  }
  available_.Signal();
}

}  // namespace microlend::pg
