/* config.h — the run configuration: every key, its type, default and meaning, in one table.
 *
 * TPDIFF_CONFIG_KEYS below is the single place where a config key is documented; the parser, the
 * command-line overrides, `tpdiff-train --help-config`, the resolved-config printout and the
 * checkpoint copy are all generated from it, so they cannot drift apart.
 */
#ifndef TPDIFF_CONFIG_H
#define TPDIFF_CONFIG_H

#include <stdint.h>
#include <stdio.h>

#define TPDIFF_MAX_STAGES 4
#define TPDIFF_PATH_MAX 1024
#define TPDIFF_WORD_MAX 16

/* X(section, key, type, default, doc) — type is one of INT, FLOAT, BOOL, STRING, PATH, LIST
 * (LIST: a YAML sequence of floats, or an empty sequence []); a STRING key's allowed values are listed in
 * TPDIFF_CONFIG_CHOICES. Keep the sections in the order of DESIGN.md. */
#define TPDIFF_CONFIG_KEYS(X)                                                                                       \
  X(model, depth, INT, "2", "number of DiT blocks")                                                               \
  X(model, dim, INT, "64", "token width D; divisible by 4 and by model.heads")                                    \
  X(model, heads, INT, "4", "attention heads; D/heads is the head width")                                         \
  X(model, patch, INT, "2", "spatial patch size p (temporal patch is 1); divides data.height and data.width")     \
  X(model, classes, INT, "0", "number of classes for label conditioning; 0 = unconditional (no label table)")    \
  X(model, class_dropout, FLOAT, "0.1", "probability of replacing a label by the null class in training (CFG)")  \
  X(data, path, PATH, "", "data set folder (HDF5 shards); empty = the built-in synthetic batch")                  \
  X(data, frames, INT, "8", "frames per clip at full rate; divisible by 2^(pyramid.stages-1)")                   \
  X(data, height, INT, "16", "clip height in pixels (or latent cells)")                                          \
  X(data, width, INT, "16", "clip width in pixels (or latent cells)")                                            \
  X(data, channels, INT, "3", "channels per pixel (3 for RGB, 4 for typical VAE latents)")                       \
  X(data, prefetch, INT, "4", "microbatches the loader reads ahead")                                             \
  X(data, on_error, STRING, "fail", "a bad clip: fail = stop the run with the message; skip = count, log, go on") \
  X(data, synth, STRING, "shapes", "built-in synthetic set used when data.path is empty: shapes or fashion")       \
  X(data, synth_clips, INT, "1024", "clips in the built-in synthetic set")                                        \
  X(data, synth_objects, INT, "1", "moving objects per synthetic clip")                                           \
  X(diffusion, form, STRING, "rf", "rf = rectified flow with velocity target; vp = VP cosine, v-prediction")    \
  X(pyramid, stages, INT, "1", "number of pyramid stages K (1..4); 1 = vanilla diffusion")                       \
  X(pyramid, cuts, LIST, "[]", "K-1 nominal cut points in (0,1), strictly decreasing; [] = equal cuts")        \
  X(pyramid, schedule, STRING, "sync", "stage choice per microbatch: sync (shared) or balanced (per rank)")     \
  X(pyramid, align, STRING, "microbatch", "data-noise alignment: off, microbatch or global")                   \
  X(pyramid, stage_weights, LIST, "[]", "relative probability of each stage per microbatch; [] = equal (1/K)")  \
  X(train, steps, INT, "100", "optimizer steps to run")                                                          \
  X(train, clips_per_microbatch, INT, "4", "clips per microbatch at full rate (per rank)")                       \
  X(train, microbatches, INT, "1", "microbatches accumulated per optimizer step")                               \
  X(train, lr, FLOAT, "1e-4", "peak learning rate (AdamW)")                                                      \
  X(train, warmup, INT, "0", "linear warm-up steps from 0 to train.lr")                                          \
  X(train, weight_decay, FLOAT, "0", "AdamW decoupled weight decay, applied to matrices only")                  \
  X(train, grad_clip, FLOAT, "1.0", "clip the global gradient norm to this; 0 = no clipping")                   \
  X(train, ema, FLOAT, "0.9999", "EMA decay of the weights kept for sampling; 0 = no EMA")                       \
  X(train, seed, INT, "0", "run seed: initialisation, data order, noise, stage draws")                           \
  X(train, device, STRING, "auto", "auto (GPU when present, else CPU), cpu or cuda")                             \
  X(train, precision, STRING, "fp32", "fp32, or bf16 (GPU only: bf16 matmul inputs, fp32 accumulation and master weights)") \
  X(train, recompute, STRING, "none",                                                                           \
    "activation memory: none keeps all; cheap recomputes norms, residual and GELU; blocks reruns each block's forward") \
  X(train, global_microbatches, INT, "0",                                                                       \
    "microbatches per step over all ranks; 0 = train.microbatches per rank, else divisible by the world size")   \
  X(train, comm_timeout, FLOAT, "300", "seconds a collective (gradient all-reduce, start-up checks) may wait; then abort") \
  X(train, comm_bucket_mb, FLOAT, "25", "gradient all-reduce bucket size in MiB (several buckets overlap)")      \
  X(train, comm_dtype, STRING, "fp32", "gradient all-reduce precision on GPUs (NCCL): fp32 or bf16; MPI is fp32") \
  X(train, out, PATH, "runs/default", "output folder: log, checkpoints, samples")                                \
  X(train, ckpt_every, INT, "0", "write a checkpoint every N steps; 0 = only at the end")                        \
  X(train, keep, INT, "3", "checkpoints kept on disk")                                                           \
  X(train, eval_every, INT, "0", "evaluate the held-out loss every N steps; 0 = never")                          \
  X(train, sample_every, INT, "0", "write sample videos every N steps; 0 = only at the end")                     \
  X(train, log_every, INT, "1", "print a log line every N steps")                                                \
  X(sample, steps, INT, "10", "sampler steps per pyramid stage")                                                 \
  X(sample, cfg, FLOAT, "1.0", "classifier-free guidance scale; 1 = no guidance")                               \
  X(sample, count, INT, "4", "videos generated per sampling round")                                             \
  X(sample, fps, INT, "8", "frame rate written into sampled GIFs")

/* Allowed values of STRING keys: X(section, key, "a|b|c"). */
#define TPDIFF_CONFIG_CHOICES(X)                \
  X(data, on_error, "fail|skip")                \
  X(data, synth, "shapes|fashion")              \
  X(diffusion, form, "rf|vp")                   \
  X(pyramid, schedule, "sync|balanced")         \
  X(pyramid, align, "off|microbatch|global")    \
  X(train, device, "auto|cpu|cuda")             \
  X(train, precision, "fp32|bf16")          \
  X(train, recompute, "none|cheap|blocks")  \
  X(train, comm_dtype, "fp32|bf16")

typedef struct {
  double values[TPDIFF_MAX_STAGES];
  int count;
} tpdiff_float_list;

/* C types of the key types. */
typedef int tpdiff_cfg_INT;
typedef double tpdiff_cfg_FLOAT;
typedef int tpdiff_cfg_BOOL;
typedef char tpdiff_cfg_STRING[TPDIFF_WORD_MAX];
typedef char tpdiff_cfg_PATH[TPDIFF_PATH_MAX];
typedef tpdiff_float_list tpdiff_cfg_LIST;

#define TPDIFF_CONFIG_FIELD(section, key, type, def, doc) tpdiff_cfg_##type section##_##key;
typedef struct {
  TPDIFF_CONFIG_KEYS(TPDIFF_CONFIG_FIELD)
  char source[TPDIFF_PATH_MAX]; /* the config file it came from */
} tpdiff_config;
#undef TPDIFF_CONFIG_FIELD

/* Error text capacity: one line. */
#define TPDIFF_CONFIG_ERROR_MAX 512

/* Fills cfg with every key's default. */
void config_defaults(tpdiff_config *cfg);

/* Loads a YAML file over the defaults, then applies argv-style overrides "--section.key=value"
 * (nargs of them; other arguments are not passed here), then validates. Returns 0, or -1 with one
 * line in err naming the file (or "command line"), the key and the reason. */
int config_load(tpdiff_config *cfg, const char *path, int nargs, char **args, char *err, size_t err_size);

/* As config_load, from YAML text held in memory (a checkpoint's stored config); origin names it in
 * messages and becomes cfg->source. */
int config_load_text(tpdiff_config *cfg, const char *text, size_t len, const char *origin, char *err,
                     size_t err_size);

/* Checks ranges, choices and the shape rules (frames divisible by 2^(K-1), height/width by patch,
 * dim by 4 and by heads, cuts strictly decreasing in (0,1) with K-1 entries or empty). Returns 0 or
 * -1 with err set; origin names the source in the message. */
int config_validate(const tpdiff_config *cfg, const char *origin, char *err, size_t err_size);

/* Writes the resolved config as YAML (every key, in table order). */
void config_write_yaml(const tpdiff_config *cfg, FILE *out);

/* The same YAML as a malloc'd string (its length in *len when len is not NULL); NULL when out of
 * memory. Checkpoints and exports store it; ranks compare its hash. */
char *config_yaml_text(const tpdiff_config *cfg, size_t *len);

/* Writes the key documentation table (section.key, type, default, meaning). */
void config_write_help(FILE *out);

#endif
