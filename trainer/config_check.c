/* config_check.c — validation of a tpdiff_config: the range rules of single keys, the allowed words
 * of STRING keys and the shape rules between keys (config_validate, and cfg_check for config_load,
 * which knows where each value came from). */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "trainer/config.h"
#include "trainer/config_internal.h"

typedef struct {
  const tpdiff_config *cfg;
  const unsigned char *from;       /* per key: FROM_* */
  const char *const *origin_names; /* per FROM_* */
  char *err;
  size_t err_size;
} checker;

/* Range rules of INT keys that need nothing but their own value. */
static const int POSITIVE_KEYS[] = {
    KEY_model_depth,        KEY_model_dim,    KEY_model_heads,  KEY_model_patch,     KEY_data_channels,
    KEY_data_frames,        KEY_data_height,  KEY_data_width,   KEY_train_steps,     KEY_train_clips_per_microbatch,
    KEY_train_microbatches, KEY_sample_steps, KEY_sample_count, KEY_train_log_every, KEY_train_keep,
    KEY_data_synth_clips,   KEY_data_synth_objects, KEY_sample_fps,
};
static const int NON_NEGATIVE_KEYS[] = {
    KEY_model_classes,      KEY_train_warmup,  KEY_train_ckpt_every, KEY_train_eval_every,
    KEY_train_sample_every, KEY_data_prefetch, KEY_train_seed, KEY_train_global_microbatches,
};

/* Reports a broken rule on key; related (or -1) is the other key the rule involves: the message names
 * the most recent source of the two, the one the user most likely just changed. */
static int reject(const checker *c, int key, int related, const char *fmt, ...) {
  int from = c->from[key];
  if (related >= 0 && c->from[related] > from) from = c->from[related];
  char where[64], reason[REASON_MAX];
  snprintf(where, sizeof where, "%s.%s", cfg_keys[key].section, cfg_keys[key].key);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(reason, sizeof reason, fmt, ap);
  va_end(ap);
  return cfg_fail(c->err, c->err_size, c->origin_names[from], where, "%s", reason);
}

static int listed(const int *keys, size_t count, int key) {
  for (size_t i = 0; i < count; i++)
    if (keys[i] == key) return 1;
  return 0;
}

static int check_one_key(const checker *c, int k) {
  const void *field = cfg_field_at_const(c->cfg, k);
  switch (cfg_keys[k].type) {
    case TYPE_INT: {
      int v;
      memcpy(&v, field, sizeof v);
      if (listed(POSITIVE_KEYS, sizeof POSITIVE_KEYS / sizeof POSITIVE_KEYS[0], k) && v <= 0)
        return reject(c, k, -1, "must be > 0, got %d", v);
      if (listed(NON_NEGATIVE_KEYS, sizeof NON_NEGATIVE_KEYS / sizeof NON_NEGATIVE_KEYS[0], k) && v < 0)
        return reject(c, k, -1, "must be >= 0, got %d", v);
      if (k == KEY_pyramid_stages && (v < 1 || v > TPDIFF_MAX_STAGES))
        return reject(c, k, -1, "must be in 1..%d, got %d", TPDIFF_MAX_STAGES, v);
      return 0;
    }
    case TYPE_FLOAT: {
      double v;
      memcpy(&v, field, sizeof v);
      char text[40];
      if (!isfinite(v)) return reject(c, k, -1, "must be a finite number, got %g", v);
      cfg_shortest(v, text, sizeof text);
      if ((k == KEY_model_class_dropout || k == KEY_train_ema) && !(v >= 0 && v < 1))
        return reject(c, k, -1, "must be in [0, 1), got %s", text);
      if ((k == KEY_train_lr || k == KEY_train_comm_timeout || k == KEY_train_comm_bucket_mb) && !(v > 0))
        return reject(c, k, -1, "must be > 0, got %s", text);
      if ((k == KEY_train_weight_decay || k == KEY_train_grad_clip || k == KEY_sample_cfg) && !(v >= 0))
        return reject(c, k, -1, "must be >= 0, got %s", text);
      return 0;
    }
    case TYPE_BOOL: {
      int v;
      memcpy(&v, field, sizeof v);
      if (v != 0 && v != 1) return reject(c, k, -1, "must be true or false, got %d", v);
      return 0;
    }
    case TYPE_STRING:
    case TYPE_PATH: {
      const char *s = field;
      size_t len = strnlen(s, cfg_keys[k].size);
      if (len == cfg_keys[k].size) return reject(c, k, -1, "is not terminated within %zu bytes", cfg_keys[k].size);
      if (cfg_keys[k].type == TYPE_STRING) {
        /* Reuses the parser's choice check on a scratch copy. */
        tpdiff_config scratch;
        char reason[REASON_MAX];
        if (cfg_parse_value(k, s, len, &scratch, reason, sizeof reason)) return reject(c, k, -1, "%s", reason);
      }
      return 0;
    }
    case TYPE_LIST: {
      tpdiff_float_list list;
      memcpy(&list, field, sizeof list);
      if (list.count < 0 || list.count > TPDIFF_MAX_STAGES)
        return reject(c, k, -1, "must have 0..%d entries, got %d", TPDIFF_MAX_STAGES, list.count);
      for (int i = 0; i < list.count; i++)
        if (!isfinite(list.values[i])) return reject(c, k, -1, "entry %d must be a finite number", i + 1);
      return 0;
    }
  }
  return 0;
}

/* Single-key rules first, then the rules between keys; stops at the first broken one. */
static int check_config(const checker *c) {
  const tpdiff_config *cfg = c->cfg;
  for (int k = 0; k < KEY_COUNT; k++)
    if (check_one_key(c, k)) return -1;

  /* Shape rules; the single-key checks above already made every divisor positive. */
  if (cfg->model_dim % 4 != 0)
    return reject(c, KEY_model_dim, -1, "%d is not divisible by 4 (the 3-D position embedding splits it)",
                  cfg->model_dim);
  if (cfg->model_dim % cfg->model_heads != 0)
    return reject(c, KEY_model_dim, KEY_model_heads, "%d is not divisible by model.heads = %d", cfg->model_dim,
                  cfg->model_heads);
  if (cfg->data_height % cfg->model_patch != 0)
    return reject(c, KEY_data_height, KEY_model_patch, "%d is not divisible by model.patch = %d", cfg->data_height,
                  cfg->model_patch);
  if (cfg->data_width % cfg->model_patch != 0)
    return reject(c, KEY_data_width, KEY_model_patch, "%d is not divisible by model.patch = %d", cfg->data_width,
                  cfg->model_patch);
  int stages = cfg->pyramid_stages;
  int rate = 1 << (stages - 1);
  if (cfg->data_frames % rate != 0)
    return reject(c, KEY_data_frames, KEY_pyramid_stages, "%d is not divisible by 2^(pyramid.stages-1) = %d",
                  cfg->data_frames, rate);

  const tpdiff_float_list *cuts = &cfg->pyramid_cuts;
  char a[40], b[40];
  if (cuts->count != 0 && cuts->count != stages - 1)
    return reject(c, KEY_pyramid_cuts, KEY_pyramid_stages,
                  "expected pyramid.stages-1 = %d entries or [] (equal cuts), got %d", stages - 1, cuts->count);
  for (int i = 0; i < cuts->count; i++)
    if (!(cuts->values[i] > 0 && cuts->values[i] < 1))
      return reject(c, KEY_pyramid_cuts, -1, "entry %d = %s is not in (0, 1)", i + 1,
                    cfg_shortest(cuts->values[i], a, sizeof a));
  for (int i = 1; i < cuts->count; i++)
    if (!(cuts->values[i] < cuts->values[i - 1]))
      return reject(c, KEY_pyramid_cuts, -1, "must be strictly decreasing, but entry %d = %s follows %s", i + 1,
                    cfg_shortest(cuts->values[i], a, sizeof a), cfg_shortest(cuts->values[i - 1], b, sizeof b));

  const tpdiff_float_list *weights = &cfg->pyramid_stage_weights;
  if (weights->count != 0 && weights->count != stages)
    return reject(c, KEY_pyramid_stage_weights, KEY_pyramid_stages,
                  "expected pyramid.stages = %d entries or [] (equal), got %d", stages, weights->count);
  double weight_sum = 0;
  for (int i = 0; i < weights->count; i++) {
    if (!(weights->values[i] >= 0))
      return reject(c, KEY_pyramid_stage_weights, -1, "entry %d = %s is negative", i + 1,
                    cfg_shortest(weights->values[i], a, sizeof a));
    weight_sum += weights->values[i];
  }
  if (weights->count && !(weight_sum > 0))
    return reject(c, KEY_pyramid_stage_weights, -1, "at least one stage needs a weight > 0");

  if (cfg->sample_cfg != 1.0 && cfg->model_classes == 0)
    return reject(c, KEY_sample_cfg, KEY_model_classes,
                  "guidance needs a class-conditional model: sample.cfg = %s with model.classes = 0 "
                  "(set sample.cfg to 1 or model.classes > 0)",
                  cfg_shortest(cfg->sample_cfg, a, sizeof a));
  return 0;
}

int cfg_check(const tpdiff_config *cfg, const unsigned char *from, const char *const *origin_names, char *err,
              size_t err_size) {
  checker c = {cfg, from, origin_names, err, err_size};
  return check_config(&c);
}

int config_validate(const tpdiff_config *cfg, const char *origin, char *err, size_t err_size) {
  unsigned char from[KEY_COUNT];
  memset(from, FROM_DEFAULTS, sizeof from);
  const char *names[3] = {origin ? origin : "config", NULL, NULL};
  return cfg_check(cfg, from, names, err, err_size);
}
