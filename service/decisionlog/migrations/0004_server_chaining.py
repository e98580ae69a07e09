"""PostgreSQL chains a batch of decisions in one statement (postgres.py, `chain_append`).

The client sends each record's hashed text in two parts, around its seq (which only the
chain lock decides); the function takes the chain_head lock, numbers the records, hashes
each one after the previous exactly as chain.record_hash does (SHA-256 of prev_hash + the
canonical fields, UTF-8), inserts them with their fired-rule index rows and moves the
head. Run as one autocommit statement, the lock is held for the function's own run time
instead of a network round trip. SQLite chains in the client (one writer at a time
anyway): nothing to add there.
"""

SQLITE = ()

POSTGRESQL = (
    """CREATE FUNCTION chain_append(
        p_decision_id TEXT[], p_application_id TEXT[], p_ruleset_name TEXT[], p_ruleset_version TEXT[],
        p_ruleset_sha256 TEXT[], p_outcome TEXT[], p_as_of TEXT[], p_evaluated_at TIMESTAMPTZ[],
        p_fired_rules TEXT[], p_request TEXT[], p_response TEXT[], p_trace TEXT[],
        p_hashed_before_seq TEXT[], p_hashed_after_seq TEXT[],
        p_rule_record INTEGER[], p_rule_id TEXT[])
    RETURNS TABLE (o_seq BIGINT, o_prev_hash TEXT, o_hash TEXT)
    LANGUAGE plpgsql
    SET lock_timeout = '10s'
    AS $$
    DECLARE
        head_seq BIGINT;
        head_hash TEXT;
        first_seq BIGINT;
        new_hash TEXT;
    BEGIN
        SELECT c.seq, c.hash INTO head_seq, head_hash FROM chain_head c WHERE c.id = 1 FOR UPDATE;
        first_seq := head_seq + 1;
        FOR i IN 1 .. coalesce(array_length(p_decision_id, 1), 0) LOOP
            head_seq := head_seq + 1;
            new_hash := encode(sha256(convert_to(
                head_hash || p_hashed_before_seq[i] || head_seq::text || p_hashed_after_seq[i], 'UTF8')), 'hex');
            INSERT INTO decisions (seq, decision_id, application_id, ruleset_name, ruleset_version,
                                   ruleset_sha256, outcome, as_of, evaluated_at, fired_rules, request,
                                   response, trace, prev_hash, hash)
            VALUES (head_seq, p_decision_id[i], p_application_id[i], p_ruleset_name[i], p_ruleset_version[i],
                    p_ruleset_sha256[i], p_outcome[i], p_as_of[i], p_evaluated_at[i], p_fired_rules[i],
                    p_request[i], p_response[i], p_trace[i], head_hash, new_hash);
            o_seq := head_seq;
            o_prev_hash := head_hash;
            o_hash := new_hash;
            RETURN NEXT;
            head_hash := new_hash;
        END LOOP;
        INSERT INTO decision_rules (seq, rule_id)
        SELECT first_seq + r.record - 1, r.rule_id FROM unnest(p_rule_record, p_rule_id) AS r(record, rule_id);
        UPDATE chain_head SET seq = head_seq, hash = head_hash WHERE id = 1;
    END
    $$""",
)
