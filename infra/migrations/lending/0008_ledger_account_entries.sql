-- Per-account history packed per commit, instead of two B-tree entries per transfer (ADR 0007).
--
-- A transfer used to be indexed twice by account (transfers_debit_idx, transfers_credit_idx):
-- with its primary key and the statement-level reference check, those indexes were most of the
-- cost of writing a transfer (measured: 18,500 transfers COPY in ~150 ms with them, ~45 ms
-- without). Now each commit writes, for every account it touched, one row listing the ids of
-- that commit's transfers on the account. A group commit of 18,500 transfers over 1,000 wallets
-- writes 1,000 such rows. Statements and account-scoped listings read an account's rows by its
-- primary key and fetch the transfers by theirs.
--
-- Written by the committer in the transaction of the transfers it lists (PgLedgerTxn::Write).
-- Reconciliation checks that every transfer is listed exactly once under each of its two accounts
-- and nowhere else.

CREATE TABLE account_entries (
  account_id        BIGINT   NOT NULL,  -- accounts (id)
  first_transfer_id BIGINT   NOT NULL,  -- transfer_ids[1]: unique per account, the row's key
  transfer_ids      BIGINT[] NOT NULL,  -- ascending; each a transfer debiting or crediting it
  PRIMARY KEY (account_id, first_transfer_id),
  CONSTRAINT account_entries_first CHECK (transfer_ids[1] = first_transfer_id),
  CONSTRAINT account_entries_flat CHECK (array_ndims(transfer_ids) = 1)
);

-- The history of what already exists, one row per account.
INSERT INTO account_entries (account_id, first_transfer_id, transfer_ids)
  SELECT account_id, min(id), array_agg(id ORDER BY id)
    FROM (SELECT debit_account_id AS account_id, id FROM transfers
          UNION ALL
          SELECT credit_account_id, id FROM transfers) sides
   GROUP BY account_id;

-- Entries are as immutable as the transfers they list.
CREATE TRIGGER account_entries_immutable BEFORE UPDATE OR DELETE ON account_entries
  FOR EACH ROW EXECUTE FUNCTION transfers_refuse_change();
CREATE TRIGGER account_entries_no_truncate BEFORE TRUNCATE ON account_entries
  FOR EACH STATEMENT EXECUTE FUNCTION transfers_refuse_change();

DROP INDEX transfers_debit_idx;
DROP INDEX transfers_credit_idx;

-- The reference check, per distinct (account, currency) instead of per transfer: a group commit
-- names a few thousand accounts for tens of thousands of transfers.
CREATE OR REPLACE FUNCTION transfers_check_references() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  bad BIGINT;
BEGIN
  SELECT s.account_id INTO bad
    FROM (SELECT debit_account_id AS account_id, currency FROM inserted
          UNION
          SELECT credit_account_id, currency FROM inserted) s
   WHERE NOT EXISTS (SELECT 1 FROM accounts a WHERE a.id = s.account_id AND a.currency = s.currency)
   ORDER BY s.account_id LIMIT 1;
  IF FOUND THEN
    SELECT min(n.id) INTO bad FROM inserted n WHERE n.debit_account_id = bad OR n.credit_account_id = bad;
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

-- Outbox events are packed too, and the committer's are written by reference (ADR 0007). A row
-- holds event_count events of one commit, in order:
--   encoding 0: JSON. One event (payload is its JSON), or event_count > 1 lines
--               "<event_id>\t<kind>\t<account_id or empty>\t<JSON payload>";
--   encoding 1: transfer_committed events by reference, lines "<transfer id> <debit balance>
--               <debit available> <credit balance> <credit available>" (minor units). The
--               relay renders each event's JSON from its immutable transfer and accounts and
--               publishes it with event_id "transfer-<transfer id>".
-- A commit of 20,000 transfers used to write ~10 MB of event JSON; now it writes ~800 kB.
ALTER TABLE outbox_events
  ADD COLUMN event_count INT NOT NULL DEFAULT 1 CHECK (event_count >= 1),
  ADD COLUMN encoding SMALLINT NOT NULL DEFAULT 0 CHECK (encoding IN (0, 1));

-- Kept uncompressed: a group commit writes megabytes of event lines and batch responses, and
-- compressing them (pglz) cost more than writing them; nothing reads them often.
ALTER TABLE outbox_events ALTER COLUMN payload SET STORAGE EXTERNAL;
ALTER TABLE idempotency_records ALTER COLUMN response SET STORAGE EXTERNAL;

-- Room on each page for updated row versions, so that updating balances (and funders' repaid
-- totals) is a HOT update, with no new index entries: a repayment to 10,000 lenders updates
-- 10,000 wallets and 10,000 funder rows. Measured on 10,000 wallets: 130-150 ms with full pages
-- (almost no HOT updates), 53-78 ms at fillfactor 50 (all HOT). Affects pages written from now
-- on; an existing database gets it for old rows at its next VACUUM FULL.
ALTER TABLE accounts SET (fillfactor = 50);
ALTER TABLE loan_funders SET (fillfactor = 50);
