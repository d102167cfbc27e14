#include "common/config.h"

#include "gtest/gtest.h"

namespace microlend {
namespace {

FlagSet Flags() {
  return FlagSet("prog", {{"port", "ML_PORT", "50051", "listen port"},
                          {"pg_url", "ML_PG_URL", "host=127.0.0.1", "PostgreSQL"}});
}

TEST(FlagSet, DefaultsApplyWhenNothingGiven) {
  FlagSet f = Flags();
  ASSERT_TRUE(f.ParseWithEnv({}, {}).ok());
  EXPECT_EQ(*f.GetInt("port"), 50051);
  EXPECT_EQ(f.GetString("pg_url"), "host=127.0.0.1");
}

TEST(FlagSet, CommandLineBeatsEnvironmentBeatsDefault) {
  FlagSet f = Flags();
  ASSERT_TRUE(f.ParseWithEnv({"--port=7"}, {{"ML_PORT", "8"}, {"ML_PG_URL", "x"}}).ok());
  EXPECT_EQ(*f.GetInt("port"), 7);
  EXPECT_EQ(f.GetString("pg_url"), "x");
  ASSERT_TRUE(f.ParseWithEnv({"--pg_url", "y"}, {}).ok());
  EXPECT_EQ(f.GetString("pg_url"), "y");
}

TEST(FlagSet, UnknownFlagIsInvalidArgument) {
  FlagSet f = Flags();
  absl::Status s = f.ParseWithEnv({"--prot=1"}, {});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(s.message()).find("--prot"), std::string::npos);
}

TEST(FlagSet, MissingValueAndPositionalAreInvalidArgument) {
  FlagSet f = Flags();
  EXPECT_EQ(f.ParseWithEnv({"--port"}, {}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(f.ParseWithEnv({"serve"}, {}).code(), absl::StatusCode::kInvalidArgument);
}

TEST(FlagSet, NonIntegerValueIsInvalidArgument) {
  FlagSet f = Flags();
  ASSERT_TRUE(f.ParseWithEnv({"--port=12ab"}, {}).ok());
  EXPECT_EQ(f.GetInt("port").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(FlagSet, HelpReturnsUsage) {
  FlagSet f = Flags();
  absl::Status s = f.ParseWithEnv({"--help"}, {});
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(std::string(s.message()).find("--pg_url"), std::string::npos);
}

}  // namespace
}  // namespace microlend
