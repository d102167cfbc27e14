#include "server/admin_service.h"

#include <unistd.h>

#include <chrono>

#include "absl/strings/str_cat.h"
#include "server/grpc_status.h"

namespace microlend {

common::v1::Role ToProtoRole(Role role) {
  switch (role) {
    case Role::kLender:
      return common::v1::ROLE_LENDER;
    case Role::kPartner:
      return common::v1::ROLE_PARTNER;
    case Role::kOps:
      return common::v1::ROLE_OPS;
    case Role::kService:
      return common::v1::ROLE_SERVICE;
  }
  return common::v1::ROLE_UNSPECIFIED;
}

AdminService::AdminService(std::string server_name, const GrpcAuthenticator* auth,
                           const Clock* clock, MigrationLister migrations,
                           std::vector<DependencyCheck> dependencies)
    : server_name_(std::move(server_name)),
      auth_(auth),
      clock_(clock),
      started_at_(clock->Now()),
      instance_id_(absl::StrCat(server_name_, "-", ::getpid())),
      migrations_(std::move(migrations)),
      dependencies_(std::move(dependencies)) {}

grpc::Status AdminService::WhoAmI(grpc::ServerContext* context, const common::v1::WhoAmIRequest*,
                                  common::v1::WhoAmIResponse* response) {
  absl::StatusOr<Principal> caller = auth_->Authenticate(*context);
  if (!caller.ok()) return ToGrpcStatus(caller.status());
  response->mutable_principal()->set_subject(caller->subject);
  response->mutable_principal()->set_role(ToProtoRole(caller->role));
  if (caller->role == Role::kLender) response->mutable_lender_id()->set_value(caller->subject);
  if (caller->role == Role::kPartner) response->mutable_partner_id()->set_value(caller->subject);
  return grpc::Status::OK;
}

grpc::Status AdminService::AdvanceClock(grpc::ServerContext* context,
                                        const common::v1::AdvanceClockRequest* request,
                                        common::v1::AdvanceClockResponse* response) {
  absl::StatusOr<Principal> caller = auth_->Authorize(*context, {Role::kOps});
  if (!caller.ok()) return ToGrpcStatus(caller.status());
  if (business_clock_ == nullptr) {
    return ToGrpcStatus(absl::FailedPreconditionError(
        "this server's clock is not controllable (start it with --clock_control)"));
  }
  if (request->seconds() <= 0) {
    return ToGrpcStatus(absl::InvalidArgumentError("seconds: must be positive"));
  }
  business_clock_->Advance(absl::Seconds(request->seconds()));
  const absl::Time now = business_clock_->Now();
  response->mutable_now()->set_seconds(absl::ToUnixSeconds(now));
  response->mutable_now()->set_nanos(static_cast<int32_t>(
      absl::ToInt64Nanoseconds(now - absl::FromUnixSeconds(absl::ToUnixSeconds(now)))));
  return grpc::Status::OK;
}

grpc::Status AdminService::GetServerStatus(grpc::ServerContext* context,
                                           const common::v1::GetServerStatusRequest*,
                                           common::v1::GetServerStatusResponse* response) {
  absl::StatusOr<Principal> caller = auth_->Authorize(*context, {Role::kOps, Role::kService});
  if (!caller.ok()) return ToGrpcStatus(caller.status());
  response->set_service(server_name_);
  response->set_version(MICROLEND_VERSION);
  response->mutable_started_at()->set_seconds(absl::ToUnixSeconds(started_at_));
  response->mutable_server_time()->set_seconds(absl::ToUnixSeconds(clock_->Now()));
  response->set_instance_id(instance_id_);
  if (migrations_) {
    absl::StatusOr<std::vector<MigrationInfo>> applied = migrations_();
    if (!applied.ok()) return ToGrpcStatus(applied.status());
    for (const MigrationInfo& m : *applied) {
      auto* out = response->add_migrations();
      out->set_version(m.version);
      out->set_name(m.name);
      out->mutable_applied_at()->set_seconds(absl::ToUnixSeconds(m.applied_at));
    }
  }
  for (const DependencyCheck& dep : dependencies_) {
    auto start = std::chrono::steady_clock::now();
    absl::Status s = dep.check();
    auto elapsed = std::chrono::steady_clock::now() - start;
    auto* out = response->add_dependencies();
    out->set_name(dep.name);
    out->set_endpoint(dep.endpoint);
    out->set_reachable(s.ok());
    out->set_detail(s.ok() ? "ok" : std::string(s.message()));
    out->set_latency_us(std::chrono::duration_cast<std::chrono::microseconds>(elapsed).count());
  }
  return grpc::Status::OK;
}

}  // namespace microlend
