// Bridges std::string_view and absl::string_view. Debian's Abseil is built with
// ABSL_OPTION_USE_STD_STRING_VIEW=0, so the two are different types and absl::StrCat and
// friends do not accept a std::string_view. Convert at the call: absl::StrCat(AsAbsl(sv)).
#ifndef MICROLEND_COMMON_STRINGS_H_
#define MICROLEND_COMMON_STRINGS_H_

#include <string_view>

#include "absl/strings/string_view.h"

namespace microlend {

inline absl::string_view AsAbsl(std::string_view text) { return {text.data(), text.size()}; }
inline std::string_view AsStd(absl::string_view text) { return {text.data(), text.size()}; }

}  // namespace microlend

#endif  // MICROLEND_COMMON_STRINGS_H_
