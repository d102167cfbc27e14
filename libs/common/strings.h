// Bridges std::string_view and absl::string_view. Debian's Abseil is built with
// ABSL_OPTION_USE_STD_STRING_VIEW=0, so the two are different types and absl::StrCat and
// friends do not accept a std::string_view. Convert at the call: absl::StrCat(AsAbsl(sv)).
#ifndef MICROLEND_COMMON_STRINGS_H_
#define MICROLEND_COMMON_STRINGS_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/strings/string_view.h"

namespace microlend {

inline absl::string_view AsAbsl(std::string_view text) { return {text.data(), text.size()}; }
inline std::string_view AsStd(absl::string_view text) { return {text.data(), text.size()}; }

// True when `text` is well-formed UTF-8 (no overlong forms, no surrogates) with no NUL byte:
// what PostgreSQL's UTF8 text columns accept. Client text is checked with this before it can
// reach a commit, where one bad row would fail everyone's transaction.
inline bool IsStorableText(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c == 0) return false;
    size_t extra = 0;
    uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      extra = 1;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      extra = 2;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      extra = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + extra >= text.size()) return false;  // truncated sequence
    for (size_t k = 1; k <= extra; ++k) {
      const unsigned char cc = static_cast<unsigned char>(text[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    static constexpr uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[extra] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += extra + 1;
  }
  return true;
}

// Appends `text` as a JSON string literal: quotes, backslashes and control characters escaped
// (\" \\ \u00XX), everything else (UTF-8 included) as is. Runs that need no escape are appended
// whole.
inline void AppendJsonString(std::string* out, std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  out->push_back('"');
  size_t run = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c != '"' && c != '\\' && static_cast<unsigned char>(c) >= 0x20) continue;
    out->append(text.data() + run, i - run);
    if (c == '"' || c == '\\') {
      out->push_back('\\');
      out->push_back(c);
    } else {
      const auto u = static_cast<unsigned char>(c);
      out->append("\\u00");
      out->push_back(kHex[u >> 4]);
      out->push_back(kHex[u & 0xF]);
    }
    run = i + 1;
  }
  out->append(text.data() + run, text.size() - run);
  out->push_back('"');
}

}  // namespace microlend

#endif  // MICROLEND_COMMON_STRINGS_H_
