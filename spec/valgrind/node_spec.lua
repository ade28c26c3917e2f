-- One integration run under valgrind: a node that bootstraps from the store, gossips with two
-- peers, answers good and bad requests (one that evhttp refuses itself) and /happy, closes a
-- request that trickles in past its deadline, then leaves on SIGTERM with a kept-alive client
-- still connected, must finish with no memory error and nothing definitely or indirectly lost.

local cluster = require "support.cluster"

describe("a node under valgrind", function()
  teardown(function() cluster.cleanup() end)

  it("runs a cluster session with no memory error and no leak", function()
    local dir = cluster.tempdir()
    local vlog = dir .. "/valgrind.log"
    local store = cluster.start_store(dir)
    local peers = { cluster.start_node(store), cluster.start_node(store) }
    -- No SHAZBOT_LISTEN: the node opens its IPv4 and IPv6 listeners itself.
    local node = cluster.start_node(store, { SHAZBOT_LISTEN = false, SHAZBOT_REQUEST_TIMEOUT = "1" }, {
      dir = dir, timeout = 60,
      wrapper = cluster.valgrind_command(vlog),
    })
    local all = { peers[1], peers[2], node }
    cluster.wait_until(60, "the three nodes to converge", function() return cluster.converged(all) end)
    local auth = { Authorization = cluster.secret }
    assert.are.equal(400, (cluster.request("POST", node.url .. "clustershazbot/gossip", "{not json", auth)))
    assert.are.equal(401, (cluster.request("POST", node.url .. "clustershazbot/gossip", "{}", {})))
    assert.are.equal(200, (cluster.request("GET", node.url .. "happy")))
    assert.are.equal(200, (cluster.request("GET", node.url .. "happy/quick")))
    assert.are.equal(200, (cluster.request("GET", node.url .. "metrics")))
    -- A request evhttp refuses itself: its HTML page is rewritten into a JSON error.
    local socket = require "socket"
    local conn = assert(socket.connect("127.0.0.1", node.port))
    conn:settimeout(30)
    assert(conn:send("GARBAGE\r\n\r\n"))
    local answer = conn:receive("*a")
    conn:close()
    assert.truthy(answer and answer:find('{"error":"malformed HTTP request"}', 1, true), answer)
    -- A request that trickles in: its connection is closed after the deadline (1 s here).
    local slow = assert(socket.connect("127.0.0.1", node.port))
    slow:settimeout(0.3)
    local closed = false
    for i = 1, 60 do
      assert(slow:send(("GET /clustershazbot/list HTTP/1.1\r\n"):sub(i % 20 + 1, i % 20 + 1)))
      local _, err = slow:receive(1) -- also the client's pace: 0.3 s a byte
      if err == "closed" then closed = true break end
    end
    slow:close()
    assert.is_true(closed, "the trickled request was not cut")
    -- A kept-alive client still connected when the node leaves: its connection is freed then.
    local kept = assert(socket.connect("127.0.0.1", node.port))
    kept:settimeout(30)
    assert(kept:send("GET /clustershazbot/list HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"))
    assert.truthy(kept:receive("*l"):find("200", 1, true))
    local status, report, leaks = cluster.stop_under_valgrind(node.proc, vlog)
    kept:close()
    assert.are.equal(0, status, report)
    assert.truthy(report:find("ERROR SUMMARY: 0 errors", 1, true), report)
    print("# " .. leaks)
  end)
end)
