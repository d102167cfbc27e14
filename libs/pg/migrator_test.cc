// The migrator against a real PostgreSQL (started on a free port by the test harness).
#include "pg/migrator.h"

#include "gtest/gtest.h"
#include "harness/local_stack.h"
#include "pg/connect.h"

namespace microlend::pg {
namespace {

class MigratorTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto s = testing::LocalStack::Start({.start_servers = false});
    ASSERT_TRUE(s.ok()) << s.status();
    stack_ = s->release();
  }
  static void TearDownTestSuite() { delete stack_; }

  void SetUp() override {
    auto c = Connect(stack_->pg_url());
    ASSERT_TRUE(c.ok()) << c.status();
    conn_ = std::move(*c);
  }

  int64_t Count(const std::string& sql) {
    pqxx::nontransaction tx(*conn_);
    return tx.exec(sql)[0][0].as<int64_t>();
  }

  static testing::LocalStack* stack_;
  std::unique_ptr<pqxx::connection> conn_;
};
testing::LocalStack* MigratorTest::stack_ = nullptr;

const std::vector<Migration> kTwo = {
    {1, "create_t", "CREATE TABLE t (id BIGINT PRIMARY KEY)"},
    {2, "seed_t", "INSERT INTO t VALUES (1), (2)"},
};

TEST_F(MigratorTest, AppliesInOrderAndRunningTwiceChangesNothing) {
  auto first = ApplyMigrations(*conn_, "mig_twice", kTwo);
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_EQ(first->size(), 2u);
  EXPECT_EQ((*first)[0].version, 1);
  EXPECT_EQ((*first)[1].name, "seed_t");
  auto second = ApplyMigrations(*conn_, "mig_twice", kTwo);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->size(), 2u);
  EXPECT_EQ((*second)[0].applied_at, (*first)[0].applied_at);
  // The seed ran once, not twice (it would have failed on the primary key anyway).
  EXPECT_EQ(Count("SELECT count(*) FROM mig_twice.t"), 2);
}

TEST_F(MigratorTest, NewMigrationIsAppliedOnTopOfOldOnes) {
  ASSERT_TRUE(ApplyMigrations(*conn_, "mig_grow", kTwo).ok());
  std::vector<Migration> three = kTwo;
  three.push_back({3, "more", "INSERT INTO t VALUES (3)"});
  auto applied = ApplyMigrations(*conn_, "mig_grow", three);
  ASSERT_TRUE(applied.ok()) << applied.status();
  EXPECT_EQ(applied->size(), 3u);
  EXPECT_EQ(Count("SELECT count(*) FROM mig_grow.t"), 3);
}

TEST_F(MigratorTest, ChangedAppliedMigrationIsFailedPrecondition) {
  ASSERT_TRUE(ApplyMigrations(*conn_, "mig_changed", kTwo).ok());
  std::vector<Migration> edited = kTwo;
  edited[1].sql = "INSERT INTO t VALUES (1), (2), (99)";
  auto result = ApplyMigrations(*conn_, "mig_changed", edited);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(std::string(result.status().message()).find("2_seed_t"), std::string::npos);
  EXPECT_EQ(Count("SELECT count(*) FROM mig_changed.t"), 2);
}

TEST_F(MigratorTest, FailingMigrationLeavesSchemaAsItWas) {
  std::vector<Migration> broken = {
      {1, "create_t", "CREATE TABLE t (id BIGINT PRIMARY KEY)"},
      {2, "bad", "INSERT INTO no_such_table VALUES (1)"},
  };
  auto result = ApplyMigrations(*conn_, "mig_broken", broken);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInternal);
  // Nothing of the batch survived: not the table, not the record, not even the schema.
  EXPECT_EQ(Count("SELECT count(*) FROM information_schema.schemata WHERE schema_name = 'mig_broken'"),
            0);
}

TEST_F(MigratorTest, UnreachableDatabaseIsUnavailableNamingEndpoint) {
  int port = testing::PickFreePort();
  auto conn = Connect("host=127.0.0.1 port=" + std::to_string(port) + " dbname=x user=y");
  EXPECT_EQ(conn.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(std::string(conn.status().message()).find("127.0.0.1:" + std::to_string(port)),
            std::string::npos);
}

}  // namespace
}  // namespace microlend::pg
