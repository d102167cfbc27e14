// Client side of the standard gRPC health check, for servers that depend on a peer (matching
// waits for lending), for mlctl and for tests.
#ifndef MICROLEND_SERVER_HEALTH_CLIENT_H_
#define MICROLEND_SERVER_HEALTH_CLIENT_H_

#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace microlend {

// OK when `target` reports SERVING for `service` ("" = the whole server) within `timeout`;
// Unavailable naming the target otherwise.
absl::Status CheckHealth(const std::string& target, const std::string& service,
                         absl::Duration timeout);

// Polls CheckHealth until SERVING or `wait` has passed.
absl::Status WaitForServing(const std::string& target, absl::Duration wait);

}  // namespace microlend

#endif  // MICROLEND_SERVER_HEALTH_CLIENT_H_
