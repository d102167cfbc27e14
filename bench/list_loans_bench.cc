// LoanService.ListLoans latency through the real lending server over a large catalogue on a
// private PostgreSQL, with the server's own SQL, replayed straight over libpqxx, as the baseline
// in the same run:
//   list_loans_load_s                   bulk-loading the catalogue with SQL, + VACUUM ANALYZE
//   list_loans_total_count              loans matching combination A
//   list_loans_p50_ms / _p99_ms / _rps  combination A through gRPC: FUNDRAISING in KE or UG,
//                                       sector AGRICULTURE, partner rated 3 stars or more,
//                                       expiring soonest, first page of 20
//   list_loans_sql_p50_ms / _p99_ms     the statements the server ran for that request (its
//                                       transaction, page, schedules and count queries, captured
//                                       from PostgreSQL's log with their parameters), replayed
//                                       by the same number of clients at the same pace
//   list_loans_sql_count_p99_ms         the total_count statement alone, inside that replay
//   list_loans_rpc_vs_sql_p99_ratio
//   list_loans_b_*                      the same for combination B: women borrowers, FOOD or
//                                       RETAIL, term 12 months or less, least amount left first
// The loans are inserted with SQL (INSERT ... SELECT FROM generate_series), spread over partners
// created through PartnerService. The newest --fundraising loans are FUNDRAISING (deadlines over
// the next 30 days); older ones are FUNDED, PAYING_BACK, ENDED, EXPIRED, REFUNDED or DEFAULTED.
// Only the FUNDRAISING loans get their repayment schedules: ListLoans loads the schedules of the
// loans it returns and the bench lists no others (GetLoan of an older loan would be DATA_LOSS).
// Each phase runs --clients threads, one second of warm-up, then --seconds measured: at --rate
// requests/s in all, latency counted from each request's scheduled time (so a server that falls
// behind shows it), or closed loop with --rate=0 (each client sends when its last is answered).
// Flags: --loans=N (1000000), --fundraising=N (100000), --seconds=N (20), --clients=N (8),
// --rate=N (100), --setup_sql=FILE (run after loading, before VACUUM ANALYZE, as one implicit
// transaction: e.g. an index to try), --explain (EXPLAIN ANALYZE of the captured statements).
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <optional>
#include <pqxx/pqxx>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "harness/local_stack.h"
#include "harness/rpc.h"
#include "microlend/lending/v1/lending.grpc.pb.h"
#include "pg/connect.h"
#include "pg/params.h"

namespace microlend::testing {
namespace {

namespace lv1 = ::microlend::lending::v1;
namespace cv1 = ::microlend::common::v1;

struct Config {
  int loans = 1'000'000;
  int fundraising = 100'000;
  int seconds = 20;
  int clients = 8;
  int rate = 100;
  std::string setup_sql;
  bool explain = false;
};

Config ParseArgs(int argc, char** argv) {
  Config c;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    auto value = [&](std::string_view name, int* out) {
      if (a.substr(0, name.size()) == name) {
        *out = std::atoi(std::string(a.substr(name.size())).c_str());
      }
    };
    value("--loans=", &c.loans);
    value("--fundraising=", &c.fundraising);
    value("--seconds=", &c.seconds);
    value("--clients=", &c.clients);
    value("--rate=", &c.rate);
    if (a.substr(0, 12) == "--setup_sql=") c.setup_sql = std::string(a.substr(12));
    if (a == "--explain") c.explain = true;
  }
  return c;
}

// The running stack, so that a fatal error still stops its servers and databases.
std::unique_ptr<LocalStack>* g_stack = nullptr;

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "list_loans_bench: %s\n", what.c_str());
  if (g_stack != nullptr) g_stack->reset();
  std::exit(1);
}

// ---- The catalogue -----------------------------------------------------------------------------

struct BenchCountry {
  const char* code;
  const char* currency;
  const char* fx_rate;  // local units per USD, as a partner posts it
  // usd_minor * fx_num / fx_den = local minor units, exact for multiples of 25.00 USD.
  int64_t fx_num, fx_den;
  const char* regions;  // three, '|'-separated
};

const BenchCountry kCountries[] = {
    {"KE", "KES", "129.5", 1295, 10, "Nairobi|Kisumu|Nakuru"},
    {"UG", "UGX", "3700", 37, 1, "Kampala|Gulu|Mbale"},
    {"TZ", "TZS", "2600", 2600, 1, "Arusha|Mwanza|Dodoma"},
    {"PH", "PHP", "58.2", 582, 10, "Cebu|Iloilo|Davao"},
    {"PE", "PEN", "3.75", 375, 100, "Cusco|Puno|Arequipa"},
    {"BO", "BOB", "6.91", 691, 100, "La Paz|Cochabamba|Oruro"},
    {"SN", "XOF", "605", 605, 100, "Dakar|Thies|Kaolack"},
    {"ML", "XOF", "605", 605, 100, "Bamako|Segou|Mopti"},
    {"KH", "KHR", "4100", 4100, 1, "Siem Reap|Battambang|Kampot"},
    {"GT", "GTQ", "7.8", 78, 10, "Quetzaltenango|Solola|Coban"},
    {"HN", "HNL", "24.7", 247, 10, "Tegucigalpa|Choluteca|La Ceiba"},
    {"IN", "INR", "83.2", 832, 10, "Bihar|Odisha|Assam"},
};

struct BenchPartner {
  const char* name;
  std::vector<const char*> countries;
  int rating_half_stars;
};

const BenchPartner kPartners[] = {
    {"Juhudi Kilimo (bench)", {"KE", "UG"}, 7},
    {"Bayanihan Credit (bench)", {"PH"}, 8},
    {"Andes Solidarity Fund (bench)", {"PE", "BO"}, 6},
    {"Sahel Microfinance (bench)", {"SN", "ML"}, 5},
    {"Mekong Rural Credit (bench)", {"KH"}, 9},
    {"Lake Victoria Women's Fund (bench)", {"UG", "TZ", "KE"}, 4},
    {"Altiplano Cooperative (bench)", {"GT", "HN"}, 6},
    {"Ganges Self-Help Network (bench)", {"IN"}, 3},
};

const BenchCountry& CountryByCode(std::string_view code) {
  for (const BenchCountry& c : kCountries) {
    if (code == c.code) return c;
  }
  Die(absl::StrCat("no bench country ", std::string(code)));
}

// One (partner, country) pair a loan can be posted in; the loader picks one per loan uniformly.
struct Slots {
  std::vector<int64_t> partner_ids, fx_num, fx_den;
  std::vector<std::string> countries, currencies, fx_rates, regions;
};

std::string IntArray(const std::vector<int64_t>& v) {
  return absl::StrCat("{", absl::StrJoin(v, ","), "}");
}

Slots CreatePartners(LocalStack& stack) {
  auto partners = lv1::PartnerService::NewStub(Channel(stack.Address(Server::kLending)));
  const std::string ops = stack.Token(Role::kOps, "bench-ops");
  Slots slots;
  for (size_t i = 0; i < std::size(kPartners); ++i) {
    lv1::CreatePartnerRequest req;
    req.set_request_id(absl::StrCat("bench-partner-", i));
    req.set_name(kPartners[i].name);
    for (const char* country : kPartners[i].countries) req.add_countries(country);
    req.set_risk_rating_half_stars(kPartners[i].rating_half_stars);
    *req.mutable_credit_limit() = M("50000000.00");
    req.set_description("Loans for small businesses and farmers");
    req.set_website_url("https://example.org");
    lv1::CreatePartnerResponse out;
    grpc::Status s = partners->CreatePartner(Ctx(ops).get(), req, &out);
    if (!s.ok()) Die("create partner: " + s.error_message());
    const int64_t id = std::stoll(out.partner().id().value());
    for (const char* code : kPartners[i].countries) {
      const BenchCountry& c = CountryByCode(code);
      slots.partner_ids.push_back(id);
      slots.countries.push_back(c.code);
      slots.currencies.push_back(c.currency);
      slots.fx_rates.push_back(c.fx_rate);
      slots.fx_num.push_back(c.fx_num);
      slots.fx_den.push_back(c.fx_den);
      slots.regions.push_back(c.regions);
    }
  }
  return slots;
}

// Loan g (1..$1) is the g-th posted: the newest $2 are FUNDRAISING. pg_temp.u(g, k) is the k-th
// uniform [0, 1) draw of loan g, so a given size always loads the same catalogue. Sector weights
// are roughly Kiva's (agriculture, food and retail first). Only the columns of 0004_loans.sql are
// named: later migrations add columns with defaults.
constexpr char kInsertLoans[] = R"sql(
INSERT INTO loans (partner_id, status, country, region, town, sector, gender, is_group, tags,
  hashtags, term_months, repayment_interval, local_amount_minor, local_currency, posting_fx_rate,
  usd_amount_minor, funded_minor, held_minor, lender_count, trending_score_milli, details,
  fundraising_deadline, version, created_at, updated_at, submitted_at, published_at)
SELECT ($4::bigint[])[a.slot], b.status, ($5::text[])[a.slot], b.region, b.region, a.sector,
  a.gender, a.gender = 4, b.tags, b.hashtags, a.term, a.rep,
  a.usd * ($8::bigint[])[a.slot] / ($9::bigint[])[a.slot], ($6::text[])[a.slot],
  ($7::text[])[a.slot], a.usd, c.funded, 0, (c.funded + 4999) / 5000,
  CASE WHEN b.status = 3 THEN floor(pg_temp.u(g, 30) ^ 4 * 500000)::bigint ELSE 0 END,
  jsonb_build_object(
    'borrowers', CASE WHEN a.gender = 4 THEN jsonb_build_array(
        jsonb_build_object('id', 2 * g, 'name', b.fname, 'gender', 1, 'primary', true),
        jsonb_build_object('id', 2 * g + 1, 'name', b.mname, 'gender', 2, 'primary', false))
      ELSE jsonb_build_array(jsonb_build_object('id', 2 * g, 'name', b.name, 'gender', a.gender,
                                                'primary', true)) END,
    'name', b.name,
    'story', format('%s lives in %s and has worked in %s for %s years, selling to neighbours and'
      ' at the weekly market. Profits go to school fees and to the family''s savings group.'
      ' %s is asking for a loan %s, which will raise the business''s monthly income and make'
      ' it steadier through the dry season. %s has repaid earlier loans on time and is a'
      ' member of a village group that meets every week to review each member''s progress.'
      ' The field officer visited the business and confirmed its stock, its customers and its'
      ' records before this loan was posted.', b.name, b.region, lower(b.activity),
      2 + floor(pg_temp.u(g, 15) * 20)::int, b.name, b.use, b.name),
    'use', b.use, 'activity', b.activity,
    'image_url', 'https://images.example.org/loans/' || g || '.jpg',
    'fundraising_window_days', 30, 'pre_disbursed', false),
  b.published + interval '30 days', 3 + (c.funded + 4999) / 5000,
  c.created,
  least(from_micros($3::bigint), b.published + CASE WHEN b.status = 3
        THEN pg_temp.u(g, 16) * (from_micros($3::bigint) - b.published)
        ELSE interval '45 days' END),
  c.created + pg_temp.u(g, 14) * (b.published - c.created),
  b.published
FROM generate_series(1, $1::bigint) AS g
CROSS JOIN LATERAL (SELECT
    g > $1::bigint - $2::bigint AS fundraising,
    1 + floor(pg_temp.u(g, 1) * cardinality($4::bigint[]))::int AS slot,
    ('{1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,
       12,12,12,12,12,12,12,12,12,12,12,12,12,12,12,12,12,12,13,13,13,13,13,13,13,3,3,3,3,3,
       9,9,9,9,11,11,11,11,5,5,5,14,14,14,2,2,8,8,4,4,10,10,15,6}'::smallint[])
      [1 + floor(pg_temp.u(g, 2) * 100)::int] AS sector,
    CASE WHEN pg_temp.u(g, 3) < 0.70 THEN 1 WHEN pg_temp.u(g, 3) < 0.92 THEN 2
         WHEN pg_temp.u(g, 3) < 0.93 THEN 3 ELSE 4 END AS gender,
    6 + floor(pg_temp.u(g, 4) * 31)::int AS term,
    CASE WHEN pg_temp.u(g, 5) < 0.85 THEN 1 ELSE 3 END AS rep,
    2500 * (1 + floor(399 * pg_temp.u(g, 6) ^ 3)::bigint) AS usd,
    ($1::bigint - $2::bigint - g)::float8 / greatest($1::bigint - $2::bigint, 1)::float8 AS age
  ) a
CROSS JOIN LATERAL (SELECT
    CASE WHEN a.fundraising THEN 3
         WHEN pg_temp.u(g, 7) < 0.06 THEN 7 WHEN pg_temp.u(g, 7) < 0.065 THEN 8
         WHEN a.age < 0.02 THEN 4
         WHEN a.age < 0.40 THEN CASE WHEN pg_temp.u(g, 8) < 0.03 THEN 9 ELSE 5 END
         ELSE CASE WHEN pg_temp.u(g, 8) < 0.02 THEN 9 ELSE 6 END END AS status,
    CASE WHEN a.fundraising THEN from_micros($3::bigint) - interval '30 days' * least(0.999,
           greatest(0.001, ($1::bigint - g)::float8 / $2::bigint::float8
                           + (pg_temp.u(g, 9) - 0.5) * 0.02))
         ELSE from_micros($3::bigint) - interval '31 days' - a.age * interval '5 years'
              - pg_temp.u(g, 9) * interval '1 day' END AS published,
    split_part(($10::text[])[a.slot], '|', 1 + floor(pg_temp.u(g, 10) * 3)::int) AS region,
    array_remove(ARRAY[
      CASE WHEN a.gender = 1 AND pg_temp.u(g, 20) < 0.5 THEN 'woman_owned_business' END,
      CASE WHEN pg_temp.u(g, 21) < 0.15 THEN 'repeat_borrower' END,
      CASE WHEN pg_temp.u(g, 22) < 0.08 THEN 'eco_friendly' END,
      CASE WHEN pg_temp.u(g, 23) < 0.10 THEN 'single_parent' END,
      CASE WHEN pg_temp.u(g, 24) < 0.05 THEN 'animals' END,
      CASE WHEN pg_temp.u(g, 25) < 0.03 THEN 'refugee' END], NULL) AS tags,
    array_remove(ARRAY[CASE WHEN pg_temp.u(g, 26) < 0.05 THEN 'volunteer_pick' END,
                       CASE WHEN pg_temp.u(g, 27) < 0.02 THEN 'user_favorite' END], NULL)
      AS hashtags,
    ('{Amina,Grace,Maricel,Rosa,Fatou,Sreymom,Wanjiru,Nakato,Priya,Ana,Mariam,Joy}'::text[])
      [1 + floor(pg_temp.u(g, 11) * 12)::int] AS fname,
    ('{Joseph,Rodel,Evo,Moussa,Sokha,Otieno,Okello,Ravi,Juan,Ibrahim,Samuel,Dara}'::text[])
      [1 + floor(pg_temp.u(g, 12) * 12)::int] AS mname,
    ('{Farming,Crafts,Clothing Sales,Construction,School Fees,Music,Food Market,Pharmacy,'
      'Home Energy,Carpentry,Personal Expenses,General Store,Tailoring,Motorcycle Transport,'
      'Wholesale}'::text[])[a.sector] AS activity,
    ('{"to buy seed and fertiliser","to buy paint and brushes","to buy fabric in bulk",'
      '"to buy cement and roofing sheets","to pay school fees","to buy a sound system",'
      '"to buy a vegetable cart","to stock medicines","to install a solar lamp",'
      '"to buy a lathe","to repair the family home","to stock a kiosk",'
      '"to buy a sewing machine","to repair a motorcycle taxi","to buy goods for resale"}'
      ::text[])[a.sector] AS use
  ) b0
CROSS JOIN LATERAL (SELECT b0.*,
    CASE a.gender WHEN 2 THEN b0.mname WHEN 4 THEN b0.fname || ' and ' || b0.mname
                  ELSE b0.fname END AS name) b
CROSS JOIN LATERAL (SELECT
    CASE WHEN b.status IN (3, 7) THEN 2500 * floor(pg_temp.u(g, 13) * (a.usd / 2500))::bigint
         ELSE a.usd END AS funded,
    b.published - (1 + 9 * pg_temp.u(g, 17)) * interval '1 day' AS created) c
)sql";

// The schedule the service would have generated: monthly, the leftover minor units on the
// earliest installments, due on the same day of each month after the day the loan was created
// (no disbursed_on); bullet loans owe everything at the end of the term.
constexpr char kInsertSchedules[] = R"sql(
INSERT INTO loan_schedule_entries (loan_id, seq, due_date, principal_minor)
SELECT l.id, k - 1,
  ((l.created_at AT TIME ZONE 'UTC')::date
     + make_interval(months => CASE WHEN n.cnt = 1 THEN l.term_months ELSE k END))::date,
  l.local_amount_minor / n.cnt + CASE WHEN k <= l.local_amount_minor % n.cnt THEN 1 ELSE 0 END
FROM loans l
CROSS JOIN LATERAL (SELECT CASE WHEN l.repayment_interval = 3 THEN 1 ELSE l.term_months END
                    AS cnt) n
CROSS JOIN LATERAL generate_series(1, n.cnt) AS k
WHERE l.id > $1::bigint AND l.status = 3
)sql";

std::unique_ptr<pqxx::connection> ConnectLending(const LocalStack& stack) {
  absl::StatusOr<std::unique_ptr<pqxx::connection>> conn = pg::Connect(stack.pg_url());
  if (!conn.ok()) Die(conn.status().ToString());
  (*conn)->set_variable("search_path", "lending");
  return *std::move(conn);
}

void RunSetupSql(pqxx::connection& conn, const std::string& path) {
  std::ifstream in(path);
  if (!in) Die("cannot read --setup_sql " + path);
  std::stringstream sql;
  sql << in.rdbuf();
  pqxx::nontransaction tx(conn);
  tx.exec(sql.str());
}

void LoadCatalogue(LocalStack& stack, const Config& c, const Slots& slots, absl::Time now) {
  const absl::Time start = absl::Now();
  std::unique_ptr<pqxx::connection> conn = ConnectLending(stack);
  try {
    pqxx::work tx(*conn);
    tx.exec(
        "CREATE FUNCTION pg_temp.u(g bigint, k int) RETURNS float8 LANGUAGE sql IMMUTABLE"
        " RETURN (hashint8extended(g, k) & 2147483647)::float8 / 2147483648.0");
    const int64_t before = tx.exec("SELECT coalesce(max(id), 0) FROM loans")[0][0].as<int64_t>();
    tx.exec_params(kInsertLoans, c.loans, c.fundraising, absl::ToUnixMicros(now),
                   IntArray(slots.partner_ids), pg::TextArray(slots.countries),
                   pg::TextArray(slots.currencies), pg::TextArray(slots.fx_rates),
                   IntArray(slots.fx_num), IntArray(slots.fx_den), pg::TextArray(slots.regions));
    tx.exec_params(kInsertSchedules, before);
    tx.exec_params("SELECT setval('borrower_id_seq', $1::bigint)", 2 * int64_t{c.loans} + 2);
    tx.commit();
    if (!c.setup_sql.empty()) RunSetupSql(*conn, c.setup_sql);
    pqxx::nontransaction vacuum(*conn);
    vacuum.exec("VACUUM ANALYZE partners, loans, loan_schedule_entries");
  } catch (const std::exception& e) {
    Die(absl::StrCat("loading the catalogue: ", e.what()));
  }
  std::printf("list_loans_load_s %.1f\n", absl::ToDoubleSeconds(absl::Now() - start));
}

// ---- The queries -------------------------------------------------------------------------------

// Three filters and a sort, as a lender browses.
struct Combo {
  std::string prefix;
  std::vector<std::string> countries;
  std::vector<int64_t> sectors, genders;
  int min_rating_half_stars = 0;
  int max_term_months = 0;
  lv1::LoanSort sort;
};

const Combo kCombos[] = {
    {.prefix = "list_loans",
     .countries = {"KE", "UG"},
     .sectors = {cv1::SECTOR_AGRICULTURE},
     .min_rating_half_stars = 6,
     .sort = lv1::LOAN_SORT_EXPIRING_SOONEST},
    {.prefix = "list_loans_b",
     .sectors = {cv1::SECTOR_FOOD, cv1::SECTOR_RETAIL},
     .genders = {cv1::GENDER_FEMALE},
     .max_term_months = 12,
     .sort = lv1::LOAN_SORT_AMOUNT_LEFT_ASC},
};

constexpr int kPageSize = 20;

lv1::ListLoansRequest ToRequest(const Combo& c) {
  lv1::ListLoansRequest req;
  req.mutable_page()->set_page_size(kPageSize);
  req.mutable_filter()->add_statuses(lv1::LOAN_STATUS_FUNDRAISING);
  for (const std::string& country : c.countries) req.mutable_filter()->add_countries(country);
  for (int64_t s : c.sectors) req.mutable_filter()->add_sectors(static_cast<cv1::Sector>(s));
  for (int64_t g : c.genders) req.mutable_filter()->add_genders(static_cast<cv1::Gender>(g));
  req.mutable_filter()->set_min_partner_risk_rating_half_stars(c.min_rating_half_stars);
  req.mutable_filter()->set_max_term_months(c.max_term_months);
  req.set_sort(c.sort);
  return req;
}

// ---- The baseline: the server's own statements, replayed --------------------------------------

// One statement the lending server ran for a ListLoans call, as PostgreSQL logged it: simple
// ones (BEGIN, COMMIT) without parameters, extended ones (exec_params) with theirs.
struct Statement {
  std::string sql;
  bool extended = false;
  std::vector<std::optional<std::string>> params;  // NULL as nullopt
};

// "$1 = '{3}', $2 = 'f', $3 = NULL" (the DETAIL line of a logged execute) as values.
std::optional<std::vector<std::optional<std::string>>> ParseParameters(std::string_view s) {
  std::vector<std::optional<std::string>> out;
  size_t i = 0;
  while (i < s.size()) {
    const size_t eq = s.find(" = ", i);
    if (s[i] != '$' || eq == std::string_view::npos) return std::nullopt;
    i = eq + 3;
    if (s.substr(i, 4) == "NULL") {
      out.push_back(std::nullopt);
      i += 4;
    } else if (i < s.size() && s[i] == '\'') {
      std::string value;
      for (++i;; ++i) {
        if (i >= s.size()) return std::nullopt;
        if (s[i] == '\'' && (i + 1 >= s.size() || s[i + 1] != '\'')) break;
        if (s[i] == '\'') ++i;  // '' is one quote
        value += s[i];
      }
      out.push_back(std::move(value));
      ++i;
    } else {
      return std::nullopt;
    }
    if (s.substr(i, 2) == ", ") {
      i += 2;
    } else if (i < s.size()) {
      return std::nullopt;
    }
  }
  return out;
}

struct LogEntry {
  std::string pid;
  // "LOG:  duration: ...", "DETAIL:  parameters: ...", with continuation lines joined.
  std::string message;
};

// Entries of a PostgreSQL log with the default prefix "%m [%p] ".
std::vector<LogEntry> ParseLog(const std::string& text) {
  std::vector<LogEntry> entries;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    const size_t open = line.find(" ["), close = line.find("] ");
    const bool starts = line.size() > 4 && std::isdigit(static_cast<unsigned char>(line[0])) &&
                        line[4] == '-' && open != std::string::npos && close != std::string::npos;
    if (starts) {
      entries.push_back({line.substr(open + 2, close - open - 2), line.substr(close + 2)});
    } else if (!entries.empty()) {
      entries.back().message += "\n" + line;
    }
  }
  return entries;
}

// The statements of the connection that read `loans`, in order.
std::vector<Statement> StatementsOf(const std::vector<LogEntry>& entries) {
  std::string pid;
  for (const LogEntry& e : entries) {
    if (e.message.find("execute ") != std::string::npos &&
        e.message.find(" FROM loans ") != std::string::npos) {
      pid = e.pid;
      break;
    }
  }
  std::vector<Statement> out;
  bool last_was_execute = false;
  for (const LogEntry& e : entries) {
    if (e.pid != pid) continue;
    const std::string& m = e.message;
    const size_t execute = m.find("  execute "), simple = m.find("  statement: ");
    if (m.rfind("LOG:  duration: ", 0) == 0 && execute != std::string::npos) {
      out.push_back({.sql = m.substr(m.find(": ", execute) + 2), .extended = true});
    } else if (m.rfind("LOG:  duration: ", 0) == 0 && simple != std::string::npos) {
      out.push_back({.sql = m.substr(simple + 13)});
    } else if (m.rfind("DETAIL:  parameters: ", 0) == 0 && last_was_execute) {
      auto params = ParseParameters(std::string_view(m).substr(21));
      if (!params) Die("cannot parse logged parameters: " + m);
      out.back().params = *std::move(params);
    }
    last_was_execute = m.rfind("LOG:  duration: ", 0) == 0 && execute != std::string::npos;
  }
  return out;
}

void LogAllStatements(pqxx::connection& conn, bool on) {
  pqxx::nontransaction tx(conn);
  tx.exec(on ? "ALTER SYSTEM SET log_min_duration_statement = 0"
             : "ALTER SYSTEM RESET log_min_duration_statement");
  tx.exec("SELECT pg_reload_conf()");
  absl::SleepFor(absl::Milliseconds(300));  // every backend rereads the configuration
}

std::string ReadFrom(const std::string& path, std::streamoff offset) {
  std::ifstream in(path);
  in.seekg(offset);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Calls ListLoans once with every statement logged and returns what the server ran for it, so
// that the baseline is the server's SQL (text and parameters) whatever PgLoanStore does today.
std::vector<Statement> CaptureStatements(LocalStack& stack, const lv1::ListLoansRequest& request,
                                         const std::string& lender, int64_t* total_count) {
  std::unique_ptr<pqxx::connection> admin = ConnectLending(stack);
  const std::string log = stack.data_dir() + "/pg.log";
  LogAllStatements(*admin, true);
  const std::streamoff offset = std::ifstream(log, std::ios::ate).tellg();
  auto stub = lv1::LoanService::NewStub(Channel(stack.Address(Server::kLending)));
  lv1::ListLoansResponse out;
  grpc::Status s = stub->ListLoans(Ctx(lender).get(), request, &out);
  absl::SleepFor(absl::Milliseconds(300));
  LogAllStatements(*admin, false);
  if (!s.ok()) Die("ListLoans: " + s.error_message());
  *total_count = out.page().total_count();
  std::vector<Statement> statements = StatementsOf(ParseLog(ReadFrom(log, offset)));
  if (statements.empty()) Die("found no ListLoans statements in " + log);
  return statements;
}

// Runs `statements` as the server did; returns the milliseconds of the total_count statement
// ("SELECT count(..."), or 0 without one.
double Replay(pqxx::connection& conn, const std::vector<Statement>& statements) {
  pqxx::nontransaction tx(conn);
  double count_ms = 0;
  for (const Statement& st : statements) {
    const absl::Time start = absl::Now();
    if (st.extended) {
      tx.exec_params(st.sql, pqxx::prepare::make_dynamic_params(st.params));
    } else {
      tx.exec(st.sql);
    }
    if (st.sql.rfind("SELECT count(", 0) == 0) {
      count_ms = absl::ToDoubleMilliseconds(absl::Now() - start);
    }
  }
  return count_ms;
}

void Explain(LocalStack& stack, const Combo& c, const std::vector<Statement>& statements) {
  std::unique_ptr<pqxx::connection> conn = ConnectLending(stack);
  pqxx::work tx(*conn);
  for (const Statement& st : statements) {
    if (!st.extended || st.sql.rfind("SELECT", 0) != 0) continue;
    std::fprintf(stderr, "-- %s: EXPLAIN (ANALYZE, BUFFERS) %s\n", c.prefix.c_str(),
                 st.sql.c_str());
    pqxx::result plan = tx.exec_params("EXPLAIN (ANALYZE, BUFFERS) " + st.sql,
                                       pqxx::prepare::make_dynamic_params(st.params));
    for (const pqxx::row& row : plan) std::fprintf(stderr, "%s\n", row[0].c_str());
  }
}

// ---- Load and figures ---------------------------------------------------------------------------

struct Latencies {
  std::vector<double> ms;  // sorted
  double seconds = 0;
  double Percentile(double p) const { return ms[static_cast<size_t>(p * (ms.size() - 1))]; }
};

// Runs each client's `once` from its own thread: a one-second warm-up, then c.seconds measured,
// closed loop or paced to c.rate calls/s in all. Calls still due when the time is up are dropped,
// so a server slower than the rate shows as fewer requests/s and latencies that grow.
Latencies Drive(const Config& c, const std::function<std::function<void()>(int)>& make_client) {
  absl::Mutex mu;
  Latencies out;
  const absl::Time measure_from = absl::Now() + absl::Seconds(1);
  const absl::Time until = measure_from + absl::Seconds(c.seconds);
  const absl::Duration period =
      c.rate > 0 ? absl::Seconds(1) * c.clients / c.rate : absl::ZeroDuration();
  std::vector<std::thread> threads;
  for (int t = 0; t < c.clients; ++t) {
    threads.emplace_back([&, t] {
      std::function<void()> once = make_client(t);
      std::vector<double> mine;
      absl::Time next = absl::Now() + period * t / c.clients;
      while (true) {
        if (period > absl::ZeroDuration()) {
          absl::SleepFor(next - absl::Now());
        } else {
          next = absl::Now();
        }
        if (next >= until || absl::Now() >= until) break;  // a backlog is not worked off
        once();
        if (next >= measure_from) mine.push_back(absl::ToDoubleMilliseconds(absl::Now() - next));
        next += period;
      }
      absl::MutexLock lock(&mu);
      out.ms.insert(out.ms.end(), mine.begin(), mine.end());
    });
  }
  for (std::thread& th : threads) th.join();
  if (out.ms.empty()) Die("no request completed in the measured window");
  std::sort(out.ms.begin(), out.ms.end());
  out.seconds = c.seconds;
  return out;
}

double MeasureRpc(LocalStack& stack, const Config& c, const Combo& combo,
                  const std::string& lender) {
  const lv1::ListLoansRequest request = ToRequest(combo);
  Latencies lat = Drive(c, [&](int) -> std::function<void()> {
    std::shared_ptr<lv1::LoanService::Stub> stub =
        lv1::LoanService::NewStub(Channel(stack.Address(Server::kLending)));
    return [stub, &request, &lender] {
      lv1::ListLoansResponse out;
      grpc::Status s = stub->ListLoans(Ctx(lender).get(), request, &out);
      if (!s.ok()) Die("ListLoans: " + s.error_message());
    };
  });
  const char* p = combo.prefix.c_str();
  std::printf("%s_p50_ms %.2f\n", p, lat.Percentile(0.50));
  std::printf("%s_p99_ms %.2f\n", p, lat.Percentile(0.99));
  std::printf("%s_rps %.0f\n", p, lat.ms.size() / lat.seconds);
  return lat.Percentile(0.99);
}

double MeasureSql(LocalStack& stack, const Config& c, const Combo& combo,
                  const std::vector<Statement>& statements) {
  absl::Mutex mu;
  std::vector<double> count_ms;
  Latencies lat = Drive(c, [&](int) -> std::function<void()> {
    std::shared_ptr<pqxx::connection> conn = ConnectLending(stack);
    return [conn, &statements, &mu, &count_ms] {
      try {
        const double ms = Replay(*conn, statements);
        absl::MutexLock lock(&mu);
        count_ms.push_back(ms);
      } catch (const std::exception& e) {
        Die(absl::StrCat("baseline SQL: ", e.what()));
      }
    };
  });
  std::sort(count_ms.begin(), count_ms.end());
  const char* p = combo.prefix.c_str();
  std::printf("%s_sql_p50_ms %.2f\n", p, lat.Percentile(0.50));
  std::printf("%s_sql_p99_ms %.2f\n", p, lat.Percentile(0.99));
  std::printf("%s_sql_count_p99_ms %.2f\n", p,
              count_ms[static_cast<size_t>(0.99 * (count_ms.size() - 1))]);
  return lat.Percentile(0.99);
}

int Main(int argc, char** argv) {
  Config c = ParseArgs(argc, argv);
  if (c.loans < 1 || c.fundraising < 1 || c.fundraising > c.loans || c.clients < 1 ||
      c.seconds < 1 || c.rate < 0) {
    Die("need 1 <= --fundraising <= --loans, --clients >= 1, --seconds >= 1, --rate >= 0");
  }
  auto stack = LocalStack::Start(LocalStack::Options{.start_servers = false});
  if (!stack.ok()) Die(stack.status().ToString());
  g_stack = &*stack;
  if (absl::Status s = (*stack)->StartServer(Server::kLending); !s.ok()) Die(s.ToString());
  Slots slots = CreatePartners(**stack);
  LoadCatalogue(**stack, c, slots, absl::Now());
  const std::string lender = (*stack)->Token(Role::kLender, "1");
  for (const Combo& combo : kCombos) {
    int64_t total_count = 0;
    const std::vector<Statement> statements =
        CaptureStatements(**stack, ToRequest(combo), lender, &total_count);
    std::printf("%s_total_count %lld\n", combo.prefix.c_str(), static_cast<long long>(total_count));
    if (c.explain) Explain(**stack, combo, statements);
    const double rpc = MeasureRpc(**stack, c, combo, lender);
    const double sql = MeasureSql(**stack, c, combo, statements);
    std::printf("%s_rpc_vs_sql_p99_ratio %.2f\n", combo.prefix.c_str(), rpc / sql);
  }
  return 0;
}

}  // namespace
}  // namespace microlend::testing

int main(int argc, char** argv) { return microlend::testing::Main(argc, argv); }
