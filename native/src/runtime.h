/* ISA-independent runtime the kernels build on: thread pool and per-thread scratch arena. */
#ifndef SKM_RUNTIME_H
#define SKM_RUNTIME_H
#include <stddef.h>
#include <stdint.h>

#define SKM_MAX_THREADS 64

/* A task gets its index and the slot (0..threads-1) of the thread running it; the slot picks
 * that thread's arena.  Nested calls (from inside a task) run inline on the caller's slot. */
typedef void (*skm_task_fn)(void *ctx, int64_t task, int slot);
void skm_parallel_for(int64_t ntasks, skm_task_fn fn, void *ctx);
int skm_threads(void);       /* threads a parallel_for may use now (1 inside a task) */
int skm_current_slot(void);
void skm_pool_resize(int nthreads);
int skm_pool_size(void);
void skm_pool_atfork_child(void);

/* Scratch memory, 64-byte aligned; NULL when the system is out of memory. */
typedef struct {
    int64_t block;
    size_t offset;
} skm_arena_mark_t;
void *skm_arena_alloc(int slot, size_t bytes);
skm_arena_mark_t skm_arena_mark(int slot);
void skm_arena_release(int slot, skm_arena_mark_t mark);
void skm_arena_reset_all(void);
void skm_arena_stats_all(int64_t *out4);

/* Rows per task so each task has at least min_elems of work; returns the task count. */
static inline int64_t skm_split_rows(int64_t rows, int64_t row_elems, int64_t min_elems,
                                     int64_t *rows_per_task) {
    int64_t threads = skm_threads();
    int64_t total = rows * (row_elems > 0 ? row_elems : 1);
    int64_t ntasks = threads <= 1 ? 1 : total / (min_elems > 0 ? min_elems : 1);
    if (ntasks > threads * 4) ntasks = threads * 4; /* a few per thread: noisy neighbours */
    if (ntasks > 1) ntasks = (ntasks + threads - 1) / threads * threads; /* even shares */
    if (ntasks > rows) ntasks = rows;
    if (ntasks < 1) ntasks = 1;
    *rows_per_task = (rows + ntasks - 1) / ntasks;
    return rows > 0 ? (rows + *rows_per_task - 1) / *rows_per_task : 0;
}
#endif
