#include "services/lending/store/pg_loan_store.h"

#include <algorithm>
#include <limits>
#include <pqxx/pqxx>
#include <stdexcept>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "common/check.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "pg/connect.h"
#include "pg/params.h"
#include "pg/pool.h"
#include "services/lending/store/pg_common.h"
#include "services/lending/store/pg_partner_store.h"

namespace microlend::lending {
namespace {


// A loan naming a missing partner trips the foreign key: NotFound, not FailedPrecondition.
absl::Status Translate(const std::exception& e, std::string_view what) {
  if (dynamic_cast<const pqxx::foreign_key_violation*>(&e) != nullptr) {
    return absl::NotFoundError(absl::StrCat(AsAbsl(what), ": the loan's partner does not exist"));
  }
  return pg::TranslateError(e, what);
}

using pg::RunIn;
using pg::TextArray;
using pg::TextParam;
using ReadTxn = pqxx::transaction<pqxx::repeatable_read, pqxx::read_only>;

template <typename T, typename Fn>
std::string IntArray(const std::vector<T>& items, Fn&& to_int) {
  std::string out = "{";
  for (const T& item : items) {
    if (out.size() > 1) out += ',';
    absl::StrAppend(&out, to_int(item));
  }
  return out + "}";
}

std::optional<int64_t> Micros(const std::optional<absl::Time>& t) {
  if (!t) return std::nullopt;
  return absl::ToUnixMicros(*t);
}

std::optional<absl::Time> TimeAt(const pqxx::field& f) {
  if (f.is_null()) return std::nullopt;
  return absl::FromUnixMicros(f.as<int64_t>());
}

std::vector<std::string> SplitLabels(const std::string& joined) {
  if (joined.empty()) return {};
  return absl::StrSplit(joined, ',');
}

constexpr char kLoanColumns[] =
    "l.id, l.partner_id, l.status, l.country, l.region, l.town, l.sector,"
    " array_to_string(l.tags, ','), array_to_string(l.hashtags, ','), l.term_months,"
    " l.repayment_interval, l.local_amount_minor, l.local_currency, l.posting_fx_rate,"
    " l.usd_amount_minor, l.funded_minor, l.held_minor, l.lender_count, l.trending_score_milli,"
    " l.details::text, l.review_return_reason, to_micros(l.review_returned_at), l.review_reviewer,"
    " to_micros(l.fundraising_deadline), l.version, to_micros(l.created_at),"
    " to_micros(l.updated_at), to_micros(l.submitted_at), to_micros(l.published_at),"
    " p.risk_rating_half_stars, coalesce(l.funding_account_id, 0), to_micros(l.funded_at),"
    " to_micros(l.disbursed_at), to_micros(l.closed_at), l.repaid_usd_minor,"
    " l.repaid_local_minor, l.currency_loss_minor, l.written_off_minor, l.delinquent,"
    " l.days_in_arrears, l.arrears_local_minor, l.ended_with_currency_loss";
// The number of columns of kLoanColumns (ReadLoan reads r[0] to r[41]).
constexpr int kLoanColumnCount = 42;
constexpr char kLoanFrom[] = " FROM loans l JOIN partners p ON p.id = l.partner_id";

// kLoanColumns for LoanView::kCard: the story is replaced by "" in the database, so that it is
// neither sent nor parsed (a story is most of a loan's details).
const std::string& CardLoanColumns() {
  static const std::string* const columns = new std::string(absl::StrReplaceAll(
      kLoanColumns, {{"l.details::text", R"((l.details || '{"story": ""}')::text)"}}));
  ML_CHECK(*columns != kLoanColumns, "kLoanColumns no longer reads l.details::text");
  return *columns;
}

absl::StatusOr<Loan> ReadLoan(const pqxx::row& r) {
  Loan loan;
  ML_ASSIGN_OR_RETURN(loan.details, DetailsFromJson(r[19].as<std::string>()));
  LoanDetails& d = loan.details;
  loan.id = LoanId(r[0].as<int64_t>());
  loan.partner_id = PartnerId(r[1].as<int64_t>());
  loan.status = static_cast<LoanStatus>(r[2].as<int>());
  d.country = r[3].as<std::string>();
  d.region = r[4].as<std::string>();
  d.town = r[5].as<std::string>();
  d.sector = r[6].as<int32_t>();
  d.tags = SplitLabels(r[7].as<std::string>());
  d.hashtags = SplitLabels(r[8].as<std::string>());
  d.term_months = r[9].as<int32_t>();
  if (const int interval = r[10].as<int>(); interval != 0) {
    d.repayment_interval = static_cast<RepaymentInterval>(interval);
  }
  if (!r[11].is_null()) {
    absl::StatusOr<Currency> currency = Currency::FromCode(r[12].as<std::string>());
    if (!currency.ok()) return absl::DataLossError("a stored loan has an unknown currency");
    d.local_amount = Money::FromMinor(*currency, r[11].as<int64_t>());
  }
  d.posting_fx_rate = r[13].as<std::string>();
  if (!r[14].is_null()) loan.usd_amount = Money::FromMinor(Currency::Usd(), r[14].as<int64_t>());
  loan.funded_minor = r[15].as<int64_t>();
  loan.held_minor = r[16].as<int64_t>();
  loan.lender_count = r[17].as<int32_t>();
  loan.trending_score_milli = r[18].as<int64_t>();
  if (!r[20].is_null()) {
    loan.review_return = ReviewReturn{.reason = r[20].as<std::string>(),
                                      .returned_at = *TimeAt(r[21]),
                                      .reviewer = r[22].as<std::string>()};
  }
  loan.fundraising_deadline = TimeAt(r[23]);
  loan.version = r[24].as<int64_t>();
  loan.created_at = *TimeAt(r[25]);
  loan.updated_at = *TimeAt(r[26]);
  loan.submitted_at = TimeAt(r[27]);
  loan.posted_at = TimeAt(r[28]);
  loan.partner_risk_rating_half_stars = r[29].as<int32_t>();
  loan.funding_account_id = AccountId(r[30].as<int64_t>());
  loan.funded_at = TimeAt(r[31]);
  loan.disbursed_at = TimeAt(r[32]);
  loan.closed_at = TimeAt(r[33]);
  loan.repaid_usd_minor = r[34].as<int64_t>();
  loan.repaid_local_minor = r[35].as<int64_t>();
  loan.currency_loss_minor = r[36].as<int64_t>();
  loan.written_off_minor = r[37].as<int64_t>();
  loan.delinquent = r[38].as<bool>();
  loan.days_in_arrears = r[39].as<int32_t>();
  loan.arrears_local_minor = r[40].as<int64_t>();
  loan.ended_with_currency_loss = r[41].as<bool>();
  return loan;
}

// Checks each loaded schedule against its loan, as it was checked when it was written.
absl::Status CheckSchedules(const std::vector<Loan>& loans) {
  for (const Loan& loan : loans) {
    if (loan.status == LoanStatus::kDraft) continue;  // drafts may be incomplete
    absl::Status valid =
        ValidateSchedule(loan.details.schedule, *loan.details.local_amount,
                         DisbursalAnchor(loan.details, loan.created_at), loan.details.term_months);
    if (!valid.ok()) {
      return absl::DataLossError(absl::StrCat("loan ", loan.id.value(),
                                              "'s stored schedule is invalid: ", valid.message()));
    }
  }
  return absl::OkStatus();
}

// Loads the schedules of `loans` (one query) and checks each against its loan.
absl::Status LoadSchedules(pqxx::transaction_base& tx, std::vector<Loan>& loans) {
  if (loans.empty()) return absl::OkStatus();
  absl::flat_hash_map<int64_t, Loan*> by_id;
  for (Loan& loan : loans) by_id[loan.id.value()] = &loan;
  pqxx::result rows = tx.exec_params(
      "SELECT loan_id, to_char(due_date, 'YYYY-MM-DD'), principal_minor FROM"
      " loan_schedule_entries WHERE loan_id = ANY($1::bigint[]) ORDER BY loan_id, seq",
      IntArray(loans, [](const Loan& l) { return l.id.value(); }));
  for (const pqxx::row& row : rows) {
    Loan* loan = by_id.at(row[0].as<int64_t>());
    absl::CivilDay due;
    if (!absl::ParseCivilTime(row[1].as<std::string>(), &due) || !loan->details.local_amount) {
      return absl::DataLossError(absl::StrCat("loan ", loan->id.value(), " has a bad schedule"));
    }
    loan->details.schedule.push_back(
        {due, Money::FromMinor(loan->details.local_amount->currency(), row[2].as<int64_t>())});
  }
  return CheckSchedules(loans);
}

absl::StatusOr<Loan> SelectLoan(pqxx::transaction_base& tx, LoanId id, bool for_update) {
  pqxx::result r = tx.exec_params(
      absl::StrCat("SELECT ", kLoanColumns, kLoanFrom, " WHERE l.id = $1::bigint",
                   for_update ? " FOR UPDATE OF l" : ""),
      id.value());
  if (r.empty()) return absl::NotFoundError(absl::StrCat("loan ", id.value(), " not found"));
  ML_ASSIGN_OR_RETURN(Loan loan, ReadLoan(r[0]));
  std::vector<Loan> one{std::move(loan)};
  ML_RETURN_IF_ERROR(LoadSchedules(tx, one));
  return std::move(one[0]);
}

void AssignBorrowerIds(pqxx::transaction_base& tx, Loan& loan) {
  int missing = 0;
  for (const Borrower& b : loan.details.borrowers) missing += !b.id.has_value();
  if (missing == 0) return;
  pqxx::result ids = tx.exec_params(
      "SELECT nextval('borrower_id_seq') FROM generate_series(1, $1::int)", missing);
  int next = 0;
  for (Borrower& b : loan.details.borrowers) {
    if (!b.id) b.id = BorrowerId(ids[next++][0].as<int64_t>());
  }
}

// Writes every stored column of `loan` (insert when its id is 0) and its schedule; returns the id.
int64_t WriteLoan(pqxx::transaction_base& tx, Loan& loan) {
  AssignBorrowerIds(tx, loan);
  const LoanDetails& d = loan.details;
  const std::optional<Gender> gender = loan.borrower_gender();
  std::optional<int64_t> local_minor;
  std::optional<std::string> local_currency;
  if (d.local_amount) {
    local_minor = d.local_amount->minor_units();
    local_currency = std::string(d.local_amount->currency().code());
  }
  std::optional<int64_t> usd;
  if (loan.usd_amount) usd = loan.usd_amount->minor_units();
  std::optional<std::string> reason, reviewer;
  std::optional<int64_t> returned_at;
  if (loan.review_return) {
    reason = TextParam(loan.review_return->reason);
    reviewer = TextParam(loan.review_return->reviewer);
    returned_at = absl::ToUnixMicros(loan.review_return->returned_at);
  }
  constexpr char kValues[] =
      "$2::bigint, $3::smallint, $4, $5, $6, $7::smallint, $8::smallint, $9::bool,"
      " $10::text[], $11::text[], $12::int, $13::smallint, $14::bigint, $15::bpchar, $16,"
      " $17::bigint, $18::jsonb, $19, from_micros($20::bigint), $21, from_micros($22::bigint),"
      " $23::bigint, from_micros($24::bigint), from_micros($25::bigint),"
      " from_micros($26::bigint), from_micros($27::bigint)";
  const std::string sql =
      loan.id.value() == 0
          ? absl::StrCat(
                "INSERT INTO loans (partner_id, status, country, region, town, sector, gender,"
                " is_group, tags, hashtags, term_months, repayment_interval, local_amount_minor,"
                " local_currency, posting_fx_rate, usd_amount_minor, details,"
                " review_return_reason, review_returned_at, review_reviewer,"
                " fundraising_deadline, version, created_at, updated_at, submitted_at,"
                " published_at) SELECT ",
                kValues, " WHERE $1::bigint = 0 RETURNING id")
          : absl::StrCat(
                "UPDATE loans SET (partner_id, status, country, region, town, sector, gender,"
                " is_group, tags, hashtags, term_months, repayment_interval, local_amount_minor,"
                " local_currency, posting_fx_rate, usd_amount_minor, details,"
                " review_return_reason, review_returned_at, review_reviewer,"
                " fundraising_deadline, version, created_at, updated_at, submitted_at,"
                " published_at) = (",
                kValues, ") WHERE id = $1::bigint RETURNING id");
  pqxx::result r = tx.exec_params(
      sql, loan.id.value(), loan.partner_id.value(), static_cast<int>(loan.status),
      TextParam(d.country), TextParam(d.region), TextParam(d.town), d.sector,
      gender ? static_cast<int>(*gender) : 0, loan.is_group(), TextArray(d.tags),
      TextArray(d.hashtags), d.term_months,
      d.repayment_interval ? static_cast<int>(*d.repayment_interval) : 0, local_minor,
      local_currency, TextParam(d.posting_fx_rate), usd, TextParam(DetailsToJson(d)), reason,
      returned_at, reviewer, Micros(loan.fundraising_deadline), loan.version,
      absl::ToUnixMicros(loan.created_at), absl::ToUnixMicros(loan.updated_at),
      Micros(loan.submitted_at), Micros(loan.posted_at));
  const int64_t id = r[0][0].as<int64_t>();
  tx.exec_params("DELETE FROM loan_schedule_entries WHERE loan_id = $1::bigint", id);
  for (size_t i = 0; i < d.schedule.size(); ++i) {
    tx.exec_params(
        "INSERT INTO loan_schedule_entries (loan_id, seq, due_date, principal_minor)"
        " VALUES ($1::bigint, $2::int, $3::date, $4::bigint)",
        id, static_cast<int>(i), absl::FormatCivilTime(d.schedule[i].due),
        d.schedule[i].principal.minor_units());
  }
  return id;
}

constexpr char kRemaining[] = "(coalesce(l.usd_amount_minor, 0) - l.funded_minor - l.held_minor)";

// What q.sort orders by (LoanSortKey of core/loans.h, in SQL), and whether descending. The
// expressions are those of the indexes of 0004_loans.sql and 0006_list_loans_indexes.sql.
struct SortKeySql {
  std::string expr;
  bool descending = false;
};

SortKeySql SortKeyOf(const LoanQuery& q) {
  switch (q.sort) {
    case LoanSort::kNewest:
      return {"coalesce(l.published_at, l.created_at)", true};
    case LoanSort::kExpiringSoonest:
      return {"l.fundraising_deadline", false};
    case LoanSort::kAmountLeftAsc:
      return {kRemaining, false};
    case LoanSort::kAmountLeftDesc:
      return {kRemaining, true};
    case LoanSort::kLoanAmountAsc:
      return {"coalesce(l.usd_amount_minor, 0)", false};
    case LoanSort::kLoanAmountDesc:
      return {"coalesce(l.usd_amount_minor, 0)", true};
    case LoanSort::kTrending:
      return {"l.trending_score_milli", true};
    case LoanSort::kRandom:
      // The seed is an integer formatted here, never client text.
      return {absl::StrCat("md5('", q.random_seed, ":' || l.id::text)"), false};
  }
  return {"l.id", false};
}

std::string OrderBy(const LoanQuery& q) {
  const SortKeySql key = SortKeyOf(q);
  return absl::StrCat(" ORDER BY ", key.expr, key.descending ? " DESC" : " ASC",
                      q.sort == LoanSort::kExpiringSoonest ? " NULLS LAST" : "", ", l.id");
}

// " AND <after the cursor>" in q.sort's order for q.after ("" without one), its values added to
// `params`. Ascending sorts compare (key, id) as a row, so that the scan of the sort's index
// starts at the cursor. Descending sorts order by key DESC and id ASC, which no row comparison
// expresses: they bound the key (the scan starts at the cursor's key) and skip the loans of that
// key up to the cursor's id. InvalidArgument for a cursor without the key its sort needs.
absl::StatusOr<std::string> KeysetTest(const LoanQuery& q,
                                       std::vector<std::optional<std::string>>& params) {
  if (!q.after) return std::string();
  auto param = [&](int64_t value) {
    params.push_back(absl::StrCat(value));
    return absl::StrCat("$", params.size(), "::bigint");
  };
  const std::string id = param(q.after->id.value());
  const SortKeySql key = SortKeyOf(q);
  if (q.sort == LoanSort::kRandom) {  // the key follows from the id
    return absl::StrCat(" AND (", key.expr, ", l.id) > (md5('", q.random_seed, ":' || ", id,
                        "::text), ", id, ")");
  }
  if (q.sort == LoanSort::kExpiringSoonest && !q.after->key) {  // among loans without a deadline
    return absl::StrCat(" AND l.fundraising_deadline IS NULL AND l.id > ", id);
  }
  if (!q.after->key) return absl::InvalidArgumentError("the page cursor has no sort key");
  const bool time = q.sort == LoanSort::kNewest || q.sort == LoanSort::kExpiringSoonest;
  const std::string value =
      time ? absl::StrCat("from_micros(", param(*q.after->key), ")") : param(*q.after->key);
  if (!key.descending) {
    return absl::StrCat(" AND (", key.expr, ", l.id) > (", value, ", ", id, ")");
  }
  return absl::StrCat(" AND ", key.expr, " <= ", value, " AND (", key.expr, " < ", value,
                      " OR l.id > ", id, ")");
}

// A catalogue query's conditions, naming only the filters the query sets, with their values as
// text parameters ($1, $2, ...). Leaving the unset filters out of the statement (rather than
// "(no filter OR test)") keeps planning short, a large part of a fast query, and lets the
// planner match the partial indexes of 0006_list_loans_indexes.sql.
class CatalogueWhere {
 public:
  explicit CatalogueWhere(const LoanQuery& q) {
    AddStatusTests(q);
    AddFacetTests(q);
    AddAmountAndTimeTests(q);
    if (q.delinquent) {
      tests_.push_back(
          absl::StrCat("l.delinquent = ", Param(*q.delinquent ? "true" : "false", "boolean")));
    }
    if (q.min_days_in_arrears > 0) {
      tests_.push_back(absl::StrCat("l.days_in_arrears >= ",
                                    Param(absl::StrCat(q.min_days_in_arrears), "integer")));
    }
    // No loan is matchable until the matching service records campaigns.
    if (q.matchable && *q.matchable) tests_.push_back("false");
  }

  std::string sql() const { return absl::StrCat(" WHERE ", absl::StrJoin(tests_, " AND ")); }
  const std::vector<std::optional<std::string>>& params() const { return params_; }
  // Whether a test reads the partner (alias p), so that a count can leave the join out.
  bool uses_partner() const { return uses_partner_; }

 private:
  // The next parameter, holding `value`, as "$n::type".
  std::string Param(std::string value, std::string_view type) {
    params_.push_back(std::move(value));
    return absl::StrCat("$", params_.size(), "::", AsAbsl(type));
  }
  void AnyOf(std::string_view column, std::string array, std::string_view type) {
    tests_.push_back(absl::StrCat(AsAbsl(column), " = ANY(", Param(std::move(array), type), ")"));
  }

  void AddStatusTests(const LoanQuery& q) {
    std::vector<LoanStatus> statuses = q.statuses;
    if (statuses.empty()) statuses.push_back(LoanStatus::kFundraising);
    // Statuses are literals (our enum's numbers, never client text), so that the planner can
    // use the indexes over FUNDRAISING loans only; one status is compared with `=`, since
    // PostgreSQL 15 does not walk an index in order under `= ANY(...)`.
    auto as_int = [](LoanStatus s) { return static_cast<int>(s); };
    tests_.push_back(
        statuses.size() == 1
            ? absl::StrCat("l.status = ", as_int(statuses[0]))
            : absl::StrCat("l.status = ANY('", IntArray(statuses, as_int), "'::smallint[])"));
    const bool any_private =
        std::any_of(statuses.begin(), statuses.end(), [](LoanStatus s) { return !IsPublic(s); });
    if (any_private && !q.viewer.ops) {  // a partner sees its own drafts, others none
      const int64_t partner = q.viewer.partner ? q.viewer.partner->value() : 0;
      tests_.push_back(absl::StrCat(
          "(l.status >= 3 OR l.partner_id = ", Param(absl::StrCat(partner), "bigint"), ")"));
    }
  }

  void AddFacetTests(const LoanQuery& q) {
    auto as_int = [](auto v) { return static_cast<int64_t>(v); };
    if (!q.countries.empty()) AnyOf("l.country", TextArray(q.countries), "text[]");
    if (!q.regions.empty()) {
      std::vector<std::string> regions;
      for (const std::string& r : q.regions) regions.push_back(absl::AsciiStrToLower(r));
      AnyOf("lower(l.region)", TextArray(regions), "text[]");
    }
    if (!q.sectors.empty()) AnyOf("l.sector", IntArray(q.sectors, as_int), "smallint[]");
    if (!q.genders.empty()) AnyOf("l.gender", IntArray(q.genders, as_int), "smallint[]");
    if (q.is_group) {
      tests_.push_back(absl::StrCat("l.is_group = ", Param(*q.is_group ? "t" : "f", "bool")));
    }
    if (!q.partner_ids.empty()) {
      AnyOf("l.partner_id", IntArray(q.partner_ids, [](PartnerId p) { return p.value(); }),
            "bigint[]");
    }
    if (q.min_partner_risk_rating_half_stars > 0) {  // ratings are 0..10: 0 keeps every loan
      uses_partner_ = true;
      tests_.push_back(
          absl::StrCat("p.risk_rating_half_stars >= ",
                       Param(absl::StrCat(q.min_partner_risk_rating_half_stars), "int")));
    }
    if (q.max_term_months > 0) {
      tests_.push_back(
          absl::StrCat("l.term_months <= ", Param(absl::StrCat(q.max_term_months), "int")));
    }
    if (!q.tags.empty()) {
      tests_.push_back(absl::StrCat("l.tags && ", Param(TextArray(q.tags), "text[]")));
    }
    if (!q.hashtags.empty()) {
      tests_.push_back(absl::StrCat("l.hashtags && ", Param(TextArray(q.hashtags), "text[]")));
    }
    if (!q.repayment_intervals.empty()) {
      AnyOf("l.repayment_interval", IntArray(q.repayment_intervals, as_int), "smallint[]");
    }
  }

  void AddAmountAndTimeTests(const LoanQuery& q) {
    if (q.min_amount_left_minor) {
      tests_.push_back(absl::StrCat(
          kRemaining, " >= ", Param(absl::StrCat(*q.min_amount_left_minor), "bigint")));
    }
    if (q.max_amount_left_minor) {
      tests_.push_back(absl::StrCat(
          kRemaining, " <= ", Param(absl::StrCat(*q.max_amount_left_minor), "bigint")));
    }
    if (q.expiring_within_hours > 0) {
      const int64_t now_us = absl::ToUnixMicros(q.now);
      const int64_t max_hours = (std::numeric_limits<int64_t>::max() - now_us) / 3'600'000'000LL;
      const int64_t bound_us =
          now_us + std::min(q.expiring_within_hours, max_hours) * 3'600'000'000LL;
      tests_.push_back(absl::StrCat("l.fundraising_deadline BETWEEN from_micros(",
                                    Param(absl::StrCat(now_us), "bigint"), ") AND from_micros(",
                                    Param(absl::StrCat(bound_us), "bigint"), ")"));
    }
  }

  std::vector<std::string> tests_;
  std::vector<std::optional<std::string>> params_;
  bool uses_partner_ = false;
};

// The loan's schedule lines as "<due date in days since 1970-01-01> <minor>,..." in order (NULL
// without lines), read with the page's row so that a page costs one statement (to_char would
// cost a third more than the whole rest of the column).
constexpr char kScheduleColumn[] =
    "(SELECT string_agg((s.due_date - DATE '1970-01-01') || ' ' || s.principal_minor, ','"
    " ORDER BY s.seq) FROM loan_schedule_entries s WHERE s.loan_id = l.id)";

// "SELECT count(*) ..." of the matches, counting at most `cap` + 1.
std::string CountSql(const CatalogueWhere& where, int64_t cap) {
  return absl::StrCat("SELECT count(*) FROM (SELECT 1 FROM loans l",
                      where.uses_partner() ? " JOIN partners p ON p.id = l.partner_id" : "",
                      where.sql(), " LIMIT ", cap + 1, ") matches");
}

// Reads a page row: the loan (kLoanColumns), then its schedule (kScheduleColumn).
absl::StatusOr<Loan> ReadPageRow(const pqxx::row& row) {
  ML_ASSIGN_OR_RETURN(Loan loan, ReadLoan(row));
  const pqxx::field schedule = row[kLoanColumnCount];
  if (schedule.is_null()) return loan;
  for (absl::string_view line : absl::StrSplit(schedule.c_str(), ',')) {
    std::pair<absl::string_view, absl::string_view> parts = absl::StrSplit(line, ' ');
    int64_t days = 0, minor = 0;
    if (!absl::SimpleAtoi(parts.first, &days) || !absl::SimpleAtoi(parts.second, &minor) ||
        !loan.details.local_amount) {
      return absl::DataLossError(absl::StrCat("loan ", loan.id.value(), " has a bad schedule"));
    }
    loan.details.schedule.push_back(
        {absl::CivilDay(1970, 1, 1) + days,
         Money::FromMinor(loan.details.local_amount->currency(), minor)});
  }
  return loan;
}

// Adds the loans of page rows to `out` until it holds `limit`; a row beyond that only tells that
// more follow (next_after_id). `total` takes the count column of the first row, if any.
absl::Status TakeRows(const pqxx::result& rows, int32_t limit, Page<Loan>& out,
                      std::optional<int64_t>& total) {
  if (!rows.empty() && !total) total = rows[0][kLoanColumnCount + 1].as<int64_t>();
  for (const pqxx::row& row : rows) {
    if (out.items.size() == static_cast<size_t>(limit)) {
      out.next_after_id = out.items.back().id.value();
      break;
    }
    ML_ASSIGN_OR_RETURN(Loan loan, ReadPageRow(row));
    out.items.push_back(std::move(loan));
  }
  return absl::OkStatus();
}

}  // namespace

PgLoanStore::PgLoanStore(std::unique_ptr<pg::ConnectionPool> pool,
                         std::unique_ptr<pg::ConnectionPool> feed_pool)
    : pool_(std::move(pool)), feed_pool_(std::move(feed_pool)) {}
PgLoanStore::~PgLoanStore() = default;

absl::StatusOr<std::unique_ptr<PgLoanStore>> PgLoanStore::Create(std::string url, int pool_size) {
  if (pool_size < 1) {
    return absl::InvalidArgumentError(absl::StrCat("pool size ", pool_size, " is below 1"));
  }
  absl::StatusOr<std::unique_ptr<pg::ConnectionPool>> pool = OpenLendingPool(
      url, pool_size, "loan-store", kBorrowTimeout, "loans",
      // The store's statements are short: compiling one (JIT starts above a
      // plan cost that a catalogue sort without an index reaches) would cost
      // 40-100 ms of a request that should take a few.
      [](pqxx::connection& conn) { conn.set_variable("jit", "off"); }, Translate);
  if (!pool.ok()) return pool.status();
  absl::StatusOr<std::unique_ptr<pg::ConnectionPool>> feed_pool = OpenLendingPool(
      std::move(url), 1, "catalogue-feed", kBorrowTimeout, "loans",
      [](pqxx::connection& conn) {
        conn.set_variable("jit", "off");
        conn.set_variable("plan_cache_mode", "force_generic_plan");
      },
      Translate);
  if (!feed_pool.ok()) return feed_pool.status();
  return std::unique_ptr<PgLoanStore>(
      new PgLoanStore(*std::move(pool), *std::move(feed_pool)));
}

absl::StatusOr<std::optional<IdempotencyRecord>> PgLoanStore::FindIdempotency(
    const std::string& caller, const std::string& request_id) {
  return RunIn<pqxx::read_transaction>(
      *pool_, "reading an idempotency record",
      [&](pqxx::read_transaction& tx) -> absl::StatusOr<std::optional<IdempotencyRecord>> {
        return FindIdempotencyRecord(tx, caller, request_id);
      });
}

absl::StatusOr<Loan> PgLoanStore::Create(const Loan& loan, absl::Time now,
                                         const IdempotencyRecord& record,
                                         const LoanEncoder& encode) {
  return RunIn<pqxx::work>(*pool_, "creating a loan", [&](pqxx::work& tx) -> absl::StatusOr<Loan> {
    Loan draft = loan;
    draft.id = LoanId(0);
    draft.version = 1;
    draft.created_at = draft.updated_at = now;
    const int64_t id = WriteLoan(tx, draft);
    ML_ASSIGN_OR_RETURN(Loan created, SelectLoan(tx, LoanId(id), /*for_update=*/false));
    ML_RETURN_IF_ERROR(InsertIdempotencyRecord(tx, record, encode(created)));
    return created;
  });
}

absl::StatusOr<Loan> PgLoanStore::Get(LoanId id) {
  return RunIn<pqxx::read_transaction>(
      *pool_, "reading a loan", [&](pqxx::read_transaction& tx) -> absl::StatusOr<Loan> {
        return SelectLoan(tx, id, /*for_update=*/false);
      });
}

absl::StatusOr<Loan> PgLoanStore::Update(LoanId id, int64_t expected_version, absl::Time now,
                                         const LoanMutator& mutate,
                                         const IdempotencyRecord& record,
                                         const LoanEncoder& encode) {
  return UpdateImpl(
      id, expected_version, now,
      [&](pqxx::transaction_base&, Loan& loan) { return mutate(loan); }, record, encode);
}

absl::StatusOr<Loan> PgLoanStore::UpdateWithPartner(LoanId id, int64_t expected_version,
                                                    absl::Time now,
                                                    const LoanPartnerMutator& mutate,
                                                    const IdempotencyRecord& record,
                                                    const LoanEncoder& encode) {
  // The loan row is already locked: loan first, then partner.
  auto with_partner = [&](pqxx::transaction_base& tx, Loan& loan) -> absl::Status {
    ML_ASSIGN_OR_RETURN(Partner partner,
                        LockPartnerRow(tx, loan.partner_id, PartnerRowLock::kLoanTransition));
    return mutate(loan, partner, ReadPartnerExposure(tx, loan.partner_id));
  };
  return UpdateImpl(id, expected_version, now, with_partner, record, encode);
}

absl::StatusOr<Loan> PgLoanStore::UpdateImpl(LoanId id, int64_t expected_version, absl::Time now,
                                             const TxnMutator& mutate,
                                             const IdempotencyRecord& record,
                                             const LoanEncoder& encode) {
  return RunIn<pqxx::work>(*pool_, "updating a loan", [&](pqxx::work& tx) -> absl::StatusOr<Loan> {
    ML_ASSIGN_OR_RETURN(Loan loan, SelectLoan(tx, id, /*for_update=*/true));
    ML_RETURN_IF_ERROR(RefuseIfRecorded(tx, record));
    if (expected_version != 0 && expected_version != loan.version) {
      return absl::AbortedError(absl::StrCat("loan ", id.value(), " is at version ", loan.version,
                                             ", not ", expected_version, ": re-read it and retry"));
    }
    ML_RETURN_IF_ERROR(mutate(tx, loan));
    loan.id = id;
    loan.version += 1;
    loan.updated_at = now;
    WriteLoan(tx, loan);
    ML_ASSIGN_OR_RETURN(Loan updated, SelectLoan(tx, id, /*for_update=*/false));
    ML_RETURN_IF_ERROR(InsertIdempotencyRecord(tx, record, encode(updated)));
    return updated;
  });
}

// One statement, so one round trip and one snapshot: the page (limit + 1 rows, to learn whether
// more follow) with each loan's schedule, and the capped count as an InitPlan evaluated once.
// A second statement only when the page needs it: under kExpiringSoonest the loans without a
// deadline come last, so a cursor with a key goes on with them once the others are done; and a
// page that comes back empty carries no count.
absl::StatusOr<Page<Loan>> PgLoanStore::List(const LoanQuery& q) {
  if (q.limit < 1) {
    return absl::InvalidArgumentError(absl::StrCat("page limit ", q.limit, " is below 1"));
  }
  if (q.count_cap < 0) return absl::InvalidArgumentError("count cap is negative");
  const CatalogueWhere where(q);
  std::vector<std::optional<std::string>> params = where.params();
  ML_ASSIGN_OR_RETURN(const std::string after, KeysetTest(q, params));
  const std::string count = CountSql(where, q.count_cap);
  const bool card = q.view == LoanView::kCard;
  // A card has no schedule: NULL keeps the columns where ReadPageRow looks for them.
  const std::string select = absl::StrCat(
      "SELECT ", card ? CardLoanColumns() : kLoanColumns, ", ",
      card ? "NULL::text" : kScheduleColumn, ", (", count, ")", kLoanFrom, where.sql());
  const std::string page = absl::StrCat(select, after, OrderBy(q), " LIMIT ", q.limit + 1);
  const bool then_undated = q.sort == LoanSort::kExpiringSoonest && q.after && q.after->key;
  return RunIn<pqxx::nontransaction>(
      *pool_, "listing loans", [&](pqxx::nontransaction& tx) -> absl::StatusOr<Page<Loan>> {
        Page<Loan> out;
        std::optional<int64_t> total;
        ML_RETURN_IF_ERROR(TakeRows(Exec(tx, page, params), q.limit, out, total));
        if (then_undated && out.next_after_id == 0) {
          const std::string undated =
              absl::StrCat(select, " AND l.fundraising_deadline IS NULL ORDER BY l.id LIMIT ",
                           q.limit + 1 - out.items.size());
          ML_RETURN_IF_ERROR(TakeRows(Exec(tx, undated, where.params()), q.limit, out, total));
        }
        if (!total) {
          total = q.after ? Exec(tx, count, where.params())[0][0].as<int64_t>() : 0;
        }
        out.total_count = *total;
        if (!card) ML_RETURN_IF_ERROR(CheckSchedules(out.items));
        return out;
      });
}

namespace {

// The catalogue's read (ADR 0017): a row per loan that `loans_on` selects, as a card, or a row
// of NULLs when none does; each row also carries the snapshot's xmin (the next horizon) and the
// ratings of the partners `partners_where` selects as "id:rating,...". The one-row side is
// outer so that the horizon comes back whatever the loans.
std::string CatalogueSql(std::string_view loans_on, std::string_view partners_where) {
  return absl::StrCat(
      "SELECT ", CardLoanColumns(),
      ", NULL::text, h.horizon, h.ratings FROM (SELECT"
      " pg_snapshot_xmin(pg_current_snapshot())::text AS horizon,"
      " (SELECT string_agg(id || ':' || risk_rating_half_stars, ',') FROM partners",
      AsAbsl(partners_where),
      ") AS ratings) h LEFT JOIN (loans l JOIN partners p ON p.id = l.partner_id) ON ",
      AsAbsl(loans_on));
}

// A transaction id (xid8) the catalogue statements return as text: a horizon or a stamp.
absl::StatusOr<uint64_t> ParseXid(const pqxx::field& f) {
  uint64_t xid = 0;
  if (f.is_null() || !absl::SimpleAtoi(f.c_str(), &xid)) {
    return absl::DataLossError("the catalogue read returned no transaction id where one belongs");
  }
  return xid;
}

absl::Status ParseRatings(const pqxx::field& f, std::vector<PartnerRating>& out) {
  if (f.is_null()) return absl::OkStatus();
  for (absl::string_view item : absl::StrSplit(f.c_str(), ',')) {
    std::pair<absl::string_view, absl::string_view> parts = absl::StrSplit(item, ':');
    int64_t id = 0;
    int32_t rating = 0;
    if (!absl::SimpleAtoi(parts.first, &id) || !absl::SimpleAtoi(parts.second, &rating)) {
      return absl::DataLossError("the catalogue read returned a bad partner rating");
    }
    out.push_back({PartnerId(id), rating});
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<CatalogueChanges> PgLoanStore::CatalogueSnapshot() {
  static const std::string* const sql = new std::string(CatalogueSql("l.status = 3", ""));
  return RunIn<pqxx::nontransaction>(
      *pool_, "reading the loan catalogue",
      [&](pqxx::nontransaction& tx) { return ReadCatalogue(tx, *sql, {}); });
}

// Two statements, the second only when the first finds a stamp at or above `since`:
// - the probe reads the horizon and the highest stamp of loans and of partners, from one
//   snapshot. It has no parameter, so its plan is made once per connection (two backward index
//   scans of one entry each): 0.14 ms a probe in `pgbench -M prepared` against 0.4 ms for the
//   change read, which a parameter compared with `>=` keeps on custom plans;
// - the change read returns the rows stamped at or above `since`, and its own horizon. It runs
//   on the feed's own connection with a generic plan, made once: the stamp is bounded by two
//   parameters (the second the highest xid8), for which the planner expects a narrow range and
//   scans the stamp index; with `change_xid >= $1` alone it would expect a third of the loans.
// When the probe finds every visible stamp below `since`, its horizon is the next one: a
// transaction that had not finished when the probe's snapshot was taken has an id at or above
// that snapshot's xmin, so the next read still finds its rows.
absl::StatusOr<CatalogueChanges> PgLoanStore::CatalogueChangesSince(CatalogueHorizon since) {
  static const std::string* const probe = new std::string(
      "SELECT pg_snapshot_xmin(pg_current_snapshot())::text,"
      " (SELECT change_xid FROM loans WHERE change_xid IS NOT NULL"
      " ORDER BY change_xid DESC LIMIT 1)::text,"
      " (SELECT change_xid FROM partners WHERE change_xid IS NOT NULL"
      " ORDER BY change_xid DESC LIMIT 1)::text");
  static const std::string* const sql =
      new std::string(CatalogueSql("l.change_xid BETWEEN $1::xid8 AND $2::xid8",
                                   " WHERE change_xid BETWEEN $1::xid8 AND $2::xid8"));
  return RunIn<pqxx::nontransaction>(
      *feed_pool_, "reading catalogue changes",
      [&](pqxx::nontransaction& tx) -> absl::StatusOr<CatalogueChanges> {
        const pqxx::result probed = Exec(tx, *probe, {});
        if (probed.size() != 1) return absl::DataLossError("the catalogue probe returned no row");
        CatalogueChanges out;
        ML_ASSIGN_OR_RETURN(out.next.value, ParseXid(probed[0][0]));
        bool changed = false;
        for (int column : {1, 2}) {
          if (probed[0][column].is_null()) continue;  // nothing stamped yet
          ML_ASSIGN_OR_RETURN(const uint64_t stamp, ParseXid(probed[0][column]));
          changed = changed || stamp >= since.value;
        }
        if (!changed) return out;
        return ReadCatalogue(
            tx, *sql,
            {absl::StrCat(since.value), absl::StrCat(std::numeric_limits<uint64_t>::max())});
      });
}

absl::StatusOr<CatalogueChanges> PgLoanStore::ReadCatalogue(
    pqxx::transaction_base& tx, const std::string& sql,
    const std::vector<std::optional<std::string>>& params) {
  const pqxx::result rows = Exec(tx, sql, params);
  if (rows.empty()) return absl::DataLossError("the catalogue read returned no row");
  CatalogueChanges out;
  ML_ASSIGN_OR_RETURN(out.next.value, ParseXid(rows[0][kLoanColumnCount + 1]));
  ML_RETURN_IF_ERROR(ParseRatings(rows[0][kLoanColumnCount + 2], out.partners));
  if (rows[0][0].is_null()) return out;  // no loan: the one row of NULLs
  out.loans.reserve(rows.size());
  for (const pqxx::row& row : rows) {
    ML_ASSIGN_OR_RETURN(Loan loan, ReadLoan(row));
    out.loans.push_back(std::move(loan));
  }
  return out;
}

absl::StatusOr<std::vector<Loan>> PgLoanStore::ReadFullLoans(const std::vector<LoanId>& ids) {
  static const std::string* const sql = new std::string(
      absl::StrCat("SELECT ", kLoanColumns, ", ", kScheduleColumn, kLoanFrom,
                   " WHERE l.id = ANY($1::bigint[])"));
  const std::vector<std::optional<std::string>> params = {
      IntArray(ids, [](LoanId id) { return id.value(); })};
  return RunIn<pqxx::nontransaction>(
      *pool_, "reading loans", [&](pqxx::nontransaction& tx) -> absl::StatusOr<std::vector<Loan>> {
        absl::flat_hash_map<int64_t, Loan> by_id;
        for (const pqxx::row& row : Exec(tx, *sql, params)) {
          ML_ASSIGN_OR_RETURN(Loan loan, ReadPageRow(row));
          by_id.emplace(loan.id.value(), std::move(loan));
        }
        std::vector<Loan> out;
        out.reserve(ids.size());
        for (LoanId id : ids) {
          auto it = by_id.find(id.value());
          if (it == by_id.end()) {
            return absl::DataLossError(absl::StrCat("loan ", id.value(), " is missing"));
          }
          out.push_back(std::move(it->second));
        }
        ML_RETURN_IF_ERROR(CheckSchedules(out));
        return out;
      });
}

pqxx::result PgLoanStore::Exec(pqxx::transaction_base& tx, const std::string& sql,
                               const std::vector<std::optional<std::string>>& params) {
  const auto values = pqxx::prepare::make_dynamic_params(params);
  bool prepare = false;
  {
    absl::MutexLock lock(&mu_);
    prepare = prepared_.contains(sql) ||
              (prepared_.size() < kMaxPreparedStatements && prepared_.insert(sql).second);
  }
  if (!prepare) return tx.exec_params(sql, values);
  const std::string name = absl::StrCat("catalogue_", absl::Hex(std::hash<std::string>{}(sql)));
  tx.conn().prepare(name, sql);  // a no-op once this connection knows it
  return tx.exec_prepared(name, values);
}

}  // namespace microlend::lending
