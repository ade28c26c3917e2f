/* members_table: the table `clustershazbot members` prints from a node's list answer, apart
 * from the request that fetched it, so that spec/fuzz/fuzz_members_table.c can give it any
 * document and any clock. */
#ifndef SHAZBOT_CLI_MEMBERS_TABLE_H
#define SHAZBOT_CLI_MEMBERS_TABLE_H

#include <stdbool.h>
#include <stdio.h>
#include <yajl/yajl_tree.h>

/* The array `list` ("online" or "offline") of a list answer, or NULL. */
yajl_val members_table_list(yajl_val doc, const char *list);

/* Which records `members` shows: of one status (NULL: both), whose baseUrl matches a shell
 * glob (fnmatch(3); NULL: any). */
typedef struct members_filter {
    const char *status; /* "online", "offline" or NULL */
    const char *pattern;
} members_filter;

/* Drops from doc's "online" and "offline" arrays the records the filter leaves out (and
 * empties the array of the status it leaves out). */
void members_table_filter(yajl_val doc, const members_filter *f);

/* Writes doc's "online" and "offline" arrays as the node's list answer does:
 * {"online":[{"baseUrl":...,"monitor":...,"lastUpdate":...}],"offline":[...]}, the offline
 * array only when doc has one. False when out of memory. */
bool members_table_write_json(FILE *out, yajl_val doc);

/* Prints one row per record of doc's "online" and "offline" arrays that has a string
 * baseUrl (online first, then by URL), the age of each lastUpdate relative to `now_ms`
 * (wall-clock milliseconds), and a summary line. False when out of memory. */
bool members_table_print(FILE *out, yajl_val doc, long long now_ms);

#endif
