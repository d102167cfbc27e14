-- Idempotency records for every state-changing notify RPC. Written in the same transaction as
-- the effect; a failure is remembered too (status_code <> 0), so a retry gets the same answer.
CREATE TABLE idempotency_records (
  request_id   TEXT        NOT NULL,
  caller       TEXT        NOT NULL,            -- principal subject: ids are per caller
  method       TEXT        NOT NULL,
  body_sha256  BYTEA       NOT NULL,            -- canonical request bytes without request_id
  status_code  INTEGER     NOT NULL,            -- grpc code; 0 = OK
  status_text  TEXT        NOT NULL DEFAULT '',
  response     BYTEA,                           -- serialized response when OK
  created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
  PRIMARY KEY (caller, request_id),
  CHECK (length(request_id) BETWEEN 1 AND 128)
);
