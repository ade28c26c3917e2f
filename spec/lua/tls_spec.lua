-- TLS on the node's listener (SHAZBOT_TLS_CERT, SHAZBOT_TLS_KEY): certificates made here with
-- the openssl program, asked with curl.
local cluster = require "support.cluster"

local certs_of = require "support.certs"
local sh = cluster.sh

local function curl(args)
  return sh("curl -s --max-time 5 " .. args)
end

describe("TLS on the listener", function()
  local dir, certs
  setup(function()
    dir = cluster.tempdir()
    certs = certs_of.make(dir)
  end)
  after_each(function() cluster.cleanup() end)

  local function tls_env(port, extra)
    return cluster.merged({
      SHAZBOT_BASE_URL = string.format("https://127.0.0.1:%d/", port),
      SHAZBOT_TLS_CERT = certs.cert,
      SHAZBOT_TLS_KEY = certs.key,
    }, extra)
  end

  local function start(extra, client_args)
    local port = cluster.free_port()
    local answers = function(url)
      local status, out = curl(string.format((client_args or "") .. " --cacert '%s' -o /dev/null -w '%%{http_code}' '%s'", certs.ca, url:gsub("^http:", "https:")))
      return status == 0 and out == "200"
    end
    local node = cluster.start_node(nil, tls_env(port, extra), { port = port, answers = answers })
    node.https = string.format("https://127.0.0.1:%d/", port)
    return node
  end

  it("serves HTTPS that a client trusting the CA verifies, JSON errors included", function()
    local node = start({ HAPPY_SECRET = "s3cret", SHAZBOT_MAX_BODY = "4096" })
    local status, out = curl(string.format("--cacert '%s' -H 'Authorization: s3cret' '%shappy/quick'", certs.ca, node.https))
    assert.are.equal(0, status, out)
    assert.truthy(out:match("^%s*[%[{]"), out)
    status, out = curl(string.format("--cacert '%s' -w ' %%{http_code}' '%shappy/quick'", certs.ca, node.https))
    assert.are.equal(0, status, out)
    assert.truthy(out:match("401$"), out)
    assert.truthy(out:match("^{"), out)
    assert(os.execute(string.format("head -c 65536 /dev/zero > '%s/big.bin'", dir)))
    -- evhttp's own error page (413) is rewritten to JSON over TLS too.
    status, out = curl(string.format("--cacert '%s' -X POST --data-binary @'%s' -w ' %%{http_code}' '%sclustershazbot/gossip'",
      certs.ca, dir .. "/big.bin", node.https))
    assert.are.equal(0, status, out)
    assert.truthy(out:match("^{.*413$"), out)
    -- Without the CA, curl cannot verify the node.
    status = curl(string.format("-o /dev/null '%shappy/quick'", node.https))
    assert.are_not.equal(0, status)
    -- Plain HTTP to a TLS listener gets no answer.
    status, out = curl(string.format("-o /dev/null -w '%%{http_code}' 'http://127.0.0.1:%d/clustershazbot/list'", node.port))
    assert.are_not.equal("200", out)
  end)

  it("with SHAZBOT_TLS_CLIENT_CA, refuses a client without a certificate and takes one with", function()
    local with_cert = string.format("--cert '%s' --key '%s'", certs.client, certs.client_key)
    local node = start({ SHAZBOT_TLS_CLIENT_CA = certs.ca }, with_cert)
    local status, out = curl(string.format("--cacert '%s' -o /dev/null -w '%%{http_code}' '%shappy/quick'", certs.ca, node.https))
    assert.are_not.equal("200", out)
    assert.are_not.equal(0, status)
    status, out = curl(string.format("%s --cacert '%s' -o /dev/null -w '%%{http_code}' '%shappy/quick'", with_cert, certs.ca, node.https))
    assert.are.equal(0, status, out)
    assert.are.equal("200", out)
  end)

  it("reads the certificate again on SIGHUP, and keeps the old one when the new files are bad", function()
    local work = dir .. "/reload"
    assert(os.execute(string.format("mkdir -p '%s' && cp '%s' '%s/node.pem' && cp '%s' '%s/node.key'", work, certs.cert, work, certs.key, work)))
    local node = start({ SHAZBOT_TLS_CERT = work .. "/node.pem", SHAZBOT_TLS_KEY = work .. "/node.key" })
    local function serial()
      local _, out = sh(string.format("openssl s_client -connect 127.0.0.1:%d </dev/null 2>/dev/null | openssl x509 -noout -serial", node.port))
      return out:match("serial=(%x+)")
    end
    local old = assert(serial())
    -- A bad pair first: logged, the old certificate stays.
    assert(os.execute(string.format("cp '%s' '%s/node.key'", certs.other_key, work)))
    cluster.signal(node.proc, "HUP")
    cluster.wait_until(5, "the failed reload in the log", function() return cluster.read_log(node.proc):match("TLS not reloaded") end)
    assert.are.equal(old, serial())
    -- A new certificate for the same key, with a serial of its own.
    local status, out = sh(string.format("{ cp '%s' '%s/node.key' && cd '%s' && openssl x509 -req -in node.csr -CA ca.pem -CAkey ca.key -set_serial 4242 -out '%s/node.pem' -days 2 -extfile ext.cnf; } 2>&1",
      certs.key, work, dir, work))
    assert.are.equal(0, status, out)
    cluster.signal(node.proc, "HUP")
    cluster.wait_until(5, "the new serial", function() return serial() == "1092" end)
    assert.is_nil(cluster.exit_status(node.proc))
  end)

  local function refused(env, pattern)
    local port = cluster.free_port()
    local proc = cluster.spawn("serve", cluster.node_env(port, nil, env))
    assert.are.equal(2, cluster.wait_exit(proc, 5))
    local log = cluster.read_log(proc)
    assert.truthy(log:match(pattern), log)
  end

  it("refuses to start with an https base URL but no certificate", function()
    refused({ SHAZBOT_BASE_URL = "https://127.0.0.1:1/" }, "SHAZBOT_TLS_CERT")
  end)

  it("refuses a certificate without a key, and a key without a certificate", function()
    refused({ SHAZBOT_TLS_CERT = certs.cert }, "SHAZBOT_TLS_KEY is not")
    refused({ SHAZBOT_TLS_KEY = certs.key }, "SHAZBOT_TLS_CERT is not")
    refused({ SHAZBOT_TLS_CLIENT_CA = certs.ca }, "SHAZBOT_TLS_CLIENT_CA is set")
  end)

  it("names an unreadable file and a key that does not match", function()
    refused({ SHAZBOT_TLS_CERT = dir .. "/missing.pem", SHAZBOT_TLS_KEY = certs.key }, "missing%.pem")
    refused({ SHAZBOT_TLS_CERT = certs.cert, SHAZBOT_TLS_KEY = certs.other_key }, "other%.key.*mismatch")
    refused({ SHAZBOT_TLS_CERT = certs.cert, SHAZBOT_TLS_KEY = certs.key, SHAZBOT_TLS_CLIENT_CA = dir .. "/none.pem" },
      "SHAZBOT_TLS_CLIENT_CA.*none%.pem")
  end)
end)
