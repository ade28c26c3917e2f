-- The Lua interface of a clustershazbot node, written once for both bindings: the Lua 5.4
-- module (`require "clustershazbot"`, over the C module clustershazbot.native) and the LuaJIT
-- FFI binding for nginx (`require "clustershazbot.ffi"`). Plain Lua that runs in both.
--
-- Each binding gives a backend: the C API as functions over handles that report failures
-- (false, or nil and a message) and never raise for misuse. This file turns them into the
-- interface of the README, with one set of checks and error messages:
--
--   settings_new() -> s              settings_from_env() -> s | nil, why
--   settings_set(s, name, value) -> true | nil, why
--   node_new(s, hooks) -> handle | nil, why        hooks: a table of policy functions, or nil
--   node_free(handle)   start(h) -> ok   shutdown(h) -> ok   is_stopped(h)   is_running(h)
--   step(h, max_wait) -> ok   listen(h, host, port) -> true | nil, why   run(h) -> ok
--   gossip_request(h, auth, json) / control_request(h, auth, json) -> answer, status
--   list_request(h, auth) / happy_request(h, auth, quick) / metrics_request(h, auth) -> answer, status
--   server_list(h, include_offline) -> { online = {...}, offline = {...} }
--   encode(table) -> json | nil, why
--   in_hook(h) -> true while a policy hook of the node runs (a host's hook calls back into it)
--   on_change(h, fn | nil) -> true: fn(event) called by the engine as it derives each event;
--   or, for a backend without it, events(h, after) -> { event... }, next, missed | nil, why,
--   polled after each step
--   version, and unsupported = { name = why } for what a backend cannot offer (functions
--   above, or policy_functions: hooks given as a table of functions).
--
-- Errors name the call (`clustershazbot: node:start(): ...`, `clustershazbot.new(): ...`) and
-- point at the host's line: the `level` arguments below count as error() does, from the
-- function that passes them (2: its caller).

local facade = {}

local Node = {}
Node.__index = Node

-- Option key -> setting name: base_url -> SHAZBOT_BASE_URL, happy_secret -> HAPPY_SECRET.
local function setting_name(key)
  if key == "happy_secret" then return "HAPPY_SECRET" end
  return "SHAZBOT_" .. key:upper()
end

local function fail(call, why, level)
  error(call .. ": " .. why, level + 1)
end

local function refuse_unsupported(backend, name, call, level)
  fail(call, "not offered by this binding: " .. (backend.unsupported[name] or "unsupported"), level + 1)
end

-- The backend function `name`, or an error saying why this binding has none.
local function backend_function(backend, name, call, level)
  return backend[name] or refuse_unsupported(backend, name, call, level + 1)
end

-- The node's handle for method `method`; `driving` calls (step, run, shutdown, close) are
-- refused from inside the node's own policy hooks, which run within those very calls.
local function handle_of(node, method, driving)
  local h = node._handle
  local call = "clustershazbot: node:" .. method .. "()"
  if h == nil then fail(call, "this node has been closed", 3) end
  local in_hook = node._backend.in_hook
  if driving and in_hook and in_hook(h) then
    fail(call, "not allowed inside the node's own policy hooks", 3)
  end
  return h, node._backend, call
end

local function settings_from(backend, opts)
  if opts == nil then
    local s, why = backend.settings_from_env()
    if not s then fail("clustershazbot.new()", why, 3) end
    return s
  end
  if type(opts) ~= "table" then fail("clustershazbot.new()", "options must be a table or nil, got " .. type(opts), 3) end
  local s = backend.settings_new()
  for key, value in pairs(opts) do
    if type(key) ~= "string" then fail("clustershazbot.new()", "option keys must be strings, got " .. type(key), 3) end
    local kind = type(value)
    if not (key == "policy" and kind == "table") then -- hooks go to node_new
      if kind ~= "string" and kind ~= "number" and kind ~= "boolean" then
        fail("clustershazbot.new()", string.format("option '%s': expected a string, number or boolean, got %s", key, kind), 3)
      end
      local ok, why = backend.settings_set(s, setting_name(key), tostring(value))
      if not ok then fail("clustershazbot.new()", string.format("option '%s': %s", key, why), 3) end
    end
  end
  return s
end

local function new(backend, opts)
  local settings = settings_from(backend, opts)
  local hooks = type(opts) == "table" and type(opts.policy) == "table" and opts.policy or nil
  if hooks and backend.unsupported.policy_functions then
    refuse_unsupported(backend, "policy_functions", "clustershazbot.new(): option 'policy'", 2)
  end
  local handle, why = backend.node_new(settings, hooks)
  if not handle then fail("clustershazbot.new()", why, 2) end
  return setmetatable({ _backend = backend, _handle = handle }, Node)
end

-- Delivers the events a polling backend holds after the last one delivered (see on_change).
local function deliver_polled(node)
  local fn, b, h = node._on_change, node._backend, node._handle
  while fn and h do
    local events, next_seq, missed = b.events(h, node._events_after)
    if not events then return end
    node._events_after = next_seq
    if missed > 0 then fn({ kind = "missed", missed = missed }) end
    for _, event in ipairs(events) do fn(event) end
    if #events == 0 or not b.events_page or #events < b.events_page then return end
  end
end

function Node:start()
  local h, b, call = handle_of(self, "start")
  if not b.start(h) then fail(call, "already started, or shut down", 2) end
  return true
end

-- Leaves the cluster and returns once the node has stopped: bounded, as the engine gives up on
-- peers that do not answer the goodbye, and on the master-list upload, after its deadlines.
function Node:shutdown()
  local h, b, call = handle_of(self, "shutdown", true)
  if not b.shutdown(h) then fail(call, "the node is not running (never started, or already shut down)", 2) end
  while not b.is_stopped(h) do
    if not b.step(h, 0.1) then break end
    deliver_polled(self)
  end
  return true
end

function Node:step(max_wait)
  local h, b, call = handle_of(self, "step", true)
  if max_wait ~= nil and type(max_wait) ~= "number" then fail(call, "max_wait: expected seconds, got " .. type(max_wait), 2) end
  if not b.step(h, max_wait or 0) then fail(call, "the event loop failed", 2) end
  deliver_polled(self)
  return true
end

-- Calls fn(event) for each change event of the node (README, "Events"): { seq, kind, baseUrl,
-- time, before, after }, the same sequence the policy hook on_change sees. The Lua 5.4 module
-- calls it as the engine derives each event (inside node:step() or node:run(): it must not
-- step, shut down or close the node); the FFI binding delivers after each node:step(), every
-- event the node still holds, from the first, and { kind = "missed", missed = n } when the
-- node's ring (4096) no longer held n of them. nil stops the calls.
function Node:on_change(fn)
  local h, b, call = handle_of(self, "on_change")
  if fn ~= nil and type(fn) ~= "function" then fail(call, "expected a function or nil, got " .. type(fn), 2) end
  if b.on_change then
    b.on_change(h, fn)
  else
    backend_function(b, "events", call, 2)
    self._on_change = fn
    self._events_after = self._events_after or 0
  end
  return true
end

-- Runs the node's own loop until it stops. A node run so serves its endpoints itself, or
-- nothing would reach it: when the host has not called node:listen(), run() listens first
-- where the `listen` option says (else on the base URL's port), as `clustershazbot serve`
-- does; a failure to listen is an error, not a node that silently serves nothing.
function Node:run()
  local h, b, call = handle_of(self, "run", true)
  local run = backend_function(b, "run", call, 2)
  if not self._listening then
    local ok, why = b.listen(h, nil, 0)
    if not ok then fail(call, "cannot listen: " .. why, 2) end
    self._listening = true
  end
  if not run(h) then fail(call, "the event loop failed", 2) end
  return true
end

function Node:listen(host, port)
  local h, b, call = handle_of(self, "listen")
  local ok, why = b.listen(h, host, port or 0)
  if not ok then fail(call, why, 2) end
  self._listening = true
  return true
end

function Node:is_running()
  local h, b = handle_of(self, "is_running")
  return b.is_running(h)
end

-- Frees the node at once (the garbage collector would too); an unfinished shutdown is
-- abandoned. Closing twice is fine; any other use afterwards is an error.
function Node:close()
  if self._handle == nil then return end
  local h, b = handle_of(self, "close", true)
  self._handle = nil
  b.node_free(h)
end
Node.__close = Node.close

-- A request body: JSON text, a table (written as JSON), or nil for an empty body, which the
-- engine answers 400 like any other malformed one.
local function body_text(b, body, call)
  local kind = type(body)
  if kind == "string" then return body end
  if kind == "nil" then return "" end
  if kind ~= "table" then fail(call, "body: expected JSON text or a table, got " .. kind, 3) end
  local json, why = backend_function(b, "encode", call, 3)(body)
  if not json then fail(call, "the body table " .. why, 3) end
  return json
end

local function check_auth(auth, call)
  if auth ~= nil and type(auth) ~= "string" then fail(call, "auth: expected a string or nil, got " .. type(auth), 3) end
end

function Node:gossip_request(auth, body)
  local h, b, call = handle_of(self, "gossip_request")
  check_auth(auth, call)
  return b.gossip_request(h, auth, body_text(b, body, call))
end

function Node:control_request(auth, body)
  local h, b, call = handle_of(self, "control_request")
  check_auth(auth, call)
  return b.control_request(h, auth, body_text(b, body, call))
end

function Node:list_request(auth)
  local h, b, call = handle_of(self, "list_request")
  check_auth(auth, call)
  return b.list_request(h, auth)
end

function Node:happy_request(auth, quick)
  local h, b, call = handle_of(self, "happy_request")
  check_auth(auth, call)
  return b.happy_request(h, auth, quick and true or false)
end

-- GET /metrics: Prometheus text (a JSON error when refused), status.
function Node:metrics_request(auth)
  local h, b, call = handle_of(self, "metrics_request")
  check_auth(auth, call)
  return backend_function(b, "metrics_request", call, 2)(h, auth)
end

function Node:server_list(include_offline)
  local h, b, call = handle_of(self, "server_list")
  return backend_function(b, "server_list", call, 2)(h, include_offline and true or false)
end

-- The module a binding returns: new(opts), and the original library's functions on a default
-- node configured from the environment, created by the first of them that is called.
function facade.module(backend)
  backend.unsupported = backend.unsupported or {}
  local M = { version = backend.version }
  local default_node

  function M.new(opts) return new(backend, opts) end

  local function default()
    if not default_node then default_node = new(backend, nil) end
    return default_node
  end

  for _, name in ipairs({ "start", "gossip_request", "list_request", "control_request", "happy_request",
                          "metrics_request", "server_list", "step", "listen", "run", "is_running" }) do
    M[name] = function(...)
      local node = default()
      return node[name](node, ...)
    end
  end

  -- Leaves the cluster and frees the default node; the next call makes a new one.
  function M.shutdown()
    local node = default_node
    if not node then fail("clustershazbot.shutdown()", "there is no default node (nothing was started)", 2) end
    default_node = nil
    local ok, err = pcall(node.shutdown, node)
    node:close()
    if not ok then error(err, 0) end
    return true
  end

  return M
end

return facade
