// PartnerService end to end: the real lending server on a real PostgreSQL. Partners are shared
// by every test of the suite, so each test uses its own names and counts relative to a
// starting total.
#include <grpcpp/support/status.h>

#include <atomic>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "harness/local_stack.h"
#include "harness/rpc.h"
#include "harness/shared_stack_test.h"
#include "microlend/lending/v1/lending.grpc.pb.h"

namespace microlend::testing {
namespace {

namespace lv1 = ::microlend::lending::v1;
using ::testing::HasSubstr;

class PartnersIntegrationTest : public SharedStackTest {
 protected:
  void SetUp() override {
    partners_ = lv1::PartnerService::NewStub(Channel(stack_->Address(Server::kLending)));
    ops_ = stack_->Token(Role::kOps, "ops-1");
  }

  static std::string Rid() { return "rid-" + std::to_string(next_rid_++); }

  static lv1::CreatePartnerRequest NewPartner(const std::string& name,
                                              std::vector<std::string> countries = {"KE"}) {
    lv1::CreatePartnerRequest req;
    req.set_request_id(Rid());
    req.set_name(name);
    for (const std::string& c : countries) req.add_countries(c);
    req.set_risk_rating_half_stars(6);
    *req.mutable_credit_limit() = M("250000.00");
    req.set_description("Group loans for smallholder farmers");
    req.set_website_url("https://example.org");
    return req;
  }

  grpc::Status Create(const lv1::CreatePartnerRequest& req, lv1::CreatePartnerResponse* out,
                      const std::string& token) {
    return partners_->CreatePartner(Ctx(token).get(), req, out);
  }

  lv1::Partner MustCreate(const std::string& name, std::vector<std::string> countries = {"KE"}) {
    lv1::CreatePartnerResponse out;
    grpc::Status s = Create(NewPartner(name, std::move(countries)), &out, ops_);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return out.partner();
  }

  int64_t Total(const lv1::ListPartnersRequest& req = {}) {
    lv1::ListPartnersResponse out;
    grpc::Status s = partners_->ListPartners(Ctx(ops_).get(), req, &out);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return out.page().total_count();
  }

  grpc::Status SetStatus(const lv1::Partner& p, lv1::PartnerStatus status,
                         lv1::SetPartnerStatusResponse* out, const std::string& rid = Rid()) {
    lv1::SetPartnerStatusRequest req;
    req.set_request_id(rid);
    *req.mutable_partner_id() = p.id();
    req.set_status(status);
    req.set_reason("portfolio review");
    return partners_->SetPartnerStatus(Ctx(ops_).get(), req, out);
  }

  grpc::Status Update(const std::string& token, const lv1::Partner& values,
                      std::vector<std::string> paths, lv1::UpdatePartnerResponse* out,
                      int64_t expected_version = 0) {
    lv1::UpdatePartnerRequest req;
    req.set_request_id(Rid());
    *req.mutable_partner() = values;
    for (const std::string& path : paths) req.mutable_update_mask()->add_paths(path);
    req.set_expected_version(expected_version);
    return partners_->UpdatePartner(Ctx(token).get(), req, out);
  }

  static std::atomic<int> next_rid_;
  std::unique_ptr<lv1::PartnerService::Stub> partners_;
  std::string ops_;
};

std::atomic<int> PartnersIntegrationTest::next_rid_{1};

TEST_F(PartnersIntegrationTest, OpsCreatesAnActivePartner) {
  lv1::CreatePartnerResponse out;
  lv1::CreatePartnerRequest req = NewPartner("Juhudi Kilimo", {"KE", "TZ"});
  ASSERT_TRUE(Create(req, &out, ops_).ok());
  const lv1::Partner& p = out.partner();
  EXPECT_FALSE(p.id().value().empty());
  EXPECT_EQ(p.status(), lv1::PARTNER_STATUS_ACTIVE);
  EXPECT_THAT(p.countries(), ::testing::ElementsAre("KE", "TZ"));
  EXPECT_EQ(p.currency_loss_coverage_bps(), 1000);  // the default
  EXPECT_EQ(p.credit_limit().amount(), "250000.00");
  EXPECT_EQ(p.version(), 1);
  EXPECT_FALSE(out.mutation().replayed());

  lv1::GetPartnerRequest get;
  *get.mutable_partner_id() = p.id();
  lv1::GetPartnerResponse got;
  ASSERT_TRUE(partners_->GetPartner(Ctx(stack_->Token(Role::kLender, "9")).get(), get, &got).ok());
  EXPECT_EQ(got.partner().SerializeAsString(), p.SerializeAsString());
}

TEST_F(PartnersIntegrationTest, OnlyOpsMayCreate) {
  const int64_t before = Total();
  lv1::CreatePartnerResponse out;
  lv1::CreatePartnerRequest req = NewPartner("Not Allowed MFI");
  EXPECT_EQ(Create(req, &out, stack_->Token(Role::kLender, "5")).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Create(req, &out, stack_->Token(Role::kPartner, "1")).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(partners_->CreatePartner(Ctx("").get(), req, &out).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(Total(), before);
}

TEST_F(PartnersIntegrationTest, DuplicateNameIgnoringCaseIsAlreadyExists) {
  lv1::Partner first = MustCreate("Hattha Kaksekar");
  lv1::CreatePartnerResponse out;
  grpc::Status s = Create(NewPartner("HATTHA kaksekar", {"KH"}), &out, ops_);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_THAT(s.error_message(), HasSubstr("(id " + first.id().value() + ")"));
}

TEST_F(PartnersIntegrationTest, RetryReplaysTheOriginal) {
  lv1::CreatePartnerRequest req = NewPartner("Fundacion Paraguaya", {"PY"});
  lv1::CreatePartnerResponse first, again;
  ASSERT_TRUE(Create(req, &first, ops_).ok());
  const int64_t total = Total();
  ASSERT_TRUE(Create(req, &again, ops_).ok());
  EXPECT_TRUE(again.mutation().replayed());
  EXPECT_EQ(again.partner().SerializeAsString(), first.partner().SerializeAsString());
  EXPECT_EQ(Total(), total);

  req.set_description("a different body");
  EXPECT_EQ(Create(req, &again, ops_).error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(Total(), total);
}

TEST_F(PartnersIntegrationTest, InvalidInputWritesNothing) {
  const int64_t before = Total();
  struct Case {
    std::function<void(lv1::CreatePartnerRequest&)> spoil;
    std::string field;
  };
  std::vector<Case> cases = {
      {[](auto& r) { r.clear_countries(); }, "countries"},
      {[](auto& r) { r.set_countries(0, "ke"); }, "countries[0]"},
      {[](auto& r) { r.set_countries(0, "XX"); }, "countries[0]"},
      {[](auto& r) { r.add_countries("KE"); }, "countries[1]"},
      {[](auto& r) { r.set_risk_rating_half_stars(11); }, "risk_rating_half_stars"},
      {[](auto& r) { r.set_risk_rating_half_stars(-1); }, "risk_rating_half_stars"},
      {[](auto& r) { r.set_currency_loss_coverage_bps(10001); }, "currency_loss_coverage_bps"},
      {[](auto& r) { r.set_currency_loss_coverage_bps(-5); }, "currency_loss_coverage_bps"},
      {[](auto& r) { *r.mutable_credit_limit() = M("10", "KES"); }, "credit_limit"},
      {[](auto& r) { *r.mutable_credit_limit() = M("10.001"); }, "credit_limit"},
      {[](auto& r) { r.clear_credit_limit(); }, "credit_limit"},
      {[](auto& r) { r.set_name(""); }, "name"},
      {[](auto& r) { r.set_request_id(""); }, "request_id"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    lv1::CreatePartnerRequest req = NewPartner("Invalid " + std::to_string(i));
    cases[i].spoil(req);
    lv1::CreatePartnerResponse out;
    grpc::Status s = Create(req, &out, ops_);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << i;
    EXPECT_THAT(s.error_message(), HasSubstr(cases[i].field + ":")) << i;
  }
  EXPECT_EQ(Total(), before);
}

TEST_F(PartnersIntegrationTest, PauseResumeCloseAndClosedIsFinal) {
  lv1::Partner p = MustCreate("Crediamigo");
  lv1::SetPartnerStatusResponse out;
  ASSERT_TRUE(SetStatus(p, lv1::PARTNER_STATUS_PAUSED, &out).ok());
  EXPECT_EQ(out.partner().status(), lv1::PARTNER_STATUS_PAUSED);
  EXPECT_EQ(out.partner().status_reason(), "portfolio review");
  ASSERT_TRUE(SetStatus(p, lv1::PARTNER_STATUS_ACTIVE, &out).ok());
  EXPECT_EQ(out.partner().status(), lv1::PARTNER_STATUS_ACTIVE);
  const std::string close_rid = Rid();
  ASSERT_TRUE(SetStatus(p, lv1::PARTNER_STATUS_CLOSED, &out, close_rid).ok());
  EXPECT_EQ(out.partner().version(), 4);
  // The close retried is replayed, not refused as a transition out of CLOSED.
  lv1::SetPartnerStatusResponse replay;
  ASSERT_TRUE(SetStatus(p, lv1::PARTNER_STATUS_CLOSED, &replay, close_rid).ok());
  EXPECT_TRUE(replay.mutation().replayed());

  grpc::Status reopen = SetStatus(p, lv1::PARTNER_STATUS_ACTIVE, &out);
  EXPECT_EQ(reopen.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(reopen.error_message(), HasSubstr("CLOSED"));
  lv1::Partner values;
  *values.mutable_id() = p.id();
  values.set_description("reopened?");
  lv1::UpdatePartnerResponse up;
  EXPECT_EQ(Update(ops_, values, {"description"}, &up).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(SetStatus(p, lv1::PARTNER_STATUS_UNSPECIFIED, &out).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(PartnersIntegrationTest, PartnerUpdatesOnlyItsOwnProfileText) {
  lv1::Partner p = MustCreate("Kashf Foundation", {"PK"});
  lv1::Partner other = MustCreate("Akhuwat", {"PK"});
  const std::string self = stack_->Token(Role::kPartner, p.id().value());
  lv1::Partner values;
  *values.mutable_id() = p.id();
  values.set_description("Women-led lending since 1996");
  values.set_website_url("https://kashf.example");
  values.set_risk_rating_half_stars(10);
  lv1::UpdatePartnerResponse out;
  ASSERT_TRUE(Update(self, values, {"description", "website_url"}, &out).ok());
  EXPECT_EQ(out.partner().description(), "Women-led lending since 1996");
  EXPECT_EQ(out.partner().risk_rating_half_stars(), 6);
  EXPECT_EQ(out.partner().version(), 2);

  EXPECT_EQ(Update(self, values, {"risk_rating_half_stars"}, &out).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  *values.mutable_id() = other.id();
  EXPECT_EQ(Update(self, values, {"description"}, &out).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Update(stack_->Token(Role::kLender, "3"), values, {"description"}, &out).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);

  *values.mutable_id() = p.id();
  lv1::GetPartnerRequest get;
  *get.mutable_partner_id() = p.id();
  lv1::GetPartnerResponse got;
  ASSERT_TRUE(partners_->GetPartner(Ctx(ops_).get(), get, &got).ok());
  EXPECT_EQ(got.partner().risk_rating_half_stars(), 6);
  EXPECT_EQ(got.partner().version(), 2);

  // Ops may change the rating; a stale expected_version is ABORTED.
  ASSERT_TRUE(Update(ops_, values, {"risk_rating_half_stars"}, &out, 2).ok());
  EXPECT_EQ(out.partner().risk_rating_half_stars(), 10);
  EXPECT_EQ(Update(ops_, values, {"risk_rating_half_stars"}, &out, 2).error_code(),
            grpc::StatusCode::ABORTED);
  EXPECT_EQ(Update(ops_, values, {"status"}, &out).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Update(ops_, values, {"no_such_field"}, &out).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Update(ops_, values, {}, &out).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(PartnersIntegrationTest, ListFiltersAndPages) {
  // Rwanda and Burundi are used by this test only.
  lv1::Partner a = MustCreate("Urwego", {"RW"});
  lv1::Partner b = MustCreate("Vision Fund Rwanda", {"RW", "BI"});
  lv1::Partner c = MustCreate("Hope Burundi", {"BI"});
  lv1::SetPartnerStatusResponse paused;
  ASSERT_TRUE(SetStatus(b, lv1::PARTNER_STATUS_PAUSED, &paused).ok());

  lv1::ListPartnersRequest req;
  req.set_country("RW");
  req.mutable_page()->set_page_size(1);
  lv1::ListPartnersResponse page1, page2, page3;
  ASSERT_TRUE(partners_->ListPartners(Ctx(ops_).get(), req, &page1).ok());
  ASSERT_EQ(page1.partners_size(), 1);
  EXPECT_EQ(page1.partners(0).id().value(), a.id().value());
  EXPECT_EQ(page1.page().total_count(), 2);
  ASSERT_FALSE(page1.page().next_page_token().empty());
  req.mutable_page()->set_page_token(page1.page().next_page_token());
  ASSERT_TRUE(partners_->ListPartners(Ctx(ops_).get(), req, &page2).ok());
  ASSERT_EQ(page2.partners_size(), 1);
  EXPECT_EQ(page2.partners(0).id().value(), b.id().value());
  EXPECT_TRUE(page2.page().next_page_token().empty());

  lv1::ListPartnersRequest by_status;
  by_status.set_country("BI");
  by_status.add_statuses(lv1::PARTNER_STATUS_ACTIVE);
  ASSERT_TRUE(
      partners_->ListPartners(Ctx(stack_->Token(Role::kPartner, "77")).get(), by_status, &page3)
          .ok());
  ASSERT_EQ(page3.partners_size(), 1);
  EXPECT_EQ(page3.partners(0).id().value(), c.id().value());

  lv1::ListPartnersRequest bad;
  bad.set_country("rw");
  lv1::ListPartnersResponse out;
  EXPECT_EQ(partners_->ListPartners(Ctx(ops_).get(), bad, &out).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  bad.set_country("");
  bad.mutable_page()->set_page_token("not-a-token");
  EXPECT_EQ(partners_->ListPartners(Ctx(ops_).get(), bad, &out).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(partners_->ListPartners(Ctx("").get(), lv1::ListPartnersRequest(), &out).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
}

TEST_F(PartnersIntegrationTest, GetMissingPartnerAndItsStatsAreNotFound) {
  lv1::GetPartnerRequest get;
  get.mutable_partner_id()->set_value("999999");
  lv1::GetPartnerResponse got;
  EXPECT_EQ(partners_->GetPartner(Ctx(ops_).get(), get, &got).error_code(),
            grpc::StatusCode::NOT_FOUND);
  lv1::GetPartnerStatsRequest stats;
  stats.mutable_partner_id()->set_value("999999");
  lv1::GetPartnerStatsResponse out;
  EXPECT_EQ(partners_->GetPartnerStats(Ctx(ops_).get(), stats, &out).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

}  // namespace
}  // namespace microlend::testing
