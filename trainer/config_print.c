/* config_print.c — printing a run configuration: config_write_yaml (every key, in table order, as YAML
 * that reads back to the same struct) and config_write_help (the key documentation table). */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trainer/config.h"
#include "trainer/config_internal.h"

/* cfg_shortest(), always with a '.' so YAML 1.1 readers (PyYAML) see a float; non-finite as YAML spells it. */
static void format_double(double v, char *buf, size_t size) {
  if (isnan(v)) {
    snprintf(buf, size, ".nan");
    return;
  }
  if (isinf(v)) {
    snprintf(buf, size, v > 0 ? ".inf" : "-.inf");
    return;
  }
  char text[40];
  cfg_shortest(v, text, sizeof text);
  if (strchr(text, '.')) {
    snprintf(buf, size, "%s", text);
  } else {
    char *e = strchr(text, 'e');
    if (e)
      snprintf(buf, size, "%.*s.0%s", (int)(e - text), text, e);
    else
      snprintf(buf, size, "%s.0", text);
  }
}

/* A string YAML reads back as the same string without quotes: a plain word that cannot be taken for a
 * number, a boolean, null or YAML syntax. */
static int plain_word(const char *s) {
  static const char *const special[] = {"null", "true", "false", "yes", "no", "on", "off", "y", "n"};
  if (!s[0] || (s[0] >= '0' && s[0] <= '9') || s[0] == '-' || s[0] == '+' || s[0] == '.') return 0;
  for (const char *p = s; *p; p++) {
    char c = *p;
    int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
             c == '/' || c == '-' || c == '+';
    if (!ok) return 0;
  }
  for (size_t i = 0; i < sizeof special / sizeof special[0]; i++) {
    size_t n = strlen(special[i]);
    if (strlen(s) != n) continue;
    size_t j = 0;
    while (j < n && (s[j] | 0x20) == special[i][j]) j++;
    if (j == n) return 0;
  }
  return 1;
}

/* Writes s as a YAML scalar, double-quoted with escapes when a plain word would not read back. */
static void write_string(FILE *out, const char *s, size_t size) {
  size_t len = strnlen(s, size);
  char copy[TPDIFF_PATH_MAX];
  memcpy(copy, s, len < sizeof copy ? len : sizeof copy - 1);
  copy[len < sizeof copy ? len : sizeof copy - 1] = '\0';
  if (plain_word(copy)) {
    fputs(copy, out);
    return;
  }
  const unsigned char *u = (const unsigned char *)copy;
  len = strlen(copy);
  fputc('"', out);
  for (size_t i = 0; i < len;) {
    unsigned long cp;
    size_t n = cfg_utf8_sequence(u + i, len - i, &cp);
    if (n == 0) { /* not UTF-8: no YAML text holds it; keep the output valid YAML */
      fprintf(out, "\\x%02x", u[i]);
      i++;
      continue;
    }
    if (cp == '"' || cp == '\\') {
      fputc('\\', out);
      fputc((int)cp, out);
    } else if (cp == '\n') {
      fputs("\\n", out);
    } else if (cp == '\t') {
      fputs("\\t", out);
    } else if (cp == '\r') {
      fputs("\\r", out);
    } else if (cp < 0x20 || (cp >= 0x7F && cp <= 0x9F)) {
      fprintf(out, "\\x%02lx", cp);
    } else if (cp == 0x2028 || cp == 0x2029 || cp == 0xFEFF || cp == 0xFFFE || cp == 0xFFFF) {
      /* line separators and non-printables that a YAML reader refuses or folds when raw */
      fprintf(out, "\\u%04lx", cp);
    } else {
      fwrite(u + i, 1, n, out);
    }
    i += n;
  }
  fputc('"', out);
}

static void write_value(FILE *out, const tpdiff_config *cfg, int key) {
  const void *field = cfg_field_at_const(cfg, key);
  char number[48];
  switch (cfg_keys[key].type) {
    case TYPE_INT:
    case TYPE_BOOL: {
      int v;
      memcpy(&v, field, sizeof v);
      if (cfg_keys[key].type == TYPE_BOOL)
        fputs(v ? "true" : "false", out);
      else
        fprintf(out, "%d", v);
      break;
    }
    case TYPE_FLOAT: {
      double v;
      memcpy(&v, field, sizeof v);
      format_double(v, number, sizeof number);
      fputs(number, out);
      break;
    }
    case TYPE_STRING:
    case TYPE_PATH:
      write_string(out, field, cfg_keys[key].size);
      break;
    case TYPE_LIST: {
      tpdiff_float_list list;
      memcpy(&list, field, sizeof list);
      int count = list.count < 0 ? 0 : list.count > TPDIFF_MAX_STAGES ? TPDIFF_MAX_STAGES : list.count;
      fputc('[', out);
      for (int i = 0; i < count; i++) {
        format_double(list.values[i], number, sizeof number);
        fprintf(out, "%s%s", i ? ", " : "", number);
      }
      fputc(']', out);
      break;
    }
  }
}

void config_write_yaml(const tpdiff_config *cfg, FILE *out) {
  for (int k = 0; k < KEY_COUNT; k++) {
    if (k == 0 || !cfg_same_section(k, k - 1)) fprintf(out, "%s:\n", cfg_keys[k].section);
    fprintf(out, "  %s: ", cfg_keys[k].key);
    write_value(out, cfg, k);
    fputc('\n', out);
  }
}

static const char *default_shown(int k) { return cfg_keys[k].default_text[0] ? cfg_keys[k].default_text : "\"\""; }

void config_write_help(FILE *out) {
  int name_width = (int)strlen("key"), type_width = (int)strlen("type"), default_width = (int)strlen("default");
  for (int k = 0; k < KEY_COUNT; k++) {
    int name = (int)(strlen(cfg_keys[k].section) + 1 + strlen(cfg_keys[k].key));
    int type = (int)strlen(cfg_keys[k].type_name), def = (int)strlen(default_shown(k));
    if (name > name_width) name_width = name;
    if (type > type_width) type_width = type;
    if (def > default_width) default_width = def;
  }
  fprintf(out, "%-*s  %-*s  %-*s  %s\n", name_width, "key", type_width, "type", default_width, "default", "meaning");
  for (int k = 0; k < KEY_COUNT; k++) {
    char name[64], list[REASON_MAX / 2];
    snprintf(name, sizeof name, "%s.%s", cfg_keys[k].section, cfg_keys[k].key);
    fprintf(out, "%-*s  %-*s  %-*s  %s", name_width, name, type_width, cfg_keys[k].type_name, default_width,
            default_shown(k), cfg_keys[k].doc);
    if (cfg_choices_of(k)) fprintf(out, " [one of: %s]", cfg_choices_text(cfg_choices_of(k), list, sizeof list));
    fputc('\n', out);
  }
}

char *config_yaml_text(const tpdiff_config *cfg, size_t *len) {
  char *text = NULL;
  size_t size = 0;
  FILE *f = open_memstream(&text, &size);
  if (!f) return NULL;
  config_write_yaml(cfg, f);
  if (fclose(f) != 0) {
    free(text);
    return NULL;
  }
  if (len) *len = size;
  return text;
}
