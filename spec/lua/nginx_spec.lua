-- A real nginx (2 workers) with Debian's Lua module, configured from examples/nginx, runs a
-- node through the FFI binding beside two standalone nodes: they converge, /happy through
-- nginx shows the cluster whichever worker answers, a reload keeps the node in the cluster,
-- and `nginx -s quit` makes the node leave the cluster before nginx exits.

local cluster = require "support.cluster"
local install = require "support.install"

local sh = cluster.sh

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

-- The modules examples/nginx/nginx.conf loads, by the paths it gives.
local function modules_of(conf)
  local modules = {}
  for path in conf:gmatch("\nload_module%s+([^;]+);") do modules[#modules + 1] = path end
  return modules
end

-- A location of the test's own, inside nginx: the FFI binding misused in every way, each of
-- which must give an error (or the status the C API gives), none a crash.
local function misuse_location(library)
  return [[location = /misuse {
            content_by_lua_block {
                local shazbot = require("clustershazbot.ffi").open("]] .. library .. [[")
                local opts = { secret = "s", control_secret = "c", base_url = "http://127.0.0.1:1/",
                               master_list = "http://127.0.0.1:9/", master_list_update = "http://127.0.0.1:9/",
                               master_list_update_auth = "u", happy_secret = "none" }
                -- (no log_level: these nodes log at the default level, info)
                local lines = {}
                local function try(name, f)
                    local ok, err = pcall(f)
                    -- Without the position, which points at this block's line.
                    lines[#lines + 1] = name .. " " .. tostring(ok) .. " " .. tostring(err):gsub("^.-:%d+: ", "")
                end
                try("bad option", function() shazbot.new({ secret = {} }) end)
                try("missing option", function() shazbot.new({ secret = "s" }) end)
                try("hooks as functions", function() shazbot.new({ secret = "s", policy = { health = print } }) end)
                try("bad library", function() require("clustershazbot.ffi").open("/nonexistent.so").new(opts) end)
                local n = shazbot.new(opts)
                local _, before = n:gossip_request("s", '{"message":"gossip","online":[]}')
                lines[#lines + 1] = "before start " .. before
                try("shutdown before start", function() n:shutdown() end)
                try("start", function() n:start() end)
                try("start again", function() n:start() end)
                local _, status = n:gossip_request("s", '{"message":"gossip","online":[]}')
                lines[#lines + 1] = "gossip " .. status
                _, status = n:gossip_request("wrong", '{"message":"gossip","online":[]}')
                lines[#lines + 1] = "wrong secret " .. status
                _, status = n:gossip_request("s", nil)
                lines[#lines + 1] = "no body " .. status
                _, status = n:control_request("c", '{"message":"control","online":true}')
                lines[#lines + 1] = "control " .. status
                _, status = n:list_request()
                lines[#lines + 1] = "list " .. status
                _, status = n:happy_request(nil, true)
                lines[#lines + 1] = "happy " .. status
                try("body table", function() n:gossip_request("s", { message = "gossip" }) end)
                try("run", function() n:run() end)
                try("server_list", function() n:server_list() end)
                try("step", function() n:step(0) end)
                try("shutdown", function() n:shutdown() end)
                try("shutdown again", function() n:shutdown() end)
                n:close()
                n:close()
                try("after close", function() n:list_request() end)
                local forgotten = shazbot.new(opts)
                forgotten:start()
                forgotten = nil
                collectgarbage()
                ngx.say(table.concat(lines, "\n"))
            }
        }

        location / {]]
end

describe("nginx with Lua", function()
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

  it("runs a node with 2 workers that joins, reports, reloads and leaves the cluster", function()
    local source = os.getenv("SHAZBOT_SOURCE")
    local example = read(source .. "/examples/nginx/nginx.conf")
    -- Missing nginx or its Lua module is a failure, never a skip: CI installs them
    -- (tools/setup.sh).
    assert.are.equal(0, (sh("command -v nginx")), "nginx is not installed (tools/setup.sh installs it)")
    local modules = modules_of(example)
    assert.are.equal(2, #modules, "examples/nginx/nginx.conf loads the NDK and the Lua module")
    for _, path in ipairs(modules) do
      assert.is_not_nil(io.open(path), path .. " is missing: install libnginx-mod-http-lua (tools/setup.sh)")
    end

    local installed = install.prefix()
    local store = cluster.start_store()
    local a, b = cluster.start_node(store), cluster.start_node(store)

    local dir = cluster.tempdir()
    nginx_prefix = dir .. "/nginx"
    assert(os.execute(string.format("mkdir -p '%s/conf' '%s/logs'", nginx_prefix, nginx_prefix)))
    local nginx_port, engine_port = cluster.free_port(), cluster.free_port()
    local conf = example
      :gsub("@NGINX_PORT@", nginx_port):gsub("@ENGINE_PORT@", engine_port)
      :gsub("@LUA_PATH@", installed.luajit_path .. ";" .. source .. "/examples/nginx/?.lua")
      :gsub("access_log off;", "log_format worker '$pid $uri'; access_log logs/access.log worker;")
      :gsub("location / {", function() return misuse_location(installed.prefix .. "/lib/libclustershazbot.so") end)
    write(nginx_prefix .. "/conf/nginx.conf", "user root;\n" .. conf) -- the test runs as root
    assert.are.equal(0, (sh(string.format("nginx -t -p '%s' -c conf/nginx.conf", nginx_prefix))))

    local env = cluster.node_env(nginx_port, store, { SHAZBOT_LISTEN = "127.0.0.1:" .. engine_port,
      SHAZBOT_POLICY = source .. "/examples/policies/health_extension.lua" })
    local node = { url = env.SHAZBOT_BASE_URL, port = nginx_port }
    local master = cluster.spawn_program("nginx", string.format("-p '%s' -c conf/nginx.conf -g 'daemon off;'", nginx_prefix), env, dir)

    local all = { a, b, node }
    cluster.wait_until(30, "nginx's node and the two standalone nodes to converge", function()
      if cluster.exit_status(master) then error("nginx exited: " .. cluster.read_log(master)) end
      return cluster.converged(all)
    end)

    local _, workers = sh("pgrep -P " .. master.pid .. " -c")
    assert.are.equal(2, tonumber(workers:match("%d+")), "nginx runs 2 workers")

    -- Whichever worker takes a connection, the answer comes from the one engine.
    local function check_happy()
      local status, happy = cluster.json("GET", node.url .. "happy")
      assert.are.equal(200, status)
      local entry = happy.extensions.clustershazbot
      assert.are.equal("ok", entry.status)
      local urls = {}
      for _, r in ipairs(entry.cluster.online) do urls[r.baseUrl] = true end
      assert.is_true(urls[a.url] and urls[b.url] and urls[node.url])
      assert.are.equal(3, happy.extensions.example.onlineCount) -- the example health extension
    end
    for _ = 1, 40 do check_happy() end
    local pids = {}
    for pid in read(nginx_prefix .. "/logs/access.log"):gmatch("(%d+) /happy") do pids[pid] = true end
    local served_by = 0
    for _ in pairs(pids) do served_by = served_by + 1 end
    print(string.format("# /happy was served by %d worker(s)", served_by))

    local status_misuse, misuse = cluster.request("GET", node.url .. "misuse")
    assert.are.equal(200, status_misuse, misuse)
    for _, expected in ipairs({
      "bad option false clustershazbot.new(): option 'secret': expected a string, number or boolean, got table",
      "missing option false clustershazbot.new(): SHAZBOT_CONTROL_SECRET: missing (required)",
      "hooks as functions false clustershazbot.new(): option 'policy': not offered by this binding",
      "bad library false clustershazbot.ffi: cannot load the library: /nonexistent.so",
      "before start 503", "shutdown before start false", "start true", "start again false",
      "gossip 200", "wrong secret 401", "no body 400", "control 200", "list 200", "happy 200",
      "body table false clustershazbot: node:gossip_request(): not offered by this binding",
      "run false clustershazbot: node:run(): not offered by this binding: it would block the nginx worker",
      "server_list false", "step true", "shutdown true", "shutdown again false",
      "after close false clustershazbot: node:list_request(): this node has been closed" }) do
      assert.truthy(misuse:find(expected, 1, true), expected .. " in:\n" .. misuse)
    end

    -- Gossip through nginx (a peer's view of it) works like a standalone node's.
    local status, answer = cluster.json("POST", node.url .. "clustershazbot/gossip",
      cluster.gossip_body({}), { Authorization = cluster.secret })
    assert.are.equal(200, status)
    assert.are.equal("gossip", answer.message)

    -- A reload replaces the workers: the old worker 0 says goodbye, the new one takes the
    -- engine's port once it is free and rejoins.
    local engine_log = nginx_prefix .. "/logs/error.log"
    local function count(line) return select(2, read(engine_log):gsub(line, "")) end
    local starts, stops = count("clustershazbot info: starting as"), count("clustershazbot info: stopped")
    assert.are.equal(0, (sh(string.format("nginx -p '%s' -c conf/nginx.conf -s reload", nginx_prefix))))
    cluster.wait_until(60, "the old engine to stop and a new one to be listed online by both peers", function()
      return count("clustershazbot info: stopped") > stops and count("clustershazbot info: starting as") > starts
        and cluster.converged(all)
    end)
    check_happy()

    assert.are.equal(0, (sh(string.format("nginx -p '%s' -c conf/nginx.conf -s quit", nginx_prefix))))
    cluster.wait_until(15, "the standalone nodes to list nginx's node offline", function()
      return cluster.view(a).offline[node.url] and cluster.view(b).offline[node.url]
    end)
    assert.are.equal(0, cluster.wait_exit(master, 30), "nginx's exit status")
    nginx_prefix = nil
    local log = read(engine_log)
    assert.truthy(log:find("clustershazbot info: stopped", 1, true), log)
    assert.is_nil(log:find("[alert]", 1, true), log)
    assert.is_nil(log:find("[crit]", 1, true), log)
  end)
end)
