// ML_CHECK: crash loudly when one of our own invariants is broken.
//
// Use it for programming errors only (adding USD to EUR, a split whose parts do not sum to
// the whole). Never use it on request data: validate that and return an absl::Status.
//
// On failure it writes one line, "file:line: check failed: <condition>: <message>", to
// stderr and calls std::abort(), so the process dies with a core and a reason. `msg` is
// anything convertible to std::string_view and is only evaluated when the check fails, so
// building it with absl::StrCat costs nothing on the happy path. The check is active in every
// build mode: a money invariant that is skipped in Release protects nothing.
//
// Thread-safe: it touches no shared state besides stderr.

#ifndef MICROLEND_LIBS_COMMON_CHECK_H_
#define MICROLEND_LIBS_COMMON_CHECK_H_

#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "absl/base/optimization.h"

namespace microlend::check_internal {

[[noreturn]] inline void Fail(const char* file, int line, const char* condition,
                              std::string_view msg) {
  std::fprintf(stderr, "%s:%d: check failed: %s: %.*s\n", file, line, condition,
               static_cast<int>(msg.size()), msg.data());
  std::fflush(stderr);
  std::abort();
}

}  // namespace microlend::check_internal

#define ML_CHECK(cond, msg)                                                \
  do {                                                                     \
    if (ABSL_PREDICT_FALSE(!(cond))) {                                     \
      ::microlend::check_internal::Fail(__FILE__, __LINE__, #cond, (msg)); \
    }                                                                      \
  } while (false)

#endif  // MICROLEND_LIBS_COMMON_CHECK_H_
