// Structured logs: one line per event on stderr, in logfmt (`ts=... event=... key=value`), so a
// person can read them and a collector can parse them. Values are quoted when they need it.
// Thread-safe: a line is written with one call and never interleaves with another.
#ifndef MICROLEND_COMMON_LOG_H_
#define MICROLEND_COMMON_LOG_H_

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace microlend {

using LogField = std::pair<std::string_view, std::string_view>;

void LogEvent(std::string_view level, std::string_view event,
              std::initializer_list<LogField> fields);

inline void LogInfo(std::string_view event, std::initializer_list<LogField> fields = {}) {
  LogEvent("info", event, fields);
}
inline void LogWarning(std::string_view event, std::initializer_list<LogField> fields = {}) {
  LogEvent("warn", event, fields);
}
inline void LogError(std::string_view event, std::initializer_list<LogField> fields = {}) {
  LogEvent("error", event, fields);
}

}  // namespace microlend

#endif  // MICROLEND_COMMON_LOG_H_
