// One applied schema migration, as recorded by the migrator and reported by ServerAdmin.
#ifndef MICROLEND_COMMON_MIGRATION_INFO_H_
#define MICROLEND_COMMON_MIGRATION_INFO_H_

#include <cstdint>
#include <string>

#include "absl/time/time.h"

namespace microlend {

struct MigrationInfo {
  int64_t version;
  std::string name;
  absl::Time applied_at;
};

}  // namespace microlend

#endif  // MICROLEND_COMMON_MIGRATION_INFO_H_
