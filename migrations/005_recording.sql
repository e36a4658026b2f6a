-- Call recordings made by the robot (issue 13): a stereo file per call, caller left, robot right.

-- The recording's path (absolute, on the robot's host: <recording.dir>/<YYYY-MM-DD>/<call id>.wav
-- or .flac). Set when the call opens; the file is written just after the call ends, and deleted
-- after the robot's recording.retention_days (the row keeps the path). NULL: not recorded.
ALTER TABLE calls ADD COLUMN recording text;
-- Why the recording could not be written (a full disk, a read-only folder); it arrives as an
-- amendment of the finished row. NULL: written (or not recorded).
ALTER TABLE calls ADD COLUMN recording_error text;
