// Partner validation, status rules and PartnerDirectory (idempotency, optimistic locking)
// against the in-memory FakePartnerStore.
#include "services/lending/core/partners.h"

#include "common/strings.h"
#include "gtest/gtest.h"
#include "services/lending/testing/fake_partner_store.h"

namespace microlend::lending {
namespace {

const absl::Time kStart = absl::FromUnixSeconds(1'800'000'000);

NewPartner Valid(std::string name = "Kamurj Armenia") {
  return NewPartner{.name = std::move(name),
                    .countries = {"AM", "GE"},
                    .risk_rating_half_stars = 7,
                    .currency_loss_coverage_bps = 1000,
                    .credit_limit = *Money::Parse("50000", "USD")};
}

std::string Message(const absl::Status& status) { return std::string(AsStd(status.message())); }

RequestKey Key(std::string request_id, std::string body = "body",
               std::string method = "PartnerService.CreatePartner") {
  return RequestKey{.caller = "ops:alice", .request_id = std::move(request_id),
                    .method = std::move(method), .body_hash = std::move(body)};
}

// The payload is the partner's id and version: enough to see which result came back.
std::string Encode(const Partner& p) { return absl::StrCat(p.id.value(), "@", p.version); }

TEST(PartnerValidation, AcceptsAValidPartner) { EXPECT_TRUE(ValidateNewPartner(Valid()).ok()); }

TEST(PartnerValidation, NameMustBeOneTo200StorableCharacters) {
  NewPartner p = Valid("");
  EXPECT_EQ(ValidateNewPartner(p).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Message(ValidateNewPartner(p)), "name: is required");
  p.name = "   ";
  EXPECT_EQ(ValidateNewPartner(p).code(), absl::StatusCode::kInvalidArgument);
  p.name = std::string(200, 'x');
  EXPECT_TRUE(ValidateNewPartner(p).ok());
  p.name = std::string(201, 'x');
  EXPECT_EQ(Message(ValidateNewPartner(p)), "name: has 201 characters; at most 200 are allowed");
  p.name = "";
  for (int i = 0; i < 200; ++i) p.name += "\xC3\xA9";  // 200 characters, 400 bytes
  EXPECT_TRUE(ValidateNewPartner(p).ok());
  p.name = std::string("bad\0name", 8);
  EXPECT_EQ(ValidateNewPartner(p).code(), absl::StatusCode::kInvalidArgument);
  p.name = "bad \xC3";  // truncated UTF-8
  EXPECT_EQ(ValidateNewPartner(p).code(), absl::StatusCode::kInvalidArgument);
}

TEST(PartnerValidation, CountriesMustBeUniqueUpperCaseIsoCodes) {
  NewPartner p = Valid();
  p.countries = {};
  EXPECT_EQ(Message(ValidateNewPartner(p)), "countries: at least one country is required");
  for (const char* bad : {"ke", "KEN", "K", "", "XX", "ZZ", "1A", "K\xC3"}) {
    p.countries = {"UG", bad};
    absl::Status status = ValidateNewPartner(p);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_TRUE(Message(status).starts_with("countries[1]: ")) << Message(status);
  }
  p.countries = {"KE", "UG", "KE"};
  EXPECT_EQ(Message(ValidateNewPartner(p)), "countries[2]: \"KE\" is listed twice");
  p.countries = {"AD", "ZW", "SS", "XK"};
  EXPECT_EQ(ValidateNewPartner(p).code(), absl::StatusCode::kInvalidArgument);  // XK: not ISO
  p.countries = {"AD", "ZW", "SS"};
  EXPECT_TRUE(ValidateNewPartner(p).ok());
}

TEST(PartnerValidation, RatingIsZeroToTenHalfStars) {
  NewPartner p = Valid();
  for (int rating : {0, 1, 10}) {
    p.risk_rating_half_stars = rating;
    EXPECT_TRUE(ValidateNewPartner(p).ok()) << rating;
  }
  for (int rating : {-1, 11, 1000}) {
    p.risk_rating_half_stars = rating;
    EXPECT_EQ(ValidateNewPartner(p).code(), absl::StatusCode::kInvalidArgument) << rating;
  }
  p.risk_rating_half_stars = 11;
  EXPECT_EQ(Message(ValidateNewPartner(p)), "risk_rating_half_stars: 11 is outside 0..10");
}

TEST(PartnerValidation, CoverageIsZeroTo10000Bps) {
  NewPartner p = Valid();
  for (int bps : {0, 10000}) {
    p.currency_loss_coverage_bps = bps;
    EXPECT_TRUE(ValidateNewPartner(p).ok()) << bps;
  }
  for (int bps : {-1, 10001}) {
    p.currency_loss_coverage_bps = bps;
    EXPECT_TRUE(Message(ValidateNewPartner(p)).starts_with("currency_loss_coverage_bps: "));
  }
}

TEST(PartnerValidation, CreditLimitIsUsdAndNotNegative) {
  NewPartner p = Valid();
  p.credit_limit = Money::Zero(Currency::Usd());
  EXPECT_TRUE(ValidateNewPartner(p).ok());
  p.credit_limit = *Money::Parse("100", "KES");
  EXPECT_EQ(Message(ValidateNewPartner(p)), "credit_limit: must be USD, not KES");
  p.credit_limit = Money::FromMinor(Currency::Usd(), -1);
  EXPECT_EQ(ValidateNewPartner(p).code(), absl::StatusCode::kInvalidArgument);
}

TEST(PartnerValidation, WebsiteMustBeHttpUrl) {
  NewPartner p = Valid();
  p.website_url = "https://example.org/about";
  EXPECT_TRUE(ValidateNewPartner(p).ok());
  for (const char* bad : {"example.org", "ftp://example.org", "https://", "https://a b"}) {
    p.website_url = bad;
    EXPECT_TRUE(Message(ValidateNewPartner(p)).starts_with("website_url: ")) << bad;
  }
}

TEST(PartnerValidation, PatchMustNameAField) {
  EXPECT_EQ(Message(ValidatePatch(PartnerPatch{})), "update_mask: names no field to change");
  EXPECT_EQ(ValidatePatch(PartnerPatch{.countries = std::vector<std::string>{}}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(ValidatePatch(PartnerPatch{.description = ""}).ok());
}

TEST(PartnerStatusRules, ClosedIsFinal) {
  Partner p{.id = PartnerId(7)};
  for (PartnerStatus from : {PartnerStatus::kActive, PartnerStatus::kPaused}) {
    p.status = from;
    for (PartnerStatus to : {PartnerStatus::kActive, PartnerStatus::kPaused, PartnerStatus::kClosed})
      EXPECT_TRUE(CheckTransition(p, to).ok());
  }
  p.status = PartnerStatus::kClosed;
  absl::Status status = CheckTransition(p, PartnerStatus::kActive);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Message(status), "partner 7 is CLOSED; a closed partner cannot become ACTIVE");
}

Partner Capped(std::string_view usd) {
  return Partner{.id = PartnerId(7), .credit_limit = *Money::Parse(usd, "USD")};
}
Money Usd(std::string_view amount) { return *Money::Parse(amount, "USD"); }

TEST(PartnerCreditLimit, ExposurePlusTheLoanMayReachTheLimitButNotPassIt) {
  const PartnerExposure e{.fundraising_minor = 10'000, .funded_minor = 20'000,
                          .outstanding_minor = 30'000};
  EXPECT_TRUE(CheckCreditLimit(Capped("1000.00"), e, Usd("400.00"), CreditCheck::kApproval).ok());
  absl::Status over =
      CheckCreditLimit(Capped("1000.00"), e, Usd("400.01"), CreditCheck::kApproval);
  EXPECT_EQ(over.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Message(over),
            "loan of 400.01 USD would exceed partner 7's credit limit of 1000.00 USD: exposure "
            "600.00 USD (fundraising 100.00, funded 200.00, outstanding 300.00) + 400.01 = "
            "1000.01 USD");
}

TEST(PartnerCreditLimit, SubmissionCountsLoansInReviewApprovalDoesNot) {
  const PartnerExposure e{.review_loans = 2, .fundraising_loans = 1, .review_minor = 50'000,
                          .fundraising_minor = 40'000};
  EXPECT_TRUE(CheckCreditLimit(Capped("1000.00"), e, Usd("600.00"), CreditCheck::kApproval).ok());
  absl::Status submit =
      CheckCreditLimit(Capped("1000.00"), e, Usd("100.01"), CreditCheck::kSubmission);
  EXPECT_EQ(Message(submit),
            "loan of 100.01 USD would exceed partner 7's credit limit of 1000.00 USD: exposure "
            "900.00 USD (fundraising 400.00, funded 0.00, outstanding 0.00, in review 500.00) + "
            "100.01 = 1000.01 USD");
  EXPECT_TRUE(
      CheckCreditLimit(Capped("1000.00"), e, Usd("100.00"), CreditCheck::kSubmission).ok());
}

TEST(PartnerCreditLimit, ZeroLimitRefusesAnyLoan) {
  EXPECT_EQ(CheckCreditLimit(Capped("0"), {}, Usd("0.01"), CreditCheck::kSubmission).code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(PartnerCreditLimit, BrokenOrOverflowingExposureIsInternal) {
  EXPECT_EQ(CheckCreditLimit(Capped("1000.00"), {.outstanding_minor = -1}, Usd("1.00"),
                             CreditCheck::kApproval)
                .code(),
            absl::StatusCode::kInternal);
  const PartnerExposure huge{.fundraising_minor = INT64_MAX - 5, .funded_minor = 5};
  EXPECT_EQ(CheckCreditLimit(Capped("1000.00"), huge, Usd("0.01"), CreditCheck::kApproval).code(),
            absl::StatusCode::kInternal);
  EXPECT_EQ(CheckClosable(Capped("0"), {.funded_loans = -1}).code(), absl::StatusCode::kInternal);
}

TEST(PartnerCloseRule, LoansInReviewFundraisingOrFundedBlockClosing) {
  EXPECT_TRUE(CheckClosable(Capped("0"), {.outstanding_minor = 5'000}).ok());
  for (PartnerExposure open : {PartnerExposure{.review_loans = 1},
                               PartnerExposure{.fundraising_loans = 1},
                               PartnerExposure{.funded_loans = 1}}) {
    EXPECT_EQ(CheckClosable(Capped("0"), open).code(), absl::StatusCode::kFailedPrecondition);
  }
  absl::Status status = CheckClosable(
      Capped("0"), {.review_loans = 1, .fundraising_loans = 2, .funded_loans = 3});
  EXPECT_TRUE(Message(status).starts_with("partner 7 cannot be CLOSED while 6 of its loans are "
                                          "open (1 in REVIEW, 2 FUNDRAISING, 3 FUNDED)"))
      << status;
}

class PartnerDirectoryTest : public ::testing::Test {
 protected:
  Partner MustCreate(const std::string& rid, NewPartner partner = Valid()) {
    PartnerReply reply = directory_.Create(Key(rid), partner, Encode);
    EXPECT_TRUE(reply.status.ok()) << reply.status;
    return reply.partner.value_or(Partner{});
  }

  FakeClock clock_{kStart};
  FakePartnerStore store_;
  PartnerDirectory directory_{&store_, &clock_};
};

TEST_F(PartnerDirectoryTest, CreateStartsActiveAtVersionOne) {
  Partner p = MustCreate("r1");
  EXPECT_EQ(p.id, PartnerId(1));
  EXPECT_EQ(p.status, PartnerStatus::kActive);
  EXPECT_EQ(p.version, 1);
  EXPECT_EQ(p.created_at, kStart);
  EXPECT_EQ(*store_.Get(p.id), p);
}

TEST_F(PartnerDirectoryTest, InvalidCreateWritesNothing) {
  NewPartner bad = Valid();
  bad.countries = {"ke"};
  PartnerReply reply = directory_.Create(Key("r1"), bad, Encode);
  EXPECT_EQ(reply.status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_.partner_count(), 0u);
  EXPECT_EQ(store_.record_count(), 0u);
}

TEST_F(PartnerDirectoryTest, RetryReplaysAndDifferentBodyIsAlreadyExists) {
  Partner p = MustCreate("r1");
  PartnerReply again = directory_.Create(Key("r1"), Valid(), Encode);
  ASSERT_TRUE(again.status.ok());
  EXPECT_TRUE(again.replayed);
  EXPECT_EQ(again.payload, Encode(p));
  EXPECT_EQ(store_.partner_count(), 1u);

  PartnerReply other = directory_.Create(Key("r1", "other body"), Valid("Other"), Encode);
  EXPECT_EQ(other.status.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(store_.partner_count(), 1u);
}

TEST_F(PartnerDirectoryTest, DuplicateNameIgnoringCaseIsAlreadyExists) {
  MustCreate("r1");
  PartnerReply dup = directory_.Create(Key("r2", "b2"), Valid("KAMURJ armenia"), Encode);
  EXPECT_EQ(dup.status.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(Message(dup.status), "a partner named \"Kamurj Armenia\" exists (id 1)");
  EXPECT_EQ(store_.record_count(), 1u);
}

TEST_F(PartnerDirectoryTest, UnavailableStoreIsNotRemembered) {
  store_.FailNextMutation(absl::UnavailableError("db down"));
  EXPECT_EQ(directory_.Create(Key("r1"), Valid(), Encode).status.code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(store_.record_count(), 0u);
  EXPECT_FALSE(directory_.Create(Key("r1"), Valid(), Encode).replayed);
}

TEST_F(PartnerDirectoryTest, UpdateBumpsVersionAndStaleVersionIsAborted) {
  Partner p = MustCreate("r1");
  clock_.Advance(absl::Minutes(1));
  PartnerReply up = directory_.Update(Key("u1", "b", "U"), p.id,
                                      PartnerPatch{.description = "Rural lending"}, 1, Encode);
  ASSERT_TRUE(up.status.ok()) << up.status;
  EXPECT_EQ(up.partner->version, 2);
  EXPECT_EQ(up.partner->description, "Rural lending");
  EXPECT_EQ(up.partner->updated_at, kStart + absl::Minutes(1));

  PartnerReply stale = directory_.Update(Key("u2", "b", "U"), p.id,
                                         PartnerPatch{.risk_rating_half_stars = 3}, 1, Encode);
  EXPECT_EQ(stale.status.code(), absl::StatusCode::kAborted);
  EXPECT_EQ(store_.Get(p.id)->risk_rating_half_stars, 7);
  EXPECT_EQ(store_.Get(p.id)->version, 2);
}

TEST_F(PartnerDirectoryTest, UpdateToATakenNameIsAlreadyExists) {
  MustCreate("r1", Valid("A"));
  Partner b = MustCreate("r2", Valid("B"));
  PartnerReply up =
      directory_.Update(Key("u1", "b", "U"), b.id, PartnerPatch{.name = "a"}, 0, Encode);
  EXPECT_EQ(up.status.code(), absl::StatusCode::kAlreadyExists);
  // Renaming to itself in another case is fine.
  EXPECT_TRUE(
      directory_.Update(Key("u2", "b", "U"), b.id, PartnerPatch{.name = "b"}, 0, Encode).status.ok());
}

TEST_F(PartnerDirectoryTest, UpdateOfMissingPartnerIsNotFound) {
  PartnerReply up = directory_.Update(Key("u1", "b", "U"), PartnerId(42),
                                      PartnerPatch{.description = "x"}, 0, Encode);
  EXPECT_EQ(up.status.code(), absl::StatusCode::kNotFound);
}

TEST_F(PartnerDirectoryTest, PauseResumeCloseAndClosedIsFinal) {
  Partner p = MustCreate("r1");
  auto set = [&](const std::string& rid, PartnerStatus to) {
    return directory_.SetStatus(Key(rid, rid, "S"), p.id, to, "because", Encode);
  };
  ASSERT_TRUE(set("s1", PartnerStatus::kPaused).status.ok());
  EXPECT_EQ(store_.Get(p.id)->status, PartnerStatus::kPaused);
  EXPECT_EQ(store_.Get(p.id)->status_reason, "because");
  ASSERT_TRUE(set("s2", PartnerStatus::kActive).status.ok());
  ASSERT_TRUE(set("s3", PartnerStatus::kClosed).status.ok());
  PartnerReply reopen = set("s4", PartnerStatus::kActive);
  EXPECT_EQ(reopen.status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(Message(reopen.status).find("CLOSED"), std::string::npos);
  PartnerReply update = directory_.Update(Key("u1", "b", "U"), p.id,
                                          PartnerPatch{.description = "x"}, 0, Encode);
  EXPECT_EQ(update.status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(store_.Get(p.id)->version, 4);
}

TEST_F(PartnerDirectoryTest, CloseIsRefusedWhileLoansAreOpenAndWritesNothing) {
  Partner p = MustCreate("r1");
  PartnerExposure exposure{.fundraising_loans = 2};
  store_.SetExposureSource([&](PartnerId) { return exposure; });
  PartnerReply refused =
      directory_.SetStatus(Key("s1", "b", "S"), p.id, PartnerStatus::kClosed, "done", Encode);
  EXPECT_EQ(refused.status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(Message(refused.status).find("2 of its loans are open"), std::string::npos);
  EXPECT_EQ(*store_.Get(p.id), p);
  EXPECT_EQ(store_.record_count(), 1u);
  // Pausing does not look at the loans.
  ASSERT_TRUE(
      directory_.SetStatus(Key("s2", "b", "S"), p.id, PartnerStatus::kPaused, "x", Encode)
          .status.ok());
  exposure = PartnerExposure{.outstanding_minor = 100};
  PartnerReply closed =
      directory_.SetStatus(Key("s1", "b", "S"), p.id, PartnerStatus::kClosed, "done", Encode);
  ASSERT_TRUE(closed.status.ok()) << closed.status;
  EXPECT_FALSE(closed.replayed);
  EXPECT_EQ(store_.Get(p.id)->status, PartnerStatus::kClosed);
}

TEST_F(PartnerDirectoryTest, SetStatusRequiresAReason) {
  Partner p = MustCreate("r1");
  PartnerReply reply =
      directory_.SetStatus(Key("s1", "b", "S"), p.id, PartnerStatus::kPaused, "", Encode);
  EXPECT_EQ(Message(reply.status), "reason: is required");
  EXPECT_EQ(store_.Get(p.id)->status, PartnerStatus::kActive);
}

TEST_F(PartnerDirectoryTest, ListFiltersPagesAndCounts) {
  for (int i = 0; i < 5; ++i) {
    NewPartner p = Valid(absl::StrCat("P", i));
    p.countries = {i % 2 == 0 ? "KE" : "UG"};
    MustCreate(absl::StrCat("r", i), p);
  }
  ASSERT_TRUE(directory_.SetStatus(Key("s", "b", "S"), PartnerId(3), PartnerStatus::kPaused, "r",
                                   Encode).status.ok());
  Page<Partner> page = *store_.List(PartnerFilter{.country = "KE"}, PageSpec{.limit = 2});
  EXPECT_EQ(page.total_count, 3);
  ASSERT_EQ(page.items.size(), 2u);
  EXPECT_EQ(page.items[1].id, PartnerId(3));
  EXPECT_EQ(page.next_after_id, 3);
  page = *store_.List(PartnerFilter{.country = "KE"}, PageSpec{.limit = 2, .after_id = 3});
  ASSERT_EQ(page.items.size(), 1u);
  EXPECT_EQ(page.items[0].id, PartnerId(5));
  EXPECT_EQ(page.next_after_id, 0);
  page = *store_.List(PartnerFilter{.statuses = {PartnerStatus::kPaused}}, PageSpec{.limit = 10});
  ASSERT_EQ(page.items.size(), 1u);
  EXPECT_EQ(page.total_count, 1);
  EXPECT_EQ(store_.List({}, PageSpec{.limit = 0}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace microlend::lending
