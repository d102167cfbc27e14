// Authentication and role checks for gRPC handlers: one call at the top of each handler,
//   ML_ASSIGN_OR_RETURN(Principal caller, auth.Authorize(*context, {Role::kOps}));
// reads `authorization: Bearer <jwt>` from the call metadata.
//   no token, a malformed header, a bad signature, an expired token -> Unauthenticated
//   a valid token whose role is not in `allowed`                     -> PermissionDenied
// Object-level rules (a lender only its own wallet) are the handler's job, using the principal.
// Health checking and reflection are separate services and never call this. Thread-safe.
#ifndef MICROLEND_SERVER_AUTH_GRPC_H_
#define MICROLEND_SERVER_AUTH_GRPC_H_

#include <grpcpp/server_context.h>

#include <initializer_list>

#include "absl/status/statusor.h"
#include "common/auth.h"
#include "common/clock.h"

namespace microlend {

class GrpcAuthenticator {
 public:
  // `clock` must outlive this object.
  GrpcAuthenticator(TokenSigner signer, const Clock* clock)
      : signer_(std::move(signer)), clock_(clock) {}

  absl::StatusOr<Principal> Authenticate(const grpc::ServerContext& context) const;
  absl::StatusOr<Principal> Authorize(const grpc::ServerContext& context,
                                      std::initializer_list<Role> allowed) const;

 private:
  TokenSigner signer_;
  const Clock* clock_;
};

}  // namespace microlend

#endif  // MICROLEND_SERVER_AUTH_GRPC_H_
