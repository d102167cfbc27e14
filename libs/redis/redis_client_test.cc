#include "redis/redis_client.h"

#include <cstdint>
#include <limits>
#include <string>

#include "gtest/gtest.h"

namespace microlend::redis {
namespace {

TEST(CommandBufferTest, EncodesCommandsBackToBackInTheRedisProtocol) {
  CommandBuffer buffer;
  buffer.Command(3).Arg("SET").Arg("k").Arg(int64_t{-42});
  buffer.Command(2).Arg("GET").Arg("");
  EXPECT_EQ(buffer.bytes(),
            "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\n-42\r\n"
            "*2\r\n$3\r\nGET\r\n$0\r\n\r\n");
  EXPECT_EQ(buffer.commands(), 2u);
  EXPECT_TRUE(buffer.complete());
}

TEST(CommandBufferTest, ArgumentsAreBinarySafe) {
  CommandBuffer buffer;
  const std::string binary("a\r\n\0b", 5);
  buffer.Command(1).Arg(binary);
  EXPECT_EQ(buffer.bytes(), std::string("*1\r\n$5\r\na\r\n\0b\r\n", 15));
}

TEST(CommandBufferTest, IntegersAreWrittenInFull) {
  CommandBuffer buffer;
  buffer.Command(2).Arg(std::numeric_limits<int64_t>::min()).Arg(int64_t{0});
  EXPECT_EQ(buffer.bytes(), "*2\r\n$20\r\n-9223372036854775808\r\n$1\r\n0\r\n");
}

TEST(CommandBufferTest, IsIncompleteUntilEveryAnnouncedArgumentIsGiven) {
  CommandBuffer buffer;
  buffer.Command(2).Arg("GET");
  EXPECT_FALSE(buffer.complete());
  buffer.Arg("k");
  EXPECT_TRUE(buffer.complete());
}

TEST(CommandBufferTest, ClearForgetsEverything) {
  CommandBuffer buffer;
  buffer.Command(2).Arg("GET");
  buffer.Clear();
  EXPECT_EQ(buffer.bytes(), "");
  EXPECT_EQ(buffer.commands(), 0u);
  EXPECT_TRUE(buffer.complete());
  buffer.Command(1).Arg("PING");
  EXPECT_EQ(buffer.bytes(), "*1\r\n$4\r\nPING\r\n");
}

TEST(CommandBufferDeathTest, MoreArgumentsThanAnnouncedCrash) {
  CommandBuffer buffer;
  buffer.Command(1).Arg("PING");
  EXPECT_DEATH(buffer.Arg("extra"), "more arguments than the command announced");
}

TEST(CommandBufferDeathTest, ACommandStartedBeforeTheLastEndedCrashes) {
  CommandBuffer buffer;
  buffer.Command(2).Arg("GET");
  EXPECT_DEATH(buffer.Command(1), "a command started before the last ended");
}

}  // namespace
}  // namespace microlend::redis
