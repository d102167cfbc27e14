-- A partner's exposure (core/partners.h PartnerExposure): every submission and approval sums the
-- partner's loans in REVIEW (2), FUNDRAISING (3), FUNDED (4), PAYING_BACK (5) and DEFAULTED (9)
-- while it holds the partner row locked (store/pg_partner_store.h ReadPartnerExposure). This
-- index keeps that sum to the partner's open loans, however many it has ended.
CREATE INDEX loans_partner_open_idx ON loans (partner_id, status) WHERE status IN (2, 3, 4, 5, 9);
