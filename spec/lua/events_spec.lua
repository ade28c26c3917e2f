-- Change events (issue 12, part 1), end to end with real processes: one scenario (a member
-- joins, is killed with -9, comes back, leaves, rejoins) seen by two observing nodes, each
-- through every way it delivers events, and each way giving the same sequence:
--
--   observer A: `clustershazbot serve --on-change CMD`: its Lua policy hook on_change (kept in
--               /happy by spec/lua/fixtures/events_policy.lua), `clustershazbot watch --json`,
--               and the --on-change handler's environment and stdin;
--   observer B: a C host (examples/c-host, built against the installed library) printing what
--               its shazbot_on_change callback gets, its Lua hook, and `watch --json`.
--
-- The times are printed: when each observer saw each change of the member, and how long after
-- that the handler ran. Ports 24000-24499.

local cluster = require "support.cluster"
local cjson = require "cjson"

local sh = cluster.sh

local free_port = cluster.free_port

local function quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function lines_of(path)
  local f = io.open(path)
  if not f then return {} end
  local out = {}
  for line in f:lines() do out[#out + 1] = line end
  f:close()
  return out
end

-- The events in a log of JSON lines (`prefix` before each, if any), decoded, by seq.
local function json_events(path, prefix)
  local out = {}
  for _, line in ipairs(lines_of(path)) do
    local text = prefix and line:sub(1, #prefix) == prefix and line:sub(#prefix + 1) or (not prefix and line)
    if text and text:sub(1, 1) == "{" then
      local ok, ev = pcall(cjson.decode, text)
      if ok and type(ev) == "table" and ev.seq then out[#out + 1] = ev end
    end
  end
  table.sort(out, function(a, b) return a.seq < b.seq end)
  return out
end

-- A record's status in an event ("none" when there was none); the handler's environment says
-- it as a word already.
local function side(s)
  if type(s) == "string" then return s end
  return type(s) == "table" and s.status or "none"
end

-- "seq kind baseUrl before->after", the form the Lua hook keeps.
local function summary(ev)
  return string.format("%d %s %s %s->%s", ev.seq, ev.kind, ev.baseUrl, side(ev.before), side(ev.after))
end

local function summaries(events)
  local out = {}
  for i, ev in ipairs(events) do out[i] = summary(ev) end
  return out
end

local function hook_seen(node)
  local status, payload = cluster.json("GET", node.url .. "happy")
  assert(status == 200, "happy of " .. node.url .. " answered " .. tostring(status))
  return payload.extensions.events.seen
end

describe("change events", function()
  teardown(function() cluster.cleanup() end)

  it("are the same sequence through the Lua hook, the C callback, watch --json and --on-change", function()
    local source = assert(os.getenv("SHAZBOT_SOURCE"), "SHAZBOT_SOURCE must name the source tree")
    local dir = cluster.tempdir()
    local c_host = cluster.build_c_host(dir) -- built as examples/c-host says

    local policy = source .. "/spec/lua/fixtures/events_policy.lua"
    local store = cluster.start_store(dir, free_port())
    local function start(program, args, port)
      local node = { port = port, url = string.format("http://127.0.0.1:%d/", port) }
      node.proc = cluster.spawn_program(program, args, cluster.node_env(port, store, { SHAZBOT_POLICY = policy }), dir)
      cluster.wait_until(10, node.url .. " to answer", function()
        if cluster.exit_status(node.proc) then error("exited: " .. cluster.read_log(node.proc)) end
        return cluster.answers(node.url .. "clustershazbot/list")
      end)
      return node
    end

    -- The handler: what it was given in its environment, on stdin, and when it ran.
    local handler_env, handler_stdin = dir .. "/handler-env.jsonl", dir .. "/handler-stdin.jsonl"
    local handler = string.format(
      [[printf '{"seq":%%s,"kind":"%%s","baseUrl":"%%s","before":"%%s","after":"%%s","ran":%%s}\n' ]] ..
      [["$SHAZBOT_EVENT_SEQ" "$SHAZBOT_EVENT_KIND" "$SHAZBOT_EVENT_URL" "$SHAZBOT_EVENT_BEFORE" "$SHAZBOT_EVENT_AFTER" ]] ..
      [["$(date +%%s%%3N)" >> %s; cat >> %s]], quote(handler_env), quote(handler_stdin))
    local a = start(cluster.bin, "serve --on-change " .. quote(handler), free_port())
    local b = start(c_host, "", free_port())
    local watch_a = cluster.spawn_program(cluster.bin, string.format("watch --json --url %s --control-secret %s",
      a.url, cluster.control_secret), {}, dir)
    local watch_b = cluster.spawn_program(cluster.bin, string.format("watch --json --url %s --control-secret %s",
      b.url, cluster.control_secret), {}, dir)
    cluster.wait_until(30, "the observers to list each other", function() return cluster.converged({ a, b }) end)

    -- The scenario. Each step waits until both observers agree, so that each change is seen.
    local member_port = free_port()
    local member_url = string.format("http://127.0.0.1:%d/", member_port)
    local t0 = cluster.now()
    local steps = {}
    local function both(what, status_wanted)
      cluster.wait_until(60, "both observers to list the member " .. status_wanted .. " (" .. what .. ")", function()
        for _, n in ipairs({ a, b }) do
          if not cluster.view(n)[status_wanted][member_url] then return false end
        end
        return true
      end)
      steps[#steps + 1] = string.format("%-28s agreed after %6.2f s", what, cluster.now() - t0)
    end
    local member = cluster.start_node(store, nil, { port = member_port, dir = dir })
    both("join", "online")
    cluster.signal(member.proc, "KILL")
    both("kill -9", "offline")
    member = cluster.start_node(store, nil, { port = member_port, dir = dir })
    both("back (alive)", "online")
    cluster.signal(member.proc, "TERM")
    assert.are.equal(0, cluster.wait_exit(member.proc, 30))
    both("leave (SIGTERM)", "offline")
    member = cluster.start_node(store, nil, { port = member_port, dir = dir })
    both("rejoin", "online")

    -- Every way of an observer gives the same events; they arrive at their own pace.
    local function settled(what, ways)
      return cluster.wait_until(20, what .. ": every way to have the same events", function()
        local first
        for name, get in pairs(ways) do
          local got = table.concat(get(), "\n")
          first = first or got
          if got ~= first then return false end
        end
        return first ~= "" and first
      end)
    end
    local seen_a = settled("observer A", {
      hook = function() return hook_seen(a) end,
      watch = function() return summaries(json_events(watch_a.log)) end,
      handler_env = function() return summaries(json_events(handler_env)) end,
      handler_stdin = function() return summaries(json_events(handler_stdin)) end,
    })
    local seen_b = settled("observer B", {
      hook = function() return hook_seen(b) end,
      watch = function() return summaries(json_events(watch_b.log)) end,
      callback = function() return summaries(json_events(b.proc.log, "c-host: event ")) end,
    })
    -- The handler's stdin and the C callback are the event's JSON itself: the same events, every
    -- field, as watch's.
    assert.are.same(json_events(watch_a.log), json_events(handler_stdin))
    assert.are.same(json_events(watch_b.log), json_events(b.proc.log, "c-host: event "))
    -- Numbered from 1 without a gap, each way.
    for _, events in ipairs({ json_events(watch_a.log), json_events(watch_b.log) }) do
      for i, ev in ipairs(events) do assert.are.equal(i, ev.seq) end
    end

    -- What each observer saw of the member: joined; offline after the kill (its own verdict,
    -- "failed", or another's, "offline"); alive; left (its goodbye); alive again. A loaded
    -- machine may add a false verdict and its refutation (failed|offline then alive).
    local ran = {}
    for _, ev in ipairs(json_events(handler_env)) do ran[ev.seq] = ev.ran end
    print()
    for _, line in ipairs(steps) do print("  " .. line) end
    for _, obs in ipairs({ { "A (serve --on-change)", watch_a, a }, { "B (C host)", watch_b, b } }) do
      local kinds = {}
      print("  observer " .. obs[1] .. ", events of " .. member_url .. ":")
      for _, ev in ipairs(json_events(obs[2].log)) do
        if ev.baseUrl == member_url then
          kinds[#kinds + 1] = ev.kind
          print(string.format("    #%-3d %-8s %-7s -> %-7s at %s%s", ev.seq, ev.kind, side(ev.before), side(ev.after),
            os.date("!%H:%M:%S", ev.time // 1000) .. string.format(".%03d", ev.time % 1000),
            obs[3] == a and ran[ev.seq] and string.format(", handler ran %d ms later", ran[ev.seq] - ev.time) or ""))
        end
      end
      local sequence = table.concat(kinds, " ")
      local pattern_ok = sequence:match("^join ") and sequence:match(" left alive$")
        and (sequence:match("^join failed alive") or sequence:match("^join offline alive"))
      assert(pattern_ok, "observer " .. obs[1] .. " saw: " .. sequence)
    end
    assert.is_truthy(seen_a:find(member_url, 1, true))
    assert.is_truthy(seen_b:find(member_url, 1, true))
  end)

  it("run at most 4 --on-change handlers at once, the others queued in order, the node never waiting", function()
    local dir = cluster.tempdir()
    local log = dir .. "/handlers.log"
    -- Each handler takes 0.5 s; it says when it started and ended.
    local handler = string.format([[echo "start $SHAZBOT_EVENT_SEQ $(date +%%s%%3N)" >> %s; sleep 0.5; ]] ..
      [[echo "end $SHAZBOT_EVENT_SEQ $(date +%%s%%3N)" >> %s]], quote(log), quote(log))
    local port = free_port()
    local node = { port = port, url = string.format("http://127.0.0.1:%d/", port) }
    -- No store, and no gossip to the made-up peers for a minute: only the joins are events.
    node.proc = cluster.spawn("serve --on-change " .. quote(handler),
      cluster.node_env(port, nil, { SHAZBOT_GOSSIP_INTERVAL = "60" }), dir)
    cluster.wait_until(10, "the node to answer", function() return cluster.answers(node.url .. "clustershazbot/list") end)
    local peers = {}
    local now = os.time() * 1000
    for i = 1, 12 do
      peers[i] = { baseUrl = string.format("http://127.0.0.1:%d/", 1000 + i), monitor = false, lastUpdate = now }
    end
    local posted = cluster.now()
    local status = cluster.request("POST", node.url .. "clustershazbot/gossip", cluster.gossip_body(peers, {}),
      { Authorization = cluster.secret })
    posted = cluster.now() - posted
    assert.are.equal(200, status)
    -- While the handlers run, the node answers at once.
    local slowest = 0
    for _ = 1, 10 do
      local t = cluster.now()
      assert.are.equal(200, (cluster.request("GET", node.url .. "clustershazbot/list")))
      slowest = math.max(slowest, cluster.now() - t)
      cluster.sleep(0.05)
    end
    local ended = cluster.wait_until(30, "the 12 handlers to end", function()
      local lines = lines_of(log)
      local n = 0
      for _, line in ipairs(lines) do if line:match("^end ") then n = n + 1 end end
      return n == 12 and lines
    end)
    local marks, starts = {}, {}
    for _, line in ipairs(ended) do
      local what, seq, ms = line:match("^(%a+) (%d+) (%d+)$")
      marks[#marks + 1] = { what = what, seq = tonumber(seq), ms = tonumber(ms) }
      if what == "start" then starts[#starts + 1] = tonumber(seq) end
    end
    -- Ends before starts at the same millisecond: a handler starts once another was reaped.
    table.sort(marks, function(x, y)
      if x.ms ~= y.ms then return x.ms < y.ms end
      return x.what == "end" and y.what ~= "end"
    end)
    local running, most = 0, 0
    for _, m in ipairs(marks) do
      running = running + (m.what == "start" and 1 or -1)
      most = math.max(most, running)
    end
    local first, last = marks[1].ms, marks[#marks].ms
    print(string.format("\n  12 handlers of 0.5 s: at most %d at once, %.2f s in all; the gossip of the 12 joins "
      .. "answered in %.0f ms, the slowest list answer meanwhile in %.0f ms", most, (last - first) / 1000,
      posted * 1000, slowest * 1000))
    assert.are.equal(4, most)
    assert.is_true(last - first >= 1400) -- three waves of 0.5 s, not one
    -- Started in the order of the events (the queue is a FIFO, 4 taken at a time).
    for i = 5, 12 do assert.is_true(starts[i] > starts[i - 4], table.concat(starts, " ")) end
    -- Bounds loose enough for a loaded machine; a loop that waited for the handlers would take
    -- 6 s to answer the gossip (12 of 0.5 s), 0.5 s at least for a list.
    assert.is_true(posted < 1.5, "the gossip took " .. posted .. " s to be answered")
    assert.is_true(slowest < 1, "the node took " .. slowest .. " s to answer while handlers ran")
  end)

  it("reach a Lua 5.4 host's node:on_change function as they reach its policy hook", function()
    local install = require "support.install"
    local installed = install.prefix()
    local source = assert(os.getenv("SHAZBOT_SOURCE"))
    local preload = ""
    if os.getenv("SHAZBOT_SANITIZE") == "ON" then
      local _, runtimes = sh("echo $(gcc -print-file-name=libasan.so):$(gcc -print-file-name=libubsan.so)")
      preload = "LD_PRELOAD=" .. quote(runtimes:gsub("%s+$", "")) .. " "
    end
    local port, peer = free_port(), string.format("http://127.0.0.1:%d/", free_port())
    local code, out = sh(string.format("%sLUA_PATH=%s LUA_CPATH=%s lua5.4 %s %d %s", preload,
      quote(installed.lua_path .. ";;"), quote(installed.lua_cpath .. ";;"),
      quote(source .. "/spec/lua/fixtures/events_lua_host.lua"), port, peer))
    assert.are.equal(0, code, out)
    local self = string.format("http://127.0.0.1:%d/", port)
    assert.is_truthy(out:find("callback 1 join " .. peer .. " none->online\ncallback 2 offline " .. peer
      .. " online->offline\ncallback 3 self " .. self .. " online->offline\n", 1, true), out)
    assert.is_truthy(out:find("hook 1 join " .. peer .. "\nhook 2 offline " .. peer .. "\nhook 3 self " .. self, 1, true), out)
  end)

  it("reach the FFI binding's node:on_change in nginx, polled after each step", function()
    if os.getenv("SHAZBOT_SANITIZE") == "ON" then
      print("# sanitizer build: nginx cannot load the sanitized library; see the normal build's suite")
      return
    end
    assert.are.equal(0, (sh("command -v nginx")), "nginx is not installed (tools/setup.sh installs it)")
    local install = require "support.install"
    local installed = install.prefix()
    local dir = cluster.tempdir()
    local prefix = dir .. "/nginx"
    assert(os.execute(string.format("mkdir -p '%s/conf' '%s/logs'", prefix, prefix)))
    local port, peer = free_port(), string.format("http://127.0.0.1:%d/", free_port())
    local conf = [[
user root;
load_module /usr/lib/nginx/modules/ndk_http_module.so;
load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;
worker_processes 1;
error_log logs/error.log;
pid logs/nginx.pid;
events {}
http {
    access_log off;
    lua_package_path "@LUA_PATH@;;";
    server {
        listen 127.0.0.1:@PORT@;
        location = /events {
            content_by_lua_block {
                local shazbot = require("clustershazbot.ffi").open("@LIB@")
                local n = shazbot.new({ secret = "s", control_secret = "c", base_url = "http://127.0.0.1:@PORT@/",
                    master_list = "http://127.0.0.1:9/", master_list_update = "http://127.0.0.1:9/",
                    master_list_update_auth = "u", log_level = "error" })
                local lines = {}
                n:on_change(function(ev)
                    lines[#lines + 1] = string.format("%d %s %s %s->%s", ev.seq, ev.kind, ev.baseUrl,
                        ev.before and ev.before.status or "none", ev.after and ev.after.status or "none")
                end)
                n:start()
                local now = math.floor(ngx.now() * 1000)
                n:gossip_request("s", string.format('{"message":"gossip","online":[{"baseUrl":"@PEER@","lastUpdate":%d}],"offline":[]}', now))
                n:control_request("c", '{"message":"control","online":false}')
                lines[#lines + 1] = "before step: " .. #lines
                n:step(0)
                n:close()
                ngx.say(table.concat(lines, "\n"))
            }
        }
    }
}
]]
    conf = conf:gsub("@LUA_PATH@", installed.luajit_path):gsub("@PORT@", tostring(port)):gsub("@PEER@", peer)
      :gsub("@LIB@", installed.prefix .. "/lib/libclustershazbot.so")
    local f = assert(io.open(prefix .. "/conf/nginx.conf", "w"))
    f:write(conf)
    f:close()
    local master = cluster.spawn_program("nginx", string.format("-p '%s' -c conf/nginx.conf -g 'daemon off;'", prefix), {}, dir)
    local ok, err = pcall(function()
      local body = cluster.wait_until(10, "nginx to answer /events", function()
        if cluster.exit_status(master) then error("nginx exited: " .. cluster.read_log(master)) end
        local status, text = cluster.request("GET", string.format("http://127.0.0.1:%d/events", port))
        return status == 200 and text
      end)
      local self = string.format("http://127.0.0.1:%d/", port)
      assert.are.equal("before step: 0\n1 join " .. peer .. " none->online\n2 self " .. self .. " online->offline\n", body)
    end)
    sh(string.format("nginx -p '%s' -c conf/nginx.conf -s stop", prefix))
    assert(ok, tostring(err) .. "\n" .. cluster.read_log(master) .. "\n" .. (io.open(prefix .. "/logs/error.log") or io.open("/dev/null")):read("a"))
  end)

  it("hold a watcher's request until an event comes (a long poll), and answer it at the node's end", function()
    local dir = cluster.tempdir()
    local node = cluster.start_node(nil, nil, { port = free_port(), dir = dir })
    local auth = { Authorization = cluster.control_secret }
    -- Nothing comes: answered when the wait ends, empty.
    local t = cluster.now()
    local status, body = cluster.json("GET", node.url .. "clustershazbot/events?after=0&wait=0.5", nil, auth)
    local waited = cluster.now() - t
    assert.are.equal(200, status)
    assert.are.equal(0, #body.events)
    assert.is_true(waited >= 0.45, "answered after " .. waited .. " s")
    status, body = cluster.json("GET", node.url .. "clustershazbot/events?after=0&wait=soon", nil, auth)
    assert.are.equal(400, status)
    assert.is_truthy(body.error:find("wait", 1, true))
    -- A watcher held by the node gets the event as it comes: a join, 1 s after it asked.
    local watcher = cluster.spawn_program(cluster.bin, string.format("watch --json --count 1 --url %s --control-secret %s",
      node.url, cluster.control_secret), {}, dir)
    cluster.sleep(1)
    local joined = cluster.now()
    local peer = string.format("http://127.0.0.1:%d/", free_port())
    assert.are.equal(200, (cluster.request("POST", node.url .. "clustershazbot/gossip",
      cluster.gossip_body({ { baseUrl = peer, monitor = false, lastUpdate = os.time() * 1000 } }, {}),
      { Authorization = cluster.secret })))
    assert.are.equal(0, cluster.wait_exit(watcher, 10))
    local latency = cluster.now() - joined
    assert.is_truthy(cluster.read_log(watcher):find('"kind":"join","baseUrl":"' .. peer .. '"', 1, true))
    print(string.format("\n  a held watch printed the join %.0f ms after it", latency * 1000))
    assert.is_true(latency < 2, "the held watcher took " .. latency .. " s") -- not its 5 s wait
    -- A request still held when the node leaves is answered, not dropped.
    local held = dir .. "/held.out"
    os.execute(string.format("curl -s -H 'Authorization: %s' '%sclustershazbot/events?after=%d&wait=5' > %s 2>&1 &",
      cluster.control_secret, node.url, 1, quote(held)))
    cluster.sleep(0.5)
    cluster.signal(node.proc, "TERM")
    assert.are.equal(0, cluster.wait_exit(node.proc, 30))
    local text = cluster.wait_until(5, "the held request's answer", function()
      local f = io.open(held)
      local got = f and f:read("a")
      if f then f:close() end
      return got and got ~= "" and got
    end)
    assert.is_truthy(text:find('"kind":"self"', 1, true), text)
  end)

  it("are refused to a watcher without the control secret, and a bad `after` is a 400", function()
    local dir = cluster.tempdir()
    local node = cluster.start_node(nil, nil, { port = free_port(), dir = dir })
    local status, body = cluster.json("GET", node.url .. "clustershazbot/events")
    assert.are.equal(401, status)
    assert.are.equal("wrong or missing control secret", body.error)
    status, body = cluster.json("GET", node.url .. "clustershazbot/events?after=x1", nil,
      { Authorization = cluster.control_secret })
    assert.are.equal(400, status)
    assert.is_truthy(body.error:find("after", 1, true))
    status, body = cluster.json("POST", node.url .. "clustershazbot/events", "{}", { Authorization = cluster.control_secret })
    assert.are.equal(405, status)
    status, body = cluster.json("GET", node.url .. "clustershazbot/events?after=0", nil,
      { Authorization = cluster.control_secret })
    assert.are.equal(200, status)
    assert.are.equal(0, body.next)
    assert.are.equal(0, body.missed)
    -- watch: a refused secret is exit status 1 with the reason, no secret at all is usage (2).
    local code, out = sh(string.format("%s watch --url %s --control-secret wrong --count 1", quote(cluster.bin), node.url))
    assert.are.equal(1, code)
    assert.is_truthy(out:find("401", 1, true), out)
    code, out = sh(string.format("env -u SHAZBOT_CONTROL_SECRET %s watch --url %s --count 1", quote(cluster.bin), node.url))
    assert.are.equal(2, code, out)
    code, out = sh(string.format("%s watch --url %s --control-secret x --interval 0", quote(cluster.bin), node.url))
    assert.are.equal(2, code, out)
    -- serve --on-change without a command is bad usage, before anything starts.
    code, out = sh(string.format("%s serve --on-change", quote(cluster.bin)))
    assert.are.equal(2, code, out)
  end)
end)
