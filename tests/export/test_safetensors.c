/* test_safetensors.c — the safetensors writer and reader (data/safetensors.h), the .npy reader, and
 * weights_io's checks of a file against a model: bf16 rounding, bit-identical round trips, every kind
 * of damaged or mismatched file refused with one line naming the file (and the tensor / parameter
 * and both shapes), never a crash (this program also runs under ASan+UBSan).
 *
 * usage: test_safetensors CONFIG   (configs/tiny.yaml) */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/npy.h"
#include "data/npy_read.h"
#include "data/safetensors.h"
#include "kernels/kernels.h"
#include "tests/unit/test_report.h"
#include "trainer/trainer.h"
#include "trainer/weights_io.h"

static char dir[256];

static const char *tmp_path(const char *name) {
  static char paths[8][512];
  static int next;
  char *p = paths[next++ % 8];
  snprintf(p, 512, "%s/%s", dir, name);
  return p;
}

static uint32_t bits(float x) {
  uint32_t u;
  memcpy(&u, &x, 4);
  return u;
}
static float from_bits(uint32_t u) {
  float x;
  memcpy(&x, &u, 4);
  return x;
}

static void test_bf16_rounding(void) {
  struct {
    uint32_t in;
    uint16_t want;
    const char *what;
  } cases[] = {
      {0x3F800000u, 0x3F80, "1.0 exact"},
      {0x3F808000u, 0x3F80, "tie rounds to even (down)"},
      {0x3F818000u, 0x3F82, "tie rounds to even (up)"},
      {0x3F808001u, 0x3F81, "above the tie rounds up"},
      {0x3F807FFFu, 0x3F80, "below the tie rounds down"},
      {0xBF818000u, 0xBF82, "negative tie to even"},
      {0x7F7FFFFFu, 0x7F80, "largest float rounds to +inf"},
      {0x7F800000u, 0x7F80, "+inf stays"},
      {0xFF800000u, 0xFF80, "-inf stays"},
      {0x00000001u, 0x0000, "smallest denormal rounds to 0"},
      {0x80000000u, 0x8000, "-0 keeps its sign"},
  };
  int bad = 0;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    uint16_t got = st_f32_to_bf16(from_bits(cases[i].in));
    if (got != cases[i].want) {
      failf("bf16 rounding", "%s: 0x%08x -> 0x%04x, expected 0x%04x", cases[i].what, cases[i].in, got, cases[i].want);
      bad = 1;
    }
  }
  /* NaNs whose payload sits only in the low 16 bits would truncate to infinity */
  uint16_t n1 = st_f32_to_bf16(from_bits(0x7F800001u)), n2 = st_f32_to_bf16(from_bits(0xFFC00000u));
  int nan_ok = isnan(st_bf16_to_f32(n1)) && isnan(st_bf16_to_f32(n2)) && (n2 & 0x8000);
  if (!bad) pass("bf16 rounding", "%zu cases: ties to even, overflow to inf, signs", sizeof cases / sizeof cases[0]);
  check("bf16 keeps NaN a NaN", nan_ok, "(0x7f800001 -> 0x%04x, 0xffc00000 -> 0x%04x)", n1, n2);
}

/* Tensors with awkward values (NaN payloads, infinities, denormals, -0) must come back bit for bit. */
static void test_round_trip(void) {
  size_t s0[2] = {3, 5}, s1[1] = {7}, s2[3] = {2, 2, 2};
  float a[15], b[7], c[8];
  for (int i = 0; i < 15; i++) a[i] = (float)sin(i * 1.7) * powf(10.0f, (float)(i % 9) - 4);
  for (int i = 0; i < 8; i++) c[i] = (float)i - 3.5f;
  b[0] = from_bits(0x7FC01234u), b[1] = INFINITY, b[2] = -INFINITY, b[3] = from_bits(0x00000003u), b[4] = -0.0f;
  b[5] = 1e-40f, b[6] = 3.4e38f;
  st_tensor_out t[3] = {{"z.first", 2, s0, a}, {"a.second", 1, s1, b}, {"m.third", 3, s2, c}};
  const char *keys[] = {"format", "note"};
  const char *vals[] = {"pt", "quote \" backslash \\ newline\n tab\t unicode \xc3\xa9 \xf0\x9f\x8e\xa5"};
  char err[1024];
  const char *path = tmp_path("rt.safetensors");
  for (int dt = 0; dt < 2; dt++) {
    st_dtype dtype = dt ? ST_BF16 : ST_F32;
    const char *name = dt ? "round trip BF16 = rounded values, order kept" : "round trip F32 bit-identical";
    st_file sf;
    if (st_write(path, t, 3, dtype, keys, vals, 2, err, sizeof err) != 0 || st_open(&sf, path, err, sizeof err) != 0) {
      failf(name, "%s", err);
      continue;
    }
    int ok = sf.count == 3 && (sf.data_start % 8) == 0, mismatches = 0;
    for (int i = 0; i < 3 && ok; i++) {
      const st_entry *e = &sf.entries[i];
      ok = strcmp(e->name, t[i].name) == 0 && e->dtype == dtype && e->ndim == t[i].ndim;
      float got[16];
      if (!ok || st_read(&sf, e, got, err, sizeof err) != 0) {
        ok = 0;
        break;
      }
      for (size_t j = 0; j < e->numel; j++) {
        uint32_t want = dt ? bits(st_bf16_to_f32(st_f32_to_bf16(t[i].data[j]))) : bits(t[i].data[j]);
        mismatches += bits(got[j]) != want;
      }
    }
    const char *note = st_meta(&sf, "note");
    ok = ok && mismatches == 0 && note && strcmp(note, vals[1]) == 0 && strcmp(st_meta(&sf, "format"), "pt") == 0;
    check(name, ok, "(%d value mismatches, header %llu bytes, metadata with escapes %s)", mismatches,
          (unsigned long long)sf.data_start, note && strcmp(note, vals[1]) == 0 ? "kept" : "LOST");
    st_close(&sf);
  }
  unlink(path);
}

/* A file from a header text and data_bytes zero bytes; hlen_override != 0 writes that length instead. */
static const char *raw_file(const char *name, const char *header, size_t data_bytes, uint64_t hlen_override) {
  const char *path = tmp_path(name);
  FILE *f = fopen(path, "wb");
  uint64_t hlen = hlen_override ? hlen_override : strlen(header);
  unsigned char len8[8];
  for (int b = 0; b < 8; b++) len8[b] = (unsigned char)(hlen >> (8 * b));
  fwrite(len8, 1, 8, f);
  fwrite(header, 1, strlen(header), f);
  for (size_t i = 0; i < data_bytes; i++) fputc(0, f);
  fclose(f);
  return path;
}

/* st_open must refuse path with a single line that names the file and contains `expect`. */
static void expect_refused(const char *name, const char *path, const char *expect) {
  st_file sf;
  char err[1024] = "";
  int rc = st_open(&sf, path, err, sizeof err);
  st_close(&sf);
  int one_line = strchr(err, '\n') == NULL, names_file = strstr(err, path) != NULL;
  check(name, rc != 0 && one_line && names_file && strstr(err, expect) != NULL, "(%s)", err);
  unlink(path);
}

static void test_bad_files(void) {
  char big[200];
  const char *ok_hdr = "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}}";
  expect_refused("bad file: header length 0", raw_file("zero", "", 0, 0), "header length 0 outside");
  {
    const char *p = tmp_path("short5");
    FILE *f = fopen(p, "wb");
    fwrite("\x10\0\0\0\0", 1, 5, f);
    fclose(f);
    expect_refused("bad file: shorter than the length field", p, "truncated");
  }
  expect_refused("bad file: header length past the end", raw_file("hlen", ok_hdr, 24, 1000), "runs past the end");
  expect_refused("bad file: huge header length", raw_file("hlen2", ok_hdr, 24, UINT64_MAX), "runs past the end");
  expect_refused("bad file: truncated in the data", raw_file("trunc", ok_hdr, 20, 0), "run past the data area");
  expect_refused("bad file: trailing bytes", raw_file("tail", ok_hdr, 30, 0), "cover 24 of the 30");
  expect_refused("bad file: offsets out of range",
                 raw_file("range", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[100,108]}}", 8, 0),
                 "run past the data area");
  expect_refused("bad file: offsets overlap",
                 raw_file("overlap",
                          "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                          "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}",
                          24, 0),
                 "overlap");
  expect_refused("bad file: a hole between tensors",
                 raw_file("hole",
                          "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                          "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[16,24]}}",
                          24, 0),
                 "belong to no tensor");
  expect_refused("bad file: offsets end before they begin",
                 raw_file("order", "{\"w\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,0]}}", 8, 0),
                 "end before they begin");
  expect_refused("bad file: size disagrees with the shape",
                 raw_file("size", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]}}", 20, 0),
                 "needs 24");
  expect_refused("bad file: dtype I64 refused",
                 raw_file("i64", "{\"w\":{\"dtype\":\"I64\",\"shape\":[3],\"data_offsets\":[0,24]}}", 24, 0),
                 "dtype I64 is not supported");
  expect_refused("bad file: unknown dtype",
                 raw_file("f99", "{\"w\":{\"dtype\":\"F99\",\"shape\":[3],\"data_offsets\":[0,12]}}", 12, 0),
                 "not a safetensors dtype");
  expect_refused("bad file: duplicate tensor name",
                 raw_file("dup",
                          "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                          "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                          8, 0),
                 "appears twice");
  expect_refused("bad file: malformed JSON", raw_file("json", "{\"w\":{\"dtype\":\"F32\",}}", 0, 0), "header JSON");
  expect_refused("bad file: not JSON at all", raw_file("text", "hello world", 0, 0), "does not start with");
  expect_refused("bad file: negative dimension",
                 raw_file("neg", "{\"w\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, 0),
                 "shape[0]");
  expect_refused("bad file: fractional offset",
                 raw_file("frac", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8.0]}}", 8, 0),
                 "data_offsets must be");
  expect_refused("bad file: metadata value not a string", raw_file("meta", "{\"__metadata__\":{\"a\":1}}", 0, 0),
                 "not a string");
  expect_refused("bad file: NUL inside a name",
                 raw_file("nul", "{\"a\\u0000b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, 0),
                 "holding a NUL");
  expect_refused("bad file: invalid UTF-8 in the header", raw_file("utf8", "{\"\xff\":1}", 0, 0), "invalid UTF-8");
  expect_refused("bad file: missing data_offsets", raw_file("keys", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, 0),
                 "exactly the keys");
  memset(big, '[', sizeof big - 1);
  big[0] = '{', big[1] = '"', big[2] = 'a', big[3] = '"', big[4] = ':', big[sizeof big - 1] = '\0';
  expect_refused("bad file: nesting too deep", raw_file("deep", big, 0, 0), "nesting deeper");
  expect_refused("bad file: missing", tmp_path("does-not-exist"), "cannot open");
}

/* weights_io against a model: the tiny config's model, its file, and files that do not fit it. */
static void test_model_files(const char *config) {
  static tpdiff_config cfg, back;
  char err[1024], *over[1];
  if (config_load(&cfg, config, 0, over, err, sizeof err) != 0) {
    failf("model files: config", "%s", err);
    return;
  }
  dit_shape s = trainer_shape_from_config(&cfg);
  dit_model m;
  if (dit_create(&m, &s, tpdiff_cpu_backend(), err, sizeof err) != 0 || dit_init_random(&m, 7) != 0) {
    failf("model files: model", "%s", err);
    return;
  }
  size_t n = m.num_floats;
  float *w = malloc(n * sizeof(float)), *got = malloc(n * sizeof(float));
  dit_weights_to_host(&m, w);
  const char *path = tmp_path("model.safetensors");
  int rc = weights_write_safetensors(path, &m, w, &cfg, 1, 42, ST_F32, err, sizeof err);
  int used_ema = -1;
  long step = 0;
  if (rc == 0) rc = weights_read_host(path, &m, WEIGHTS_EMA_IF_PRESENT, got, &used_ema, err, sizeof err);
  check("model file: weights back bit-identical", rc == 0 && memcmp(w, got, n * sizeof(float)) == 0 && used_ema == 1,
        "(%zu floats, %s)", n, rc ? err : "ema");
  rc = weights_read_config(path, &back, err, sizeof err);
  char *a = NULL, *b = NULL;
  size_t al, bl;
  FILE *fa = open_memstream(&a, &al), *fb = open_memstream(&b, &bl);
  config_write_yaml(&cfg, fa);
  config_write_yaml(&back, fb);
  fclose(fa);
  fclose(fb);
  check("model file: config from the metadata equals the original",
        rc == 0 && strcmp(a, b) == 0 && strcmp(back.source, path) == 0, "(%s)", rc ? err : "every key");
  free(a);
  free(b);
  rc = weights_read_step(path, &step, err, sizeof err);
  check("model file: step from the metadata", rc == 0 && step == 42, "(step %ld)", step);
  rc = weights_read_host(path, &m, WEIGHTS_RAW, got, NULL, err, sizeof err);
  check("model file: asking for raw weights of an EMA export refused",
        rc != 0 && strstr(err, "raw weights were asked") != NULL, "(%s)", err);

  /* files written from other registries: drop the last tensor, add one, change a shape */
  st_tensor_out *t = calloc((size_t)m.num_params + 1, sizeof *t);
  size_t(*shapes)[2] = calloc((size_t)m.num_params + 1, sizeof *shapes);
  for (int i = 0; i < m.num_params; i++) {
    shapes[i][0] = (size_t)m.params[i].shape[0];
    shapes[i][1] = (size_t)m.params[i].shape[1];
    t[i] = (st_tensor_out){m.params[i].name, m.params[i].ndim, shapes[i], w + m.params[i].offset};
  }
  const char *name = m.params[m.num_params - 1].name;
  st_write(path, t, m.num_params - 1, ST_F32, NULL, NULL, 0, err, sizeof err);
  rc = weights_read_host(path, &m, WEIGHTS_EMA_IF_PRESENT, got, NULL, err, sizeof err);
  check("mismatch: a missing parameter is named",
        rc != 0 && strstr(err, name) && strstr(err, "missing") && strstr(err, path), "(%s)", err);
  size_t extra_shape[1] = {3};
  t[m.num_params] = (st_tensor_out){"blocks.9.extra", 1, extra_shape, w};
  st_write(path, t, m.num_params + 1, ST_F32, NULL, NULL, 0, err, sizeof err);
  rc = weights_read_host(path, &m, WEIGHTS_EMA_IF_PRESENT, got, NULL, err, sizeof err);
  check("mismatch: an extra tensor is refused", rc != 0 && strstr(err, "'blocks.9.extra' [3] is not a parameter"),
        "(%s)", err);
  shapes[0][1] += 4; /* x_embed.weight [D, P+4]: more values than the buffer holds, never read */
  float *wide = calloc(shapes[0][0] * shapes[0][1], sizeof(float));
  t[0].data = wide;
  st_write(path, t, m.num_params, ST_F32, NULL, NULL, 0, err, sizeof err);
  rc = weights_read_host(path, &m, WEIGHTS_EMA_IF_PRESENT, got, NULL, err, sizeof err);
  char want_text[64], got_text[64];
  snprintf(got_text, sizeof got_text, "[%zu, %zu]", shapes[0][0], shapes[0][1]);
  snprintf(want_text, sizeof want_text, "[%d, %d]", m.params[0].shape[0], m.params[0].shape[1]);
  check("mismatch: a wrong shape names the parameter and both shapes",
        rc != 0 && strstr(err, m.params[0].name) && strstr(err, got_text) && strstr(err, want_text), "(%s)", err);
  free(wide);
  rc = weights_read_config(path, &back, err, sizeof err);
  check("no tpdiff.config in the metadata: refused", rc != 0 && strstr(err, "tpdiff.config"), "(%s)", err);

  /* a file of a bigger model (depth + 1) loaded into this one */
  static tpdiff_config deeper;
  deeper = cfg;
  deeper.model_depth = cfg.model_depth + 1;
  dit_shape ds = trainer_shape_from_config(&deeper);
  dit_model dm;
  if (dit_create(&dm, &ds, tpdiff_cpu_backend(), err, sizeof err) == 0) {
    float *dw = calloc(dm.num_floats, sizeof(float));
    weights_write_safetensors(path, &dm, dw, &deeper, 0, -1, ST_BF16, err, sizeof err);
    rc = weights_read_host(path, &m, WEIGHTS_EMA_IF_PRESENT, got, NULL, err, sizeof err);
    char blk[32];
    snprintf(blk, sizeof blk, "'blocks.%d.", cfg.model_depth);
    check("mismatch: a deeper model's file names its extra block", rc != 0 && strstr(err, blk), "(%s)", err);
    free(dw);
    dit_destroy(&dm);
  }

  /* a tpdiff.config that does not parse */
  const char *keys[] = {"tpdiff.config"}, *vals[] = {"model:\n  depth: two\n"};
  st_write(path, t, 0, ST_F32, keys, vals, 1, err, sizeof err);
  rc = weights_read_config(path, &back, err, sizeof err);
  check("a broken tpdiff.config: one line naming the file and key",
        rc != 0 && strstr(err, path) && strstr(err, "tpdiff.config") && strstr(err, "depth") && !strchr(err, '\n'),
        "(%s)", err);
  unlink(path);
  free(t);
  free(shapes);
  free(w);
  free(got);
  dit_destroy(&m);
}

static void test_npy_read(void) {
  char err[1024];
  float v[24];
  for (int i = 0; i < 24; i++) v[i] = (float)i * 0.25f - 1.0f;
  size_t shape[3] = {2, 3, 4};
  const char *path = tmp_path("n.npy");
  npy_f32 a;
  int rc = npy_write(path, NPY_F32, v, 3, shape, err, sizeof err);
  if (rc == 0) rc = npy_read_f32(path, &a, err, sizeof err);
  check(".npy float32 read back",
        rc == 0 && a.ndim == 3 && a.shape[2] == 4 && a.count == 24 && memcmp(a.data, v, sizeof v) == 0, "(%s)",
        rc ? err : "[2, 3, 4]");
  if (rc == 0) free(a.data);
  npy_write(path, NPY_F64, v, 1, shape, err, sizeof err); /* 2 doubles from v's bytes */
  rc = npy_read_f32(path, &a, err, sizeof err);
  check(".npy float64 refused", rc != 0 && strstr(err, "<f8") && a.data == NULL, "(%s)", err);
  npy_write(path, NPY_F32, v, 3, shape, err, sizeof err);
  if (truncate(path, 150) != 0) /* 128-byte header, then 22 of the 96 data bytes */
    failf(".npy truncated refused", "truncate failed");
  rc = npy_read_f32(path, &a, err, sizeof err);
  check(".npy truncated refused", rc != 0 && strstr(err, "data bytes"), "(%s)", err);
  unlink(path);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: test_safetensors CONFIG\n");
    return 2;
  }
  const char *tmp = getenv("TMPDIR");
  snprintf(dir, sizeof dir, "%s/tpdiff-st.XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
  if (!mkdtemp(dir)) {
    perror("mkdtemp");
    return 2;
  }
  test_bf16_rounding();
  test_round_trip();
  test_bad_files();
  test_model_files(argv[1]);
  test_npy_read();
  rmdir(dir);
  test_summary("test_safetensors", NULL);
  return test_exit_code();
}
