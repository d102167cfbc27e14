-- The matcher's durable input journal: every accepted order is appended here before it enters
-- the in-memory book, so that the book can be rebuilt on restart with nothing lost or doubled.
CREATE TABLE order_journal (
  seq          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  request_id   TEXT        NOT NULL,
  lender_id    BIGINT      NOT NULL,
  kind         SMALLINT    NOT NULL,            -- 1 contribution, 2 spread, 3 cancel
  payload      BYTEA       NOT NULL,            -- serialized order
  received_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
  UNIQUE (lender_id, request_id)
);
