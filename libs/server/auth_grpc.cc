#include "server/auth_grpc.h"
#include "common/strings.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace microlend {

absl::StatusOr<Principal> GrpcAuthenticator::Authenticate(
    const grpc::ServerContext& context) const {
  const auto& metadata = context.client_metadata();
  auto it = metadata.find("authorization");
  if (it == metadata.end()) {
    return absl::UnauthenticatedError("missing bearer token (metadata \"authorization: Bearer <token>\")");
  }
  std::string_view value(it->second.data(), it->second.size());
  constexpr std::string_view kPrefix = "Bearer ";
  if (value.substr(0, kPrefix.size()) != kPrefix) {
    return absl::UnauthenticatedError("authorization metadata must be \"Bearer <token>\"");
  }
  return signer_.Verify(value.substr(kPrefix.size()), clock_->Now());
}

absl::StatusOr<Principal> GrpcAuthenticator::Authorize(const grpc::ServerContext& context,
                                                       std::initializer_list<Role> allowed) const {
  absl::StatusOr<Principal> principal = Authenticate(context);
  if (!principal.ok()) return principal;
  for (Role role : allowed) {
    if (principal->role == role) return principal;
  }
  std::vector<absl::string_view> names;
  for (Role role : allowed) names.push_back(AsAbsl(RoleName(role)));
  return absl::PermissionDeniedError(absl::StrCat("role ", AsAbsl(RoleName(principal->role)),
                                                  " may not call this; allowed: ",
                                                  absl::StrJoin(names, ", ")));
}

}  // namespace microlend
