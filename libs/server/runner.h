// Runs a gRPC server until SIGINT or SIGTERM, with what every microlend server serves:
// the standard health checking service (grpc.health.v1.Health, SERVING for "" and for each
// registered service once started, NOT_SERVING while shutting down), server reflection, the
// logging interceptor, message-size and thread limits.
//
// The port is bound exclusively (no SO_REUSEPORT): a second server on a taken port fails to
// start instead of silently sharing the port's connections with the first. A listen address
// with port 0 binds a free port chosen by the kernel; with `port_file` set, the bound port is
// written there (atomically, once listening) so a supervisor can find it.
//
// Call BlockTerminationSignals() first thing in main(), before any thread exists, so that the
// signals are received only by RunServer's sigwait and not by a random thread.
#ifndef MICROLEND_SERVER_RUNNER_H_
#define MICROLEND_SERVER_RUNNER_H_

#include <grpcpp/impl/codegen/service_type.h>

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace microlend {

struct ServerOptions {
  std::string server_name;     // "lending", for logs
  std::string listen_address;  // "127.0.0.1:50051"; port 0 picks a free one
  std::string port_file;       // if not empty: the bound port is written here once listening
  int max_threads = 256;       // sync-server worker cap; calls beyond it get RESOURCE_EXHAUSTED
  int max_receive_message_bytes = 8 << 20;
  absl::Duration shutdown_grace = absl::Seconds(5);
};

struct RegisteredService {
  std::string full_name;  // e.g. microlend.lending.v1.LoanService, for health status
  grpc::Service* service; // not owned; must outlive RunServer
};

void BlockTerminationSignals();

// Blocks until SIGINT/SIGTERM, then shuts down gracefully. Unavailable if the address cannot
// be bound (e.g. the port is taken).
absl::Status RunServer(const ServerOptions& options, const std::vector<RegisteredService>& services);

}  // namespace microlend

#endif  // MICROLEND_SERVER_RUNNER_H_
