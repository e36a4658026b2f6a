--[[ stream_bridge.lua: a call served by a voiceplat robot through mod_audio_stream.

Dialplan (freeswitch/dialplan/routes.xml):
  <action application="lua" data="stream_bridge.lua ws://robot:5200/audio_stream"/>

mod_audio_stream (amigniter) streams the caller's audio to the robot as binary L16 and turns the
robot's `streamAudio` messages into files, announced with mod_audio_stream::play; the robot plays
them, interrupts them (uuid_break), transfers (uuid_transfer) and hangs up (uuid_kill) over the
event socket. What the module does not do is end the call when the robot goes away: it only raises
mod_audio_stream::disconnect (the socket closed) or ::error (e.g. the robot cannot be reached,
code 6 CONNECT_FAILED). This script answers, starts the stream, then waits on its own channel's
events until the call ends:

  mod_audio_stream::disconnect   the robot closed the socket: hang up
  mod_audio_stream::error        the stream failed: hang up (the robot cannot serve the call)

A call the robot has transferred (uuid_transfer: FreeSWITCH appends to the channel variable
transfer_history) belongs to the dialplan it went to: the script returns and no longer hangs up.

It waits with session:sleep(), which reads the call's audio (the media bug streams it) and runs
what the robot queues on the channel over the event socket (uuid_broadcast of a played file).
]]

local POLL_MS = 20
local EVENTS = { "mod_audio_stream::disconnect", "mod_audio_stream::error" }

local function log(level, text)
  freeswitch.consoleLog(level, "stream_bridge: " .. text .. "\n")
end

-- FreeSWITCH splits API arguments at spaces and drops quotes and backslashes: plain characters only.
local function plain(value)
  return (tostring(value or ""):gsub("[^%w%+%-%._@*#]", ""))
end

-- The first text frame the robot reads: "uuid" is the channel the robot's event socket commands
-- name (it refuses a stream without it), callId/from/to go into the call record.
local function metadata(uuid)
  return string.format(
    '{"uuid":"%s","callId":"%s","from":"%s","to":"%s"}',
    plain(uuid),
    plain(uuid),
    plain(session:getVariable("caller_id_number")),
    plain(session:getVariable("destination_number"))
  )
end

local function serve(url)
  local api = freeswitch.API()
  local uuid = session:get_uuid()
  session:answer()

  -- Subscribed before the stream starts: an unreachable robot is reported at once.
  local events = freeswitch.EventConsumer("CUSTOM", EVENTS[1])
  for i = 2, #EVENTS do
    events:bind("CUSTOM", EVENTS[i])
  end

  local started =
    api:executeString(string.format("uuid_audio_stream %s start %s mono 8k %s", uuid, url, metadata(uuid)))
  if not started or not started:match("^%+OK") then
    log("ERR", "uuid_audio_stream start failed: " .. (tostring(started):gsub("%s+$", "")))
    session:hangup("NORMAL_TEMPORARY_FAILURE")
    return
  end

  local transfers = session:getVariable("transfer_history")
  while session:ready() do
    if session:getVariable("transfer_history") ~= transfers then
      return -- transferred by the robot: the socket's close is not the caller's hangup
    end
    local event = events:pop(0)
    if not event then
      session:sleep(POLL_MS)
    elseif event:getHeader("Unique-ID") == uuid then
      local name = event:getHeader("Event-Subclass")
      if name == "mod_audio_stream::disconnect" then
        session:hangup("NORMAL_CLEARING")
        return
      elseif name == "mod_audio_stream::error" then
        log("ERR", "the stream to " .. url .. " failed: " .. tostring(event:getBody()))
        session:hangup("NORMAL_TEMPORARY_FAILURE")
        return
      end
    end
  end
end

local url = argv[1]
if not url or url == "" then
  log("ERR", "usage: lua stream_bridge.lua <ws-url>")
  session:hangup("NORMAL_TEMPORARY_FAILURE")
else
  serve(url)
end
