// Opening PostgreSQL connections and translating libpqxx exceptions into absl::Status, so that
// no database exception crosses a module boundary.
//   lost or refused connection, outcome unknown (in_doubt) -> Unavailable (retry the call)
//   serialization failure, deadlock                         -> Aborted (retry the transaction)
//   unique violation                                        -> AlreadyExists
//   check / foreign-key / not-null violation                -> FailedPrecondition
//   InvalidText (below)                                     -> InvalidArgument
//   anything else                                           -> Internal
#ifndef MICROLEND_PG_CONNECT_H_
#define MICROLEND_PG_CONNECT_H_

#include <exception>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

#include <pqxx/pqxx>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace microlend::pg {

// `url` is a libpq connection string ("host=127.0.0.1 port=54329 dbname=microlend user=...").
// Unavailable, naming the endpoint, when the server cannot be reached.
absl::StatusOr<std::unique_ptr<pqxx::connection>> Connect(const std::string& url);

// "127.0.0.1:54329/microlend", for messages: never includes a password.
std::string DescribeEndpoint(const std::string& url);

// Connects and runs SELECT 1: for dependency checks in status RPCs.
absl::Status Ping(const std::string& url);

// Thrown by a store while building parameters for text PostgreSQL cannot hold (a NUL byte,
// invalid UTF-8); TranslateError turns it into InvalidArgument.
class InvalidText : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

absl::Status TranslateError(const std::exception& e, std::string_view what);

}  // namespace microlend::pg

#endif  // MICROLEND_PG_CONNECT_H_
