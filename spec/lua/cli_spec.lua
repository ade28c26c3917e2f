-- The command line against live nodes: members, control, health, their --help and their exit
-- statuses (0 success, 1 failed operation, 2 bad usage).

local cluster = require "support.cluster"
local cjson = require "cjson"

local fixtures = (os.getenv("SHAZBOT_SOURCE") or ".") .. "/spec/lua/fixtures/"

local function quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- Runs `clustershazbot <args>` with `env` set (false removes a variable); returns the exit
-- status and everything it printed.
local function run(args, env)
  local assignments = { "env", "-u", "SHAZBOT_BASE_URL", "-u", "SHAZBOT_CONTROL_SECRET", "-u", "HAPPY_SECRET" }
  for k, v in pairs(env or {}) do
    if v then assignments[#assignments + 1] = k .. "=" .. quote(v) end
  end
  return cluster.sh(table.concat(assignments, " ") .. " timeout 30 " .. quote(cluster.bin) .. " " .. args)
end

-- Runs only what goes to standard output (the table), for specs that read it line by line.
local function run_stdout(args)
  local p = io.popen("timeout 30 " .. quote(cluster.bin) .. " " .. args .. " 2>/dev/null")
  local out = p:read("a")
  p:close()
  return out
end

-- The rows of a members table: { url, status, monitor, age } in the order printed.
local function table_rows(out)
  local rows = {}
  for line in out:gmatch("[^\n]+") do
    local url, status, monitor, age = line:match("^(http%S+)%s+(%S+)%s+(%S+)%s+(%S+) ago$")
    if url then rows[#rows + 1] = { url = url, status = status, monitor = monitor, age = age } end
  end
  return rows
end

-- A server that answers every request with `status` and `body`; returns its URL.
local function fixed_answer_server(status, body)
  local port = cluster.free_port()
  cluster.spawn_program("lua5.4", string.format("%s %d %d %s", quote(fixtures .. "fixed_answer_server.lua"),
    port, status, quote(body)))
  local url = string.format("http://127.0.0.1:%d/", port)
  cluster.wait_until(5, "the fixed-answer server at " .. url, function() return cluster.request("GET", url) end)
  return url
end

describe("the command line", function()
  local store, a, b

  setup(function()
    store = cluster.start_store()
    a = cluster.start_node(store)
    b = cluster.start_node(store)
    cluster.wait_until(15, "the two nodes to know each other", function()
      return cluster.view(a).online[b.url] and cluster.view(b).online[a.url]
    end)
  end)

  teardown(function() cluster.cleanup() end)

  it("has --help for every subcommand and refuses unknown ones", function()
    for _, sub in ipairs({ "serve", "store", "members", "control", "health" }) do
      local status, out = run(sub .. " --help")
      assert.are.equal(0, status, sub)
      assert.truthy(out:find("usage: clustershazbot " .. sub, 1, true), out)
    end
    local status, out = run("--help")
    assert.are.equal(0, status)
    assert.truthy(out:find("members", 1, true), out)
    assert.are.equal("clustershazbot 0.1.0\n", select(2, run("version")))
    assert.are.equal(2, (run("frobnicate")))
    assert.are.equal(2, (run("")))
  end)

  it("members prints the table, online first then by URL, and a summary", function()
    local status, out = run("members --url " .. a.url .. " --control-secret " .. cluster.control_secret)
    assert.are.equal(0, status, out)
    assert.truthy(out:find("^BASE URL%s+STATUS%s+MONITOR%s+UPDATED\n"), out)
    for _, node in ipairs({ a, b }) do
      assert.truthy(out:find(node.url .. "%s+online%s+no%s+%d+s ago"), out)
    end
    local rows = table_rows(out)
    assert.are.equal(2, #rows, out)
    assert.is_true(rows[1].url < rows[2].url, out)
    assert.truthy(out:find("\n2 online, 0 offline\n$"), out)
  end)

  it("members shows ages in human units, monitors, and sorts offline members last", function()
    -- A node of its own, with no store and no gossip rounds, told about made-up members by a
    -- gossip message: nothing else changes what it lists.
    local lone = cluster.start_node(nil, { SHAZBOT_GOSSIP_INTERVAL = "3600" })
    local now = os.time() * 1000
    local body = cluster.gossip_body(
      { { baseUrl = "http://127.0.0.1:1/old/", monitor = true, lastUpdate = now - 3 * 86400 * 1000 } },
      { { baseUrl = "http://127.0.0.1:1/a/", monitor = false, lastUpdate = now - 5 * 60 * 1000 - 5000 },
        { baseUrl = "http://127.0.0.1:1/b/", monitor = false, lastUpdate = now - 3 * 3600 * 1000 - 5000 } })
    assert.are.equal(200, (cluster.request("POST", lone.url .. "clustershazbot/gossip", body,
      { Authorization = cluster.secret })))
    local rows = table_rows(run_stdout("members --url " .. lone.url .. " --control-secret " .. cluster.control_secret))
    assert.are.same({
      { url = "http://127.0.0.1:1/old/", status = "online", monitor = "yes", age = "3d" },
      { url = lone.url, status = "online", monitor = "no", age = rows[2] and rows[2].age },
      { url = "http://127.0.0.1:1/a/", status = "offline", monitor = "no", age = "5m" },
      { url = "http://127.0.0.1:1/b/", status = "offline", monitor = "no", age = "3h" },
    }, rows)
    assert.truthy(rows[2].age:match("^%d+s$"), rows[2].age)
  end)

  it("members shows a lastUpdate at either end of 64 bits without overflowing", function()
    -- now - lastUpdate overflowed for INT64_MIN (the sanitizer build stops on it).
    local list = '{"online":[{"baseUrl":"http://127.0.0.1:1/past/","monitor":false,"lastUpdate":-9223372036854775808},' ..
      '{"baseUrl":"http://127.0.0.1:1/future/","monitor":false,"lastUpdate":9223372036854775807}]}'
    local status, out = run("members --url " .. fixed_answer_server(200, list))
    assert.are.equal(0, status, out)
    local rows = table_rows(out)
    assert.are.equal(2, #rows, out)
    for _, r in ipairs(rows) do assert.truthy(r.age:match("^%d+[smhd]$"), out) end
  end)

  it("members --status and --match show part of the cluster, in the table and as JSON", function()
    local list = cjson.encode({
      online = { { baseUrl = "http://10.0.0.1:3000/", monitor = false, lastUpdate = 1 },
                 { baseUrl = "http://10.1.0.2:3000/", monitor = true, lastUpdate = 2 } },
      offline = { { baseUrl = "http://10.0.0.3:3000/", monitor = false, lastUpdate = 3 },
                  { baseUrl = "http://10.1.0.4:3000/", monitor = false, lastUpdate = 4 } } })
    local url = fixed_answer_server(200, list)
    local secret = " --control-secret " .. cluster.control_secret
    local function urls(out)
      local got = {}
      for _, r in ipairs(table_rows(out)) do got[#got + 1] = r.url .. " " .. r.status end
      return got
    end
    local status, out = run("members --url " .. url .. secret .. " --status online")
    assert.are.equal(0, status, out)
    assert.are.same({ "http://10.0.0.1:3000/ online", "http://10.1.0.2:3000/ online" }, urls(out))
    assert.truthy(out:find("2 online, 0 offline", 1, true), out)
    status, out = run("members --url " .. url .. secret .. " --match 'http://10.0.*'")
    assert.are.same({ "http://10.0.0.1:3000/ online", "http://10.0.0.3:3000/ offline" }, urls(out))
    status, out = run("members --url " .. url .. secret .. " --status offline --match '*.4:*' --json")
    assert.are.equal(0, status, out)
    assert.are.same({ online = {}, offline = { { baseUrl = "http://10.1.0.4:3000/", monitor = false, lastUpdate = 4 } } },
      cjson.decode(out))
    -- Without a filter, --json is the node's answer as it came.
    status, out = run("members --url " .. url .. secret .. " --json")
    assert.are.same(cjson.decode(list), cjson.decode(out))
    status, out = run("members --url " .. url .. secret .. " --status dead")
    assert.are.equal(2, status)
    assert.truthy(out:find("--status must be online or offline, not 'dead'", 1, true), out)
    status, out = run("members --url " .. url .. " --status offline")
    assert.are.equal(2, status)
    assert.truthy(out:find("offline members are shown only with the control secret", 1, true), out)
  end)

  it("members takes its defaults from the environment, and --json prints the list", function()
    local status, out = run("members --json", { SHAZBOT_BASE_URL = b.url, SHAZBOT_CONTROL_SECRET = cluster.control_secret })
    assert.are.equal(0, status, out)
    local list = cjson.decode(out)
    assert.are.equal(2, #list.online)
    assert.is_table(list.offline)
  end)

  it("members without a secret shows the online members and says so", function()
    local status, out = run("members --url " .. a.url)
    assert.are.equal(0, status, out)
    assert.truthy(out:find("offline members are not shown", 1, true), out)
    assert.truthy(out:find("2 online, 0 offline", 1, true), out)
    status, out = run("members --json --url " .. a.url)
    assert.are.equal(0, status, out)
    local list = cjson.decode(out)
    assert.are.equal(2, #list.online)
    assert.is_nil(list.offline)
  end)

  it("members fails with 1 on an unreachable node or a refused secret, 2 on bad usage", function()
    local unreachable = "http://127.0.0.1:" .. cluster.free_port() .. "/"
    local status, out = run("members --url " .. unreachable)
    assert.are.equal(1, status)
    -- The URL asked, and curl's reason.
    assert.truthy(out:find("cannot reach " .. unreachable .. "clustershazbot/list: ", 1, true), out)
    assert.truthy(out:find("onnect", 1, true), out)
    status, out = run("members --url " .. a.url .. " --control-secret wrong")
    assert.are.equal(1, status)
    assert.truthy(out:find("did not accept the control secret: it is wrong", 1, true), out)
    assert.are.equal(2, (run("members")))
    assert.are.equal(2, (run("members --url")))
    assert.are.equal(2, (run("members --url " .. a.url .. " --bogus")))
    assert.are.equal(2, (run("members --url " .. a.url .. " --quick")))
    assert.are.equal(2, (run("members --url " .. a.url .. " extra")))
  end)

  it("fails with 1 on answers that are not JSON, not a list, or an error", function()
    local html = fixed_answer_server(200, "<html>hello</html>")
    for _, args in ipairs({ "members", "health", "control offline --control-secret x" }) do
      local status, out = run(args .. " --url " .. html)
      assert.are.equal(1, status, args .. ": " .. out)
      assert.truthy(out:find("did not answer JSON", 1, true), args .. ": " .. out)
    end
    local status, out = run("members --url " .. fixed_answer_server(200, '{"hello":[1]}'))
    assert.are.equal(1, status, out)
    assert.truthy(out:find("did not answer a members list", 1, true), out)
    status, out = run("health --url " .. fixed_answer_server(500, '{"error":"broken on purpose"}'))
    assert.are.equal(1, status, out)
    assert.truthy(out:find("answered 500: broken on purpose", 1, true), out)
  end)

  it("control takes a node offline and back, refusing a wrong secret", function()
    local status, out = run("control offline --url " .. b.url .. " --control-secret wrong")
    assert.are.equal(1, status)
    assert.truthy(out:find("answered 401: the secret is wrong", 1, true), out)
    status, out = run("control offline --url " .. b.url)
    assert.are.equal(1, status)
    assert.truthy(out:find("answered 401: the secret is missing", 1, true), out)
    status, out = run("control offline --url http://127.0.0.1:" .. cluster.free_port() .. "/ --control-secret x")
    assert.are.equal(1, status)
    assert.truthy(out:find("cannot reach", 1, true), out)
    assert.are.equal(2, (run("control sideways --url " .. b.url)))
    assert.are.equal(2, (run("control --url " .. b.url)))
    assert.are.equal(2, (run("control offline online --url " .. b.url)))
    assert.truthy(cluster.view(b).online[b.url]) -- nothing refused changed anything

    status, out = run("control offline --url " .. b.url .. " --control-secret " .. cluster.control_secret)
    assert.are.equal(0, status, out)
    assert.are.equal(b.url .. " is now offline\n", out)
    assert.truthy(cluster.view(b).offline[b.url])
    cluster.wait_until(10, "a to hear that b is offline", function() return cluster.view(a).offline[b.url] end)
    out = run_stdout("members --url " .. a.url .. " --control-secret " .. cluster.control_secret)
    assert.truthy(out:find("\n1 online, 1 offline\n$"), out)
    local rows = table_rows(out)
    assert.are.same({ a.url, "online" }, { rows[1].url, rows[1].status })
    assert.are.same({ b.url, "offline" }, { rows[2].url, rows[2].status })

    status = run("control online", { SHAZBOT_BASE_URL = b.url, SHAZBOT_CONTROL_SECRET = cluster.control_secret })
    assert.are.equal(0, status)
    assert.truthy(cluster.view(b).online[b.url])
  end)

  it("health prints the payload indented, and --quick the figures", function()
    local status, out = run("health --url " .. a.url)
    assert.are.equal(0, status, out)
    assert.truthy(out:find('^{\n  "'), out) -- two spaces of indentation
    assert.truthy(out:find('\n  "extensions": {\n    "', 1, true), out)
    assert.are.equal("ok", cjson.decode(out).extensions.clustershazbot.status)
    status, out = run("health --quick --url " .. a.url)
    assert.are.equal(0, status, out)
    assert.is_number(cjson.decode(out).currentReqPerMin)
    local unreachable = "http://127.0.0.1:" .. cluster.free_port() .. "/"
    status, out = run("health --url " .. unreachable)
    assert.are.equal(1, status)
    assert.truthy(out:find("cannot reach " .. unreachable .. "happy", 1, true), out)
    assert.are.equal(2, (run("health")))
    assert.are.equal(2, (run("health --url " .. a.url .. " --json")))
  end)

  it("health uses HAPPY_SECRET", function()
    local locked = cluster.start_node(store, { HAPPY_SECRET = "h-secret" })
    local status, out = run("health --url " .. locked.url)
    assert.are.equal(1, status)
    assert.truthy(out:find("answered 401: the secret is missing (HAPPY_SECRET)", 1, true), out)
    status, out = run("health --url " .. locked.url, { HAPPY_SECRET = "wrong" })
    assert.are.equal(1, status)
    assert.truthy(out:find("answered 401: the secret is wrong (HAPPY_SECRET)", 1, true), out)
    assert.are.equal(0, (run("health --url " .. locked.url, { HAPPY_SECRET = "h-secret" })))
    -- "none" means an open endpoint: nothing is sent.
    assert.are.equal(0, (run("health --url " .. a.url, { HAPPY_SECRET = "none" })))
  end)
end)
