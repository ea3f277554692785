/* test_synth.c — unit tests of data/synth.c: determinism, value range, labels against the generative process,
 * motion and bouncing, Fashion-MNIST against the IDX files read here with zlib, class balance, errors.
 *
 * Usage: test_synth. Needs the IDX files of dataset-fashion-mnist (or $TPDIFF_FASHION_MNIST_DIR). Prints one
 * "PASS <case>" or "FAIL <case>: <detail>" line per case and a summary line; exits 1 if any case failed. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "data/synth.h"
#include "tests/unit/test_report.h"

static synth_spec make_spec(int kind, int frames, int side, int objects, uint64_t seed) {
  synth_spec sp;
  memset(&sp, 0, sizeof sp);
  sp.kind = kind;
  sp.channels = 3;
  sp.frames = frames;
  sp.height = sp.width = side;
  sp.objects = objects;
  sp.seed = seed;
  return sp;
}

/* Opens a set or reports the failure under name. */
static int open_set(const char *name, synth_set *s, const synth_spec *sp) {
  char err[1024];
  if (synth_open(s, sp, err, sizeof err) != 0) {
    failf(name, "synth_open: %s", err);
    return -1;
  }
  return 0;
}

/* Mass (sum over channels of value + 1, i.e. brightness above the black background) and its centre for frame t. */
static double frame_mass(const float *clip, const synth_spec *sp, int t, double *cx, double *cy) {
  size_t plane = (size_t)sp->height * sp->width;
  double m = 0, mx = 0, my = 0;
  for (int y = 0; y < sp->height; y++)
    for (int x = 0; x < sp->width; x++) {
      double w = 0;
      for (int c = 0; c < sp->channels; c++)
        w += clip[((size_t)c * sp->frames + t) * plane + (size_t)y * sp->width + x] + 1.0;
      m += w;
      mx += w * (x + 0.5);
      my += w * (y + 0.5);
    }
  if (cx) *cx = m > 0 ? mx / m : 0;
  if (cy) *cy = m > 0 ? my / m : 0;
  return m;
}

/* ---- Fashion-MNIST read here, independently of the library ------------------------------------ */

static char fashion_dir[1024];

/* Reads `count` bytes at `offset` of the decompressed IDX file base(.gz) into buf. Returns 0 or -1. */
static int read_idx_bytes(const char *base, long offset, void *buf, size_t count) {
  char path[1200];
  snprintf(path, sizeof path, "%s/%s.gz", fashion_dir, base);
  gzFile f = gzopen(path, "rb");
  if (!f) {
    snprintf(path, sizeof path, "%s/%s", fashion_dir, base);
    f = gzopen(path, "rb");
  }
  if (!f) return -1;
  int ok = gzseek(f, offset, SEEK_SET) == offset && gzread(f, buf, (unsigned)count) == (int)count;
  gzclose(f);
  return ok ? 0 : -1;
}

/* Sum of the bytes of image i of the train split and its label, straight from the files. */
static int idx_image_sum(long i, long *sum, int *label) {
  uint8_t pixels[28 * 28], lab;
  if (read_idx_bytes("train-images-idx3-ubyte", 16 + i * 784, pixels, sizeof pixels) ||
      read_idx_bytes("train-labels-idx1-ubyte", 8 + i, &lab, 1))
    return -1;
  *sum = 0;
  for (int k = 0; k < 784; k++) *sum += pixels[k];
  *label = lab;
  return 0;
}

/* ---- cases ------------------------------------------------------------------------------------ */

static void check_names(void) {
  const char *name = "kind_and_class_names";
  synth_set s;
  memset(&s, 0, sizeof s);
  s.spec.kind = SYNTH_SHAPES;
  if (synth_kind_from_name("shapes") != SYNTH_SHAPES || synth_kind_from_name("fashion") != SYNTH_FASHION ||
      synth_kind_from_name("Shapes") != -1 || synth_kind_from_name("") != -1 || synth_kind_from_name(NULL) != -1)
    failf(name, "synth_kind_from_name maps names wrongly");
  else if (strcmp(synth_kind_name(SYNTH_FASHION), "fashion") || synth_num_classes(&s) != 4 ||
           strcmp(synth_class_name(&s, SYNTH_TRIANGLE), "triangle") || strcmp(synth_class_name(&s, 4), "unknown"))
    failf(name, "shapes names or class count wrong");
  else {
    s.spec.kind = SYNTH_FASHION;
    if (synth_num_classes(&s) != 10 || strcmp(synth_class_name(&s, 9), "Ankle boot"))
      failf(name, "fashion class count or names wrong");
    else
      pass(name, NULL);
  }
}

/* synth_clip refuses a negative index, a NULL buffer and a closed set instead of crashing. */
static void check_bad_calls(void) {
  const char *name = "clip_refuses_bad_calls";
  synth_spec sp = make_spec(SYNTH_SHAPES, 2, 8, 1, 1);
  synth_set s;
  if (open_set(name, &s, &sp)) return;
  float clip[3 * 2 * 8 * 8];
  synth_object o;
  int r1 = synth_clip(&s, -1, clip, NULL), r2 = synth_clip(&s, 0, NULL, NULL), r3 = synth_clip_objects(&s, -5, &o);
  int r4 = synth_clip(&s, 0, clip, NULL);
  synth_close(&s);
  int r5 = synth_clip(&s, 0, clip, NULL), r6 = synth_clip_objects(&s, 0, &o);
  synth_close(&s); /* twice is fine */
  if (r1 != -1 || r2 != -1 || r3 != -1 || r4 != 0 || r5 != -1 || r6 != -1)
    failf(name, "returns %d %d %d %d %d %d, expected -1 -1 -1 0 -1 -1", r1, r2, r3, r4, r5, r6);
  else
    pass(name, NULL);
}

/* A bad spec: -1, one line, naming the field. */
static void expect_spec_error(const char *name, synth_spec sp, const char *needle) {
  synth_set s;
  char err[1024];
  memset(err, 'Z', sizeof err);
  int rc = synth_open(&s, &sp, err, sizeof err);
  size_t len = strnlen(err, sizeof err);
  if (rc != -1)
    failf(name, "synth_open returned %d, expected -1", rc);
  else if (len == 0 || len == sizeof err || strchr(err, '\n') || !strstr(err, needle))
    failf(name, "err is not one line naming '%s': %.200s", needle, err);
  else
    pass(name, "%s", err);
}

static void check_spec_errors(void) {
  synth_spec sp = make_spec(SYNTH_SHAPES, 8, 16, 1, 1);
  synth_spec bad = sp;
  bad.kind = 7;
  expect_spec_error("spec_error_kind", bad, "kind");
  bad = sp;
  bad.channels = 2;
  expect_spec_error("spec_error_channels", bad, "channels");
  bad = sp;
  bad.frames = 0;
  expect_spec_error("spec_error_frames", bad, "frames");
  bad = sp;
  bad.objects = SYNTH_MAX_OBJECTS + 1;
  expect_spec_error("spec_error_objects", bad, "objects");
  bad = sp;
  bad.height = 4;
  expect_spec_error("spec_error_size", bad, "height");
  bad = sp;
  bad.object_size = 15;
  expect_spec_error("spec_error_object_size", bad, "object_size");
  bad = sp;
  bad.speed_min = 2;
  bad.speed_max = 1;
  expect_spec_error("spec_error_speed", bad, "speed");
  bad = sp;
  bad.kind = SYNTH_FASHION;
  bad.object_size = 16; /* 16 + 1 > 16 */
  expect_spec_error("spec_error_garment_size", bad, "garment size");
}

/* Same index twice, a second set, reverse order and parallel generation all give identical clips; another seed
 * and another index give different ones. */
static void check_determinism(int kind) {
  char name[64];
  snprintf(name, sizeof name, "determinism_%s", synth_kind_name(kind));
  synth_spec sp = make_spec(kind, 8, 32, 3, 42);
  synth_set a, b, c;
  if (open_set(name, &a, &sp)) return;
  if (open_set(name, &b, &sp)) {
    synth_close(&a);
    return;
  }
  synth_spec other = sp;
  other.seed = 43;
  if (open_set(name, &c, &other)) {
    synth_close(&a);
    synth_close(&b);
    return;
  }
  const int N = 32;
  size_t n = synth_clip_floats(&a);
  float *forward = malloc(sizeof(float) * n * N), *backward = malloc(sizeof(float) * n * N);
  float *parallel = malloc(sizeof(float) * n * N), *other_seed = malloc(sizeof(float) * n);
  int labels_f[32], labels_p[32], fails = 0;
  for (int i = 0; i < N; i++) fails += synth_clip(&a, i, forward + (size_t)i * n, &labels_f[i]) != 0;
  for (int i = N - 1; i >= 0; i--) fails += synth_clip(&b, i, backward + (size_t)i * n, NULL) != 0;
#pragma omp parallel for schedule(dynamic) reduction(+ : fails)
  for (int i = 0; i < N; i++) fails += synth_clip(&a, i, parallel + (size_t)i * n, &labels_p[i]) != 0;
  int again_label = -1;
  float *again = malloc(sizeof(float) * n);
  fails += synth_clip(&a, 5, again, &again_label) != 0;
  fails += synth_clip(&c, 5, other_seed, NULL) != 0;
  if (fails)
    failf(name, "%d synth_clip calls failed", fails);
  else if (memcmp(again, forward + 5 * n, sizeof(float) * n) || again_label != labels_f[5])
    failf(name, "clip 5 differs between two calls");
  else if (memcmp(forward, backward, sizeof(float) * n * N))
    failf(name, "a second set generating in reverse order differs");
  else if (memcmp(forward, parallel, sizeof(float) * n * N) || memcmp(labels_f, labels_p, sizeof labels_f))
    failf(name, "generating on several threads differs");
  else if (!memcmp(other_seed, forward + 5 * n, sizeof(float) * n))
    failf(name, "seed 43 gives the same clip 5 as seed 42");
  else if (!memcmp(forward, forward + n, sizeof(float) * n))
    failf(name, "clips 0 and 1 are identical");
  else
    pass(name, NULL);
  /* object j is the same whatever the object count */
  synth_spec one = sp;
  one.objects = 1;
  synth_set d;
  if (open_set(name, &d, &one) == 0) {
    synth_object three_objects[3], one_object[1];
    synth_clip_objects(&a, 9, three_objects);
    synth_clip_objects(&d, 9, one_object);
    char name2[80];
    snprintf(name2, sizeof name2, "object_0_independent_of_count_%s", synth_kind_name(kind));
    if (memcmp(&three_objects[0], &one_object[0], sizeof one_object[0]))
      failf(name2, "object 0 of clip 9 changes with the object count");
    else
      pass(name2, NULL);
    synth_close(&d);
  }
  free(forward);
  free(backward);
  free(parallel);
  free(other_seed);
  free(again);
  synth_close(&a);
  synth_close(&b);
  synth_close(&c);
}

/* Every value finite and in [-1, 1]; the background (-1) and bright objects both occur. */
static void check_range(const synth_set *s, const char *name) {
  size_t n = synth_clip_floats(s);
  float *clip = malloc(sizeof(float) * n);
  float lo = INFINITY, hi = -INFINITY;
  long bad = 0;
  for (long i = 0; i < 200; i++) {
    synth_clip(s, i, clip, NULL);
    for (size_t k = 0; k < n; k++) {
      if (!(clip[k] >= -1.0f && clip[k] <= 1.0f)) bad++;
      if (clip[k] < lo) lo = clip[k];
      if (clip[k] > hi) hi = clip[k];
    }
  }
  free(clip);
  if (bad)
    failf(name, "%ld values outside [-1, 1] or not finite", bad);
  else if (lo != -1.0f || hi < 0.5f)
    failf(name, "range [%g, %g]: expected the background at -1 and objects above 0.5", lo, hi);
  else
    pass(name, "200 clips, values in [%g, %g]", lo, hi);
}

/* Shapes: the label is object 0's kind, and the rendered area (mass / colour) of a single object is the area of
 * that kind for its size (square 4r^2, disc pi r^2, triangle 2r^2, cross 2.56r^2) and nearer to it than to any
 * other kind's area. */
static void check_shape_labels(void) {
  const char *name = "shapes_label_is_the_drawn_shape";
  synth_spec sp = make_spec(SYNTH_SHAPES, 2, 32, 1, 7);
  synth_set s;
  if (open_set(name, &s, &sp)) return;
  size_t n = synth_clip_floats(&s);
  float *clip = malloc(sizeof(float) * n);
  const double area_factor[4] = {4.0, 3.14159265358979, 2.0, 2.56};
  int seen[4] = {0}, ok = 1;
  double worst = 0;
  for (long i = 0; i < 400 && ok; i++) {
    synth_object o;
    int label;
    synth_clip(&s, i, clip, &label);
    synth_clip_objects(&s, i, &o);
    double mass = frame_mass(clip, &sp, 0, NULL, NULL);
    double per_area = (o.color[0] + 1.0) + (o.color[1] + 1.0) + (o.color[2] + 1.0);
    double r = o.size / 2.0, area = mass / per_area;
    if (label != o.kind) {
      failf(name, "clip %ld: label %d, object 0 is kind %d", i, label, o.kind);
      ok = 0;
      break;
    }
    int nearest = 0;
    for (int k = 1; k < 4; k++)
      if (fabs(area - area_factor[k] * r * r) < fabs(area - area_factor[nearest] * r * r)) nearest = k;
    double rel = fabs(area / (area_factor[label] * r * r) - 1);
    if (rel > worst) worst = rel;
    if (nearest != label || rel > 0.05) {
      failf(name, "clip %ld: label %s but the drawn area %.2f (r %.2f) looks like %s (off by %.1f%%)", i,
            synth_class_name(&s, label), area, r, synth_class_name(&s, nearest), 100 * rel);
      ok = 0;
    }
    seen[label]++;
  }
  if (ok) {
    if (!seen[0] || !seen[1] || !seen[2] || !seen[3])
      failf(name, "not every shape occurs in 400 clips: %d %d %d %d", seen[0], seen[1], seen[2], seen[3]);
    else
      pass(name, "400 clips, drawn area within %.1f%% of the labelled shape's", 100 * worst);
  }
  /* several objects: the label is still object 0's kind */
  synth_spec multi = make_spec(SYNTH_SHAPES, 2, 32, 4, 7);
  synth_set m;
  if (open_set(name, &m, &multi) == 0) {
    int wrong = 0;
    for (long i = 0; i < 200; i++) {
      synth_object objs[4];
      int label;
      float *big = malloc(sizeof(float) * synth_clip_floats(&m));
      synth_clip(&m, i, big, &label);
      synth_clip_objects(&m, i, objs);
      wrong += label != objs[0].kind;
      free(big);
    }
    if (wrong)
      failf("shapes_label_with_4_objects", "%d of 200 labels are not object 0's kind", wrong);
    else
      pass("shapes_label_with_4_objects", NULL);
    synth_close(&m);
  }
  free(clip);
  synth_close(&s);
}

/* Several objects: object 0 (the label) is drawn last, so every pixel it fully covers shows exactly its colour.
 * Checked where that is easy to know: squares, discs and the central square of crosses. */
static void check_label_object_on_top(void) {
  const char *name = "shapes_labelled_object_drawn_on_top";
  synth_spec sp = make_spec(SYNTH_SHAPES, 8, 32, 6, 21);
  synth_set s;
  if (open_set(name, &s, &sp)) return;
  size_t n = synth_clip_floats(&s), plane = 32 * 32;
  float *clip = malloc(sizeof(float) * n);
  long checked = 0, wrong = 0, hidden_others = 0;
  for (long i = 0; i < 200; i++) {
    synth_object objs[6];
    synth_clip(&s, i, clip, NULL);
    synth_clip_objects(&s, i, objs);
    const synth_object *o = &objs[0];
    if (o->kind == SYNTH_TRIANGLE) continue;
    float r = o->size / 2.0f, half = o->kind == SYNTH_CROSS ? 0.4f * r : r;
    for (int t = 0; t < sp.frames; t++) {
      double cx, cy;
      synth_object_center(o, t, &cx, &cy);
      for (int y = 0; y < 32; y++)
        for (int x = 0; x < 32; x++) {
          double dx = x + 0.5 - cx, dy = y + 0.5 - cy;
          int full =
              o->kind == SYNTH_DISC ? hypot(dx, dy) + 0.75 <= r : fabs(dx) + 0.5 <= half && fabs(dy) + 0.5 <= half;
          if (!full) continue;
          checked++;
          for (int c = 0; c < 3; c++)
            wrong += fabsf(clip[((size_t)c * sp.frames + t) * plane + (size_t)y * 32 + x] - o->color[c]) > 1e-6f;
          /* does another object overlap here? then the check above is a real occlusion test */
          for (int j = 1; j < 6; j++) {
            double ox, oy;
            synth_object_center(&objs[j], t, &ox, &oy);
            if (fabs(x + 0.5 - ox) < objs[j].size / 2 && fabs(y + 0.5 - oy) < objs[j].size / 2) {
              hidden_others++;
              break;
            }
          }
        }
    }
  }
  if (wrong || checked == 0 || hidden_others < 100)
    failf(name, "%ld of %ld fully covered pixel values differ from object 0's colour (%ld overlapped by others)", wrong,
          3 * checked, hidden_others);
  else
    pass(name, "%ld pixels, %ld of them overlapping other objects", checked, hidden_others);
  free(clip);
  synth_close(&s);
}

/* Single-object clips: consecutive frames differ; the mass centre follows the generative centre (up to the
 * constant offset of the shape's own centroid), and between frames with no bounce it moves by (+-vx, +-vy). Over
 * 64 frames the object bounces and its mass stays constant (it never leaves the frame). */
static void check_motion(int kind, int side, double com_tol, double mass_tol) {
  char name[80], name2[80];
  snprintf(name, sizeof name, "motion_%s_%dx%d", synth_kind_name(kind), side, side);
  snprintf(name2, sizeof name2, "bounce_stays_inside_64_frames_%s_%dx%d", synth_kind_name(kind), side, side);
  synth_spec sp = make_spec(kind, 64, side, 1, 11);
  sp.speed_min = 0.06f * side; /* fast, so every clip bounces within 64 frames */
  sp.speed_max = 0.10f * side;
  synth_set s;
  if (open_set(name, &s, &sp)) return;
  size_t n = synth_clip_floats(&s), plane = (size_t)side * side;
  float *clip = malloc(sizeof(float) * n);
  double worst_com = 0, worst_step = 0, worst_mass = 0;
  long steps_checked = 0, bounces = 0, static_pairs = 0;
  int inside = 1;
  for (long i = 0; i < 40; i++) {
    synth_object o;
    synth_clip(&s, i, clip, NULL);
    synth_clip_objects(&s, i, &o);
    double m0, x0, y0, px = 0, py = 0, pcx = 0, pcy = 0;
    m0 = frame_mass(clip, &sp, 0, &x0, &y0);
    double ox, oy; /* offset of the mass centre from the generative centre, from frame 0 */
    synth_object_center(&o, 0, &ox, &oy);
    ox = x0 - ox;
    oy = y0 - oy;
    for (int t = 0; t < sp.frames; t++) {
      double cx, cy, mx, my, m = frame_mass(clip, &sp, t, &mx, &my);
      synth_object_center(&o, t, &cx, &cy);
      if (cx < o.x_lo - 1e-9 || cx > o.x_hi + 1e-9 || cy < o.y_lo - 1e-9 || cy > o.y_hi + 1e-9) inside = 0;
      double dm = fabs(m / m0 - 1), dc = hypot(mx - ox - cx, my - oy - cy);
      if (dm > worst_mass) worst_mass = dm;
      if (dc > worst_com) worst_com = dc;
      if (t > 0) {
        double diff = 0;
        for (int c = 0; c < sp.channels; c++)
          for (size_t k = 0; k < plane; k++)
            diff +=
                fabs(clip[((size_t)c * sp.frames + t) * plane + k] - clip[((size_t)c * sp.frames + t - 1) * plane + k]);
        static_pairs += diff == 0;
        /* between reflections the generative centre moves by (+-vx, +-vy) */
        double sx = cx - pcx, sy = cy - pcy;
        int no_bounce = fabs(fabs(sx) - fabs(o.vx)) < 1e-9 && fabs(fabs(sy) - fabs(o.vy)) < 1e-9;
        if (no_bounce) {
          double e = hypot(mx - px - sx, my - py - sy);
          if (e > worst_step) worst_step = e;
          steps_checked++;
        } else {
          bounces++;
        }
      }
      px = mx;
      py = my;
      pcx = cx;
      pcy = cy;
    }
  }
  if (static_pairs)
    failf(name, "%ld pairs of consecutive frames are identical although the object moves", static_pairs);
  else if (worst_com > com_tol || worst_step > 2 * com_tol || steps_checked < 1000)
    failf(name,
          "mass centre off the generative centre by up to %.3f px, per-frame step off (vx, vy) by %.3f px "
          "(tolerance %.3f / %.3f, %ld steps)",
          worst_com, worst_step, com_tol, 2 * com_tol, steps_checked);
  else
    pass(name, "40 clips x 64 frames: centre within %.3f px, steps within %.3f px of (vx, vy) on %ld steps", worst_com,
         worst_step, steps_checked);
  if (!inside || bounces < 40 || worst_mass > mass_tol)
    failf(name2, "inside bounds %d, %ld bounces (want >= 40), mass varies by %.3f%% (tolerance %.3f%%)", inside,
          bounces, 100 * worst_mass, 100 * mass_tol);
  else
    pass(name2, "%ld bounces, mass constant within %.3f%%", bounces, 100 * worst_mass);
  free(clip);
  synth_close(&s);
}

/* The first garment of the loaded set is byte for byte the first image of the IDX file, read here. */
static void check_fashion_first_image(const synth_set *s) {
  const char *name = "fashion_first_image_matches_idx_file";
  long want_sum;
  int want_label, label = -1;
  if (idx_image_sum(0, &want_sum, &want_label)) {
    failf(name, "cannot read the IDX files under %s", fashion_dir);
    return;
  }
  const uint8_t *img = synth_fashion_image(s, 0, &label);
  long sum = 0;
  for (int k = 0; img && k < 784; k++) sum += img[k];
  if (!img || sum != want_sum || label != want_label)
    failf(name, "image 0: sum %ld label %d, the file says sum %ld label %d", sum, label, want_sum, want_label);
  else if (s->fashion_count != 60000 || synth_fashion_image(s, 60000, NULL) || synth_fashion_image(s, -1, NULL))
    failf(name, "%ld images loaded (expected 60000) or out-of-range images not refused", s->fashion_count);
  else
    pass(name, "pixel sum %ld, label %d (%s), 60000 images", sum, label, synth_class_name(s, label));
}

/* Single garments: the label is the IDX file's label of the image drawn, and per channel the rendered mass is
 * tint * (image sum / 255) * (S / 28)^2 in every frame (area averaging and bilinear shifts keep mass). */
static void check_fashion_render(int side) {
  char name[80];
  snprintf(name, sizeof name, "fashion_garment_mass_and_label_%dx%d", side, side);
  synth_spec sp = make_spec(SYNTH_FASHION, 16, side, 1, 5);
  synth_set s;
  if (open_set(name, &s, &sp)) return;
  size_t n = synth_clip_floats(&s), plane = (size_t)side * side;
  float *clip = malloc(sizeof(float) * n);
  double worst = 0, S = s.spec.object_size;
  int ok = 1;
  for (long i = 0; i < 12 && ok; i++) {
    synth_object o;
    int label, file_label;
    long image_sum;
    synth_clip(&s, i, clip, &label);
    synth_clip_objects(&s, i, &o);
    if (idx_image_sum(o.image, &image_sum, &file_label)) {
      failf(name, "cannot read image %ld from the IDX files", o.image);
      ok = 0;
      break;
    }
    if (label != o.kind || label != file_label) {
      failf(name, "clip %ld: label %d, object kind %d, the file labels image %ld as %d", i, label, o.kind, o.image,
            file_label);
      ok = 0;
      break;
    }
    for (int t = 0; t < sp.frames; t++)
      for (int c = 0; c < 3; c++) {
        double m = 0;
        for (size_t k = 0; k < plane; k++) m += clip[((size_t)c * sp.frames + t) * plane + k] + 1.0;
        double want = (o.color[c] + 1.0) * image_sum / 255.0 * (S / 28.0) * (S / 28.0);
        double rel = fabs(m / want - 1);
        if (rel > worst) worst = rel;
      }
  }
  if (ok) {
    if (worst > 1e-4)
      failf(name, "channel mass off tint * image sum * (S/28)^2 by %.2e (S = %g)", worst, S);
    else
      pass(name, "S = %g, 12 clips x 16 frames, mass within %.1e of the IDX image's", S, worst);
  }
  free(clip);
  synth_close(&s);
}

/* 1000 clips: each class count within 3 sigma of uniform. */
static void check_balance(const synth_set *s, const char *name) {
  int k = synth_num_classes(s), counts[16] = {0};
  const int N = 1000;
  float *clip = malloc(sizeof(float) * synth_clip_floats(s));
  for (long i = 0; i < N; i++) {
    int label = -1;
    synth_clip(s, i, clip, &label);
    if (label >= 0 && label < k) counts[label]++;
  }
  free(clip);
  double p = 1.0 / k, mean = N * p, sigma = sqrt(N * p * (1 - p));
  char text[256] = "";
  int bad = 0;
  for (int c = 0; c < k; c++) {
    size_t used = strlen(text);
    snprintf(text + used, sizeof text - used, "%s%d", c ? " " : "", counts[c]);
    if (fabs(counts[c] - mean) > 3 * sigma) bad++;
  }
  if (bad)
    failf(name, "counts %s: %d classes beyond 3 sigma (%.1f) of %.0f", text, bad, 3 * sigma, mean);
  else
    pass(name, "counts %s, 3 sigma = %.1f around %.0f", text, 3 * sigma, mean);
}

static void check_missing_files(void) {
  const char *name = "fashion_missing_folder_names_path_and_package";
  synth_spec sp = make_spec(SYNTH_FASHION, 4, 32, 1, 1);
  sp.fashion_dir = "/nonexistent/tpdiff-fashion";
  synth_set s;
  char err[1024];
  int rc = synth_open(&s, &sp, err, sizeof err);
  if (rc != -1 || !strstr(err, "/nonexistent/tpdiff-fashion/train-images-idx3-ubyte.gz") ||
      !strstr(err, "dataset-fashion-mnist") || strchr(err, '\n'))
    failf(name, "rc %d, err: %s", rc, err);
  else
    pass(name, "%s", err);

  /* the same through the environment variable */
  name = "fashion_missing_folder_via_environment";
  const char *old = getenv("TPDIFF_FASHION_MNIST_DIR");
  char saved[1024] = "";
  if (old) snprintf(saved, sizeof saved, "%s", old);
  setenv("TPDIFF_FASHION_MNIST_DIR", "/nonexistent/from-env", 1);
  sp.fashion_dir = NULL;
  rc = synth_open(&s, &sp, err, sizeof err);
  if (old)
    setenv("TPDIFF_FASHION_MNIST_DIR", saved, 1);
  else
    unsetenv("TPDIFF_FASHION_MNIST_DIR");
  if (rc != -1 || !strstr(err, "/nonexistent/from-env/train-images-idx3-ubyte.gz"))
    failf(name, "rc %d, err: %s", rc, err);
  else
    pass(name, NULL);
}

/* Broken files: a truncated image file and a label file with the wrong magic, each named in the error. */
static void check_broken_files(void) {
  const char *tmpdir = getenv("TMPDIR");
  char dir[512], path[700], err[1024];
  snprintf(dir, sizeof dir, "%s/tpdiff_test_synth_XXXXXX", tmpdir && tmpdir[0] ? tmpdir : "/tmp");
  if (!mkdtemp(dir)) {
    failf("fashion_broken_files", "cannot create a temporary folder");
    return;
  }
  const unsigned char image_header[16] = {0, 0, 8, 3, 0, 0, 0, 10, 0, 0, 0, 28, 0, 0, 0, 28};
  const unsigned char bad_labels[8 + 10] = {0, 0, 8, 3, 0, 0, 0, 10};
  unsigned char pixels[784 * 10];
  memset(pixels, 7, sizeof pixels);
  synth_spec sp = make_spec(SYNTH_FASHION, 4, 32, 1, 1);
  sp.fashion_dir = dir;
  synth_set s;

  /* 1: images truncated (10 announced, 3 present), stored plain (not gzipped) */
  snprintf(path, sizeof path, "%s/train-images-idx3-ubyte", dir);
  FILE *f = fopen(path, "wb");
  fwrite(image_header, 1, 16, f);
  fwrite(pixels, 1, 784 * 3, f);
  fclose(f);
  snprintf(path, sizeof path, "%s/train-labels-idx1-ubyte", dir);
  f = fopen(path, "wb");
  fwrite(bad_labels, 1, sizeof bad_labels, f);
  fclose(f);
  int rc = synth_open(&s, &sp, err, sizeof err);
  snprintf(path, sizeof path, "%s/train-images-idx3-ubyte", dir);
  if (rc != -1 || !strstr(err, path) || !strstr(err, "truncated"))
    failf("fashion_truncated_images", "rc %d, err: %s", rc, err);
  else
    pass("fashion_truncated_images", "%s", err);

  /* 2: images complete (gzipped this time), labels with the image magic */
  unlink(path);
  snprintf(path, sizeof path, "%s/train-images-idx3-ubyte.gz", dir);
  gzFile g = gzopen(path, "wb");
  gzwrite(g, image_header, 16);
  gzwrite(g, pixels, sizeof pixels);
  gzclose(g);
  rc = synth_open(&s, &sp, err, sizeof err);
  snprintf(path, sizeof path, "%s/train-labels-idx1-ubyte", dir);
  if (rc != -1 || !strstr(err, path) || !strstr(err, "magic"))
    failf("fashion_wrong_label_magic", "rc %d, err: %s", rc, err);
  else
    pass("fashion_wrong_label_magic", "%s", err);

  /* 3: good labels, but only classes 0..4: a class without images */
  unsigned char labels[8 + 10] = {0, 0, 8, 1, 0, 0, 0, 10, 0, 1, 2, 3, 4, 0, 1, 2, 3, 4};
  f = fopen(path, "wb");
  fwrite(labels, 1, sizeof labels, f);
  fclose(f);
  rc = synth_open(&s, &sp, err, sizeof err);
  if (rc != -1 || !strstr(err, path) || !strstr(err, "class 5"))
    failf("fashion_missing_class", "rc %d, err: %s", rc, err);
  else
    pass("fashion_missing_class", "%s", err);

  /* 4: all ten classes: loads, and clips come from these images */
  for (int i = 0; i < 10; i++) labels[8 + i] = (unsigned char)i;
  f = fopen(path, "wb");
  fwrite(labels, 1, sizeof labels, f);
  fclose(f);
  rc = synth_open(&s, &sp, err, sizeof err);
  if (rc != 0 || s.fashion_count != 10)
    failf("fashion_small_custom_folder_loads", "rc %d, err: %s", rc, rc ? err : "");
  else
    pass("fashion_small_custom_folder_loads", NULL);
  if (rc == 0) synth_close(&s);
  unlink(path);
  snprintf(path, sizeof path, "%s/train-images-idx3-ubyte.gz", dir);
  unlink(path);
  rmdir(dir);
}

int main(void) {
  const char *env = getenv("TPDIFF_FASHION_MNIST_DIR");
  snprintf(fashion_dir, sizeof fashion_dir, "%s", env && env[0] ? env : SYNTH_FASHION_DEFAULT_DIR);

  check_names();
  check_spec_errors();
  check_bad_calls();
  check_determinism(SYNTH_SHAPES);
  check_determinism(SYNTH_FASHION);

  synth_spec shapes_spec = make_spec(SYNTH_SHAPES, 8, 32, 3, 3);
  synth_set shapes;
  if (open_set("shapes_set", &shapes, &shapes_spec) == 0) {
    check_range(&shapes, "shapes_values_in_range");
    check_balance(&shapes, "shapes_class_balance_1000_clips");
    synth_close(&shapes);
  }
  check_shape_labels();
  check_label_object_on_top();
  check_motion(SYNTH_SHAPES, 32, 0.12, 0.01);
  check_motion(SYNTH_SHAPES, 16, 0.12, 0.02);

  synth_spec fashion_spec = make_spec(SYNTH_FASHION, 8, 32, 2, 3);
  synth_set fashion;
  if (open_set("fashion_set", &fashion, &fashion_spec) == 0) {
    check_fashion_first_image(&fashion);
    check_range(&fashion, "fashion_values_in_range");
    check_balance(&fashion, "fashion_class_balance_1000_clips");
    synth_close(&fashion);
  }
  check_fashion_render(32);
  check_fashion_render(64);
  check_motion(SYNTH_FASHION, 64, 1e-3, 1e-4);
  check_missing_files();
  check_broken_files();

  test_summary("test_synth", NULL);
  return test_exit_code();
}
