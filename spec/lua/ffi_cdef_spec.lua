-- The LuaJIT binding declares the C API itself (ffi.cdef in lua/clustershazbot/ffi.lua), and
-- LuaJIT believes it: a parameter type that no longer matches clustershazbot.h is a wrong call
-- at run time, not an error at build time. This spec holds the two copies together.

local cdecl = require "support.cdecl"

local source = assert(os.getenv("SHAZBOT_SOURCE"), "SHAZBOT_SOURCE must name the source tree")

local function read(path)
  local f = assert(io.open(source .. "/" .. path))
  local text = f:read("a")
  f:close()
  return text
end

-- What the cdef declares from libc (to open the library with RTLD_DEEPBIND), not the library.
local FROM_LIBC = { dlopen = true, dlerror = true }

local header = cdecl.parse(read("core/include/clustershazbot.h"))
local ffi_source = read("lua/clustershazbot/ffi.lua")

local function cdef_of(lua_source)
  return cdecl.parse(table.concat(cdecl.cdef_blocks(lua_source), "\n"))
end

local function mismatches(lua_source) return cdecl.mismatches(cdef_of(lua_source), header, FROM_LIBC) end

-- ffi.lua with `from` replaced by `to`, which must occur exactly once in it.
local function edited(from, to)
  local text, n = ffi_source:gsub(from:gsub("%p", "%%%0"), (to:gsub("%%", "%%%%")))
  assert(n == 1, "ffi.lua should hold `" .. from .. "` once, holds it " .. n .. " times")
  return text
end

describe("the ffi.cdef of clustershazbot.ffi", function()
  it("declares every function and type as clustershazbot.h does", function()
    local problems = mismatches(ffi_source)
    assert(#problems == 0, "ffi.lua and clustershazbot.h differ:\n  " .. table.concat(problems, "\n  "))
  end)

  it("is read whole: every prototype of the cdef is compared", function()
    local block = table.concat(cdecl.cdef_blocks(ffi_source), "\n")
    local _, prototypes = block:gsub("%b();", "")
    local functions = 0
    for _, decl in ipairs(cdef_of(ffi_source).order) do
      if decl.section == "functions" then functions = functions + 1 end
    end
    assert.are.equal(prototypes, functions)
    assert.is_true(functions > 0)
  end)

  describe("catches", function()
    it("a parameter type changed, naming the function and both prototypes", function()
      assert.are.same({ "shazbot_step: the cdef has `int shazbot_step(shazbot *, float)`, "
                        .. "clustershazbot.h has `int shazbot_step(shazbot *, double)`" },
                      mismatches(edited("int shazbot_step(shazbot *node, double max_wait);",
                                        "int shazbot_step(shazbot *node, float max_wait);")))
    end)

    it("a parameter of a function pointer changed", function()
      local problems = mismatches(edited("void (*done)(void *arg)", "void (*done)(int arg)"))
      assert.are.equal(1, #problems)
      assert.truthy(problems[1]:find("shazbot_shutdown: the cdef has `int shazbot_shutdown(shazbot *, void (*)(int), void *)`", 1, true),
                    problems[1])
    end)

    it("a return type changed", function()
      local problems = mismatches(edited("int shazbot_start(shazbot *node);", "void shazbot_start(shazbot *node);"))
      assert.are.equal(1, #problems)
      assert.truthy(problems[1]:find("^shazbot_start: the cdef has `void shazbot_start"), problems[1])
    end)

    it("a field of a struct changed", function()
      local problems = mismatches(edited("size_t body_len; }", "int body_len; }"))
      assert.are.equal(1, #problems)
      assert.truthy(problems[1]:find("^shazbot_response: the cdef has `typedef struct shazbot_response { int status; char %*body; int body_len; }"),
                    problems[1])
    end)

    it("a function the header does not declare", function()
      assert.are.same({ "shazbot_begin: declared by the cdef (int shazbot_begin(shazbot *)), not by clustershazbot.h" },
                      mismatches(edited("int shazbot_start(shazbot *node);", "int shazbot_begin(shazbot *node);")))
    end)

    it("nothing when only a parameter's name or the spacing differs, or a name is left out", function()
      assert.are.same({}, mismatches(edited("int shazbot_step(shazbot *node, double max_wait);",
                                            "int  shazbot_step( shazbot* n,double  seconds );")))
      assert.are.same({}, mismatches(edited("void *arg);", "void *);")))
    end)

    it("a qualifier added to a parameter whose name is left out, keeping its type in the message", function()
      local problems = mismatches(edited("struct event_base *base, char *err, size_t err_len);",
                                         "struct event_base *base, char *err, const size_t);"))
      assert.are.equal(1, #problems)
      assert.truthy(problems[1]:find("the cdef has `shazbot *shazbot_new(const shazbot_settings *, struct event_base *, char *, const size_t)`", 1, true),
                    problems[1])
    end)
  end)
end)
