--[[ Runs freeswitch/ws_bridge.lua against a stub of the FreeSWITCH Lua API.

  lua5.4 ws_bridge_harness.lua <script> <scenario.lua> [script arguments...]

The scenario file returns a table:
  uuid      the channel's uuid
  variables channel variables the script may read
  api       replies to API commands, by the command's first words (default "+OK Success")
  events    in order: {subclass=..., uuid=..., body=..., after_polls=N}; an event is popped only
            once the script has polled (slept) after_polls times since the previous one
  hangup_after_polls  the caller hangs up after this many polls with no event left (default 3)

Everything the script does is printed, one line each: "answer", "set NAME=VALUE",
"subscribe CUSTOM SUBCLASS", "api COMMAND", "sleep MS", "hangup CAUSE", "log LEVEL TEXT",
"caller hung up", "script returned".
]]

local script, scenario_file = arg[1], arg[2]
local scenario = dofile(scenario_file)
local out = {}
local function emit(line)
  out[#out + 1] = line
end

local alive = true
local polls = 0 -- sleeps since the last event was popped
local queue = scenario.events or {}
local next_event = 1

local Event = {}
Event.__index = Event
function Event:getHeader(name)
  if name == "Unique-ID" then
    return self.spec.uuid
  elseif name == "Event-Subclass" then
    return self.spec.subclass
  elseif name == "Event-Name" then
    return "CUSTOM"
  end
  return nil
end
function Event:getBody()
  return self.spec.body
end

local Consumer = {}
Consumer.__index = Consumer
function Consumer:bind(name, subclass)
  emit("subscribe " .. name .. " " .. subclass)
  self.subclasses[subclass] = true
end
function Consumer:pop(block, timeout)
  if block and block ~= 0 then
    emit("blocking pop") -- the script must not stop reading the call's audio
  end
  local spec = queue[next_event]
  if spec and polls >= (spec.after_polls or 0) then
    next_event = next_event + 1
    polls = 0
    if self.subclasses[spec.subclass] then
      return setmetatable({ spec = spec }, Event)
    end
    emit("unsubscribed event " .. spec.subclass .. " delivered") -- would not happen
  end
  return nil
end

freeswitch = {
  consoleLog = function(level, text)
    emit("log " .. level .. " " .. (text:gsub("\n$", "")))
  end,
  API = function()
    return {
      executeString = function(_, command)
        emit("api " .. command)
        for prefix, reply in pairs(scenario.api or {}) do
          if command:sub(1, #prefix) == prefix then
            return reply
          end
        end
        return "+OK Success\n"
      end,
    }
  end,
  EventConsumer = function(name, subclass)
    local consumer = setmetatable({ subclasses = {} }, Consumer)
    consumer:bind(name, subclass)
    return consumer
  end,
}

session = {
  answer = function()
    emit("answer")
  end,
  setVariable = function(_, name, value)
    emit("set " .. name .. "=" .. value)
  end,
  getVariable = function(_, name)
    return (scenario.variables or {})[name]
  end,
  get_uuid = function()
    return scenario.uuid
  end,
  ready = function()
    return alive
  end,
  sleep = function(_, ms)
    emit("sleep " .. ms)
    polls = polls + 1
    if next_event > #queue and polls >= (scenario.hangup_after_polls or 3) then
      alive = false
      emit("caller hung up")
    end
  end,
  hangup = function(_, cause)
    emit("hangup " .. (cause or ""))
    alive = false
  end,
}

argv = { [0] = script }
for i = 3, #arg do
  argv[#argv + 1] = arg[i]
end

dofile(script)
emit("script returned")

-- Runs of "sleep" lines are printed as one ("sleep 20 x5") to keep the transcript short.
local previous, count = nil, 0
local function flush()
  if previous then
    print(count > 1 and (previous .. " x" .. count) or previous)
  end
end
for _, line in ipairs(out) do
  if line == previous and line:match("^sleep ") then
    count = count + 1
  else
    flush()
    previous, count = line, 1
  end
end
flush()
