// LoanService.ListLoans latency through the real lending server over a large catalogue on a
// private PostgreSQL, in two halves on the same data: first the server answering from
// PostgreSQL (--catalogue_in_memory=false), whose own SQL, replayed straight over libpqxx, is
// the baseline; then the server restarted with its catalogue in memory (ADR 0017), which must
// answer each first page exactly as PostgreSQL did:
//   list_loans_load_s                   bulk-loading the catalogue with SQL, + VACUUM ANALYZE
//   list_loans_rpc_floor_p50_ms / _p99  the lending server's gRPC health check at the same pace:
//                                       what a call costs here before any work is done
//   list_loans_pg_p50_ms / _p99 / _rps  combination A through gRPC, answered from PostgreSQL:
//                                       FUNDRAISING in KE or UG, sector AGRICULTURE, partner
//                                       rated 3 stars or more, expiring soonest, first page of
//                                       20 cards (LOAN_VIEW_CARD: no stories or schedules)
//   list_loans_sql_p50_ms / _p99_ms     the statements the server ran for that request
//                                       (captured from PostgreSQL's log with their parameters),
//                                       replayed by the same number of clients at the same pace,
//                                       on connections set up like the store's (jit off),
//                                       prepared where the server's were
//   list_loans_sql_count_p99_ms         the total_count statement alone, inside that replay
//                                       (only when the server counts in a statement of its own)
//   list_loans_pg_server_rss_mb         the lending server's resident memory after the PostgreSQL
//                                       half (no catalogue in memory)
//   list_loans_catalogue_start_s        the in-memory server's start, its snapshot included
//   list_loans_catalogue_server_rss_mb  its resident memory once started
//   list_loans_trending_writes          the writer's statements over the run (below)
//   list_loans_total_count              loans matching A, as ListLoans reports it
//                                       (_total_count_is_lower_bound 1: capped, more match)
//   list_loans_p50_ms / _p99_ms / _rps  combination A from the catalogue in memory
//   list_loans_rpc_vs_sql_p99_ratio     that p99 over the replay's
//   list_loans_vs_pg_p99_ratio          that p99 over the PostgreSQL-answered one
//   list_loans_b_*                      the same for combination B: women borrowers, FOOD or
//                                       RETAIL, term 12 months or less, least amount left first
//   list_loans_full_*                   combination A again, as full loans (LOAN_VIEW_FULL)
// The catalogue is tests/harness/loan_catalogue.h: the newest --fundraising loans are
// FUNDRAISING (deadlines over the next 30 days), older ones FUNDED, PAYING_BACK, ENDED, EXPIRED,
// REFUNDED or DEFAULTED; only FUNDRAISING loans have schedules, and the bench lists no others.
// Each phase runs --clients threads, one second of warm-up, then --seconds measured: at --rate
// requests/s in all, latency counted from each request's scheduled time (so a server that falls
// behind shows it), or closed loop with --rate=0 (each client sends when its last is answered).
// Throughout the measurements a writer sets the trending scores of 10 random FUNDRAISING loans
// --writes times a second (one statement each, straight to PostgreSQL, as notify's pushes would),
// so that both halves search a catalogue that is changing.
// Flags: --loans=N (1000000), --fundraising=N (100000), --seconds=N (20), --clients=N (8),
// --rate=N (100), --writes=N (10; 0 for none), --setup_sql=FILE (run after loading, before VACUUM ANALYZE, as one implicit
// transaction: e.g. an index to try), --explain (EXPLAIN ANALYZE of the captured statements).
#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdio>
#include <csignal>
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
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "harness/loan_catalogue.h"
#include "harness/local_stack.h"
#include "harness/rpc.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "microlend/lending/v1/lending.grpc.pb.h"

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
  int writes = 10;
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
    value("--writes=", &c.writes);
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

// A connection to the lending schema, or the bench stops.
std::unique_ptr<pqxx::connection> ConnectLendingOrDie(const LocalStack& stack) {
  absl::StatusOr<std::unique_ptr<pqxx::connection>> conn = ConnectLending(stack);
  if (!conn.ok()) Die(conn.status().ToString());
  return *std::move(conn);
}

// A connection set up as PgLoanStore sets up its own (PgLoanStore::Create), for the baseline.
std::unique_ptr<pqxx::connection> ConnectLikeTheStore(const LocalStack& stack) {
  std::unique_ptr<pqxx::connection> conn = ConnectLendingOrDie(stack);
  conn->set_variable("jit", "off");
  return conn;
}

// Writes to the catalogue while the searches are measured, as the marketplace does: every
// 1/c.writes s one statement sets the trending scores of 10 random FUNDRAISING loans (what
// notify's pushes do), so that the in-memory catalogue's feed has changes to read. Stops on
// destruction.
class TrendingWriter {
 public:
  TrendingWriter(const LocalStack& stack, const Config& c) {
    if (c.writes <= 0) return;
    conn_ = ConnectLendingOrDie(stack);
    for (const pqxx::row& row : pqxx::nontransaction(*conn_).exec("SELECT id FROM loans WHERE status = 3")) {
      ids_.push_back(row[0].as<int64_t>());
    }
    if (ids_.empty()) Die("no FUNDRAISING loan to write to");
    thread_ = std::thread([this, period = absl::Seconds(1) / c.writes] { Run(period); });
  }
  ~TrendingWriter() {
    if (!thread_.joinable()) return;
    stop_.Notify();
    thread_.join();
  }
  int64_t writes() const { return writes_; }

 private:
  void Run(absl::Duration period) {
    uint64_t draw = 20261122;
    absl::Time next = absl::Now();
    while (!stop_.WaitForNotificationWithDeadline(next)) {
      next += period;
      std::string ids = "{", scores = "{";
      for (int i = 0; i < 10; ++i) {
        draw = draw * 6364136223846793005ULL + 1442695040888963407ULL;
        absl::StrAppend(&ids, i ? "," : "", ids_[(draw >> 33) % ids_.size()]);
        absl::StrAppend(&scores, i ? "," : "", (draw >> 20) % 1'000'000);
      }
      ids += "}";
      scores += "}";
      try {
        pqxx::nontransaction(*conn_).exec_params(
            "UPDATE loans l SET trending_score_milli = s.score FROM unnest($1::bigint[], "
            "$2::bigint[]) AS s(id, score) WHERE l.id = s.id",
            ids, scores);
        ++writes_;
      } catch (const std::exception& e) {
        Die(std::string("trending write: ") + e.what());
      }
    }
  }

  std::unique_ptr<pqxx::connection> conn_;
  std::vector<int64_t> ids_;
  std::atomic<int64_t> writes_{0};
  absl::Notification stop_;
  std::thread thread_;
};

// The server's resident memory in MB, from /proc.
double ServerRssMb(const LocalStack& stack) {
  std::ifstream status(absl::StrCat("/proc/", stack.ServerPid(Server::kLending), "/status"));
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::atof(line.c_str() + 6) / 1024.0;
  }
  Die("no VmRSS for the lending server");
}

void LoadCatalogue(LocalStack& stack, const Config& c) {
  const absl::Time start = absl::Now();
  CatalogueOptions options{.loans = c.loans, .fundraising = c.fundraising, .now = absl::Now()};
  if (!c.setup_sql.empty()) {
    std::ifstream in(c.setup_sql);
    if (!in) Die("cannot read --setup_sql " + c.setup_sql);
    std::stringstream sql;
    sql << in.rdbuf();
    options.setup_sql = sql.str();
  }
  if (absl::Status s = LoadLoanCatalogue(stack, options); !s.ok()) Die(s.ToString());
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
  // A browsing lender's page is cards; a full page (stories and schedules) is measured too.
  lv1::LoanView view = lv1::LOAN_VIEW_CARD;
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
    {.prefix = "list_loans_full",
     .countries = {"KE", "UG"},
     .sectors = {cv1::SECTOR_AGRICULTURE},
     .min_rating_half_stars = 6,
     .sort = lv1::LOAN_SORT_EXPIRING_SOONEST,
     .view = lv1::LOAN_VIEW_FULL},
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
  req.set_view(c.view);
  return req;
}

// ---- The baseline: the server's own statements, replayed --------------------------------------

// One statement the lending server ran for a ListLoans call, as PostgreSQL logged it: simple
// ones (BEGIN, COMMIT) without parameters, extended ones (exec_params) with theirs.
struct Statement {
  std::string sql;
  bool extended = false;
  bool prepared = false;  // a named prepared statement (the server plans it once per connection)
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
      out.push_back({.sql = m.substr(m.find(": ", execute) + 2),
                     .extended = true,
                     .prepared = m.compare(execute, 21, "  execute <unnamed>: ") != 0});
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
// A capture that finds nothing is tried again: one run of session 15 found no statement for
// query B once, with the trending writer running, and the next run found it every time.
std::vector<Statement> CaptureStatements(LocalStack& stack, const lv1::ListLoansRequest& request,
                                         const std::string& lender, cv1::PageResponse* page) {
  constexpr int kAttempts = 3;
  std::unique_ptr<pqxx::connection> admin = ConnectLendingOrDie(stack);
  const std::string log = stack.data_dir() + "/pg.log";
  auto stub = lv1::LoanService::NewStub(Channel(stack.Address(Server::kLending)));
  for (int attempt = 1;; ++attempt) {
    LogAllStatements(*admin, true);
    const std::streamoff offset = std::ifstream(log, std::ios::ate).tellg();
    lv1::ListLoansResponse out;
    grpc::Status s = stub->ListLoans(Ctx(lender).get(), request, &out);
    absl::SleepFor(absl::Milliseconds(300));
    LogAllStatements(*admin, false);
    if (!s.ok()) Die("ListLoans: " + s.error_message());
    *page = out.page();
    std::vector<Statement> statements = StatementsOf(ParseLog(ReadFrom(log, offset)));
    if (!statements.empty()) return statements;
    if (attempt == kAttempts) {
      Die(absl::StrCat("found no ListLoans statements in ", log, " in ", kAttempts, " attempts"));
    }
    std::fprintf(stderr, "list_loans_bench: no ListLoans statement captured; trying again\n");
  }
}

// Runs `statements` as the server did; returns the milliseconds of the total_count statement
// ("SELECT count(..."), or 0 without one.
double Replay(pqxx::connection& conn, const std::vector<Statement>& statements) {
  pqxx::nontransaction tx(conn);
  double count_ms = 0;
  for (size_t i = 0; i < statements.size(); ++i) {
    const Statement& st = statements[i];
    const absl::Time start = absl::Now();
    if (st.prepared) {
      const std::string name = absl::StrCat("replay_", i);
      conn.prepare(name, st.sql);  // a no-op once this connection knows it
      tx.exec_prepared(name, pqxx::prepare::make_dynamic_params(st.params));
    } else if (st.extended) {
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

// A prepared statement is explained as the server runs it after a few calls: PostgreSQL plans the
// first five executions with their values, then may keep one generic plan.
void Explain(LocalStack& stack, const Combo& c, const std::vector<Statement>& statements) {
  std::unique_ptr<pqxx::connection> conn = ConnectLikeTheStore(stack);
  pqxx::work tx(*conn);
  for (size_t i = 0; i < statements.size(); ++i) {
    const Statement& st = statements[i];
    if (!st.extended || st.sql.rfind("SELECT", 0) != 0) continue;
    std::fprintf(stderr, "-- %s: EXPLAIN (ANALYZE, BUFFERS)%s %s\n", c.prefix.c_str(),
                 st.prepared ? " after 6 executions of" : "", st.sql.c_str());
    pqxx::result plan;
    if (st.prepared) {
      const std::string name = absl::StrCat("explain_", i);
      conn->prepare(name, st.sql);
      for (int run = 0; run < 6; ++run) {
        tx.exec_prepared(name, pqxx::prepare::make_dynamic_params(st.params));
      }
      std::vector<std::string> values;
      for (const std::optional<std::string>& p : st.params)
        values.push_back(p ? tx.quote(*p) : "NULL");
      plan = tx.exec(absl::StrCat("EXPLAIN (ANALYZE, BUFFERS) EXECUTE ", name, "(",
                                  absl::StrJoin(values, ", "), ")"));
    } else {
      plan = tx.exec_params("EXPLAIN (ANALYZE, BUFFERS) " + st.sql,
                            pqxx::prepare::make_dynamic_params(st.params));
    }
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

// The same clients and pace against the lending server's health check: what a unary call
// through gRPC costs on this machine before any work (no token, no database).
void MeasureRpcFloor(LocalStack& stack, const Config& c) {
  Latencies lat = Drive(c, [&](int) -> std::function<void()> {
    std::shared_ptr<grpc::health::v1::Health::Stub> stub =
        grpc::health::v1::Health::NewStub(Channel(stack.Address(Server::kLending)));
    return [stub] {
      grpc::ClientContext ctx;
      grpc::health::v1::HealthCheckRequest request;
      grpc::health::v1::HealthCheckResponse out;
      grpc::Status s = stub->Check(&ctx, request, &out);
      if (!s.ok()) Die("Health.Check: " + s.error_message());
    };
  });
  std::printf("list_loans_rpc_floor_p50_ms %.2f\n", lat.Percentile(0.50));
  std::printf("list_loans_rpc_floor_p99_ms %.2f\n", lat.Percentile(0.99));
}

double MeasureSql(LocalStack& stack, const Config& c, const Combo& combo,
                  const std::vector<Statement>& statements) {
  absl::Mutex mu;
  std::vector<double> count_ms;
  Latencies lat = Drive(c, [&](int) -> std::function<void()> {
    std::shared_ptr<pqxx::connection> conn = ConnectLikeTheStore(stack);
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
  const bool separate_count =
      std::any_of(statements.begin(), statements.end(),
                  [](const Statement& st) { return st.sql.rfind("SELECT count(", 0) == 0; });
  if (separate_count) {
    std::printf("%s_sql_count_p99_ms %.2f\n", p,
                count_ms[static_cast<size_t>(0.99 * (count_ms.size() - 1))]);
  }
  return lat.Percentile(0.99);
}

// Restarts the lending server with its catalogue in memory (ADR 0017) or not (every search a
// PostgreSQL statement, as before); prints how long the in-memory start took.
void StartLending(LocalStack& stack, bool in_memory) {
  if (!stack.Address(Server::kLending).ends_with(":0")) {
    if (absl::StatusOr<int> stopped = stack.StopServer(Server::kLending, SIGTERM); !stopped.ok()) {
      Die(stopped.status().ToString());
    }
  }
  setenv("MICROLEND_CATALOGUE_IN_MEMORY", in_memory ? "true" : "false", 1);
  const absl::Time start = absl::Now();
  if (absl::Status s = stack.StartServer(Server::kLending); !s.ok()) Die(s.ToString());
  if (in_memory) {
    std::printf("list_loans_catalogue_start_s %.1f\n",
                absl::ToDoubleSeconds(absl::Now() - start));
  }
}

lv1::ListLoansResponse ListOnce(LocalStack& stack, const Combo& combo, const std::string& lender) {
  auto stub = lv1::LoanService::NewStub(Channel(stack.Address(Server::kLending)));
  lv1::ListLoansResponse out;
  grpc::Status s = stub->ListLoans(Ctx(lender).get(), ToRequest(combo), &out);
  if (!s.ok()) Die("ListLoans: " + s.error_message());
  return out;
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
  LocalStack& st = **stack;
  // First every search from PostgreSQL: the server's statements, their replay (the baseline)
  // and the server answering with them (_pg_).
  StartLending(st, /*in_memory=*/false);
  LoadCatalogue(st, c);
  const std::string lender = st.Token(Role::kLender, "1");
  TrendingWriter writer(st, c);
  MeasureRpcFloor(st, c);
  struct Measured {
    double pg_p99 = 0, sql_p99 = 0;
    lv1::ListLoansResponse page;
  };
  std::vector<Measured> measured(std::size(kCombos));
  for (size_t i = 0; i < std::size(kCombos); ++i) {
    const Combo& combo = kCombos[i];
    cv1::PageResponse page;
    const std::vector<Statement> statements = CaptureStatements(st, ToRequest(combo), lender, &page);
    if (c.explain) Explain(st, combo, statements);
    measured[i].page = ListOnce(st, combo, lender);
    Combo pg = combo;
    pg.prefix += "_pg";
    measured[i].pg_p99 = MeasureRpc(st, c, pg, lender);
    measured[i].sql_p99 = MeasureSql(st, c, combo, statements);
  }
  std::printf("list_loans_pg_server_rss_mb %.0f\n", ServerRssMb(st));
  // Then the same searches from the catalogue in memory, which must answer them alike (but for
  // the trending scores, which the writer keeps changing).
  StartLending(st, /*in_memory=*/true);
  std::printf("list_loans_catalogue_server_rss_mb %.0f\n", ServerRssMb(st));
  auto without_trending = [](lv1::ListLoansResponse page) {
    for (lv1::Loan& loan : *page.mutable_loans()) loan.clear_trending_score_milli();
    return page.SerializeAsString();
  };
  for (size_t i = 0; i < std::size(kCombos); ++i) {
    const Combo& combo = kCombos[i];
    const lv1::ListLoansResponse page = ListOnce(st, combo, lender);
    if (without_trending(page) != without_trending(measured[i].page)) {
      Die(combo.prefix + ": the in-memory catalogue answered otherwise than PostgreSQL");
    }
    std::printf("%s_total_count %lld\n", combo.prefix.c_str(),
                static_cast<long long>(page.page().total_count()));
    std::printf("%s_total_count_is_lower_bound %d\n", combo.prefix.c_str(),
                page.page().total_count_is_lower_bound() ? 1 : 0);
    const double rpc = MeasureRpc(st, c, combo, lender);
    std::printf("%s_rpc_vs_sql_p99_ratio %.2f\n", combo.prefix.c_str(), rpc / measured[i].sql_p99);
    std::printf("%s_vs_pg_p99_ratio %.2f\n", combo.prefix.c_str(), rpc / measured[i].pg_p99);
  }
  std::printf("list_loans_trending_writes %lld\n", static_cast<long long>(writer.writes()));
  return 0;
}

}  // namespace
}  // namespace microlend::testing

int main(int argc, char** argv) { return microlend::testing::Main(argc, argv); }
