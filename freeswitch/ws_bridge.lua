--[[ ws_bridge.lua: a call served by a voiceplat robot through mod_audio_fork.

Dialplan (freeswitch/dialplan/voiceplat.xml):
  <action application="lua" data="ws_bridge.lua ws://robot:5200/ [transfer-context]"/>

mod_audio_fork (jambonz freeswitch-modules) streams the call to the robot and plays its audio, but
does not act on what the robot asks: `disconnect` and `transfer` only raise the CUSTOM events
mod_audio_fork::disconnect and mod_audio_fork::transfer ("left for the application", its README),
and the socket closed by the robot raises mod_audio_fork::disconnect too (lws_glue.cpp,
CONNECTION_DROPPED). This script is that application. It answers, starts the fork, then serves
its own channel's events until the call ends:

  mod_audio_fork::disconnect      the robot said goodbye, or closed the socket: hang up
  mod_audio_fork::transfer        {"target": "..."}: stop the fork, uuid_transfer to the target
                                  (in the dialplan context given as the 2nd argument, if any)
  mod_audio_fork::connect_failed  the robot cannot be reached: hang up
  mod_audio_fork::error           logged

It waits with session:sleep(), which reads the call's audio (so the fork's media bug keeps
streaming it) and, with send_silence_when_idle set, writes silence frames, into which the module's
write-replace bug mixes the robot's audio.
]]

local POLL_MS = 20
local BUG = "voiceplat" -- the media bug's name, for `uuid_audio_fork <uuid> stop voiceplat`
local EVENTS = {
  "mod_audio_fork::disconnect",
  "mod_audio_fork::transfer",
  "mod_audio_fork::connect_failed",
  "mod_audio_fork::error",
}

local function log(level, text)
  freeswitch.consoleLog(level, "ws_bridge: " .. text .. "\n")
end

-- The metadata goes through FreeSWITCH's argument splitting (spaces, quotes and backslashes are
-- taken out there), so only plain characters are kept.
local function plain(value)
  return (tostring(value or ""):gsub("[^%w%+%-%._@*#]", ""))
end

local function metadata(uuid)
  return string.format(
    '{"callId":"%s","from":"%s","to":"%s"}',
    plain(uuid),
    plain(session:getVariable("caller_id_number")),
    plain(session:getVariable("destination_number"))
  )
end

-- The target from the event body {"target": "..."}; nil unless it is one plain word.
local function transfer_target(body)
  local target = body and body:match('"target"%s*:%s*"([^"]*)"')
  if target and target:match("^[%w%+%-%._@:*#]+$") then
    return target
  end
  return nil
end

local function serve(url, context)
  local api = freeswitch.API()
  local uuid = session:get_uuid()
  session:answer()
  session:setVariable("send_silence_when_idle", "-1")

  -- Subscribed before the fork starts: connect_failed can come at once.
  local events = freeswitch.EventConsumer("CUSTOM", EVENTS[1])
  for i = 2, #EVENTS do
    events:bind("CUSTOM", EVENTS[i])
  end

  local started = api:executeString(
    string.format("uuid_audio_fork %s start %s mono 8k %s %s true true 8000", uuid, url, BUG, metadata(uuid))
  )
  if not started or not started:match("^%+OK") then
    log("ERR", "uuid_audio_fork start failed: " .. (tostring(started):gsub("%s+$", "")))
    session:hangup("NORMAL_TEMPORARY_FAILURE")
    return
  end

  while session:ready() do
    local event = events:pop(0)
    if not event then
      session:sleep(POLL_MS)
    elseif event:getHeader("Unique-ID") == uuid then
      local name = event:getHeader("Event-Subclass")
      if name == "mod_audio_fork::disconnect" then
        session:hangup("NORMAL_CLEARING")
        return
      elseif name == "mod_audio_fork::transfer" then
        local target = transfer_target(event:getBody())
        api:executeString("uuid_audio_fork " .. uuid .. " stop " .. BUG)
        if not target then
          log("ERR", "transfer without a usable target: " .. tostring(event:getBody()))
          session:hangup("NORMAL_CLEARING")
          return
        end
        local command = "uuid_transfer " .. uuid .. " " .. target
        if context then
          command = command .. " XML " .. context
        end
        api:executeString(command)
        return
      elseif name == "mod_audio_fork::connect_failed" then
        log("ERR", "cannot reach the robot at " .. url .. ": " .. tostring(event:getBody()))
        session:hangup("NORMAL_TEMPORARY_FAILURE")
        return
      elseif name == "mod_audio_fork::error" then
        log("WARNING", "the robot reported an error: " .. tostring(event:getBody()))
      end
    end
  end
end

local url, context = argv[1], argv[2]
if not url or url == "" then
  log("ERR", "usage: lua ws_bridge.lua <ws-url> [transfer-context]")
  session:hangup("NORMAL_TEMPORARY_FAILURE")
else
  serve(url, context)
end
