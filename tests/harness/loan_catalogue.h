// A synthetic loan catalogue of any size for the ListLoans benchmark and tests: partners created
// through PartnerService, loans bulk-inserted with SQL (INSERT ... SELECT FROM generate_series),
// so that a million loans load in about a minute.
//
// Of `loans` loans, the newest `fundraising` are FUNDRAISING (deadlines spread over the next 30
// days from `now`, with their repayment schedules); older ones are FUNDED, PAYING_BACK, ENDED,
// EXPIRED, REFUNDED or DEFAULTED, without schedules (GetLoan or ListLoans of one is DATA_LOSS).
// 8 partners in 12 countries, sectors weighted like Kiva's, genders, tags, terms 6-36 months,
// $25-$10,000, partly funded. The same sizes always load the same catalogue (every draw is a
// hash of the loan's number), except for the ids and the times, which follow `now`.
// Not thread-safe; drive it from one thread.
#ifndef MICROLEND_TESTS_HARNESS_LOAN_CATALOGUE_H_
#define MICROLEND_TESTS_HARNESS_LOAN_CATALOGUE_H_

#include <memory>
#include <pqxx/pqxx>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "harness/local_stack.h"

namespace microlend::testing {

struct CatalogueOptions {
  int64_t loans = 1'000'000;
  int64_t fundraising = 100'000;
  absl::Time now;
  // Run after loading, before VACUUM ANALYZE, as one implicit transaction (e.g. an index to try).
  std::string setup_sql;
};

// A connection to the stack's PostgreSQL with search_path `lending`. Unavailable when it cannot
// connect.
absl::StatusOr<std::unique_ptr<pqxx::connection>> ConnectLending(const LocalStack& stack);

// Creates the partners (request ids "catalogue-partner-<n>", so a second call reuses them) with
// the lending server of `stack`, inserts the loans and their schedules in one transaction, runs
// options.setup_sql, and VACUUM ANALYZEs the tables. InvalidArgument for sizes out of range
// (need 1 <= fundraising <= loans); Internal with the cause when a step fails.
absl::Status LoadLoanCatalogue(LocalStack& stack, const CatalogueOptions& options);

}  // namespace microlend::testing

#endif  // MICROLEND_TESTS_HARNESS_LOAN_CATALOGUE_H_
