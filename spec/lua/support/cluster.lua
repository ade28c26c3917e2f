-- Test support: real `clustershazbot` processes on loopback, HTTP to them, bounded polling.
--
-- Everything a spec starts is recorded and killed by cluster.cleanup(), so a failing spec
-- leaves no process behind. Ports come from the kernel (bind to port 0), addresses are
-- always 127.0.0.1.

local socket = require "socket"
local http = require "socket.http"
local ltn12 = require "ltn12"
local cjson = require "cjson"
local system = require "system"

local cluster = {}

cluster.bin = assert(os.getenv("SHAZBOT_BIN"), "SHAZBOT_BIN must name the clustershazbot program")
cluster.secret = "gossip-secret"
cluster.control_secret = "control-secret"
cluster.update_auth = "update-auth"

local scratch = os.getenv("SHAZBOT_TMP") or "/tmp"
local started = {} -- pid -> true, for cleanup
local dir_count = 0

function cluster.now() return system.monotime() end
function cluster.sleep(seconds) system.sleep(seconds) end

-- Polls `fn` every 50 ms until it returns a true value (returned) or `timeout` seconds pass
-- (then fails the spec, saying what it waited for and the last error or value).
function cluster.wait_until(timeout, what, fn)
  local deadline = cluster.now() + timeout
  local last
  repeat
    local ok, value = pcall(fn)
    if ok and value then return value end
    last = ok and tostring(value) or value
    cluster.sleep(0.05)
  until cluster.now() > deadline
  error(string.format("timed out after %.1f s waiting for %s (last: %s)", timeout, what, tostring(last)), 2)
end

-- A port nobody listens on right now, below the kernel's ephemeral range: a port from that
-- range (what binding to port 0 gives) can be taken by any outgoing connection, a node's
-- included, before the process meant to listen on it has started.
-- SHAZBOT_SPEC_PORTS=low-high narrows the range, for a machine shared with others who have
-- ranges of their own.
local handed_out = {}
local port_low, port_high = (os.getenv("SHAZBOT_SPEC_PORTS") or ""):match("^(%d+)%-(%d+)$")
port_low, port_high = tonumber(port_low) or 20000, tonumber(port_high) or 32000
function cluster.free_port()
  for _ = 1, 1000 do
    local port = math.random(port_low, port_high)
    if not handed_out[port] then
      local s = socket.bind("127.0.0.1", port)
      if s then
        s:close()
        handed_out[port] = true
        return port
      end
    end
  end
  error(string.format("no free port found between %d and %d", port_low, port_high))
end

function cluster.tempdir()
  dir_count = dir_count + 1
  local path = string.format("%s/shazbot-spec-%d-%d-%d", scratch, os.time(), math.random(1e6), dir_count)
  assert(os.execute("mkdir -p '" .. path .. "'"))
  return path
end

local function quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end
-- `s` as one word for sh.
cluster.quote = quote

-- Writes `data` to `path`, whole.
function cluster.write_file(path, data)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
end

-- Starts `clustershazbot <args>` with `env` (a table) added to the environment, under
-- `wrapper` (a command prefix such as valgrind's) if given. Returns a process handle
-- { pid, log, exitfile }.
function cluster.spawn(args, env, dir, wrapper)
  return cluster.spawn_program(cluster.bin, args, env, dir, wrapper)
end

-- The same for any program.
function cluster.spawn_program(program, args, env, dir, wrapper)
  dir = dir or cluster.tempdir()
  local n = 0
  for _ in pairs(started) do n = n + 1 end
  local log = string.format("%s/proc-%d-%d.log", dir, n, math.random(1e9))
  local pidfile, exitfile = log .. ".pid", log .. ".exit"
  local assignments = {}
  for k, v in pairs(env or {}) do assignments[#assignments + 1] = k .. "=" .. quote(v) end
  -- The subshell waits for the program so that its exit status can be read afterwards.
  local cmd = string.format("( env %s %s %s %s >%s 2>&1 & echo $! >%s; wait $!; echo $? >%s ) >/dev/null 2>&1 &",
    table.concat(assignments, " "), wrapper or "", quote(program), args, quote(log), quote(pidfile), quote(exitfile))
  assert(os.execute(cmd))
  local pid = cluster.wait_until(5, "the pid of " .. args, function()
    local f = io.open(pidfile)
    if not f then return nil end
    local p = tonumber(f:read("a"))
    f:close()
    return p
  end)
  local proc = { pid = pid, log = log, exitfile = exitfile }
  started[pid] = proc
  return proc
end

-- The exit status once the process has ended, else nil.
function cluster.exit_status(proc)
  local f = io.open(proc.exitfile)
  if not f then return nil end
  local status = tonumber(f:read("a"))
  f:close()
  return status
end

function cluster.wait_exit(proc, timeout)
  return cluster.wait_until(timeout, "the exit of pid " .. proc.pid, function() return cluster.exit_status(proc) end)
end

function cluster.signal(proc, sig)
  os.execute(string.format("kill -%s %d 2>/dev/null", sig, proc.pid))
end

function cluster.read_log(proc)
  local f = io.open(proc.log)
  if not f then return "" end
  local text = f:read("a")
  f:close()
  return text
end

-- Kills every process a spec started, then fails if any of them reported a sanitizer error
-- (the suite also runs on a build with AddressSanitizer and UndefinedBehaviorSanitizer).
function cluster.cleanup()
  local reports = {}
  for pid, proc in pairs(started) do
    os.execute(string.format("kill -9 %d 2>/dev/null", pid))
    local text = cluster.read_log(proc)
    if text:find("ERROR: AddressSanitizer", 1, true) or text:find("ERROR: LeakSanitizer", 1, true)
        or text:find("runtime error:", 1, true) then
      reports[#reports + 1] = proc.log .. ":\n" .. text
    end
  end
  started = {}
  assert(#reports == 0, "sanitizer reports:\n" .. table.concat(reports, "\n"))
end

-- HTTP: returns status, body, headers. `body` may be a string or a table (sent as JSON).
function cluster.request(method, url, body, headers)
  if type(body) == "table" then body = cjson.encode(body) end
  local out = {}
  local h = {}
  for k, v in pairs(headers or {}) do h[k] = v end
  if body then
    h["Content-Length"] = tostring(#body)
    h["Content-Type"] = h["Content-Type"] or "application/json"
  end
  local ok, status, response_headers = http.request {
    url = url, method = method, headers = h,
    source = body and ltn12.source.string(body) or nil,
    sink = ltn12.sink.table(out),
  }
  if not ok then return nil, status end
  return status, table.concat(out), response_headers
end

function cluster.json(method, url, body, headers)
  local status, text = cluster.request(method, url, body, headers)
  if not status then return nil, text end
  local ok, decoded = pcall(cjson.decode, text)
  return status, ok and decoded or text, text
end

-- Raw HTTP over one TCP connection, for what an HTTP library would not send or would hide.

-- The bytes of one request; `body` gets a Content-Length.
function cluster.raw_request(method, path, body, headers)
  local lines = { string.format("%s %s HTTP/1.1", method, path), "Host: 127.0.0.1" }
  for k, v in pairs(headers or {}) do lines[#lines + 1] = k .. ": " .. v end
  if body then lines[#lines + 1] = "Content-Length: " .. #body end
  return table.concat(lines, "\r\n") .. "\r\n\r\n" .. (body or "")
end

-- Reads one answer (status line, headers, a body of Content-Length bytes, none for HEAD).
-- Returns status, headers (lower-case names), body.
function cluster.read_answer(conn, head)
  local line = assert(conn:receive("*l"))
  local status = tonumber(line:match("^HTTP/1%.%d (%d%d%d)"))
  assert(status, "not a status line: " .. line)
  local headers = {}
  while true do
    local h = assert(conn:receive("*l"))
    if h == "" then break end
    local name, value = h:match("^([^:]+):%s*(.-)%s*$")
    headers[name:lower()] = value
  end
  local length = tonumber(headers["content-length"] or "0")
  local body = ""
  if not head and length > 0 then body = assert(conn:receive(length)) end
  return status, headers, body
end

-- Polls a connection (without blocking) until the peer has closed it.
function cluster.closed_by_peer(conn)
  conn:settimeout(0)
  local _, err = conn:receive(4096)
  return err == "closed"
end

-- Sends `bytes` to 127.0.0.1:`port` on a connection of their own and reads the answer. Returns
-- status, headers, the body decoded as JSON (nil if it is not JSON) and the body as text, and
-- the connection, still open.
function cluster.raw_exchange(port, bytes)
  local conn = assert(socket.connect("127.0.0.1", port))
  conn:settimeout(5)
  assert(conn:send(bytes))
  local status, headers, body = cluster.read_answer(conn)
  local ok, decoded = pcall(cjson.decode, body)
  return status, headers, ok and decoded or nil, body, conn
end

-- Whether this machine has an IPv6 loopback (some containers have none).
function cluster.has_ipv6_loopback()
  local probe = socket.tcp6 and socket.tcp6()
  local ok = probe and probe:bind("::1", 0)
  if probe then probe:close() end
  return ok and true or false
end

-- valgrind as the specs of spec/valgrind run it: a memory error, or a block definitely or
-- indirectly lost, makes the exit status 99. The command prefix, its report going to `log`.
function cluster.valgrind_command(log)
  return "valgrind --error-exitcode=99 --leak-check=full --show-leak-kinds=definite,indirect " ..
         "--errors-for-leak-kinds=definite,indirect --log-file=" .. quote(log)
end

-- The report in `log`, and its line on leaks, for the spec's output.
function cluster.valgrind_report(log)
  local f = assert(io.open(log))
  local report = f:read("a")
  f:close()
  return report, report:match("(definitely lost:[^\n]*)") or report:match("(All heap blocks were freed[^\n]*)") or ""
end

-- Stops `proc`, run under valgrind_command(log), with SIGTERM. Returns its exit status, then
-- what valgrind_report returns.
function cluster.stop_under_valgrind(proc, log)
  cluster.signal(proc, "TERM")
  local status = cluster.wait_exit(proc, 60)
  return status, cluster.valgrind_report(log)
end

-- Runs a shell command; returns its exit status and everything it printed.
function cluster.sh(cmd)
  local p = io.popen(cmd .. " 2>&1; echo \"exit:$?\"")
  local out = p:read("a")
  p:close()
  return tonumber(out:match("exit:(%d+)%s*$")), (out:gsub("exit:%d+%s*$", ""))
end

-- A store and node configuration ----------------------------------------------------------

-- Starts a master-list store keeping its list in `dir`/master-list.json, on `port` if given
-- (a restarted store takes its old port back). `opts`: { env (a table added to the
-- environment), wrapper (a command prefix), host (of --listen HOST:PORT: default 127.0.0.1,
-- "[::1]", or "" for every interface, then asked at 127.0.0.1), answers (url -> whether a GET
-- of it is answered 200: default cluster.request from this process; a store in another
-- network namespace is asked from there, support/netns.lua) }. Returns { proc, port, file,
-- url }.
function cluster.start_store(dir, port, opts)
  opts = opts or {}
  dir = dir or cluster.tempdir()
  port = port or cluster.free_port()
  local host = opts.host or "127.0.0.1"
  local file = dir .. "/master-list.json"
  local proc = cluster.spawn(string.format("store --listen %s:%d --file %s --auth %s",
    host, port, quote(file), quote(cluster.update_auth)), opts.env or {}, dir, opts.wrapper)
  local url_host = host ~= "" and host or "127.0.0.1"
  local store = { proc = proc, port = port, file = file, url = string.format("http://%s:%d/", url_host, port) }
  local answers = opts.answers or cluster.answers
  cluster.wait_until(5, "the store to answer", function() return answers(store.url) end)
  return store
end

-- A new table with the entries of each table given, later ones winning: settings made of a
-- spec's defaults and a case's own.
function cluster.merged(...)
  local out = {}
  for i = 1, select("#", ...) do
    for k, v in pairs(select(i, ...) or {}) do out[k] = v end
  end
  return out
end

-- examples/c-host/main.c built as its README says: the build tree installed under
-- `dir`/prefix, compiled with pkg-config (and the sanitizers when the build has them).
-- Returns the program's path; fails the spec with the compiler's output if it does not build.
function cluster.build_c_host(dir)
  local build = assert(os.getenv("SHAZBOT_BUILD"), "SHAZBOT_BUILD must name the build tree")
  local source = assert(os.getenv("SHAZBOT_SOURCE"), "SHAZBOT_SOURCE must name the source tree")
  local prefix = dir .. "/prefix"
  local status, out = cluster.sh(string.format("cmake --install '%s' --prefix '%s'", build, prefix))
  assert(status == 0, out)
  local pc = "PKG_CONFIG_PATH='" .. prefix .. "/lib/pkgconfig' pkg-config"
  -- A library built with the sanitizers needs a program built with them.
  local sanitize = os.getenv("SHAZBOT_SANITIZE") == "ON" and "-fsanitize=address,undefined" or ""
  status, out = cluster.sh(string.format("cc -Wall -Wextra -Werror %s '%s/examples/c-host/main.c' -o '%s/c-host' $(%s --cflags --libs clustershazbot) -Wl,-rpath,'%s/lib'",
    sanitize, source, dir, pc, prefix))
  assert(status == 0, out)
  return dir .. "/c-host"
end

-- Environment of a node at `port` using `store`; `extra` overrides or adds variables.
function cluster.node_env(port, store, extra, host)
  host = host or "127.0.0.1"
  local env = {
    SHAZBOT_SECRET = cluster.secret,
    SHAZBOT_CONTROL_SECRET = cluster.control_secret,
    SHAZBOT_BASE_URL = string.format("http://%s:%d/", host, port),
    SHAZBOT_LISTEN = string.format("%s:%d", host, port),
    SHAZBOT_MASTER_LIST = store and store.url or "http://127.0.0.1:9/",
    SHAZBOT_MASTER_LIST_UPDATE = store and store.url or "http://127.0.0.1:9/",
    SHAZBOT_MASTER_LIST_UPDATE_AUTH = cluster.update_auth,
    SHAZBOT_GOSSIP_INTERVAL = "1",
    SHAZBOT_MASTER_ANNOUNCE_MINIMUM = "1",
    SHAZBOT_MASTER_ANNOUNCE_INTERVAL = "1",
    HAPPY_SECRET = "none",
  }
  for k, v in pairs(extra or {}) do env[k] = v or nil end
  return env
end

-- Whether a GET of `url` is answered 200, asked from this process.
function cluster.answers(url) return cluster.request("GET", url) == 200 end

-- Starts a node and waits until it answers. Returns { proc, port, url }. `opts`: { host (a
-- loopback address, default 127.0.0.1), port, dir, wrapper, timeout (seconds to wait for the
-- first answer, default 5), answers (as for start_store) }.
function cluster.start_node(store, extra, opts)
  opts = opts or {}
  local host = opts.host or "127.0.0.1"
  local port = opts.port or cluster.free_port()
  local proc = cluster.spawn("serve", cluster.node_env(port, store, extra, host), opts.dir, opts.wrapper)
  local node = { proc = proc, port = port, url = string.format("http://%s:%d/", host, port) }
  cluster.wait_until(opts.timeout or 5, "node " .. node.url .. " to answer", function()
    if cluster.exit_status(proc) then error("node exited: " .. cluster.read_log(proc)) end
    return (opts.answers or cluster.answers)(node.url .. "clustershazbot/list")
  end)
  return node
end

-- The node's full list as { online = { [baseUrl] = record }, offline = { ... } }.
function cluster.view(node)
  local status, list = cluster.json("GET", node.url .. "clustershazbot/list", nil,
    { Authorization = cluster.control_secret })
  assert(status == 200, "list of " .. node.url .. " answered " .. tostring(status))
  return cluster.view_of(list)
end

-- The same from a decoded `GET clustershazbot/list` answer.
function cluster.view_of(list)
  local view = { online = {}, offline = {} }
  for _, r in ipairs(list.online) do view.online[r.baseUrl] = r end
  for _, r in ipairs(list.offline or {}) do view.offline[r.baseUrl] = r end
  return view
end

-- True when every node in `nodes` answers and lists every one of them online.
function cluster.converged(nodes)
  for _, n in ipairs(nodes) do
    local ok, view = pcall(cluster.view, n)
    if not ok then return false end
    for _, other in ipairs(nodes) do
      if not view.online[other.url] then return false end
    end
  end
  return true
end

-- A gossip message as JSON text (lua-cjson would write an empty list as {}). `extra`: more
-- top-level members, as JSON text.
function cluster.gossip_body(online, offline, extra)
  local function list(records)
    local parts = {}
    for i, r in ipairs(records or {}) do parts[i] = cjson.encode(r) end
    return "[" .. table.concat(parts, ",") .. "]"
  end
  return string.format('{"message":"gossip","online":%s,"offline":%s%s}', list(online), list(offline),
    extra and "," .. extra or "")
end

return cluster
