-- A real nginx (2 workers) with the Lua module, configured from examples/nginx, runs a node
-- through the FFI binding beside two standalone nodes: they converge, /happy through nginx
-- shows the cluster, and `nginx -s quit` makes the node leave the cluster.

local cluster = require "support.cluster"
local cjson = require "cjson"

local sh = cluster.sh

local function read(path)
  local f = io.open(path)
  if not f then return "" end
  local text = f:read("a")
  f:close()
  return text
end

describe("nginx with Lua", function()
  if os.getenv("SHAZBOT_SANITIZE") == "ON" then
    -- nginx is not built with the sanitizers, so it cannot load a library that is.
    it("is checked in the normal build's suite", function() pending("sanitizer build") end)
    return
  end

  local nginx_prefix, master

  teardown(function()
    if nginx_prefix then sh(string.format("nginx -p '%s' -c conf/nginx.conf -s stop", nginx_prefix)) end
    cluster.cleanup()
  end)

  it("runs a node with 2 workers that joins, reports and leaves the cluster", function()
    local source, build = os.getenv("SHAZBOT_SOURCE"), os.getenv("SHAZBOT_BUILD")
    local dir = cluster.tempdir()
    local prefix = dir .. "/prefix"
    assert.are.equal(0, (sh(string.format("cmake --install '%s' --prefix '%s'", build, prefix))))

    local store = cluster.start_store()
    local a, b = cluster.start_node(store), cluster.start_node(store)

    nginx_prefix = dir .. "/nginx"
    assert(os.execute(string.format("mkdir -p '%s/conf' '%s/logs'", nginx_prefix, nginx_prefix)))
    local nginx_port, engine_port = cluster.free_port(), cluster.free_port()
    local conf = read(source .. "/examples/nginx/nginx.conf")
      :gsub("@NGINX_PORT@", nginx_port):gsub("@ENGINE_PORT@", engine_port)
      :gsub("@LUA_PATH@", prefix .. "/share/lua/5.1/?.lua;" .. source .. "/examples/nginx/?.lua")
      :gsub("@LIBRARY@", prefix .. "/lib/libclustershazbot.so")
      :gsub("access_log off;", "log_format worker '$pid $uri'; access_log logs/access.log worker;")
      :gsub("location / {", [[location = /misuse {
            content_by_lua_block {
                -- A second node, misused in every way: each must give an error, none a crash.
                local shazbot = require "clustershazbot.ffi"
                local library = "]] .. prefix .. [[/lib/libclustershazbot.so"
                local opts = { secret = "s", control_secret = "c", base_url = "http://127.0.0.1:1/",
                               master_list = "http://127.0.0.1:9/", master_list_update = "http://127.0.0.1:9/",
                               master_list_update_auth = "u" }
                local n = shazbot.new(opts, library)
                local lines = {}
                local function try(name, f) lines[#lines + 1] = name .. " " .. tostring(pcall(f)) end
                try("bad option", function() shazbot.new({ secret = {} }, library) end)
                local _, before = n:gossip_request("s", '{"message":"gossip","online":[]}')
                lines[#lines + 1] = "before start " .. before
                try("shutdown before start", function() n:shutdown() end)
                try("start", function() n:start() end)
                try("start again", function() n:start() end)
                try("shutdown", function() n:shutdown() end)
                try("shutdown again", function() n:shutdown() end)
                n:close()
                n:close()
                try("after close", function() n:list_request() end)
                ngx.say(table.concat(lines, "\n"))
            }
        }

        location / {]])
    local f = assert(io.open(nginx_prefix .. "/conf/nginx.conf", "w"))
    f:write("user root;\n", conf) -- the test runs as root and its files are root's
    f:close()

    local env = cluster.node_env(nginx_port, store, { SHAZBOT_LISTEN = "127.0.0.1:" .. engine_port,
      SHAZBOT_POLICY = source .. "/examples/policies/health_extension.lua" })
    local node = { url = env.SHAZBOT_BASE_URL, port = nginx_port }
    master = cluster.spawn_program("nginx", string.format("-p '%s' -c conf/nginx.conf -g 'daemon off;'", nginx_prefix), env, dir)

    local all = { a, b, node }
    cluster.wait_until(20, "nginx's node and the two standalone nodes to converge", function() return cluster.converged(all) end)

    local _, workers = sh("pgrep -P " .. master.pid .. " -c")
    assert.are.equal(2, tonumber(workers:match("%d+")), "nginx runs 2 workers")

    -- Whichever worker takes a connection, the answer comes from the one engine.
    for _ = 1, 40 do
      local status, happy = cluster.json("GET", node.url .. "happy")
      assert.are.equal(200, status)
      local entry = happy.extensions.clustershazbot
      assert.are.equal("ok", entry.status)
      local urls = {}
      for _, r in ipairs(entry.cluster.online) do urls[r.baseUrl] = true end
      assert.is_true(urls[a.url] and urls[b.url] and urls[node.url])
      assert.are.equal(3, happy.extensions.example.onlineCount) -- the example health extension
    end
    local pids = {}
    for pid in read(nginx_prefix .. "/logs/access.log"):gmatch("(%d+) /") do pids[pid] = true end
    local served_by = 0
    for _ in pairs(pids) do served_by = served_by + 1 end
    print(string.format("# requests were served by %d worker(s)", served_by))

    local status_misuse, misuse = cluster.request("GET", node.url .. "misuse")
    assert.are.equal(200, status_misuse, misuse)
    for _, expected in ipairs({ "bad option false", "before start 503", "shutdown before start false",
                                "start true", "start again false", "shutdown true", "shutdown again false",
                                "after close false" }) do
      assert.truthy(misuse:find(expected, 1, true), misuse)
    end

    -- Gossip through nginx (a peer's view of it) works like a standalone node's.
    local status, answer = cluster.json("POST", node.url .. "clustershazbot/gossip",
      cluster.gossip_body({}), { Authorization = cluster.secret })
    assert.are.equal(200, status)
    assert.are.equal("gossip", answer.message)

    assert.are.equal(0, (sh(string.format("nginx -p '%s' -c conf/nginx.conf -s quit", nginx_prefix))))
    cluster.wait_until(10, "the standalone nodes to list nginx's node offline", function()
      return cluster.view(a).offline[node.url] and cluster.view(b).offline[node.url]
    end)
    cluster.wait_exit(master, 20)
    nginx_prefix = nil
    assert.truthy(read(dir .. "/nginx/logs/error.log"):find("clustershazbot info: stopped", 1, true))
  end)
end)
