/* test_dit_labels.c — the DiT's label contract (model/dit.h): a class-conditional forward without
 * labels is the forward with every clip at the null class `classes` (what guidance's unconditional
 * branch and label-less callers rely on), an unconditional model ignores labels, and a label
 * changes the output of a conditional model (so the check above can fail). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/backend.h"
#include "kernels/kernels.h"
#include "model/dit.h"
#include "tests/unit/test_report.h"

/* Runs one forward of a tiny model and copies the output to out (n floats). */
static int forward(const dit_model *m, dit_acts *a, const float *x, const float *t, const int *y, int B, float *out,
                   size_t n) {
  const float *pred = dit_forward(m, a, x, t, y, m->shape.stages - 1, B);
  if (!pred) return -1;
  memcpy(out, pred, n * sizeof(float));
  return 0;
}

static void run(int classes) {
  dit_shape s = {.depth = 1, .dim = 32, .heads = 2, .patch = 2, .classes = classes, .channels = 3, .frames = 4,
                 .height = 8, .width = 8, .stages = 2};
  char err[256], name[128];
  dit_model m;
  if (dit_create(&m, &s, tpdiff_cpu_backend(), err, sizeof err) != 0 || dit_init_random(&m, 5) != 0) {
    failf("tiny model", "%s", err);
    return;
  }
  int B = 3, max_clips[2] = {B, B};
  dit_acts *a = dit_acts_create(&m, max_clips, DIT_RECOMPUTE_NONE, err, sizeof err);
  size_t n = (size_t)B * 3 * 4 * 8 * 8;
  float *x = malloc(n * 4), *none = malloc(n * 4), *nulls = malloc(n * 4), *labelled = malloc(n * 4), t[3] = {0.2f, 0.5f, 0.9f};
  int null_labels[3] = {classes, classes, classes}, labels[3] = {0, 1, classes > 2 ? 2 : 0};
  k_fill_normal(x, n, 9, 1, 0);
  int ok = a && forward(&m, a, x, t, NULL, B, none, n) == 0 && forward(&m, a, x, t, null_labels, B, nulls, n) == 0 &&
           forward(&m, a, x, t, labels, B, labelled, n) == 0;
  if (classes > 0) {
    snprintf(name, sizeof name, "classes=%d: no labels == every clip at the null class (bit for bit)", classes);
    check(name, ok && memcmp(none, nulls, n * 4) == 0, NULL);
    snprintf(name, sizeof name, "classes=%d: real labels change the output", classes);
    check(name, ok && memcmp(none, labelled, n * 4) != 0, NULL);
  } else {
    check("unconditional model ignores labels (bit for bit)", ok && memcmp(none, labelled, n * 4) == 0, NULL);
  }
  free(x);
  free(none);
  free(nulls);
  free(labelled);
  dit_acts_destroy(a);
  dit_destroy(&m);
}

int main(void) {
  run(0);
  run(5);
  test_summary("test_dit_labels", NULL);
  return test_exit_code();
}
