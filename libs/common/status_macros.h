// Early-return helpers for absl::Status / absl::StatusOr, in the style of Abseil's internal ones.
#ifndef MICROLEND_COMMON_STATUS_MACROS_H_
#define MICROLEND_COMMON_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define ML_CONCAT_INNER_(a, b) a##b
#define ML_CONCAT_(a, b) ML_CONCAT_INNER_(a, b)

// Returns from the enclosing function if `expr` (an absl::Status) is not OK.
#define ML_RETURN_IF_ERROR(expr)                              \
  do {                                                        \
    if (absl::Status ml_status_ = (expr); !ml_status_.ok()) { \
      return ml_status_;                                      \
    }                                                         \
  } while (false)

// `lhs = value of expr` when the StatusOr `expr` is OK; otherwise returns its status.
#define ML_ASSIGN_OR_RETURN(lhs, expr) \
  ML_ASSIGN_OR_RETURN_IMPL_(ML_CONCAT_(ml_statusor_, __LINE__), lhs, expr)
#define ML_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                              \
  if (!tmp.ok()) return std::move(tmp).status();  \
  lhs = std::move(tmp).value()

#endif  // MICROLEND_COMMON_STATUS_MACROS_H_
