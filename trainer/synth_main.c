/* synth_main.c — `tpdiff-synth --out DIR [--kind shapes|fashion ...]`: writes a synthetic video
 * data set with a known generative process (data/synth), for demos and tests. Until the HDF5 shard
 * writer exists the set is written as NumPy files: clips.npy [N, C, T, H, W] float32 in [-1, 1] and
 * labels.npy [N] int32, plus preview GIFs and frame sheets of the first clips. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data/npy.h"
#include "data/synth.h"
#include "data/video_write.h"

static void usage(FILE *f) {
  fprintf(f,
          "usage: tpdiff-synth --out DIR [--kind shapes|fashion] [--count N] [--frames T] [--size HxW]\n"
          "                    [--channels C] [--objects K] [--seed S] [--previews P]\n"
          "Writes DIR/clips.npy [N,C,T,H,W] float32 in [-1,1], DIR/labels.npy [N] int32, DIR/classes.txt and\n"
          "DIR/preview-NN.gif/.png for the first P clips. Defaults: shapes, 256 clips, 16 frames, 32x32,\n"
          "3 channels, 1 object, seed 0, 4 previews. fashion needs the package dataset-fashion-mnist.\n");
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

int main(int argc, char **argv) {
  const char *out = NULL, *kind_name = "shapes";
  long count = 256, frames = 16, height = 32, width = 32, channels = 3, objects = 1, seed = 0, previews = 4;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      usage(stdout);
      return 0;
    }
    if (i + 1 >= argc) return fail("%s: missing value%s", a, "");
    const char *v = argv[++i];
    long *target = !strcmp(a, "--count")      ? &count
                   : !strcmp(a, "--frames")   ? &frames
                   : !strcmp(a, "--channels") ? &channels
                   : !strcmp(a, "--objects")  ? &objects
                   : !strcmp(a, "--seed")     ? &seed
                   : !strcmp(a, "--previews") ? &previews
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
  if (count < 1 || frames < 1 || channels < 1 || objects < 1)
    return fail("--count, --frames, --channels and --objects must be >= 1%s%s", "", "");

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
  size_t clip = synth_clip_floats(&set);
  float *clips = malloc(clip * (size_t)count * sizeof(float));
  int *labels = malloc((size_t)count * sizeof(int));
  if (!clips || !labels) {
    fprintf(stderr, "tpdiff-synth: out of memory for %ld clips (%.1f MiB)\n", count, clip * count * 4.0 / 1048576);
    return 1;
  }
  for (long i = 0; i < count; i++)
    if (synth_clip(&set, i, clips + clip * (size_t)i, &labels[i]) != 0) {
      fprintf(stderr, "tpdiff-synth: clip %ld could not be generated\n", i);
      return 1;
    }
  if (mkdir(out, 0755) != 0 && errno != EEXIST) {
    fprintf(stderr, "tpdiff-synth: %s: cannot create: %s\n", out, strerror(errno));
    return 1;
  }
  char path[4096];
  size_t shape[5] = {(size_t)count, (size_t)channels, (size_t)frames, (size_t)height, (size_t)width};
  size_t lshape[1] = {(size_t)count};
  snprintf(path, sizeof path, "%s/clips.npy", out);
  if (npy_write(path, NPY_F32, clips, 5, shape, err, sizeof err) != 0) goto write_failed;
  snprintf(path, sizeof path, "%s/labels.npy", out);
  if (npy_write(path, NPY_I32, labels, 1, lshape, err, sizeof err) != 0) goto write_failed;
  snprintf(path, sizeof path, "%s/classes.txt", out);
  FILE *f = fopen(path, "w");
  if (!f) {
    snprintf(err, sizeof err, "%s: cannot create: %s", path, strerror(errno));
    goto write_failed;
  }
  for (int c = 0; c < synth_num_classes(&set); c++) fprintf(f, "%d %s\n", c, synth_class_name(&set, c));
  fclose(f);
  video_write_options wopt = video_write_defaults();
  wopt.upscale = height < 64 ? 4 : 2;
  wopt.sheet_gap = 2;
  for (long i = 0; i < previews && i < count; i++) {
    snprintf(path, sizeof path, "%s/preview-%02ld.gif", out, i);
    if (video_write_gif(path, clips + clip * (size_t)i, (int)channels, (int)frames, (int)height, (int)width, &wopt, err,
                        sizeof err) != 0)
      goto write_failed;
    snprintf(path, sizeof path, "%s/preview-%02ld.png", out, i);
    if (video_write_png_sheet(path, clips + clip * (size_t)i, (int)channels, (int)frames, (int)height, (int)width,
                              &wopt, err, sizeof err) != 0)
      goto write_failed;
  }
  printf("tpdiff-synth: %ld %s clips of %ldx%ldx%ldx%ld (%d classes) -> %s\n", count, synth_kind_name(kind), channels,
         frames, height, width, synth_num_classes(&set), out);
  free(clips);
  free(labels);
  synth_close(&set);
  return 0;
write_failed:
  fprintf(stderr, "tpdiff-synth: %s\n", err);
  return 1;
}
