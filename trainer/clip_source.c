/* clip_source.c — the built-in synthetic data sets (data/synth) as a clip_source. */
#include "trainer/clip_source.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/synth.h"

static int read_synth(void *ctx, long index, float *clip, int *label, char *err, size_t err_size) {
  const synth_set *s = ctx;
  int y = 0;
  if (synth_clip(s, index, clip, &y) != 0) {
    snprintf(err, err_size, "synthetic set (%s): cannot make clip %ld", synth_kind_name(s->spec.kind), index);
    return -1;
  }
  *label = y;
  return 0;
}

int clip_source_open(clip_source *source, const tpdiff_config *cfg, char *err, size_t err_size) {
  memset(source, 0, sizeof *source);
  synth_set *s = calloc(1, sizeof *s);
  if (!s) {
    snprintf(err, err_size, "out of memory for the synthetic set");
    return -1;
  }
  synth_spec spec = {0};
  spec.kind = synth_kind_from_name(cfg->data_synth);
  spec.channels = cfg->data_channels;
  spec.frames = cfg->data_frames;
  spec.height = cfg->data_height;
  spec.width = cfg->data_width;
  spec.objects = cfg->data_synth_objects;
  spec.seed = (uint64_t)cfg->train_seed;
  char why[512];
  if (synth_open(s, &spec, why, sizeof why) != 0) {
    snprintf(err, err_size, "data.synth=%s: %s", cfg->data_synth, why);
    free(s);
    return -1;
  }
  /* labels: the set's classes folded onto model.classes (a model may use fewer classes than the set) */
  if (cfg->model_classes > 0 && synth_num_classes(s) > cfg->model_classes)
    fprintf(stderr, "tpdiff-train: note: data.synth=%s has %d classes, model.classes=%d; labels are taken mod %d\n",
            cfg->data_synth, synth_num_classes(s), cfg->model_classes, cfg->model_classes);
  source->count = cfg->data_synth_clips;
  source->read = read_synth;
  source->ctx = s;
  return 0;
}

void clip_source_close(clip_source *source) {
  if (source->ctx) synth_close(source->ctx);
  free(source->ctx);
  memset(source, 0, sizeof *source);
}
