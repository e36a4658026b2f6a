-- Robots that do a job (issue 12): what each call achieved, a summary written after it, and the
-- tools the robot called.

-- What the call achieved (voiceplat/sessions/outcome.py): a tool's outcome such as 'booked',
-- 'transferred', 'answered', 'no_answer_given', 'abandoned', 'failed'. A free string, like
-- end_reason, so a robot's new tool outcome needs no migration. NULL: a call still in progress,
-- or one recorded before this migration.
ALTER TABLE calls ADD COLUMN outcome text;
-- One or two sentences on what the caller wanted and what happened, written by the LLM after
-- the call (it arrives a few seconds after the call's final row). NULL: none (yet).
ALTER TABLE calls ADD COLUMN summary text;
CREATE INDEX calls_outcome ON calls (robot, outcome, started_at DESC);

-- Robot turns: the tools called, in order:
-- [{"name", "arguments": {...}, "ok", "result": <the webhook's JSON> | null, "error", "ms"}].
ALTER TABLE turns ADD COLUMN tool_calls jsonb NOT NULL DEFAULT '[]';
CREATE INDEX turns_with_tools ON turns (call_id) WHERE tool_calls <> '[]';

-- Calls per outcome, per robot and UTC day, with each outcome's share of the day's calls.
-- outcome NULL: calls in progress (or recorded before outcomes existed).
CREATE VIEW outcomes_per_robot_day AS
SELECT robot,
       (started_at AT TIME ZONE 'UTC')::date                                    AS day,
       outcome,
       count(*)                                                                  AS calls,
       round(count(*)::numeric
             / sum(count(*)) OVER (PARTITION BY robot, (started_at AT TIME ZONE 'UTC')::date),
             3)                                                                  AS share,
       count(*) FILTER (WHERE summary IS NOT NULL)                               AS summarised,
       round(avg(duration_sec)::numeric, 1)                                      AS avg_duration_sec
FROM calls
GROUP BY robot, day, outcome;

-- Per robot and tool: how often the robot called it, how often it failed (a timeout, an HTTP
-- error, arguments the schema refused), and how long it took (milliseconds).
CREATE VIEW tool_calls_per_robot AS
SELECT c.robot,
       tool ->> 'name'                                                            AS tool,
       count(*)                                                                   AS calls,
       count(*) FILTER (WHERE NOT (tool ->> 'ok')::boolean)                       AS failed,
       round(avg((NOT (tool ->> 'ok')::boolean)::int)::numeric, 3)                AS failed_share,
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY (tool ->> 'ms')::float8)::numeric, 1)
                                                                                   AS p50_ms,
       round(percentile_cont(0.95) WITHIN GROUP (ORDER BY (tool ->> 'ms')::float8)::numeric, 1)
                                                                                   AS p95_ms,
       count(DISTINCT t.call_id)                                                  AS in_calls
FROM turns t
JOIN calls c USING (call_id)
CROSS JOIN LATERAL jsonb_array_elements(t.tool_calls) AS tool
GROUP BY c.robot, tool ->> 'name';
