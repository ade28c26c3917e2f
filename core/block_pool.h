/* block_pool: small blocks of a few sizes, carved from large chunks and kept on free lists,
 * for many Lua states in one thread (the simulator's thousands of policy states). Each hook
 * call of a node of a large cluster makes and drops thousands of small tables; through
 * malloc, their freeing and the next call's large array made glibc consolidate its free
 * lists at every call, half of a 5,000-node simulation's time. Blocks are never given back
 * to the system before the pool is freed: its size is its high-water mark, shared by all the
 * states that use it. Not thread-safe: one pool, one thread. */
#ifndef SHAZBOT_BLOCK_POOL_H
#define SHAZBOT_BLOCK_POOL_H

#include <stddef.h>

#define BLOCK_POOL_MAX 256 /* larger blocks are not the pool's */

typedef struct block_pool block_pool;

block_pool *block_pool_new(void);
/* Frees every chunk: every state using the pool must be closed first. */
void block_pool_free(block_pool *bp);

/* A block of `size` bytes (1 to BLOCK_POOL_MAX), NULL when out of memory. */
void *block_pool_get(block_pool *bp, size_t size);
/* Gives back a block got for `size` bytes (or any size of the same class). */
void block_pool_put(block_pool *bp, void *block, size_t size);
/* Whether blocks of these two sizes are of one class (a realloc between them is a no-op). */
int block_pool_same_class(size_t a, size_t b);

#endif
