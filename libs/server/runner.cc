#include "server/runner.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/resource_quota.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "server/logging_interceptor.h"

namespace microlend {
namespace {

sigset_t TerminationSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  return set;
}

// Writes `port` to `path` through a temporary file and a rename, so that a reader never sees a
// partly written number.
absl::Status WritePortFile(const std::string& path, int port) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << port << "\n";
    if (!out.flush()) return absl::UnavailableError(absl::StrCat("cannot write ", tmp));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::UnavailableError(absl::StrCat("cannot rename ", tmp, " to ", path));
  }
  return absl::OkStatus();
}

}  // namespace

void BlockTerminationSignals() {
  sigset_t set = TerminationSignals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

absl::Status RunServer(const ServerOptions& options,
                       const std::vector<RegisteredService>& services) {
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();

  grpc::ServerBuilder builder;
  // Exclusive bind: with gRPC's default SO_REUSEPORT, a second server started on a taken port
  // would bind it too and the kernel would split new connections between the two.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  int selected_port = 0;
  builder.AddListeningPort(options.listen_address, grpc::InsecureServerCredentials(),
                           &selected_port);
  builder.SetMaxReceiveMessageSize(options.max_receive_message_bytes);
  grpc::ResourceQuota quota(absl::StrCat(options.server_name, "-quota"));
  quota.SetMaxThreads(options.max_threads);
  builder.SetResourceQuota(quota);
  for (const RegisteredService& s : services) builder.RegisterService(s.service);
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(MakeLoggingInterceptorFactory());
  builder.experimental().SetInterceptorCreators(std::move(interceptors));

  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || selected_port == 0) {
    return absl::UnavailableError(absl::StrCat(options.server_name, ": cannot listen on ",
                                               options.listen_address, " (port in use?)"));
  }
  grpc::HealthCheckServiceInterface* health = server->GetHealthCheckService();
  health->SetServingStatus("", true);
  for (const RegisteredService& s : services) health->SetServingStatus(s.full_name, true);
  if (!options.port_file.empty()) {
    if (absl::Status s = WritePortFile(options.port_file, selected_port); !s.ok()) {
      server->Shutdown();
      return s;
    }
  }
  LogInfo("server_started", {{"server", options.server_name},
                             {"address", options.listen_address},
                             {"port", absl::StrCat(selected_port)}});

  sigset_t set = TerminationSignals();
  int signal_number = 0;
  sigwait(&set, &signal_number);
  LogInfo("server_stopping", {{"server", options.server_name},
                              {"signal", signal_number == SIGTERM ? "SIGTERM" : "SIGINT"}});
  health->Shutdown();  // every service reports NOT_SERVING from here on
  server->Shutdown(std::chrono::system_clock::now() +
                   absl::ToChronoMilliseconds(options.shutdown_grace));
  server->Wait();
  LogInfo("server_stopped", {{"server", options.server_name}});
  return absl::OkStatus();
}

}  // namespace microlend
