-- The double-entry ledger: accounts with their running totals, immutable transfers, holds
-- (pending transfers) and their resolution, lender withdrawals, and the transactional outbox.
-- Written by services/lending/store/pg_ledger_store.cc; the rules live in the core
-- (LedgerEngine), and the constraints below are the last line of defence behind it.
-- Amounts are BIGINT minor units of the row's currency; times are TIMESTAMPTZ (microseconds).
--
-- References from transfers and holds are checked once per statement over its transition table
-- (transfers_references, holds_references), not by per-row FOREIGN KEYs: a foreign key costs a
-- trigger call and a row lock per row, which was more than half of inserting 10,000 transfers. The
-- set-based checks also cover what a foreign key cannot: a transfer's currency is its accounts'
-- and a resolution matches its hold. What they reference is never deleted or re-keyed (refused
-- below), so a reference checked at insert stays valid.

CREATE SEQUENCE account_id_seq CACHE 1;
CREATE SEQUENCE transfer_id_seq CACHE 1;
CREATE SEQUENCE withdrawal_id_seq CACHE 1;

-- Microseconds since the Unix epoch <-> TIMESTAMPTZ, exact both ways (the store's wire form).
CREATE FUNCTION to_micros(ts TIMESTAMPTZ) RETURNS BIGINT
  LANGUAGE sql STABLE PARALLEL SAFE
  RETURN (extract(epoch FROM ts) * 1000000)::BIGINT;
CREATE FUNCTION from_micros(us BIGINT) RETURNS TIMESTAMPTZ
  LANGUAGE sql STABLE PARALLEL SAFE
  RETURN TIMESTAMPTZ 'epoch' + us * INTERVAL '1 microsecond';

CREATE TABLE accounts (
  id                             BIGINT      PRIMARY KEY CHECK (id > 0),
  owner_type                     SMALLINT    NOT NULL CHECK (owner_type > 0),
  owner_id                       TEXT        NOT NULL,
  kind                           SMALLINT    NOT NULL CHECK (kind > 0),
  currency                       CHAR(3)     NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
  debits_must_not_exceed_credits BOOLEAN     NOT NULL DEFAULT false,
  credits_must_not_exceed_debits BOOLEAN     NOT NULL DEFAULT false,
  debits_posted                  BIGINT      NOT NULL DEFAULT 0 CHECK (debits_posted >= 0),
  credits_posted                 BIGINT      NOT NULL DEFAULT 0 CHECK (credits_posted >= 0),
  debits_pending                 BIGINT      NOT NULL DEFAULT 0 CHECK (debits_pending >= 0),
  credits_pending                BIGINT      NOT NULL DEFAULT 0 CHECK (credits_pending >= 0),
  memo                           TEXT        NOT NULL DEFAULT '',
  created_at                     TIMESTAMPTZ NOT NULL DEFAULT now(),
  CONSTRAINT accounts_owner_key UNIQUE (owner_type, owner_id, kind, currency),
  CONSTRAINT accounts_one_flag
    CHECK (NOT (debits_must_not_exceed_credits AND credits_must_not_exceed_debits)),
  -- NUMERIC so that a sum past int64 is a violation, not an arithmetic error.
  CONSTRAINT accounts_debits_within_credits
    CHECK (NOT debits_must_not_exceed_credits
           OR debits_posted::NUMERIC + debits_pending <= credits_posted),
  CONSTRAINT accounts_credits_within_debits
    CHECK (NOT credits_must_not_exceed_debits
           OR credits_posted::NUMERIC + credits_pending <= debits_posted)
);

-- type: 1 posted, 2 pending (a hold), 3 post_pending, 4 void_pending (TransferType).
CREATE TABLE transfers (
  id                  BIGINT      PRIMARY KEY CHECK (id > 0),
  debit_account_id    BIGINT      NOT NULL,  -- accounts (id), see transfers_references
  credit_account_id   BIGINT      NOT NULL,
  amount              BIGINT      NOT NULL CHECK (amount > 0),
  currency            CHAR(3)     NOT NULL,
  code                SMALLINT    NOT NULL CHECK (code > 0),
  type                SMALLINT    NOT NULL CHECK (type BETWEEN 1 AND 4),
  pending_id          BIGINT,              -- the hold (type 2) this posts or voids
  timeout_ms          BIGINT      NOT NULL DEFAULT 0 CHECK (timeout_ms >= 0),
  expires_at          TIMESTAMPTZ,
  loan_id             BIGINT,
  order_id            BIGINT,
  repayment_id        BIGINT,
  withdrawal_id       BIGINT,
  campaign_id         BIGINT,
  external_payment_id TEXT        NOT NULL DEFAULT '',
  memo                TEXT        NOT NULL DEFAULT '',
  created_at          TIMESTAMPTZ NOT NULL,
  batch_request_id    TEXT        NOT NULL DEFAULT '',
  batch_index         INT         NOT NULL DEFAULT 0,
  CONSTRAINT transfers_two_accounts CHECK (debit_account_id <> credit_account_id),
  CONSTRAINT transfers_pending_id_iff_resolution CHECK ((type IN (3, 4)) = (pending_id IS NOT NULL))
);
-- A hold resolves at most once, whichever process tries.
CREATE UNIQUE INDEX transfers_pending_id_key ON transfers (pending_id) WHERE pending_id IS NOT NULL;
CREATE INDEX transfers_debit_idx ON transfers (debit_account_id, id);
CREATE INDEX transfers_credit_idx ON transfers (credit_account_id, id);
CREATE INDEX transfers_loan_idx ON transfers (loan_id, id) WHERE loan_id IS NOT NULL;
-- BRIN: transfers arrive in time order, and a block range index costs next to nothing to keep.
CREATE INDEX transfers_created_at_idx ON transfers USING brin (created_at);

-- A mistake is corrected by a new transfer, never by an update.
CREATE FUNCTION transfers_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'transfers are immutable: % refused; correct a transfer with a new one', TG_OP
    USING ERRCODE = 'restrict_violation';
END
$$;
CREATE TRIGGER transfers_immutable BEFORE UPDATE OR DELETE ON transfers
  FOR EACH ROW EXECUTE FUNCTION transfers_refuse_change();
CREATE TRIGGER transfers_no_truncate BEFORE TRUNCATE ON transfers
  FOR EACH STATEMENT EXECUTE FUNCTION transfers_refuse_change();

-- Both accounts exist in the transfer's currency; a resolution (post or void) names a hold with
-- the same accounts and does not exceed it.
CREATE FUNCTION transfers_check_references() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  bad BIGINT;
BEGIN
  SELECT n.id INTO bad FROM inserted n
    WHERE NOT EXISTS (SELECT 1 FROM accounts a
                      WHERE a.id = n.debit_account_id AND a.currency = n.currency)
       OR NOT EXISTS (SELECT 1 FROM accounts a
                      WHERE a.id = n.credit_account_id AND a.currency = n.currency)
    ORDER BY n.id LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'transfer % names an account that does not exist in its currency', bad
      USING ERRCODE = 'foreign_key_violation';
  END IF;
  SELECT n.id INTO bad FROM inserted n LEFT JOIN transfers h ON h.id = n.pending_id
    WHERE n.pending_id IS NOT NULL
      AND (h.id IS NULL OR h.type <> 2 OR h.debit_account_id <> n.debit_account_id
           OR h.credit_account_id <> n.credit_account_id OR n.amount > h.amount)
    ORDER BY n.id LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'transfer % resolves no matching hold', bad
      USING ERRCODE = 'foreign_key_violation';
  END IF;
  RETURN NULL;
END
$$;
CREATE TRIGGER transfers_references AFTER INSERT ON transfers
  REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT
  EXECUTE FUNCTION transfers_check_references();

-- Accounts are never deleted, re-keyed or moved to another currency.
CREATE FUNCTION accounts_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'UPDATE' AND NEW.id = OLD.id AND NEW.currency = OLD.currency THEN
    RETURN NEW;
  END IF;
  RAISE EXCEPTION 'accounts are never deleted, re-keyed or re-denominated: % refused', TG_OP
    USING ERRCODE = 'restrict_violation';
END
$$;
CREATE TRIGGER accounts_no_delete BEFORE DELETE OR TRUNCATE ON accounts
  FOR EACH STATEMENT EXECUTE FUNCTION accounts_refuse_change();
-- Fires only for an UPDATE that names id or currency, so not for the totals of every commit.
CREATE TRIGGER accounts_keep_key BEFORE UPDATE OF id, currency ON accounts
  FOR EACH ROW EXECUTE FUNCTION accounts_refuse_change();

-- state: 1 pending, 2 posted, 3 voided, 4 expired (HoldState). Changes once, from pending.
CREATE TABLE holds (
  hold_id       BIGINT      PRIMARY KEY,  -- transfers (id) of type 2, see holds_references
  state         SMALLINT    NOT NULL CHECK (state BETWEEN 1 AND 4),
  posted_amount BIGINT      NOT NULL DEFAULT 0 CHECK (posted_amount >= 0),
  resolved_by   BIGINT,                   -- the transfer that posted or voided it
  expires_at    TIMESTAMPTZ
);
CREATE INDEX holds_expiry_idx ON holds (expires_at) WHERE state = 1;

CREATE FUNCTION holds_check_references() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  bad BIGINT;
BEGIN
  SELECT n.hold_id INTO bad FROM changed n
    LEFT JOIN transfers h ON h.id = n.hold_id
    LEFT JOIN transfers r ON r.id = n.resolved_by
    WHERE h.id IS NULL OR h.type <> 2
       OR (n.resolved_by IS NOT NULL AND (r.id IS NULL OR r.pending_id IS DISTINCT FROM n.hold_id))
    ORDER BY n.hold_id LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'hold % is not a pending transfer, or is resolved by a transfer of another', bad
      USING ERRCODE = 'foreign_key_violation';
  END IF;
  RETURN NULL;
END
$$;
CREATE TRIGGER holds_references_insert AFTER INSERT ON holds
  REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION holds_check_references();
CREATE TRIGGER holds_references_update AFTER UPDATE ON holds
  REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION holds_check_references();

-- state: 1 requested, 2 approved, 3 paid, 4 rejected, 5 cancelled (WithdrawalState).
CREATE TABLE withdrawals (
  id                  BIGINT      PRIMARY KEY CHECK (id > 0),
  lender_id           BIGINT      NOT NULL,
  wallet_account_id   BIGINT      NOT NULL REFERENCES accounts (id),
  amount              BIGINT      NOT NULL CHECK (amount > 0),
  currency            CHAR(3)     NOT NULL,
  state               SMALLINT    NOT NULL CHECK (state BETWEEN 1 AND 5),
  hold_id             BIGINT      NOT NULL REFERENCES transfers (id),
  external_payment_id TEXT        NOT NULL DEFAULT '',
  reason              TEXT        NOT NULL DEFAULT '',
  destination         TEXT        NOT NULL DEFAULT '',  -- where ops pay it (lender's words)
  created_at          TIMESTAMPTZ NOT NULL,
  updated_at          TIMESTAMPTZ NOT NULL
);
CREATE INDEX withdrawals_lender_idx ON withdrawals (lender_id, id);

-- Written in the same transaction as the money movement; relayed to Redis Streams at least once.
-- event_id is "transfer-<transfer id>", unique by the transfers primary key, so it carries no
-- index of its own (one fewer index write per event on the commit path).
CREATE TABLE outbox_events (
  sequence     BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  event_id     TEXT        NOT NULL,
  kind         TEXT        NOT NULL,
  account_id   BIGINT,
  payload      TEXT        NOT NULL,  -- JSON
  created_at   TIMESTAMPTZ NOT NULL
);

-- The relay's position: every event with sequence <= last_sequence has been published. One row,
-- updated once per relayed batch, instead of an UPDATE per event. Sound because a single
-- committer per lending process writes outbox rows, so sequences commit in order (running
-- several lending processes needs a per-process outbox or a commit-horizon; see ARCHITECTURE.md).
CREATE TABLE outbox_relay_cursor (
  id            SMALLINT    PRIMARY KEY CHECK (id = 1),
  last_sequence BIGINT      NOT NULL,
  updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
INSERT INTO outbox_relay_cursor (id, last_sequence) VALUES (1, 0);
