/* A small persistent pthread pool.  The caller is slot 0 and works too; workers spin briefly
 * after a job (back-to-back kernel calls from the executor are common, and a futex wake costs
 * tens of microseconds) and then sleep on a condition variable, so an idle process burns no
 * CPU.  Tasks are claimed from an atomic counter, which balances load when other processes
 * share the cores. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "runtime.h"

#define SPIN_ROUNDS 20000 /* ~50 us of pause instructions before sleeping */

static struct {
    pthread_mutex_t mu;
    pthread_cond_t wake;
    pthread_cond_t done;
    int nthreads;  /* total including the caller */
    int nworkers;  /* workers currently running */
    pthread_t tids[SKM_MAX_THREADS];
    skm_task_fn fn;
    void *ctx;
    int64_t ntasks;
    atomic_llong next;
    atomic_int pending;
    atomic_uint generation;
    atomic_int stop;
} pool = {.mu = PTHREAD_MUTEX_INITIALIZER,
          .wake = PTHREAD_COND_INITIALIZER,
          .done = PTHREAD_COND_INITIALIZER,
          .nthreads = 1};

/* Generation current when each worker was created: a worker must not read it itself, or a
 * job published before it got scheduled would look already seen (and never be run). */
static unsigned start_generation[SKM_MAX_THREADS];

static _Thread_local int tls_slot = 0;
static _Thread_local int tls_in_task = 0;

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static void run_tasks(int slot) {
    int64_t t;
    tls_in_task = 1;
    while ((t = atomic_fetch_add(&pool.next, 1)) < pool.ntasks) pool.fn(pool.ctx, t, slot);
    tls_in_task = 0;
}

static void *worker_main(void *arg) {
    int slot = (int)(intptr_t)arg;
    unsigned seen = start_generation[slot];
    tls_slot = slot;
    for (;;) {
        int spins = 0;
        while (atomic_load(&pool.generation) == seen && !atomic_load(&pool.stop) &&
               spins++ < SPIN_ROUNDS)
            cpu_relax();
        if (atomic_load(&pool.generation) == seen && !atomic_load(&pool.stop)) {
            pthread_mutex_lock(&pool.mu);
            while (atomic_load(&pool.generation) == seen && !atomic_load(&pool.stop))
                pthread_cond_wait(&pool.wake, &pool.mu);
            pthread_mutex_unlock(&pool.mu);
        }
        if (atomic_load(&pool.stop)) return NULL;
        seen = atomic_load(&pool.generation);
        run_tasks(slot);
        if (atomic_fetch_sub(&pool.pending, 1) == 1) {
            pthread_mutex_lock(&pool.mu);
            pthread_cond_signal(&pool.done);
            pthread_mutex_unlock(&pool.mu);
        }
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

void skm_parallel_for(int64_t ntasks, skm_task_fn fn, void *ctx) {
    if (ntasks <= 0) return;
    if (tls_in_task || pool.nthreads <= 1 || ntasks == 1) {
        int was = tls_in_task;
        tls_in_task = 1;
        for (int64_t t = 0; t < ntasks; t++) fn(ctx, t, tls_slot);
        tls_in_task = was;
        return;
    }
    start_workers();
    if (pool.nworkers == 0) { /* could not create threads: run inline */
        tls_in_task = 1;
        for (int64_t t = 0; t < ntasks; t++) fn(ctx, t, 0);
        tls_in_task = 0;
        return;
    }
    pool.fn = fn;
    pool.ctx = ctx;
    pool.ntasks = ntasks;
    atomic_store(&pool.next, 0);
    atomic_store(&pool.pending, pool.nworkers);
    pthread_mutex_lock(&pool.mu);
    atomic_fetch_add(&pool.generation, 1);
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.mu);
    run_tasks(0);
    for (int spins = 0; atomic_load(&pool.pending) != 0 && spins < SPIN_ROUNDS; spins++)
        cpu_relax();
    if (atomic_load(&pool.pending) != 0) {
        pthread_mutex_lock(&pool.mu);
        while (atomic_load(&pool.pending) != 0) pthread_cond_wait(&pool.done, &pool.mu);
        pthread_mutex_unlock(&pool.mu);
    }
}

/* After fork() only the forking thread exists in the child: forget the workers (they are
 * restarted lazily) and re-create the synchronisation objects, which may have been held. */
void skm_pool_atfork_child(void) {
    pthread_mutex_init(&pool.mu, NULL);
    pthread_cond_init(&pool.wake, NULL);
    pthread_cond_init(&pool.done, NULL);
    pool.nworkers = 0;
    atomic_store(&pool.stop, 0);
    tls_in_task = 0;
    tls_slot = 0;
}
