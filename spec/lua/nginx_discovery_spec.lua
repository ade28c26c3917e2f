-- Service discovery in a real nginx (2 workers, Debian's Lua module), configured from
-- examples/nginx: nginx's own node publishes the cluster's members into a lua_shared_dict and
-- every worker balances /app/ over the live ones. Three members, each a `clustershazbot serve`
-- node beside a backend (examples/nginx/backend.lua) that answers with its member's name:
-- traffic is spread over all three; after `kill -9` of one member no request goes to it once
-- the cluster agrees it is offline, and none fails; back, it takes traffic again only after
-- the hysteresis; and nginx is never reloaded.

local cluster = require "support.cluster"
local install = require "support.install"
local socket = require "socket"
local cjson = require "cjson"

local sh = cluster.sh

local HYSTERESIS = 3 -- seconds, short for the test (the example's default is 10)

local function read(path)
  local f = io.open(path)
  if not f then return "" end
  local text = f:read("a")
  f:close()
  return text
end

local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

-- Ports of this spec's own range (24500-24999), `count` consecutive ones free now.
local handed_out = {}
local function free_ports(count)
  for _ = 1, 200 do
    local first = math.random(24500, 24999 - count)
    local all_free = true
    for port = first, first + count - 1 do
      local s = not handed_out[port] and socket.bind("127.0.0.1", port)
      if s then s:close() else all_free = false end
    end
    if all_free then
      for port = first, first + count - 1 do handed_out[port] = true end
      return first
    end
  end
  error("no free ports between 24500 and 24999")
end

local function nginx_pids(master_pid)
  local _, out = sh("pgrep -P " .. master_pid)
  local pids = {}
  for pid in out:gmatch("%d+") do pids[#pids + 1] = tonumber(pid) end
  table.sort(pids)
  return table.concat(pids, " ")
end

describe("nginx service discovery", function()
  if os.getenv("SHAZBOT_SANITIZE") == "ON" then
    -- nginx is not built with the sanitizers, so it cannot load a library that is.
    it("is checked in the normal build's suite", function()
      print("# sanitizer build: nginx cannot load the sanitized library; see the normal build's suite")
    end)
    return
  end

  local nginx_prefix

  teardown(function()
    if nginx_prefix then sh(string.format("nginx -p '%s' -c conf/nginx.conf -s stop", nginx_prefix)) end
    cluster.cleanup()
  end)

  it("balances /app/ over the live members, through a kill -9 and a restart, without a reload", function()
    local source = os.getenv("SHAZBOT_SOURCE")
    -- Missing nginx is a failure, as in nginx_spec: CI installs it (tools/setup.sh).
    assert.are.equal(0, (sh("command -v nginx")), "nginx is not installed (tools/setup.sh installs it)")
    local installed = install.prefix()
    local dir = cluster.tempdir()
    local store = cluster.start_store(dir, free_ports(1))

    -- A member: its node at port P, its backend at P + 1 (the example's convention).
    local function start_member(port)
      local url = string.format("http://127.0.0.1:%d/", port)
      local backend = cluster.spawn_program("lua5.4", string.format("'%s/examples/nginx/backend.lua' '%s' 127.0.0.1 %d",
        source, url, port + 1), {}, dir)
      cluster.wait_until(5, "the backend of " .. url, function()
        local s = socket.connect("127.0.0.1", port + 1)
        if s then s:close() end
        return s ~= nil
      end)
      local node = cluster.start_node(store, nil, { port = port, dir = dir })
      return { url = url, port = port, node = node, backend = backend, address = "127.0.0.1:" .. (port + 1) }
    end
    local members = {}
    for i = 1, 3 do members[i] = start_member(free_ports(2)) end

    nginx_prefix = dir .. "/nginx"
    assert(os.execute(string.format("mkdir -p '%s/conf' '%s/logs'", nginx_prefix, nginx_prefix)))
    local nginx_port, engine_port = free_ports(1), free_ports(1)
    local conf = read(source .. "/examples/nginx/nginx.conf")
      :gsub("@NGINX_PORT@", nginx_port):gsub("@ENGINE_PORT@", engine_port)
      :gsub("@LUA_PATH@", installed.luajit_path .. ";" .. source .. "/examples/nginx/?.lua")
      :gsub("access_log off;", "log_format tries '$pid $status $uri $upstream_addr'; access_log logs/access.log tries;")
    local _, uid = sh("id -u")
    write(nginx_prefix .. "/conf/nginx.conf", (tonumber(uid) == 0 and "user root;\n" or "") .. conf)
    assert.are.equal(0, (sh(string.format("nginx -t -p '%s' -c conf/nginx.conf", nginx_prefix))))
    local env = cluster.node_env(nginx_port, store, { SHAZBOT_LISTEN = "127.0.0.1:" .. engine_port,
      APP_HYSTERESIS = tostring(HYSTERESIS) })
    local master = cluster.spawn_program("nginx", string.format("-p '%s' -c conf/nginx.conf -g 'daemon off;'", nginx_prefix), env, dir)
    local base = string.format("http://127.0.0.1:%d/", nginx_port)

    -- The members as nginx's balancers see them: { version, online = { [url] = entry }, offline = ... }.
    local function published()
      local status, body = cluster.request("GET", base .. "members")
      assert(status == 200, "GET /members answered " .. tostring(status))
      local decoded = cjson.decode(body)
      local view = { version = decoded.version, online = {}, offline = {} }
      for _, kind in ipairs({ "online", "offline" }) do
        for _, entry in ipairs(decoded[kind]) do view[kind][entry.baseUrl] = entry end
      end
      return view
    end
    cluster.wait_until(30, "nginx to publish the three members online", function()
      if cluster.exit_status(master) then error("nginx exited: " .. read(nginx_prefix .. "/logs/error.log")) end
      local view = published()
      for _, m in ipairs(members) do
        if not view.online[m.url] then return false end
      end
      return true
    end)
    local view = published()
    for _, m in ipairs(members) do
      assert.is_false(view.online[m.url].rejoined, "a member new to nginx takes traffic at once")
    end
    assert.is_nil(view.online[base], "nginx's own node is not a backend")
    local workers = nginx_pids(master.pid)
    assert.are.equal(2, select(2, workers:gsub("%d+", "")), "nginx runs 2 workers")

    -- Sends `count` requests to /app/<phase>/<n>; returns the answers by member name, and
    -- the failures (not 200).
    local function spread(phase, count, each)
      local by_member, failed = {}, 0
      for n = 1, count do
        local status, body = cluster.request("GET", string.format("%sapp/%s/%d", base, phase, n))
        if status == 200 then
          local name = body:match("^(.-)\n")
          by_member[name] = (by_member[name] or 0) + 1
        else
          failed = failed + 1
        end
        if each and each(status, body) then break end
      end
      return by_member, failed
    end
    local function figures(by_member)
      local parts = {}
      for i, m in ipairs(members) do parts[i] = string.format("member %d: %d", i, by_member[m.url] or 0) end
      return table.concat(parts, ", ")
    end

    local by_member, failed = spread("first", 300)
    print(string.format("# 300 requests: %s, %d failed", figures(by_member), failed))
    assert.are.equal(0, failed)
    for i, m in ipairs(members) do
      assert.is_true((by_member[m.url] or 0) >= 50, "member " .. i .. " takes its share: " .. figures(by_member))
    end

    -- The consistent hash: a user stays on one member; the users spread over several.
    local home, homes = {}, {}
    for user = 1, 30 do
      for _ = 1, 3 do
        local status, body = cluster.request("GET", string.format("%sby-user/x?user=u%d", base, user))
        assert.are.equal(200, status)
        home[user] = home[user] or body
        assert.are.equal(home[user], body, "user " .. user .. " stays on its member")
      end
      homes[home[user]] = true
    end
    local distinct = 0
    for _ in pairs(homes) do distinct = distinct + 1 end
    assert.is_true(distinct >= 2, "30 users on " .. distinct .. " member(s)")

    -- kill -9 of member 3, node and backend. Until the cluster agrees it is offline, nginx
    -- still tries it and retries the next member; from then on, it never tries it.
    local dead = members[3]
    cluster.signal(dead.node.proc, "KILL")
    cluster.signal(dead.backend, "KILL")
    local killed_at = cluster.now()
    local function agreed()
      if not published().offline[dead.url] then return false end
      for i = 1, 2 do
        if not cluster.view(members[i].node).offline[dead.url] then return false end
      end
      return true
    end
    local before_count, n = 0, 0
    local before, before_failed = spread("before", 100000, function()
      before_count, n = before_count + 1, n + 1
      if n % 10 == 0 and agreed() then return true end
      assert(cluster.now() - killed_at < 60, "the cluster did not agree within 60 s that member 3 is offline")
    end)
    print(string.format("# kill -9: the cluster agreed %.1f s later; %d requests meanwhile (%s), %d failed",
      cluster.now() - killed_at, before_count, figures(before), before_failed))
    assert.are.equal(0, before_failed, "a failed connection is retried on the next member")

    local after, after_failed = spread("after", 300)
    print(string.format("# after the agreement, 300 requests: %s, %d failed", figures(after), after_failed))
    assert.are.equal(0, after_failed)
    assert.is_nil(after[dead.url])
    assert.is_true((after[members[1].url] or 0) >= 100 and (after[members[2].url] or 0) >= 100, figures(after))

    -- What nginx tried, from its access log: the dead backend after the agreement never; the
    -- retries before it.
    local log = read(nginx_prefix .. "/logs/access.log")
    local retried, tried_dead_after = 0, 0
    for line in log:gmatch("[^\n]+") do
      local phase, upstreams = line:match("^%d+ %d+ /app/(%a+)/%d+ (.*)$")
      if phase == "before" and upstreams:find(",", 1, true) then retried = retried + 1 end
      if phase == "after" and upstreams:find(dead.address, 1, true) then tried_dead_after = tried_dead_after + 1 end
    end
    print(string.format("# access log: %d requests retried on another member before the agreement, %d tried the dead member after it",
      retried, tried_dead_after))
    assert.are.equal(0, tried_dead_after)
    assert.is_true(retried > 0, "requests to the dead member were retried")

    -- Back: the member takes traffic once it has been online for the hysteresis, not before.
    local back = start_member(dead.port)
    members[3] = back
    local since = cluster.wait_until(30, "nginx to publish member 3 online again", function()
      local entry = published().online[back.url]
      return entry and entry.since
    end)
    local entry = published().online[back.url]
    assert.is_true(entry.rejoined, "member 3 is known to be back from offline")
    local first_at, held_back = nil, 0
    local returned = spread("back", 100000, function(_, body)
      local now = socket.gettime()
      if body == back.url .. "\n" then
        first_at = now
        return true
      end
      if now < since + HYSTERESIS then held_back = held_back + 1 end
      assert(now < since + HYSTERESIS + 30, "member 3 took no traffic within 30 s of its hysteresis")
    end)
    print(string.format("# member 3 back: first request %.2f s after nginx saw it online (hysteresis %d s); %d requests held back from it",
      first_at - since, HYSTERESIS, held_back))
    assert.is_true(first_at >= since + HYSTERESIS, "member 3 took traffic before its hysteresis ended")
    assert.is_true(held_back > 0, "requests were sent during the hysteresis")
    assert.is_not_nil(returned[back.url])
    local again = spread("again", 300)
    print(string.format("# after the hysteresis, 300 requests: %s", figures(again)))
    for i, m in ipairs(members) do
      assert.is_true((again[m.url] or 0) >= 50, "member " .. i .. " takes its share again: " .. figures(again))
    end

    -- Never reloaded: the same master, the same two workers, each started once.
    assert.are.equal(master.pid, tonumber(read(nginx_prefix .. "/logs/nginx.pid")))
    assert.are.equal(workers, nginx_pids(master.pid))
    local errors = read(nginx_prefix .. "/logs/error.log")
    assert.are.equal(2, select(2, errors:gsub("start worker process %d+", "")))
    assert.is_nil(errors:find("reconfiguring", 1, true))
    assert.is_nil(errors:find("[alert]", 1, true), errors)
    print(string.format("# nginx master %d, workers %s: unchanged", master.pid, workers))
  end)
end)
