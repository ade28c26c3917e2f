-- Error answers that evhttp writes itself, over raw sockets: they must be JSON and say what is
-- wrong, wherever they fall on a connection, and chunked bodies must be read as RFC 9112
-- frames them (issue 10, A7).

local cluster = require "support.cluster"
local cjson = require "cjson"
local socket = require "socket"

local QUIET = { SHAZBOT_GOSSIP_INTERVAL = "3600", SHAZBOT_MASTER_ANNOUNCE_MINIMUM = "3600" }
local read_answer, raw_request, closed_by_peer = cluster.read_answer, cluster.raw_request, cluster.closed_by_peer

local port_seq = 45000
local function fresh_record()
  port_seq = port_seq + 1
  return { baseUrl = string.format("http://127.0.0.1:%d/", port_seq), monitor = false,
           lastUpdate = math.floor(socket.gettime() * 1000) }
end

local function connect(port)
  local conn = assert(socket.connect("127.0.0.1", port))
  conn:settimeout(5)
  return conn
end

-- status, headers, the body decoded (nil if it is not JSON), the body as text.
local function answer_of(conn)
  local status, headers, body = read_answer(conn)
  local ok, decoded = pcall(cjson.decode, body)
  return status, headers, ok and decoded or nil, body
end

local function assert_json_error(expected, status, headers, answer, body, what)
  assert.are.equal(expected, status, what .. ": " .. tostring(body))
  assert.is_table(answer, what .. ": not JSON: " .. tostring(body))
  assert.is_string(answer.error, what .. ": " .. body)
  assert.are.equal("application/json", headers["content-type"], what)
  return answer.error
end

-- A chunked POST of `chunks` (the framing written by the caller, as text) to the gossip path.
local function chunked_gossip(framing)
  return "POST /clustershazbot/gossip HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: " .. cluster.secret ..
         "\r\nTransfer-Encoding: chunked\r\n\r\n" .. framing
end

describe("evhttp's own errors and chunked bodies", function()
  local node

  setup(function() node = cluster.start_node(nil, QUIET) end)
  teardown(function() cluster.cleanup() end)

  describe("after pipelined answers", function()
    for _, case in ipairs({
      { "a good GET then a malformed request line", { raw_request("GET", "/happy/quick") }, "GARBAGE\r\n\r\n", 400 },
      { "two good answers then a malformed header",
        { raw_request("GET", "/clustershazbot/list"), raw_request("GET", "/happy/quick") },
        "GET /happy HTTP/1.1\r\nno colon here\r\n\r\n", 400 },
      { "a good GET then an unknown method", { raw_request("GET", "/clustershazbot/list") },
        "TRACE /happy HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 501 },
    }) do
      it("answers " .. case[1] .. " with JSON for both", function()
        local conn = connect(node.port)
        assert(conn:send(table.concat(case[2]) .. case[3]))
        for i = 1, #case[2] do
          local status, headers, answer, body = answer_of(conn)
          assert.are.equal(200, status, body)
          assert.is_table(answer, "answer " .. i .. " is not JSON: " .. body)
          assert.are.equal("application/json", headers["content-type"])
        end
        local status, headers, answer, body = answer_of(conn)
        assert_json_error(case[4], status, headers, answer, body, case[1])
        assert.are.equal("close", headers["connection"])
        cluster.wait_until(5, "the node to close the connection", function() return closed_by_peer(conn) end)
        conn:close()
      end)
    end

    it("answers a malformed request after an answer already read, on a kept-alive connection, with JSON", function()
      -- libevent leaves the output buffer's start frozen after a connection's first write: the
      -- page of any later request could not be read or replaced, pipelined or not.
      local conn = connect(node.port)
      assert(conn:send(raw_request("GET", "/happy/quick")))
      assert.are.equal(200, (read_answer(conn)))
      assert(conn:send("GARBAGE\r\n\r\n"))
      local status, headers, answer, body = answer_of(conn)
      assert_json_error(400, status, headers, answer, body, "a malformed request after an answer")
      conn:close()
    end)

    it("leaves an answer alone whose body only looks like an error page", function()
      -- The JSON of an earlier answer may hold text from a request; only evhttp's own page,
      -- written after it, is rewritten.
      local conn = connect(node.port)
      assert(conn:send(raw_request("GET", "/HTTP/1.1%20400%20x%3C/BODY%3E%3C/HTML%3E") .. "GARBAGE\r\n\r\n"))
      local status, _, answer, body = answer_of(conn)
      assert.are.equal(404, status, body)
      assert.is_table(answer, body)
      status, _, answer, body = answer_of(conn)
      assert.are.equal(400, status, body)
      assert.is_table(answer, body)
      conn:close()
    end)
  end)

  describe("chunked bodies", function()
    -- libevent 2.1.12 reads a chunk-size line with strtoll and refuses anything after the
    -- digits but a space (so "5;name=value" was refused), and reports every broken frame as
    -- EVREQ_HTTP_DATA_TOO_LONG, which it answers 413. Each connection's input now goes through
    -- a framing tracker before evhttp reads it (core/http_framing.h, issue 10, A7b): it
    -- rewrites chunk-size lines to their bare size, and where the framing is broken it makes
    -- evhttp fail the request, whose 413 the server answers as a 400 with the reason.
    it("answers broken chunk framing with 400 and a JSON error, and merges nothing", function()
      local record = fresh_record()
      local body = cluster.gossip_body({ record })
      for _, case in ipairs({
        { "a size that is not hex", "zz\r\n" .. body .. "\r\n0\r\n\r\n" },
        { "a chunk longer than its size", string.format("%x\r\n", #body - 5) .. body .. "\r\n0\r\n\r\n" },
        { "a size line without its CRLF after the data", string.format("%x\r\n", #body) .. body .. "XX0\r\n\r\n" },
        { "a negative size", "-5\r\nhello\r\n0\r\n\r\n" },
      }) do
        local conn = connect(node.port)
        assert(conn:send(chunked_gossip(case[2])))
        local status, headers, answer, text = answer_of(conn)
        local message = assert_json_error(400, status, headers, answer, text, case[1])
        assert.truthy(message:find("chunked", 1, true), case[1] .. ": " .. message)
        conn:close()
      end
      local view = cluster.view(node)
      assert.is_nil(view.online[record.baseUrl])
    end)

    -- evhttp cuts a header value at a NUL: "Authorization: <secret>\0junk" was accepted as
    -- the secret (issue 11, point 6). A NUL anywhere in a head is refused with 400.
    it("refuses a head with a NUL byte, even where the value before it is the right secret", function()
      local record = fresh_record()
      local body = cluster.gossip_body({ record })
      for _, case in ipairs({
        { "a secret with a NUL", "POST /clustershazbot/gossip HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: " ..
          cluster.secret .. "\0junk\r\nContent-Length: " .. #body .. "\r\n\r\n" .. body },
        { "another field with a NUL", "GET /happy/quick HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Trace: a\0b\r\n\r\n" },
      }) do
        local conn = connect(node.port)
        assert(conn:send(case[2]))
        local status, headers, answer, text = answer_of(conn)
        local message = assert_json_error(400, status, headers, answer, text, case[1])
        assert.truthy(message:find("NUL", 1, true), case[1] .. ": " .. message)
        conn:close()
      end
      assert.is_nil(cluster.view(node).online[record.baseUrl])
      -- The same request without the NUL is merged: the refusal was the NUL's.
      local conn = connect(node.port)
      assert(conn:send("POST /clustershazbot/gossip HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: " ..
        cluster.secret .. "\r\nContent-Length: " .. #body .. "\r\n\r\n" .. body))
      assert.are.equal(200, (answer_of(conn)))
      conn:close()
      assert.is_table(cluster.view(node).online[record.baseUrl])
    end)

    it("accepts chunk extensions and reads the body they frame", function()
      local record = fresh_record()
      local body = cluster.gossip_body({ record })
      local half = math.floor(#body / 2)
      local framing = string.format("%x;name=value\r\n", half) .. body:sub(1, half) .. "\r\n" ..
                      string.format("%X ; a=\"quoted;\\\"x\" ;b\r\n", #body - half) .. body:sub(half + 1) .. "\r\n" ..
                      "0;last=1\r\n\r\n"
      local conn = connect(node.port)
      assert(conn:send(chunked_gossip(framing)))
      local status, headers, answer, text = answer_of(conn)
      assert.are.equal(200, status, text)
      assert.are.equal("application/json", headers["content-type"])
      assert.is_table(answer.online, text)
      -- The connection stays usable after the chunked body.
      assert(conn:send(raw_request("GET", "/happy/quick")))
      assert.are.equal(200, (read_answer(conn)))
      conn:close()
      assert.are.same(record, cluster.view(node).online[record.baseUrl])
    end)

    it("reads a pipelined request after a body with chunk extensions", function()
      local record = fresh_record()
      local body = cluster.gossip_body({ record })
      local conn = connect(node.port)
      assert(conn:send(chunked_gossip(string.format("%x;a=b\r\n", #body) .. body .. "\r\n0\r\n\r\n") ..
                       raw_request("GET", "/clustershazbot/list")))
      local status, _, _, text = answer_of(conn)
      assert.are.equal(200, status, text)
      local answer
      status, _, answer, text = answer_of(conn)
      assert.are.equal(200, status, text)
      assert.is_table(answer, text)
      assert.is_not_nil(cluster.view(node).online[record.baseUrl])
      conn:close()
    end)

    it("answers broken framing after a good pipelined request with 400, and the good one with 200", function()
      local good, bad = fresh_record(), fresh_record()
      local good_body, bad_body = cluster.gossip_body({ good }), cluster.gossip_body({ bad })
      local conn = connect(node.port)
      assert(conn:send(chunked_gossip(string.format("%x\r\n", #good_body) .. good_body .. "\r\n0\r\n\r\n") ..
                       chunked_gossip(string.format("%x\r\n", #bad_body - 1) .. bad_body .. "\r\n0\r\n\r\n")))
      local status, _, _, text = answer_of(conn)
      assert.are.equal(200, status, text)
      local headers, answer
      status, headers, answer, text = answer_of(conn)
      local message = assert_json_error(400, status, headers, answer, text, "the second request")
      assert.truthy(message:find("chunked", 1, true), message)
      assert.are.equal("close", headers["connection"])
      cluster.wait_until(5, "the node to close the connection", function() return closed_by_peer(conn) end)
      conn:close()
      local view = cluster.view(node)
      assert.is_not_nil(view.online[good.baseUrl])
      assert.is_nil(view.online[bad.baseUrl])
    end)

    it("answers 413 to chunks over the limit, with extensions or without", function()
      -- The node's limit is the default, 8 MiB. The size lines arrive without their data: the
      -- answer comes before it, and the client reads it before the connection closes.
      local limit = 8388608
      for _, case in ipairs({
        { "one chunk over the limit", string.format("%x\r\n", limit + 1) },
        { "one chunk over the limit, with an extension", string.format("%x;name=value\r\n", limit + 1) },
        { "two chunks over the limit together", "5\r\nhello\r\n" .. string.format("%x ; a=\"b\"\r\n", limit - 4) },
      }) do
        local conn = connect(node.port)
        assert(conn:send(chunked_gossip(case[2])))
        local status, headers, answer, text = answer_of(conn)
        local message = assert_json_error(413, status, headers, answer, text, case[1])
        assert.truthy(message:find("over the limit of " .. limit .. " bytes", 1, true), message)
        conn:close()
      end
    end)

    it("still accepts plain chunked bodies, in many chunks", function()
      local record = fresh_record()
      local body = cluster.gossip_body({ record })
      local parts = {}
      for at = 1, #body, 7 do
        local piece = body:sub(at, at + 6)
        parts[#parts + 1] = string.format("%x\r\n", #piece) .. piece .. "\r\n"
      end
      local conn = connect(node.port)
      assert(conn:send(chunked_gossip(table.concat(parts) .. "0\r\n\r\n")))
      local status, _, _, text = answer_of(conn)
      assert.are.equal(200, status, text)
      conn:close()
      assert.are.same(record, cluster.view(node).online[record.baseUrl])
    end)
  end)
end)
