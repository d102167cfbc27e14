#include "server/logging_interceptor.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>
#include <grpcpp/server_context.h>

#include <chrono>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/log.h"

namespace microlend {
namespace {

using grpc::experimental::InterceptionHookPoints;

constexpr size_t kMaxRequestIdChars = 128;

std::string RandomRequestId() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return absl::StrFormat("gen-%016x", rng());
}

std::string_view CodeName(grpc::StatusCode code) {
  static constexpr std::string_view kNames[] = {
      "OK",        "CANCELLED",         "UNKNOWN",          "INVALID_ARGUMENT",  "DEADLINE_EXCEEDED",
      "NOT_FOUND", "ALREADY_EXISTS",    "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
      "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",     "UNIMPLEMENTED",     "INTERNAL",
      "UNAVAILABLE", "DATA_LOSS",       "UNAUTHENTICATED"};
  size_t i = static_cast<size_t>(code);
  return i < std::size(kNames) ? kNames[i] : "UNKNOWN";
}

class LoggingInterceptor final : public grpc::experimental::Interceptor {
 public:
  explicit LoggingInterceptor(grpc::experimental::ServerRpcInfo* info)
      : info_(info), start_(std::chrono::steady_clock::now()) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_INITIAL_METADATA)) {
      auto* md = methods->GetRecvInitialMetadata();
      if (auto it = md->find("x-request-id"); it != md->end()) {
        request_id_.assign(it->second.data(), std::min(it->second.size(), kMaxRequestIdChars));
      }
    }
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_MESSAGE)) {
      ReadRequestIdField(methods->GetRecvMessage());
    }
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      Log(methods->GetSendStatus());
    }
    methods->Proceed();
  }

 private:
  // Our services are all protobuf-typed; grpc's own (health) may use raw buffers, so only
  // messages of microlend methods are inspected.
  void ReadRequestIdField(void* message) {
    if (message == nullptr || !request_id_from_body_.empty()) return;
    std::string_view method(info_->method());
    if (method.substr(0, 11) != "/microlend.") return;
    auto* msg = static_cast<google::protobuf::Message*>(message);
    const google::protobuf::FieldDescriptor* field =
        msg->GetDescriptor()->FindFieldByName("request_id");
    if (field == nullptr || field->type() != google::protobuf::FieldDescriptor::TYPE_STRING ||
        field->is_repeated()) {
      return;
    }
    std::string value = msg->GetReflection()->GetString(*msg, field);
    request_id_from_body_ = value.substr(0, kMaxRequestIdChars);
  }

  void Log(const grpc::Status& status) {
    auto elapsed = std::chrono::duration_cast<std::chrono::microseconds>(
        std::chrono::steady_clock::now() - start_);
    std::string id = !request_id_from_body_.empty() ? request_id_from_body_
                     : !request_id_.empty()         ? request_id_
                                                    : RandomRequestId();
    std::string duration = absl::StrCat(elapsed.count());
    std::string peer = info_->server_context() != nullptr ? info_->server_context()->peer() : "";
    LogInfo("rpc", {{"method", info_->method()},
                    {"code", CodeName(status.error_code())},
                    {"duration_us", duration},
                    {"request_id", id},
                    {"peer", peer},
                    {"error", status.ok() ? std::string_view() : status.error_message()}});
  }

  grpc::experimental::ServerRpcInfo* info_;
  std::chrono::steady_clock::time_point start_;
  std::string request_id_;
  std::string request_id_from_body_;
};

class LoggingInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new LoggingInterceptor(info);
  }
};

}  // namespace

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
MakeLoggingInterceptorFactory() {
  return std::make_unique<LoggingInterceptorFactory>();
}

}  // namespace microlend
