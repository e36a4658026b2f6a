-- SIP calls (issue 10): the keys a caller pressed and where a call was handed over.

-- The DTMF keys in the order pressed ('12#'; '' when none), so analysts can ask
-- `WHERE dtmf LIKE '0%'`. Each key's time is in the call's pipeline log (JSON file, MongoDB).
ALTER TABLE calls ADD COLUMN dtmf text NOT NULL DEFAULT '';
-- Where a transferred call went (end_reason = 'transferred'); NULL otherwise.
ALTER TABLE calls ADD COLUMN transfer_target text;

-- Calls handed over to a person, and calls where the caller used the keypad, per robot and
-- day. (A transfer the PBX refused is an event in the pipeline log; that call went on.)
CREATE VIEW transfers_per_robot_day AS
SELECT robot,
       (started_at AT TIME ZONE 'UTC')::date                  AS day,
       count(*)                                                AS calls,
       count(*) FILTER (WHERE end_reason = 'transferred')      AS transferred,
       round(avg((end_reason = 'transferred')::int)::numeric, 3) AS transferred_share,
       count(*) FILTER (WHERE dtmf <> '')                      AS used_keys
FROM calls
GROUP BY robot, day;
