/* config_yaml.c — reading a run configuration: YAML files (libyaml event API), --section.key=value
 * command-line overrides, and config_load, which applies both over the defaults and validates. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>

#include "trainer/config.h"
#include "trainer/config_internal.h"

#define COMMAND_LINE "command line"
#define MAX_NESTING 8 /* YAML collections inside each other */

/* ---- key names: lookups, and the lists an "unknown ..." message offers; the YAML reader and the
 * overrides share them ---- */

/* Index of the first key of the section named text[0..len), or -1. */
static int find_section(const char *text, size_t len) {
  for (int k = 0; k < KEY_COUNT; k++)
    if (strlen(cfg_keys[k].section) == len && memcmp(cfg_keys[k].section, text, len) == 0) return k;
  return -1;
}

/* Index of key text[0..len) in the section whose first key is section_first, or -1. */
static int find_key(int section_first, const char *text, size_t len) {
  for (int k = section_first; k < KEY_COUNT && cfg_same_section(k, section_first); k++)
    if (strlen(cfg_keys[k].key) == len && memcmp(cfg_keys[k].key, text, len) == 0) return k;
  return -1;
}

/* "model, data, ..." into buf; returns buf. */
static const char *known_sections(char *buf, size_t size) {
  size_t used = 0;
  buf[0] = '\0';
  for (int k = 0; k < KEY_COUNT; k++)
    if (k == 0 || !cfg_same_section(k, k - 1)) cfg_append(buf, size, &used, "%s%s", k ? ", " : "", cfg_keys[k].section);
  return buf;
}

/* The keys of the section whose first key is section_first, "a, b, ...", into buf; returns buf. */
static const char *known_keys(int section_first, char *buf, size_t size) {
  size_t used = 0;
  buf[0] = '\0';
  for (int k = section_first; k < KEY_COUNT && cfg_same_section(k, section_first); k++)
    cfg_append(buf, size, &used, "%s%s", k > section_first ? ", " : "", cfg_keys[k].key);
  return buf;
}

/* ---- YAML file ---- */

typedef struct {
  yaml_parser_t parser;
  yaml_event_t event;
  int have_event;
  const char *path;
  char *err;
  size_t err_size;
  tpdiff_config *cfg;
  unsigned char *from;
  unsigned long key_line[KEY_COUNT];     /* 1-based line where a key was set, 0 = not yet */
  unsigned long section_line[KEY_COUNT]; /* by the section's first key index */
} yaml_reader;

/* 1-based line of byte offset in the file (for reader errors, which only know the offset). */
static unsigned long line_of_offset(const char *path, size_t offset) {
  FILE *f = fopen(path, "rb");
  unsigned long line = 1;
  if (!f) return line;
  for (size_t i = 0; i < offset; i++) {
    int ch = fgetc(f);
    if (ch == EOF) break;
    line += ch == '\n';
  }
  fclose(f);
  return line;
}

static int yaml_failure(yaml_reader *r) {
  const yaml_parser_t *p = &r->parser;
  char where[64];
  const char *problem = p->problem ? p->problem : "unknown problem";
  switch (p->error) {
    case YAML_MEMORY_ERROR:
      return cfg_fail(r->err, r->err_size, r->path, NULL, "out of memory while reading YAML");
    case YAML_READER_ERROR:
      snprintf(where, sizeof where, "line %lu", line_of_offset(r->path, p->problem_offset));
      if (strcmp(problem, "input error") == 0)
        return cfg_fail(r->err, r->err_size, r->path, NULL, "cannot read: input error");
      return cfg_fail(r->err, r->err_size, r->path, where, "not a YAML text file: %s (byte %zu)", problem,
                      p->problem_offset);
    case YAML_SCANNER_ERROR:
    case YAML_PARSER_ERROR:
      snprintf(where, sizeof where, "line %lu, column %lu", (unsigned long)p->problem_mark.line + 1,
               (unsigned long)p->problem_mark.column + 1);
      if (p->context)
        return cfg_fail(r->err, r->err_size, r->path, where, "YAML syntax error: %s (%s from line %lu)", problem,
                        p->context, (unsigned long)p->context_mark.line + 1);
      return cfg_fail(r->err, r->err_size, r->path, where, "YAML syntax error: %s", problem);
    default:
      return cfg_fail(r->err, r->err_size, r->path, NULL, "YAML error: %s", problem);
  }
}

static int next_event(yaml_reader *r) {
  if (r->have_event) yaml_event_delete(&r->event);
  r->have_event = 0;
  if (!yaml_parser_parse(&r->parser, &r->event)) return yaml_failure(r);
  r->have_event = 1;
  return 0;
}

static unsigned long event_line(const yaml_reader *r) { return (unsigned long)r->event.start_mark.line + 1; }

/* "a scalar 'x'", "a sequence", ... for messages about the current event. */
static const char *event_kind(const yaml_reader *r, char *buf, size_t size) {
  char value[SHOWN_MAX];
  switch (r->event.type) {
    case YAML_SCALAR_EVENT:
      snprintf(buf, size, "a scalar '%s'",
               cfg_shown((const char *)r->event.data.scalar.value, r->event.data.scalar.length, value, sizeof value));
      break;
    case YAML_SEQUENCE_START_EVENT:
      snprintf(buf, size, "a sequence");
      break;
    case YAML_MAPPING_START_EVENT:
      snprintf(buf, size, "a mapping");
      break;
    case YAML_ALIAS_EVENT:
      snprintf(buf, size, "an alias (anchors and aliases are not supported)");
      break;
    default:
      snprintf(buf, size, "something else");
      break;
  }
  return buf;
}

static const char *type_wanted(int key, char *buf, size_t size) {
  char list[REASON_MAX / 2];
  switch (cfg_keys[key].type) {
    case TYPE_INT:
      return "an integer";
    case TYPE_FLOAT:
      return "a number";
    case TYPE_BOOL:
      return "true or false";
    case TYPE_STRING:
      if (!cfg_choices_of(key)) return "a word";
      snprintf(buf, size, "one of %s", cfg_choices_text(cfg_choices_of(key), list, sizeof list));
      return buf;
    case TYPE_PATH:
      return "a path";
    case TYPE_LIST:
      return "a list of numbers like [0.6, 0.3] or []";
  }
  return "a value";
}

/* Reads a YAML sequence of numbers (the SEQUENCE_START event is current) into key's LIST field. */
static int read_list(yaml_reader *r, int key, const char *where) {
  tpdiff_float_list list;
  char kind[SHOWN_MAX + 64];
  memset(&list, 0, sizeof list);
  for (;;) {
    if (next_event(r)) return -1;
    if (r->event.type == YAML_SEQUENCE_END_EVENT) break;
    if (list.count == TPDIFF_MAX_STAGES)
      return cfg_fail(r->err, r->err_size, r->path, where, "at most %d entries (one per pyramid cut), got more",
                      TPDIFF_MAX_STAGES);
    if (r->event.type != YAML_SCALAR_EVENT)
      return cfg_fail(r->err, r->err_size, r->path, where, "entry %d: expected a number, got %s", list.count + 1,
                      event_kind(r, kind, sizeof kind));
    const char *text = (const char *)r->event.data.scalar.value;
    size_t len = r->event.data.scalar.length;
    double value;
    int rc = cfg_parse_double(text, len, &value);
    if (rc != 0) {
      char got_text[SHOWN_MAX + 16];
      return cfg_fail(r->err, r->err_size, r->path, where, "entry %d: expected a %snumber, %s", list.count + 1,
                      rc == -2 ? "finite " : "", cfg_got(text, len, got_text, sizeof got_text));
    }
    list.values[list.count++] = value;
  }
  memcpy(cfg_field_at(r->cfg, key), &list, sizeof list);
  return 0;
}

static int is_yaml_null(const yaml_event_t *event) {
  if (event->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) return 0;
  const char *s = (const char *)event->data.scalar.value;
  size_t len = event->data.scalar.length;
  return len == 0 || (len == 1 && s[0] == '~') ||
         (len == 4 && (!memcmp(s, "null", 4) || !memcmp(s, "Null", 4) || !memcmp(s, "NULL", 4)));
}

/* Reads "key: value" pairs of one section (its MAPPING_START event is current). */
static int read_section(yaml_reader *r, int section_first) {
  const char *section = cfg_keys[section_first].section;
  char where[SHOWN_MAX + 32], kind[SHOWN_MAX + 64], list[REASON_MAX / 2], wanted[REASON_MAX / 2];
  for (;;) {
    if (next_event(r)) return -1;
    if (r->event.type == YAML_MAPPING_END_EVENT) return 0;
    if (r->event.type != YAML_SCALAR_EVENT)
      return cfg_fail(r->err, r->err_size, r->path, section, "keys must be plain words, got %s",
                      event_kind(r, kind, sizeof kind));
    const char *name = (const char *)r->event.data.scalar.value;
    size_t name_len = r->event.data.scalar.length;
    int key = find_key(section_first, name, name_len);
    if (key < 0) {
      char name_shown[SHOWN_MAX];
      snprintf(where, sizeof where, "%s.%s", section, cfg_shown(name, name_len, name_shown, sizeof name_shown));
      return cfg_fail(r->err, r->err_size, r->path, where, "unknown key (known keys of %s: %s)", section,
                      known_keys(section_first, list, sizeof list));
    }
    snprintf(where, sizeof where, "%s.%s", section, cfg_keys[key].key);
    if (r->key_line[key])
      return cfg_fail(r->err, r->err_size, r->path, where, "duplicate key (first set on line %lu)", r->key_line[key]);
    r->key_line[key] = event_line(r);

    if (next_event(r)) return -1;
    if (r->event.type == YAML_SCALAR_EVENT && cfg_keys[key].type != TYPE_LIST) {
      const char *text = (const char *)r->event.data.scalar.value;
      size_t len = r->event.data.scalar.length;
      if (cfg_keys[key].type == TYPE_PATH && is_yaml_null(&r->event)) len = 0; /* path: ~ means no path */
      char reason[REASON_MAX];
      if (cfg_parse_value(key, text, len, r->cfg, reason, sizeof reason))
        return cfg_fail(r->err, r->err_size, r->path, where, "%s", reason);
    } else if (r->event.type == YAML_SEQUENCE_START_EVENT && cfg_keys[key].type == TYPE_LIST) {
      if (read_list(r, key, where)) return -1;
    } else {
      return cfg_fail(r->err, r->err_size, r->path, where, "expected %s, got %s",
                      type_wanted(key, wanted, sizeof wanted), event_kind(r, kind, sizeof kind));
    }
    r->from[key] = FROM_FILE;
  }
}

static int read_document(yaml_reader *r) {
  char kind[SHOWN_MAX + 64], list[REASON_MAX / 2];
  if (next_event(r)) return -1; /* stream start */
  if (next_event(r)) return -1;
  if (r->event.type == YAML_STREAM_END_EVENT)
    return cfg_fail(r->err, r->err_size, r->path, NULL, "empty file (expected sections such as model:, data:, train:)");
  if (next_event(r)) return -1; /* the document start is current: the document's root follows */
  if (r->event.type == YAML_SCALAR_EVENT && is_yaml_null(&r->event))
    return cfg_fail(r->err, r->err_size, r->path, NULL, "empty file (expected sections such as model:, data:, train:)");
  if (r->event.type != YAML_MAPPING_START_EVENT)
    return cfg_fail(r->err, r->err_size, r->path, NULL, "the top level must be a mapping of sections (%s), got %s",
                    known_sections(list, sizeof list), event_kind(r, kind, sizeof kind));
  for (;;) {
    if (next_event(r)) return -1;
    if (r->event.type == YAML_MAPPING_END_EVENT) break;
    if (r->event.type != YAML_SCALAR_EVENT)
      return cfg_fail(r->err, r->err_size, r->path, NULL, "section names must be plain words, got %s",
                      event_kind(r, kind, sizeof kind));
    const char *name = (const char *)r->event.data.scalar.value;
    size_t name_len = r->event.data.scalar.length;
    int first = find_section(name, name_len);
    if (first < 0) {
      char name_shown[SHOWN_MAX];
      return cfg_fail(r->err, r->err_size, r->path, cfg_shown(name, name_len, name_shown, sizeof name_shown),
                      "unknown section (known sections: %s)", known_sections(list, sizeof list));
    }
    const char *section = cfg_keys[first].section;
    if (r->section_line[first])
      return cfg_fail(r->err, r->err_size, r->path, section, "duplicate section (first on line %lu)",
                      r->section_line[first]);
    r->section_line[first] = event_line(r);
    if (next_event(r)) return -1;
    if (r->event.type != YAML_MAPPING_START_EVENT)
      return cfg_fail(r->err, r->err_size, r->path, section,
                      "expected a mapping of keys (indented key: value lines), got %s",
                      event_kind(r, kind, sizeof kind));
    if (read_section(r, first)) return -1;
  }
  if (next_event(r)) return -1; /* document end */
  if (next_event(r)) return -1;
  if (r->event.type != YAML_STREAM_END_EVENT)
    return cfg_fail(r->err, r->err_size, r->path, NULL, "more than one YAML document (a config is one mapping)");
  return 0;
}

/* Reads the YAML of f (rewindable; closed here) over cfg; path names it in messages. */
static int load_stream(tpdiff_config *cfg, unsigned char *from, FILE *f, const char *path, char *err,
                       size_t err_size);

static int load_file(tpdiff_config *cfg, unsigned char *from, const char *path, char *err, size_t err_size) {
  FILE *f = fopen(path, "rb");
  if (!f) return cfg_fail(err, err_size, path, NULL, "cannot read: %s", strerror(errno));
  struct stat st;
  if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
    fclose(f);
    return cfg_fail(err, err_size, path, NULL, "cannot read: %s", strerror(EISDIR));
  }
  return load_stream(cfg, from, f, path, err, err_size);
}

static int load_stream(tpdiff_config *cfg, unsigned char *from, FILE *f, const char *path, char *err,
                       size_t err_size) {
  yaml_reader *r = calloc(1, sizeof *r);
  if (!r || !yaml_parser_initialize(&r->parser)) {
    free(r);
    fclose(f);
    return cfg_fail(err, err_size, path, NULL, "out of memory while reading YAML");
  }
  yaml_parser_set_input_file(&r->parser, f);
  r->path = path;
  r->err = err;
  r->err_size = err_size;
  r->cfg = cfg;
  r->from = from;
  /* First pass: syntax only, so a YAML error anywhere is reported as such rather than as a wrong value
   * that happened to come before it. */
  int rc = 0, depth = 0;
  do {
    rc = next_event(r);
    if (rc == 0 && (r->event.type == YAML_SEQUENCE_START_EVENT || r->event.type == YAML_MAPPING_START_EVENT) &&
        ++depth > MAX_NESTING) {
      /* A config nests 3 deep (sections, keys, a list); stopping early also keeps libyaml away from
       * deeply nested flow collections, on which its scanner takes quadratic time. */
      char where[32];
      snprintf(where, sizeof where, "line %lu", event_line(r));
      rc = cfg_fail(err, err_size, path, where,
                    "collections nested more than %d deep (a config is sections of key: value)", MAX_NESTING);
    }
    if (rc == 0 && (r->event.type == YAML_SEQUENCE_END_EVENT || r->event.type == YAML_MAPPING_END_EVENT)) depth--;
  } while (rc == 0 && r->event.type != YAML_STREAM_END_EVENT);
  if (r->have_event) yaml_event_delete(&r->event);
  r->have_event = 0;
  yaml_parser_delete(&r->parser);
  if (rc == 0) {
    rewind(f);
    if (!yaml_parser_initialize(&r->parser)) {
      free(r);
      fclose(f);
      return cfg_fail(err, err_size, path, NULL, "out of memory while reading YAML");
    }
    yaml_parser_set_input_file(&r->parser, f);
    rc = read_document(r);
    if (r->have_event) yaml_event_delete(&r->event);
    yaml_parser_delete(&r->parser);
  }
  free(r);
  fclose(f);
  return rc;
}

/* ---- command-line overrides ---- */

static int apply_override(tpdiff_config *cfg, unsigned char *from, const char *arg, char *err, size_t err_size) {
  char arg_shown[SHOWN_MAX], list[REASON_MAX / 2];
  if (!arg) return cfg_fail(err, err_size, COMMAND_LINE, "(null)", "expected --section.key=value");
  cfg_shown(arg, strlen(arg), arg_shown, sizeof arg_shown);
  if (strncmp(arg, "--", 2) != 0)
    return cfg_fail(err, err_size, COMMAND_LINE, arg_shown, "expected --section.key=value");
  const char *name = arg + 2, *eq = strchr(name, '=');
  const char *dot = eq ? memchr(name, '.', (size_t)(eq - name)) : NULL;
  if (!dot) return cfg_fail(err, err_size, COMMAND_LINE, arg_shown, "expected --section.key=value");
  int first = find_section(name, (size_t)(dot - name));
  if (first < 0)
    return cfg_fail(err, err_size, COMMAND_LINE, arg_shown, "unknown section (known sections: %s)",
                    known_sections(list, sizeof list));
  int key = find_key(first, dot + 1, (size_t)(eq - dot - 1));
  if (key < 0)
    return cfg_fail(err, err_size, COMMAND_LINE, arg_shown, "unknown key (known keys of %s: %s)",
                    cfg_keys[first].section, known_keys(first, list, sizeof list));
  char reason[REASON_MAX];
  if (cfg_parse_value(key, eq + 1, strlen(eq + 1), cfg, reason, sizeof reason))
    return cfg_fail(err, err_size, COMMAND_LINE, arg_shown, "%s", reason);
  from[key] = FROM_COMMAND_LINE;
  return 0;
}

int config_load_text(tpdiff_config *cfg, const char *text, size_t len, const char *origin, char *err,
                     size_t err_size) {
  if (err && err_size) err[0] = '\0';
  tpdiff_config *work = malloc(sizeof *work);
  if (!work) return cfg_fail(err, err_size, origin, NULL, "out of memory");
  unsigned char from[KEY_COUNT];
  memset(from, FROM_DEFAULTS, sizeof from);
  config_defaults(work);
  snprintf(work->source, sizeof work->source, "%s", origin);
  int rc = 0;
  /* fmemopen of an empty buffer fails on some libcs: an empty text is an empty document */
  FILE *f = len ? fmemopen((void *)text, len, "rb") : NULL;
  if (len && !f) rc = cfg_fail(err, err_size, origin, NULL, "cannot read the stored config: %s", strerror(errno));
  if (rc == 0 && f) rc = load_stream(work, from, f, origin, err, err_size);
  if (rc == 0) {
    const char *names[3] = {"defaults", origin, COMMAND_LINE};
    rc = cfg_check(work, from, names, err, err_size);
  }
  if (rc == 0) memcpy(cfg, work, sizeof *cfg);
  free(work);
  return rc;
}

int config_load(tpdiff_config *cfg, const char *path, int nargs, char **args, char *err, size_t err_size) {
  if (err && err_size) err[0] = '\0';
  /* Work on a copy so that a failed load leaves *cfg as it was. */
  tpdiff_config *work = malloc(sizeof *work);
  if (!work) return cfg_fail(err, err_size, path ? path : COMMAND_LINE, NULL, "out of memory");
  unsigned char from[KEY_COUNT];
  memset(from, FROM_DEFAULTS, sizeof from);
  config_defaults(work);
  int rc = 0;
  if (path) {
    if (strlen(path) >= sizeof work->source)
      rc = cfg_fail(err, err_size, path, NULL, "config path longer than %zu bytes", sizeof work->source - 1);
    else
      memcpy(work->source, path, strlen(path));
    if (rc == 0) rc = load_file(work, from, path, err, err_size);
  }
  if (rc == 0 && nargs > 0 && !args) rc = cfg_fail(err, err_size, COMMAND_LINE, NULL, "no arguments given");
  for (int i = 0; rc == 0 && i < nargs; i++) rc = apply_override(work, from, args[i], err, err_size);
  if (rc == 0) {
    const char *names[3] = {"defaults", path ? path : "config", COMMAND_LINE};
    rc = cfg_check(work, from, names, err, err_size);
  }
  if (rc == 0) memcpy(cfg, work, sizeof *cfg);
  free(work);
  return rc;
}
