#include "harness/local_stack.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/health_client.h"

namespace microlend::testing {
namespace {

constexpr absl::Duration kServerStartTimeout = absl::Seconds(60);
constexpr absl::Duration kServerStopTimeout = absl::Seconds(20);
constexpr int kInfraStartAttempts = 3;

std::string Tail(const std::string& path, size_t max_bytes = 4000) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  return s.size() > max_bytes ? s.substr(s.size() - max_bytes) : s;
}

pid_t Spawn(const std::vector<std::string>& argv, const std::string& log_path,
            const std::vector<std::string>& env) {
  pid_t pid = fork();
  if (pid != 0) return pid;
  int fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (fd >= 0) {
    dup2(fd, STDOUT_FILENO);
    dup2(fd, STDERR_FILENO);
    close(fd);
  }
  for (const std::string& kv : env) putenv(const_cast<char*>(kv.c_str()));
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  // Children must not inherit blocked signals from a test that blocked them.
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  execv(args[0], args.data());
  _exit(127);
}

absl::StatusOr<int> WaitExit(pid_t pid, absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  while (true) {
    int wstatus = 0;
    pid_t r = waitpid(pid, &wstatus, WNOHANG);
    if (r == pid) return wstatus;
    if (r < 0) return absl::InternalError("waitpid failed");
    if (absl::Now() > deadline) return absl::DeadlineExceededError("process did not exit");
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

// The port a server wrote to its port file; 0 while the file does not exist yet.
int ReadPort(const std::string& path) {
  std::ifstream in(path);
  int port = 0;
  if (!(in >> port)) return 0;
  return port;
}

}  // namespace

const char* ServerName(Server server) {
  switch (server) {
    case Server::kLending:
      return "lending";
    case Server::kMatching:
      return "matching";
    case Server::kNotify:
      return "notify";
  }
  return "?";
}

std::vector<int> PickFreePorts(int count) {
  // All sockets stay bound until every port is known, so the ports are distinct.
  std::vector<int> fds;
  std::vector<int> ports;
  for (int i = 0; i < count; ++i) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    socklen_t len = sizeof(addr);
    getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    fds.push_back(fd);
    ports.push_back(ntohs(addr.sin_port));
  }
  for (int fd : fds) close(fd);
  return ports;
}

int PickFreePort() { return PickFreePorts(1).front(); }

absl::StatusOr<std::unique_ptr<LocalStack>> LocalStack::Start(Options options) {
  std::unique_ptr<LocalStack> stack(new LocalStack());
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/microlend-it-XXXXXX");
  if (mkdtemp(pattern.data()) == nullptr) return absl::InternalError("mkdtemp failed");
  stack->data_dir_ = pattern;
  std::filesystem::permissions(stack->data_dir_, std::filesystem::perms(0755));
  // Another process (a test running in parallel) may take a picked port before PostgreSQL or
  // Redis binds it; both then fail to start, loudly, and are started again on other ports.
  for (int attempt = 1;; ++attempt) {
    std::vector<int> ports = PickFreePorts(2);
    stack->pg_port_ = ports[0];
    stack->redis_port_ = ports[1];
    stack->pg_url_ = absl::StrCat("host=127.0.0.1 port=", stack->pg_port_,
                                  " dbname=microlend user=microlend");
    absl::Status started = stack->StartInfra();
    if (started.ok()) break;
    (void)stack->StopInfra();
    if (attempt == kInfraStartAttempts) return started;
  }
  if (options.start_servers) {
    if (absl::Status s = stack->StartServers(); !s.ok()) return s;
  }
  return stack;
}

LocalStack::~LocalStack() {
  for (auto& [server, pid] : pids_) {
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
  }
  (void)StopInfra();
  if (std::getenv("MICROLEND_KEEP_TEST_DATA") == nullptr) {
    std::error_code ec;
    std::filesystem::remove_all(data_dir_, ec);
  }
}

absl::Status LocalStack::RunScript(const std::string& script, const std::string& verb) const {
  std::string cmd = absl::StrCat("ML_DATA_DIR=", data_dir_, " ML_PG_PORT=", pg_port_,
                                 " ML_REDIS_PORT=", redis_port_, " ", MICROLEND_SOURCE_DIR,
                                 "/infra/local/", script, " ", verb, " >>", data_dir_,
                                 "/infra.log 2>&1");
  if (std::system(cmd.c_str()) != 0) {
    return absl::UnavailableError(absl::StrCat(script, " ", verb, " failed:\n",
                                               Tail(data_dir_ + "/infra.log")));
  }
  return absl::OkStatus();
}

absl::Status LocalStack::StartInfra() {
  if (absl::Status s = RunScript("pg.sh", "start"); !s.ok()) return s;
  return RunScript("redis.sh", "start");
}

absl::Status LocalStack::StopInfra() {
  absl::Status pg = RunScript("pg.sh", "stop");
  absl::Status redis = RunScript("redis.sh", "stop");
  return pg.ok() ? redis : pg;
}

std::string LocalStack::Address(Server server) const {
  auto it = ports_.find(server);
  // Port 0 until the server first starts: it then binds a free port and reports it.
  return absl::StrCat("127.0.0.1:", it == ports_.end() ? 0 : it->second);
}

std::string LocalStack::PortFile(Server server) const {
  return absl::StrCat(data_dir_, "/", ServerName(server), ".port");
}

std::string LocalStack::redis_endpoint() const { return absl::StrCat("127.0.0.1:", redis_port_); }

std::string LocalStack::Token(Role role, const std::string& subject) const {
  return TokenSigner::Create(auth_secret_)->Mint({subject, role}, absl::Now(), absl::Hours(1));
}

std::vector<std::string> LocalStack::ServerArgs(Server server) const {
  std::string name = ServerName(server);
  std::vector<std::string> args = {absl::StrCat(MICROLEND_BINARY_DIR, "/services/", name, "/",
                                                name, "_server"),
                                   absl::StrCat("--listen=", Address(server)),
                                   absl::StrCat("--auth_secret=", auth_secret_),
                                   absl::StrCat("--pg_url=", pg_url_)};
  if (server != Server::kMatching) args.push_back(absl::StrCat("--redis=", redis_endpoint()));
  if (server == Server::kMatching) {
    args.push_back(absl::StrCat("--lending=", Address(Server::kLending)));
  }
  // Tests drive deadlines, arrears and default by moving the business clock, never by sleeping.
  if (server == Server::kLending) args.push_back("--clock_control=true");
  return args;
}

pid_t LocalStack::ServerPid(Server server) const {
  auto it = pids_.find(server);
  return it == pids_.end() ? 0 : it->second;
}

std::string LocalStack::ServerLog(Server server) const {
  return Tail(absl::StrCat(data_dir_, "/", ServerName(server), ".log"));
}

absl::Status LocalStack::StartServer(Server server) {
  if (pids_.count(server) != 0) return absl::FailedPreconditionError("already running");
  // The server writes its port file only once it has bound its port exclusively, so the health
  // check below reaches this server, never one of a test running in parallel.
  const std::string port_file = PortFile(server);
  std::remove(port_file.c_str());
  std::vector<std::string> args = ServerArgs(server);
  args.push_back(absl::StrCat("--port_file=", port_file));
  pid_t pid = Spawn(args, absl::StrCat(data_dir_, "/", ServerName(server), ".log"), {});
  pids_[server] = pid;
  absl::Time deadline = absl::Now() + kServerStartTimeout;
  while (true) {
    if (int port = ReadPort(port_file); port != 0) {
      ports_[server] = port;
      if (CheckHealth(Address(server), "", absl::Milliseconds(500)).ok()) return absl::OkStatus();
    }
    int wstatus = 0;
    if (waitpid(pid, &wstatus, WNOHANG) == pid) {
      pids_.erase(server);
      return absl::UnavailableError(absl::StrCat(ServerName(server), " exited during start:\n",
                                                 ServerLog(server)));
    }
    if (absl::Now() > deadline) {
      return absl::DeadlineExceededError(absl::StrCat(ServerName(server), " not SERVING in time:\n",
                                                      ServerLog(server)));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

absl::Status LocalStack::StartServers() {
  for (Server s : {Server::kLending, Server::kMatching, Server::kNotify}) {
    if (absl::Status st = StartServer(s); !st.ok()) return st;
  }
  return absl::OkStatus();
}

absl::StatusOr<int> LocalStack::StopServer(Server server, int signal) {
  auto it = pids_.find(server);
  if (it == pids_.end()) return absl::FailedPreconditionError("not running");
  pid_t pid = it->second;
  pids_.erase(it);
  kill(pid, signal);
  return WaitExit(pid, kServerStopTimeout);
}

absl::Status LocalStack::StopServers() {
  for (Server s : {Server::kNotify, Server::kMatching, Server::kLending}) {
    if (pids_.count(s) == 0) continue;
    absl::StatusOr<int> st = StopServer(s, SIGTERM);
    if (!st.ok()) return st.status();
  }
  return absl::OkStatus();
}

absl::StatusOr<int> LocalStack::RunServerToExit(Server server,
                                                const std::vector<std::string>& extra_flags,
                                                std::string* output) {
  std::vector<std::string> args = ServerArgs(server);
  args.insert(args.end(), extra_flags.begin(), extra_flags.end());
  std::string log = absl::StrCat(data_dir_, "/", ServerName(server), "-oneshot.log");
  std::remove(log.c_str());
  pid_t pid = Spawn(args, log, {});
  absl::StatusOr<int> status = WaitExit(pid, kServerStartTimeout);
  if (!status.ok()) {
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
  }
  *output = Tail(log);
  return status;
}

absl::Status LocalStack::WaitForOutboxDrained(absl::Duration timeout) const {
  const std::string query = absl::StrCat(
      "psql '", pg_url_, "' -tAc 'SELECT (SELECT coalesce(max(sequence), 0) FROM",
      " lending.outbox_events) - (SELECT last_sequence FROM lending.outbox_relay_cursor)'");
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    FILE* out = popen(query.c_str(), "r");
    if (out == nullptr) return absl::InternalError("psql failed to start");
    char line[64] = {0};
    const bool read = std::fgets(line, sizeof line, out) != nullptr;
    pclose(out);
    if (!read) return absl::InternalError("could not read the outbox backlog");
    if (std::atoll(line) <= 0) return absl::OkStatus();
    if (absl::Now() > deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("the outbox relay did not catch up in ", absl::FormatDuration(timeout)));
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
}

}  // namespace microlend::testing
