/* comm_internal.h — what the files of comm/ share, private to them: the timed wait on non-blocking MPI
 * requests that every collective goes through, and the monotonic clock. */
#ifndef TPDIFF_COMM_INTERNAL_H
#define TPDIFF_COMM_INTERNAL_H

#include <mpi.h>

#include "comm/comm.h"

/* Seconds on a monotonic clock. */
double comm_now(void);

/* Waits for all n requests; past c->timeout_s aborts the job naming the rank and `what`. */
void comm_wait(comm_world *c, MPI_Request *requests, int n, const char *what);

#endif
