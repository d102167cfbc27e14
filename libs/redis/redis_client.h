// A small synchronous Redis client over hiredis: connect with a timeout, run a command, ping.
// One connection, not thread-safe: give each thread its own client or guard it.
// Connection failures are Unavailable naming the endpoint; a Redis error reply is Internal with
// the server's message.
#ifndef MICROLEND_REDIS_REDIS_CLIENT_H_
#define MICROLEND_REDIS_REDIS_CLIENT_H_

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

struct redisContext;

namespace microlend::redis {

// Commands encoded in the Redis protocol (RESP), back to back, for Pipeline: no intermediate
// strings per argument, one buffer reused from round to round (Clear keeps its capacity).
//   buf.Command(3).Arg("SET").Arg("k").Arg(42);
// Each command must get exactly the number of arguments it announced (checked by Pipeline).
class CommandBuffer {
 public:
  CommandBuffer& Command(int argc);
  CommandBuffer& Arg(std::string_view a);
  CommandBuffer& Arg(int64_t a);
  void Clear();
  size_t commands() const { return commands_; }
  bool complete() const { return args_left_ == 0; }
  const std::string& bytes() const { return bytes_; }

 private:
  std::string bytes_;
  size_t commands_ = 0;
  int args_left_ = 0;
};

// A reply flattened to what callers need: nil, an integer, a string, or an array whose nested
// arrays are flattened depth-first into `elements` (XRANGE: id, field, value, ..., id, ...).
struct Reply {
  enum class Kind { kNil, kInteger, kString, kArray } kind = Kind::kNil;
  long long integer = 0;
  std::string str;
  std::vector<std::string> elements;
};

class RedisClient {
 public:
  // `endpoint` is "host:port".
  static absl::StatusOr<std::unique_ptr<RedisClient>> Connect(const std::string& endpoint,
                                                              absl::Duration timeout);
  ~RedisClient();
  RedisClient(const RedisClient&) = delete;
  RedisClient& operator=(const RedisClient&) = delete;

  // Arguments are passed binary-safe (no format string parsing).
  absl::StatusOr<Reply> Command(const std::vector<std::string>& args);
  absl::Status Ping();
  // Sends all commands at once and reads every reply; the first error reply or I/O failure is
  // returned (the others are still read, so the connection stays usable after a reply error).
  absl::Status Pipeline(const std::vector<std::vector<std::string>>& commands);
  // The same for commands already encoded. The bytes go out in slices of kPipelineSliceBytes:
  // hiredis copies (and after a partial write shifts) one slice at a time, not the whole
  // multi-megabyte pipeline. After an Unavailable error replies may be left unread: drop the
  // client.
  absl::Status Pipeline(const CommandBuffer& commands);
  static constexpr size_t kPipelineSliceBytes = 1024 * 1024;
  const std::string& endpoint() const { return endpoint_; }

 private:
  RedisClient(redisContext* ctx, std::string endpoint) : ctx_(ctx), endpoint_(std::move(endpoint)) {}

  redisContext* ctx_;
  std::string endpoint_;
};

// Connects, pings and disconnects: for dependency checks in status RPCs.
absl::Status Ping(const std::string& endpoint);

}  // namespace microlend::redis

#endif  // MICROLEND_REDIS_REDIS_CLIENT_H_
