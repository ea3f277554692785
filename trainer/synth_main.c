/* synth_main.c — `tpdiff-synth --out DIR [--kind shapes|fashion ...]`: writes a synthetic video
 * data set with a known generative process (data/synth), for demos and tests: HDF5 shards
 * (shard-00000.h5, ...; uint8 pixels, every pyramid level pre-decimated, data/shard.h) plus
 * index.json and classes.txt, and preview GIFs and frame sheets of the first clips. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/shard.h"
#include "data/synth.h"
#include "data/video_write.h"

static void usage(FILE *f) {
  fprintf(f,
          "usage: tpdiff-synth --out DIR [--kind shapes|fashion] [--count N] [--frames T] [--size HxW]\n"
          "                    [--channels C] [--objects K] [--seed S] [--previews P]\n"
          "                    [--clips-per-shard M] [--levels L]\n"
          "Writes DIR/shard-00000.h5 ... (M clips each, uint8 pixels, pyramid levels 0..L-1 with T/2^l frames),\n"
          "DIR/index.json, DIR/classes.txt and DIR/preview-NN.gif/.png for the first P clips. Defaults: shapes,\n"
          "256 clips, 16 frames, 32x32, 3 channels, 1 object, seed 0, 4 previews, 256 clips per shard, levels as\n"
          "many as the frames allow (T divisible by 2^(L-1)), at most 4. fashion needs the package\n"
          "dataset-fashion-mnist.\n");
}

/* Pyramid levels by default: as many halvings as the frame count allows, at most 4 levels. */
static long default_levels(long frames) {
  long levels = 1;
  while (levels < 4 && frames % (1L << levels) == 0) levels++;
  return levels;
}

/* Parses a whole non-negative decimal int; -1 on anything else. */
static long parse_count(const char *s) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || end == s || *end || v < 0 || v > 1L << 30) return -1;
  return v;
}

static int fail(const char *fmt, const char *a, const char *b) {
  fprintf(stderr, "tpdiff-synth: ");
  fprintf(stderr, fmt, a, b);
  fprintf(stderr, "\n");
  return 2;
}

/* The shards written so far, so a failure can take them back (a set is whole or absent). */
typedef struct {
  char **names;
  long *clips;
  int count;
} shard_list;

static void remove_shards(const char *out, shard_list *list) {
  char path[4096];
  for (int i = 0; i < list->count; i++) {
    snprintf(path, sizeof path, "%s/%s", out, list->names[i]);
    unlink(path);
  }
}

static void free_shards(shard_list *list) {
  for (int i = 0; i < list->count; i++) free(list->names[i]);
  free(list->names);
  free(list->clips);
}

/* [C, T, H, W] -> [T, H, W, C] (the shard's clip layout). */
static void to_thwc(float *thwc, const float *cthw, int C, int T, int H, int W) {
  size_t plane = (size_t)H * W;
  for (int c = 0; c < C; c++)
    for (int t = 0; t < T; t++)
      for (size_t p = 0; p < plane; p++) thwc[((size_t)t * plane + p) * C + c] = cthw[((size_t)c * T + t) * plane + p];
}

int main(int argc, char **argv) {
  const char *out = NULL, *kind_name = "shapes";
  long count = 256, frames = 16, height = 32, width = 32, channels = 3, objects = 1, seed = 0, previews = 4;
  long clips_per_shard = 256, levels = -1;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      usage(stdout);
      return 0;
    }
    if (i + 1 >= argc) return fail("%s: missing value%s", a, "");
    const char *v = argv[++i];
    long *target = !strcmp(a, "--count")             ? &count
                   : !strcmp(a, "--frames")          ? &frames
                   : !strcmp(a, "--channels")        ? &channels
                   : !strcmp(a, "--objects")         ? &objects
                   : !strcmp(a, "--seed")            ? &seed
                   : !strcmp(a, "--previews")        ? &previews
                   : !strcmp(a, "--clips-per-shard") ? &clips_per_shard
                   : !strcmp(a, "--levels")          ? &levels
                                                     : NULL;
    if (target) {
      if ((*target = parse_count(v)) < 0) return fail("%s: expected a non-negative integer, got '%s'", a, v);
    } else if (!strcmp(a, "--out")) {
      out = v;
    } else if (!strcmp(a, "--kind")) {
      kind_name = v;
    } else if (!strcmp(a, "--size")) {
      char extra;
      if (sscanf(v, "%ldx%ld%c", &height, &width, &extra) != 2 || height <= 0 || width <= 0)
        return fail("--size: expected HxW (e.g. 32x32), got '%s'%s", v, "");
    } else {
      usage(stderr);
      return fail("%s: unknown option%s", a, "");
    }
  }
  if (!out) return fail("--out DIR is required%s%s", "", "");
  int kind = synth_kind_from_name(kind_name);
  if (kind < 0) return fail("--kind: expected shapes or fashion, got '%s'%s", kind_name, "");
  if (count < 1 || frames < 1 || channels < 1 || objects < 1 || clips_per_shard < 1)
    return fail("--count, --frames, --channels, --objects and --clips-per-shard must be >= 1%s%s", "", "");
  if (levels < 0) levels = default_levels(frames);
  char text[64];
  snprintf(text, sizeof text, "%ld", frames);
  if (levels < 1 || levels > SHARD_MAX_LEVELS || frames % (1L << (levels - 1)) != 0)
    return fail("--levels: expected 1..8 with --frames divisible by 2^(levels-1); frames are %s%s", text, "");

  synth_spec spec = {0};
  spec.kind = kind;
  spec.channels = (int)channels;
  spec.frames = (int)frames;
  spec.height = (int)height;
  spec.width = (int)width;
  spec.objects = (int)objects;
  spec.seed = (uint64_t)seed;
  synth_set set;
  char err[1024];
  if (synth_open(&set, &spec, err, sizeof err) != 0) {
    fprintf(stderr, "tpdiff-synth: %s\n", err);
    return 2;
  }
  shard_layout layout = {.frames = (int)frames,
                         .height = (int)height,
                         .width = (int)width,
                         .channels = (int)channels,
                         .levels = (int)levels,
                         .dtype = SHARD_UINT8,
                         .scale = 2.0 / 255.0,
                         .shift = -1.0,
                         .fps = 8.0,
                         .has_labels = 1};
  size_t clip = synth_clip_floats(&set);
  float *cthw = malloc(clip * sizeof(float)), *thwc = malloc(clip * sizeof(float));
  long shards = (count + clips_per_shard - 1) / clips_per_shard;
  shard_list list = {calloc((size_t)shards, sizeof(char *)), calloc((size_t)shards, sizeof(long)), 0};
  if (!cthw || !thwc || !list.names || !list.clips) {
    fprintf(stderr, "tpdiff-synth: out of memory\n");
    return 1;
  }
  if (mkdir(out, 0755) != 0 && errno != EEXIST) {
    fprintf(stderr, "tpdiff-synth: %s: cannot create: %s\n", out, strerror(errno));
    return 1;
  }
  char path[4096];
  video_write_options wopt = video_write_defaults();
  wopt.upscale = height < 64 ? 4 : 2;
  wopt.sheet_gap = 2;
  shard_write_options sopt = {.deflate_level = 0};
  shard_writer *w = NULL;
  for (long i = 0; i < count; i++) {
    if (i % clips_per_shard == 0) {
      char name[64];
      snprintf(name, sizeof name, "shard-%05ld.h5", i / clips_per_shard);
      snprintf(path, sizeof path, "%s/%s", out, name);
      if (!(w = shard_writer_open(path, &layout, &sopt, err, sizeof err))) goto write_failed;
      list.names[list.count] = strdup(name);
      list.clips[list.count] = 0;
    }
    int label;
    if (synth_clip(&set, i, cthw, &label) != 0) {
      snprintf(err, sizeof err, "clip %ld could not be generated", i);
      goto write_failed;
    }
    char source[128];
    snprintf(source, sizeof source, "synth:%s seed %ld clip %ld, frame 0", synth_kind_name(kind), seed, i);
    to_thwc(thwc, cthw, (int)channels, (int)frames, (int)height, (int)width);
    if (shard_writer_append(w, thwc, label, source, err, sizeof err) != 0) goto write_failed;
    list.clips[list.count]++;
    if (i % clips_per_shard == clips_per_shard - 1 || i == count - 1) {
      shard_writer *done = w;
      w = NULL;
      if (shard_writer_close(done, err, sizeof err) != 0) goto write_failed;
      list.count++;
    }
    if (i < previews) {
      snprintf(path, sizeof path, "%s/preview-%02ld.gif", out, i);
      if (video_write_gif(path, cthw, (int)channels, (int)frames, (int)height, (int)width, &wopt, err, sizeof err))
        goto write_failed;
      snprintf(path, sizeof path, "%s/preview-%02ld.png", out, i);
      if (video_write_png_sheet(path, cthw, (int)channels, (int)frames, (int)height, (int)width, &wopt, err,
                                sizeof err))
        goto write_failed;
    }
  }
  if (shard_write_index(out, &layout, list.count, (const char *const *)list.names, list.clips, err, sizeof err))
    goto write_failed;
  snprintf(path, sizeof path, "%s/classes.txt", out);
  FILE *f = fopen(path, "w");
  if (!f) {
    snprintf(err, sizeof err, "%s: cannot create: %s", path, strerror(errno));
    goto write_failed;
  }
  for (int c = 0; c < synth_num_classes(&set); c++) fprintf(f, "%d %s\n", c, synth_class_name(&set, c));
  if (fclose(f) != 0) {
    snprintf(err, sizeof err, "%s: write failed: %s", path, strerror(errno));
    goto write_failed;
  }
  printf("tpdiff-synth: %ld %s clips of %ldx%ldx%ldx%ld (%d classes, %ld levels) in %d shards -> %s\n", count,
         synth_kind_name(kind), channels, frames, height, width, synth_num_classes(&set), levels, list.count, out);
  free(cthw);
  free(thwc);
  free_shards(&list);
  synth_close(&set);
  return 0;
write_failed:
  fprintf(stderr, "tpdiff-synth: %s\n", err);
  shard_writer_abort(w);
  if (list.names && list.count < shards && list.names[list.count]) list.count++; /* its name, for cleanup */
  remove_shards(out, &list);
  free(cthw);
  free(thwc);
  free_shards(&list);
  synth_close(&set);
  return 1;
}
