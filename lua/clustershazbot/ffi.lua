-- clustershazbot for nginx with Lua (LuaJIT), through the FFI over libclustershazbot.so.
--
--   local shazbot = require "clustershazbot.ffi"
--   local node = shazbot.new(opts, library) -- opts as the Lua 5.4 module's: nil reads the
--                                    -- environment, or a table (base_url, secret, ..., listen,
--                                    -- policy = "path.lua"); library: the path of
--                                    -- libclustershazbot.so (default: the dynamic linker's search)
--   node:start()  node:listen(host, port)  node:step(0)  node:shutdown()  node:close()
--   local answer, status = node:gossip_request(auth, body)  -- body: the JSON string
--
-- The engine runs on its own libevent loop inside the worker that created it; node:step(0)
-- does what is ready and never blocks, so a worker drives it from ngx.timer.every. See
-- examples/nginx/ for a configuration that is right with several workers.
--
-- Loading: the library embeds Lua 5.4 for its policy hooks, whose C functions have the same
-- names as LuaJIT's. It is therefore opened with RTLD_DEEPBIND, so that it and its own
-- dependencies bind to Lua 5.4, not to the LuaJIT already loaded into nginx.

local ffi = require "ffi"

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
void shazbot_response_free(shazbot_response *r);
void *dlopen(const char *file, int mode);
char *dlerror(void);
]]

local RTLD_NOW, RTLD_DEEPBIND = 0x2, 0x8
local ERR_LEN = 600

local libs = {} -- path -> loaded library

local function load(path)
  path = path or "libclustershazbot.so.0"
  if not libs[path] then
    if ffi.C.dlopen(path, RTLD_NOW + RTLD_DEEPBIND) == nil then
      error("clustershazbot.ffi: cannot load " .. path .. ": " .. ffi.string(ffi.C.dlerror()), 3)
    end
    libs[path] = ffi.load(path) -- the same handle, already bound
  end
  return libs[path]
end

local Node = {}
Node.__index = Node

local function setting_name(key)
  return key == "happy_secret" and "HAPPY_SECRET" or "SHAZBOT_" .. key:upper()
end

local function check(self)
  if self.node == nil then error("clustershazbot: this node has been closed", 3) end
  return self.node
end

local function response(C, out)
  local body, status = ffi.string(out.body, out.body_len), out.status
  C.shazbot_response_free(out)
  return body, status
end

local M = {}

function M.new(opts, library)
  local C = load(library)
  local err = ffi.new("char[?]", ERR_LEN)
  local settings
  if opts == nil then
    settings = C.shazbot_settings_from_env(err, ERR_LEN)
  else
    settings = C.shazbot_settings_new()
    for key, value in pairs(opts) do
      local kind = type(value)
      if kind ~= "string" and kind ~= "number" and kind ~= "boolean" then
        C.shazbot_settings_free(settings)
        error(string.format("clustershazbot.new: option '%s': expected a string, number or boolean, got %s", key, kind), 2)
      end
      if C.shazbot_settings_set(settings, setting_name(key), tostring(value), err, ERR_LEN) ~= 0 then
        C.shazbot_settings_free(settings)
        error(string.format("clustershazbot.new: option '%s': %s", key, ffi.string(err)), 2)
      end
    end
  end
  if settings == nil then error("clustershazbot.new: " .. ffi.string(err), 2) end
  local node = C.shazbot_new(settings, nil, err, ERR_LEN)
  C.shazbot_settings_free(settings)
  if node == nil then error("clustershazbot.new: " .. ffi.string(err), 2) end
  return setmetatable({ C = C, node = ffi.gc(node, C.shazbot_free) }, Node)
end

function Node:start()
  if self.C.shazbot_start(check(self)) ~= 0 then error("clustershazbot: node:start(): already started, or shut down", 2) end
  return true
end

function Node:listen(host, port)
  local err = ffi.new("char[?]", ERR_LEN)
  if self.C.shazbot_listen(check(self), host, port or 0, err, ERR_LEN) ~= 0 then
    error("clustershazbot: node:listen(): " .. ffi.string(err), 2)
  end
  return true
end

function Node:step(max_wait)
  return self.C.shazbot_step(check(self), max_wait or 0) == 0
end

function Node:is_running() return self.C.shazbot_is_running(check(self)) ~= 0 end

-- Leaves the cluster and returns once stopped (bounded by the engine's deadline). It steps the
-- loop meanwhile, so a worker calls it only when it is exiting.
function Node:shutdown()
  local node = check(self)
  if self.C.shazbot_shutdown(node, nil, nil) ~= 0 then
    error("clustershazbot: node:shutdown(): the node is not running (never started, or already shut down)", 2)
  end
  while self.C.shazbot_is_stopped(node) == 0 do
    if self.C.shazbot_step(node, 0.1) ~= 0 then break end
  end
  return true
end

function Node:close()
  if self.node ~= nil then
    self.C.shazbot_free(ffi.gc(self.node, nil))
    self.node = nil
  end
end

function Node:gossip_request(auth, body)
  local out = ffi.new("shazbot_response")
  self.C.shazbot_gossip_request(check(self), auth, body or "", body and #body or 0, out)
  return response(self.C, out)
end

function Node:control_request(auth, body)
  local out = ffi.new("shazbot_response")
  self.C.shazbot_control_request(check(self), auth, body or "", body and #body or 0, out)
  return response(self.C, out)
end

function Node:list_request(auth)
  local out = ffi.new("shazbot_response")
  self.C.shazbot_list_request(check(self), auth, out)
  return response(self.C, out)
end

function Node:happy_request(auth, quick)
  local out = ffi.new("shazbot_response")
  self.C.shazbot_happy_request(check(self), auth, quick and 1 or 0, out)
  return response(self.C, out)
end

return M
