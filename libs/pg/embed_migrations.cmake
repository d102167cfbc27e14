# Script mode: writes OUT, a C++ file defining microlend::pg::<Schema>Migrations() (e.g. LendingMigrations()) from FILES.
# Each file is named NNNN_description.sql; NNNN becomes the version.
string(SUBSTRING ${SCHEMA} 0 1 first)
string(TOUPPER ${first} first)
string(SUBSTRING ${SCHEMA} 1 -1 rest)
set(FUNC "${first}${rest}Migrations")
string(REPLACE "|" ";" FILES "${FILES}")
set(body "")
foreach(f ${FILES})
  get_filename_component(name ${f} NAME_WE)
  string(REGEX MATCH "^([0-9]+)_(.*)$" _ ${name})
  if(NOT CMAKE_MATCH_1)
    message(FATAL_ERROR "migration ${f} is not named NNNN_description.sql")
  endif()
  math(EXPR version "${CMAKE_MATCH_1} + 0")
  file(READ ${f} sql)
  string(APPEND body "      {${version}, \"${CMAKE_MATCH_2}\", R\"microlend_sql(${sql})microlend_sql\"},\n")
endforeach()
file(WRITE ${OUT}.tmp "// Generated from infra/migrations/${SCHEMA}/*.sql. Do not edit.
#include \"pg/migrator.h\"

namespace microlend::pg {

const std::vector<Migration>& ${FUNC}() {
  static const std::vector<Migration>* const kMigrations = new std::vector<Migration>{
${body}  };
  return *kMigrations;
}

}  // namespace microlend::pg
")
file(COPY_FILE ${OUT}.tmp ${OUT} ONLY_IF_DIFFERENT)
