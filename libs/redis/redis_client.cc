#include "redis/redis_client.h"

#include <hiredis/hiredis.h>

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/check.h"

namespace microlend::redis {
namespace {

// Depth-first leaves of a (possibly nested) array reply; integers as decimal text.
void Flatten(const redisReply* r, std::vector<std::string>* out) {
  if (r->type == REDIS_REPLY_ARRAY) {
    for (size_t i = 0; i < r->elements; ++i) Flatten(r->element[i], out);
  } else if (r->type == REDIS_REPLY_INTEGER) {
    out->push_back(std::to_string(r->integer));
  } else {
    out->emplace_back(r->str != nullptr ? std::string(r->str, r->len) : std::string());
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<RedisClient>> RedisClient::Connect(const std::string& endpoint,
                                                                  absl::Duration timeout) {
  size_t colon = endpoint.rfind(':');
  int port = 0;
  if (colon == std::string::npos || !absl::SimpleAtoi(endpoint.substr(colon + 1), &port)) {
    return absl::InvalidArgumentError(absl::StrCat("Redis endpoint \"", endpoint,
                                                   "\" must be host:port"));
  }
  timeval tv = absl::ToTimeval(timeout);
  redisContext* ctx = redisConnectWithTimeout(endpoint.substr(0, colon).c_str(), port, tv);
  if (ctx == nullptr || ctx->err != 0) {
    std::string why = ctx != nullptr ? ctx->errstr : "out of memory";
    if (ctx != nullptr) redisFree(ctx);
    return absl::UnavailableError(absl::StrCat("Redis at ", endpoint, " is unreachable: ", why));
  }
  redisSetTimeout(ctx, tv);
  return std::unique_ptr<RedisClient>(new RedisClient(ctx, endpoint));
}

RedisClient::~RedisClient() { redisFree(ctx_); }

absl::StatusOr<Reply> RedisClient::Command(const std::vector<std::string>& args) {
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  for (const std::string& a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  auto* raw = static_cast<redisReply*>(
      redisCommandArgv(ctx_, static_cast<int>(argv.size()), argv.data(), lens.data()));
  if (raw == nullptr) {
    return absl::UnavailableError(absl::StrCat("Redis at ", endpoint_, ": ", ctx_->errstr));
  }
  std::unique_ptr<redisReply, void (*)(void*)> reply(raw, freeReplyObject);
  Reply out;
  switch (raw->type) {
    case REDIS_REPLY_ERROR:
      return absl::InternalError(absl::StrCat("Redis error: ", std::string(raw->str, raw->len)));
    case REDIS_REPLY_INTEGER:
      out.kind = Reply::Kind::kInteger;
      out.integer = raw->integer;
      break;
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
      out.kind = Reply::Kind::kString;
      out.str.assign(raw->str, raw->len);
      break;
    case REDIS_REPLY_ARRAY:
      out.kind = Reply::Kind::kArray;
      Flatten(raw, &out.elements);
      break;
    default:
      break;
  }
  return out;
}

CommandBuffer& CommandBuffer::Command(int argc) {
  ML_CHECK(args_left_ == 0 && argc > 0, "CommandBuffer: a command started before the last ended");
  bytes_.push_back('*');
  absl::StrAppend(&bytes_, argc);
  bytes_.append("\r\n");
  args_left_ = argc;
  ++commands_;
  return *this;
}

CommandBuffer& CommandBuffer::Arg(std::string_view a) {
  ML_CHECK(args_left_ > 0, "CommandBuffer: more arguments than the command announced");
  bytes_.push_back('$');
  absl::StrAppend(&bytes_, a.size());
  bytes_.append("\r\n");
  bytes_.append(a);
  bytes_.append("\r\n");
  --args_left_;
  return *this;
}

CommandBuffer& CommandBuffer::Arg(int64_t a) {
  char digits[absl::numbers_internal::kFastToBufferSize];
  char* end = absl::numbers_internal::FastIntToBuffer(a, digits);
  return Arg(std::string_view(digits, static_cast<size_t>(end - digits)));
}

void CommandBuffer::Clear() {
  bytes_.clear();
  commands_ = 0;
  args_left_ = 0;
}

absl::Status RedisClient::Pipeline(const std::vector<std::vector<std::string>>& commands) {
  CommandBuffer buffer;
  for (const auto& args : commands) {
    buffer.Command(static_cast<int>(args.size()));
    for (const std::string& a : args) buffer.Arg(a);
  }
  return Pipeline(buffer);
}

absl::Status RedisClient::Pipeline(const CommandBuffer& commands) {
  ML_CHECK(commands.complete(), "RedisClient::Pipeline: the last command lacks arguments");
  auto unavailable = [&] {
    return absl::UnavailableError(absl::StrCat("Redis at ", endpoint_, ": ", ctx_->errstr));
  };
  const std::string& bytes = commands.bytes();
  for (size_t at = 0; at < bytes.size(); at += kPipelineSliceBytes) {
    const size_t len = std::min(kPipelineSliceBytes, bytes.size() - at);
    if (redisAppendFormattedCommand(ctx_, bytes.data() + at, len) != REDIS_OK) return unavailable();
    int done = 0;
    while (done == 0) {
      if (redisBufferWrite(ctx_, &done) != REDIS_OK) return unavailable();
    }
  }
  absl::Status first_error;
  for (size_t i = 0; i < commands.commands(); ++i) {
    void* raw = nullptr;
    if (redisGetReply(ctx_, &raw) != REDIS_OK || raw == nullptr) return unavailable();
    auto* reply = static_cast<redisReply*>(raw);
    if (reply->type == REDIS_REPLY_ERROR && first_error.ok()) {
      first_error = absl::InternalError(absl::StrCat("Redis error: ", std::string(reply->str, reply->len)));
    }
    freeReplyObject(reply);
  }
  return first_error;
}

absl::Status RedisClient::Ping() {
  absl::StatusOr<Reply> reply = Command({"PING"});
  if (!reply.ok()) return reply.status();
  if (reply->str != "PONG") return absl::UnavailableError("Redis did not answer PONG");
  return absl::OkStatus();
}

absl::Status Ping(const std::string& endpoint) {
  absl::StatusOr<std::unique_ptr<RedisClient>> client =
      RedisClient::Connect(endpoint, absl::Seconds(2));
  if (!client.ok()) return client.status();
  return (*client)->Ping();
}

}  // namespace microlend::redis
