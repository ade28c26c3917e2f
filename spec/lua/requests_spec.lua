-- The endpoints of a real node against bad peers and bad input: wrong secrets, malformed
-- bodies, oversized bodies, wrong paths and methods. Every rejected request must leave the
-- node's state exactly as it was.

local cluster = require "support.cluster"
local cjson = require "cjson"
local socket = require "socket"

local GOOD = { baseUrl = "http://127.0.0.1:1/", monitor = false, lastUpdate = 1 }

-- The node's full list, as text with a stable order, and without its own record (whose
-- lastUpdate moves with every gossip request).
local function state(node)
  local view = cluster.view(node)
  local lines = {}
  for status, records in pairs(view) do
    for url, r in pairs(records) do
      if url ~= node.url then
        lines[#lines + 1] = string.format("%s %s %s %s", status, url, tostring(r.monitor), tostring(r.lastUpdate))
      end
    end
  end
  table.sort(lines)
  return table.concat(lines, "\n")
end

local function gossip(node, body, auth)
  return cluster.json("POST", node.url .. "clustershazbot/gossip", body,
    { Authorization = auth == nil and cluster.secret or auth or nil })
end

describe("a node's endpoints", function()
  local store, node, small

  setup(function()
    store = cluster.start_store()
    node = cluster.start_node(store, { SHAZBOT_GOSSIP_INTERVAL = "3600", SHAZBOT_MASTER_ANNOUNCE_MINIMUM = "3600" })
    small = cluster.start_node(store, { SHAZBOT_MAX_BODY = "65536", SHAZBOT_GOSSIP_INTERVAL = "3600",
                                        SHAZBOT_MASTER_ANNOUNCE_MINIMUM = "3600" })
  end)

  teardown(function() cluster.cleanup() end)

  describe("authentication", function()
    it("refuses a wrong or missing gossip secret with 401 and changes nothing", function()
      local before = state(node)
      for _, auth in ipairs({ "wrong", "", cluster.control_secret, cluster.secret .. "x", false }) do
        local status, answer = gossip(node, cluster.gossip_body({ GOOD }), auth)
        assert.are.equal(401, status)
        assert.is_string(answer.error)
      end
      assert.are.equal(before, state(node))
    end)

    it("refuses a wrong control secret with 401 and changes nothing", function()
      local before = state(node)
      for _, auth in ipairs({ "wrong", cluster.secret }) do
        local status, answer = cluster.json("POST", node.url .. "clustershazbot/control",
          { message = "control", online = false }, { Authorization = auth })
        assert.are.equal(401, status)
        assert.is_string(answer.error)
      end
      assert.is_truthy(cluster.view(node).online[node.url])
      assert.are.equal(before, state(node))
    end)

    it("lists offline records only to the control secret", function()
      local status, open = cluster.json("GET", node.url .. "clustershazbot/list")
      assert.are.equal(200, status)
      assert.is_table(open.online)
      assert.is_nil(open.offline)
      local _, full = cluster.json("GET", node.url .. "clustershazbot/list", nil, { Authorization = cluster.control_secret })
      assert.is_table(full.offline)
    end)
  end)

  describe("malformed gossip bodies", function()
    local record = cjson.encode(GOOD)
    local deep = string.rep("[", 10000) .. string.rep("]", 10000)
    local cases = {
      { "not JSON", "hello " .. record },
      { "empty body", "" },
      { "a top-level array", "[" .. record .. "]" },
      { "a top-level string", '"gossip"' },
      { "a top-level number", "42" },
      { "null", "null" },
      { "online missing", '{"message":"gossip","offline":[' .. record .. ']}' },
      { "online an object", '{"message":"gossip","online":{"a":' .. record .. '}}' },
      { "online a string", '{"message":"gossip","online":"' .. GOOD.baseUrl .. '"}' },
      { "online null", '{"message":"gossip","online":null,"offline":[' .. record .. ']}' },
      { "offline not an array", '{"message":"gossip","online":[' .. record .. '],"offline":5}' },
      { "an element not an object", '{"message":"gossip","online":[' .. record .. ',"x"]}' },
      { "baseUrl not a string", '{"message":"gossip","online":[' .. record .. ',{"baseUrl":7,"lastUpdate":1}]}' },
      { "baseUrl missing", '{"message":"gossip","online":[' .. record .. ',{"lastUpdate":1}]}' },
      { "monitor a string", '{"message":"gossip","online":[' .. record .. ',{"baseUrl":"http://127.0.0.1:2/","monitor":"yes","lastUpdate":1}]}' },
      { "lastUpdate a string", '{"message":"gossip","online":[' .. record .. ',{"baseUrl":"http://127.0.0.1:2/","lastUpdate":"1"}]}' },
      { "lastUpdate 1e400", '{"message":"gossip","online":[' .. record .. ',{"baseUrl":"http://127.0.0.1:2/","lastUpdate":1e400}]}' },
      { "lastUpdate beyond 64 bits", '{"message":"gossip","online":[' .. record .. ',{"baseUrl":"http://127.0.0.1:2/","lastUpdate":99999999999999999999999}]}' },
      { "deep nesting under an unknown key", '{"message":"gossip","online":[' .. record .. '],"x":' .. string.rep("[", 100) .. string.rep("]", 100) .. '}' },
      { "deep nesting at the top", deep },
      { "message missing", '{"online":[' .. record .. ']}' },
      { "message wrong", '{"message":"hello","online":[' .. record .. ']}' },
      { "trailing garbage", '{"message":"gossip","online":[' .. record .. ']} {}' },
      { "invalid UTF-8", '{"message":"gossip","online":[' .. record .. '],"x":"\255\254"}' },
      { "truncated JSON", '{"message":"gossip","online":[' .. record },
    }

    it("answers 400 with a JSON error to each of " .. #cases .. " kinds, and changes nothing", function()
      local before = state(node)
      for _, case in ipairs(cases) do
        local status, answer, text = gossip(node, case[2])
        assert.are.equal(400, status, case[1] .. ": " .. tostring(text))
        assert.is_table(answer, case[1])
        assert.is_string(answer.error, case[1])
        assert.are.equal(before, state(node), case[1] .. " changed the state")
      end
      assert.is_nil(cluster.view(node).online[GOOD.baseUrl])
      print(string.format("# %d malformed bodies refused", #cases))
    end)

    it("names the field in the error", function()
      local _, answer = gossip(node, cases[15][2])
      assert.truthy(answer.error:find("online[1].monitor", 1, true), answer.error)
    end)

    it("merges the rest of a message whose odd entries it skips", function()
      local _, before = cluster.json("GET", node.url .. "happy")
      local skipped_before = before.extensions.clustershazbot.skippedEntries
      local now_ms = math.floor(socket.gettime() * 1000)
      local odd = {
        { baseUrl = "ftp://127.0.0.1:3/", lastUpdate = 1 },
        { baseUrl = "http://127.0.0.1:4", lastUpdate = 1 },
        { baseUrl = "http://127.0.0.1:5/", lastUpdate = cjson.null },
        { baseUrl = "http://127.0.0.1:6/", lastUpdate = now_ms + 3600 * 1000 },
      }
      local good = { baseUrl = "http://127.0.0.1:7/", monitor = true, lastUpdate = now_ms }
      local status, answer = gossip(node, cluster.gossip_body({ odd[1], odd[2], good, odd[3], odd[4] }))
      assert.are.equal(200, status)
      assert.are.equal("gossip", answer.message)
      local view = cluster.view(node)
      assert.is_truthy(view.online[good.baseUrl])
      for _, r in ipairs(odd) do assert.is_nil(view.online[r.baseUrl]) end
      local _, after = cluster.json("GET", node.url .. "happy")
      assert.are.equal(skipped_before + 4, after.extensions.clustershazbot.skippedEntries)
    end)
  end)

  describe("limits, paths and methods", function()
    local function body_of_size(size)
      local padding = size - #cluster.gossip_body({ GOOD }, nil, '"pad":""')
      local text = cluster.gossip_body({ GOOD }, nil, '"pad":"' .. string.rep("x", padding) .. '"')
      assert(#text == size, "body of " .. #text .. " bytes instead of " .. size)
      return text
    end

    it("answers 413 to a body over the limit and changes nothing, and accepts one just under", function()
      local before = state(small)
      local status = cluster.request("POST", small.url .. "clustershazbot/gossip", body_of_size(65537),
        { Authorization = cluster.secret })
      assert.are.equal(413, status)
      assert.are.equal(before, state(small))
      status = cluster.request("POST", small.url .. "clustershazbot/gossip", body_of_size(65536),
        { Authorization = cluster.secret })
      assert.are.equal(200, status)
      assert.is_truthy(cluster.view(small).online[GOOD.baseUrl] or cluster.view(small).offline[GOOD.baseUrl])
    end)

    it("answers 404 to an unknown path and 405 to a wrong method, in JSON", function()
      local status, answer = cluster.json("GET", node.url .. "clustershazbot/nothing")
      assert.are.equal(404, status)
      assert.is_string(answer.error)
      status, answer = cluster.json("GET", node.url .. "clustershazbot/gossip")
      assert.are.equal(405, status)
      assert.is_string(answer.error)
      status, answer = cluster.json("POST", node.url .. "clustershazbot/list", "{}")
      assert.are.equal(405, status)
      assert.is_string(answer.error)
    end)

    it("keeps a connection alive across requests", function()
      local conn = assert(socket.connect("127.0.0.1", node.port))
      conn:settimeout(5)
      for _ = 1, 3 do
        assert(conn:send("GET /clustershazbot/list HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"))
        local status_line = assert(conn:receive("*l"))
        assert.truthy(status_line:find("200", 1, true))
        local length
        repeat
          local line = assert(conn:receive("*l"))
          length = length or tonumber(line:lower():match("^content%-length:%s*(%d+)"))
        until line == ""
        assert(conn:receive(length))
      end
      conn:close()
    end)

    it("keeps serving while a client stalls mid-request", function()
      local stalled = assert(socket.connect("127.0.0.1", node.port))
      assert(stalled:send("POST /clustershazbot/gossip HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"mess"))
      local t0 = cluster.now()
      assert.are.equal(200, (cluster.request("GET", node.url .. "clustershazbot/list")))
      assert.is_true(cluster.now() - t0 < 2)
      -- The server closes the stalled connection by itself (HTTP timeout of 10 s).
      stalled:settimeout(20)
      local _, err = stalled:receive("*a")
      assert.is_true(err == nil or err == "closed")
      assert.is_true(cluster.now() - t0 < 20)
      stalled:close()
    end)
  end)

  describe("control", function()
    it("takes the node offline and back, and refuses malformed control bodies", function()
      local auth = { Authorization = cluster.control_secret }
      local url = node.url .. "clustershazbot/control"
      for _, bad in ipairs({ "", "{}", '{"message":"control"}', '{"message":"control","online":"no"}',
                             '{"message":"gossip","online":false}' }) do
        local status, answer = cluster.json("POST", url, bad, auth)
        assert.are.equal(400, status, bad)
        assert.is_string(answer.error)
      end
      assert.is_truthy(cluster.view(node).online[node.url])

      local status, answer = cluster.json("POST", url, { message = "control", online = false }, auth)
      assert.are.equal(200, status)
      assert.is_true(answer.success)
      local view = cluster.view(node)
      assert.is_nil(view.online[node.url])
      local went = view.offline[node.url].lastUpdate

      status = cluster.json("POST", url, { message = "control", online = true }, auth)
      assert.are.equal(200, status)
      view = cluster.view(node)
      assert.is_truthy(view.online[node.url])
      assert.is_true(view.online[node.url].lastUpdate > went)
    end)
  end)

  describe("/happy", function()
    it("answers the cluster in extensions.clustershazbot, and the quick figures", function()
      local status, happy = cluster.json("GET", node.url .. "happy")
      assert.are.equal(200, status)
      assert.is_true(happy.running)
      assert.are.equal(0, happy.extensionFailures)
      for _, key in ipairs({ "currentReqPerSec", "currentReqPerMin", "currentFailsPerMin", "currentErrPerMin" }) do
        assert.is_number(happy[key], key)
      end
      local entry = happy.extensions.clustershazbot
      assert.are.equal("ok", entry.status)
      local found = false
      for _, r in ipairs(entry.cluster.online) do found = found or r.baseUrl == node.url end
      assert.is_true(found)
      assert.is_table(entry.cluster.offline)

      local quick
      status, quick = cluster.json("GET", node.url .. "happy/quick")
      assert.are.equal(200, status)
      local keys = {}
      for k in pairs(quick) do keys[#keys + 1] = k end
      table.sort(keys)
      assert.are.same({ "currentErrPerMin", "currentFailsPerMin", "currentReqPerMin", "currentReqPerSec", "extensionFailures" }, keys)
      assert.is_true(quick.currentFailsPerMin > 0) -- the 4xx answers of the specs above
    end)

    it("follows HAPPY_SECRET", function()
      local closed = cluster.start_node(store, { HAPPY_SECRET = false, SHAZBOT_GOSSIP_INTERVAL = "3600" })
      assert.are.equal(401, (cluster.request("GET", closed.url .. "happy")))
      assert.are.equal(401, (cluster.request("GET", closed.url .. "happy/quick", nil, { Authorization = "none" })))
      local locked = cluster.start_node(store, { HAPPY_SECRET = "h-secret", SHAZBOT_GOSSIP_INTERVAL = "3600" })
      assert.are.equal(401, (cluster.request("GET", locked.url .. "happy")))
      assert.are.equal(401, (cluster.request("GET", locked.url .. "happy", nil, { Authorization = "wrong" })))
      assert.are.equal(200, (cluster.request("GET", locked.url .. "happy", nil, { Authorization = "h-secret" })))
      assert.are.equal(200, (cluster.request("GET", locked.url .. "happy/quick", nil, { Authorization = "h-secret" })))
    end)
  end)
end)

describe("configuration", function()
  teardown(function() cluster.cleanup() end)

  local function refused(extra, names)
    local port = cluster.free_port()
    local proc = cluster.spawn("serve", cluster.node_env(port, nil, extra))
    assert.are.equal(2, cluster.wait_exit(proc, 10))
    local log = cluster.read_log(proc)
    for _, name in ipairs(names) do assert.truthy(log:find(name, 1, true), log) end
  end

  it("refuses to start on a missing or malformed variable, naming it and the value", function()
    refused({ SHAZBOT_SECRET = false }, { "SHAZBOT_SECRET", "missing" })
    refused({ SHAZBOT_GOSSIP_INTERVAL = "abc" }, { "SHAZBOT_GOSSIP_INTERVAL", '"abc"' })
    refused({ SHAZBOT_GOSSIP_INTERVAL = "0" }, { "SHAZBOT_GOSSIP_INTERVAL", '"0"' })
    refused({ SHAZBOT_MONITOR = "maybe" }, { "SHAZBOT_MONITOR", '"maybe"' })
    refused({ SHAZBOT_BASE_URL = "http://127.0.0.1:3000" }, { "SHAZBOT_BASE_URL", "ending in '/'" })
    refused({ SHAZBOT_LISTEN = "nowhere" }, { "SHAZBOT_LISTEN", '"nowhere"' })
    refused({ SHAZBOT_MAX_BODY = "12kb" }, { "SHAZBOT_MAX_BODY", '"12kb"' })
  end)
end)
