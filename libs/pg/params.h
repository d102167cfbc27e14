// Building query parameters for libpqxx safely. Both throw pg::InvalidText (translated to
// InvalidArgument by pg::TranslateError) for text PostgreSQL cannot hold, so the check happens
// before anything is sent.
#ifndef MICROLEND_PG_PARAMS_H_
#define MICROLEND_PG_PARAMS_H_

#include <string>
#include <string_view>
#include <vector>

#include "common/strings.h"
#include "pg/connect.h"

namespace microlend::pg {

// A text parameter passed on its own (libpq parameters end at a NUL byte; the database is UTF8).
inline std::string TextParam(std::string_view text) {
  if (!IsStorableText(text)) throw InvalidText("text is not UTF-8 without NUL bytes");
  return std::string(text);
}

// PostgreSQL's array literal of `items`: each double-quoted, '"' and '\' escaped.
inline std::string TextArray(const std::vector<std::string>& items) {
  std::string out = "{";
  for (const std::string& item : items) {
    if (out.size() > 1) out += ',';
    out += '"';
    for (char c : TextParam(item)) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  out += '}';
  return out;
}

}  // namespace microlend::pg

#endif  // MICROLEND_PG_PARAMS_H_
