-- The Lua 5.4 module, installed with `cmake --install` into a fresh prefix and loaded from there
-- as a host would, in this very process: every function, both body forms, every error status,
-- policies given as Lua functions, and misuse.

local cluster = require "support.cluster"
local install = require "support.install"
local cjson = require "cjson"
local socket = require "socket"

local sh = cluster.sh

-- lua5.4 is not built with the sanitizers: a module that is can only be loaded with their
-- runtimes preloaded, which would also load them into every program this spec runs (cmake,
-- curl). So under the sanitizers this spec runs one host session in a child lua5.4 with the
-- runtimes preloaded, and the rest of it runs in the normal build's suite.
if os.getenv("SHAZBOT_SANITIZE") == "ON" then
  describe("the Lua module under the sanitizers", function()
    it("runs a host session with no sanitizer report", function()
      print("# sanitizer build: the module spec's other cases run in the normal build's suite")
      local build, source = os.getenv("SHAZBOT_BUILD"), os.getenv("SHAZBOT_SOURCE")
      local _, runtimes = sh("echo $(gcc -print-file-name=libasan.so):$(gcc -print-file-name=libubsan.so)")
      local status, out = sh(string.format(
        "LD_PRELOAD='%s' UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 LUA_CPATH='%s/lua/?.so;;' " ..
        "LUA_PATH='%s/lua/?.lua;%s/lua/?/init.lua;;' timeout 120 lua5.4 '%s/spec/lua/fixtures/module_session.lua'",
        runtimes:gsub("%s+$", ""), build, source, source, source))
      assert.are.equal(0, status, out)
      assert.truthy(out:find("done", 1, true), out)
      assert.is_nil(out:find("Sanitizer", 1, true), out)
      assert.is_nil(out:find("runtime error:", 1, true), out)
    end)
  end)
  return
end

describe("the Lua module", function()
  local shazbot, installed

  setup(function()
    installed = install.prefix()
    package.path = installed.lua_path .. ";" .. package.path
    package.cpath = installed.lua_cpath .. ";" .. package.cpath
    shazbot = require "clustershazbot"
  end)

  teardown(function() cluster.cleanup() end)

  local function options(extra)
    local port = cluster.free_port()
    local o = {
      secret = cluster.secret, control_secret = cluster.control_secret,
      base_url = string.format("http://127.0.0.1:%d/", port),
      master_list = "http://127.0.0.1:9/", master_list_update = "http://127.0.0.1:9/",
      master_list_update_auth = cluster.update_auth, gossip_interval = 3600,
      master_announce_minimum = 3600, happy_secret = "none", log_level = "error",
    }
    for k, v in pairs(extra or {}) do o[k] = v end
    return o, port
  end

  -- An HTTP exchange with a node's own listener. This process is the node's host, so it steps
  -- the node while it waits for the answer (a blocking client would wait for itself).
  local function exchange(node, port, request)
    local client = assert(socket.connect("127.0.0.1", port))
    client:settimeout(0)
    local pending = request
    local received = {}
    local deadline = cluster.now() + 10
    while cluster.now() < deadline do
      node:step(0.01)
      if #pending > 0 then
        local sent, _, partial = client:send(pending)
        pending = pending:sub((sent or partial or 0) + 1)
      end
      local data, err, partial = client:receive(65536)
      received[#received + 1] = data or partial
      if err == "closed" then break end
    end
    client:close()
    local text = table.concat(received)
    return tonumber(text:match("^HTTP/1%.%d (%d+)")), text:match("\r\n\r\n(.*)$")
  end

  it("is found in the installed layout, by the paths the README gives", function()
    assert.are.equal(installed.prefix .. "/lib/lua/5.4/clustershazbot/native.so",
      package.searchpath("clustershazbot.native", package.cpath))
    local status, out = sh(string.format("LUA_PATH='%s;;' LUA_CPATH='%s;;' lua5.4 -e %q",
      installed.lua_path, installed.lua_cpath,
      'local s = require "clustershazbot" print(s.version, package.searchpath("clustershazbot", package.path))'))
    assert.are.equal(0, status, out)
    assert.are.equal("0.1.0\t" .. installed.prefix .. "/share/lua/5.4/clustershazbot/init.lua\n", out)
  end)

  it("answers every request, with both body forms and every error status", function()
    local node <close> = shazbot.new(options({ happy_secret = "health" }))
    for _, call in ipairs({
      function() return node:gossip_request(cluster.secret, '{"message":"gossip","online":[]}') end,
      function() return node:list_request() end,
      function() return node:control_request(cluster.control_secret, { message = "control", online = true }) end,
    }) do
      local body, status = call()
      assert.are.equal(503, status) -- before start
      assert.are.equal("engine not started", cjson.decode(body).error)
    end
    assert.is_false(node:is_running())
    assert.is_true(node:start())
    assert.is_true(node:is_running())

    local record = { baseUrl = "http://127.0.0.1:1/", monitor = false, lastUpdate = 1 }
    local body, status = node:gossip_request(cluster.secret, { message = "gossip", online = { record }, offline = {} })
    assert.are.equal(200, status)
    assert.are.equal("gossip", cjson.decode(body).message)
    body, status = node:gossip_request(cluster.secret, cjson.encode({ message = "gossip", online = { record } }))
    assert.are.equal(200, status)
    assert.are.equal(2, #cjson.decode(body).online)
    assert.are.equal(401, select(2, node:gossip_request("wrong", { message = "gossip", online = {} })))
    assert.are.equal(401, select(2, node:gossip_request(nil, { message = "gossip", online = {} })))
    assert.are.equal(400, select(2, node:gossip_request(cluster.secret, "{not json")))
    assert.are.equal(400, select(2, node:gossip_request(cluster.secret, { message = "gossip" })))
    assert.are.equal(400, select(2, node:gossip_request(cluster.secret, { message = "gossip", online = { 5 } })))
    -- A record of the wrong type is skipped, not a refusal (merge rule 1).
    assert.are.equal(200, select(2, node:gossip_request(cluster.secret, { message = "gossip", online = { { baseUrl = 5 } } })))
    assert.are.equal(400, select(2, node:gossip_request(cluster.secret))) -- no body at all

    body, status = node:list_request()
    assert.are.equal(200, status)
    assert.is_nil(cjson.decode(body).offline)
    body = node:list_request(cluster.control_secret)
    assert.is_table(cjson.decode(body).offline)

    assert.are.equal(401, select(2, node:control_request("wrong", { message = "control", online = false })))
    assert.are.equal(400, select(2, node:control_request(cluster.control_secret, { message = "control" })))
    assert.are.equal(400, select(2, node:control_request(cluster.control_secret, "[]")))
    body, status = node:control_request(cluster.control_secret, { message = "control", online = false })
    assert.are.equal(200, status)
    assert.is_true(cjson.decode(body).success)
    local list = node:server_list(true)
    assert.are.same({ record }, list.online) -- the record merged above, as a Lua table
    assert.are.equal(1, #list.offline) -- this node
    assert.is_nil(node:server_list(false).offline)
    assert.are.equal(200, select(2, node:control_request(cluster.control_secret, '{"message":"control","online":true}')))
    assert.are.equal(2, #node:server_list().online)

    assert.are.equal(401, select(2, node:happy_request()))
    assert.are.equal(401, select(2, node:happy_request("wrong", true)))
    body, status = node:happy_request("health")
    assert.are.equal(200, status)
    local entry = cjson.decode(body).extensions.clustershazbot
    assert.are.equal("ok", entry.status)
    assert.are.equal(2, #entry.cluster.online)
    body, status = node:happy_request("health", true)
    assert.are.equal(200, status)
    assert.is_number(cjson.decode(body).currentReqPerMin)
    -- /metrics, under the same secret.
    body, status = node:metrics_request("wrong")
    assert.are.equal(401, status)
    assert.are.equal("wrong or missing HAPPY_SECRET", cjson.decode(body).error)
    body, status = node:metrics_request("health")
    assert.are.equal(200, status)
    assert.truthy(body:find('\nclustershazbot_members{status="online"} 2\n', 1, true), body)
    assert.is_true(node:step(0))
    assert.is_true(node:step())
    assert.is_true(node:shutdown())
    assert.is_false(node:is_running())
  end)

  it("serves the endpoints on its own listener, with 404, 405 and 413", function()
    local o, port = options({ max_body = 2000 })
    local node <close> = shazbot.new(o)
    assert.is_true(node:listen("127.0.0.1", port))
    assert.has_error(function() node:listen("127.0.0.1", port) end, "clustershazbot: node:listen(): already listening")
    local status, body = exchange(node, port, "GET /clustershazbot/list HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert.are.equal(503, status, body) -- listening, not started
    node:start()
    status, body = exchange(node, port, "GET /clustershazbot/list HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert.are.equal(200, status)
    assert.are.equal(o.base_url, cjson.decode(body).online[1].baseUrl)
    status, body = exchange(node, port, "GET /nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert.are.equal(404, status)
    assert.is_string(cjson.decode(body).error)
    status, body = exchange(node, port, "DELETE /clustershazbot/gossip HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert.are.equal(405, status)
    assert.is_string(cjson.decode(body).error)
    local big = string.rep("x", 5000)
    status = exchange(node, port, "POST /clustershazbot/gossip HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" ..
      "Authorization: " .. cluster.secret .. "\r\nContent-Length: " .. #big .. "\r\n\r\n" .. big)
    assert.are.equal(413, status)
    node:shutdown()
  end)

  it("gives clear errors for misuse, and none of it crashes", function()
    assert.has_error(function() shazbot.new({ secret = "x" }) end, "clustershazbot.new(): SHAZBOT_CONTROL_SECRET: missing (required)")
    assert.has_error(function() shazbot.new(options({ gossip_interval = "soon" })) end,
      'clustershazbot.new(): option \'gossip_interval\': SHAZBOT_GOSSIP_INTERVAL: "soon" is not a number of seconds > 0')
    assert.has_error(function() shazbot.new(options({ colour = "blue" })) end,
      "clustershazbot.new(): option 'colour': SHAZBOT_COLOUR: not a clustershazbot setting")
    assert.has_error(function() shazbot.new(options({ secret = {} })) end,
      "clustershazbot.new(): option 'secret': expected a string, number or boolean, got table")
    assert.has_error(function() shazbot.new(options({ policy = "/nonexistent.lua" })) end)
    assert.has_error(function() shazbot.new("base_url") end, "clustershazbot.new(): options must be a table or nil, got string")

    -- The error points at the host's line, not into the module.
    local ok, message = pcall(function() shazbot.new({ secret = "x" }) end)
    assert.is_false(ok)
    assert.truthy(message:find("^.-module_spec%.lua:%d+: clustershazbot%.new%(%)"), message)

    local node = shazbot.new(options())
    assert.has_error(function() node:shutdown() end,
      "clustershazbot: node:shutdown(): the node is not running (never started, or already shut down)")
    assert.has_error(function() node:gossip_request(cluster.secret, 42) end,
      "clustershazbot: node:gossip_request(): body: expected JSON text or a table, got number")
    assert.has_error(function() node:gossip_request(cluster.secret, { message = "gossip", online = { print } }) end,
      "clustershazbot: node:gossip_request(): the body table holds a value that JSON cannot represent")
    assert.has_error(function() node:list_request(42) end,
      "clustershazbot: node:list_request(): auth: expected a string or nil, got number")
    assert.has_error(function() node:step("soon") end, "clustershazbot: node:step(): max_wait: expected seconds, got string")
    node:start()
    assert.has_error(function() node:start() end, "clustershazbot: node:start(): already started, or shut down")
    node:shutdown()
    assert.has_error(function() node:shutdown() end)
    assert.has_error(function() node:start() end)
    assert.are.equal(503, select(2, node:list_request())) -- stopped: no longer serving
    node:close()
    node:close() -- twice is fine
    assert.has_error(function() node:list_request() end, "clustershazbot: node:list_request(): this node has been closed")
    assert.has_error(function() node:start() end, "clustershazbot: node:start(): this node has been closed")

    -- The default node: shutdown with nothing started says so.
    assert.has_error(function() shazbot.shutdown() end, "clustershazbot.shutdown(): there is no default node (nothing was started)")

    -- Nodes left to a to-be-closed variable or to the collector are freed by them (the
    -- valgrind and sanitizer runs of spec/lua/fixtures/module_session.lua check for leaks).
    local o, port = options()
    do
      local scoped <close> = shazbot.new(o)
      scoped:listen("127.0.0.1", port)
      scoped:start()
    end
    local forgotten = shazbot.new(o)
    forgotten:listen("127.0.0.1", port) -- the port was given back when `scoped` was closed
    forgotten:start()
    forgotten = nil
    collectgarbage()
    collectgarbage()
    local again <close> = shazbot.new(o)
    assert.is_true(again:listen("127.0.0.1", port)) -- and again, by the collector
  end)

  it("listens, steps and joins a cluster of standalone nodes", function()
    local store = cluster.start_store()
    local peer = cluster.start_node(store)
    local o, port = options({ master_list = store.url, master_list_update = store.url, gossip_interval = 0.5,
                              master_announce_minimum = 1, master_announce_interval = 1 })
    local node <close> = shazbot.new(o)
    node:listen("127.0.0.1", port)
    node:start()
    local deadline = cluster.now() + 30
    local joined = false
    repeat
      node:step(0.05)
      local mine = {}
      for _, r in ipairs(node:server_list().online) do mine[r.baseUrl] = true end
      -- The peer is asked by a child process, with a short timeout: this process serves `node`
      -- only while it steps it.
      local _, out = sh("curl -s -m 2 -H 'Authorization: " .. cluster.control_secret .. "' " .. peer.url .. "clustershazbot/list")
      joined = mine[peer.url] and out:find(o.base_url, 1, true) ~= nil
    until joined or cluster.now() > deadline
    assert.is_true(joined, "the node and the standalone peer list each other")
    node:shutdown()
    assert.truthy(cluster.view(peer).offline[o.base_url], "the goodbye reached the peer")
  end)

  describe("with a policy given as Lua functions", function()
    local default

    setup(function() default = require "clustershazbot.policy" end)

    it("runs the host's functions and falls back to the default when one fails", function()
      local chosen, delays = 0, 0
      local o = options({ gossip_interval = 0.1 })
      o.policy = {
        gossip_target = function(peers, self)
          chosen = chosen + 1
          assert(self.baseUrl == o.base_url and type(peers) == "table")
          return default.gossip_target(peers, self)
        end,
        gossip_delay = function(interval)
          delays = delays + 1
          if delays % 2 == 0 then error("every other delay fails") end
          return interval
        end,
        health = function(info)
          local payload = default.health(info)
          payload.extensions.host = { status = "ok", rounds = chosen }
          return payload
        end,
      }
      local node <close> = shazbot.new(o)
      node:start()
      local deadline = cluster.now() + 20
      while chosen < 5 and cluster.now() < deadline do node:step(0.1) end
      assert.is_true(chosen >= 5, "the host's gossip_target ran " .. chosen .. " times")
      local happy = cjson.decode((node:happy_request()))
      assert.are.equal(chosen, happy.extensions.host.rounds)
      assert.are.equal("ok", happy.extensions.clustershazbot.status)
      assert.is_true(happy.extensions.clustershazbot.policyFailures >= 2)
      node:shutdown()
    end)

    it("keeps the budget and the checks: runaway, coroutine and bad answers fall back", function()
      local node
      local o = options({ gossip_interval = 0.1 })
      o.policy = {
        -- Catches the budget's error and goes on: stopped all the same.
        announce_delay = function() while true do pcall(function() while true do end end) end end,
        -- Coroutines of a hook run under its budget too.
        gossip_target = function()
          local co = coroutine.wrap(function() while true do coroutine.yield() end end)
          while true do co() end
        end,
        gossip_delay = function() return -1 end,
        -- A hook must not drive its own node: the call raises, the hook fails.
        health = function() node:close() end,
      }
      node = shazbot.new(o)
      local started = cluster.now()
      node:start()
      assert.is_true(cluster.now() - started < 20, "start returned despite the runaway hook")
      for _ = 1, 5 do node:step(0.1) end
      local happy = cjson.decode((node:happy_request()))
      assert.are.equal("ok", happy.extensions.clustershazbot.status) -- the default health
      assert.is_true(happy.extensions.clustershazbot.policyFailures >= 4)
      assert.is_true(node:is_running()) -- not closed by its hook
      node:shutdown()
      node:close()
    end)

    it("refuses a policy that is neither a path nor a table of functions", function()
      assert.has_error(function() shazbot.new(options({ policy = function() end })) end,
        "clustershazbot.new(): option 'policy': expected a string, number or boolean, got function")
    end)
  end)

  it("keeps each node's log level when a process hosts several", function()
    -- A child process, to read what the nodes write on stderr. The quiet node is made first:
    -- a level shared by the process would be the loud one's, and the quiet node's start would
    -- be logged.
    local quiet_url, loud_url = options().base_url, options().base_url
    local script = string.format([[
      local shazbot = require "clustershazbot"
      local function new(url, level)
        return shazbot.new({ secret = "s", control_secret = "c", base_url = url,
          master_list = "http://127.0.0.1:9/", master_list_update = "http://127.0.0.1:9/",
          master_list_update_auth = "a", gossip_interval = 3600, log_level = level })
      end
      local quiet <close> = new(%q, "error")
      local loud <close> = new(%q, "info")
      quiet:start()
      loud:start()
    ]], quiet_url, loud_url)
    local status, out = sh(string.format("LUA_PATH=%q LUA_CPATH=%q timeout 60 lua5.4 -e %q 2>&1",
      installed.lua_path .. ";;", installed.lua_cpath .. ";;", script))
    assert.are.equal(0, status, out)
    assert.truthy(out:find("starting as " .. loud_url, 1, true), out)
    assert.falsy(out:find(quiet_url, 1, true), out)
  end)

  it("serves where the listen option says when run with node:run(), until SIGTERM", function()
    -- Issue 12: a node given `listen` and run by node:run() used to serve nothing, silently.
    local port, base_port = cluster.free_port(), cluster.free_port()
    local script = string.format([[
      local shazbot = require "clustershazbot"
      local node = shazbot.new { base_url = "http://127.0.0.1:%d/", listen = "127.0.0.1:%d",
        secret = "s", control_secret = "c", master_list = "http://127.0.0.1:9/list.json",
        master_list_update = "http://127.0.0.1:9/list.json", master_list_update_auth = "u",
        happy_secret = "none", log_level = "error" }
      node:start()
      node:run()
      print("run returned")
    ]], base_port, port)
    local proc = cluster.spawn_program("lua5.4", "-e " .. string.format("%q", script),
      { LUA_PATH = installed.lua_path .. ";;", LUA_CPATH = installed.lua_cpath .. ";;" })
    cluster.wait_until(10, "the node answering on the listen option's port", function()
      return cluster.request("GET", "http://127.0.0.1:" .. port .. "/happy/quick") == 200
    end)
    assert.are_not.equal(200, (cluster.request("GET", "http://127.0.0.1:" .. base_port .. "/happy/quick")))
    cluster.signal(proc, "TERM")
    assert.are.equal(0, cluster.wait_exit(proc, 30), cluster.read_log(proc))
    assert.truthy(cluster.read_log(proc):find("run returned", 1, true))
  end)

  it("offers the original library's functions on a default node from the environment", function()
    local port = cluster.free_port()
    local env = cluster.node_env(port, nil, { SHAZBOT_LOG_LEVEL = "error" })
    local assignments = {}
    for k, v in pairs(env) do assignments[#assignments + 1] = k .. "='" .. v .. "'" end
    local script = [[
      local shazbot = require "clustershazbot"
      print("before start", select(2, shazbot.list_request()))
      shazbot.start()
      local body, status = shazbot.gossip_request("gossip-secret", { message = "gossip", online = {} })
      print("gossip", status)
      print("list", select(2, shazbot.list_request()))
      print("control", select(2, shazbot.control_request("control-secret", { message = "control", online = true })))
      print("servers", #shazbot.server_list().online)
      print("happy", select(2, shazbot.happy_request(nil, true)))
      print("step", shazbot.step(0.01))
      print("listen", shazbot.listen("127.0.0.1", ]] .. port .. [[))
      print("running", shazbot.is_running())
      print("start again", pcall(shazbot.start))
      shazbot.shutdown()
      print("second shutdown", pcall(shazbot.shutdown))
    ]]
    local status, out = sh(string.format("env %s LUA_PATH=%q LUA_CPATH=%q lua5.4 -e %q",
      table.concat(assignments, " "), installed.lua_path .. ";;", installed.lua_cpath .. ";;", script))
    assert.are.equal(0, status, out)
    for _, expected in ipairs({ "before start\t503", "gossip\t200", "list\t200", "control\t200", "servers\t1",
                                "happy\t200", "step\ttrue", "listen\ttrue", "running\ttrue",
                                "start again\tfalse\t", "second shutdown\tfalse\t" }) do
      assert.truthy(out:find(expected, 1, true), expected .. " in:\n" .. out)
    end
  end)
end)
