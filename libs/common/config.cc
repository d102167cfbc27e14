#include "common/config.h"
#include "common/strings.h"

#include <charconv>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "common/check.h"

extern char** environ;

namespace microlend {

FlagSet::FlagSet(std::string program, std::vector<FlagSpec> specs)
    : program_(std::move(program)), specs_(std::move(specs)) {}

const FlagSpec& FlagSet::Spec(std::string_view name) const {
  for (const FlagSpec& spec : specs_) {
    if (spec.name == name) return spec;
  }
  ML_CHECK(false, "flag not declared");
  std::abort();
}

absl::Status FlagSet::Parse(int argc, const char* const* argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  std::map<std::string, std::string> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view kv(*e);
    size_t eq = kv.find('=');
    if (eq != std::string_view::npos) env.emplace(kv.substr(0, eq), kv.substr(eq + 1));
  }
  return ParseWithEnv(args, env);
}

absl::Status FlagSet::ParseWithEnv(const std::vector<std::string>& args,
                                   const std::map<std::string, std::string>& env) {
  values_.clear();
  for (const FlagSpec& spec : specs_) {
    auto it = spec.env_var.empty() ? env.end() : env.find(spec.env_var);
    values_[spec.name] = it != env.end() ? it->second : spec.default_value;
  }
  for (size_t i = 0; i < args.size(); ++i) {
    std::string_view arg = args[i];
    if (arg == "--help" || arg == "-h") return absl::NotFoundError(Usage());
    if (arg.substr(0, 2) != "--") {
      return absl::InvalidArgumentError(
          absl::StrCat("unexpected argument \"", AsAbsl(arg), "\"\n", Usage()));
    }
    arg.remove_prefix(2);
    std::string name(arg.substr(0, arg.find('=')));
    auto known = values_.find(name);
    if (known == values_.end()) {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag --", name, "\n", Usage()));
    }
    if (size_t eq = arg.find('='); eq != std::string_view::npos) {
      known->second = std::string(arg.substr(eq + 1));
    } else if (i + 1 < args.size()) {
      known->second = args[++i];
    } else {
      return absl::InvalidArgumentError(absl::StrCat("flag --", name, " needs a value"));
    }
  }
  return absl::OkStatus();
}

const std::string& FlagSet::GetString(std::string_view name) const {
  Spec(name);
  return values_.find(name)->second;
}

absl::StatusOr<int64_t> FlagSet::GetInt(std::string_view name) const {
  const std::string& text = GetString(name);
  int64_t value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || ptr != text.data() + text.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("flag --", AsAbsl(name), " must be an integer, got \"", text, "\""));
  }
  return value;
}

std::string FlagSet::Usage() const {
  std::string out = absl::StrCat("usage: ", program_, " [flags]\n");
  for (const FlagSpec& spec : specs_) {
    absl::StrAppend(&out, "  --", spec.name, "  ", spec.help, " (default \"", spec.default_value,
                    "\"", spec.env_var.empty() ? "" : absl::StrCat(", env ", spec.env_var), ")\n");
  }
  return out;
}

}  // namespace microlend
