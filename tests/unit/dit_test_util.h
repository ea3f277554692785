/* dit_test_util.h — for tests that fill a model's flat buffers with arbitrary values: the registry
 * leaves alignment gaps between tensors (model/dit_params.c), which hold no parameter, are never
 * saved, and must stay zero (they are summed into the gradient norm); a round trip brings them back
 * as zeros, so a test that scrambles a whole buffer zeroes them first. Header-only (static inline):
 * the Makefile builds every .c file of tests/unit into a program of its own. */
#ifndef TPDIFF_DIT_TEST_UTIL_H
#define TPDIFF_DIT_TEST_UTIL_H

#include <string.h>

#include "model/dit.h"

/* Zeroes every float of host[num_floats] that no registry tensor covers. */
static inline void dit_test_zero_gaps(const dit_model *m, float *host) {
  size_t at = 0;
  for (int i = 0; i < m->num_params; i++) {
    const dit_param *p = &m->params[i];
    if (p->offset > at) memset(host + at, 0, (p->offset - at) * sizeof(float));
    if (p->offset + p->numel > at) at = p->offset + p->numel;
  }
  if (m->num_floats > at) memset(host + at, 0, (m->num_floats - at) * sizeof(float));
}

#endif
