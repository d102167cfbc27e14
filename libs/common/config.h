// Command-line flags with environment fallbacks, read once in main().
//
// A FlagSet declares every flag a binary takes: its name, the environment variable consulted
// when the flag is absent, a default that runs on one machine with no setup, and a help line.
// Parse() accepts `--name=value` and `--name value`; an unknown flag, a missing value or a
// positional argument is InvalidArgument (main prints it and exits 2). `--help` yields
// NotFound carrying the usage text, so main can print it and exit 0.
// Not thread-safe; use from main() before starting threads.
#ifndef MICROLEND_COMMON_CONFIG_H_
#define MICROLEND_COMMON_CONFIG_H_

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace microlend {

struct FlagSpec {
  std::string name;     // without the leading dashes
  std::string env_var;  // empty: no environment fallback
  std::string default_value;
  std::string help;
};

class FlagSet {
 public:
  FlagSet(std::string program, std::vector<FlagSpec> specs);

  absl::Status Parse(int argc, const char* const* argv);
  // For tests: parses with the given environment instead of the process's.
  absl::Status ParseWithEnv(const std::vector<std::string>& args,
                            const std::map<std::string, std::string>& env);

  // Value precedence: command line, then environment variable, then default.
  // Asking for an undeclared flag is a programming error (crash).
  const std::string& GetString(std::string_view name) const;
  absl::StatusOr<int64_t> GetInt(std::string_view name) const;
  std::string Usage() const;

 private:
  const FlagSpec& Spec(std::string_view name) const;

  std::string program_;
  std::vector<FlagSpec> specs_;
  std::map<std::string, std::string, std::less<>> values_;
};

}  // namespace microlend

#endif  // MICROLEND_COMMON_CONFIG_H_
