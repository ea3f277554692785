/* prep_ranks.h — tpdiff-prep as several processes (mpirun -np N, srun) without an MPI library: the
 * rank and world size from the launcher's environment, the job's id, the completion markers each rank
 * leaves in the output folder (DIR/.prep-rank-RRRR.done or .failed), and rank 0's wait for them
 * before it writes index.json. The protocol is described in prep_main.c's first comment. */
#ifndef TPDIFF_PREP_RANKS_H
#define TPDIFF_PREP_RANKS_H

#include <stddef.h>

/* Size of tpdiff-prep's error buffers: a .failed marker carries one such line. */
#define PREP_ERR_SIZE 1536

/* rank and size from the launcher's environment (OMPI_COMM_WORLD_*, PMI_*, PMIX_RANK, SLURM_*); 0/1
 * without one. 0, or -1 with a message in err when the variables do not make a rank and size. */
int prep_find_rank(int *rank, int *size, char *err, size_t err_size);

/* The job's id, the same on every rank of one launch (PMIX_NAMESPACE, else OMPI_MCA_ess_base_jobid,
 * else SLURM_JOB_ID.SLURM_STEP_ID, else "none"); white space replaced by '_'. */
void prep_job_token(char *out, size_t size);

/* Writes text to path via path.tmp.PID, fsync and rename. 0, or -1 with a message in err. */
int prep_write_file_atomic(const char *path, const char *text, char *err, size_t err_size);

/* Removes this rank's markers left by an earlier job. */
void prep_remove_own_markers(const char *out, int rank);

/* This rank failed with the line error: its .failed marker for rank 0 (best effort, errors ignored). */
void prep_mark_failed(const char *out, int rank, const char *token, const char *error);

/* This rank is done: its .done marker lists its shards (names, clips per shard) for rank 0. 0, or -1
 * with a message in err; err is "" when out of memory. */
int prep_mark_done(const char *out, int rank, const char *token, char *const *names, const long *clips, int count,
                   char *err, size_t err_size);

/* Rank 0: waits (polling every 0.2 s, wait_s seconds at most) for the marker of this job of every other
 * rank of size, in rank order, and appends their shards to names/clips/count (realloc'ed). 0, or -1
 * with a message in err (a rank failed, or did not finish in time). */
int prep_gather_ranks(const char *out, int size, const char *token, double wait_s, char ***names, long **clips,
                      int *count, char *err, size_t err_size);

/* Rank 0, after index.json: removes the other ranks' .done markers. */
void prep_remove_done_markers(const char *out, int size);

#endif
