-- Change events under valgrind: a node running `serve --on-change` (handlers forked, fed on
-- stdin, reaped on SIGCHLD, more events than handlers at once, so some queue) while peers join
-- and are killed, read by `clustershazbot watch --json` under valgrind too; both must finish
-- with no memory error and nothing definitely or indirectly lost. Ports 24000-24499.

local cluster = require "support.cluster"

local function quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local next_port = 24400 + math.random(0, 40)
local function port()
  next_port = next_port + 1
  return next_port
end

describe("change events under valgrind", function()
  teardown(function() cluster.cleanup() end)

  it("run handlers and feed a watcher with no memory error and no leak", function()
    local dir = cluster.tempdir()
    local vlog, wlog = dir .. "/valgrind-node.log", dir .. "/valgrind-watch.log"
    local handled = dir .. "/handled.jsonl"
    local store = cluster.start_store(dir, port())
    local node_port = port()
    local node = { port = node_port, url = string.format("http://127.0.0.1:%d/", node_port) }
    node.proc = cluster.spawn("serve --on-change " .. quote("sleep 0.2; cat >> " .. quote(handled)),
      cluster.node_env(node_port, store), dir, cluster.valgrind_command(vlog))
    cluster.wait_until(60, "the node under valgrind to answer", function()
      return cluster.answers(node.url .. "clustershazbot/list")
    end)
    local peers = {}
    for i = 1, 6 do peers[i] = cluster.start_node(store, nil, { port = port(), dir = dir }) end
    cluster.wait_until(60, "the node to list its 6 peers", function()
      local view = cluster.view(node)
      for _, p in ipairs(peers) do if not view.online[p.url] then return false end end
      return true
    end)
    for _, p in ipairs(peers) do cluster.signal(p.proc, "KILL") end
    cluster.wait_until(60, "the node to list its 6 peers offline", function()
      local view = cluster.view(node)
      for _, p in ipairs(peers) do if not view.offline[p.url] then return false end end
      return true
    end)
    local status, out = cluster.sh(string.format("%s %s watch --json --count 12 --url %s --control-secret %s",
      cluster.valgrind_command(wlog), quote(cluster.bin), node.url, cluster.control_secret))
    assert.are.equal(0, status, out)
    local _, watched = out:gsub('"seq":', "")
    assert.are.equal(12, watched, out)
    -- Requests held by the node (long polls) when it leaves: answered then, their memory freed.
    local _, listed = cluster.json("GET", node.url .. "clustershazbot/events?after=0", nil,
      { Authorization = cluster.control_secret })
    local held = {}
    for i = 1, 3 do
      held[i] = dir .. "/held-" .. i .. ".out"
      os.execute(string.format("curl -s -H 'Authorization: %s' '%sclustershazbot/events?after=%d&wait=5' > %s 2>&1 &",
        cluster.control_secret, node.url, listed.next, quote(held[i])))
    end
    cluster.sleep(1)
    local node_status, report, leaks = cluster.stop_under_valgrind(node.proc, vlog)
    for i = 1, 3 do
      cluster.wait_until(10, "held request " .. i .. " to be answered", function()
        local f = io.open(held[i])
        local text = f and f:read("a")
        if f then f:close() end
        return text and text:find('"events":', 1, true)
      end)
    end
    assert.are.equal(0, node_status, report)
    assert.truthy(report:find("ERROR SUMMARY: 0 errors", 1, true), report)
    local watch_report, watch_leaks = cluster.valgrind_report(wlog)
    assert.truthy(watch_report:find("ERROR SUMMARY: 0 errors", 1, true), watch_report)
    -- 6 joins, 6 offline, the node's own leaving: every handler ran (the last ones at shutdown);
    -- more if a loaded machine made a peer flap.
    local f = assert(io.open(handled))
    local _, ran = f:read("a"):gsub("\n", "")
    f:close()
    assert.is_true(ran >= 13, ran .. " handlers ran")
    print("# node: " .. leaks .. "; watch: " .. watch_leaks)
  end)
end)
