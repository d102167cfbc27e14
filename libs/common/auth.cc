#include "common/auth.h"
#include "common/strings.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <nlohmann/json.hpp>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/check.h"

namespace microlend {
namespace {

constexpr std::string_view kHeader = R"({"alg":"HS256","typ":"JWT"})";

absl::Status Bad(std::string_view why) {
  return absl::UnauthenticatedError(absl::StrCat("invalid bearer token: ", AsAbsl(why)));
}

}  // namespace

std::string_view RoleName(Role role) {
  switch (role) {
    case Role::kLender:
      return "lender";
    case Role::kPartner:
      return "partner";
    case Role::kOps:
      return "ops";
    case Role::kService:
      return "service";
  }
  ML_CHECK(false, "unknown Role value");
  return "";
}

absl::StatusOr<Role> ParseRole(std::string_view name) {
  for (Role role : {Role::kLender, Role::kPartner, Role::kOps, Role::kService}) {
    if (RoleName(role) == name) return role;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown role \"", AsAbsl(name), "\" (expected lender, partner, ops or service)"));
}

absl::StatusOr<TokenSigner> TokenSigner::Create(std::string secret) {
  if (secret.size() < kMinSecretBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("auth secret must be at least ", kMinSecretBytes, " bytes"));
  }
  return TokenSigner(std::move(secret));
}

std::string TokenSigner::Sign(std::string_view signing_input) const {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  const unsigned char* ok = HMAC(EVP_sha256(), secret_.data(), static_cast<int>(secret_.size()),
                                 reinterpret_cast<const unsigned char*>(signing_input.data()),
                                 signing_input.size(), mac, &mac_len);
  ML_CHECK(ok != nullptr, "HMAC-SHA256 failed");
  return std::string(reinterpret_cast<const char*>(mac), mac_len);
}

std::string TokenSigner::Mint(const Principal& principal, absl::Time issued_at,
                              absl::Duration ttl) const {
  nlohmann::json claims = {{"sub", principal.subject},
                           {"role", std::string(RoleName(principal.role))},
                           {"iat", absl::ToUnixSeconds(issued_at)},
                           {"exp", absl::ToUnixSeconds(issued_at + ttl)}};
  std::string input = absl::StrCat(absl::WebSafeBase64Escape(AsAbsl(kHeader)), ".",
                                   absl::WebSafeBase64Escape(claims.dump()));
  return absl::StrCat(input, ".", absl::WebSafeBase64Escape(Sign(input)));
}

absl::StatusOr<Principal> TokenSigner::Verify(std::string_view token, absl::Time now) const {
  if (token.size() > kMaxTokenBytes) return Bad("too long");
  std::vector<absl::string_view> parts = absl::StrSplit(AsAbsl(token), '.');
  if (parts.size() != 3) return Bad("not a JWT");
  std::string header, payload, signature;
  if (!absl::WebSafeBase64Unescape(parts[0], &header) ||
      !absl::WebSafeBase64Unescape(parts[1], &payload) ||
      !absl::WebSafeBase64Unescape(parts[2], &signature)) {
    return Bad("not base64url");
  }
  std::string expected = Sign(token.substr(0, parts[0].size() + 1 + parts[1].size()));
  if (signature.size() != expected.size() ||
      CRYPTO_memcmp(signature.data(), expected.data(), expected.size()) != 0) {
    return Bad("bad signature");
  }
  nlohmann::json h = nlohmann::json::parse(header, nullptr, /*allow_exceptions=*/false);
  nlohmann::json c = nlohmann::json::parse(payload, nullptr, /*allow_exceptions=*/false);
  if (!h.is_object() || h.value("alg", "") != "HS256") return Bad("unsupported algorithm");
  if (!c.is_object() || !c.contains("sub") || !c["sub"].is_string() || !c.contains("role") ||
      !c["role"].is_string() || !c.contains("exp") || !c["exp"].is_number_integer()) {
    return Bad("missing claims");
  }
  if (absl::FromUnixSeconds(c["exp"].get<int64_t>()) <= now) return Bad("expired");
  absl::StatusOr<Role> role = ParseRole(c["role"].get<std::string>());
  if (!role.ok()) return Bad("unknown role");
  std::string subject = c["sub"].get<std::string>();
  if (subject.empty()) return Bad("empty subject");
  return Principal{std::move(subject), *role};
}

}  // namespace microlend
