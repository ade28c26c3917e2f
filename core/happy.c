/* happy: see happy.h.
 *
 * Each payload is an object whose fields are listed once below, with the payloads they are
 * part of. Two writers walk those lists: one into a Lua table, taking the values from the
 * health hook's info table, one into JSON, taking them from health_info. */
#include "happy.h"

#include "lua_array.h"
#include "wire.h"

#include <lauxlib.h>
#include <lua.h>
#include <math.h>
#include <stddef.h>

#define ENTRY_NAME HAPPY_ENTRY_NAME /* our entry in extensions, and our quick check */

/* Why our entry is not "ok" when no health hook could answer; and when an info (of a user's
 * hook) says the engine is not running without saying why. */
static const char fallback_error[] = "the health hook failed";
static const char unnamed_error[] = "engine not started";

/* The numbers of health_info. */
typedef enum {
    REQ_PER_SEC,
    REQ_PER_MIN,
    FAILS_PER_MIN,
    ERR_PER_MIN,
    SKIPPED_ENTRIES,
    REFUTATIONS,
    POLICY_FAILURES,
    MEMBERS_ONLINE,
    MEMBERS_OFFLINE,
    FIGURE_COUNT
} figure_id;

static const struct {
    const char *info_name; /* in the health hook's info */
    size_t offset;         /* in health_info */
    bool is_count;         /* a uint64_t there, else a double */
} figures[FIGURE_COUNT] = {
    [REQ_PER_SEC] = {"reqPerSec", offsetof(health_info, req_per_sec), false},
    [REQ_PER_MIN] = {"reqPerMin", offsetof(health_info, req_per_min), false},
    [FAILS_PER_MIN] = {"failsPerMin", offsetof(health_info, fails_per_min), false},
    [ERR_PER_MIN] = {"errPerMin", offsetof(health_info, err_per_min), false},
    [SKIPPED_ENTRIES] = {"skippedEntries", offsetof(health_info, skipped_entries), true},
    [REFUTATIONS] = {"refutations", offsetof(health_info, refutations), true},
    [POLICY_FAILURES] = {"policyFailures", offsetof(health_info, policy_failures), true},
    [MEMBERS_ONLINE] = {"membersOnline", offsetof(health_info, members_online), true},
    [MEMBERS_OFFLINE] = {"membersOffline", offsetof(health_info, members_offline), true},
};

static double figure_value(const health_info *info, figure_id f) {
    const char *at = (const char *)info + figures[f].offset;
    return figures[f].is_count ? (double)*(const uint64_t *)at : *(const double *)at;
}

typedef enum {
    VALUE_RUNNING,    /* boolean: the node is part of its cluster */
    VALUE_PLANNED,    /* seconds until the node will have stopped while it leaves, else null */
    VALUE_FIGURE,     /* a number of health_info */
    VALUE_FAILURES,   /* the names of the quick checks that failed: ours, then the policy's */
    VALUE_TRACKED,    /* { membersOnline, membersOffline } */
    VALUE_EXTENSIONS, /* { clustershazbot = our entry } */
    VALUE_STATUS,     /* our entry's: "ok" or "error" */
    VALUE_ERROR,      /* why not "ok" */
    VALUE_CLUSTER,    /* the records, { online = [...], offline = [...] }, this node's included */
} value_kind;

/* Where a field is written: in which payload (the top level), in which form of our entry. */
enum {
    IN_HOOK = 1,     /* the health hook's payload */
    IN_FALLBACK = 2, /* when no health hook could answer */
    IN_QUICK = 4,    /* /happy/quick */
    IN_OK_ENTRY = 8,
    IN_ERROR_ENTRY = 16,
};

typedef struct field {
    const char *name;
    value_kind kind;
    unsigned in;
    figure_id figure; /* of VALUE_FIGURE */
} field;

/* The fallback has every field of the hook's payload: a dashboard reads both alike. */
#define IN_FULL (IN_HOOK | IN_FALLBACK)
static const field payload_fields[] = {
    {"running", VALUE_RUNNING, .in = IN_FULL},
    {"plannedShutdownIn", VALUE_PLANNED, .in = IN_FULL},
    {"currentReqPerSec", VALUE_FIGURE, .in = IN_FULL | IN_QUICK, .figure = REQ_PER_SEC},
    {"currentReqPerMin", VALUE_FIGURE, .in = IN_FULL | IN_QUICK, .figure = REQ_PER_MIN},
    {"currentFailsPerMin", VALUE_FIGURE, .in = IN_FULL | IN_QUICK, .figure = FAILS_PER_MIN},
    {"currentErrPerMin", VALUE_FIGURE, .in = IN_FULL | IN_QUICK, .figure = ERR_PER_MIN},
    {"extensionFailures", VALUE_FAILURES, .in = IN_FULL | IN_QUICK},
    {"trackedValues", VALUE_TRACKED, .in = IN_FULL | IN_QUICK},
    {"extensions", VALUE_EXTENSIONS, .in = IN_FULL},
};

static const field tracked_fields[] = {
    {"membersOnline", VALUE_FIGURE, .in = IN_FULL | IN_QUICK, .figure = MEMBERS_ONLINE},
    {"membersOffline", VALUE_FIGURE, .in = IN_FULL | IN_QUICK, .figure = MEMBERS_OFFLINE},
};

static const field entry_fields[] = {
    {"status", VALUE_STATUS, .in = IN_OK_ENTRY | IN_ERROR_ENTRY},
    {"error", VALUE_ERROR, .in = IN_ERROR_ENTRY},
    {"cluster", VALUE_CLUSTER, .in = IN_OK_ENTRY},
    {"skippedEntries", VALUE_FIGURE, .in = IN_OK_ENTRY, .figure = SKIPPED_ENTRIES},
    {"refutations", VALUE_FIGURE, .in = IN_OK_ENTRY, .figure = REFUTATIONS},
    {"policyFailures", VALUE_FIGURE, .in = IN_OK_ENTRY, .figure = POLICY_FAILURES},
};

#define FIELD_COUNT(fields) (sizeof fields / sizeof *fields)

static const char *status_name(bool ok) { return ok ? "ok" : "error"; }
static unsigned entry_form(bool ok) { return ok ? IN_OK_ENTRY : IN_ERROR_ENTRY; }

/* ---- as a Lua table, from the hook's info ------------------------------------------------ */

void happy_push_info(lua_State *L, const health_info *info, happy_push_records_fn *push_records) {
    lua_newtable(L);
    lua_pushboolean(L, info->running);
    lua_setfield(L, -2, "running");
    if (info->error) {
        lua_pushstring(L, info->error);
        lua_setfield(L, -2, "error");
    }
    if (info->m) {
        push_records(L, info->m, MEMBER_ONLINE);
        lua_setfield(L, -2, "online");
        push_records(L, info->m, MEMBER_OFFLINE);
        lua_setfield(L, -2, "offline");
    }
    for (figure_id f = 0; f < FIGURE_COUNT; f++) {
        double v = figure_value(info, f);
        if (floor(v) == v) lua_pushinteger(L, (lua_Integer)v);
        else lua_pushnumber(L, v);
        lua_setfield(L, -2, figures[f].info_name);
    }
    if (info->shutdown_planned) {
        lua_pushnumber(L, info->planned_shutdown_in);
        lua_setfield(L, -2, "plannedShutdownIn");
    }
    lua_createtable(L, (int)info->check_failure_count, 0);
    for (size_t i = 0; i < info->check_failure_count; i++) {
        lua_pushstring(L, info->check_failures[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_array_mark(L);
    lua_setfield(L, -2, "checkFailures");
}

enum { INFO = 1 }; /* the info's stack index in happy_lua_payload */

static void push_object(lua_State *L, const field *fields, size_t count, unsigned in, bool ok);

static void push_value(lua_State *L, const field *f, bool ok) {
    switch (f->kind) {
    case VALUE_RUNNING:
        lua_getfield(L, INFO, "running");
        return;
    case VALUE_PLANNED:
        if (lua_getfield(L, INFO, "plannedShutdownIn") == LUA_TNIL) {
            lua_pop(L, 1);
            lua_pushlightuserdata(L, NULL); /* core.null */
        }
        return;
    case VALUE_FIGURE:
        lua_getfield(L, INFO, figures[f->figure].info_name);
        return;
    case VALUE_FAILURES: {
        lua_newtable(L);
        lua_Integer n = 0;
        if (!ok) {
            lua_pushstring(L, ENTRY_NAME);
            lua_rawseti(L, -2, ++n);
        }
        /* The info's checkFailures, as a user's hook may have left them: its strings only. */
        if (lua_getfield(L, INFO, "checkFailures") == LUA_TTABLE) {
            lua_Integer count = (lua_Integer)lua_rawlen(L, -1);
            for (lua_Integer i = 1; i <= count; i++) {
                if (lua_rawgeti(L, -1, i) == LUA_TSTRING) lua_rawseti(L, -3, ++n);
                else lua_pop(L, 1);
            }
        }
        lua_pop(L, 1);
        lua_array_mark(L);
        return;
    }
    case VALUE_TRACKED:
        push_object(L, tracked_fields, FIELD_COUNT(tracked_fields), IN_FULL, ok);
        return;
    case VALUE_EXTENSIONS:
        lua_createtable(L, 0, 1);
        push_object(L, entry_fields, FIELD_COUNT(entry_fields), entry_form(ok), ok);
        lua_setfield(L, -2, ENTRY_NAME);
        return;
    case VALUE_STATUS:
        lua_pushstring(L, status_name(ok));
        return;
    case VALUE_ERROR:
        lua_getfield(L, INFO, "error");
        if (!lua_toboolean(L, -1)) {
            lua_pop(L, 1);
            lua_pushstring(L, unnamed_error);
        }
        return;
    case VALUE_CLUSTER:
        lua_createtable(L, 0, 2);
        lua_getfield(L, INFO, "online");
        lua_setfield(L, -2, "online");
        lua_getfield(L, INFO, "offline");
        lua_setfield(L, -2, "offline");
        return;
    }
}

static void push_object(lua_State *L, const field *fields, size_t count, unsigned in, bool ok) {
    lua_newtable(L);
    for (size_t i = 0; i < count; i++) {
        if (!(fields[i].in & in)) continue;
        push_value(L, &fields[i], ok);
        lua_setfield(L, -2, fields[i].name);
    }
}

int happy_lua_payload(lua_State *L) {
    luaL_checktype(L, INFO, LUA_TTABLE);
    lua_settop(L, INFO);
    lua_getfield(L, INFO, "running");
    bool ok = lua_toboolean(L, -1);
    lua_pop(L, 1);
    push_object(L, payload_fields, FIELD_COUNT(payload_fields), IN_HOOK, ok);
    return 1;
}

/* ---- as JSON, from health_info ----------------------------------------------------------- */

typedef struct json_payload {
    const health_info *info;
    bool ok;           /* our entry's status */
    const char *error; /* when not ok, why */
} json_payload;

static void write_object(buf *out, const field *fields, size_t count, unsigned in, const json_payload *j);

static void write_value(buf *out, const field *f, const json_payload *j) {
    switch (f->kind) {
    case VALUE_RUNNING:
        buf_add_str(out, j->info->running ? "true" : "false");
        return;
    case VALUE_PLANNED:
        /* Given to the millisecond (requests.c): 15 digits write it as it is, as Lua does. */
        if (j->info->shutdown_planned) buf_printf(out, "%.15g", j->info->planned_shutdown_in);
        else buf_add_str(out, "null");
        return;
    case VALUE_FIGURE: {
        /* Whole numbers as integers, as the hook's payload has them. */
        double v = figure_value(j->info, f->figure);
        buf_printf(out, floor(v) == v ? "%.0f" : "%.17g", v);
        return;
    }
    case VALUE_FAILURES: {
        buf_add_str(out, "[");
        const char *separator = "";
        if (!j->ok) {
            wire_write_string(out, ENTRY_NAME);
            separator = ",";
        }
        for (size_t i = 0; i < j->info->check_failure_count; i++) {
            buf_add_str(out, separator);
            separator = ",";
            wire_write_string(out, j->info->check_failures[i]);
        }
        buf_add_str(out, "]");
        return;
    }
    case VALUE_TRACKED:
        write_object(out, tracked_fields, FIELD_COUNT(tracked_fields), IN_FULL, j);
        return;
    case VALUE_EXTENSIONS:
        buf_add_str(out, "{\"" ENTRY_NAME "\":");
        write_object(out, entry_fields, FIELD_COUNT(entry_fields), entry_form(j->ok), j);
        buf_add_str(out, "}");
        return;
    case VALUE_STATUS:
        wire_write_string(out, status_name(j->ok));
        return;
    case VALUE_ERROR:
        wire_write_string(out, j->error);
        return;
    case VALUE_CLUSTER:
        wire_write_list(out, j->info->m, WIRE_WITH_OFFLINE);
        return;
    }
}

static void write_object(buf *out, const field *fields, size_t count, unsigned in, const json_payload *j) {
    buf_add_str(out, "{");
    const char *separator = "";
    for (size_t i = 0; i < count; i++) {
        if (!(fields[i].in & in)) continue;
        buf_add_str(out, separator);
        separator = ",";
        wire_write_string(out, fields[i].name);
        buf_add_str(out, ":");
        write_value(out, &fields[i], j);
    }
    buf_add_str(out, "}");
}

void happy_write_payload(buf *out, const health_info *info) {
    json_payload j = {info, info->running, info->error ? info->error : unnamed_error};
    write_object(out, payload_fields, FIELD_COUNT(payload_fields), IN_HOOK, &j);
}

void happy_write_fallback(buf *out, const health_info *info) {
    json_payload j = {info, false, fallback_error};
    write_object(out, payload_fields, FIELD_COUNT(payload_fields), IN_FALLBACK, &j);
}

void happy_write_quick(buf *out, const health_info *info) {
    json_payload j = {info, info->running, info->error ? info->error : unnamed_error};
    write_object(out, payload_fields, FIELD_COUNT(payload_fields), IN_QUICK, &j);
}
