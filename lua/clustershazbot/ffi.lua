-- clustershazbot for nginx with Lua (LuaJIT), through the FFI over libclustershazbot.so.
--
--   local shazbot = require "clustershazbot.ffi"       -- the library beside this file's prefix
--                                                      -- (P/lib), else the dynamic linker's search
--   local shazbot = require("clustershazbot.ffi").open("/path/to/libclustershazbot.so")
--   local node = shazbot.new(opts)   -- as the Lua 5.4 module's: nil reads the environment, or
--                                    -- { base_url = ..., listen = ..., policy = "path.lua", ... }
--   node:listen(host, port)  node:start()  node:step(0)  node:shutdown()  node:close()
--   local answer, status = node:gossip_request(auth, body)   -- body: the JSON text
--   node:on_change(function(event) ... end)   -- change events, delivered after each node:step()
--
-- The interface, its checks and its errors are lua/clustershazbot/facade.lua, shared with the
-- Lua 5.4 module; this file is the backend. Not offered here: node:run() (it would block the
-- worker: step the node from ngx.timer.every instead), policy hooks as LuaJIT functions (the
-- hooks run in the engine's own Lua 5.4; give a script path), body tables and server_list
-- (Lua tables of the engine's state need the Lua 5.4 module).
--
-- The engine runs on its own libevent loop inside the worker that created it; node:step(0)
-- does what is ready and never blocks. See examples/nginx/ for a configuration that is right
-- with several workers.
--
-- Loading: the library embeds Lua 5.4 for its policy hooks, whose C functions have the same
-- names as LuaJIT's. It is therefore opened with RTLD_DEEPBIND, so that it and its own
-- dependencies bind to Lua 5.4, not to the LuaJIT already loaded into nginx.

local ffi = require "ffi"
local facade = require "clustershazbot.facade"

ffi.cdef [[
typedef struct shazbot shazbot;
typedef struct shazbot_settings shazbot_settings;
struct event_base;
typedef struct shazbot_response { int status; char *body; size_t body_len; } shazbot_response;
shazbot_settings *shazbot_settings_new(void);
shazbot_settings *shazbot_settings_from_env(char *err, size_t err_len);
int shazbot_settings_set(shazbot_settings *s, const char *name, const char *value, char *err, size_t err_len);
void shazbot_settings_free(shazbot_settings *s);
shazbot *shazbot_new(const shazbot_settings *s, struct event_base *base, char *err, size_t err_len);
int shazbot_listen(shazbot *node, const char *host, int port, char *err, size_t err_len);
int shazbot_start(shazbot *node);
int shazbot_shutdown(shazbot *node, void (*done)(void *arg), void *arg);
int shazbot_is_stopped(const shazbot *node);
int shazbot_is_running(const shazbot *node);
int shazbot_step(shazbot *node, double max_wait);
void shazbot_free(shazbot *node);
void shazbot_gossip_request(shazbot *node, const char *auth, const char *body, size_t body_len, shazbot_response *out);
void shazbot_list_request(shazbot *node, const char *auth, shazbot_response *out);
void shazbot_control_request(shazbot *node, const char *auth, const char *body, size_t body_len, shazbot_response *out);
void shazbot_happy_request(shazbot *node, const char *auth, int quick, shazbot_response *out);
void shazbot_metrics_request(shazbot *node, const char *auth, shazbot_response *out);
void shazbot_response_free(shazbot_response *r);
void shazbot_events(shazbot *node, unsigned long long after, shazbot_response *out);
void *dlopen(const char *file, int mode);
char *dlerror(void);
]]

local RTLD_NOW, RTLD_DEEPBIND = 0x2, 0x8
local ERR_LEN = 600

-- Where to look when no path is given: the installed prefix this file belongs to
-- (P/share/lua/5.1/clustershazbot/ffi.lua -> P/lib), then the dynamic linker's search.
local function default_candidates()
  local candidates = {}
  local prefix = debug.getinfo(1, "S").source:match("^@(.*)/share/lua/5%.1/clustershazbot/ffi%.lua$")
  for _, dir in ipairs(prefix and { prefix .. "/lib/" } or {}) do
    for _, name in ipairs({ "libclustershazbot.so.0", "libclustershazbot.so" }) do
      local f = io.open(dir .. name)
      if f then
        f:close()
        candidates[#candidates + 1] = dir .. name
      end
    end
  end
  candidates[#candidates + 1] = "libclustershazbot.so.0"
  candidates[#candidates + 1] = "libclustershazbot.so" -- a build without versioned names
  return candidates
end

local libraries = {} -- path -> the loaded library, shared by every module opened on it

-- Resolved once, now: resolving a symbol is itself a dl* call, which would clear the error
-- that dlerror() is to report.
local dlopen, dlerror = ffi.C.dlopen, ffi.C.dlerror

local function load_library(candidates)
  local errors = {}
  for _, path in ipairs(candidates) do
    if libraries[path] then return libraries[path] end
    if dlopen(path, RTLD_NOW + RTLD_DEEPBIND) ~= nil then
      libraries[path] = ffi.load(path) -- the same handle, already bound
      return libraries[path]
    end
    local why = dlerror()
    errors[#errors + 1] = why ~= nil and ffi.string(why) or path .. ": cannot be opened"
  end
  error("clustershazbot.ffi: cannot load the library: " .. table.concat(errors, "; "), 0)
end

local function err_buffer() return ffi.new("char[?]", ERR_LEN) end

local function response(C, out)
  local body, status = ffi.string(out.body, out.body_len), out.status
  C.shazbot_response_free(out)
  return body, status
end

-- The backend of facade.lua over the library found among `candidates`, loaded when the first
-- node is made (so that requiring this module never fails for a library elsewhere).
local function backend(candidates)
  local C
  local function library()
    C = C or load_library(candidates)
    return C
  end
  local b = {
    unsupported = {
      run = "it would block the nginx worker; call node:step(0) from ngx.timer.every",
      policy_functions = "the hooks run in the engine's own Lua 5.4, not in LuaJIT; give a script path",
      encode = "body tables need the Lua 5.4 module; pass the JSON text",
      server_list = "Lua tables of the engine's state need the Lua 5.4 module; decode node:list_request()",
    },
  }

  function b.settings_new()
    local lib = library()
    return ffi.gc(lib.shazbot_settings_new(), lib.shazbot_settings_free)
  end

  function b.settings_from_env()
    local lib, err = library(), err_buffer()
    local s = lib.shazbot_settings_from_env(err, ERR_LEN)
    if s == nil then return nil, ffi.string(err) end
    return ffi.gc(s, lib.shazbot_settings_free)
  end

  function b.settings_set(s, name, value)
    local err = err_buffer()
    if C.shazbot_settings_set(s, name, value, err, ERR_LEN) ~= 0 then return nil, ffi.string(err) end
    return true
  end

  function b.node_new(s)
    local err = err_buffer()
    local node = C.shazbot_new(s, nil, err, ERR_LEN)
    if node == nil then return nil, ffi.string(err) end
    return ffi.gc(node, C.shazbot_free)
  end

  function b.node_free(node) C.shazbot_free(ffi.gc(node, nil)) end
  function b.start(node) return C.shazbot_start(node) == 0 end
  function b.shutdown(node) return C.shazbot_shutdown(node, nil, nil) == 0 end
  function b.is_stopped(node) return C.shazbot_is_stopped(node) ~= 0 end
  function b.is_running(node) return C.shazbot_is_running(node) ~= 0 end
  function b.step(node, max_wait) return C.shazbot_step(node, max_wait) == 0 end

  function b.listen(node, host, port)
    local err = err_buffer()
    if C.shazbot_listen(node, host, port, err, ERR_LEN) ~= 0 then return nil, ffi.string(err) end
    return true
  end

  function b.gossip_request(node, auth, body)
    local out = ffi.new("shazbot_response")
    C.shazbot_gossip_request(node, auth, body, #body, out)
    return response(C, out)
  end

  function b.control_request(node, auth, body)
    local out = ffi.new("shazbot_response")
    C.shazbot_control_request(node, auth, body, #body, out)
    return response(C, out)
  end

  function b.list_request(node, auth)
    local out = ffi.new("shazbot_response")
    C.shazbot_list_request(node, auth, out)
    return response(C, out)
  end

  -- node:on_change(fn) polls (facade.lua): a callback from the engine into LuaJIT could come
  -- from within a compiled trace's FFI call, which LuaJIT does not allow. The events come as
  -- JSON, decoded by lua-cjson (OpenResty has it).
  b.events_page = 512
  local cjson_ok, cjson = pcall(require, "cjson.safe")
  if not cjson_ok then
    b.unsupported.events = "node:on_change() needs lua-cjson (cjson.safe) to read the events"
  else
    local function side(v) return type(v) == "table" and v or nil end
    function b.events(node, after)
      local out = ffi.new("shazbot_response")
      C.shazbot_events(node, after, out)
      local body = response(C, out)
      local answer, why = cjson.decode(body)
      if type(answer) ~= "table" then return nil, why or "not an object" end
      for _, event in ipairs(answer.events) do
        event.before, event.after = side(event.before), side(event.after)
      end
      return answer.events, answer.next, answer.missed
    end
  end

  function b.happy_request(node, auth, quick)
    local out = ffi.new("shazbot_response")
    C.shazbot_happy_request(node, auth, quick and 1 or 0, out)
    return response(C, out)
  end

  function b.metrics_request(node, auth)
    local out = ffi.new("shazbot_response")
    C.shazbot_metrics_request(node, auth, out)
    return response(C, out)
  end

  return b
end

local M = facade.module(backend(default_candidates()))

-- A module like this one over the library at `path`.
function M.open(path) return facade.module(backend({ path })) end

return M
