-- wrk as the Dapr publisher (dapr-bench.ts): `wrk -t1 -cC -s dapr-publish.lua URL -- RUN FIRST COUNT`
-- publishes events FIRST … FIRST+COUNT-1 of run RUN, each with its own id in its JSON body, as the node
-- publisher does. Once COUNT are sent, a connection waits (delay) instead of sending more; when COUNT
-- answers came back it prints `answered` (the bench then ends wrk with SIGINT: wrk's main thread sleeps
-- for the whole -d otherwise) and stops. done() prints one JSON line: what was sent and answered, how
-- many answers were not 204 (and the first), socket errors, and wrk's own CPU ticks (utime + stime).
local threads = {}

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  run = args[1]
  first = tonumber(args[2])
  count = tonumber(args[3])
  -- wrk 4 calls request() once right after init to check the script (script_verify_request) and
  -- discards what it returns: start one below, so that the first request sent carries FIRST.
  sent = -1
  granted = 0
  answered = 0
  failed = 0
  first_failure = ""
end

-- A connection's first request goes out without delay(); every later one asks here first.
function delay()
  if sent + granted >= count then
    return 3600000
  end
  granted = granted + 1
  return 0
end

function request()
  if granted > 0 then
    granted = granted - 1
  end
  local n = first + sent
  sent = sent + 1
  return wrk.format(nil, nil, nil, '{"run":"' .. run .. '","n":' .. n .. '}')
end

function response(status, headers, body)
  answered = answered + 1
  if status ~= 204 then
    failed = failed + 1
    if failed == 1 then
      first_failure = status .. " " .. body
    end
  end
  if answered == count then
    io.write("answered\n")
    io.flush()
    wrk.thread:stop()
  end
end

-- utime + stime of the whole process (every thread, ended ones included), fields 14 and 15 of stat.
local function cpu_ticks()
  local file = io.open("/proc/self/stat", "r")
  if file == nil then
    return -1
  end
  local fields = {}
  for field in file:read("*l"):match("%) (.*)"):gmatch("%S+") do
    table.insert(fields, field)
  end
  file:close()
  return tonumber(fields[12]) + tonumber(fields[13])
end

function done(summary, latency, requests)
  local thread = threads[1]
  local errors = summary.errors
  io.write(string.format('{"sent":%d,"answered":%d,"failed":%d,"firstFailure":%q,"socketErrors":%d,"cpuTicks":%d}\n',
    thread:get("sent"), thread:get("answered"), thread:get("failed"), thread:get("first_failure"),
    errors.connect + errors.read + errors.write + errors.timeout, cpu_ticks()))
end
