// Bearer tokens: an HMAC-SHA256 signed JWT (HS256) carrying a principal {subject, role}.
//
// Claims: `sub` (the principal's id, e.g. a lender id), `role` (lender | partner | ops |
// service), `iat` and `exp` (Unix seconds). Verify() accepts only alg HS256 with a valid
// signature (constant-time compare), an unexpired `exp`, a non-empty subject and a known role;
// every failure is Unauthenticated with a short reason that reveals nothing about the secret.
// TokenSigner is immutable after construction and thread-safe.
#ifndef MICROLEND_COMMON_AUTH_H_
#define MICROLEND_COMMON_AUTH_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace microlend {

enum class Role { kLender, kPartner, kOps, kService };

std::string_view RoleName(Role role);
absl::StatusOr<Role> ParseRole(std::string_view name);

struct Principal {
  std::string subject;
  Role role;
  friend bool operator==(const Principal&, const Principal&) = default;
};

class TokenSigner {
 public:
  static constexpr size_t kMinSecretBytes = 16;
  static constexpr size_t kMaxTokenBytes = 4096;

  // InvalidArgument when the secret is shorter than kMinSecretBytes.
  static absl::StatusOr<TokenSigner> Create(std::string secret);

  std::string Mint(const Principal& principal, absl::Time issued_at, absl::Duration ttl) const;
  absl::StatusOr<Principal> Verify(std::string_view token, absl::Time now) const;

 private:
  explicit TokenSigner(std::string secret) : secret_(std::move(secret)) {}
  std::string Sign(std::string_view signing_input) const;

  std::string secret_;
};

}  // namespace microlend

#endif  // MICROLEND_COMMON_AUTH_H_
