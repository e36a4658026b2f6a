-- Turn-taking (issue 11): utterances that were not turns, dead air inside answers, and answers
-- that went on after a false interruption.

-- Why a user turn was left out of the dialog: the utterance filter's reason ('no_words',
-- 'hallucination', 'caption', 'too_short', 'no_speech', 'low_confidence', ...). NULL: the robot
-- took it as the caller's words. The text is kept either way.
ALTER TABLE turns ADD COLUMN ignored text;
-- Robot turns: total and longest time the robot had no audio to send while the answer was not
-- finished (milliseconds; NULL for user turns and for records written before this migration).
ALTER TABLE turns ADD COLUMN starved_ms double precision;
ALTER TABLE turns ADD COLUMN starved_max_ms double precision;
-- Robot turns: how many times the answer went on after a burst (a backchannel, a cough) had
-- stopped it.
ALTER TABLE turns ADD COLUMN resumed integer NOT NULL DEFAULT 0 CHECK (resumed >= 0);
CREATE INDEX turns_ignored ON turns (call_id) WHERE ignored IS NOT NULL;

-- "Engaged" now means the caller said something the robot took as words: an ignored cough
-- does not engage a call. (Same columns as in 001_init.)
CREATE OR REPLACE VIEW answer_rate_per_robot_day AS
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
LEFT JOIN (SELECT DISTINCT call_id FROM turns WHERE role = 'user' AND ignored IS NULL) u
       USING (call_id)
GROUP BY c.robot, day;

-- Per robot: utterances dropped as noise and why, dead air inside answers, resumed answers.
CREATE VIEW turn_taking_per_robot AS
SELECT c.robot,
       count(*) FILTER (WHERE t.role = 'user')                                   AS user_turns,
       count(*) FILTER (WHERE t.ignored IS NOT NULL)                             AS ignored,
       count(*) FILTER (WHERE t.ignored IN ('hallucination', 'caption'))         AS hallucinations,
       count(*) FILTER (WHERE t.role = 'robot')                                  AS robot_turns,
       round(percentile_cont(0.95) WITHIN GROUP (ORDER BY t.starved_max_ms)::numeric, 1)
                                                                                  AS starved_max_p95_ms,
       round(max(t.starved_max_ms)::numeric, 1)                                  AS starved_max_ms,
       count(*) FILTER (WHERE t.starved_max_ms > 300)                            AS starved_over_300ms,
       sum(t.resumed)                                                            AS resumed
FROM turns t
JOIN calls c USING (call_id)
GROUP BY c.robot;
