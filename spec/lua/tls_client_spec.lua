-- SHAZBOT_TLS_CA on the client side: `clustershazbot members` over https to a real nginx
-- (TLS, certificate for IP 127.0.0.1 signed by a CA made here) in front of a plain node.
-- With that CA it works; with another CA it fails, exit 1, and says why (curl's reason).

local cluster = require "support.cluster"

local sh = cluster.sh

local quote, write = cluster.quote, cluster.write_file
local certs_of = require "support.certs"

local function run(args, env)
  local assignments = { "env", "-u", "SHAZBOT_BASE_URL", "-u", "SHAZBOT_CONTROL_SECRET", "-u", "SHAZBOT_TLS_CA" }
  for k, v in pairs(env or {}) do assignments[#assignments + 1] = k .. "=" .. quote(v) end
  return sh(table.concat(assignments, " ") .. " timeout 30 " .. quote(cluster.bin) .. " " .. args)
end

describe("TLS client settings", function()
  local prefix
  local dir, url, certs

  setup(function()
    assert.are.equal(0, (sh("command -v nginx")), "nginx is not installed (tools/setup.sh installs it)")
    dir = cluster.tempdir()
    certs = certs_of.make(dir)

    local node = cluster.start_node(nil)
    local port = cluster.free_port()
    prefix = dir .. "/nginx"
    assert(os.execute(string.format("mkdir -p '%s/conf' '%s/logs'", prefix, prefix)))
    write(prefix .. "/conf/nginx.conf", string.format([[
user root;
worker_processes 1;
pid logs/nginx.pid;
error_log logs/error.log;
events { worker_connections 64; }
http {
  access_log logs/access.log;
  server {
    listen 127.0.0.1:%d ssl;
    ssl_certificate %s;
    ssl_certificate_key %s;
    location / { proxy_pass http://127.0.0.1:%d; }
  }
}
]], port, certs.cert, certs.key, node.port))
    status, out = sh(string.format("nginx -p '%s' -c conf/nginx.conf", prefix))
    assert(status == 0, out)
    url = string.format("https://127.0.0.1:%d/", port)
  end)

  teardown(function()
    if prefix then sh(string.format("nginx -p '%s' -c conf/nginx.conf -s stop", prefix)) end
    cluster.cleanup()
  end)

  it("members over https works with the server's CA in SHAZBOT_TLS_CA", function()
    local ok
    cluster.wait_until(10, "nginx to answer with the right CA", function()
      local status, out = run("members --url " .. url .. " --control-secret " .. cluster.control_secret,
        { SHAZBOT_TLS_CA = certs.ca })
      ok = { status, out }
      return status == 0
    end)
    assert.truthy(ok[2]:find("127.0.0.1", 1, true), ok[2])
  end)

  it("members over https fails with another CA, exit 1, naming the reason", function()
    local status, out = run("members --url " .. url .. " --control-secret " .. cluster.control_secret,
      { SHAZBOT_TLS_CA = certs.other })
    assert.are.equal(1, status, out)
    assert.truthy(out:find("cannot reach", 1, true), out)
    assert.truthy(out:lower():find("certificate", 1, true), out)
  end)
end)
