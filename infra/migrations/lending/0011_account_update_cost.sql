-- Cheaper wallet updates (ADR 0012).
--
-- accounts_keep_key (migration 0002) was a BEFORE row trigger. PostgreSQL locks every row a
-- BEFORE UPDATE row trigger could see before it looks at the trigger's column list, so each
-- account update, whatever columns it set, also wrote a tuple-lock WAL record: one per wallet
-- credited by a repayment, 10,000 for a loan of 10,000 lenders. An AFTER row trigger is queued
-- only when a listed column is set, and refuses the change just as well (it aborts the
-- statement before the commit).
DROP TRIGGER accounts_keep_key ON accounts;
CREATE TRIGGER accounts_keep_key AFTER UPDATE OF id, currency ON accounts
  FOR EACH ROW EXECUTE FUNCTION accounts_refuse_change();

-- A repayment's settlement side lists every credit's id in one account_entries row: 10,000 ids,
-- 80 kB, which PostgreSQL compressed on the commit path (about 10 ms). Stored as they are, like
-- the funder books (migration 0010); rows under 2 kB are unaffected.
ALTER TABLE account_entries ALTER COLUMN transfer_ids SET STORAGE EXTERNAL;

