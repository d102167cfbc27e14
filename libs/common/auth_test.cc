#include "common/auth.h"

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace microlend {
namespace {

const absl::Time kNow = absl::FromUnixSeconds(1'800'000'000);

TokenSigner Signer(std::string secret = "0123456789abcdef-test") {
  return *TokenSigner::Create(std::move(secret));
}

TEST(TokenSigner, MintedTokenVerifiesToSamePrincipal) {
  Principal p{"lender-42", Role::kLender};
  std::string token = Signer().Mint(p, kNow, absl::Hours(1));
  absl::StatusOr<Principal> got = Signer().Verify(token, kNow + absl::Minutes(59));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, p);
}

TEST(TokenSigner, ShortSecretIsInvalidArgument) {
  EXPECT_EQ(TokenSigner::Create("short").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(TokenSigner, ExpiredTokenIsUnauthenticated) {
  std::string token = Signer().Mint({"ops-1", Role::kOps}, kNow, absl::Hours(1));
  absl::StatusOr<Principal> got = Signer().Verify(token, kNow + absl::Hours(1));
  EXPECT_EQ(got.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_NE(std::string(got.status().message()).find("expired"), std::string::npos);
}

TEST(TokenSigner, OtherSecretIsUnauthenticated) {
  std::string token =
      Signer("another-secret-0123456").Mint({"ops-1", Role::kOps}, kNow, absl::Hours(1));
  EXPECT_EQ(Signer().Verify(token, kNow).status().code(), absl::StatusCode::kUnauthenticated);
}

TEST(TokenSigner, TamperedPayloadIsUnauthenticated) {
  TokenSigner signer = Signer();
  std::string lender = signer.Mint({"lender-1", Role::kLender}, kNow, absl::Hours(1));
  std::string ops = signer.Mint({"lender-1", Role::kOps}, kNow, absl::Hours(1));
  // Splice the ops payload onto the lender's signature: a role escalation attempt.
  size_t l1 = lender.find('.'), l2 = lender.rfind('.');
  size_t o1 = ops.find('.'), o2 = ops.rfind('.');
  std::string forged =
      absl::StrCat(lender.substr(0, l1), ops.substr(o1, o2 - o1), lender.substr(l2));
  EXPECT_EQ(signer.Verify(forged, kNow).status().code(), absl::StatusCode::kUnauthenticated);
}

TEST(TokenSigner, GarbageIsUnauthenticated) {
  for (std::string_view bad : {"", "abc", "a.b", "a.b.c", "..", "a.b.c.d", "!!!.@@@.###"}) {
    EXPECT_EQ(Signer().Verify(bad, kNow).status().code(), absl::StatusCode::kUnauthenticated)
        << bad;
  }
  EXPECT_EQ(Signer().Verify(std::string(5000, 'a'), kNow).status().code(),
            absl::StatusCode::kUnauthenticated);
}

TEST(TokenSigner, EmptySubjectIsUnauthenticated) {
  std::string token = Signer().Mint({"", Role::kOps}, kNow, absl::Hours(1));
  EXPECT_EQ(Signer().Verify(token, kNow).status().code(), absl::StatusCode::kUnauthenticated);
}

TEST(Role, ParseRoundTripsAndRejectsUnknown) {
  for (Role r : {Role::kLender, Role::kPartner, Role::kOps, Role::kService}) {
    EXPECT_EQ(*ParseRole(RoleName(r)), r);
  }
  EXPECT_EQ(ParseRole("admin").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseRole("Ops").status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace microlend
