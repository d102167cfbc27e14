// microlend.common.v1.ServerAdmin, served by every microlend server:
//   WhoAmI           any authenticated role; echoes the caller's principal
//   GetServerStatus  ops and service roles; version, start time, applied migrations and the
//                    reachability of each dependency (checked live on every call)
// Thread-safe as long as the callbacks given to it are.
#ifndef MICROLEND_SERVER_ADMIN_SERVICE_H_
#define MICROLEND_SERVER_ADMIN_SERVICE_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/migration_info.h"
#include "microlend/common/v1/common.grpc.pb.h"
#include "server/auth_grpc.h"

namespace microlend {

struct DependencyCheck {
  std::string name;      // "postgresql", "redis", "lending"
  std::string endpoint;  // "127.0.0.1:54329/microlend"
  std::function<absl::Status()> check;
};

class AdminService final : public common::v1::ServerAdmin::Service {
 public:
  using MigrationLister = std::function<absl::StatusOr<std::vector<MigrationInfo>>()>;

  // `auth` and `clock` must outlive the service.
  AdminService(std::string server_name, const GrpcAuthenticator* auth, const Clock* clock,
               MigrationLister migrations, std::vector<DependencyCheck> dependencies);

  // Lets ops move `business_clock` forward through AdvanceClock (--clock_control); without it
  // AdvanceClock is FAILED_PRECONDITION. Call before serving.
  void EnableClockControl(OffsetClock* business_clock) { business_clock_ = business_clock; }

  grpc::Status WhoAmI(grpc::ServerContext* context, const common::v1::WhoAmIRequest* request,
                      common::v1::WhoAmIResponse* response) override;
  grpc::Status GetServerStatus(grpc::ServerContext* context,
                               const common::v1::GetServerStatusRequest* request,
                               common::v1::GetServerStatusResponse* response) override;
  grpc::Status AdvanceClock(grpc::ServerContext* context,
                            const common::v1::AdvanceClockRequest* request,
                            common::v1::AdvanceClockResponse* response) override;

 private:
  std::string server_name_;
  const GrpcAuthenticator* auth_;
  const Clock* clock_;
  absl::Time started_at_;
  std::string instance_id_;
  MigrationLister migrations_;
  OffsetClock* business_clock_ = nullptr;
  std::vector<DependencyCheck> dependencies_;
};

common::v1::Role ToProtoRole(Role role);

}  // namespace microlend

#endif  // MICROLEND_SERVER_ADMIN_SERVICE_H_
