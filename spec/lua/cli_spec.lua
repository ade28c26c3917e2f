-- The command line against live nodes: members, control, health, their --help and their exit
-- statuses (0 success, 1 failed operation, 2 bad usage).

local cluster = require "support.cluster"
local cjson = require "cjson"

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
    assert.are.equal(2, (run("frobnicate")))
    assert.are.equal(2, (run("")))
  end)

  it("members prints the table and a summary", function()
    local status, out = run("members --url " .. a.url .. " --control-secret " .. cluster.control_secret)
    assert.are.equal(0, status, out)
    assert.truthy(out:find("BASE URL", 1, true), out)
    for _, node in ipairs({ a, b }) do
      assert.truthy(out:find(node.url .. "%s+online%s+no%s+%d+s ago"), out)
    end
    assert.truthy(out:find("2 online, 0 offline", 1, true), out)
  end)

  it("members takes its defaults from the environment, and --json prints the list", function()
    local status, out = run("members --json", { SHAZBOT_BASE_URL = b.url, SHAZBOT_CONTROL_SECRET = cluster.control_secret })
    assert.are.equal(0, status, out)
    local list = cjson.decode(out)
    assert.are.equal(2, #list.online)
    assert.is_table(list.offline)
  end)

  it("members fails with 1 on an unreachable node or a refused secret, 2 on bad usage", function()
    local status, out = run("members --url http://127.0.0.1:" .. cluster.free_port() .. "/")
    assert.are.equal(1, status)
    assert.truthy(out:find("cannot reach", 1, true), out)
    status, out = run("members --url " .. a.url .. " --control-secret wrong")
    assert.are.equal(1, status)
    assert.truthy(out:find("did not accept the control secret", 1, true), out)
    assert.are.equal(2, (run("members")))
    assert.are.equal(2, (run("members --url")))
    assert.are.equal(2, (run("members --url " .. a.url .. " --bogus")))
  end)

  it("control takes a node offline and back, refusing a wrong secret", function()
    local status, out = run("control offline --url " .. b.url .. " --control-secret wrong")
    assert.are.equal(1, status)
    assert.truthy(out:find("401", 1, true), out)
    assert.are.equal(2, (run("control sideways --url " .. b.url)))
    assert.are.equal(2, (run("control --url " .. b.url)))

    status, out = run("control offline --url " .. b.url .. " --control-secret " .. cluster.control_secret)
    assert.are.equal(0, status, out)
    assert.truthy(cluster.view(b).offline[b.url])
    cluster.wait_until(10, "a to hear that b is offline", function() return cluster.view(a).offline[b.url] end)
    status, out = run("members --url " .. a.url .. " --control-secret " .. cluster.control_secret)
    assert.truthy(out:find("1 online, 1 offline", 1, true), out)

    status = run("control online", { SHAZBOT_BASE_URL = b.url, SHAZBOT_CONTROL_SECRET = cluster.control_secret })
    assert.are.equal(0, status)
    assert.truthy(cluster.view(b).online[b.url])
  end)

  it("health prints the payload indented, and --quick the figures", function()
    local status, out = run("health --url " .. a.url)
    assert.are.equal(0, status, out)
    assert.truthy(out:find('\n  "extensions"', 1, true) or out:find('\n  "running"', 1, true), out)
    assert.are.equal("ok", cjson.decode(out).extensions.clustershazbot.status)
    status, out = run("health --quick --url " .. a.url)
    assert.are.equal(0, status, out)
    assert.is_number(cjson.decode(out).currentReqPerMin)
    status, out = run("health --url http://127.0.0.1:" .. cluster.free_port() .. "/")
    assert.are.equal(1, status)
  end)

  it("health uses HAPPY_SECRET", function()
    local locked = cluster.start_node(store, { HAPPY_SECRET = "h-secret" })
    local status, out = run("health --url " .. locked.url)
    assert.are.equal(1, status)
    assert.truthy(out:find("401", 1, true), out)
    assert.are.equal(0, (run("health --url " .. locked.url, { HAPPY_SECRET = "h-secret" })))
  end)
end)
