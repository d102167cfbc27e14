-- A repayment to thousands of lenders at one write per lender (ADR 0011).
--
-- Measured before this migration, one repayment split to 10,000 lenders cost PostgreSQL about
-- 230 ms: reading 10,000 funder rows, locking 10,000 wallets, 10,000 transfer rows, 10,000
-- account_entries rows, 10,000 wallet updates and 10,000 funder-row updates. Now the wallets
-- are the only thing written per lender (credited by increment, without being locked first):
--
-- 1. loan_funder_books: a disbursed loan's funders in one row, in account order, with each
--    one's share and what repayments credited it so far. Written when the loan is disbursed
--    (from loan_funders, whose shares no longer change), read and rewritten by every repayment
--    (one row instead of one per funder). loan_funders keeps the rest (owner, share count,
--    refunds, first lent), and its repaid_minor column moves here.
-- 2. Repayment packs: a repayment's credits to its funders are packed (migration 0009) with the
--    loan and repayment on the pack and the credit accounts ascending. Their credit side is not
--    listed in account_entries: a funder finds its credits through its loans (loan_funders),
--    their repayments and, per repayment, the one pack whose credit range covers it
--    (transfer_packs_repayment_idx). account_transfer_ids gives an account's whole history.

CREATE TABLE loan_funder_books (
  loan_id     BIGINT   PRIMARY KEY REFERENCES loans (id),
  account_ids BIGINT[] NOT NULL,  -- the funding accounts, ascending
  shares      BIGINT[] NOT NULL,  -- what each lent (its weight in the split)
  credited    BIGINT[] NOT NULL,  -- what repayments credited each so far
  CONSTRAINT loan_funder_books_shape CHECK (
    array_ndims(account_ids) = 1 AND array_lower(account_ids, 1) = 1
    AND array_ndims(shares) = 1 AND array_lower(shares, 1) = 1
    AND array_ndims(credited) = 1 AND array_lower(credited, 1) = 1
    AND cardinality(shares) = cardinality(account_ids)
    AND cardinality(credited) = cardinality(account_ids)),
  CONSTRAINT loan_funder_books_amounts CHECK (
    0 < ALL (shares) AND array_position(shares, NULL) IS NULL
    AND 0 <= ALL (credited) AND array_position(credited, NULL) IS NULL
    AND array_position(account_ids, NULL) IS NULL)
);
-- Megabytes of numbers for a loan of many lenders: compressing them cost more than writing them.
-- An update that changes only `credited` keeps the other two arrays' stored values.
ALTER TABLE loan_funder_books
  ALTER COLUMN account_ids SET STORAGE EXTERNAL,
  ALTER COLUMN shares SET STORAGE EXTERNAL,
  ALTER COLUMN credited SET STORAGE EXTERNAL;

INSERT INTO loan_funder_books (loan_id, account_ids, shares, credited)
  SELECT f.loan_id, array_agg(f.account_id ORDER BY f.account_id),
         array_agg(f.amount_minor ORDER BY f.account_id),
         array_agg(f.repaid_minor ORDER BY f.account_id)
    FROM loan_funders f JOIN loans l ON l.id = f.loan_id
   WHERE l.disbursed_at IS NOT NULL
   GROUP BY f.loan_id;

ALTER TABLE loan_funders DROP COLUMN repaid_minor;
ALTER TABLE loan_funders ADD CONSTRAINT loan_funders_refund_within_share
  CHECK (refunded_minor <= amount_minor);

-- What a funder was credited, from its loan's book (0 when the loan has none yet).
CREATE FUNCTION funder_credited(loan BIGINT, account BIGINT) RETURNS BIGINT
  LANGUAGE sql STABLE PARALLEL SAFE
  RETURN coalesce((SELECT b.credited[array_position(b.account_ids, account)]
                     FROM loan_funder_books b WHERE b.loan_id = loan), 0);

-- Repayment packs.
ALTER TABLE transfer_packs
  ADD COLUMN loan_id      BIGINT,  -- every element's loan; NULL when none has one
  ADD COLUMN repayment_id BIGINT,  -- repayment packs: the repayment every element credits
  ADD COLUMN credit_hi    BIGINT,  -- repayment packs: the last (largest) credit account
  ADD CONSTRAINT transfer_packs_repayment CHECK (
    (repayment_id IS NULL) = (credit_hi IS NULL)
    AND (repayment_id IS NULL OR (loan_id IS NOT NULL AND repayment_ids IS NULL AND 4 = ALL (codes)
         AND credit_hi = credit_account_ids[cardinality(credit_account_ids)])));
CREATE INDEX transfer_packs_loan_idx ON transfer_packs (loan_id, first_id) WHERE loan_id IS NOT NULL;
CREATE INDEX transfer_packs_repayment_idx ON transfer_packs (repayment_id, credit_hi)
  WHERE repayment_id IS NOT NULL;

CREATE OR REPLACE FUNCTION packed_transfer(p transfer_packs, tid BIGINT) RETURNS transfers
  LANGUAGE sql IMMUTABLE PARALLEL SAFE
  RETURN ROW(tid, p.debit_account_ids[tid - p.first_id + 1],
             p.credit_account_ids[tid - p.first_id + 1], p.amounts[tid - p.first_id + 1],
             p.currency, p.codes[tid - p.first_id + 1], 1, NULL, 0, NULL, p.loan_id,
             p.order_ids[tid - p.first_id + 1],
             coalesce(p.repayment_ids[tid - p.first_id + 1], p.repayment_id),
             p.withdrawal_ids[tid - p.first_id + 1], p.campaign_ids[tid - p.first_id + 1],
             coalesce(p.external_payment_ids[tid - p.first_id + 1], ''),
             coalesce(p.memos[tid - p.first_id + 1], ''), p.created_at, p.batch_request_id,
             p.first_batch_index + (tid - p.first_id))::transfers;

-- A loan's transfers, rows and packed.
CREATE FUNCTION loan_transfers(loan BIGINT) RETURNS SETOF transfers
  LANGUAGE sql STABLE PARALLEL SAFE
  AS $$
    SELECT * FROM transfers WHERE loan_id = loan
    UNION ALL
    SELECT e.* FROM transfer_packs p
      CROSS JOIN LATERAL generate_series(p.first_id, p.last_id) AS g(tid)
      CROSS JOIN LATERAL packed_transfer(p, g.tid) e
     WHERE p.loan_id = loan
  $$;

-- The credits of repayment packs to `account`, as (transfer id): through the loans it funded,
-- their repayments, and per repayment the one pack whose credit range reaches it.
CREATE FUNCTION repayment_credit_ids(account BIGINT) RETURNS SETOF BIGINT
  LANGUAGE sql STABLE PARALLEL SAFE
  ROWS 50
  AS $$
    SELECT p.first_id + u.i - 1
      FROM loan_funders f
      JOIN repayments r ON r.loan_id = f.loan_id
      CROSS JOIN LATERAL (SELECT q.first_id, q.credit_account_ids FROM transfer_packs q
                           WHERE q.repayment_id = r.id AND q.credit_hi >= account
                           ORDER BY q.credit_hi LIMIT 1) p
      CROSS JOIN LATERAL unnest(p.credit_account_ids) WITH ORDINALITY AS u(c, i)
     WHERE f.account_id = account AND u.c = account
  $$;

-- Every transfer id in an account's history: account_entries, and its repayment-pack credits.
CREATE FUNCTION account_transfer_ids(account BIGINT) RETURNS SETOF BIGINT
  LANGUAGE sql STABLE PARALLEL SAFE
  ROWS 100
  AS $$
    SELECT x.id FROM account_entries e CROSS JOIN LATERAL unnest(e.transfer_ids) AS x(id)
     WHERE e.account_id = account
    UNION ALL
    SELECT * FROM repayment_credit_ids(account)
  $$;

-- A repayment pack's credit accounts strictly ascend (the history lookup above relies on it): a
-- trigger of its own beside transfer_packs_references (migration 0009), which it leaves as it is.
CREATE FUNCTION transfer_packs_check_repayment_order() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  bad BIGINT;
BEGIN
  SELECT n.first_id + u.i - 1 INTO bad FROM inserted n
    CROSS JOIN LATERAL unnest(n.credit_account_ids) WITH ORDINALITY AS u(c, i)
   WHERE n.repayment_id IS NOT NULL AND u.i > 1 AND u.c <= n.credit_account_ids[u.i - 1]
   ORDER BY 1 LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'packed repayment credit % is out of account order', bad
      USING ERRCODE = 'check_violation';
  END IF;
  RETURN NULL;
END
$$;
CREATE TRIGGER transfer_packs_repayment_order AFTER INSERT ON transfer_packs
  REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT
  EXECUTE FUNCTION transfer_packs_check_repayment_order();
