/* A small persistent pthread pool.
 *
 * The caller is slot 0 and works too.  Tasks are claimed one at a time from a ticket that
 * carries the job's generation, and the caller waits only for tasks to *finish*, never for
 * every worker to check in: on a shared machine a descheduled worker that has not claimed
 * anything costs nothing, and one that wakes late finds the ticket moved on and goes back
 * to sleep.  Workers spin briefly after a job (back-to-back kernel calls are the common
 * case and a futex wake costs tens of microseconds), then sleep on a condition variable. */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#include "runtime.h"

#define SPIN_ROUNDS 4000 /* some tens of microseconds of pause instructions, then sleep */

typedef struct {
    _Atomic(skm_task_fn) fn;
    _Atomic(void *) ctx;
    atomic_llong ntasks;
} job_t;

static struct {
    pthread_mutex_t mu;
    pthread_cond_t wake;
    pthread_cond_t done_cv;
    int nthreads; /* total including the caller */
    int nworkers; /* workers currently running */
    pthread_t tids[SKM_MAX_THREADS];
    job_t jobs[2];               /* job of generation g lives in jobs[g & 1] */
    atomic_uint generation;      /* bumped once per parallel_for */
    atomic_ullong ticket;        /* generation << 32 | next task index */
    atomic_llong done;           /* tasks finished in the current generation */
    atomic_int caller_sleeping;
    atomic_int stop;
} pool = {.mu = PTHREAD_MUTEX_INITIALIZER,
          .wake = PTHREAD_COND_INITIALIZER,
          .done_cv = PTHREAD_COND_INITIALIZER,
          .nthreads = 1};

static _Thread_local int tls_slot = 0;
static _Thread_local int tls_in_task = 0;

/* Generation current when each worker was created: a worker must not read it itself, or a
 * job published before it got scheduled would look already seen. */
static unsigned start_generation[SKM_MAX_THREADS];

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* One round of a spin-wait.  Every YIELD_EVERY rounds the core is offered to whatever else is
 * runnable on it: on a quiet machine sched_yield returns at once, on a busy one it lets the
 * thread we wait for (our caller or a worker holding a task) run instead of us spinning. */
#define YIELD_EVERY 64
static inline void spin_round(int round) {
    if (round % YIELD_EVERY == YIELD_EVERY - 1)
        sched_yield();
    else
        cpu_relax();
}

/* Claims and runs tasks of generation gen until none are left. */
static void run_tasks(unsigned gen, int slot) {
    job_t *job = &pool.jobs[gen & 1];
    skm_task_fn fn = atomic_load(&job->fn);
    void *ctx = atomic_load(&job->ctx);
    long long ntasks = atomic_load(&job->ntasks);
    unsigned long long t = atomic_load(&pool.ticket);
    tls_in_task = 1;
    for (;;) {
        /* a job that moved on (or fields read from a newer job) fail this check */
        if ((unsigned)(t >> 32) != gen || (long long)(t & 0xffffffffu) >= ntasks) break;
        if (!atomic_compare_exchange_weak(&pool.ticket, &t, t + 1)) continue;
        fn(ctx, (int64_t)(t & 0xffffffffu), slot);
        if (atomic_fetch_add(&pool.done, 1) + 1 == ntasks && atomic_load(&pool.caller_sleeping)) {
            pthread_mutex_lock(&pool.mu);
            pthread_cond_signal(&pool.done_cv);
            pthread_mutex_unlock(&pool.mu);
        }
        t = atomic_load(&pool.ticket);
    }
    tls_in_task = 0;
}

static void *worker_main(void *arg) {
    int slot = (int)(intptr_t)arg;
    unsigned seen = start_generation[slot];
    tls_slot = slot;
    for (;;) {
        for (int spins = 0; atomic_load(&pool.generation) == seen && !atomic_load(&pool.stop) &&
                            spins < SPIN_ROUNDS;
             spins++)
            spin_round(spins);
        if (atomic_load(&pool.generation) == seen && !atomic_load(&pool.stop)) {
            pthread_mutex_lock(&pool.mu);
            while (atomic_load(&pool.generation) == seen && !atomic_load(&pool.stop))
                pthread_cond_wait(&pool.wake, &pool.mu);
            pthread_mutex_unlock(&pool.mu);
        }
        if (atomic_load(&pool.stop)) return NULL;
        seen = atomic_load(&pool.generation);
        run_tasks(seen, slot);
    }
}

static void stop_workers(void) {
    atomic_store(&pool.stop, 1);
    pthread_mutex_lock(&pool.mu);
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.mu);
    for (int i = 0; i < pool.nworkers; i++) pthread_join(pool.tids[i], NULL);
    pool.nworkers = 0;
    atomic_store(&pool.stop, 0);
}

/* Starts what is missing; if a thread cannot be created we simply run with fewer. */
static void start_workers(void) {
    while (pool.nworkers < pool.nthreads - 1) {
        int slot = pool.nworkers + 1;
        start_generation[slot] = atomic_load(&pool.generation);
        if (pthread_create(&pool.tids[pool.nworkers], NULL, worker_main,
                           (void *)(intptr_t)slot) != 0)
            break;
        pool.nworkers++;
    }
}

void skm_pool_resize(int nthreads) {
    if (nthreads < 1) nthreads = 1;
    if (nthreads > SKM_MAX_THREADS) nthreads = SKM_MAX_THREADS;
    if (pool.nworkers > nthreads - 1) stop_workers();
    pool.nthreads = nthreads;
}

int skm_pool_size(void) { return pool.nthreads; }

int skm_threads(void) { return tls_in_task ? 1 : pool.nthreads; }

int skm_current_slot(void) { return tls_slot; }

static void run_inline(int64_t ntasks, skm_task_fn fn, void *ctx) {
    int was = tls_in_task;
    tls_in_task = 1;
    for (int64_t t = 0; t < ntasks; t++) fn(ctx, t, tls_slot);
    tls_in_task = was;
}

void skm_parallel_for(int64_t ntasks, skm_task_fn fn, void *ctx) {
    if (ntasks <= 0) return;
    if (tls_in_task || pool.nthreads <= 1 || ntasks == 1 || ntasks > 0x7fffffff) {
        run_inline(ntasks, fn, ctx);
        return;
    }
    start_workers();
    if (pool.nworkers == 0) { /* could not create threads */
        run_inline(ntasks, fn, ctx);
        return;
    }
    unsigned gen = atomic_load(&pool.generation) + 1;
    job_t *job = &pool.jobs[gen & 1];
    atomic_store(&job->fn, fn);
    atomic_store(&job->ctx, ctx);
    atomic_store(&job->ntasks, ntasks);
    atomic_store(&pool.done, 0);
    atomic_store(&pool.ticket, (unsigned long long)gen << 32);
    pthread_mutex_lock(&pool.mu);
    atomic_store(&pool.generation, gen);
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.mu);
    run_tasks(gen, 0);
    for (int spins = 0; atomic_load(&pool.done) != ntasks && spins < SPIN_ROUNDS; spins++)
        spin_round(spins);
    if (atomic_load(&pool.done) != ntasks) {
        pthread_mutex_lock(&pool.mu);
        atomic_store(&pool.caller_sleeping, 1);
        while (atomic_load(&pool.done) != ntasks) pthread_cond_wait(&pool.done_cv, &pool.mu);
        atomic_store(&pool.caller_sleeping, 0);
        pthread_mutex_unlock(&pool.mu);
    }
}

/* After fork() only the forking thread exists in the child: forget the workers (they are
 * restarted lazily) and re-create the synchronisation objects, which may have been held. */
void skm_pool_atfork_child(void) {
    pthread_mutex_init(&pool.mu, NULL);
    pthread_cond_init(&pool.wake, NULL);
    pthread_cond_init(&pool.done_cv, NULL);
    pool.nworkers = 0;
    atomic_store(&pool.stop, 0);
    atomic_store(&pool.caller_sleeping, 0);
    tls_in_task = 0;
    tls_slot = 0;
}
