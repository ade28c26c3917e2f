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

-- A location of the test's own, inside nginx: the balancer module misused (each an error),
-- its runtime failures (nil and why), publish() on a dict of its own, and the filters on the
-- real members (`pattern` matches one of them, `only` is another's baseUrl).
local function pools_location(pattern, only)
  return [[location = /pools {
            content_by_lua_block {
                local balancer = require "clustershazbot.balancer"
                local lines = {}
                local function say(...) lines[#lines + 1] = table.concat({ ... }, " ") end
                local function try(name, f)
                    local ok, err = pcall(f)
                    say(name, tostring(ok), (tostring(err):gsub("^.-:%d+: ", "")))
                end
                local dict = "shazbot_members"
                say("version", balancer._VERSION)
                try("no options", function() balancer.new() end)
                try("no dict", function() balancer.new({}) end)
                try("unknown dict", function() balancer.new({ dict = "nope" }) end)
                try("unknown option", function() balancer.new({ dict = dict, weight = 2 }) end)
                try("bad pattern", function() balancer.new({ dict = dict, match = "[" }) end)
                try("bad hysteresis", function() balancer.new({ dict = dict, hysteresis = -1 }) end)
                try("bad tries", function() balancer.new({ dict = dict, tries = 0 }) end)
                try("port and address", function() balancer.new({ dict = dict, port = 80, address = print }) end)
                try("publish a string", function() balancer.publish(dict, "members") end)
                try("balance by a number", function() balancer.new({ dict = dict }):balance(42) end)

                local function urls(pool)
                    local peers, err = pool:peers()
                    if not peers then return "nil " .. err end
                    local list = {}
                    for i, peer in ipairs(peers) do list[i] = peer.baseUrl .. "=" .. peer.host .. ":" .. peer.port end
                    return table.concat(list, ",")
                end
                say("match", urls(balancer.new({ dict = dict, match = "]] .. pattern .. [[", port = 8080 })))
                say("filter", urls(balancer.new({ dict = dict, filter = function(m) return m.baseUrl == "]] .. only .. [[" end })))

                local own = "http://127.0.0.1:2/"
                local mine = balancer.new({ dict = "spec_members", hysteresis = 100 })
                say("empty", urls(mine))
                local a = { baseUrl = "http://127.0.0.1:1/", lastUpdate = 1 }
                say("publish", balancer.publish("spec_members", { online = { a, { baseUrl = own } } }, own))
                say("publish unchanged", balancer.publish("spec_members", { online = { a, { baseUrl = own } } }, own))
                say("peers", urls(mine))
                say("publish offline", balancer.publish("spec_members", { online = {}, offline = { a } }, own))
                say("peers", urls(mine))
                say("publish back", balancer.publish("spec_members", { online = { a } }, own))
                local back = balancer.members("spec_members").online[1]
                say("back", back.baseUrl, tostring(back.rejoined))
                say("held back", urls(mine))
                mine:set_hysteresis(0)
                say("hysteresis 0", urls(mine))
                try("bad set_hysteresis", function() mine:set_hysteresis("soon") end)
                ngx.say(table.concat(lines, "\n"))
            }
        }

        location / {]]
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
      :gsub("lua_shared_dict shazbot_members 1m;", "%0 lua_shared_dict spec_members 64k;")
      :gsub("location / {", function()
        return pools_location("^http://127%.0%.0%.1:" .. members[1].port .. "/$", members[2].url)
      end)
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
        if each then
          if each(status, body) then break end
          cluster.sleep(0.002) -- a pace while waiting, for the machine's other work
        end
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

    local status_pools, pools = cluster.request("GET", base .. "pools")
    assert.are.equal(200, status_pools, pools)
    for _, expected in ipairs({
      "version 0.1.0\n",
      "no options false clustershazbot.balancer.new(): expected a table of options, got nil",
      "no dict false clustershazbot.balancer.new(): option 'dict' is required",
      "unknown dict false clustershazbot.balancer.new(): no lua_shared_dict named 'nope'",
      "unknown option false clustershazbot.balancer.new(): unknown option 'weight'",
      "bad pattern false clustershazbot.balancer.new(): option 'match': not a Lua pattern",
      "bad hysteresis false clustershazbot.balancer: hysteresis: expected seconds (0 or more), got -1",
      "bad tries false clustershazbot.balancer.new(): option 'tries': expected a whole number of tries",
      "port and address false clustershazbot.balancer.new(): options 'port' and 'address' exclude each other",
      "publish a string false clustershazbot.balancer.publish(): members: expected the node's list, got string",
      "balance by a number false clustershazbot.balancer: balance(): key: expected a string or nil, got number",
      "match " .. members[1].url .. "=127.0.0.1:8080\n",
      "filter " .. members[2].url .. "=127.0.0.1:" .. members[2].port .. "\n",
      "empty nil no members published yet",
      "publish 1\npublish unchanged 1\npeers http://127.0.0.1:1/=127.0.0.1:1\n",
      "publish offline 2\npeers \n",
      "publish back 3\nback http://127.0.0.1:1/ true\nheld back \nhysteresis 0 http://127.0.0.1:1/=127.0.0.1:1\n",
      "bad set_hysteresis false clustershazbot.balancer: hysteresis: expected seconds (0 or more), got soon" }) do
      assert.truthy(pools:find(expected, 1, true), expected .. " in:\n" .. pools)
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
    -- The users of the living members stay where they were.
    local stayed, moved = 0, 0
    for user = 1, 30 do
      local status, body = cluster.request("GET", string.format("%sby-user/x?user=u%d", base, user))
      assert.are.equal(200, status)
      if home[user] ~= dead.url .. "\n" then
        assert.are.equal(home[user], body, "user " .. user .. " stays on its living member")
        stayed = stayed + 1
      else
        moved = moved + 1
      end
    end
    print(string.format("# consistent hash: %d users stayed on their living member, %d moved off the dead one", stayed, moved))

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
