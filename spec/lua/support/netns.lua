-- Test support: a private network of Linux network namespaces for real nodes, with links that a
-- spec can cut.
--
-- One hub namespace holds a bridge (10.231.0.254/24, where the store and the observer live);
-- node namespace i has one veth into it, address 10.231.0.i. The kernel here has neither netem
-- nor iptables, so a link is cut with blackhole routes: `i -> j` dropped in i's namespace and
-- `j -> i` in j's, which also kills TCP both ways (a SYN-ACK cannot come back). A connection to
-- a blocked address fails at once (the local route refuses it: curl's "Couldn't connect"
-- after 0 ms), it does not time out; a node that is alive but does not answer is a SIGSTOP.
-- No traffic leaves the namespaces this module makes, whatever address the nodes use.
--
-- Needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN), `ip` and curl. Names carry the pid of the
-- spec process, so that parallel runs do not meet, and namespaces left by a run that was killed
-- (its pid gone) are removed by the next one.

local cluster = require "support.cluster"
local cjson = require "cjson"

local netns = {}
netns.subnet = "10.231.0."
netns.hub_address = netns.subnet .. "254"

local PREFIX = "shzspec-"

local function quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- Runs `cmd`; fails the spec with its output if it fails.
local function run(cmd)
  local status, out = cluster.sh(cmd)
  if status ~= 0 then error(cmd .. " failed (" .. tostring(status) .. "): " .. out, 2) end
  return out
end

local function own_pid()
  local f = assert(io.open("/proc/self/stat"))
  local pid = f:read("n")
  f:close()
  return pid
end

local function alive(pid) return (cluster.sh("kill -0 " .. pid)) == 0 end

-- Namespaces of earlier runs whose process is gone (killed by a ctest timeout, say, before its
-- teardown): the processes still in them were started by that run, and go with them.
local function remove_stale()
  local _, out = cluster.sh("ip netns list")
  for name, pid in out:gmatch("(" .. PREFIX:gsub("%-", "%%-") .. "(%d+)%-%S+)") do
    if not alive(pid) then
      local _, pids = cluster.sh("ip netns pids " .. quote(name))
      for p in pids:gmatch("%d+") do cluster.sh("kill -9 " .. p) end
      cluster.sh("ip netns del " .. quote(name))
    end
  end
end

-- Whether namespaces, a bridge and veths can be made here; else false and why.
function netns.available()
  local _, uid = cluster.sh("id -u")
  if tonumber(uid) ~= 0 then return false, "not running as root (network namespaces need it)" end
  for _, tool in ipairs { "ip", "curl" } do
    if cluster.sh("command -v " .. tool) ~= 0 then return false, tool .. " is not installed" end
  end
  local probe = PREFIX .. own_pid() .. "-probe"
  local status, out = cluster.sh(string.format(
    "ip netns add %s && ip -n %s link add br0 type bridge && ip -n %s link add v0 type veth peer name v1",
    probe, probe, probe))
  cluster.sh("ip netns del " .. probe)
  if status ~= 0 then return false, "cannot make network namespaces here: " .. out:gsub("%s+$", "") end
  return true
end

local Net = {}
Net.__index = Net

-- Makes the hub and `n` node namespaces (n < 254). Returns a net; net:destroy() removes them.
function netns.create(n)
  assert(n >= 1 and n < 254, "between 1 and 253 nodes")
  remove_stale()
  local base = PREFIX .. own_pid() .. "-" .. math.random(1e6)
  local net = { hub = base .. "-hub", names = {}, n = n, blocked = {}, dir = cluster.tempdir() }
  setmetatable(net, Net)
  local ok, err = pcall(function()
    local hub = net.hub
    run(string.format("ip netns add %s && ip -n %s link set lo up && ip -n %s link add br0 type bridge && " ..
      "ip -n %s addr add %s/24 dev br0 && ip -n %s link set br0 up", hub, hub, hub, hub, netns.hub_address, hub))
    for i = 1, n do
      local name = base .. "-" .. i
      net.names[i] = name
      run(string.format("ip netns add %s && ip -n %s link set lo up && " ..
        "ip -n %s link add v%d type veth peer name eth0 netns %s && ip -n %s link set v%d master br0 up && " ..
        "ip -n %s addr add %s/24 dev eth0 && ip -n %s link set eth0 up",
        name, name, hub, i, name, hub, i, name, net:address(i), name))
    end
  end)
  if not ok then
    net:destroy()
    error(err, 2)
  end
  return net
end

-- Node i's address; "hub" for the hub's.
function Net:address(i) return i == "hub" and netns.hub_address or netns.subnet .. i end

-- The command prefix that runs a program in node i's namespace ("hub": the hub's).
function Net:wrapper(i) return "ip netns exec " .. (i == "hub" and self.hub or self.names[i]) end

-- Cuts the link between nodes i and j, both ways; unblock restores it.
function Net:block(i, j)
  local key = math.min(i, j) .. "-" .. math.max(i, j)
  if self.blocked[key] then return end
  run(string.format("ip -n %s route add blackhole %s/32 && ip -n %s route add blackhole %s/32",
    self.names[i], self:address(j), self.names[j], self:address(i)))
  self.blocked[key] = { i, j }
end

function Net:unblock(i, j)
  local key = math.min(i, j) .. "-" .. math.max(i, j)
  if not self.blocked[key] then return end
  run(string.format("ip -n %s route del blackhole %s/32 && ip -n %s route del blackhole %s/32",
    self.names[i], self:address(j), self.names[j], self:address(i)))
  self.blocked[key] = nil
end

function Net:unblock_all()
  local pairs_ = {}
  for _, p in pairs(self.blocked) do pairs_[#pairs_ + 1] = p end
  for _, p in ipairs(pairs_) do self:unblock(p[1], p[2]) end
end

-- GETs every URL of `urls` (an array) at once from the hub, with `headers` (a table), each
-- given `timeout` seconds (default 1). Returns an array of the decoded JSON answers, nil where
-- a request failed, was not answered 2xx or its body is not JSON. One curl for the lot, so
-- that polling six nodes five times a second costs ten processes a second, not sixty.
function Net:get_json(urls, headers, timeout)
  local args = { self:wrapper("hub"), "curl -s -f --noproxy '*' --parallel --parallel-immediate",
                 "--parallel-max", tostring(#urls), "-m", tostring(timeout or 1) }
  for k, v in pairs(headers or {}) do args[#args + 1] = "-H " .. quote(k .. ": " .. v) end
  local files = {}
  for i, url in ipairs(urls) do
    files[i] = string.format("%s/answer-%d.json", self.dir, i)
    -- A transfer that fails writes nothing: the previous answer must not be read again.
    os.remove(files[i])
    args[#args + 1] = quote(url) .. " -o " .. quote(files[i])
  end
  cluster.sh(table.concat(args, " "))
  local answers = {}
  for i, file in ipairs(files) do
    local f = io.open(file)
    if f then
      local ok, decoded = pcall(cjson.decode, f:read("a"))
      f:close()
      if ok and type(decoded) == "table" then answers[i] = decoded end
    end
  end
  return answers
end

-- Whether a GET of `url` from the hub is answered: what cluster.start_node and
-- cluster.start_store take as `answers`.
function Net:answers(url) return self:get_json({ url })[1] ~= nil end

-- Removes every namespace (with its veths and routes). The processes in them must have been
-- killed before (cluster.cleanup): a namespace lives on while a process is in it.
function Net:destroy()
  for i = 1, self.n do
    if self.names[i] then cluster.sh("ip netns del " .. quote(self.names[i])) end
  end
  cluster.sh("ip netns del " .. quote(self.hub))
  self.blocked = {}
end

return netns
