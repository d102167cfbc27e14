-- A repayment pack's credits are checked against its loan's funder book (ADR 0016).
--
-- transfer_packs_check (migration 0009) probed `accounts` by primary key once per distinct
-- account a pack names, after sorting them: about 18 ms of a repayment to 10,000 lenders, for
-- wallets the same commit credits by increment a moment later; its same-account check unnested
-- every pack once more (3.5 ms). A repayment pack credits its loan's funders, and they are all
-- in the loan's funder book (migration 0010), written once when the loan is disbursed. So:
--
-- 1. The book names its accounts' currency and is checked when written: every account exists
--    in that currency. Its loan, currency, accounts and shares never change afterwards (a
--    repayment rewrites only `credited`), and a book is never deleted.
-- 2. A repayment pack debits one account (its loan's settlement account), which it does not
--    also credit: a CHECK on the row, so the statement checks only that one debit account
--    against `accounts`, and no longer compares every packed debit with its credit.
-- 3. A repayment pack's credit side is checked against its loan's book, in the book's currency,
--    with one hashed set difference (EXCEPT) per statement. This is also stricter than before: a
--    credit to an account that exists but did not fund the loan is refused.
--
-- Every other pack is checked as before.
--
-- Measured on one 10,000-credit repayment (313 packs, psql, rolled back): inserting the packs
-- with their checks took 23.7 ms (median of 15) against 31.5 ms before, 8.1 ms of it the rows.

ALTER TABLE loan_funder_books ADD COLUMN currency CHAR(3);
UPDATE loan_funder_books b SET currency = a.currency
  FROM accounts a WHERE a.id = b.account_ids[1];
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM loan_funder_books b
              WHERE b.currency IS NULL
                 OR EXISTS (SELECT 1 FROM unnest(b.account_ids) AS u(id)
                             WHERE NOT EXISTS (SELECT 1 FROM accounts a
                                                WHERE a.id = u.id AND a.currency = b.currency)))
  THEN
    RAISE EXCEPTION 'a funder book names an account that is missing or not in the currency of its first account: fix it before this migration';
  END IF;
END
$$;
ALTER TABLE loan_funder_books ALTER COLUMN currency SET NOT NULL;

-- 1. Books name existing accounts of their currency, and keep them.
CREATE FUNCTION loan_funder_books_check() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  bad_loan BIGINT;
  bad BIGINT;
BEGIN
  SELECT n.loan_id, u.id INTO bad_loan, bad
    FROM inserted n CROSS JOIN LATERAL unnest(n.account_ids) AS u(id)
   WHERE NOT EXISTS (SELECT 1 FROM accounts a WHERE a.id = u.id AND a.currency = n.currency)
   ORDER BY 1, 2 LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'the funder book of loan % names account %, which does not exist in its currency',
      bad_loan, bad USING ERRCODE = 'foreign_key_violation';
  END IF;
  RETURN NULL;
END
$$;
CREATE TRIGGER loan_funder_books_references AFTER INSERT ON loan_funder_books
  REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT
  EXECUTE FUNCTION loan_funder_books_check();

CREATE FUNCTION loan_funder_books_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'UPDATE' AND NEW.loan_id = OLD.loan_id AND NEW.currency = OLD.currency
     AND NEW.account_ids = OLD.account_ids AND NEW.shares = OLD.shares THEN
    RETURN NULL;
  END IF;
  RAISE EXCEPTION 'a funder book is never deleted and its loan, currency, accounts and shares never change: % refused',
    TG_OP USING ERRCODE = 'restrict_violation';
END
$$;
-- AFTER, and on these columns only: an update of `credited` alone queues nothing (migration 0011).
CREATE TRIGGER loan_funder_books_keep_funders AFTER UPDATE OF loan_id, currency, account_ids, shares
  ON loan_funder_books FOR EACH ROW EXECUTE FUNCTION loan_funder_books_refuse_change();
CREATE TRIGGER loan_funder_books_no_delete BEFORE DELETE OR TRUNCATE ON loan_funder_books
  FOR EACH STATEMENT EXECUTE FUNCTION loan_funder_books_refuse_change();

-- 2. One debit account per repayment pack, not among its credits.
ALTER TABLE transfer_packs ADD CONSTRAINT transfer_packs_repayment_debit CHECK (
  repayment_id IS NULL OR (debit_account_ids[1] = ALL (debit_account_ids)
                           AND NOT (debit_account_ids[1] = ANY (credit_account_ids))));

-- transfer_packs_check as in migration 0009, except for repayment packs: their one debit
-- account is checked against `accounts` and their credits against the loan's book (3. below);
-- the CHECK above already refuses a repayment pack that credits its debit account.
CREATE OR REPLACE FUNCTION transfer_packs_check() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  bad BIGINT;
BEGIN
  SELECT s.account_id INTO bad
    FROM (SELECT DISTINCT u.account_id, n.currency FROM inserted n
            CROSS JOIN LATERAL unnest(CASE WHEN n.repayment_id IS NULL
                                           THEN n.debit_account_ids || n.credit_account_ids
                                           ELSE n.debit_account_ids[1:1] END) AS u(account_id)) s
   WHERE NOT EXISTS (SELECT 1 FROM accounts a WHERE a.id = s.account_id AND a.currency = s.currency)
   ORDER BY s.account_id LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'a transfer pack names account %, which does not exist in its currency', bad
      USING ERRCODE = 'foreign_key_violation';
  END IF;
  SELECT n.first_id + u.i - 1 INTO bad FROM inserted n
    CROSS JOIN LATERAL unnest(n.debit_account_ids, n.credit_account_ids) WITH ORDINALITY AS u(d, c, i)
   WHERE n.repayment_id IS NULL AND u.d = u.c ORDER BY 1 LIMIT 1;
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

-- 3. A repayment pack's loan has a funder book in the pack's currency, and every credit of the
-- pack is to one of the book's accounts. Each book is read (and its accounts unnested) once per
-- statement, however many packs of its loan the statement inserts.
CREATE FUNCTION transfer_packs_check_repayment_credits() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  bad_loan BIGINT;
  bad BIGINT;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM inserted n WHERE n.repayment_id IS NOT NULL) THEN
    RETURN NULL;
  END IF;
  SELECT p.loan_id INTO bad_loan
    FROM (SELECT DISTINCT n.loan_id, n.currency FROM inserted n
           WHERE n.repayment_id IS NOT NULL) p
   WHERE NOT EXISTS (SELECT 1 FROM loan_funder_books b
                      WHERE b.loan_id = p.loan_id AND b.currency = p.currency)
   ORDER BY 1 LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'a repayment pack credits the funders of loan %, which has no funder book in the pack''s currency',
      bad_loan USING ERRCODE = 'foreign_key_violation';
  END IF;
  SELECT x.loan_id, x.account_id INTO bad_loan, bad
    FROM (SELECT n.loan_id, u.account_id FROM inserted n
            CROSS JOIN LATERAL unnest(n.credit_account_ids) AS u(account_id)
           WHERE n.repayment_id IS NOT NULL
          EXCEPT
          SELECT b.loan_id, u.account_id
            FROM (SELECT DISTINCT n.loan_id FROM inserted n WHERE n.repayment_id IS NOT NULL) l
            JOIN loan_funder_books b ON b.loan_id = l.loan_id
            CROSS JOIN LATERAL unnest(b.account_ids) AS u(account_id)) x
   ORDER BY 1, 2 LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'a repayment pack credits account %, which is not a funder of loan %',
      bad, bad_loan USING ERRCODE = 'foreign_key_violation';
  END IF;
  RETURN NULL;
END
$$;
CREATE TRIGGER transfer_packs_repayment_credits AFTER INSERT ON transfer_packs
  REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT
  EXECUTE FUNCTION transfer_packs_check_repayment_credits();
