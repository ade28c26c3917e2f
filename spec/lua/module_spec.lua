-- The Lua 5.4 module, loaded from an installed prefix as a host would, in this very process.

local cluster = require "support.cluster"
local cjson = require "cjson"

local sanitized = os.getenv("SHAZBOT_SANITIZE") == "ON"

local sh = cluster.sh

-- Installs the build tree into a fresh prefix; returns the prefix and the Lua paths a host sets.
local function install()
  local prefix = cluster.tempdir() .. "/prefix"
  local status, out = sh(string.format("cmake --install '%s' --prefix '%s'", os.getenv("SHAZBOT_BUILD"), prefix))
  assert(status == 0, out)
  return prefix, prefix .. "/share/lua/5.4/?.lua;" .. prefix .. "/share/lua/5.4/?/init.lua;",
    prefix .. "/lib/lua/5.4/?.so;"
end

describe("the Lua module", function()
  if sanitized then
    -- lua5.4 itself is not built with the sanitizers, so it cannot load a module that is.
    it("is checked in the normal build's suite", function() pending("sanitizer build") end)
    return
  end

  local shazbot, prefix, lua_path, lua_cpath

  setup(function()
    prefix, lua_path, lua_cpath = install()
    package.path = lua_path .. package.path
    package.cpath = lua_cpath .. package.cpath
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

  it("answers every request, with both body forms and every error status", function()
    local node <close> = shazbot.new(options())
    local body, status = node:gossip_request(cluster.secret, '{"message":"gossip","online":[]}')
    assert.are.equal(503, status) -- before start
    assert.is_string(cjson.decode(body).error)
    assert.is_true(node:start())

    local record = { baseUrl = "http://127.0.0.1:1/", monitor = false, lastUpdate = 1 }
    body, status = node:gossip_request(cluster.secret, { message = "gossip", online = { record }, offline = {} })
    assert.are.equal(200, status)
    assert.are.equal("gossip", cjson.decode(body).message)
    body, status = node:gossip_request(cluster.secret, cjson.encode({ message = "gossip", online = { record } }))
    assert.are.equal(200, status)
    assert.are.equal(401, select(2, node:gossip_request("wrong", { message = "gossip", online = {} })))
    assert.are.equal(401, select(2, node:gossip_request(nil, { message = "gossip", online = {} })))
    assert.are.equal(400, select(2, node:gossip_request(cluster.secret, "{not json")))
    assert.are.equal(400, select(2, node:gossip_request(cluster.secret, { message = "gossip" })))

    body, status = node:list_request()
    assert.are.equal(200, status)
    assert.is_nil(cjson.decode(body).offline)
    body = node:list_request(cluster.control_secret)
    assert.is_table(cjson.decode(body).offline)

    assert.are.equal(401, select(2, node:control_request("wrong", { message = "control", online = false })))
    assert.are.equal(400, select(2, node:control_request(cluster.control_secret, { message = "control" })))
    body, status = node:control_request(cluster.control_secret, { message = "control", online = false })
    assert.are.equal(200, status)
    assert.is_true(cjson.decode(body).success)
    local list = node:server_list(true)
    assert.are.equal(1, #list.online) -- the record merged above
    assert.are.equal(1, #list.offline) -- this node
    assert.is_nil(node:server_list(false).offline)
    assert.are.equal(200, select(2, node:control_request(cluster.control_secret, '{"message":"control","online":true}')))

    body, status = node:happy_request()
    assert.are.equal(200, status)
    assert.are.equal("ok", cjson.decode(body).extensions.clustershazbot.status)
    assert.are.equal(200, select(2, node:happy_request(nil, true)))
    assert.is_true(node:step(0))
    assert.is_true(node:is_running())
    assert.is_true(node:shutdown())
    assert.is_false(node:is_running())
  end)

  it("gives clear errors for misuse, and none of it crashes", function()
    assert.has_error(function() shazbot.new({ secret = "x" }) end, "clustershazbot.new: SHAZBOT_CONTROL_SECRET: missing (required)")
    assert.has_error(function() shazbot.new(options({ gossip_interval = "soon" })) end,
      'clustershazbot.new: option \'gossip_interval\': SHAZBOT_GOSSIP_INTERVAL: "soon" is not a number of seconds > 0')
    assert.has_error(function() shazbot.new(options({ colour = "blue" })) end,
      "clustershazbot.new: option 'colour': SHAZBOT_COLOUR: not a clustershazbot setting")
    assert.has_error(function() shazbot.new(options({ secret = {} })) end)

    local node = shazbot.new(options())
    assert.has_error(function() node:shutdown() end,
      "clustershazbot: node:shutdown(): the node is not running (never started, or already shut down)")
    node:start()
    assert.has_error(function() node:start() end, "clustershazbot: node:start(): already started, or shut down")
    node:shutdown()
    assert.has_error(function() node:shutdown() end)
    assert.has_error(function() node:start() end)
    node:close()
    node:close() -- twice is fine
    assert.has_error(function() node:list_request() end, "clustershazbot: this node has been closed")
    collectgarbage() -- a node left to the collector is freed by it
    local forgotten = shazbot.new(options())
    forgotten:start()
    forgotten = nil
    collectgarbage()
  end)

  it("listens, steps and joins a cluster of standalone nodes", function()
    local store = cluster.start_store()
    local peer = cluster.start_node(store)
    local o, port = options({ master_list = store.url, master_list_update = store.url, gossip_interval = 0.5,
                              master_announce_minimum = 1, master_announce_interval = 1 })
    local node <close> = shazbot.new(o)
    node:listen("127.0.0.1", port)
    node:start()
    local deadline = cluster.now() + 20
    local joined = false
    repeat
      node:step(0.05)
      local mine = {}
      for _, r in ipairs(node:server_list().online) do mine[r.baseUrl] = true end
      -- The peer is asked from a child process: this process serves `node` only while stepping.
      local _, out = sh("curl -s -m 2 -H 'Authorization: " .. cluster.control_secret .. "' " .. peer.url .. "clustershazbot/list &")
      joined = mine[peer.url] and out:find(o.base_url, 1, true) ~= nil
    until joined or cluster.now() > deadline
    assert.is_true(joined)
    node:shutdown()
    assert.truthy(cluster.view(peer).offline[o.base_url])
  end)

  it("runs a policy given as Lua functions, and falls back when one fails", function()
    local chosen, delays = 0, 0
    local default = require "clustershazbot.policy"
    local o = options({ gossip_interval = 0.2 })
    o.policy = {
      gossip_target = function(peers, self)
        chosen = chosen + 1
        return default.gossip_target(peers, self)
      end,
      gossip_delay = function(interval)
        delays = delays + 1
        if delays % 2 == 0 then error("every other delay fails") end
        return interval
      end,
    }
    local node <close> = shazbot.new(o)
    node:start()
    local deadline = cluster.now() + 10
    while chosen < 5 and cluster.now() < deadline do node:step(0.1) end
    assert.is_true(chosen >= 5, "the host's gossip_target ran " .. chosen .. " times")
    local happy = cjson.decode((node:happy_request()))
    assert.is_true(happy.extensions.clustershazbot.policyFailures >= 2)
    node:shutdown()
  end)

  it("offers the original library's functions on a default node from the environment", function()
    local port = cluster.free_port()
    local env = cluster.node_env(port, nil, { SHAZBOT_LOG_LEVEL = "error" })
    local assignments = {}
    for k, v in pairs(env) do assignments[#assignments + 1] = k .. "='" .. v .. "'" end
    local script = [[
      local shazbot = require "clustershazbot"
      shazbot.start()
      local body, status = shazbot.gossip_request("gossip-secret", { message = "gossip", online = {} })
      print("gossip", status)
      print("list", select(2, shazbot.list_request()))
      print("control", select(2, shazbot.control_request("control-secret", { message = "control", online = true })))
      print("servers", #shazbot.server_list().online)
      print("happy", select(2, shazbot.happy_request(nil, true)))
      print("step", shazbot.step(0.01))
      print("listen", shazbot.listen("127.0.0.1", ]] .. port .. [[))
      shazbot.shutdown()
      print("second shutdown", pcall(shazbot.shutdown))
    ]]
    local status, out = sh(string.format("env %s LUA_PATH=%q LUA_CPATH=%q lua5.4 -e %q",
      table.concat(assignments, " "), lua_path .. ";", lua_cpath .. ";", script))
    assert.are.equal(0, status, out)
    assert.truthy(out:find("gossip\t200", 1, true), out)
    assert.truthy(out:find("list\t200", 1, true), out)
    assert.truthy(out:find("control\t200", 1, true), out)
    assert.truthy(out:find("servers\t1", 1, true), out)
    assert.truthy(out:find("happy\t200", 1, true), out)
    assert.truthy(out:find("step\ttrue", 1, true), out)
    assert.truthy(out:find("listen\ttrue", 1, true), out)
    assert.truthy(out:find("second shutdown\tfalse", 1, true), out)
  end)

  it("runs examples/lua-host.lua, which joins two standalone nodes", function()
    local store = cluster.start_store()
    local a, b = cluster.start_node(store), cluster.start_node(store)
    local port = cluster.free_port()
    -- With an example policy: every node here is in the same zone (127.0.0.x), so the
    -- zone-aware choices must still reach everyone.
    local env = cluster.node_env(port, store, { SHAZBOT_POLICY = os.getenv("SHAZBOT_SOURCE") .. "/examples/policies/zone_aware.lua" })
    env.LUA_PATH = lua_path .. ";"
    env.LUA_CPATH = lua_cpath .. ";"
    local host = { url = env.SHAZBOT_BASE_URL }
    host.proc = cluster.spawn_program("lua5.4", os.getenv("SHAZBOT_SOURCE") .. "/examples/lua-host.lua", env)
    local all = { a, b, host }
    cluster.wait_until(20, "the Lua host and the two nodes to converge", function() return cluster.converged(all) end)
    cluster.signal(host.proc, "TERM")
    assert.are.equal(0, cluster.wait_exit(host.proc, 30))
    cluster.wait_until(5, "the nodes to list the Lua host offline", function()
      return cluster.view(a).offline[host.url] and cluster.view(b).offline[host.url]
    end)
  end)
end)
