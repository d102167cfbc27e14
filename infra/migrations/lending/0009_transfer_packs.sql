-- Runs of plain transfers stored as one row each (ADR 0010).
--
-- A row of `transfers` costs PostgreSQL ~5 us to write (20 columns, the primary key, the BRIN
-- and partial indexes, the statement-level reference check): measured ~100 ms for 20,000 in one
-- COPY, more than half of a 20,000-transfer group commit. The committer now writes each run of
-- consecutive plain transfers of one batch (ids and batch positions consecutive, posted, no hold,
-- no loan, one currency, one commit time) as one `transfer_packs` row of at most 32 transfers,
-- with the per-transfer fields as arrays: the same 20,000 transfers COPY in ~10 ms. Packs stay
-- under PostgreSQL's 2 kB TOAST threshold, so reading one element touches only the row.
--
-- A packed transfer is the same immutable transfer as a row: it keeps its id (first_id + its
-- position), its batch position and every field. Readers see both through transfer_by_id,
-- transfers_between and all_transfers below; packed_transfer gives a pack's element as a
-- `transfers` row. account_entries lists packed ids like any other.
--
-- Ids: a pack's ids are drawn from transfer_id_seq by the committer, so packs never overlap one
-- another; a client-chosen id could fall inside one, so both insert checks refuse an id held by
-- the other table, and the store serializes client-chosen ids with pack writers (an advisory
-- lock) so that the checks see each other's commits.

CREATE TABLE transfer_packs (
  first_id             BIGINT      PRIMARY KEY CHECK (first_id > 0),
  last_id              BIGINT      NOT NULL,
  currency             CHAR(3)     NOT NULL,
  created_at           TIMESTAMPTZ NOT NULL,
  batch_request_id     TEXT        NOT NULL DEFAULT '',
  first_batch_index    INT         NOT NULL DEFAULT 0,
  debit_account_ids    BIGINT[]    NOT NULL,
  credit_account_ids   BIGINT[]    NOT NULL,
  amounts              BIGINT[]    NOT NULL,
  codes                SMALLINT[]  NOT NULL,
  -- NULL when no transfer of the pack has one (an element may be NULL otherwise).
  order_ids            BIGINT[],
  repayment_ids        BIGINT[],
  withdrawal_ids       BIGINT[],
  campaign_ids         BIGINT[],
  -- NULL when every one is empty.
  external_payment_ids TEXT[],
  memos                TEXT[],
  CONSTRAINT transfer_packs_size CHECK (last_id >= first_id AND last_id - first_id < 32),
  CONSTRAINT transfer_packs_shape CHECK (
    array_ndims(debit_account_ids) = 1 AND array_lower(debit_account_ids, 1) = 1
    AND cardinality(debit_account_ids) = last_id - first_id + 1
    AND array_ndims(credit_account_ids) = 1 AND array_lower(credit_account_ids, 1) = 1
    AND cardinality(credit_account_ids) = last_id - first_id + 1
    AND array_ndims(amounts) = 1 AND array_lower(amounts, 1) = 1
    AND cardinality(amounts) = last_id - first_id + 1
    AND array_ndims(codes) = 1 AND array_lower(codes, 1) = 1
    AND cardinality(codes) = last_id - first_id + 1
    AND (order_ids IS NULL OR (array_lower(order_ids, 1) = 1
         AND cardinality(order_ids) = last_id - first_id + 1))
    AND (repayment_ids IS NULL OR (array_lower(repayment_ids, 1) = 1
         AND cardinality(repayment_ids) = last_id - first_id + 1))
    AND (withdrawal_ids IS NULL OR (array_lower(withdrawal_ids, 1) = 1
         AND cardinality(withdrawal_ids) = last_id - first_id + 1))
    AND (campaign_ids IS NULL OR (array_lower(campaign_ids, 1) = 1
         AND cardinality(campaign_ids) = last_id - first_id + 1))
    AND (external_payment_ids IS NULL OR (array_lower(external_payment_ids, 1) = 1
         AND cardinality(external_payment_ids) = last_id - first_id + 1))
    AND (memos IS NULL OR (array_lower(memos, 1) = 1
         AND cardinality(memos) = last_id - first_id + 1))),
  -- 0 < ALL(...) is NULL, so passes, when an element is NULL: array_position rules those out.
  CONSTRAINT transfer_packs_amounts CHECK (0 < ALL (amounts) AND array_position(amounts, NULL) IS NULL),
  CONSTRAINT transfer_packs_codes CHECK (0 < ALL (codes) AND array_position(codes, NULL) IS NULL),
  CONSTRAINT transfer_packs_accounts CHECK (array_position(debit_account_ids, NULL) IS NULL
                                            AND array_position(credit_account_ids, NULL) IS NULL)
);
CREATE INDEX transfer_packs_created_at_idx ON transfer_packs USING brin (created_at);

CREATE TRIGGER transfer_packs_immutable BEFORE UPDATE OR DELETE ON transfer_packs
  FOR EACH ROW EXECUTE FUNCTION transfers_refuse_change();
CREATE TRIGGER transfer_packs_no_truncate BEFORE TRUNCATE ON transfer_packs
  FOR EACH STATEMENT EXECUTE FUNCTION transfers_refuse_change();

-- The pack's element at `tid` as a row of `transfers` (NULL fields when tid is outside it).
CREATE FUNCTION packed_transfer(p transfer_packs, tid BIGINT) RETURNS transfers
  LANGUAGE sql IMMUTABLE PARALLEL SAFE
  RETURN ROW(tid, p.debit_account_ids[tid - p.first_id + 1],
             p.credit_account_ids[tid - p.first_id + 1], p.amounts[tid - p.first_id + 1],
             p.currency, p.codes[tid - p.first_id + 1], 1, NULL, 0, NULL, NULL,
             p.order_ids[tid - p.first_id + 1], p.repayment_ids[tid - p.first_id + 1],
             p.withdrawal_ids[tid - p.first_id + 1], p.campaign_ids[tid - p.first_id + 1],
             coalesce(p.external_payment_ids[tid - p.first_id + 1], ''),
             coalesce(p.memos[tid - p.first_id + 1], ''), p.created_at, p.batch_request_id,
             p.first_batch_index + (tid - p.first_id))::transfers;

-- The transfer `tid`, stored as a row or in a pack (no row when there is none). Two primary-key
-- probes: a pack spans at most 32 ids, so the one that may hold tid starts within 31 below it.
CREATE FUNCTION transfer_by_id(tid BIGINT) RETURNS SETOF transfers
  LANGUAGE sql STABLE PARALLEL SAFE
  ROWS 1
  AS $$
    SELECT * FROM transfers WHERE id = tid
    UNION ALL
    SELECT e.* FROM transfer_packs p CROSS JOIN LATERAL packed_transfer(p, tid) e
     WHERE p.first_id BETWEEN tid - 31 AND tid AND p.last_id >= tid
  $$;

-- Every transfer with an id in [lo, hi], rows and packed (in no particular order).
CREATE FUNCTION transfers_between(lo BIGINT, hi BIGINT) RETURNS SETOF transfers
  LANGUAGE sql STABLE PARALLEL SAFE
  AS $$
    SELECT * FROM transfers WHERE id BETWEEN lo AND hi
    UNION ALL
    SELECT e.* FROM transfer_packs p
      CROSS JOIN LATERAL generate_series(greatest(p.first_id, lo), least(p.last_id, hi)) AS g(tid)
      CROSS JOIN LATERAL packed_transfer(p, g.tid) e
     WHERE p.first_id BETWEEN lo - 31 AND hi AND p.last_id >= lo
  $$;

-- Every transfer, rows and packed: for whole-ledger scans (reconciliation, unfiltered listings).
CREATE VIEW all_transfers AS
  SELECT * FROM transfers
  UNION ALL
  SELECT e.* FROM transfer_packs p
    CROSS JOIN LATERAL generate_series(p.first_id, p.last_id) AS g(tid)
    CROSS JOIN LATERAL packed_transfer(p, g.tid) e;

-- A pack's transfers name existing accounts of its currency, two different ones each, and its
-- ids are held by no transfer row and no other pack.
CREATE FUNCTION transfer_packs_check() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  bad BIGINT;
BEGIN
  SELECT s.account_id INTO bad
    FROM (SELECT DISTINCT u.account_id, n.currency FROM inserted n
            CROSS JOIN LATERAL unnest(n.debit_account_ids || n.credit_account_ids) AS u(account_id)) s
   WHERE NOT EXISTS (SELECT 1 FROM accounts a WHERE a.id = s.account_id AND a.currency = s.currency)
   ORDER BY s.account_id LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'a transfer pack names account %, which does not exist in its currency', bad
      USING ERRCODE = 'foreign_key_violation';
  END IF;
  SELECT n.first_id + u.i - 1 INTO bad FROM inserted n
    CROSS JOIN LATERAL unnest(n.debit_account_ids, n.credit_account_ids) WITH ORDINALITY AS u(d, c, i)
   WHERE u.d = u.c ORDER BY 1 LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'packed transfer % debits and credits the same account', bad
      USING ERRCODE = 'check_violation';
  END IF;
  -- Probes by primary key for each pack. EXECUTE plans it afresh: a plan cached while the table
  -- was small scans the whole table for every pack once it has grown.
  EXECUTE 'SELECT n.first_id FROM inserted n'
    ' CROSS JOIN LATERAL (SELECT 1 FROM transfers t WHERE t.id BETWEEN n.first_id AND n.last_id'
    '   UNION ALL SELECT 1 FROM transfer_packs q'
    '   WHERE q.first_id BETWEEN n.first_id - 31 AND n.last_id'
    '     AND q.last_id >= n.first_id AND q.first_id <> n.first_id LIMIT 1) clash'
    ' ORDER BY 1 LIMIT 1' INTO bad;
  IF bad IS NOT NULL THEN
    RAISE EXCEPTION 'the transfer pack at % holds ids another transfer has', bad
      USING ERRCODE = 'unique_violation';
  END IF;
  RETURN NULL;
END
$$;
CREATE TRIGGER transfer_packs_references AFTER INSERT ON transfer_packs
  REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT
  EXECUTE FUNCTION transfer_packs_check();

-- A transfer row's id is not one a pack holds: a trigger of its own beside transfers_references
-- (migration 0008), which it leaves as it is. Both read the statement's one transition table.
CREATE FUNCTION transfers_check_not_packed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  bad BIGINT;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM transfer_packs LIMIT 1) THEN
    RETURN NULL;
  END IF;
  -- Planned afresh for the same reason as in transfer_packs_check.
  EXECUTE 'SELECT n.id FROM inserted n'
    ' CROSS JOIN LATERAL (SELECT 1 FROM transfer_packs p'
    '   WHERE p.first_id BETWEEN n.id - 31 AND n.id AND p.last_id >= n.id LIMIT 1) clash'
    ' ORDER BY n.id LIMIT 1' INTO bad;
  IF bad IS NOT NULL THEN
    RAISE EXCEPTION 'transfer % has the id of a packed transfer', bad
      USING ERRCODE = 'unique_violation';
  END IF;
  RETURN NULL;
END
$$;
CREATE TRIGGER transfers_not_packed AFTER INSERT ON transfers
  REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT
  EXECUTE FUNCTION transfers_check_not_packed();
