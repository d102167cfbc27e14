// The one place where absl::Status becomes grpc::Status. The canonical codes are the same set,
// so the mapping keeps the code and the message as they are.
#ifndef MICROLEND_SERVER_GRPC_STATUS_H_
#define MICROLEND_SERVER_GRPC_STATUS_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace microlend {

grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace microlend

#endif  // MICROLEND_SERVER_GRPC_STATUS_H_
