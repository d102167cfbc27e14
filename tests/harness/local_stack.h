// LocalStack: the real microlend stack for integration tests, on ports picked at run time.
//
// Start() creates a fresh data folder under $TMPDIR, brings up a private PostgreSQL and Redis
// there through infra/local/{pg,redis}.sh (the same scripts `make run` uses), on free ports
// (started again on others if a parallel test took one first), then starts the lending, matching
// and notify binaries, each binding a free loopback port itself (--listen=127.0.0.1:0) and
// reporting it in a port file, and waits until each reports SERVING. A restarted server binds its
// first port again. The destructor stops everything and removes the folder. Each server's output goes to
// <data>/<server>.log, quoted in errors when a server fails to come up.
// Not thread-safe: drive it from the test's main thread.
#ifndef MICROLEND_TESTS_HARNESS_LOCAL_STACK_H_
#define MICROLEND_TESTS_HARNESS_LOCAL_STACK_H_

#include <sys/types.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/auth.h"

namespace microlend::testing {

enum class Server { kLending, kMatching, kNotify };

// A loopback TCP port that was free when asked; PickFreePorts: `count` distinct such ports.
int PickFreePort();
std::vector<int> PickFreePorts(int count);

class LocalStack {
 public:
  struct Options {
    bool start_servers = true;  // false: only PostgreSQL and Redis
  };

  static absl::StatusOr<std::unique_ptr<LocalStack>> Start(Options options);
  static absl::StatusOr<std::unique_ptr<LocalStack>> Start() { return Start(Options{}); }
  ~LocalStack();

  // "127.0.0.1:<port>"; port 0 before the server has first started.
  std::string Address(Server server) const;
  const std::string& pg_url() const { return pg_url_; }
  std::string redis_endpoint() const;
  const std::string& data_dir() const { return data_dir_; }
  const std::string& auth_secret() const { return auth_secret_; }
  std::string Token(Role role, const std::string& subject) const;

  absl::Status StartInfra();
  absl::Status StopInfra();
  absl::Status StartServer(Server server);
  absl::Status StartServers();
  // Sends `signal` (SIGTERM, SIGKILL) and waits; returns the exit status as waitpid reports it.
  absl::StatusOr<int> StopServer(Server server, int signal);
  absl::Status StopServers();
  // Runs a server binary with extra flags to completion (e.g. to see it fail fast).
  absl::StatusOr<int> RunServerToExit(Server server, const std::vector<std::string>& extra_flags,
                                      std::string* output);
  std::string ServerLog(Server server) const;
  // The server's process id; 0 when it is not running.
  pid_t ServerPid(Server server) const;
  // Waits until the lending outbox relay has published every event written so far (polling the
  // outbox through psql every 20 ms); DeadlineExceeded after `timeout`.
  absl::Status WaitForOutboxDrained(absl::Duration timeout) const;

 private:
  LocalStack() = default;
  std::vector<std::string> ServerArgs(Server server) const;
  std::string PortFile(Server server) const;
  absl::Status RunScript(const std::string& script, const std::string& verb) const;

  std::string data_dir_;
  int pg_port_ = 0;
  int redis_port_ = 0;
  std::map<Server, int> ports_;
  std::map<Server, pid_t> pids_;
  std::string pg_url_;
  std::string auth_secret_ = "integration-test-secret-0123456789";
};

const char* ServerName(Server server);

}  // namespace microlend::testing

#endif  // MICROLEND_TESTS_HARNESS_LOCAL_STACK_H_
