/* prep_inputs.h — tpdiff-prep's list of input videos: the files named on the command line, those found
 * below the folders named, and their labels, from a CSV file of path,label lines or from the
 * sub-folder a file is in (class names numbered in sorted order). */
#ifndef TPDIFF_PREP_INPUTS_H
#define TPDIFF_PREP_INPUTS_H

#include <stddef.h>

typedef struct {
  char *path;       /* as found: the argument, or folder/sub/.../name */
  char *label_name; /* class name (folders or CSV names), or NULL */
  int label;        /* -1 until known */
  char *problem;    /* a per-file problem found while listing (e.g. no label), or NULL */
} prep_file;

typedef struct {
  prep_file *v;
  int count, cap;
} prep_file_list;

typedef struct {
  char *resolved; /* realpath of the video (or the joined path when it does not exist) */
  char *path;     /* as resolved against the CSV folder */
  char *label;
} prep_csv_row;

/* Parses a whole decimal long in [lo, hi] into out; 0 on success, -1 (out untouched) otherwise. */
int prep_parse_long(const char *s, long lo, long hi, long *out);

/* Appends a copy of path with label -1 and no class or problem; 0, or -1 when out of memory. */
int prep_list_add(prep_file_list *l, const char *path);

/* Appends the video files below folder (by file extension; sorted by name at every level, hidden
 * entries skipped). With want_classes a file's class name is the first sub-folder below folder; a file
 * directly in folder gets a problem instead. 0, or -1 with a message in err. */
int prep_list_folder(prep_file_list *l, const char *folder, int want_classes, char *err, size_t err_size);

/* The class of a file named on its own: the name of the folder it is in (resolved, so "." and ".."
 * give real names). malloc'ed; NULL when out of memory. */
char *prep_folder_class(const char *file);

/* Reads the path,label lines of csv (the label after the last comma; an optional header "path,label"
 * or "path,class"; relative paths from the CSV's folder) into malloc'ed rows. 0, or -1 with a message
 * in err; the rows read so far are returned either way. */
int prep_read_csv(const char *csv, prep_csv_row **rows_out, int *count_out, char *err, size_t err_size);

/* Labels every file of l from the rows of csv (matched by real path): the integer itself when every
 * label is an integer, else a class name for prep_number_classes; a problem for a file without a row. */
void prep_label_from_csv(prep_file_list *l, const prep_csv_row *rows, int n_rows, const char *csv);

/* Numbers the class names of the files (sorted, unique) into their labels; names_out (malloc'ed, the
 * strings are the files') and count_out list them in order. 0, or -1 when out of memory. */
int prep_number_classes(prep_file_list *l, char ***names_out, int *count_out);

#endif
