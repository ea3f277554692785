/* make_dirs.h — `mkdir -p` for the output folders of the command-line tools. */
#ifndef TPDIFF_MAKE_DIRS_H
#define TPDIFF_MAKE_DIRS_H

#include <stddef.h>

/* Creates path and every missing parent (0755). 0, or -1 with one line in err: "<what>: cannot
 * create <the folder that failed>: <reason>" (what names the setting, e.g. "train.out" or "--out"). */
int make_dirs(const char *path, const char *what, char *err, size_t err_size);

#endif
