/* check_model.h — what the files of check_model share (check_model.c: globals, helpers, configs,
 * the per-stage and recompute checks, main; check_model_train.c: training steps GPU against CPU and
 * bf16's weight copy; check_model_timing.c: the base workload's timing and the memory plans). */
#ifndef TPDIFF_CHECK_MODEL_H
#define TPDIFF_CHECK_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/backend.h"
#include "model/dit.h"
#include "model/pyramid.h"
#include "trainer/trainer.h"

extern const tpdiff_backend *dev; /* the backend under test */
extern const tpdiff_backend *ref; /* the CPU backend */
extern int passed, failed;
extern double peak_tflops; /* --peak-tflops; else 67 (fp32) or 989 (bf16) */
extern int bf16;           /* --bf16 */

double now_s(void);
void count(int ok);
/* Prints the timing table and the summary line, and exits (1 when any check failed). */
void finish(void);
/* A failure of the device itself: reports it and stops. */
void device_fail(const char *what);
/* Synchronizes and reads the device's error state; stops on an error. */
void device_ok(const char *what);
void *host_alloc(size_t bytes);
/* Every float of a device buffer becomes NaN. */
void poison(float *d, size_t n);
/* Normwise relative error max|got - want| / max|want|; non-finite `got` gives +Inf. */
double max_rel_err(const float *got, const float *want, size_t n);
/* ||got - want||_2 / ||want||_2; non-finite gives +Inf. */
double l2_rel_err(const float *got, const float *want, size_t n);
double scalar_rel_err(double got, double want);

/* configs built in code (check_model.c) */
void config_base_fields(tpdiff_config *c, const char *name);
void config_tiny(tpdiff_config *c);
void config_base(tpdiff_config *c, int stages, int clips);
dit_shape shape_of(const tpdiff_config *c);
/* FLOPs of forward + backward of B clips at stage k (the MFU convention of the timing table). */
double step_flops(const dit_model *m, int stage, int B);

/* check_model_train.c */
/* Poisons every device buffer of a trainer that a step must write before reading. */
void poison_trainer(trainer *tr);
void check_training(int steps);
void check_bf16_weights_copy(int steps);

/* check_model_timing.c */
void print_timing_table(void);
void time_base(int stages, int clips, dit_recompute recompute, const char *env);
void plan_large(void);

#endif
