/* Per-thread scratch arenas.  Kernels allocate stack-wise (mark, alloc..., release), so in
 * steady state a kernel call never reaches malloc.  When a request does not fit, a bigger
 * block is opened and the old one is retired but kept alive (earlier pointers stay valid);
 * skm_arena_reset_all(), called between inferences, frees the retired blocks and grows the
 * live one to the high-water mark, so the next inference fits in one block. */
#include <stdlib.h>
#include <string.h>

#include "runtime.h"

#define ALIGN 64
#define MIN_BLOCK (256 * 1024)

typedef struct retired {
    struct retired *next;
    void *mem;
    size_t size;
} retired_t;

typedef struct {
    char *mem;
    size_t size;
    size_t offset;
    int64_t block;      /* id of the live block, bumped each time a new one opens */
    size_t in_use;      /* bytes handed out including retired blocks, for the high-water */
    size_t highwater;
    retired_t *retired;
    int64_t nretired;
} arena_t;

static arena_t arenas[SKM_MAX_THREADS];
static int64_t malloc_calls;

static void *aligned_block(size_t size) {
    void *p = NULL;
    if (posix_memalign(&p, ALIGN, size) != 0) return NULL;
    __atomic_add_fetch(&malloc_calls, 1, __ATOMIC_RELAXED);
    return p;
}

void *skm_arena_alloc(int slot, size_t bytes) {
    arena_t *a = &arenas[slot];
    bytes = (bytes + ALIGN - 1) & ~(size_t)(ALIGN - 1);
    if (bytes == 0) bytes = ALIGN;
    if (a->mem == NULL || a->offset + bytes > a->size) {
        size_t want = a->size * 2;
        if (want < a->in_use + bytes) want = a->in_use + bytes;
        if (want < MIN_BLOCK) want = MIN_BLOCK;
        char *mem = aligned_block(want);
        if (mem == NULL) return NULL;
        if (a->mem != NULL) {
            retired_t *r = malloc(sizeof *r);
            if (r == NULL) {
                free(mem);
                return NULL;
            }
            r->mem = a->mem;
            r->size = a->size;
            r->next = a->retired;
            a->retired = r;
            a->nretired++;
        }
        a->mem = mem;
        a->size = want;
        a->offset = 0;
        a->block++;
    }
    void *p = a->mem + a->offset;
    a->offset += bytes;
    a->in_use += bytes;
    if (a->in_use > a->highwater) a->highwater = a->in_use;
    return p;
}

skm_arena_mark_t skm_arena_mark(int slot) {
    skm_arena_mark_t m = {arenas[slot].block, arenas[slot].in_use};
    return m;
}

/* Everything handed out after the mark is given back.  If a new block was opened since, the
 * memory before the mark lives in a retired block, which stays allocated until reset. */
void skm_arena_release(int slot, skm_arena_mark_t mark) {
    arena_t *a = &arenas[slot];
    size_t freed = a->in_use - mark.offset;
    a->in_use = mark.offset;
    if (mark.block == a->block)
        a->offset -= freed;
    else if (a->in_use == 0 || a->offset < freed)
        a->offset = 0;
    else
        a->offset -= freed;
}

/* Any thread may run any task (tasks are claimed dynamically), so every pool thread's block
 * is sized to the largest high-water mark seen on any of them. */
void skm_arena_reset_all(void) {
    size_t target = 0;
    int threads = skm_pool_size();
    for (int s = 0; s < SKM_MAX_THREADS; s++)
        if (arenas[s].highwater > target) target = arenas[s].highwater;
    for (int s = 0; s < SKM_MAX_THREADS; s++) {
        arena_t *a = &arenas[s];
        while (a->retired != NULL) {
            retired_t *r = a->retired;
            a->retired = r->next;
            free(r->mem);
            free(r);
        }
        a->nretired = 0;
        if (s < threads && target > a->size) {
            char *mem = aligned_block(target);
            if (mem != NULL) {
                free(a->mem);
                a->mem = mem;
                a->size = target;
                a->block++;
            }
        }
        if (a->highwater < target && s < threads) a->highwater = target;
        a->offset = 0;
        a->in_use = 0;
    }
}

void skm_arena_stats_all(int64_t *out4) {
    int64_t reserved = 0, highwater = 0, blocks = 0;
    for (int s = 0; s < SKM_MAX_THREADS; s++) {
        arena_t *a = &arenas[s];
        reserved += (int64_t)a->size;
        for (retired_t *r = a->retired; r != NULL; r = r->next) reserved += (int64_t)r->size;
        highwater += (int64_t)a->highwater;
        blocks += (a->mem != NULL) + a->nretired;
    }
    out4[0] = reserved;
    out4[1] = highwater;
    out4[2] = __atomic_load_n(&malloc_calls, __ATOMIC_RELAXED);
    out4[3] = blocks;
}
