#include "services/lending/store/pg_ledger_store.h"

#include <algorithm>
#include <charconv>
#include <pqxx/pqxx>
#include <pqxx/tablewriter>
#include <stdexcept>
#include <string_view>
#include <type_traits>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/civil_time.h"
#include "common/check.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "pg/connect.h"
#include "pg/pool.h"
#include "services/lending/core/ledger_engine.h"

namespace microlend::lending {
namespace {

constexpr char kSchema[] = "lending";

using pg::InvalidText;

// Registers the transaction path's prepared statements on a new connection.
void PrepareAll(pqxx::connection& conn);

}  // namespace

namespace {

using Lease = pg::ConnectionPool::Lease;
using pg::ReadTxn;

using pg::RunIn;

// ---------------------------------------------------------------------------------------------
// Parameters. Arrays travel as one text parameter each, in PostgreSQL's array literal syntax,
// and are cast in SQL ($1::bigint[]): one statement per table whatever the row count.

class ArrayLiteral {
 public:
  ArrayLiteral() : text_("{") {}

  void Int(int64_t value) {
    Separate();
    char buf[24];
    auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), value);
    text_.append(buf, end);
  }
  void Null() {
    Separate();
    text_ += "NULL";
  }
  template <typename IdT>
  void OptionalId(const std::optional<IdT>& id) {
    if (id.has_value()) {
      Int(id->value());
    } else {
      Null();
    }
  }
  void OptionalTime(const std::optional<absl::Time>& time) {
    if (time.has_value()) {
      Int(absl::ToUnixMicros(*time));
    } else {
      Null();
    }
  }
  // Double-quoted, with '"' and '\' escaped by a backslash.
  void Text(std::string_view value) {
    Separate();
    text_ += '"';
    while (!value.empty()) {
      size_t special = value.find_first_of(std::string_view("\"\\\0", 3));
      text_.append(value.substr(0, special));
      if (special == std::string_view::npos) break;
      if (value[special] == '\0') throw InvalidText("text contains a NUL byte");
      text_ += '\\';
      text_ += value[special];
      value.remove_prefix(special + 1);
    }
    text_ += '"';
  }
  void Hex(std::string_view bytes) { Text(absl::BytesToHexString(AsAbsl(bytes))); }

  std::string Take() && {
    text_ += '}';
    return std::move(text_);
  }

 private:
  void Separate() {
    if (text_.size() > 1) text_ += ',';
  }
  std::string text_;
};

template <typename IdT>
std::string IdArray(const std::vector<IdT>& ids) {
  ArrayLiteral array;
  for (IdT id : ids) array.Int(id.value());
  return std::move(array).Take();
}

// Positional parameters of a statement built at run time: Add returns the "$n" to splice in.
class Params {
 public:
  std::string Add(std::string value) {
    values_.push_back(std::move(value));
    return absl::StrCat("$", values_.size());
  }
  std::string Add(int64_t value) { return Add(std::to_string(value)); }
  auto dynamic() const { return pqxx::prepare::make_dynamic_params(values_); }

 private:
  std::vector<std::string> values_;
};

// ---------------------------------------------------------------------------------------------
// Rows.

constexpr char kAccountColumns[] =
    "id, owner_type, owner_id, kind, currency, debits_must_not_exceed_credits, "
    "credits_must_not_exceed_debits, debits_posted, credits_posted, debits_pending, "
    "credits_pending, memo, to_micros(created_at)";

constexpr char kTransferColumns[] =
    "t.id, t.debit_account_id, t.credit_account_id, t.amount, t.currency, t.code, t.type, "
    "t.pending_id, t.timeout_ms, to_micros(t.expires_at), t.loan_id, t.order_id, "
    "t.repayment_id, t.withdrawal_id, t.campaign_id, t.external_payment_id, t.memo, "
    "to_micros(t.created_at), t.batch_request_id, t.batch_index";
constexpr int kTransferColumnCount = 20;

constexpr char kWithdrawalColumns[] =
    "id, lender_id, wallet_account_id, amount, currency, state, hold_id, external_payment_id, "
    "reason, to_micros(created_at), to_micros(updated_at), destination";

constexpr char kRecordColumns[] =
    "r.caller, r.request_id, r.method, encode(r.body_sha256, 'hex'), r.status_code, "
    "r.status_text, encode(coalesce(r.response, ''::bytea), 'hex')";

// outbox_events.encoding (migration 0008).
constexpr int kEncodingJson = 0;       // one JSON event, or event_count packed JSON lines
constexpr int kEncodingTransfers = 1;  // event_count transfer references (PackRefs)

constexpr char kEventColumns[] =
    "sequence, event_id, kind, account_id, payload, to_micros(created_at), event_count, encoding";

Currency CurrencyOf(const pqxx::field& field) {
  absl::StatusOr<Currency> currency = Currency::FromCode(field.c_str());
  if (!currency.ok()) {
    throw std::runtime_error(
        absl::StrCat("stored ", field.name(), " ", currency.status().message()));
  }
  return *currency;
}

absl::Time TimeOf(const pqxx::field& field) { return absl::FromUnixMicros(field.as<int64_t>()); }

template <typename IdT>
std::optional<IdT> OptionalIdOf(const pqxx::field& field) {
  if (field.is_null()) return std::nullopt;
  return IdT(field.as<int64_t>());
}

Account ReadAccount(const pqxx::row& r) {
  Account a;
  a.id = AccountId(r[0].as<int64_t>());
  a.owner_type = static_cast<OwnerType>(r[1].as<int>());
  a.owner_id = r[2].as<std::string>();
  a.kind = static_cast<AccountKind>(r[3].as<int>());
  a.currency = CurrencyOf(r[4]);
  a.flags.debits_must_not_exceed_credits = r[5].as<bool>();
  a.flags.credits_must_not_exceed_debits = r[6].as<bool>();
  a.debits_posted = r[7].as<int64_t>();
  a.credits_posted = r[8].as<int64_t>();
  a.debits_pending = r[9].as<int64_t>();
  a.credits_pending = r[10].as<int64_t>();
  a.memo = r[11].as<std::string>();
  a.created_at = TimeOf(r[12]);
  return a;
}

Transfer ReadTransfer(const pqxx::row& r) {
  Transfer t;
  t.id = TransferId(r[0].as<int64_t>());
  t.debit_account_id = AccountId(r[1].as<int64_t>());
  t.credit_account_id = AccountId(r[2].as<int64_t>());
  t.amount = Money::FromMinor(CurrencyOf(r[4]), r[3].as<int64_t>());
  t.code = static_cast<TransferCode>(r[5].as<int>());
  t.type = static_cast<TransferType>(r[6].as<int>());
  t.pending_id = OptionalIdOf<HoldId>(r[7]);
  t.timeout_ms = r[8].as<int64_t>();
  if (!r[9].is_null()) t.expires_at = TimeOf(r[9]);
  t.references.loan_id = OptionalIdOf<LoanId>(r[10]);
  t.references.order_id = OptionalIdOf<OrderId>(r[11]);
  t.references.repayment_id = OptionalIdOf<RepaymentId>(r[12]);
  t.references.withdrawal_id = OptionalIdOf<WithdrawalId>(r[13]);
  t.references.campaign_id = OptionalIdOf<CampaignId>(r[14]);
  t.references.external_payment_id = r[15].as<std::string>();
  t.memo = r[16].as<std::string>();
  t.created_at = TimeOf(r[17]);
  t.batch_request_id = r[18].as<std::string>();
  t.batch_index = r[19].as<int32_t>();
  return t;
}

// Transfer columns followed by h.state, h.posted_amount, h.resolved_by (NULL: not a hold).
Hold ReadHold(const pqxx::row& r) {
  Hold h;
  h.transfer = ReadTransfer(r);
  constexpr int k = kTransferColumnCount;
  if (r[k].is_null()) return h;
  h.state = static_cast<HoldState>(r[k].as<int>());
  h.posted_amount = r[k + 1].as<int64_t>();
  h.resolved_by = OptionalIdOf<TransferId>(r[k + 2]);
  return h;
}

Withdrawal ReadWithdrawal(const pqxx::row& r) {
  Withdrawal w;
  w.id = WithdrawalId(r[0].as<int64_t>());
  w.lender_id = LenderId(r[1].as<int64_t>());
  w.wallet_account_id = AccountId(r[2].as<int64_t>());
  w.amount = Money::FromMinor(CurrencyOf(r[4]), r[3].as<int64_t>());
  w.state = static_cast<WithdrawalState>(r[5].as<int>());
  w.hold_id = HoldId(r[6].as<int64_t>());
  w.external_payment_id = r[7].as<std::string>();
  w.reason = r[8].as<std::string>();
  w.created_at = TimeOf(r[9]);
  w.updated_at = TimeOf(r[10]);
  w.destination = r[11].as<std::string>();
  return w;
}

IdempotencyRecord ReadRecord(const pqxx::row& r) {
  IdempotencyRecord rec;
  rec.caller = r[0].as<std::string>();
  rec.request_id = r[1].as<std::string>();
  rec.method = r[2].as<std::string>();
  rec.body_hash = absl::HexStringToBytes(r[3].as<std::string>());
  rec.code = static_cast<absl::StatusCode>(r[4].as<int>());
  rec.message = r[5].as<std::string>();
  rec.payload = absl::HexStringToBytes(r[6].as<std::string>());
  return rec;
}

OutboxEvent ReadEvent(const pqxx::row& r) {
  OutboxEvent e;
  e.sequence = r[0].as<int64_t>();
  e.event_id = r[1].as<std::string>();
  e.kind = r[2].as<std::string>();
  e.account_id = OptionalIdOf<AccountId>(r[3]);
  e.payload = r[4].as<std::string>();
  e.created_at = TimeOf(r[5]);
  return e;
}

// The events of outbox rows in stream order; a packed row (event_count > 1, see InsertEvents)
// becomes its events, each with the row's sequence and time. Events by reference keep `ref` and
// an empty payload here (RenderRefs fills them in).
std::vector<OutboxEvent> ReadEvents(const pqxx::result& rows) {
  std::vector<OutboxEvent> out;
  for (const pqxx::row& r : rows) {
    OutboxEvent row = ReadEvent(r);
    const bool by_ref = r[7].as<int>() == kEncodingTransfers;
    if (r[6].as<int>() == 1 && !by_ref) {
      out.push_back(std::move(row));
      continue;
    }
    auto malformed = [&] {
      return std::runtime_error(absl::StrCat("outbox row ", row.sequence, " has a malformed event"));
    };
    for (absl::string_view line : absl::StrSplit(row.payload, '\n')) {
      OutboxEvent e;
      e.sequence = row.sequence;
      e.created_at = row.created_at;
      if (by_ref) {
        std::vector<absl::string_view> f = absl::StrSplit(line, ' ');
        int64_t v[5];
        if (f.size() != 5) throw malformed();
        for (int i = 0; i < 5; ++i) {
          if (!absl::SimpleAtoi(f[i], &v[i])) throw malformed();
        }
        e.ref = TransferEventRef{.transfer_id = TransferId(v[0]), .debit_balance = v[1],
                                 .debit_available = v[2], .credit_balance = v[3],
                                 .credit_available = v[4]};
        e.event_id = absl::StrCat("transfer-", v[0]);
        e.kind = row.kind;
        out.push_back(std::move(e));
        continue;
      }
      std::vector<absl::string_view> f = absl::StrSplit(line, absl::MaxSplits('\t', 3));
      if (f.size() != 4) throw malformed();
      e.event_id = std::string(f[0]);
      e.kind = std::string(f[1]);
      if (!f[2].empty()) {
        int64_t id = 0;
        if (!absl::SimpleAtoi(f[2], &id)) throw malformed();
        e.account_id = AccountId(id);
      }
      e.payload = std::string(f[3]);
      out.push_back(std::move(e));
    }
  }
  return out;
}

template <typename T, typename ReadFn>
std::vector<T> ReadAll(const pqxx::result& result, ReadFn read) {
  std::vector<T> out;
  out.reserve(result.size());
  for (const pqxx::row& row : result) out.push_back(read(row));
  return out;
}

// ---------------------------------------------------------------------------------------------
// Prepared statements of the transaction path (registered on every connection).

constexpr char kLockAccounts[] = "ledger_lock_accounts";
constexpr char kLockHolds[] = "ledger_lock_holds";
constexpr char kExistingIds[] = "ledger_existing_ids";
constexpr char kFindRecords[] = "ledger_find_records";
constexpr char kLockWithdrawals[] = "ledger_lock_withdrawals";
constexpr char kAllocateTransferIds[] = "ledger_allocate_transfer_ids";
constexpr char kAllocateWithdrawalIds[] = "ledger_allocate_withdrawal_ids";
constexpr char kAllocateRepaymentIds[] = "ledger_allocate_repayment_ids";
constexpr char kUpsertHolds[] = "ledger_upsert_holds";
constexpr char kUpdateAccounts[] = "ledger_update_accounts";
constexpr char kUpsertWithdrawals[] = "ledger_upsert_withdrawals";
constexpr char kInsertRecords[] = "ledger_insert_records";
constexpr char kInsertRecord[] = "ledger_insert_record";

// Rows and packed transfers (migration 0009) holding any of the ids.
constexpr char kExistingIdsSql[] =
    "SELECT id FROM transfers WHERE id = ANY($1::bigint[])"
    " UNION SELECT x.id FROM unnest($1::bigint[]) AS x(id) WHERE EXISTS (SELECT 1 FROM"
    " transfer_packs p WHERE p.first_id BETWEEN x.id - 31 AND x.id AND p.last_id >= x.id)"
    " ORDER BY 1";
// A range of $1 ids in one step (its last is returned): one nextval per id cost PostgreSQL
// 0.8 us each, 16 ms per 20,000-transfer group. Only the committer draws transfer ids (one
// lending process per schema, ARCHITECTURE.md); were another session to draw one between the two
// calls, the ids would overlap and the transfers' primary key would refuse the second commit.
constexpr char kAllocateTransferIdsSql[] =
    "SELECT setval('transfer_id_seq', nextval('transfer_id_seq') + $1::bigint - 1)";
constexpr char kAllocateWithdrawalIdsSql[] =
    "SELECT nextval('withdrawal_id_seq') FROM generate_series(1, $1::bigint)";
constexpr char kAllocateRepaymentIdsSql[] =
    "SELECT nextval('repayment_id_seq') FROM generate_series(1, $1::bigint)";

// A hold changes once, from pending: a resolved one is left alone (and counted missing).
constexpr char kUpsertHoldsSql[] =
    "INSERT INTO holds (hold_id, state, posted_amount, resolved_by, expires_at)"
    " SELECT id, state, posted, resolved_by, from_micros(exp)"
    " FROM unnest($1::bigint[], $2::smallint[], $3::bigint[], $4::bigint[], $5::bigint[])"
    " AS u(id, state, posted, resolved_by, exp)"
    " ON CONFLICT (hold_id) DO UPDATE SET state = EXCLUDED.state,"
    " posted_amount = EXCLUDED.posted_amount, resolved_by = EXCLUDED.resolved_by"
    " WHERE holds.state = 1";

constexpr char kUpdateAccountsSql[] =
    "UPDATE accounts a SET debits_posted = u.dp, credits_posted = u.cp,"
    " debits_pending = u.dq, credits_pending = u.cq"
    " FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[])"
    " AS u(id, dp, cp, dq, cq) WHERE a.id = u.id";

constexpr char kUpsertWithdrawalsSql[] =
    "INSERT INTO withdrawals (id, lender_id, wallet_account_id, amount, currency, state,"
    " hold_id, external_payment_id, reason, created_at, updated_at, destination)"
    " SELECT id, lender, wallet, amount, cur, state, hold, ext, reason, from_micros(created),"
    " from_micros(updated), dest"
    " FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::text[],"
    " $6::smallint[], $7::bigint[], $8::text[], $9::text[], $10::bigint[], $11::bigint[],"
    " $12::text[])"
    " AS u(id, lender, wallet, amount, cur, state, hold, ext, reason, created, updated, dest)"
    " ON CONFLICT (id) DO UPDATE SET state = EXCLUDED.state,"
    " external_payment_id = EXCLUDED.external_payment_id, reason = EXCLUDED.reason,"
    " updated_at = EXCLUDED.updated_at";

constexpr char kInsertRecordsSql[] =
    "INSERT INTO idempotency_records (caller, request_id, method, body_sha256, status_code,"
    " status_text, response)"
    " SELECT caller, rid, method, decode(body, 'hex'), code, msg, decode(payload, 'hex')"
    " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int[], $6::text[],"
    " $7::text[]) AS u(caller, rid, method, body, code, msg, payload)";

constexpr char kInsertRecordSql[] =
    "INSERT INTO idempotency_records (caller, request_id, method, body_sha256, status_code,"
    " status_text, response) VALUES ($1, $2, $3, $4::bytea, $5::int, $6, $7::bytea)";

const std::vector<std::pair<const char*, std::string>>& PreparedStatements() {
  static const auto* statements = new std::vector<std::pair<const char*, std::string>>{
      {kLockAccounts, absl::StrCat("SELECT ", kAccountColumns, " FROM accounts",
                                   " WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE")},
      {kLockHolds,
       absl::StrCat("SELECT ", kTransferColumns, ", h.state, h.posted_amount, h.resolved_by",
                    " FROM holds h JOIN transfers t ON t.id = h.hold_id",
                    " WHERE h.hold_id = ANY($1::bigint[]) ORDER BY h.hold_id FOR UPDATE OF h")},
      {kExistingIds, kExistingIdsSql},
      // One primary-key probe per key, whatever the statistics say: as a plain join, the
      // generic plan of this prepared statement scanned the whole table (6-8 ms at 30,000
      // records) whenever the statistics still described a small one. LIMIT 1 (the key is
      // unique) keeps the subquery from being flattened into such a join.
      {kFindRecords, absl::StrCat("SELECT ", kRecordColumns,
                                  " FROM unnest($1::text[], $2::text[]) AS k(caller, request_id)"
                                  " CROSS JOIN LATERAL (SELECT * FROM idempotency_records i"
                                  " WHERE i.caller = k.caller AND i.request_id = k.request_id"
                                  " LIMIT 1) r")},
      {kLockWithdrawals, absl::StrCat("SELECT ", kWithdrawalColumns, " FROM withdrawals",
                                      " WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE")},
      {kAllocateTransferIds, kAllocateTransferIdsSql},
      {kAllocateWithdrawalIds, kAllocateWithdrawalIdsSql},
      {kAllocateRepaymentIds, kAllocateRepaymentIdsSql},
      {kUpsertHolds, kUpsertHoldsSql},
      {kUpdateAccounts, kUpdateAccountsSql},
      {kInsertRecord, kInsertRecordSql},
      {kUpsertWithdrawals, kUpsertWithdrawalsSql},
      {kInsertRecords, kInsertRecordsSql},
  };
  return *statements;
}

// Makes sure `sequence` will never hand out `max_id` or below (ids a client chose). nextval
// is not transactional, so a plain setval could move the sequence back past ids another session
// just drew; ALTER SEQUENCE takes a lock that makes concurrent nextval wait until we commit,
// so last_value is stable while we raise it. Only when behind, so rarely.
void AdvanceSequence(pqxx::transaction_base& tx, const std::string& sequence, int64_t max_id) {
  std::string max = std::to_string(max_id);
  if (!tx.exec(absl::StrCat("SELECT last_value <= ", max, " FROM ", sequence))[0][0].as<bool>()) {
    return;
  }
  tx.exec(absl::StrCat("ALTER SEQUENCE ", sequence, " CACHE 1"));
  tx.exec(absl::StrCat("SELECT setval('", sequence, "', GREATEST(last_value, ", max, ")) FROM ",
                       sequence));
}

// Plain inserts go through COPY (raw text, CopyRows below): measured 30-35% faster than one
// unnest INSERT for 10,000 rows, most of it the server's parsing of array literals.

void CheckText(std::string_view text) {
  if (text.find('\0') != std::string_view::npos) throw InvalidText("text contains a NUL byte");
}

void AppendDigits(char*& out, int64_t value, int width) {
  for (int i = width - 1; i >= 0; --i, value /= 10) out[i] = static_cast<char>('0' + value % 10);
  out += width;
}

// "2023-11-14 22:13:20.123456+00", the text COPY reads as that TIMESTAMPTZ to the microsecond.
std::string PgTime(absl::Time time) {
  const int64_t micros = absl::ToUnixMicros(time);
  const int64_t seconds = micros / 1'000'000 - (micros % 1'000'000 < 0 ? 1 : 0);  // floor
  const absl::CivilSecond c =
      absl::ToCivilSecond(absl::FromUnixSeconds(seconds), absl::UTCTimeZone());
  if (c.year() < 1 || c.year() > 9999) throw InvalidText("time outside years 1..9999");
  char buf[32];
  char* out = buf;
  AppendDigits(out, c.year(), 4);
  *out++ = '-';
  AppendDigits(out, c.month(), 2);
  *out++ = '-';
  AppendDigits(out, c.day(), 2);
  *out++ = ' ';
  AppendDigits(out, c.hour(), 2);
  *out++ = ':';
  AppendDigits(out, c.minute(), 2);
  *out++ = ':';
  AppendDigits(out, c.second(), 2);
  *out++ = '.';
  AppendDigits(out, micros - seconds * 1'000'000, 6);
  return std::string(buf, out) + "+00";
}

template <typename IdT>
std::optional<int64_t> OptionalValue(const std::optional<IdT>& id) {
  if (!id.has_value()) return std::nullopt;
  return id->value();
}

const std::vector<std::string>& TransferCopyColumns() {
  static const auto* columns = new std::vector<std::string>{"id",
                                                            "debit_account_id",
                                                            "credit_account_id",
                                                            "amount",
                                                            "currency",
                                                            "code",
                                                            "type",
                                                            "pending_id",
                                                            "timeout_ms",
                                                            "expires_at",
                                                            "loan_id",
                                                            "order_id",
                                                            "repayment_id",
                                                            "withdrawal_id",
                                                            "campaign_id",
                                                            "external_payment_id",
                                                            "memo",
                                                            "created_at",
                                                            "batch_request_id",
                                                            "batch_index"};
  return *columns;
}

// COPY text built directly (not field by field through pqxx::stream_to, whose per-field
// conversion and escaping was two thirds of writing a transfer) and sent in large chunks.
class CopyText {
 public:
  void Int(int64_t v) {
    Sep();
    char buf[24];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
    out_.append(buf, end);
  }
  void Null() {
    Sep();
    out_.append("\\N");
  }
  template <typename T>
  void Optional(const std::optional<T>& v) {
    if (v.has_value()) {
      Int(*v);
    } else {
      Null();
    }
  }
  // Text in COPY's escaping (CheckText has already refused NUL bytes). Runs that need no escape
  // are appended whole.
  void Text(std::string_view text) {
    Sep();
    size_t run = 0;
    for (size_t i = 0; i < text.size(); ++i) {
      const char c = text[i];
      if (c != '\\' && c != '\n' && c != '\r' && c != '\t') continue;
      out_.append(text.data() + run, i - run);
      out_.push_back('\\');
      out_.push_back(c == '\\' ? '\\' : c == '\n' ? 'n' : c == '\r' ? 'r' : 't');
      run = i + 1;
    }
    out_.append(text.data() + run, text.size() - run);
  }
  // An array literal of integers: {1,2,3}.
  void IntArray(const std::vector<int64_t>& values) {
    Sep();
    out_.push_back('{');
    for (size_t i = 0; i < values.size(); ++i) {
      if (i > 0) out_.push_back(',');
      char buf[24];
      auto [end, ec] = std::to_chars(buf, buf + sizeof buf, values[i]);
      out_.append(buf, end);
    }
    out_.push_back('}');
  }
  void EndRow() {
    out_.push_back('\n');
    first_ = true;
  }
  size_t size() const { return out_.size(); }
  // Sends the rows so far (whole lines) into the COPY and starts empty.
  void Flush(pqxx::tablewriter& copy) {
    if (out_.empty()) return;
    out_.pop_back();  // write_raw_line adds the last newline
    copy.write_raw_line(out_);
    out_.clear();
  }

 private:
  void Sep() {
    if (!first_) out_.push_back('\t');
    first_ = false;
  }
  std::string out_;
  bool first_ = true;
};

// pqxx 6 keeps raw COPY lines to its deprecated tablewriter; stream_to formats every field.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
template <typename RowFn>
void CopyRows(pqxx::work& tx, const std::string& table, const std::vector<std::string>& columns,
              size_t rows, RowFn row) {
  constexpr size_t kChunkBytes = 1 << 20;
  pqxx::tablewriter copy(tx, table, columns.begin(), columns.end());
  CopyText text;
  for (size_t i = 0; i < rows; ++i) {
    row(i, text);
    text.EndRow();
    if (text.size() >= kChunkBytes) text.Flush(copy);
  }
  text.Flush(copy);
  copy.complete();
}
#pragma GCC diagnostic pop

// Transfer packs (migration 0009, ADR 0010): a run of consecutive plain transfers of one batch
// stored as one row. A transfer can be packed when it is posted outright and refers to no hold;
// and either to no loan (a plain pack) or it is a repayment's credit to a funder (a repayment
// pack, migration 0010 and ADR 0011: the loan and repayment on the pack, the credit accounts
// ascending, their credit side found through the funders' positions instead of account_entries).
bool PostedOutright(const Transfer& t) {
  return t.type == TransferType::kPosted && !t.pending_id.has_value() && t.timeout_ms == 0 &&
         !t.expires_at.has_value();
}

// Only the loan desk's credits to a loan's funders (CommitSet::funder_credits): a REPAYMENT that
// a client posts through CreateTransfers stays a row, whatever ids it names.
bool RepaymentCredit(const Transfer& t, const absl::flat_hash_set<int64_t>& funder_credits) {
  return PostedOutright(t) && t.code == TransferCode::kRepayment &&
         t.references.loan_id.has_value() && t.references.repayment_id.has_value() &&
         funder_credits.contains(t.id.value());
}

// At most this many transfers per pack (the table's CHECK says the same), and at most this many
// bytes of array data by PackBytes' estimate: with the row's fixed part and the arrays' headers
// (~400 bytes) a pack stays under PostgreSQL's 2 kB TOAST threshold, so it is neither compressed
// when written nor decompressed for every element read.
constexpr size_t kMaxTransfersPerPack = 32;
constexpr size_t kMaxPackArrayBytes = 1500;

// What a transfer adds to its pack's arrays, at most: accounts, amount and code; each reference
// it has (a repayment pack keeps its repayment on the pack); a text element's header and padding
// plus its bytes for a memo or external id.
size_t PackBytes(const Transfer& t, bool repayment_pack) {
  const TransferReferences& r = t.references;
  size_t bytes = 8 + 8 + 8 + 2;
  for (bool has : {r.order_id.has_value(), r.repayment_id.has_value() && !repayment_pack,
                   r.withdrawal_id.has_value(), r.campaign_id.has_value()}) {
    bytes += has ? 8 : 0;
  }
  if (!t.memo.empty()) bytes += 8 + t.memo.size();
  if (!r.external_payment_id.empty()) bytes += 8 + r.external_payment_id.size();
  return bytes;
}

struct PackPlan {
  std::vector<std::pair<size_t, size_t>> packs;  // [begin, end) of two or more transfers
  std::vector<bool> repayment;                   // per pack: a repayment pack
  std::vector<const Transfer*> rows;             // the rest, written as rows
};

// Splits `transfers` (in the order given) into packs and rows. A run continues with consecutive
// id and batch position, the same batch, currency and commit time; a plain pack with plain
// transfers (posted outright, no loan), a repayment pack with credits of the same loan and
// repayment from the same debit account to a higher credit account (migrations 0010, 0012).
PackPlan PlanPacks(const std::vector<Transfer>& transfers,
                   const std::vector<TransferId>& funder_credit_ids) {
  absl::flat_hash_set<int64_t> funder_credits;
  funder_credits.reserve(funder_credit_ids.size());
  for (TransferId id : funder_credit_ids) funder_credits.insert(id.value());
  auto kind = [&](const Transfer& t) {  // 0: not packable, 1: plain, 2: repayment credit
    if (RepaymentCredit(t, funder_credits)) return 2;
    return PostedOutright(t) && !t.references.loan_id.has_value() ? 1 : 0;
  };
  auto continues = [&](const Transfer& last, const Transfer& next, int k) {
    if (kind(next) != k) return false;
    if (k == 2 && (next.references.loan_id != last.references.loan_id ||
                   next.references.repayment_id != last.references.repayment_id ||
                   next.debit_account_id != last.debit_account_id ||
                   next.credit_account_id <= last.credit_account_id)) {
      return false;
    }
    return next.id.value() == last.id.value() + 1 && next.batch_index == last.batch_index + 1 &&
           next.batch_request_id == last.batch_request_id &&
           next.amount.currency() == last.amount.currency() && next.created_at == last.created_at;
  };
  PackPlan plan;
  for (size_t begin = 0; begin < transfers.size();) {
    size_t end = begin + 1;
    const int k = kind(transfers[begin]);
    if (k != 0) {
      size_t bytes = PackBytes(transfers[begin], k == 2);
      while (end < transfers.size() && end - begin < kMaxTransfersPerPack &&
             continues(transfers[end - 1], transfers[end], k) &&
             bytes + PackBytes(transfers[end], k == 2) <= kMaxPackArrayBytes) {
        bytes += PackBytes(transfers[end], k == 2);
        ++end;
      }
    }
    if (end - begin >= 2) {
      plan.packs.emplace_back(begin, end);
      plan.repayment.push_back(k == 2);
    } else {
      plan.rows.push_back(&transfers[begin]);
    }
    begin = end;
  }
  return plan;
}

// Taken (shared) by every transaction that writes packs, and (exclusive) by one that writes
// client-chosen transfer ids before it checks them: the insert checks of both tables then see
// each other's commits (migration 0009).
constexpr int64_t kTransferIdsLock = 0x6d6c5f7478696473;  // "ml_txids"

// A COPY field holding an array of optional integers, or NULL when every one is absent.
template <typename IdT>
void OptionalIdArrayField(CopyText& row, const std::vector<Transfer>& transfers, size_t begin,
                          size_t end, std::optional<IdT> TransferReferences::*field) {
  bool any = false;
  for (size_t i = begin; i < end && !any; ++i) any = (transfers[i].references.*field).has_value();
  if (!any) {
    row.Null();
    return;
  }
  ArrayLiteral array;
  for (size_t i = begin; i < end; ++i) array.OptionalId(transfers[i].references.*field);
  row.Text(std::move(array).Take());
}

// A COPY field holding an array of texts, or NULL when every one is empty.
template <typename TextFn>
void TextArrayField(CopyText& row, const std::vector<Transfer>& transfers, size_t begin,
                    size_t end, TextFn text_of) {
  bool any = false;
  for (size_t i = begin; i < end && !any; ++i) any = !text_of(transfers[i]).empty();
  if (!any) {
    row.Null();
    return;
  }
  ArrayLiteral array;
  for (size_t i = begin; i < end; ++i) array.Text(text_of(transfers[i]));
  row.Text(std::move(array).Take());
}

void InsertTransferPacks(pqxx::work& tx, const std::vector<Transfer>& transfers,
                         const PackPlan& plan) {
  const std::vector<std::pair<size_t, size_t>>& packs = plan.packs;
  tx.exec_params("SELECT pg_advisory_xact_lock_shared($1::bigint)", kTransferIdsLock);
  static const auto* columns = new std::vector<std::string>{
      "first_id",       "last_id",        "currency",      "created_at",
      "batch_request_id", "first_batch_index", "debit_account_ids", "credit_account_ids",
      "amounts",        "codes",          "order_ids",     "repayment_ids",
      "withdrawal_ids", "campaign_ids",   "external_payment_ids", "memos",
      "loan_id",        "repayment_id",   "credit_hi"};
  absl::Time last_time = absl::InfinitePast();
  std::string time_text;
  std::vector<int64_t> values;
  CopyRows(tx, "transfer_packs", *columns, packs.size(), [&](size_t p, CopyText& row) {
    const auto [begin, end] = packs[p];
    const Transfer& first = transfers[begin];
    if (first.created_at != last_time) {
      last_time = first.created_at;
      time_text = PgTime(first.created_at);
    }
    row.Int(first.id.value());
    row.Int(transfers[end - 1].id.value());
    row.Text(first.amount.currency().code());
    row.Text(time_text);
    row.Text(first.batch_request_id);
    row.Int(first.batch_index);
    auto int_array = [&](auto value_of) {
      values.clear();
      for (size_t i = begin; i < end; ++i) values.push_back(value_of(transfers[i]));
      row.IntArray(values);
    };
    int_array([](const Transfer& t) { return t.debit_account_id.value(); });
    int_array([](const Transfer& t) { return t.credit_account_id.value(); });
    int_array([](const Transfer& t) { return t.amount.minor_units(); });
    int_array([](const Transfer& t) { return static_cast<int64_t>(t.code); });
    OptionalIdArrayField(row, transfers, begin, end, &TransferReferences::order_id);
    const bool repayment = plan.repayment[p];
    if (repayment) {
      row.Null();  // on the pack
    } else {
      OptionalIdArrayField(row, transfers, begin, end, &TransferReferences::repayment_id);
    }
    OptionalIdArrayField(row, transfers, begin, end, &TransferReferences::withdrawal_id);
    OptionalIdArrayField(row, transfers, begin, end, &TransferReferences::campaign_id);
    TextArrayField(row, transfers, begin, end, [](const Transfer& t) -> const std::string& {
      return t.references.external_payment_id;
    });
    TextArrayField(row, transfers, begin, end,
                   [](const Transfer& t) -> const std::string& { return t.memo; });
    row.Optional(OptionalValue(first.references.loan_id));
    if (repayment) {
      row.Int(first.references.repayment_id->value());
      row.Int(transfers[end - 1].credit_account_id.value());
    } else {
      row.Null();
      row.Null();
    }
  });
}

void InsertTransferRows(pqxx::work& tx, const std::vector<const Transfer*>& transfers) {
  // A commit's transfers share their time: format it once.
  absl::Time last_time = absl::InfinitePast();
  std::string last_text;
  auto time_text = [&](absl::Time t) -> const std::string& {
    if (t != last_time) {
      last_time = t;
      last_text = PgTime(t);
    }
    return last_text;
  };
  CopyRows(tx, "transfers", TransferCopyColumns(), transfers.size(), [&](size_t i, CopyText& row) {
    const Transfer& t = *transfers[i];
    const TransferReferences& r = t.references;
    row.Int(t.id.value());
    row.Int(t.debit_account_id.value());
    row.Int(t.credit_account_id.value());
    row.Int(t.amount.minor_units());
    row.Text(t.amount.currency().code());
    row.Int(static_cast<int>(t.code));
    row.Int(static_cast<int>(t.type));
    row.Optional(OptionalValue(t.pending_id));
    row.Int(t.timeout_ms);
    if (t.expires_at.has_value()) {
      row.Text(PgTime(*t.expires_at));
    } else {
      row.Null();
    }
    row.Optional(OptionalValue(r.loan_id));
    row.Optional(OptionalValue(r.order_id));
    row.Optional(OptionalValue(r.repayment_id));
    row.Optional(OptionalValue(r.withdrawal_id));
    row.Optional(OptionalValue(r.campaign_id));
    row.Text(r.external_payment_id);
    row.Text(t.memo);
    row.Text(time_text(t.created_at));
    row.Text(t.batch_request_id);
    row.Int(t.batch_index);
  });
}

void InsertTransfers(pqxx::work& tx, const std::vector<Transfer>& transfers,
                     const PackPlan& plan) {
  for (const Transfer& t : transfers) {
    CheckText(t.references.external_payment_id);
    CheckText(t.memo);
    CheckText(t.batch_request_id);
  }
  if (!plan.packs.empty()) InsertTransferPacks(tx, transfers, plan);
  if (!plan.rows.empty()) InsertTransferRows(tx, plan.rows);
}

// One account_entries row per account the transfers touch, listing their ids on it in ascending
// order (migration 0008); except the credit side of repayment packs, which funders find through
// their positions (migration 0010).
void InsertAccountEntries(pqxx::work& tx, const std::vector<Transfer>& transfers,
                          const PackPlan& plan) {
  std::vector<bool> credit_listed(transfers.size(), true);
  for (size_t p = 0; p < plan.packs.size(); ++p) {
    if (!plan.repayment[p]) continue;
    for (size_t i = plan.packs[p].first; i < plan.packs[p].second; ++i) credit_listed[i] = false;
  }
  absl::flat_hash_map<int64_t, std::vector<int64_t>> by_account;
  by_account.reserve(transfers.size());
  for (size_t i = 0; i < transfers.size(); ++i) {
    const Transfer& t = transfers[i];
    by_account[t.debit_account_id.value()].push_back(t.id.value());
    if (credit_listed[i]) by_account[t.credit_account_id.value()].push_back(t.id.value());
  }
  std::vector<int64_t> accounts;
  accounts.reserve(by_account.size());
  for (auto& [account, ids] : by_account) {
    std::sort(ids.begin(), ids.end());
    accounts.push_back(account);
  }
  std::sort(accounts.begin(), accounts.end());
  CopyRows(tx, "account_entries", {"account_id", "first_transfer_id", "transfer_ids"},
           accounts.size(), [&](size_t i, CopyText& row) {
             const std::vector<int64_t>& ids = by_account[accounts[i]];
             row.Int(accounts[i]);
             row.Int(ids.front());
             row.IntArray(ids);
           });
}

absl::Status UpsertHolds(pqxx::work& tx, const std::vector<Hold>& holds) {
  ArrayLiteral id, state, posted, resolved_by, exp;
  for (const Hold& h : holds) {
    id.Int(h.transfer.id.value());
    state.Int(static_cast<int>(h.state));
    posted.Int(h.posted_amount);
    resolved_by.OptionalId(h.resolved_by);
    exp.OptionalTime(h.transfer.expires_at);
  }
  pqxx::result r = tx.exec_prepared(kUpsertHolds, std::move(id).Take(), std::move(state).Take(),
                                    std::move(posted).Take(), std::move(resolved_by).Take(),
                                    std::move(exp).Take());
  if (r.affected_rows() != holds.size()) {
    return absl::FailedPreconditionError(
        absl::StrCat(holds.size() - r.affected_rows(), " of the ", holds.size(),
                     " holds written were already resolved; a hold resolves at most once"));
  }
  return absl::OkStatus();
}

absl::Status UpdateAccounts(pqxx::work& tx, const std::vector<Account>& accounts) {
  ArrayLiteral id, dp, cp, dq, cq;
  for (const Account& a : accounts) {
    id.Int(a.id.value());
    dp.Int(a.debits_posted);
    cp.Int(a.credits_posted);
    dq.Int(a.debits_pending);
    cq.Int(a.credits_pending);
  }
  pqxx::result r =
      tx.exec_prepared(kUpdateAccounts, std::move(id).Take(), std::move(dp).Take(),
                       std::move(cp).Take(), std::move(dq).Take(), std::move(cq).Take());
  if (r.affected_rows() != accounts.size()) {
    // The committer writes only accounts it loaded: a bug, not a client error.
    return absl::InternalError(absl::StrCat(accounts.size() - r.affected_rows(), " of the ",
                                            accounts.size(), " accounts written do not exist"));
  }
  return absl::OkStatus();
}

void UpsertWithdrawals(pqxx::work& tx, const std::vector<Withdrawal>& withdrawals) {
  ArrayLiteral id, lender, wallet, amount, cur, state, hold, ext, reason, created, updated, dest;
  for (const Withdrawal& w : withdrawals) {
    id.Int(w.id.value());
    lender.Int(w.lender_id.value());
    wallet.Int(w.wallet_account_id.value());
    amount.Int(w.amount.minor_units());
    cur.Text(w.amount.currency().code());
    state.Int(static_cast<int>(w.state));
    hold.Int(w.hold_id.value());
    ext.Text(w.external_payment_id);
    reason.Text(w.reason);
    created.Int(absl::ToUnixMicros(w.created_at));
    updated.Int(absl::ToUnixMicros(w.updated_at));
    dest.Text(w.destination);
  }
  tx.exec_prepared(kUpsertWithdrawals, std::move(id).Take(), std::move(lender).Take(),
                   std::move(wallet).Take(), std::move(amount).Take(), std::move(cur).Take(),
                   std::move(state).Take(), std::move(hold).Take(), std::move(ext).Take(),
                   std::move(reason).Take(), std::move(created).Take(), std::move(updated).Take(),
                   std::move(dest).Take());
}

// Small records go in one statement of arrays (hex in text); a large one (a batch's response runs
// to tens of kilobytes) goes on its own with its bytes as a binary parameter, which spares
// encoding and parsing megabytes of hex per group commit.
void InsertRecords(pqxx::work& tx, const std::vector<IdempotencyRecord>& records) {
  constexpr size_t kBinaryFromBytes = 4096;
  ArrayLiteral caller, rid, method, body, code, msg, payload;
  size_t small = 0;
  for (const IdempotencyRecord& r : records) {
    if (r.payload.size() >= kBinaryFromBytes) {
      tx.exec_prepared(kInsertRecord, r.caller, r.request_id, r.method,
                       pqxx::binarystring(r.body_hash), static_cast<int>(r.code), r.message,
                       pqxx::binarystring(r.payload));
      continue;
    }
    ++small;
    caller.Text(r.caller);
    rid.Text(r.request_id);
    method.Text(r.method);
    body.Hex(r.body_hash);
    code.Int(static_cast<int>(r.code));
    msg.Text(r.message);
    payload.Hex(r.payload);
  }
  if (small == 0) return;
  tx.exec_prepared(kInsertRecords, std::move(caller).Take(), std::move(rid).Take(),
                   std::move(method).Take(), std::move(body).Take(), std::move(code).Take(),
                   std::move(msg).Take(), std::move(payload).Take());
}

// Up to this many events share one outbox row (migration 0008): the commit path writes a row per
// few hundred events instead of one per transfer.
constexpr size_t kEventsPerOutboxRow = 256;

bool Packable(const OutboxEvent& e) {
  auto clean = [](std::string_view s, std::string_view bad) {
    return s.find_first_of(bad) == std::string_view::npos;
  };
  return clean(e.event_id, "\t\n") && clean(e.kind, "\t\n") && clean(e.payload, "\n");
}

// "<event_id>\t<kind>\t<account_id or empty>\t<payload>" per event, one per line.
std::string PackEvents(const OutboxEvent* first, size_t n) {
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    const OutboxEvent& e = first[i];
    if (i > 0) out.push_back('\n');
    absl::StrAppend(&out, e.event_id, "\t", e.kind, "\t",
                    e.account_id ? e.account_id->ToString() : "", "\t", e.payload);
  }
  return out;
}

// An account credited by increment (ADR 0011): its balance and available amount once the
// commit's increments are applied, and their sum.
struct Incremented {
  int64_t balance = 0;
  int64_t available = 0;
  int64_t added = 0;
};
using IncrementedAccounts = absl::flat_hash_map<int64_t, Incremented>;

// Applies the commit's credits by increment, one statement per currency (there is usually one);
// the accounts' totals after them.
absl::StatusOr<IncrementedAccounts> ApplyCreditIncrements(
    pqxx::work& tx, const std::vector<CreditIncrement>& increments) {
  IncrementedAccounts out;
  out.reserve(increments.size());
  std::vector<Currency> currencies;
  for (const CreditIncrement& c : increments) {
    out[c.account_id.value()].added = c.amount_minor;
    if (std::find(currencies.begin(), currencies.end(), c.currency) == currencies.end()) {
      currencies.push_back(c.currency);
    }
  }
  size_t updated = 0;
  for (const Currency& currency : currencies) {
    ArrayLiteral id, amount;
    for (const CreditIncrement& c : increments) {
      if (c.currency != currency) continue;
      id.Int(c.account_id.value());
      amount.Int(c.amount_minor);
    }
    pqxx::result r = tx.exec_params(
        "UPDATE accounts a SET credits_posted = a.credits_posted + u.amount"
        " FROM unnest($1::bigint[], $2::bigint[]) AS u(id, amount)"
        " WHERE a.id = u.id AND a.currency = $3::bpchar AND NOT a.credits_must_not_exceed_debits"
        " RETURNING a.id, a.credits_posted - a.debits_posted,"
        " a.credits_posted - a.debits_posted - a.debits_pending",
        std::move(id).Take(), std::move(amount).Take(), std::string(currency.code()));
    updated += r.size();
    for (const pqxx::row& row : r) {
      Incremented& a = out[row[0].as<int64_t>()];
      a.balance = row[1].as<int64_t>();
      a.available = row[2].as<int64_t>();
    }
  }
  if (updated != increments.size()) {
    // The loan desk credits only funders' wallets and budgets: a bug, not a client error.
    return absl::InternalError(absl::StrCat(
        increments.size() - updated, " of the ", increments.size(),
        " accounts credited by increment are missing, of another currency or credit-limited"));
  }
  return out;
}

// Lines of a by-reference row: "<transfer id> <debit balance> <debit available> <credit balance>
// <credit available>" per event. A credit by increment's side is made absolute here: the
// account's total after the commit, less what the commit added after this transfer.
std::string PackRefs(const OutboxEvent* first, size_t n, const IncrementedAccounts& incremented,
                     const std::vector<Transfer>& transfers,
                     const absl::flat_hash_map<int64_t, size_t>& transfer_index) {
  std::string out;
  out.reserve(n * 40);
  for (size_t i = 0; i < n; ++i) {
    const TransferEventRef& r = *first[i].ref;
    if (i > 0) out.push_back('\n');
    int64_t credit_balance = r.credit_balance;
    int64_t credit_available = r.credit_available;
    if (r.credit_by_increment) {
      const Transfer& t = transfers[transfer_index.at(r.transfer_id.value())];
      const Incremented& a = incremented.at(t.credit_account_id.value());
      credit_balance = a.balance - a.added + r.credit_balance;
      credit_available = a.available - a.added + r.credit_available;
    }
    absl::StrAppend(&out, r.transfer_id.value(), " ", r.debit_balance, " ", r.debit_available, " ",
                    credit_balance, " ", credit_available);
  }
  return out;
}

// The identity column numbers the rows in stream order, which is the commit set's order. Runs of
// events with the same commit time are packed into rows of up to kEventsPerOutboxRow: events by
// reference (the committer's) as references, rendered when fetched; others as JSON lines, except
// that an event whose text could not be unpacked unambiguously gets a row of its own.
void InsertEvents(pqxx::work& tx, const std::vector<OutboxEvent>& events,
                  const IncrementedAccounts& incremented, const std::vector<Transfer>& transfers) {
  // Where each transfer credited by increment is (its event needs its credit account).
  absl::flat_hash_map<int64_t, size_t> transfer_index;
  if (!incremented.empty()) {
    for (size_t i = 0; i < transfers.size(); ++i) transfer_index[transfers[i].id.value()] = i;
  }
  for (const OutboxEvent& e : events) {
    CheckText(e.event_id);
    CheckText(e.kind);
    CheckText(e.payload);
  }
  struct Row {
    size_t first, n;
  };
  std::vector<Row> rows;
  for (size_t i = 0; i < events.size();) {
    const OutboxEvent& e = events[i];
    const bool by_ref = e.ref.has_value();
    size_t n = 1;
    if (by_ref || Packable(e)) {
      while (i + n < events.size() && n < kEventsPerOutboxRow &&
             events[i + n].ref.has_value() == by_ref && (by_ref || Packable(events[i + n])) &&
             events[i + n].created_at == e.created_at) {
        ++n;
      }
    }
    rows.push_back({i, n});
    i += n;
  }
  CopyRows(tx, "outbox_events",
           {"event_id", "kind", "account_id", "payload", "created_at", "event_count", "encoding"},
           rows.size(), [&](size_t r, CopyText& row) {
             const OutboxEvent& e = events[rows[r].first];
             const size_t n = rows[r].n;
             const bool by_ref = e.ref.has_value();
             row.Text(e.event_id);
             row.Text(e.kind);
             row.Optional(OptionalValue(e.account_id));
             row.Text(by_ref ? PackRefs(&e, n, incremented, transfers, transfer_index)
                             : (n == 1 ? e.payload : PackEvents(&e, n)));
             row.Text(PgTime(e.created_at));
             row.Int(static_cast<int64_t>(n));
             row.Int(by_ref ? kEncodingTransfers : kEncodingJson);
           });
}

// The transaction handed to Transact's function. After a failed call the database transaction
// is unusable, so every later call returns that first failure and Transact will not commit.

// ---------------------------------------------------------------------------------------------
// Loans where money moves (ADR 0005): the money columns of `loans`, loan_funders, basket_items,
// repayments.

constexpr char kLoanMoneyColumns[] =
    "l.id, l.partner_id, l.status, coalesce(l.usd_amount_minor, 0), coalesce(l.local_currency, 'USD'),"
    " coalesce(l.local_amount_minor, 0), l.posting_fx_rate,"
    " coalesce((l.details->>'pre_disbursed')::boolean, false), to_micros(l.fundraising_deadline),"
    " coalesce(l.funding_account_id, 0), coalesce(l.settlement_account_id, 0), l.funded_minor,"
    " l.held_minor, to_micros(l.funded_at), to_micros(l.disbursed_at), l.disbursed_on_date::text,"
    " to_micros(l.closed_at), l.repaid_local_minor, l.expected_usd_minor, l.received_usd_minor,"
    " l.coverage_usd_minor, l.currency_loss_minor, l.repaid_usd_minor, l.written_off_minor,"
    " l.repayment_count, l.delinquent, l.days_in_arrears, l.arrears_local_minor,"
    " l.ended_with_currency_loss";

std::optional<absl::Time> OptionalTimeOf(const pqxx::field& field) {
  if (field.is_null()) return std::nullopt;
  return absl::FromUnixMicros(field.as<int64_t>());
}

LoanMoney ReadLoanMoney(const pqxx::row& r) {
  LoanMoney m;
  m.id = LoanId(r[0].as<int64_t>());
  m.partner_id = PartnerId(r[1].as<int64_t>());
  m.status = static_cast<LoanStatus>(r[2].as<int>());
  m.usd_amount_minor = r[3].as<int64_t>();
  m.local_currency = CurrencyOf(r[4]);
  m.local_amount_minor = r[5].as<int64_t>();
  m.posting_fx_rate = r[6].as<std::string>();
  m.pre_disbursed = r[7].as<bool>();
  m.fundraising_deadline = OptionalTimeOf(r[8]);
  m.funding_account_id = AccountId(r[9].as<int64_t>());
  m.settlement_account_id = AccountId(r[10].as<int64_t>());
  m.funded_minor = r[11].as<int64_t>();
  m.held_minor = r[12].as<int64_t>();
  m.funded_at = OptionalTimeOf(r[13]);
  m.disbursed_at = OptionalTimeOf(r[14]);
  if (!r[15].is_null()) {
    absl::CivilDay day;
    if (absl::ParseCivilTime(r[15].as<std::string>(), &day)) m.disbursed_on = day;
  }
  m.closed_at = OptionalTimeOf(r[16]);
  m.repaid_local_minor = r[17].as<int64_t>();
  m.expected_usd_minor = r[18].as<int64_t>();
  m.received_usd_minor = r[19].as<int64_t>();
  m.coverage_usd_minor = r[20].as<int64_t>();
  m.currency_loss_minor = r[21].as<int64_t>();
  m.repaid_usd_minor = r[22].as<int64_t>();
  m.written_off_minor = r[23].as<int64_t>();
  m.repayment_count = r[24].as<int32_t>();
  m.delinquent = r[25].as<bool>();
  m.days_in_arrears = r[26].as<int32_t>();
  m.arrears_local_minor = r[27].as<int64_t>();
  m.ended_with_currency_loss = r[28].as<bool>();
  return m;
}

// repaid_minor lives in the loan's book (migration 0010).
constexpr char kFunderColumns[] =
    "f.loan_id, f.account_id, f.owner_type, f.owner_id, f.amount_minor, f.share_count,"
    " funder_credited(f.loan_id, f.account_id), f.refunded_minor, to_micros(f.first_lent_at)";

// "1,2,3" (array_to_string of a BIGINT[] without NULLs) as numbers.
std::vector<int64_t> ParseIntList(std::string_view text) {
  std::vector<int64_t> out;
  out.reserve(text.size() / 6 + 1);
  const char* p = text.data();
  const char* end = p + text.size();
  while (p < end) {
    int64_t v = 0;
    auto [next, ec] = std::from_chars(p, end, v);
    ML_CHECK(ec == std::errc() && (next == end || *next == ','),
             absl::StrCat("malformed number list from PostgreSQL at offset ", p - text.data()));
    out.push_back(v);
    p = next == end ? end : next + 1;
  }
  return out;
}

FunderBook ReadBook(const pqxx::row& r) {
  FunderBook book;
  book.loan_id = LoanId(r[0].as<int64_t>());
  for (int64_t id : ParseIntList(std::string_view(r[1].c_str(), r[1].size()))) book.account_ids.emplace_back(id);
  book.shares = ParseIntList(std::string_view(r[2].c_str(), r[2].size()));
  book.credited = ParseIntList(std::string_view(r[3].c_str(), r[3].size()));
  ML_CHECK(book.shares.size() == book.account_ids.size() &&
               book.credited.size() == book.account_ids.size(),
           absl::StrCat("funder book of loan ", book.loan_id.value(), " is ragged"));
  return book;
}

LoanFunder ReadFunder(const pqxx::row& r) {
  return LoanFunder{.loan_id = LoanId(r[0].as<int64_t>()),
                    .account_id = AccountId(r[1].as<int64_t>()),
                    .owner_type = static_cast<OwnerType>(r[2].as<int>()),
                    .owner_id = r[3].as<std::string>(),
                    .amount_minor = r[4].as<int64_t>(),
                    .share_count = r[5].as<int32_t>(),
                    .repaid_minor = r[6].as<int64_t>(),
                    .refunded_minor = r[7].as<int64_t>(),
                    .first_lent_at = TimeOf(r[8])};
}

constexpr char kBasketColumns[] =
    "b.lender_id, b.loan_id, b.hold_id, b.amount_minor, to_micros(b.added_at),"
    " to_micros(b.expires_at)";

BasketItem ReadBasketItem(const pqxx::row& r) {
  return BasketItem{.lender_id = LenderId(r[0].as<int64_t>()),
                    .loan_id = LoanId(r[1].as<int64_t>()),
                    .hold_id = OptionalIdOf<TransferId>(r[2]),
                    .amount_minor = r[3].as<int64_t>(),
                    .added_at = TimeOf(r[4]),
                    .expires_at = TimeOf(r[5])};
}

constexpr char kRepaymentColumns[] =
    "id, loan_id, partner_id, local_amount_minor, local_currency, settlement_fx_rate,"
    " repaid_on::text, partner_reference, expected_usd_minor, credited_usd_minor,"
    " coverage_usd_minor, currency_loss_minor, credited_account_count, to_micros(posted_at)";

RepaymentRecord ReadRepayment(const pqxx::row& r) {
  RepaymentRecord out;
  out.id = RepaymentId(r[0].as<int64_t>());
  out.loan_id = LoanId(r[1].as<int64_t>());
  out.partner_id = PartnerId(r[2].as<int64_t>());
  out.local_amount = Money::FromMinor(CurrencyOf(r[4]), r[3].as<int64_t>());
  out.settlement_fx_rate = r[5].as<std::string>();
  absl::ParseCivilTime(r[6].as<std::string>(), &out.repaid_on);
  out.partner_reference = r[7].as<std::string>();
  out.expected_usd_minor = r[8].as<int64_t>();
  out.credited_usd_minor = r[9].as<int64_t>();
  out.coverage_usd_minor = r[10].as<int64_t>();
  out.currency_loss_minor = r[11].as<int64_t>();
  out.credited_account_count = r[12].as<int32_t>();
  out.posted_at = TimeOf(r[13]);
  return out;
}

void UpdateLoans(pqxx::work& tx, const std::vector<LoanMoney>& loans) {
  ArrayLiteral id, status, funding, settlement, funded, held, funded_at, disbursed_at, disbursed_on,
      closed_at, rl, eu, ru, cu, cl, rp, wo, rc, dq, da, al, ewl;
  for (const LoanMoney& m : loans) {
    id.Int(m.id.value());
    status.Int(static_cast<int>(m.status));
    if (m.funding_account_id.value() != 0) funding.Int(m.funding_account_id.value()); else funding.Null();
    if (m.settlement_account_id.value() != 0) settlement.Int(m.settlement_account_id.value()); else settlement.Null();
    funded.Int(m.funded_minor);
    held.Int(m.held_minor);
    funded_at.OptionalTime(m.funded_at);
    disbursed_at.OptionalTime(m.disbursed_at);
    if (m.disbursed_on) disbursed_on.Text(absl::FormatCivilTime(*m.disbursed_on)); else disbursed_on.Null();
    closed_at.OptionalTime(m.closed_at);
    rl.Int(m.repaid_local_minor);
    eu.Int(m.expected_usd_minor);
    ru.Int(m.received_usd_minor);
    cu.Int(m.coverage_usd_minor);
    cl.Int(m.currency_loss_minor);
    rp.Int(m.repaid_usd_minor);
    wo.Int(m.written_off_minor);
    rc.Int(m.repayment_count);
    dq.Text(m.delinquent ? "t" : "f");
    da.Int(m.days_in_arrears);
    al.Int(m.arrears_local_minor);
    ewl.Text(m.ended_with_currency_loss ? "t" : "f");
  }
  tx.exec_params(
      "UPDATE loans l SET status = u.status, funding_account_id = u.funding,"
      " settlement_account_id = u.settlement, funded_minor = u.funded, held_minor = u.held,"
      " funded_at = from_micros(u.funded_at), disbursed_at = from_micros(u.disbursed_at),"
      " disbursed_on_date = u.disbursed_on::date, closed_at = from_micros(u.closed_at),"
      " repaid_local_minor = u.rl, expected_usd_minor = u.eu, received_usd_minor = u.ru,"
      " coverage_usd_minor = u.cu, currency_loss_minor = u.cl, repaid_usd_minor = u.rp,"
      " written_off_minor = u.wo, repayment_count = u.rc, delinquent = u.dq,"
      " days_in_arrears = u.da, arrears_local_minor = u.al, ended_with_currency_loss = u.ewl,"
      " updated_at = greatest(l.updated_at, now())"
      " FROM unnest($1::bigint[], $2::smallint[], $3::bigint[], $4::bigint[], $5::bigint[],"
      " $6::bigint[], $7::bigint[], $8::bigint[], $9::text[], $10::bigint[], $11::bigint[],"
      " $12::bigint[], $13::bigint[], $14::bigint[], $15::bigint[], $16::bigint[], $17::bigint[],"
      " $18::int[], $19::boolean[], $20::int[], $21::bigint[], $22::boolean[])"
      " AS u(id, status, funding, settlement, funded, held, funded_at, disbursed_at, disbursed_on,"
      " closed_at, rl, eu, ru, cu, cl, rp, wo, rc, dq, da, al, ewl) WHERE l.id = u.id",
      std::move(id).Take(), std::move(status).Take(), std::move(funding).Take(),
      std::move(settlement).Take(), std::move(funded).Take(), std::move(held).Take(),
      std::move(funded_at).Take(), std::move(disbursed_at).Take(), std::move(disbursed_on).Take(),
      std::move(closed_at).Take(), std::move(rl).Take(), std::move(eu).Take(), std::move(ru).Take(),
      std::move(cu).Take(), std::move(cl).Take(), std::move(rp).Take(), std::move(wo).Take(),
      std::move(rc).Take(), std::move(dq).Take(), std::move(da).Take(), std::move(al).Take(),
      std::move(ewl).Take());
}

// `add`: new shares (insert, or add to the row); otherwise whole rows (insert or overwrite).
void UpsertFunders(pqxx::work& tx, const std::vector<LoanFunder>& funders, bool add) {
  ArrayLiteral loan, account, otype, oid, amount, count, refunded, first;
  for (const LoanFunder& f : funders) {
    loan.Int(f.loan_id.value());
    account.Int(f.account_id.value());
    otype.Int(static_cast<int>(f.owner_type));
    oid.Text(f.owner_id);
    amount.Int(f.amount_minor);
    count.Int(f.share_count);
    refunded.Int(f.refunded_minor);
    first.Int(absl::ToUnixMicros(f.first_lent_at));
  }
  const std::string on_conflict =
      add ? " ON CONFLICT (loan_id, account_id) DO UPDATE SET"
            " amount_minor = loan_funders.amount_minor + EXCLUDED.amount_minor,"
            " share_count = loan_funders.share_count + EXCLUDED.share_count"
          : " ON CONFLICT (loan_id, account_id) DO UPDATE SET"
            " amount_minor = EXCLUDED.amount_minor, share_count = EXCLUDED.share_count,"
            " refunded_minor = EXCLUDED.refunded_minor";
  // Several additions for one funder in a commit are summed first (one row per key).
  tx.exec_params(
      absl::StrCat(
          "INSERT INTO loan_funders (loan_id, account_id, owner_type, owner_id, amount_minor,"
          " share_count, refunded_minor, first_lent_at)"
          " SELECT loan, account, min(otype), min(oid), sum(amount), sum(cnt),"
          " sum(refunded), from_micros(min(first))"
          " FROM unnest($1::bigint[], $2::bigint[], $3::smallint[], $4::text[], $5::bigint[],"
          " $6::int[], $7::bigint[], $8::bigint[])"
          " AS u(loan, account, otype, oid, amount, cnt, refunded, first)"
          " GROUP BY loan, account ORDER BY loan, account",
          on_conflict),
      std::move(loan).Take(), std::move(account).Take(), std::move(otype).Take(),
      std::move(oid).Take(), std::move(amount).Take(), std::move(count).Take(),
      std::move(refunded).Take(), std::move(first).Take());
}

void WriteLoanParts(pqxx::work& tx, const CommitSet& commit) {
  if (!commit.loans.empty()) UpdateLoans(tx, commit.loans);
  if (!commit.funders.empty()) UpsertFunders(tx, commit.funders, /*add=*/false);
  if (!commit.funder_additions.empty()) UpsertFunders(tx, commit.funder_additions, /*add=*/true);
  if (!commit.funders.empty() || !commit.funder_additions.empty()) {
    std::vector<LoanId> loans;
    for (const auto* list : {&commit.funders, &commit.funder_additions}) {
      for (const LoanFunder& f : *list) loans.push_back(f.loan_id);
    }
    tx.exec_params(
        "UPDATE loans l SET lender_count = (SELECT count(*) FROM loan_funders f"
        " WHERE f.loan_id = l.id AND f.owner_type = 1) WHERE l.id = ANY($1::bigint[])",
        IdArray(loans));
  }
  if (!commit.books_to_open.empty()) {
    // The funders' shares are fixed once the loan is funded (migration 0010). The book's
    // currency is the loan's funding account's, which every share was moved into; the database
    // checks each funder's account against it (migration 0012).
    tx.exec_params(
        "INSERT INTO loan_funder_books (loan_id, currency, account_ids, shares, credited)"
        " SELECT f.loan_id, a.currency, array_agg(f.account_id ORDER BY f.account_id),"
        " array_agg(f.amount_minor ORDER BY f.account_id),"
        " array_agg(0::bigint ORDER BY f.account_id)"
        " FROM loan_funders f JOIN loans l ON l.id = f.loan_id"
        " JOIN accounts a ON a.id = l.funding_account_id"
        " WHERE f.loan_id = ANY($1::bigint[]) GROUP BY f.loan_id, a.currency",
        IdArray(commit.books_to_open));
  }
  if (!commit.books.empty()) {
    ArrayLiteral loan, credited;
    std::string list;
    for (const FunderBook& b : commit.books) {
      loan.Int(b.loan_id.value());
      list.clear();
      list.reserve(b.credited.size() * 6);
      for (size_t i = 0; i < b.credited.size(); ++i) {
        if (i > 0) list.push_back(',');
        absl::StrAppend(&list, b.credited[i]);
      }
      credited.Text(absl::StrCat("{", list, "}"));
    }
    // Only `credited` changes: the cardinality check refuses a book of another size.
    pqxx::result r = tx.exec_params(
        "UPDATE loan_funder_books b SET credited = u.credited::bigint[]"
        " FROM unnest($1::bigint[], $2::text[]) AS u(loan, credited)"
        " WHERE b.loan_id = u.loan AND cardinality(u.credited::bigint[]) = cardinality(b.account_ids)",
        std::move(loan).Take(), std::move(credited).Take());
    ML_CHECK(r.affected_rows() == commit.books.size(),
             absl::StrCat(commit.books.size() - r.affected_rows(),
                          " funder books written do not exist or changed size"));
  }
  if (!commit.basket_deletes.empty()) {
    ArrayLiteral lender, loan;
    for (const auto& [l, n] : commit.basket_deletes) {
      lender.Int(l.value());
      loan.Int(n.value());
    }
    tx.exec_params(
        "DELETE FROM basket_items b USING unnest($1::bigint[], $2::bigint[]) AS u(lender, loan)"
        " WHERE b.lender_id = u.lender AND b.loan_id = u.loan",
        std::move(lender).Take(), std::move(loan).Take());
  }
  if (!commit.basket_inserts.empty()) {
    ArrayLiteral lender, loan, hold, amount, added, expires;
    for (const BasketItem& b : commit.basket_inserts) {
      lender.Int(b.lender_id.value());
      loan.Int(b.loan_id.value());
      hold.OptionalId(b.hold_id);
      amount.Int(b.amount_minor);
      added.Int(absl::ToUnixMicros(b.added_at));
      expires.Int(absl::ToUnixMicros(b.expires_at));
    }
    tx.exec_params(
        "INSERT INTO basket_items (lender_id, loan_id, hold_id, amount_minor, added_at, expires_at)"
        " SELECT lender, loan, hold, amount, from_micros(added), from_micros(expires)"
        " FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[],"
        " $6::bigint[]) AS u(lender, loan, hold, amount, added, expires)",
        std::move(lender).Take(), std::move(loan).Take(), std::move(hold).Take(),
        std::move(amount).Take(), std::move(added).Take(), std::move(expires).Take());
  }
  if (!commit.repayments.empty()) {
    // One statement for a group's repayments: a partner's bulk commits up to 300 in one group.
    ArrayLiteral id, loan, partner, local, currency, rate, repaid_on, reference, expected, credited,
        coverage, loss, accounts, posted_at;
    for (const RepaymentRecord& r : commit.repayments) {
      CheckText(r.settlement_fx_rate);
      CheckText(r.partner_reference);
      id.Int(r.id.value());
      loan.Int(r.loan_id.value());
      partner.Int(r.partner_id.value());
      local.Int(r.local_amount.minor_units());
      currency.Text(r.local_amount.currency().code());
      rate.Text(r.settlement_fx_rate);
      repaid_on.Text(absl::FormatCivilTime(r.repaid_on));
      reference.Text(r.partner_reference);
      expected.Int(r.expected_usd_minor);
      credited.Int(r.credited_usd_minor);
      coverage.Int(r.coverage_usd_minor);
      loss.Int(r.currency_loss_minor);
      accounts.Int(r.credited_account_count);
      posted_at.Int(absl::ToUnixMicros(r.posted_at));
    }
    tx.exec_params(
        "INSERT INTO repayments (id, loan_id, partner_id, local_amount_minor, local_currency,"
        " settlement_fx_rate, repaid_on, partner_reference, expected_usd_minor,"
        " credited_usd_minor, coverage_usd_minor, currency_loss_minor, credited_account_count,"
        " posted_at)"
        " SELECT u.id, u.loan, u.partner, u.local, u.currency, u.rate, u.repaid_on::date,"
        " u.reference, u.expected, u.credited, u.coverage, u.loss, u.accounts,"
        " from_micros(u.posted_at)"
        " FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::text[],"
        " $6::text[], $7::text[], $8::text[], $9::bigint[], $10::bigint[], $11::bigint[],"
        " $12::bigint[], $13::int[], $14::bigint[])"
        " AS u(id, loan, partner, local, currency, rate, repaid_on, reference, expected, credited,"
        " coverage, loss, accounts, posted_at)",
        std::move(id).Take(), std::move(loan).Take(), std::move(partner).Take(),
        std::move(local).Take(), std::move(currency).Take(), std::move(rate).Take(),
        std::move(repaid_on).Take(), std::move(reference).Take(), std::move(expected).Take(),
        std::move(credited).Take(), std::move(coverage).Take(), std::move(loss).Take(),
        std::move(accounts).Take(), std::move(posted_at).Take());
  }
}

class PgLedgerTxn final : public LedgerTxn {
 public:
  explicit PgLedgerTxn(pqxx::work& tx) : tx_(tx) {}

  absl::StatusOr<Loaded> LoadForUpdate(const LoadRequest& request) override;
  absl::StatusOr<std::vector<TransferId>> AllocateTransferIds(size_t count) override;
  absl::StatusOr<std::vector<WithdrawalId>> AllocateWithdrawalIds(size_t count) override;
  absl::StatusOr<std::vector<RepaymentId>> AllocateRepaymentIds(size_t count) override;
  absl::Status Write(const CommitSet& commit) override;

  const absl::Status& failure() const { return failure_; }

 private:
  absl::Status Fail(absl::Status status) {
    if (failure_.ok()) failure_ = status;
    return status;
  }
  void LoadRows(const LoadRequest& request, Loaded& loaded);
  absl::Status WriteAll(const CommitSet& commit);

  pqxx::work& tx_;
  absl::Status failure_;
  int64_t max_allocated_id_ = 0;  // the sequence is past every id up to here
};

void PgLedgerTxn::LoadRows(const LoadRequest& request, Loaded& loaded) {
  // Loans, then accounts, then holds, then withdrawals, each in id order: one lock order for
  // everyone. A loan's accounts, funders' accounts and open holds come along with it (the loan's
  // lock keeps them from changing); a hold's accounts come along with it (a hold's transfer row
  // never changes, so reading them before taking any lock is safe).
  std::vector<AccountId> accounts = request.accounts;
  std::vector<HoldId> holds = request.holds;
  if (!request.loans.empty()) {
    loaded.loans = ReadAll<LoanMoney>(
        tx_.exec_params(absl::StrCat("SELECT ", kLoanMoneyColumns, " FROM loans l",
                                     " WHERE l.id = ANY($1::bigint[]) ORDER BY l.id FOR UPDATE"),
                        IdArray(request.loans)),
        ReadLoanMoney);
    for (const LoanMoney& m : loaded.loans) {
      if (m.funding_account_id.value() != 0) accounts.push_back(m.funding_account_id);
      if (m.settlement_account_id.value() != 0) accounts.push_back(m.settlement_account_id);
    }
  }
  if (!request.loan_funders.empty()) {
    loaded.funders = ReadAll<LoanFunder>(
        tx_.exec_params(absl::StrCat("SELECT ", kFunderColumns, " FROM loan_funders f",
                                     " WHERE f.loan_id = ANY($1::bigint[])"
                                     " ORDER BY f.loan_id, f.account_id"),
                        IdArray(request.loan_funders)),
        ReadFunder);
  }
  if (!request.loan_books.empty()) {
    loaded.books = ReadAll<FunderBook>(
        tx_.exec_params("SELECT loan_id, array_to_string(account_ids, ','),"
                        " array_to_string(shares, ','), array_to_string(credited, ',')"
                        " FROM loan_funder_books WHERE loan_id = ANY($1::bigint[]) ORDER BY loan_id",
                        IdArray(request.loan_books)),
        ReadBook);
  }
  if (!request.loans_open_holds.empty()) {
    for (const auto& row : tx_.exec_params(
             "SELECT h.hold_id FROM holds h JOIN transfers t ON t.id = h.hold_id"
             " JOIN loans l ON l.funding_account_id = t.credit_account_id"
             " WHERE l.id = ANY($1::bigint[]) AND h.state = 1",
             IdArray(request.loans_open_holds))) {
      holds.emplace_back(row[0].as<int64_t>());
    }
  }
  if (!request.baskets.empty()) {
    loaded.basket_items = ReadAll<BasketItem>(
        tx_.exec_params(absl::StrCat("SELECT ", kBasketColumns, " FROM basket_items b",
                                     " WHERE b.lender_id = ANY($1::bigint[])"
                                     " ORDER BY b.lender_id, b.added_at, b.loan_id"),
                        IdArray(request.baskets)),
        ReadBasketItem);
  }
  if (!holds.empty()) {
    for (const auto& row : tx_.exec_params(
             "SELECT debit_account_id, credit_account_id FROM transfers WHERE id = ANY($1::bigint[])",
             IdArray(holds))) {
      accounts.emplace_back(row[0].as<int64_t>());
      accounts.emplace_back(row[1].as<int64_t>());
    }
  }
  if (!accounts.empty()) {
    loaded.accounts =
        ReadAll<Account>(tx_.exec_prepared(kLockAccounts, IdArray(accounts)), ReadAccount);
  }
  if (!holds.empty()) {
    loaded.holds = ReadAll<Hold>(tx_.exec_prepared(kLockHolds, IdArray(holds)), ReadHold);
  }
  if (!request.client_ids.empty()) {
    // Waits for transactions writing packs to end, so that their ids are seen (migration 0009).
    tx_.exec_params("SELECT pg_advisory_xact_lock($1::bigint)", kTransferIdsLock);
    loaded.existing_ids =
        ReadAll<TransferId>(tx_.exec_prepared(kExistingIds, IdArray(request.client_ids)),
                            [](const pqxx::row& r) { return TransferId(r[0].as<int64_t>()); });
  }
  if (!request.idempotency.empty()) {
    ArrayLiteral callers, request_ids;
    for (const auto& [caller, request_id] : request.idempotency) {
      callers.Text(caller);
      request_ids.Text(request_id);
    }
    loaded.records = ReadAll<IdempotencyRecord>(
        tx_.exec_prepared(kFindRecords, std::move(callers).Take(), std::move(request_ids).Take()),
        ReadRecord);
  }
  if (!request.withdrawals.empty()) {
    loaded.withdrawals = ReadAll<Withdrawal>(
        tx_.exec_prepared(kLockWithdrawals, IdArray(request.withdrawals)), ReadWithdrawal);
  }
}

absl::StatusOr<Loaded> PgLedgerTxn::LoadForUpdate(const LoadRequest& request) {
  if (!failure_.ok()) return failure_;
  try {
    Loaded loaded;
    LoadRows(request, loaded);
    return loaded;
  } catch (const std::exception& e) {
    return Fail(pg::TranslateError(e, "locking ledger rows"));
  }
}

absl::StatusOr<std::vector<TransferId>> PgLedgerTxn::AllocateTransferIds(size_t count) {
  if (!failure_.ok()) return failure_;
  if (count == 0) return std::vector<TransferId>{};
  try {
    const int64_t last =
        tx_.exec_prepared1(kAllocateTransferIds, static_cast<int64_t>(count))[0].as<int64_t>();
    std::vector<TransferId> ids;
    ids.reserve(count);
    for (int64_t id = last - static_cast<int64_t>(count) + 1; id <= last; ++id) ids.emplace_back(id);
    max_allocated_id_ = std::max(max_allocated_id_, last);
    return ids;
  } catch (const std::exception& e) {
    return Fail(pg::TranslateError(e, "allocating transfer ids"));
  }
}

// `count` values of `sequence` in one statement, ascending.
template <typename IdT>
std::vector<IdT> NextValues(pqxx::work& tx, const char* prepared, size_t count) {
  std::vector<IdT> ids;
  ids.reserve(count);
  for (const pqxx::row& r : tx.exec_prepared(prepared, static_cast<int64_t>(count))) {
    ids.emplace_back(r[0].as<int64_t>());
  }
  std::sort(ids.begin(), ids.end());
  return ids;
}

absl::StatusOr<std::vector<WithdrawalId>> PgLedgerTxn::AllocateWithdrawalIds(size_t count) {
  if (!failure_.ok()) return failure_;
  if (count == 0) return std::vector<WithdrawalId>{};
  try {
    return NextValues<WithdrawalId>(tx_, kAllocateWithdrawalIds, count);
  } catch (const std::exception& e) {
    return Fail(pg::TranslateError(e, "allocating withdrawal ids"));
  }
}

absl::StatusOr<std::vector<RepaymentId>> PgLedgerTxn::AllocateRepaymentIds(size_t count) {
  if (!failure_.ok()) return failure_;
  if (count == 0) return std::vector<RepaymentId>{};
  try {
    return NextValues<RepaymentId>(tx_, kAllocateRepaymentIds, count);
  } catch (const std::exception& e) {
    return Fail(pg::TranslateError(e, "allocating repayment ids"));
  }
}

absl::Status PgLedgerTxn::WriteAll(const CommitSet& commit) {
  // Transfers first: holds and withdrawals reference them.
  if (!commit.transfers.empty()) {
    int64_t max_id = 0;
    for (const Transfer& t : commit.transfers) max_id = std::max(max_id, t.id.value());
    if (max_id > max_allocated_id_) AdvanceSequence(tx_, "transfer_id_seq", max_id);
    const PackPlan plan = PlanPacks(commit.transfers, commit.funder_credits);
    InsertTransfers(tx_, commit.transfers, plan);
    InsertAccountEntries(tx_, commit.transfers, plan);
  }
  if (!commit.holds.empty()) ML_RETURN_IF_ERROR(UpsertHolds(tx_, commit.holds));
  if (!commit.accounts.empty()) ML_RETURN_IF_ERROR(UpdateAccounts(tx_, commit.accounts));
  IncrementedAccounts incremented;
  if (!commit.credit_increments.empty()) {
    ML_ASSIGN_OR_RETURN(incremented, ApplyCreditIncrements(tx_, commit.credit_increments));
  }
  if (!commit.withdrawals.empty()) UpsertWithdrawals(tx_, commit.withdrawals);
  WriteLoanParts(tx_, commit);
  if (!commit.idempotency.empty()) InsertRecords(tx_, commit.idempotency);
  if (!commit.events.empty()) InsertEvents(tx_, commit.events, incremented, commit.transfers);
  return absl::OkStatus();
}

absl::Status PgLedgerTxn::Write(const CommitSet& commit) {
  if (!failure_.ok()) return failure_;
  try {
    absl::Status status = WriteAll(commit);
    if (!status.ok()) return Fail(status);
    return absl::OkStatus();
  } catch (const std::exception& e) {
    return Fail(pg::TranslateError(e, "writing a ledger commit"));
  }
}

// A text parameter passed on its own (libpq parameters end at a NUL byte).
std::string TextParam(std::string_view text) {
  CheckText(text);
  return std::string(text);
}

absl::Status CheckLimit(const PageSpec& page) {
  if (page.limit < 1) {
    return absl::InvalidArgumentError(absl::StrCat("page limit ", page.limit, " is below 1"));
  }
  return absl::OkStatus();
}

// " AND <column> > $n" (or "<" newest first) when the page continues after a cursor.
std::string CursorCondition(const PageSpec& page, std::string_view column, Params& params) {
  if (page.after_id <= 0) return "";
  return absl::StrCat(" AND ", AsAbsl(column), page.newest_first ? " < " : " > ",
                      params.Add(page.after_id), "::bigint");
}

// One row more than the page holds, to learn whether another page follows.
std::string OrderAndLimit(const PageSpec& page, std::string_view column, Params& params) {
  return absl::StrCat(" ORDER BY ", AsAbsl(column), page.newest_first ? " DESC" : " ASC", " LIMIT ",
                      params.Add(int64_t{page.limit} + 1), "::bigint");
}

template <typename T, typename IdFn>
Page<T> MakePage(std::vector<T> items, const PageSpec& spec, int64_t total, IdFn id_of) {
  Page<T> page;
  page.total_count = total;
  if (items.size() > static_cast<size_t>(spec.limit)) {
    items.resize(spec.limit);
    page.next_after_id = id_of(items.back());
  }
  page.items = std::move(items);
  return page;
}

template <typename Enum>
std::string EnumArray(const std::vector<Enum>& values) {
  ArrayLiteral array;
  for (Enum v : values) array.Int(static_cast<int>(v));
  return std::move(array).Take();
}

// Conditions on transfers `t` besides the account, each starting with " AND ".
std::string TransferConditions(const TransferFilter& f, Params& p) {
  std::string out;
  if (f.from_time.has_value()) {
    absl::StrAppend(&out, " AND t.created_at >= from_micros(",
                    p.Add(absl::ToUnixMicros(*f.from_time)), "::bigint)");
  }
  if (f.to_time.has_value()) {
    absl::StrAppend(&out, " AND t.created_at < from_micros(", p.Add(absl::ToUnixMicros(*f.to_time)),
                    "::bigint)");
  }
  if (!f.codes.empty()) {
    absl::StrAppend(&out, " AND t.code = ANY(", p.Add(EnumArray(f.codes)), "::smallint[])");
  }
  if (!f.types.empty()) {
    absl::StrAppend(&out, " AND t.type = ANY(", p.Add(EnumArray(f.types)), "::smallint[])");
  }
  if (f.loan_id.has_value()) {
    absl::StrAppend(&out, " AND t.loan_id = ", p.Add(f.loan_id->value()), "::bigint");
  }
  return out;
}

int64_t Count(pqxx::transaction_base& tx, const std::string& sql, const Params& params) {
  return tx.exec_params(sql, params.dynamic())[0][0].as<int64_t>();
}

// The transfers touching an account, as a subquery "t": its history (account_transfer_ids,
// migration 0010), each id fetched as a row or from its pack (transfer_by_id, migration 0009).
// `a` is the account's parameter.
std::string AccountTransfers(const std::string& a) {
  return absl::StrCat("(SELECT tr.* FROM account_transfer_ids(", a,
                      "::bigint) AS x(id) CROSS JOIN LATERAL transfer_by_id(x.id) tr) t");
}

// Every transfer, or a loan's when the filter names one (rows and repayment packs).
std::string AllTransfers(const TransferFilter& f, Params& p) {
  if (!f.loan_id.has_value()) return "all_transfers t";
  return absl::StrCat("loan_transfers(", p.Add(f.loan_id->value()), "::bigint) t");
}

// Page of transfers touching an account.
std::string AccountTransfersSql(AccountId account, const TransferFilter& f, const PageSpec& page,
                                Params& p) {
  std::string a = p.Add(account.value());
  return absl::StrCat("SELECT ", kTransferColumns, " FROM ", AccountTransfers(a), " WHERE TRUE",
                      TransferConditions(f, p), CursorCondition(page, "t.id", p),
                      OrderAndLimit(page, "t.id", p));
}

std::string TransferPageSql(const TransferFilter& f, const PageSpec& page, Params& p) {
  if (f.account_id.has_value()) return AccountTransfersSql(*f.account_id, f, page, p);
  return absl::StrCat("SELECT ", kTransferColumns, " FROM ", AllTransfers(f, p), " WHERE TRUE",
                      TransferConditions(f, p), CursorCondition(page, "t.id", p),
                      OrderAndLimit(page, "t.id", p));
}

std::string TransferCountSql(const TransferFilter& f, Params& p) {
  std::string from = f.account_id.has_value() ? AccountTransfers(p.Add(f.account_id->value()))
                                              : AllTransfers(f, p);
  return absl::StrCat("SELECT count(*) FROM ", from, " WHERE TRUE", TransferConditions(f, p));
}

// The account's posted entries, signed from its side ($1 is the account).
constexpr char kEntriesCte[] =
    "WITH entries AS ("
    "SELECT t.*, CASE WHEN t.credit_account_id = $1::bigint THEN t.amount ELSE -t.amount END"
    " AS signed_amount"
    " FROM account_transfer_ids($1::bigint) AS x(id)"
    " CROSS JOIN LATERAL transfer_by_id(x.id) t WHERE t.type IN (1, 3))";

std::string StatementPageSql(const TransferFilter& f, const PageSpec& page, Params& p) {
  // The running balance is taken over every entry before filters and cursor cut rows out.
  return absl::StrCat(kEntriesCte,
                      ", running AS (SELECT e.*, sum(e.signed_amount) OVER (ORDER BY e.id)"
                      " AS balance_after FROM entries e)"
                      " SELECT ",
                      kTransferColumns,
                      ", t.signed_amount, t.balance_after::bigint"
                      " FROM running t WHERE TRUE",
                      TransferConditions(f, p), CursorCondition(page, "t.id", p),
                      OrderAndLimit(page, "t.id", p));
}

StatementRow ReadStatementRow(const pqxx::row& r) {
  StatementRow row;
  row.transfer = ReadTransfer(r);
  row.signed_amount = r[kTransferColumnCount].as<int64_t>();
  row.balance_after = r[kTransferColumnCount + 1].as<int64_t>();
  return row;
}

std::string AccountConditions(const AccountFilter& f, Params& p) {
  std::string out;
  if (f.owner_type.has_value()) {
    absl::StrAppend(&out, " AND owner_type = ", p.Add(static_cast<int>(*f.owner_type)),
                    "::smallint");
  }
  if (!f.owner_id.empty()) absl::StrAppend(&out, " AND owner_id = ", p.Add(TextParam(f.owner_id)));
  if (f.kind.has_value()) {
    absl::StrAppend(&out, " AND kind = ", p.Add(static_cast<int>(*f.kind)), "::smallint");
  }
  if (f.currency.has_value()) {
    absl::StrAppend(&out, " AND currency = ", p.Add(std::string(f.currency->code())), "::bpchar");
  }
  return out;
}

std::string WithdrawalConditions(std::optional<LenderId> lender,
                                 std::optional<WithdrawalState> state, Params& p) {
  std::string out;
  if (lender.has_value())
    absl::StrAppend(&out, " AND lender_id = ", p.Add(lender->value()), "::bigint");
  if (state.has_value()) {
    absl::StrAppend(&out, " AND state = ", p.Add(static_cast<int>(*state)), "::smallint");
  }
  return out;
}

void PrepareAll(pqxx::connection& conn) {
  for (const auto& [name, sql] : PreparedStatements()) conn.prepare(name, sql);
}

// An account insert that found its id or owner key taken: which one, and by whom.
absl::Status AccountConflict(pqxx::work& tx, const NewAccount& a, int64_t id) {
  pqxx::result owner = tx.exec_params(
      "SELECT id FROM accounts WHERE owner_type = $1::smallint AND owner_id = $2"
      " AND kind = $3::smallint AND currency = $4::bpchar",
      static_cast<int>(a.owner_type), TextParam(a.owner_id), static_cast<int>(a.kind),
      std::string(a.currency.code()));
  if (!owner.empty()) {
    return absl::AlreadyExistsError(
        absl::StrCat("owner (type ", static_cast<int>(a.owner_type), ", id \"", a.owner_id,
                     "\") already has a ", "kind ", static_cast<int>(a.kind), " ",
                     AsAbsl(a.currency.code()), " account: account ", owner[0][0].as<int64_t>()));
  }
  return absl::AlreadyExistsError(absl::StrCat("account id ", id, " is taken"));
}

absl::Status InsertRecordOnce(pqxx::work& tx, const IdempotencyRecord& r) {
  pqxx::result inserted = tx.exec_params(
      "INSERT INTO idempotency_records (caller, request_id, method, body_sha256, status_code,"
      " status_text, response) VALUES ($1, $2, $3, decode($4, 'hex'), $5::int, $6,"
      " decode($7, 'hex')) ON CONFLICT DO NOTHING",
      TextParam(r.caller), TextParam(r.request_id), TextParam(r.method),
      absl::BytesToHexString(r.body_hash), static_cast<int>(r.code), TextParam(r.message),
      absl::BytesToHexString(r.payload));
  if (inserted.affected_rows() == 0) {
    return absl::AlreadyExistsError(absl::StrCat("request id \"", r.request_id, "\" of caller \"",
                                                 r.caller, "\" is already recorded"));
  }
  return absl::OkStatus();
}

}  // namespace

PgLedgerStore::PgLedgerStore(std::unique_ptr<pg::ConnectionPool> pool) : pool_(std::move(pool)) {}
PgLedgerStore::~PgLedgerStore() = default;

absl::StatusOr<std::unique_ptr<PgLedgerStore>> PgLedgerStore::Create(std::string url,
                                                                     int pool_size) {
  if (pool_size < 1) {
    return absl::InvalidArgumentError(absl::StrCat("pool size ", pool_size, " is below 1"));
  }
  absl::StatusOr<std::unique_ptr<pg::ConnectionPool>> pool = pg::ConnectionPool::Create(
      {.url = std::move(url),
       .size = pool_size,
       .name = "ledger",
       .borrow_timeout = kBorrowTimeout,
       // set_variable (not a plain SET) so that libpqxx restores it if it reconnects by itself.
       .setup = [](pqxx::connection& conn) {
         conn.set_variable("search_path", kSchema);
         PrepareAll(conn);
       },
       .translate = pg::TranslateError});
  if (!pool.ok()) return pool.status();
  absl::Status ready = RunIn<pqxx::read_transaction>(
      **pool, "checking the ledger schema", [](pqxx::read_transaction& tx) -> absl::Status {
        if (tx.exec("SELECT to_regclass('outbox_events') IS NOT NULL")[0][0].as<bool>()) {
          return absl::OkStatus();
        }
        return absl::FailedPreconditionError(absl::StrCat(
            "schema ", kSchema, " has no ledger tables: apply the lending migrations first"));
      });
  if (!ready.ok()) return ready;
  return std::unique_ptr<PgLedgerStore>(new PgLedgerStore(*std::move(pool)));
}

absl::Status PgLedgerStore::Transact(const std::function<absl::Status(LedgerTxn&)>& fn) {
  ML_ASSIGN_OR_RETURN(Lease lease, pool_->Borrow());
  std::optional<pqxx::work> tx;
  absl::Status status;
  try {
    tx.emplace(lease.conn());
    PgLedgerTxn txn(*tx);
    status = fn(txn);
    if (status.ok()) status = txn.failure();  // never commit past a failed call
    if (status.ok()) {
      tx->commit();
      return absl::OkStatus();
    }
  } catch (const std::exception& e) {
    // Includes a commit whose outcome is unknown (in_doubt_error): Unavailable.
    return lease.Fail(e, "ledger transaction");
  }
  lease.Note(status);
  try {
    tx->abort();
  } catch (const std::exception& e) {
    lease.Fail(e, "rolling back a ledger transaction").IgnoreError();  // rolled back anyway
  }
  return status;
}

absl::StatusOr<Account> PgLedgerStore::CreateAccount(const NewAccount& account, absl::Time now,
                                                     const IdempotencyRecord& record) {
  return RunIn<pqxx::work>(
      *pool_, "creating an account", [&](pqxx::work& tx) -> absl::StatusOr<Account> {
        int64_t id = 0;
        if (account.id.has_value()) {
          id = account.id->value();
          AdvanceSequence(tx, "account_id_seq", id);
        } else {
          id = tx.exec("SELECT nextval('account_id_seq')")[0][0].as<int64_t>();
        }
        pqxx::result inserted = tx.exec_params(
            absl::StrCat("INSERT INTO accounts (id, owner_type, owner_id, kind, currency,"
                         " debits_must_not_exceed_credits, credits_must_not_exceed_debits, memo,"
                         " created_at) VALUES ($1::bigint, $2::smallint, $3, $4::smallint,"
                         " $5::bpchar, $6::boolean, $7::boolean, $8, from_micros($9::bigint))"
                         " ON CONFLICT DO NOTHING RETURNING ",
                         kAccountColumns),
            id, static_cast<int>(account.owner_type), TextParam(account.owner_id),
            static_cast<int>(account.kind), std::string(account.currency.code()),
            account.flags.debits_must_not_exceed_credits,
            account.flags.credits_must_not_exceed_debits, TextParam(account.memo),
            absl::ToUnixMicros(now));
        if (inserted.empty()) return AccountConflict(tx, account, id);
        ML_RETURN_IF_ERROR(InsertRecordOnce(tx, record));
        return ReadAccount(inserted[0]);
      });
}

absl::StatusOr<std::optional<IdempotencyRecord>> PgLedgerStore::FindIdempotency(
    const std::string& caller, const std::string& request_id) {
  return RunIn<pg::OneStatementRead>(
      *pool_, "reading an idempotency record",
      [&](pg::OneStatementRead& tx) -> absl::StatusOr<std::optional<IdempotencyRecord>> {
        pqxx::result r =
            tx.exec_params(absl::StrCat("SELECT ", kRecordColumns, " FROM idempotency_records r",
                                        " WHERE r.caller = $1 AND r.request_id = $2"),
                           TextParam(caller), TextParam(request_id));
        if (r.empty()) return std::optional<IdempotencyRecord>();
        return std::optional<IdempotencyRecord>(ReadRecord(r[0]));
      });
}

absl::StatusOr<std::vector<IdempotencyRecord>> PgLedgerStore::FindIdempotencies(
    const std::vector<std::pair<std::string, std::string>>& keys) {
  if (keys.empty()) return std::vector<IdempotencyRecord>{};
  ArrayLiteral callers, request_ids;
  for (const auto& [caller, request_id] : keys) {
    CheckText(caller);
    CheckText(request_id);
    callers.Text(caller);
    request_ids.Text(request_id);
  }
  return RunIn<pg::OneStatementRead>(
      *pool_, "reading idempotency records",
      [&](pg::OneStatementRead& tx) -> absl::StatusOr<std::vector<IdempotencyRecord>> {
        // The statement the committer's load prepares (kFindRecords): a key probe per key.
        return ReadAll<IdempotencyRecord>(
            tx.exec_params(
                absl::StrCat("SELECT ", kRecordColumns,
                             " FROM unnest($1::text[], $2::text[]) AS k(caller, request_id)"
                             " CROSS JOIN LATERAL (SELECT * FROM idempotency_records i"
                             " WHERE i.caller = k.caller AND i.request_id = k.request_id"
                             " LIMIT 1) r"),
                std::move(callers).Take(), std::move(request_ids).Take()),
            ReadRecord);
      });
}

absl::StatusOr<Account> PgLedgerStore::GetAccount(AccountId id) {
  return RunIn<pqxx::read_transaction>(
      *pool_, "reading an account", [&](pqxx::read_transaction& tx) -> absl::StatusOr<Account> {
        pqxx::result r = tx.exec_params(
            absl::StrCat("SELECT ", kAccountColumns, " FROM accounts WHERE id = $1::bigint"),
            id.value());
        if (r.empty())
          return absl::NotFoundError(absl::StrCat("account ", id.value(), " not found"));
        return ReadAccount(r[0]);
      });
}

absl::StatusOr<std::optional<Account>> PgLedgerStore::FindAccountByOwner(
    OwnerType owner_type, const std::string& owner_id, AccountKind kind, Currency currency) {
  AccountFilter filter{
      .owner_type = owner_type, .owner_id = owner_id, .kind = kind, .currency = currency};
  return RunIn<pqxx::read_transaction>(
      *pool_, "finding an account by owner",
      [&](pqxx::read_transaction& tx) -> absl::StatusOr<std::optional<Account>> {
        Params p;
        std::string where = AccountConditions(filter, p);
        if (owner_id.empty()) absl::StrAppend(&where, " AND owner_id = ''");
        pqxx::result r = tx.exec_params(
            absl::StrCat("SELECT ", kAccountColumns, " FROM accounts WHERE TRUE", where),
            p.dynamic());
        if (r.empty()) return std::optional<Account>();
        return std::optional<Account>(ReadAccount(r[0]));
      });
}

absl::StatusOr<Page<Account>> PgLedgerStore::ListAccounts(const AccountFilter& filter,
                                                          const PageSpec& page) {
  ML_RETURN_IF_ERROR(CheckLimit(page));
  return RunIn<ReadTxn>(
      *pool_, "listing accounts", [&](ReadTxn& tx) -> absl::StatusOr<Page<Account>> {
        Params count_params, page_params;
        int64_t total = Count(tx,
                              absl::StrCat("SELECT count(*) FROM accounts WHERE TRUE",
                                           AccountConditions(filter, count_params)),
                              count_params);
        std::string sql = absl::StrCat("SELECT ", kAccountColumns, " FROM accounts WHERE TRUE",
                                       AccountConditions(filter, page_params),
                                       CursorCondition(page, "id", page_params),
                                       OrderAndLimit(page, "id", page_params));
        return MakePage(ReadAll<Account>(tx.exec_params(sql, page_params.dynamic()), ReadAccount),
                        page, total, [](const Account& a) { return a.id.value(); });
      });
}

absl::StatusOr<Hold> PgLedgerStore::GetTransfer(TransferId id) {
  return RunIn<pqxx::read_transaction>(
      *pool_, "reading a transfer", [&](pqxx::read_transaction& tx) -> absl::StatusOr<Hold> {
        pqxx::result r = tx.exec_params(
            absl::StrCat("SELECT ", kTransferColumns, ", h.state, h.posted_amount, h.resolved_by",
                         " FROM transfer_by_id($1::bigint) t LEFT JOIN holds h ON h.hold_id = t.id"),
            id.value());
        if (r.empty()) {
          return absl::NotFoundError(absl::StrCat("transfer ", id.value(), " not found"));
        }
        return ReadHold(r[0]);
      });
}

namespace {

// The transfers among `ids` (any order, repeats allowed), keyed by id; missing ones are absent.
// Read in runs of nearby ids, each bounded by its first and last: a batch's ids are (nearly)
// consecutive, and the bounds let the planner read the primary key's range. With `= ANY` alone
// it estimated a (parallel) scan of the whole table cheaper, and read all of it every time; with
// one pair of bounds, a single client-chosen id far from the rest would widen them to the same.
absl::flat_hash_map<TransferId, Transfer> ReadTransfersById(pqxx::transaction_base& tx,
                                                            std::vector<TransferId> ids) {
  constexpr int64_t kMaxGapInRun = 1024;
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  absl::flat_hash_map<TransferId, Transfer> found;
  found.reserve(ids.size());
  for (size_t begin = 0; begin < ids.size();) {
    size_t end = begin + 1;
    while (end < ids.size() && ids[end].value() - ids[end - 1].value() <= kMaxGapInRun) ++end;
    const std::vector<TransferId> run(ids.begin() + static_cast<std::ptrdiff_t>(begin),
                                      ids.begin() + static_cast<std::ptrdiff_t>(end));
    for (const pqxx::row& r : tx.exec_params(
             absl::StrCat("SELECT ", kTransferColumns,
                          " FROM transfers_between($2::bigint, $3::bigint) t",
                          " WHERE t.id = ANY($1::bigint[])"),
             IdArray(run), run.front().value(), run.back().value())) {
      Transfer t = ReadTransfer(r);
      found.emplace(t.id, std::move(t));
    }
    begin = end;
  }
  return found;
}

}  // namespace

absl::StatusOr<std::vector<Transfer>> PgLedgerStore::GetTransfers(
    const std::vector<TransferId>& ids) {
  if (ids.empty()) return std::vector<Transfer>{};
  return RunIn<pqxx::read_transaction>(
      *pool_, "reading transfers",
      [&](pqxx::read_transaction& tx) -> absl::StatusOr<std::vector<Transfer>> {
        absl::flat_hash_map<TransferId, Transfer> found = ReadTransfersById(tx, ids);
        std::vector<Transfer> out;
        out.reserve(ids.size());
        for (TransferId id : ids) {
          auto it = found.find(id);
          if (it == found.end()) {
            return absl::NotFoundError(absl::StrCat("transfer ", id.value(), " not found"));
          }
          out.push_back(it->second);
        }
        return out;
      });
}

absl::StatusOr<Page<Transfer>> PgLedgerStore::ListTransfers(const TransferFilter& filter,
                                                            const PageSpec& page) {
  ML_RETURN_IF_ERROR(CheckLimit(page));
  return RunIn<ReadTxn>(
      *pool_, "listing transfers", [&](ReadTxn& tx) -> absl::StatusOr<Page<Transfer>> {
        Params count_params, page_params;
        int64_t total = Count(tx, TransferCountSql(filter, count_params), count_params);
        std::string sql = TransferPageSql(filter, page, page_params);
        return MakePage(ReadAll<Transfer>(tx.exec_params(sql, page_params.dynamic()), ReadTransfer),
                        page, total, [](const Transfer& t) { return t.id.value(); });
      });
}

absl::StatusOr<Page<StatementRow>> PgLedgerStore::Statement(AccountId account,
                                                            const TransferFilter& filter,
                                                            const PageSpec& page) {
  ML_RETURN_IF_ERROR(CheckLimit(page));
  TransferFilter rows = filter;
  rows.account_id.reset();
  return RunIn<ReadTxn>(
      *pool_, "reading a statement", [&](ReadTxn& tx) -> absl::StatusOr<Page<StatementRow>> {
        if (tx.exec_params("SELECT 1 FROM accounts WHERE id = $1::bigint", account.value())
                .empty()) {
          return absl::NotFoundError(absl::StrCat("account ", account.value(), " not found"));
        }
        Params count_params, page_params;
        count_params.Add(account.value());
        page_params.Add(account.value());
        int64_t total =
            Count(tx,
                  absl::StrCat(kEntriesCte, " SELECT count(*) FROM entries t WHERE TRUE",
                               TransferConditions(rows, count_params)),
                  count_params);
        std::string sql = StatementPageSql(rows, page, page_params);
        return MakePage(
            ReadAll<StatementRow>(tx.exec_params(sql, page_params.dynamic()), ReadStatementRow),
            page, total, [](const StatementRow& r) { return r.transfer.id.value(); });
      });
}

absl::StatusOr<std::vector<HoldId>> PgLedgerStore::ListExpiredHolds(absl::Time now, size_t limit) {
  return RunIn<pqxx::read_transaction>(
      *pool_, "listing expired holds",
      [&](pqxx::read_transaction& tx) -> absl::StatusOr<std::vector<HoldId>> {
        return ReadAll<HoldId>(tx.exec_params("SELECT hold_id FROM holds WHERE state = 1"
                                              " AND expires_at <= from_micros($1::bigint)"
                                              " ORDER BY hold_id LIMIT $2::bigint",
                                              absl::ToUnixMicros(now), static_cast<int64_t>(limit)),
                               [](const pqxx::row& r) { return HoldId(r[0].as<int64_t>()); });
      });
}

absl::StatusOr<Withdrawal> PgLedgerStore::GetWithdrawal(WithdrawalId id) {
  return RunIn<pqxx::read_transaction>(
      *pool_, "reading a withdrawal",
      [&](pqxx::read_transaction& tx) -> absl::StatusOr<Withdrawal> {
        pqxx::result r = tx.exec_params(
            absl::StrCat("SELECT ", kWithdrawalColumns, " FROM withdrawals WHERE id = $1::bigint"),
            id.value());
        if (r.empty()) {
          return absl::NotFoundError(absl::StrCat("withdrawal ", id.value(), " not found"));
        }
        return ReadWithdrawal(r[0]);
      });
}

absl::StatusOr<LoanMoney> PgLedgerStore::GetLoanMoney(LoanId id) {
  return RunIn<pg::OneStatementRead>(
      *pool_, "reading a loan", [&](pg::OneStatementRead& tx) -> absl::StatusOr<LoanMoney> {
        pqxx::result r = tx.exec_params(
            absl::StrCat("SELECT ", kLoanMoneyColumns, " FROM loans l WHERE l.id = $1::bigint"),
            id.value());
        if (r.empty() || r[0][2].as<int>() < static_cast<int>(LoanStatus::kFundraising)) {
          return absl::NotFoundError(absl::StrCat("loan ", id.value(), " not found"));
        }
        return ReadLoanMoney(r[0]);
      });
}

absl::StatusOr<std::vector<std::pair<BasketItem, std::optional<HoldState>>>>
PgLedgerStore::ListBasket(LenderId lender) {
  using Line = std::pair<BasketItem, std::optional<HoldState>>;
  return RunIn<pqxx::read_transaction>(
      *pool_, "reading a basket",
      [&](pqxx::read_transaction& tx) -> absl::StatusOr<std::vector<Line>> {
        std::vector<Line> out;
        for (const auto& row : tx.exec_params(
                 absl::StrCat("SELECT ", kBasketColumns, ", h.state FROM basket_items b",
                              " LEFT JOIN holds h ON h.hold_id = b.hold_id",
                              " WHERE b.lender_id = $1::bigint ORDER BY b.added_at, b.loan_id"),
                 lender.value())) {
          std::optional<HoldState> state;
          if (!row[6].is_null()) state = static_cast<HoldState>(row[6].as<int>());
          out.emplace_back(ReadBasketItem(row), state);
        }
        return out;
      });
}

namespace {

int64_t CountFundersIn(pqxx::transaction_base& tx, LoanId loan) {
  return tx.exec_params1("SELECT count(*) FROM loan_funders WHERE loan_id = $1::bigint",
                         loan.value())[0]
      .as<int64_t>();
}

}  // namespace

absl::StatusOr<Page<LoanFunder>> PgLedgerStore::ListFunders(LoanId loan, const PageSpec& page) {
  ML_RETURN_IF_ERROR(CheckLimit(page));
  return RunIn<pqxx::read_transaction>(
      *pool_, "listing a loan's funders",
      [&](pqxx::read_transaction& tx) -> absl::StatusOr<Page<LoanFunder>> {
        // The cursor is the position in (first_lent_at, account_id) order.
        // What each was credited comes from the loan's book, unpacked once for the page:
        // funder_credited would read the whole book again for every funder listed.
        std::vector<LoanFunder> items = ReadAll<LoanFunder>(
            tx.exec_params(
                "SELECT f.loan_id, f.account_id, f.owner_type, f.owner_id, f.amount_minor,"
                " f.share_count, coalesce(c.credited, 0), f.refunded_minor,"
                " to_micros(f.first_lent_at)"
                " FROM (SELECT * FROM loan_funders WHERE loan_id = $1::bigint"
                "       ORDER BY first_lent_at, account_id OFFSET $2::bigint LIMIT $3::bigint) f"
                " LEFT JOIN (SELECT u.account_id, u.credited FROM loan_funder_books b,"
                "            unnest(b.account_ids, b.credited) AS u(account_id, credited)"
                "            WHERE b.loan_id = $1::bigint) c ON c.account_id = f.account_id"
                " ORDER BY f.first_lent_at, f.account_id",
                loan.value(), page.after_id, page.limit + 1),
            ReadFunder);
        Page<LoanFunder> out;
        out.total_count = CountFundersIn(tx, loan);
        if (items.size() > static_cast<size_t>(page.limit)) {
          items.resize(page.limit);
          out.next_after_id = page.after_id + page.limit;
        }
        out.items = std::move(items);
        return out;
      });
}

// How many funders the loan `l` has (CountFunders, GetRepaymentTargets). A disbursed loan's
// funders are fixed in its book: one row's array length, where counting 10,000 funder rows took
// about 1 ms before every repayment. Before disbursement there is no book; its rows are counted.
constexpr char kFunderCountOfL[] =
    "coalesce((SELECT cardinality(b.account_ids) FROM loan_funder_books b WHERE b.loan_id = l.id),"
    " (SELECT count(*) FROM loan_funders f WHERE f.loan_id = l.id))";

absl::StatusOr<int64_t> PgLedgerStore::CountFunders(LoanId loan) {
  return RunIn<pg::OneStatementRead>(
      *pool_, "counting a loan's funders",
      [&](pg::OneStatementRead& tx) -> absl::StatusOr<int64_t> {
        return tx.exec_params1(absl::StrCat("SELECT ", kFunderCountOfL,
                                            " FROM (SELECT $1::bigint AS id) l"),
                               loan.value())[0]
            .as<int64_t>();
      });
}

absl::StatusOr<std::vector<LoanFunder>> PgLedgerStore::ListPositions(AccountId funder) {
  return RunIn<pqxx::read_transaction>(
      *pool_, "listing a funder's loans",
      [&](pqxx::read_transaction& tx) -> absl::StatusOr<std::vector<LoanFunder>> {
        return ReadAll<LoanFunder>(
            tx.exec_params(absl::StrCat("SELECT ", kFunderColumns, " FROM loan_funders f",
                                        " WHERE f.account_id = $1::bigint"
                                        " ORDER BY f.first_lent_at DESC, f.loan_id DESC"),
                           funder.value()),
            ReadFunder);
      });
}

absl::StatusOr<Page<RepaymentRecord>> PgLedgerStore::ListRepayments(LoanId loan,
                                                                    const PageSpec& page) {
  ML_RETURN_IF_ERROR(CheckLimit(page));
  return RunIn<pqxx::read_transaction>(
      *pool_, "listing repayments",
      [&](pqxx::read_transaction& tx) -> absl::StatusOr<Page<RepaymentRecord>> {
        std::vector<RepaymentRecord> items = ReadAll<RepaymentRecord>(
            tx.exec_params(absl::StrCat("SELECT ", kRepaymentColumns, " FROM repayments",
                                        " WHERE loan_id = $1::bigint",
                                        " AND ($2::bigint = 0 OR id < $2::bigint)",
                                        " ORDER BY id DESC LIMIT $3::bigint"),
                           loan.value(), page.after_id, page.limit + 1),
            ReadRepayment);
        Page<RepaymentRecord> out;
        out.total_count =
            tx.exec_params1("SELECT count(*) FROM repayments WHERE loan_id = $1::bigint",
                            loan.value())[0]
                .as<int64_t>();
        if (items.size() > static_cast<size_t>(page.limit)) {
          items.resize(page.limit);
          out.next_after_id = items.back().id.value();
        }
        out.items = std::move(items);
        return out;
      });
}

absl::StatusOr<std::vector<LoanId>> PgLedgerStore::ListLoansToExpire(absl::Time now, size_t limit) {
  return RunIn<pqxx::read_transaction>(
      *pool_, "listing loans to expire",
      [&](pqxx::read_transaction& tx) -> absl::StatusOr<std::vector<LoanId>> {
        return ReadAll<LoanId>(
            tx.exec_params("SELECT id FROM loans WHERE status = 3"
                           " AND fundraising_deadline <= from_micros($1::bigint)"
                           " ORDER BY fundraising_deadline, id LIMIT $2::bigint",
                           absl::ToUnixMicros(now), static_cast<int64_t>(limit)),
            [](const pqxx::row& r) { return LoanId(r[0].as<int64_t>()); });
      });
}

absl::StatusOr<bool> PgLedgerStore::SetArrears(LoanId id, int64_t expected_repaid_local,
                                               bool delinquent, int32_t days_in_arrears,
                                               int64_t arrears_local_minor) {
  return RunIn<pqxx::work>(*pool_, "setting arrears",
                           [&](pqxx::work& tx) -> absl::StatusOr<bool> {
                             pqxx::result r = tx.exec_params(
                                 "UPDATE loans SET delinquent = $2, days_in_arrears = $3,"
                                 " arrears_local_minor = $4 WHERE id = $1::bigint"
                                 " AND repaid_local_minor = $5::bigint AND status IN (5, 9)",
                                 id.value(), delinquent, days_in_arrears, arrears_local_minor,
                                 expected_repaid_local);
                             return r.affected_rows() == 1;
                           });
}

namespace {

// A loan's schedule entries `e` as "YYYY-MM-DD=principal,..." by seq, read back by
// ParseScheduleLines.
constexpr char kScheduleLines[] =
    "string_agg(to_char(e.due_date, 'YYYY-MM-DD') || '=' || e.principal_minor, ',' ORDER BY e.seq)";

// "YYYY-MM-DD=principal,..." (kScheduleLines) back into entries.
absl::StatusOr<std::vector<ScheduleEntry>> ParseScheduleLines(const pqxx::field& field,
                                                              const LoanMoney& loan) {
  std::vector<ScheduleEntry> out;
  if (field.is_null()) return out;
  for (absl::string_view line : absl::StrSplit(field.as<std::string>(), ',')) {
    std::pair<absl::string_view, absl::string_view> parts = absl::StrSplit(line, '=');
    absl::CivilDay due;
    int64_t principal = 0;
    if (!absl::ParseCivilTime(parts.first, &due) || !absl::SimpleAtoi(parts.second, &principal)) {
      return absl::DataLossError(absl::StrCat("loan ", loan.id.value(), " has a bad schedule"));
    }
    out.push_back({due, Money::FromMinor(loan.local_currency, principal)});
  }
  return out;
}

}  // namespace

absl::StatusOr<std::vector<ActiveLoan>> PgLedgerStore::ListActiveLoans(LoanId after,
                                                                        size_t limit) {
  // Loan money 0..28, then the schedule. The page walks loans_active_id_idx (migration 0013).
  const std::string query = absl::StrCat(
      "SELECT ", kLoanMoneyColumns, ", s.lines FROM loans l"
      " LEFT JOIN LATERAL (SELECT ", kScheduleLines, " AS lines FROM loan_schedule_entries e"
      "   WHERE e.loan_id = l.id) s ON true"
      " WHERE l.status IN (5, 9) AND l.id > $1::bigint ORDER BY l.id LIMIT $2::bigint");
  return RunIn<pqxx::read_transaction>(
      *pool_, "listing active loans",
      [&](pqxx::read_transaction& tx) -> absl::StatusOr<std::vector<ActiveLoan>> {
        std::vector<ActiveLoan> out;
        for (const pqxx::row& r :
             tx.exec_params(query, after.value(), static_cast<int64_t>(limit))) {
          ActiveLoan a{.loan = ReadLoanMoney(r.slice(0, 29))};
          ML_ASSIGN_OR_RETURN(a.schedule, ParseScheduleLines(r[29], a.loan));
          out.push_back(std::move(a));
        }
        return out;
      });
}

absl::StatusOr<std::vector<RepaymentTarget>> PgLedgerStore::GetRepaymentTargets(
    const std::vector<LoanId>& loans) {
  if (loans.empty()) return std::vector<RepaymentTarget>{};
  // Loan money 0..28, the schedule, then the funder count.
  const std::string query = absl::StrCat(
      "SELECT ", kLoanMoneyColumns, ", s.lines, ", kFunderCountOfL,
      " FROM loans l"
      " LEFT JOIN LATERAL (SELECT ", kScheduleLines, " AS lines FROM loan_schedule_entries e"
      "   WHERE e.loan_id = l.id) s ON true"
      " WHERE l.id = ANY($1::bigint[]) AND l.status >= ",
      static_cast<int>(LoanStatus::kFundraising), " ORDER BY l.id");
  return RunIn<pg::OneStatementRead>(
      *pool_, "reading loans to repay",
      [&](pg::OneStatementRead& tx) -> absl::StatusOr<std::vector<RepaymentTarget>> {
        std::vector<RepaymentTarget> out;
        for (const pqxx::row& r : tx.exec_params(query, IdArray(loans))) {
          RepaymentTarget t{.loan = ReadLoanMoney(r.slice(0, 29)),
                            .funder_count = r[30].as<int64_t>()};
          ML_ASSIGN_OR_RETURN(t.schedule, ParseScheduleLines(r[29], t.loan));
          out.push_back(std::move(t));
        }
        return out;
      });
}

absl::StatusOr<std::vector<PortfolioPosition>> PgLedgerStore::ListPortfolio(AccountId funder,
                                                                            size_t limit) {
  // Funder columns 0..8, loan money 9..37, then name, country, sector and the schedule of loans
  // not yet closed (FUNDRAISING, FUNDED, PAYING_BACK).
  const std::string query = absl::StrCat(
      "SELECT ", kFunderColumns, ", ", kLoanMoneyColumns,
      ", coalesce(l.details->>'name', ''), l.country, l.sector, s.lines"
      " FROM loan_funders f JOIN loans l ON l.id = f.loan_id"
      " LEFT JOIN LATERAL (SELECT ", kScheduleLines, " AS lines FROM loan_schedule_entries e"
      "   WHERE e.loan_id = l.id AND l.status IN (3, 4, 5)) s ON true"
      " WHERE f.account_id = $1::bigint"
      " ORDER BY f.first_lent_at DESC, f.loan_id DESC LIMIT $2::bigint");
  return RunIn<pqxx::read_transaction>(
      *pool_, "reading a portfolio",
      [&](pqxx::read_transaction& tx) -> absl::StatusOr<std::vector<PortfolioPosition>> {
        std::vector<PortfolioPosition> out;
        for (const pqxx::row& r :
             tx.exec_params(query, funder.value(), static_cast<int64_t>(limit))) {
          PortfolioPosition p{.funder = ReadFunder(r.slice(0, 9)),
                              .loan = ReadLoanMoney(r.slice(9, 38)),
                              .loan_name = r[38].as<std::string>(),
                              .country = r[39].as<std::string>(),
                              .sector = r[40].as<int32_t>()};
          ML_ASSIGN_OR_RETURN(p.schedule, ParseScheduleLines(r[41], p.loan));
          out.push_back(std::move(p));
        }
        return out;
      });
}

absl::StatusOr<Page<Withdrawal>> PgLedgerStore::ListWithdrawals(
    std::optional<LenderId> lender, std::optional<WithdrawalState> state, const PageSpec& page) {
  ML_RETURN_IF_ERROR(CheckLimit(page));
  return RunIn<ReadTxn>(
      *pool_, "listing withdrawals", [&](ReadTxn& tx) -> absl::StatusOr<Page<Withdrawal>> {
        Params count_params, page_params;
        int64_t total = Count(tx,
                              absl::StrCat("SELECT count(*) FROM withdrawals WHERE TRUE",
                                           WithdrawalConditions(lender, state, count_params)),
                              count_params);
        std::string sql = absl::StrCat(
            "SELECT ", kWithdrawalColumns, " FROM withdrawals WHERE TRUE",
            WithdrawalConditions(lender, state, page_params),
            CursorCondition(page, "id", page_params), OrderAndLimit(page, "id", page_params));
        return MakePage(
            ReadAll<Withdrawal>(tx.exec_params(sql, page_params.dynamic()), ReadWithdrawal), page,
            total, [](const Withdrawal& w) { return w.id.value(); });
      });
}

namespace {

// Fills in the payload of every event by reference from its transfer and accounts: from `recent`
// (may be null) when it holds them, else read back (and the accounts read handed to `recent`, so
// that the next group crediting them by increment finds them there).
void RenderRefs(pqxx::transaction_base& tx, RecentTransfers* recent,
                std::vector<OutboxEvent>& events) {
  std::vector<TransferId> ids;
  for (const OutboxEvent& e : events) {
    if (e.ref.has_value()) ids.push_back(e.ref->transfer_id);
  }
  if (ids.empty()) return;
  if (recent != nullptr) {
    std::vector<std::optional<RecentTransfers::Hit>> hits;
    const auto kept = recent->FindAll(ids, &hits);
    ids.clear();
    size_t i = 0;
    for (OutboxEvent& e : events) {
      if (!e.ref.has_value()) continue;
      if (const std::optional<RecentTransfers::Hit>& hit = hits[i++]) {
        e = RenderTransferEvent(std::move(e), *hit->transfer, *hit->debit, *hit->credit);
      } else {
        ids.push_back(e.ref->transfer_id);
      }
    }
  }
  if (ids.empty()) return;
  absl::flat_hash_map<TransferId, Transfer> transfers = ReadTransfersById(tx, ids);
  std::vector<AccountId> account_ids;
  for (const auto& [id, t] : transfers) {
    account_ids.push_back(t.debit_account_id);
    account_ids.push_back(t.credit_account_id);
  }
  std::sort(account_ids.begin(), account_ids.end());
  account_ids.erase(std::unique(account_ids.begin(), account_ids.end()), account_ids.end());
  absl::flat_hash_map<AccountId, Account> accounts;
  for (const pqxx::row& r : tx.exec_params(
           absl::StrCat("SELECT ", kAccountColumns, " FROM accounts WHERE id = ANY($1::bigint[])"),
           IdArray(account_ids))) {
    Account a = ReadAccount(r);
    accounts.emplace(a.id, std::move(a));
  }
  if (recent != nullptr) {
    std::vector<Account> read;
    read.reserve(accounts.size());
    for (const auto& [id, a] : accounts) read.push_back(a);
    recent->RememberAccounts(read);
  }
  for (OutboxEvent& e : events) {
    if (!e.ref.has_value()) continue;
    auto t = transfers.find(e.ref->transfer_id);
    if (t == transfers.end()) {
      throw std::runtime_error(absl::StrCat("outbox event ", e.event_id, " names a missing transfer"));
    }
    e = RenderTransferEvent(std::move(e), t->second, accounts.at(t->second.debit_account_id),
                            accounts.at(t->second.credit_account_id));
  }
}

}  // namespace

absl::StatusOr<std::vector<OutboxEvent>> PgLedgerStore::FetchUnpublished(size_t limit) {
  return RunIn<pqxx::read_transaction>(
      *pool_, "reading unpublished events",
      [&](pqxx::read_transaction& tx) -> absl::StatusOr<std::vector<OutboxEvent>> {
        // The cursor as a parameter, not a subquery: knowing it, the planner reads the primary
        // key from there instead of scanning and sorting the whole (ever-growing) table.
        const int64_t published_through =
            tx.exec("SELECT last_sequence FROM outbox_relay_cursor WHERE id = 1")[0][0]
                .as<int64_t>();
        std::vector<OutboxEvent> events = ReadEvents(
            tx.exec_params(
                // Whole rows, up to about `limit` events: the rows whose events start before it.
                absl::StrCat("SELECT ", kEventColumns, " FROM (SELECT *, sum(event_count) OVER"
                             " (ORDER BY sequence) - event_count AS events_before"
                             " FROM (SELECT * FROM outbox_events WHERE sequence > $2::bigint",
                             " ORDER BY sequence LIMIT $1::bigint) unpublished) counted"
                             " WHERE events_before < $1::bigint ORDER BY sequence"),
                static_cast<int64_t>(limit), published_through));
        RenderRefs(tx, recent_, events);
        return events;
      });
}

absl::StatusOr<int64_t> PgLedgerStore::PublishedThrough() {
  return RunIn<pg::OneStatementRead>(
      *pool_, "reading the relay cursor", [&](pg::OneStatementRead& tx) -> absl::StatusOr<int64_t> {
        return tx.exec("SELECT last_sequence FROM outbox_relay_cursor WHERE id = 1")[0][0]
            .as<int64_t>();
      });
}

absl::Status PgLedgerStore::MarkPublished(const std::vector<int64_t>& sequences, absl::Time at) {
  if (sequences.empty()) return absl::OkStatus();
  const int64_t last = *std::max_element(sequences.begin(), sequences.end());
  return RunIn<pqxx::work>(*pool_, "marking events published", [&](pqxx::work& tx) {
    tx.exec_params(
        "UPDATE outbox_relay_cursor SET last_sequence = GREATEST(last_sequence, $1::bigint),"
        " updated_at = from_micros($2::bigint) WHERE id = 1",
        last, absl::ToUnixMicros(at));
    return absl::OkStatus();
  });
}

namespace {

// A NUMERIC expression as BIGINT, saturated: a corrupt ledger is reported, not an overflow.
std::string Clamp(std::string_view expr) {
  return absl::StrCat("GREATEST(LEAST(", AsAbsl(expr),
                      ", 9223372036854775807), -9223372036854775808)::bigint");
}

// $1 is the text[] of currencies in scope (empty: all).
std::string InScope(std::string_view column) {
  return absl::StrCat("(cardinality($1::text[]) = 0 OR ", AsAbsl(column), " = ANY($1::text[]))");
}

CurrencyTotals& TotalsOf(Currency currency, ReconcileData& data) {
  auto it = std::find_if(data.totals.begin(), data.totals.end(),
                         [&](const CurrencyTotals& t) { return t.currency == currency; });
  if (it != data.totals.end()) return *it;
  return data.totals.emplace_back(CurrencyTotals{.currency = currency});
}

// Totals of every currency in scope (a requested one without accounts too), ordered by code.
void ReconcileTotals(ReadTxn& tx, const std::vector<Currency>& currencies, const std::string& scope,
                     ReconcileData& data) {
  for (Currency c : currencies) TotalsOf(c, data);
  for (const pqxx::row& r : tx.exec_params(
           absl::StrCat("SELECT currency, count(*), ",
                        Clamp("sum(credits_posted::numeric - debits_posted)"),
                        " FROM accounts WHERE ", InScope("currency"), " GROUP BY currency"),
           scope)) {
    CurrencyTotals& totals = TotalsOf(CurrencyOf(r[0]), data);
    totals.account_count = r[1].as<int64_t>();
    totals.balance_sum = r[2].as<int64_t>();
    data.accounts_checked += totals.account_count;
  }
  for (const pqxx::row& r : tx.exec_params(
           absl::StrCat("SELECT currency, count(*), ",
                        Clamp("coalesce(sum(amount) FILTER (WHERE type IN (1, 3)), 0)"),
                        " FROM all_transfers WHERE ", InScope("currency"),
                        " GROUP BY currency"),
           scope)) {
    TotalsOf(CurrencyOf(r[0]), data).posted_volume = r[2].as<int64_t>();
    data.transfers_checked += r[1].as<int64_t>();
  }
  std::sort(data.totals.begin(), data.totals.end(),
            [](const CurrencyTotals& a, const CurrencyTotals& b) {
              return a.currency.code() < b.currency.code();
            });
}

void ReconcileSums(ReconcileData& data) {
  for (const CurrencyTotals& t : data.totals) {
    if (t.balance_sum == 0) continue;
    std::string code(t.currency.code());
    data.findings.push_back(
        {.kind = ReconcileFinding::Kind::kCurrencySumNonzero,
         .account_id = std::nullopt,
         .currency = code,
         .expected = 0,
         .actual = t.balance_sum,
         .detail = absl::StrCat(code, " balances sum to ", t.balance_sum, " minor units, not 0")});
  }
}

// Per account: posted totals from posted and post_pending transfers, pending totals from holds
// still pending; every account whose stored totals differ.
constexpr char kReplaySql[] =
    "WITH moves AS ("
    " SELECT debit_account_id AS account_id, amount AS debit, 0 AS credit FROM all_transfers"
    " WHERE type IN (1, 3)"
    " UNION ALL SELECT credit_account_id, 0, amount FROM all_transfers WHERE type IN (1, 3)),"
    " posted AS (SELECT account_id, sum(debit) AS dp, sum(credit) AS cp FROM moves"
    " GROUP BY account_id),"
    " reserved AS ("
    " SELECT t.debit_account_id AS account_id, t.amount AS debit, 0 AS credit"
    " FROM holds h JOIN transfers t ON t.id = h.hold_id WHERE h.state = 1"
    " UNION ALL SELECT t.credit_account_id, 0, t.amount"
    " FROM holds h JOIN transfers t ON t.id = h.hold_id WHERE h.state = 1),"
    " pending AS (SELECT account_id, sum(debit) AS dq, sum(credit) AS cq FROM reserved"
    " GROUP BY account_id),"
    " replay AS (SELECT a.*, coalesce(p.dp, 0) AS rdp, coalesce(p.cp, 0) AS rcp,"
    " coalesce(q.dq, 0) AS rdq, coalesce(q.cq, 0) AS rcq FROM accounts a"
    " LEFT JOIN posted p ON p.account_id = a.id LEFT JOIN pending q ON q.account_id = a.id)"
    " SELECT id, currency, debits_posted, credits_posted, debits_pending, credits_pending,"
    " rdp::text, rcp::text, rdq::text, rcq::text, ";

std::string ReplayDetail(const pqxx::row& r) {
  static constexpr const char* kTotals[] = {"debits_posted", "credits_posted", "debits_pending",
                                            "credits_pending"};
  std::vector<std::string> parts;
  for (int i = 0; i < 4; ++i) {
    std::string stored = r[2 + i].as<std::string>();
    std::string replayed = r[6 + i].as<std::string>();
    if (stored != replayed) {
      parts.push_back(
          absl::StrCat(kTotals[i], " is ", stored, " but its transfers give ", replayed));
    }
  }
  return absl::StrJoin(parts, "; ");
}

void ReconcileReplay(ReadTxn& tx, const std::string& scope, ReconcileData& data) {
  std::string sql =
      absl::StrCat(kReplaySql, Clamp("rcp - rdp"),
                   ", credits_posted - debits_posted FROM replay WHERE ", InScope("currency"),
                   " AND (debits_posted <> rdp OR credits_posted <> rcp OR debits_pending <> rdq"
                   " OR credits_pending <> rcq) ORDER BY id");
  for (const pqxx::row& r : tx.exec_params(sql, scope)) {
    data.findings.push_back({.kind = ReconcileFinding::Kind::kBalanceReplayMismatch,
                             .account_id = AccountId(r[0].as<int64_t>()),
                             .currency = r[1].as<std::string>(),
                             .expected = r[10].as<int64_t>(),
                             .actual = r[11].as<int64_t>(),
                             .detail = ReplayDetail(r)});
  }
}

// Accounts past their flag (the CHECK constraints should make this impossible).
void ReconcileConstrained(ReadTxn& tx, const std::string& scope, ReconcileData& data) {
  std::string sql =
      absl::StrCat("SELECT id, currency, debits_must_not_exceed_credits, ",
                   Clamp("credits_posted::numeric - debits_posted - debits_pending"), ", ",
                   Clamp("debits_posted::numeric - credits_posted - credits_pending"),
                   " FROM accounts WHERE ", InScope("currency"),
                   " AND ((debits_must_not_exceed_credits"
                   " AND debits_posted::numeric + debits_pending > credits_posted)"
                   " OR (credits_must_not_exceed_debits"
                   " AND credits_posted::numeric + credits_pending > debits_posted)) ORDER BY id");
  for (const pqxx::row& r : tx.exec_params(sql, scope)) {
    bool debit_side = r[2].as<bool>();
    data.findings.push_back({.kind = ReconcileFinding::Kind::kConstrainedAccountNegative,
                             .account_id = AccountId(r[0].as<int64_t>()),
                             .currency = r[1].as<std::string>(),
                             .expected = 0,
                             .actual = debit_side ? r[3].as<int64_t>() : r[4].as<int64_t>(),
                             .detail = debit_side ? "debits (posted + pending) exceed credits"
                                                  : "credits (posted + pending) exceed debits"});
  }
}

// Every transfer is listed exactly once in the history of each of its two accounts, and nothing
// else is listed (migration 0008): statements read the history, reconciliation the transfers.
void ReconcileHistory(ReadTxn& tx, const std::string& scope, ReconcileData& data) {
  std::string sql = absl::StrCat(
      "WITH listed AS (SELECT e.account_id, x.id FROM account_entries e"
      " CROSS JOIN LATERAL unnest(e.transfer_ids) AS x(id)"
      // A repayment pack's credit is in its funder's history when the funder is one of the
      // loan's (repayment_credit_ids, migration 0010).
      " UNION ALL SELECT u.c, p.first_id + u.i - 1 FROM transfer_packs p"
      " CROSS JOIN LATERAL unnest(p.credit_account_ids) WITH ORDINALITY AS u(c, i)"
      " WHERE p.repayment_id IS NOT NULL AND EXISTS (SELECT 1 FROM loan_funders f"
      " JOIN repayments r ON r.loan_id = f.loan_id AND r.id = p.repayment_id"
      " WHERE f.loan_id = p.loan_id AND f.account_id = u.c)),"
      " owed AS (SELECT debit_account_id AS account_id, id FROM all_transfers"
      " UNION ALL SELECT credit_account_id, id FROM all_transfers),"
      " wrong AS ((SELECT * FROM listed EXCEPT ALL SELECT * FROM owed)"
      " UNION ALL (SELECT * FROM owed EXCEPT ALL SELECT * FROM listed))"
      " SELECT w.account_id, coalesce(a.currency, ''), count(*), min(w.id) FROM wrong w"
      " LEFT JOIN accounts a ON a.id = w.account_id WHERE a.id IS NULL OR ",
      InScope("a.currency"), " GROUP BY w.account_id, a.currency ORDER BY w.account_id");
  for (const pqxx::row& r : tx.exec_params(sql, scope)) {
    data.findings.push_back(
        {.kind = ReconcileFinding::Kind::kAccountHistoryMismatch,
         .account_id = AccountId(r[0].as<int64_t>()),
         .currency = r[1].as<std::string>(),
         .count = r[2].as<int64_t>(),
         .detail = absl::StrCat(r[2].as<int64_t>(),
                                " entries of the account's history disagree with its transfers,"
                                " the first at transfer ",
                                r[3].as<int64_t>())});
  }
}

void ReconcileOutbox(ReadTxn& tx, absl::Time deadline, ReconcileData& data) {
  int64_t late = tx.exec_params(
                       "SELECT coalesce(sum(event_count), 0) FROM outbox_events WHERE sequence >"
                       " (SELECT last_sequence FROM outbox_relay_cursor WHERE id = 1)"
                       " AND created_at < from_micros($1::bigint)",
                       absl::ToUnixMicros(deadline))[0][0]
                     .as<int64_t>();
  if (late == 0) return;
  data.findings.push_back({.kind = ReconcileFinding::Kind::kOutboxUnpublished,
                           .account_id = std::nullopt,
                           .currency = "",
                           .expected = 0,
                           .actual = 0,
                           .count = late,
                           .detail = absl::StrCat(late, " outbox events created before ",
                                                  absl::FormatTime(deadline), " are unpublished")});
}

}  // namespace

absl::StatusOr<ReconcileData> PgLedgerStore::Reconcile(const std::vector<Currency>& currencies,
                                                       bool replay_balances,
                                                       absl::Time outbox_deadline) {
  ArrayLiteral codes;
  for (const Currency& c : currencies) codes.Text(c.code());
  std::string scope = std::move(codes).Take();
  // One REPEATABLE READ snapshot for every check.
  return RunIn<ReadTxn>(*pool_, "reconciling the ledger",
                        [&](ReadTxn& tx) -> absl::StatusOr<ReconcileData> {
                          ReconcileData data;
                          ReconcileTotals(tx, currencies, scope, data);
                          if (replay_balances) {
                            ReconcileReplay(tx, scope, data);
                            ReconcileHistory(tx, scope, data);
                          }
                          ReconcileConstrained(tx, scope, data);
                          ReconcileSums(data);
                          ReconcileOutbox(tx, outbox_deadline, data);
                          return data;
                        });
}

}  // namespace microlend::lending
