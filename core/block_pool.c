/* block_pool: see block_pool.h. Classes of 16 bytes each up to BLOCK_POOL_MAX; a freed block
 * holds the link to the next free one of its class. */
#include "block_pool.h"

#include <stdlib.h>

#define CLASS_STEP 16
#define CLASSES (BLOCK_POOL_MAX / CLASS_STEP)
#define CHUNK_BYTES (256 * 1024)

typedef struct chunk {
    struct chunk *next;
    _Alignas(16) char data[CHUNK_BYTES];
} chunk;

struct block_pool {
    void *free_blocks[CLASSES];
    chunk *chunks;
    char *bump, *bump_end; /* the unused rest of the newest chunk */
};

static size_t class_of(size_t size) { return (size + CLASS_STEP - 1) / CLASS_STEP - 1; }

int block_pool_same_class(size_t a, size_t b) { return class_of(a) == class_of(b); }

block_pool *block_pool_new(void) { return calloc(1, sizeof(block_pool)); }

void block_pool_free(block_pool *bp) {
    if (!bp) return;
    while (bp->chunks) {
        chunk *next = bp->chunks->next;
        free(bp->chunks);
        bp->chunks = next;
    }
    free(bp);
}

void *block_pool_get(block_pool *bp, size_t size) {
    size_t c = class_of(size);
    void *block = bp->free_blocks[c];
    if (block) {
        bp->free_blocks[c] = *(void **)block;
        return block;
    }
    size_t bytes = (c + 1) * CLASS_STEP;
    if (!bp->bump || (size_t)(bp->bump_end - bp->bump) < bytes) {
        chunk *fresh = malloc(sizeof *fresh);
        if (!fresh) return NULL;
        fresh->next = bp->chunks;
        bp->chunks = fresh;
        bp->bump = fresh->data;
        bp->bump_end = fresh->data + CHUNK_BYTES;
    }
    block = bp->bump;
    bp->bump += bytes;
    return block;
}

void block_pool_put(block_pool *bp, void *block, size_t size) {
    size_t c = class_of(size);
    *(void **)block = bp->free_blocks[c];
    bp->free_blocks[c] = block;
}
