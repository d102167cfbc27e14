-- Room on each page of `loans` for the next version of its rows. A repayment, an arrears update
-- of the lifecycle sweep and an ended loan rewrite columns no index covers (amounts repaid,
-- arrears, updated_at), so PostgreSQL can keep the new version on the same page and leave the
-- twelve indexes alone (a HOT update), but only if the page has room. Filled to 100%, the pages
-- of loans posted together had none: a partner's bulk of 300 repayments spent 7-9 ms updating
-- its 300 loans in the statement log. Replayed in psql on that data (300 loans updated and
-- rolled back, three rounds each after VACUUM FULL): 6.3-13.3 ms at fillfactor 100, 4.4-9.2 ms
-- at 70. The setting applies to pages written from now on; old pages keep their fill until they
-- are rewritten.
ALTER TABLE loans SET (fillfactor = 70);
