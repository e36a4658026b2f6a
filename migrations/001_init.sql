-- voiceplat call records for analysts. Applied by `voiceplat migrate` and at robot start,
-- recorded in schema_migrations. Times are timestamptz (UTC); latencies in milliseconds.

-- One row per call. Written when the call opens (status in_progress) and updated as it goes;
-- upserted by call_id, so a replayed write never makes a second row.
CREATE TABLE calls (
    call_id      text PRIMARY KEY,
    robot        text NOT NULL,
    mode         text NOT NULL,
    source       text NOT NULL,                 -- freeswitch | web | sip | simulator
    caller       text,
    callee       text,
    started_at   timestamptz NOT NULL,
    answered_at  timestamptz,
    ended_at     timestamptz,
    duration_sec double precision,
    status       text NOT NULL CHECK (status IN ('in_progress', 'completed', 'failed')),
    end_reason   text,                          -- caller_hangup, robot_goodbye, no_input, ...
    turns        integer NOT NULL DEFAULT 0,
    metadata     jsonb NOT NULL DEFAULT '{}',   -- the dialplan's extra keys (campaign, ...)
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX calls_robot_started ON calls (robot, started_at DESC);
CREATE INDEX calls_started ON calls (started_at DESC);
CREATE INDEX calls_caller_started ON calls (caller, started_at DESC);
CREATE INDEX calls_end_reason ON calls (robot, end_reason, started_at DESC);
CREATE INDEX calls_live ON calls (robot) WHERE status = 'in_progress';
CREATE INDEX calls_metadata ON calls USING gin (metadata jsonb_path_ops);

-- One row per turn, keyed by (call_id, idx): the caller's utterances and the robot's answers.
CREATE TABLE turns (
    call_id     text NOT NULL REFERENCES calls (call_id) ON DELETE CASCADE,
    idx         integer NOT NULL CHECK (idx >= 0),
    role        text NOT NULL CHECK (role IN ('user', 'robot')),
    text        text NOT NULL DEFAULT '',
    heard_text  text,                           -- what the caller heard of a turn cut by barge-in
    started_at  timestamptz NOT NULL,
    ended_at    timestamptz,
    interrupted boolean NOT NULL DEFAULT false,
    asr_ms      double precision,
    llm_ttft_ms double precision,               -- LLM time to first token
    tts_ttfb_ms double precision,               -- TTS time to first audio
    v2v_ms      double precision,               -- end of the caller's speech -> first robot audio
    track       text,                           -- llm_script: the track played
    error       text,
    PRIMARY KEY (call_id, idx)
);
CREATE INDEX turns_started ON turns (started_at);
CREATE INDEX turns_interrupted ON turns (call_id) WHERE interrupted;
CREATE INDEX turns_text_search ON turns USING gin (to_tsvector('simple', text));

-- A robot's named scripts and configuration blobs (a campaign's questions, a track map, ...),
-- read at run time through the Redis cache (voiceplat.storage.scenarios).
CREATE TABLE scenarios (
    name        text PRIMARY KEY,
    robot       text,                           -- NULL: any robot may use it
    description text NOT NULL DEFAULT '',
    body        jsonb NOT NULL DEFAULT '{}',
    version     integer NOT NULL DEFAULT 1,
    enabled     boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX scenarios_robot ON scenarios (robot);

-- People who look at the records: operators, analysts, robot authors, admins.
CREATE TABLE users (
    user_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    login       text NOT NULL UNIQUE,
    full_name   text NOT NULL DEFAULT '',
    email       text,
    role        text NOT NULL CHECK (role IN ('admin', 'operator', 'analyst', 'author')),
    robots      text[] NOT NULL DEFAULT '{}',   -- robots they work with; empty: all
    created_at  timestamptz NOT NULL DEFAULT now(),
    disabled_at timestamptz
);

-- Views for the analysts' everyday questions (README, "Analysts"). Days are UTC days.

CREATE VIEW calls_per_robot_day AS
SELECT robot,
       (started_at AT TIME ZONE 'UTC')::date          AS day,
       count(*)                                        AS calls,
       count(*) FILTER (WHERE status = 'completed')    AS completed,
       count(*) FILTER (WHERE status = 'failed')       AS failed,
       count(*) FILTER (WHERE status = 'in_progress')  AS in_progress,
       round(avg(duration_sec)::numeric, 1)            AS avg_duration_sec,
       round(sum(duration_sec)::numeric / 60, 1)       AS total_minutes
FROM calls
GROUP BY robot, day;

-- Answered: the robot picked the call up. Engaged: the caller said something the robot
-- answered (at least one user turn). Robot hang-ups by reason show where calls end.
CREATE VIEW answer_rate_per_robot_day AS
SELECT c.robot,
       (c.started_at AT TIME ZONE 'UTC')::date                          AS day,
       count(*)                                                          AS calls,
       count(*) FILTER (WHERE c.answered_at IS NOT NULL)                 AS answered,
       round(avg((c.answered_at IS NOT NULL)::int)::numeric, 3)          AS answer_rate,
       count(*) FILTER (WHERE u.call_id IS NOT NULL)                     AS engaged,
       round(avg((u.call_id IS NOT NULL)::int)::numeric, 3)              AS engaged_rate,
       count(*) FILTER (WHERE c.end_reason = 'no_input')                 AS no_input,
       count(*) FILTER (WHERE c.end_reason IN ('error', 'protocol_error')) AS errors
FROM calls c
LEFT JOIN (SELECT DISTINCT call_id FROM turns WHERE role = 'user') u USING (call_id)
GROUP BY c.robot, day;

CREATE VIEW latency_per_robot AS
SELECT c.robot,
       count(t.v2v_ms)                                                        AS answers,
       round(avg(t.v2v_ms)::numeric, 1)                                       AS v2v_avg_ms,
       round(percentile_cont(0.95) WITHIN GROUP (ORDER BY t.v2v_ms)::numeric, 1) AS v2v_p95_ms,
       round(avg(t.asr_ms)::numeric, 1)                                       AS asr_avg_ms,
       round(percentile_cont(0.95) WITHIN GROUP (ORDER BY t.asr_ms)::numeric, 1) AS asr_p95_ms,
       round(avg(t.llm_ttft_ms)::numeric, 1)                                  AS llm_ttft_avg_ms,
       round(percentile_cont(0.95) WITHIN GROUP (ORDER BY t.llm_ttft_ms)::numeric, 1)
                                                                              AS llm_ttft_p95_ms,
       round(avg(t.tts_ttfb_ms)::numeric, 1)                                  AS tts_ttfb_avg_ms,
       round(percentile_cont(0.95) WITHIN GROUP (ORDER BY t.tts_ttfb_ms)::numeric, 1)
                                                                              AS tts_ttfb_p95_ms
FROM turns t
JOIN calls c USING (call_id)
GROUP BY c.robot;

CREATE VIEW latency_per_robot_day AS
SELECT c.robot,
       (t.started_at AT TIME ZONE 'UTC')::date                                AS day,
       count(t.v2v_ms)                                                        AS answers,
       round(avg(t.v2v_ms)::numeric, 1)                                       AS v2v_avg_ms,
       round(percentile_cont(0.95) WITHIN GROUP (ORDER BY t.v2v_ms)::numeric, 1) AS v2v_p95_ms,
       round(avg(t.asr_ms)::numeric, 1)                                       AS asr_avg_ms,
       round(avg(t.llm_ttft_ms)::numeric, 1)                                  AS llm_ttft_avg_ms,
       round(avg(t.tts_ttfb_ms)::numeric, 1)                                  AS tts_ttfb_avg_ms
FROM turns t
JOIN calls c USING (call_id)
GROUP BY c.robot, day;

-- Of the robot's turns, how many the caller cut short (barge-in).
CREATE VIEW interrupted_share_per_robot AS
SELECT c.robot,
       count(*)                                     AS robot_turns,
       count(*) FILTER (WHERE t.interrupted)        AS interrupted,
       round(avg(t.interrupted::int)::numeric, 3)   AS interrupted_share
FROM turns t
JOIN calls c USING (call_id)
WHERE t.role = 'robot'
GROUP BY c.robot;
