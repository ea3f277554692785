/* loader.c — the shard loader: the global stream (a permutation per epoch), one reader thread
 * filling a ring of microbatches, skip/fail on bad clips (data/loader.h). */
#include "data/loader.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- order ------------------------------------------------------------------------------------ */

/* splitmix64's finaliser: a bijective mix of 64 bits. */
static uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/* Draw i of epoch e: a counter-based 64-bit value, so the permutation needs no generator state and
 * is the same on every rank. 64 bits (not the kernels' 24-bit float uniforms) keep the
 * Fisher-Yates choice unbiased for any data set size. */
static uint64_t order_draw(uint64_t seed, long epoch, uint64_t i) {
  uint64_t z = mix64(seed + 0x9e3779b97f4a7c15ULL);
  z = mix64(z ^ ((uint64_t)epoch * 0xd1b54a32d192ed03ULL + 0x632be59bd9b4e019ULL));
  return mix64(z + i * 0x9e3779b97f4a7c15ULL);
}

void loader_permutation(long *perm, long total, uint64_t seed, long epoch) {
  for (long i = 0; i < total; i++) perm[i] = i;
  for (long i = total - 1; i > 0; i--) {
    /* j uniform in [0, i] by the high half of a 64x64 product (no modulo bias worth the name) */
    long j = (long)(((unsigned __int128)order_draw(seed, epoch, (uint64_t)i) * (uint64_t)(i + 1)) >> 64);
    long t = perm[i];
    perm[i] = perm[j];
    perm[j] = t;
  }
}

/* ---- the loader ------------------------------------------------------------------------------- */

typedef struct {
  float *clips;
  int *labels;
  long *indices;
  long seq, position;
  int level, count;
} ring_slot;

struct loader {
  loader_options opt;
  shard_dataset dataset;
  int dataset_open;
  shard_reader **readers; /* [dataset.count], opened on first use by the reader thread */
  long *first_clip;       /* [dataset.count + 1]: data set index of each shard's clip 0 */
  size_t clip_floats;     /* C·T·H·W at level 0 */

  /* reader thread only */
  long *perm;
  long perm_epoch;
  unsigned char *logged; /* [total] bit set: bad clips already reported on stderr */

  ring_slot *slots;
  pthread_t thread;
  int thread_started;
  pthread_mutex_t mutex;
  pthread_cond_t changed;  /* any of produced / consumed / failed / stopping changed */
  long produced, consumed; /* microbatches, counted from first_seq */
  int failed, stopping;
  char error[1024];
  loader_stats stats;
};

static void set_err(char *err, size_t err_size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t err_size, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, err_size, fmt, ap);
  va_end(ap);
}

/* The data set clip at stream position p. */
static long clip_at(loader *l, long p) {
  long total = l->dataset.total, epoch = p / total;
  if (l->perm_epoch != epoch) {
    loader_permutation(l->perm, total, l->opt.seed, epoch);
    l->perm_epoch = epoch;
  }
  return l->perm[p % total];
}

/* Reads data set clip `index` at `level`: 0, or -1 with the reader's line in err. */
static int read_clip(loader *l, long index, int level, float *out, int *label, char *err, size_t err_size) {
  int lo = 0, hi = l->dataset.count - 1; /* the shard holding index: first_clip[s] <= index */
  while (lo < hi) {
    int mid = (lo + hi + 1) / 2;
    if (l->first_clip[mid] <= index)
      lo = mid;
    else
      hi = mid - 1;
  }
  if (!l->readers[lo]) {
    shard_layout layout;
    long clips = 0;
    l->readers[lo] = shard_reader_open(l->dataset.paths[lo], &layout, &clips, err, err_size);
    if (!l->readers[lo]) return -1;
  }
  return shard_read_clip(l->readers[lo], index - l->first_clip[lo], level, out, label, err, err_size);
}

/* Fills one slot with microbatch seq. 0, or -1 with l->error set. */
static int fill_slot(loader *l, ring_slot *slot, long seq) {
  int level = -1, count = -1;
  long position = -1;
  const shard_layout *lay = &l->dataset.layout;
  if (l->opt.plan(l->opt.plan_ctx, seq, &level, &count, &position) != 0) {
    set_err(l->error, sizeof l->error, "loader: the plan stopped at microbatch %ld", seq);
    return -1;
  }
  if (level < 0 || level >= lay->levels || count < 1 || count > l->opt.max_clips || position < 0) {
    set_err(l->error, sizeof l->error,
            "loader: microbatch %ld asks for %d clips at level %d from stream position %ld; the loader holds at "
            "most %d clips, the shards have levels 0..%d and positions start at 0",
            seq, count, level, position, l->opt.max_clips, lay->levels - 1);
    return -1;
  }
  slot->seq = seq;
  slot->level = level;
  slot->count = count;
  slot->position = position;
  size_t clip = (size_t)lay->channels * (size_t)(lay->frames >> level) * lay->height * lay->width;
  size_t bytes = shard_clip_bytes(lay, level);
  long bad_in_a_row = 0, p = position;
  for (int b = 0; b < count;) {
    long index = clip_at(l, p);
    char why[1024];
    if (read_clip(l, index, level, slot->clips + clip * (size_t)b, &slot->labels[b], why, sizeof why) == 0) {
      slot->indices[b] = index;
      pthread_mutex_lock(&l->mutex);
      l->stats.bytes[level] += (double)bytes;
      l->stats.clips[level]++;
      pthread_mutex_unlock(&l->mutex);
      b++;
      p = position + b; /* a replacement for a bad clip does not shift the clips after it */
      bad_in_a_row = 0;
      continue;
    }
    if (!l->opt.skip_bad) {
      set_err(l->error, sizeof l->error, "%s", why);
      return -1;
    }
    if (!(l->logged[index / 8] & (1u << (index % 8)))) {
      l->logged[index / 8] |= (unsigned char)(1u << (index % 8));
      fprintf(stderr, "tpdiff loader: skipping clip %ld (data.on_error=skip): %s\n", index, why);
    }
    pthread_mutex_lock(&l->mutex);
    l->stats.skipped++;
    pthread_mutex_unlock(&l->mutex);
    p++; /* the next clip of the stream replaces it */
    /* a whole epoch of bad clips in a row: nothing left to skip to */
    if (++bad_in_a_row >= l->dataset.total) {
      set_err(l->error, sizeof l->error, "loader: %ld clips in a row unreadable (a whole epoch); last: %s",
              bad_in_a_row, why);
      return -1;
    }
  }
  return 0;
}

static void *reader_main(void *arg) {
  loader *l = arg;
  for (long n = 0;; n++) {
    pthread_mutex_lock(&l->mutex);
    while (!l->stopping && n - l->consumed >= l->opt.prefetch) pthread_cond_wait(&l->changed, &l->mutex);
    int stop = l->stopping;
    pthread_mutex_unlock(&l->mutex);
    if (stop) return NULL;
    /* the slot is free: the consumer has copied microbatch n - prefetch out of it */
    int rc = fill_slot(l, &l->slots[n % l->opt.prefetch], l->opt.first_seq + n);
    pthread_mutex_lock(&l->mutex);
    if (rc == 0)
      l->produced = n + 1;
    else
      l->failed = 1;
    pthread_cond_broadcast(&l->changed);
    pthread_mutex_unlock(&l->mutex);
    if (rc != 0) return NULL;
  }
}

static void free_loader(loader *l) {
  if (l->slots)
    for (int s = 0; s < l->opt.prefetch; s++) {
      free(l->slots[s].clips);
      free(l->slots[s].labels);
      free(l->slots[s].indices);
    }
  free(l->slots);
  if (l->readers)
    for (int s = 0; s < l->dataset.count; s++) shard_reader_close(l->readers[s]);
  free(l->readers);
  free(l->first_clip);
  free(l->perm);
  free(l->logged);
  if (l->dataset_open) shard_dataset_close(&l->dataset);
  pthread_mutex_destroy(&l->mutex);
  pthread_cond_destroy(&l->changed);
  free(l);
}

loader *loader_open(const char *folder, const loader_options *opt, char *err, size_t err_size) {
  if (!opt->plan || opt->prefetch < 1 || opt->max_clips < 1 || opt->first_seq < 0) {
    set_err(err, err_size, "loader: bad options (prefetch %d, max_clips %d, first microbatch %ld)", opt->prefetch,
            opt->max_clips, opt->first_seq);
    return NULL;
  }
  loader *l = calloc(1, sizeof *l);
  if (!l) {
    set_err(err, err_size, "loader: out of memory");
    return NULL;
  }
  l->opt = *opt;
  pthread_mutex_init(&l->mutex, NULL);
  pthread_cond_init(&l->changed, NULL);
  if (shard_dataset_open(&l->dataset, folder, err, err_size) != 0) {
    free_loader(l);
    return NULL;
  }
  l->dataset_open = 1;
  const shard_layout *lay = &l->dataset.layout;
  if (l->dataset.total < 1) {
    set_err(err, err_size, "%s: the data set holds no clips", folder);
    free_loader(l);
    return NULL;
  }
  l->clip_floats = (size_t)lay->channels * lay->frames * lay->height * lay->width;
  l->readers = calloc((size_t)l->dataset.count, sizeof *l->readers);
  l->first_clip = calloc((size_t)l->dataset.count + 1, sizeof *l->first_clip);
  l->perm = malloc(sizeof(long) * (size_t)l->dataset.total);
  l->logged = calloc((size_t)(l->dataset.total + 7) / 8, 1);
  l->slots = calloc((size_t)opt->prefetch, sizeof *l->slots);
  int ok = l->readers && l->first_clip && l->perm && l->logged && l->slots;
  for (int s = 0; ok && s < opt->prefetch; s++) {
    l->slots[s].clips = malloc(sizeof(float) * l->clip_floats * (size_t)opt->max_clips);
    l->slots[s].labels = malloc(sizeof(int) * (size_t)opt->max_clips);
    l->slots[s].indices = malloc(sizeof(long) * (size_t)opt->max_clips);
    ok = l->slots[s].clips && l->slots[s].labels && l->slots[s].indices;
  }
  if (!ok) {
    set_err(err, err_size, "loader: out of memory for %d microbatches of %d clips", opt->prefetch, opt->max_clips);
    free_loader(l);
    return NULL;
  }
  for (int s = 0; s < l->dataset.count; s++) l->first_clip[s + 1] = l->first_clip[s] + l->dataset.clips[s];
  l->perm_epoch = -1;
  if (pthread_create(&l->thread, NULL, reader_main, l) != 0) {
    set_err(err, err_size, "loader: cannot start the reader thread");
    free_loader(l);
    return NULL;
  }
  l->thread_started = 1;
  return l;
}

const shard_dataset *loader_dataset(const loader *l) { return &l->dataset; }

int loader_next(loader *l, loader_batch *out, char *err, size_t err_size) {
  pthread_mutex_lock(&l->mutex);
  while (l->produced <= l->consumed && !l->failed) pthread_cond_wait(&l->changed, &l->mutex);
  if (l->produced <= l->consumed) { /* the reader failed before this microbatch */
    set_err(err, err_size, "%s", l->error);
    pthread_mutex_unlock(&l->mutex);
    return -1;
  }
  long n = l->consumed;
  pthread_mutex_unlock(&l->mutex);
  /* the slot is ours until consumed moves on: the reader waits for it */
  const ring_slot *slot = &l->slots[n % l->opt.prefetch];
  const shard_layout *lay = &l->dataset.layout;
  int frames = lay->frames >> slot->level;
  size_t clip = (size_t)lay->channels * (size_t)frames * lay->height * lay->width;
  memcpy(out->clips, slot->clips, sizeof(float) * clip * (size_t)slot->count);
  memcpy(out->labels, slot->labels, sizeof(int) * (size_t)slot->count);
  memcpy(out->indices, slot->indices, sizeof(long) * (size_t)slot->count);
  out->seq = slot->seq;
  out->level = slot->level;
  out->clips_count = slot->count;
  out->frames = frames;
  out->position = slot->position;
  out->epoch = slot->position / l->dataset.total;
  pthread_mutex_lock(&l->mutex);
  l->consumed = n + 1;
  pthread_cond_broadcast(&l->changed);
  pthread_mutex_unlock(&l->mutex);
  return 0;
}

long loader_skipped(loader *l) {
  pthread_mutex_lock(&l->mutex);
  long n = l->stats.skipped;
  pthread_mutex_unlock(&l->mutex);
  return n;
}

void loader_get_stats(loader *l, loader_stats *out) {
  pthread_mutex_lock(&l->mutex);
  *out = l->stats;
  pthread_mutex_unlock(&l->mutex);
}

void loader_close(loader *l) {
  if (!l) return;
  if (l->thread_started) {
    pthread_mutex_lock(&l->mutex);
    l->stopping = 1;
    pthread_cond_broadcast(&l->changed);
    pthread_mutex_unlock(&l->mutex);
    pthread_join(l->thread, NULL);
  }
  free_loader(l);
}
