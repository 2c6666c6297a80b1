/* curves.svg and report.html of a training run, rebuilt from metrics.csv
 * after every epoch, so a resumed run shows all of its epochs. */
#include "report/run_report.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "io/file.h"
#include "io/json.h"
#include "report/plot.h"

/* ------------------------------------------------------------ metrics.csv */

enum { COLUMN_COUNT = 9, FIELDS_MAX = 32 };

static const char *const COLUMNS[COLUMN_COUNT] = {
    "epoch", "lr", "train_loss", "train_acc", "test_loss", "test_acc",
    "train_seconds", "eval_seconds", "images_per_sec",
};

/* Split a line at commas in place; returns the number of fields. */
static int split_fields(char *line, char **fields, int max)
{
    int n = 0;
    fields[n++] = line;
    for (char *p = line; *p && n < max; p++) {
        if (*p == ',') {
            *p = '\0';
            fields[n++] = p + 1;
        }
    }
    return n;
}

static rn_status parse_header(const char *path, char *line, int *index_of)
{
    char *fields[FIELDS_MAX];
    int n = split_fields(line, fields, FIELDS_MAX);
    for (int c = 0; c < COLUMN_COUNT; c++) {
        index_of[c] = -1;
        for (int k = 0; k < n; k++)
            if (!strcmp(fields[k], COLUMNS[c]))
                index_of[c] = k;
        if (index_of[c] < 0)
            return rn_error(RN_ERR_FORMAT, "%s: the header has no column '%s'; was the file "
                            "written by resnet train?", path, COLUMNS[c]);
    }
    return RN_OK;
}

static rn_status parse_row(const char *path, int line_number, char *line,
                           const int *index_of, rn_run_metrics *row)
{
    char *fields[FIELDS_MAX];
    double v[COLUMN_COUNT];
    int n = split_fields(line, fields, FIELDS_MAX);
    for (int c = 0; c < COLUMN_COUNT; c++) {
        char *end;
        if (index_of[c] >= n)
            return rn_error(RN_ERR_FORMAT, "%s:%d: the row has %d fields, expected at least "
                            "%d", path, line_number, n, index_of[c] + 1);
        errno = 0;
        v[c] = strtod(fields[index_of[c]], &end);
        if (end == fields[index_of[c]] || *end || errno)
            return rn_error(RN_ERR_FORMAT, "%s:%d: column '%s' is '%s', expected a number",
                            path, line_number, COLUMNS[c], fields[index_of[c]]);
    }
    *row = (rn_run_metrics){
        .epoch = (int)v[0], .lr = v[1], .train_loss = v[2], .train_accuracy = v[3],
        .test_loss = v[4], .test_accuracy = v[5], .train_seconds = v[6],
        .eval_seconds = v[7], .images_per_sec = v[8],
    };
    return RN_OK;
}

rn_status rn_run_metrics_read(const char *path, rn_run_metrics **rows, int *count)
{
    void *data;
    size_t nbytes;
    int index_of[COLUMN_COUNT], capacity = 0, line_number = 0;
    rn_status status = RN_OK;

    *rows = NULL;
    *count = 0;
    RN_TRY(rn_file_read_all(path, &data, &nbytes));
    char *text = data, *save = NULL;
    for (char *line = strtok_r(text, "\r\n", &save); line && status == RN_OK;
         line = strtok_r(NULL, "\r\n", &save)) {
        line_number++;
        if (line_number == 1) {
            status = parse_header(path, line, index_of);
            continue;
        }
        if (*count == capacity) {
            capacity = capacity ? 2 * capacity : 16;
            rn_run_metrics *grown = realloc(*rows, capacity * sizeof **rows);
            if (!grown) {
                status = rn_error(RN_ERR_NOMEM, "out of memory reading %s", path);
                break;
            }
            *rows = grown;
        }
        status = parse_row(path, line_number, line, index_of, &(*rows)[*count]);
        if (status == RN_OK)
            (*count)++;
    }
    if (status == RN_OK && line_number == 0)
        status = rn_error(RN_ERR_FORMAT, "%s is empty, expected a header line", path);
    rn_free_aligned(data);
    if (status != RN_OK) {
        free(*rows);
        *rows = NULL;
        *count = 0;
    }
    return status;
}

/* ----------------------------------------------------------------- plots */

static rn_status write_curves(const char *path, const rn_run_metrics *rows, int count,
                              const char *model, rn_strbuf *svg)
{
    double *x = malloc(4 * (size_t)(count ? count : 1) * sizeof(double));
    if (!x)
        return rn_error(RN_ERR_NOMEM, "out of memory drawing %s", path);
    double *loss = x + count, *train_acc = loss + count, *test_acc = train_acc + count;
    for (int i = 0; i < count; i++) {
        x[i] = rows[i].epoch;
        loss[i] = rows[i].train_loss;
        train_acc[i] = rows[i].train_accuracy;
        test_acc[i] = rows[i].test_accuracy;
    }
    int markers = count <= 30;
    rn_series series[3] = {
        {"train loss", x, loss, count, 0, RN_LINE_SOLID, markers},
        {"train acc", x, train_acc, count, 3, RN_LINE_DASHED, markers},
        {"test acc", x, test_acc, count, 2, RN_LINE_DASHDOT, markers},
    };
    double top = 1.0;
    for (int i = 0; i < count; i++)
        if (isfinite(loss[i]) && loss[i] > top)
            top = loss[i];
    char title[128];
    snprintf(title, sizeof title, "%s: training curves", model);
    rn_panel panel = {
        .xlabel = "epoch", .ylabel = "loss / accuracy", .y_min = 0, .y_max = top,
        .x_integer = 1, .series = series, .series_count = 3,
    };
    rn_status status = rn_plot_svg(svg, title, &panel, 1);
    if (status == RN_OK) {
        const void *chunks[1] = {svg->data};
        size_t sizes[1] = {svg->length};
        status = rn_file_write_atomic(path, chunks, sizes, 1);
    }
    free(x);
    return status;
}

/* ------------------------------------------------------------------ HTML */

/* The value of `key` in "key=value" lines, copied into buf ("" if absent). */
static void config_value(const char *config_text, const char *key, char *buf, size_t size)
{
    size_t len = strlen(key);
    buf[0] = '\0';
    for (const char *line = config_text; line && *line;) {
        const char *end = strchr(line, '\n');
        if (!strncmp(line, key, len) && line[len] == '=') {
            size_t n = end ? (size_t)(end - line - len - 1) : strlen(line + len + 1);
            snprintf(buf, size, "%.*s", (int)n, line + len + 1);
            return;
        }
        line = end ? end + 1 : NULL;
    }
}

static rn_status append_config_table(rn_strbuf *h, const char *config_text)
{
    RN_TRY(rn_strbuf_appendf(h, "<h2>Configuration</h2>\n<table>\n"));
    for (const char *line = config_text; line && *line;) {
        const char *end = strchr(line, '\n');
        char text[1024];
        snprintf(text, sizeof text, "%.*s", (int)(end ? end - line : (long)strlen(line)), line);
        char *eq = strchr(text, '=');
        if (eq) {
            *eq = '\0';
            RN_TRY(rn_strbuf_appendf(h, "<tr><th>"));
            RN_TRY(rn_xml_append_escaped(h, text));
            RN_TRY(rn_strbuf_appendf(h, "</th><td>"));
            RN_TRY(rn_xml_append_escaped(h, eq + 1));
            RN_TRY(rn_strbuf_appendf(h, "</td></tr>\n"));
        }
        line = end ? end + 1 : NULL;
    }
    return rn_strbuf_appendf(h, "</table>\n");
}

static rn_status append_results(rn_strbuf *h, const rn_run_metrics *rows, int count)
{
    if (count == 0)
        return rn_strbuf_appendf(h, "<p>No epoch has finished yet.</p>\n");

    const rn_run_metrics *last = &rows[count - 1];
    int best = 0;
    double seconds = 0.0;
    for (int i = 0; i < count; i++) {
        if (rows[i].test_accuracy > rows[best].test_accuracy)
            best = i;
        seconds += rows[i].train_seconds + rows[i].eval_seconds;
    }
    RN_TRY(rn_strbuf_appendf(h, "<h2>Final metrics</h2>\n<table>\n"
                             "<tr><th>epochs done</th><td>%d</td></tr>\n"
                             "<tr><th>train loss</th><td>%.4f</td></tr>\n"
                             "<tr><th>train accuracy</th><td>%.2f%%</td></tr>\n"
                             "<tr><th>test loss</th><td>%.4f</td></tr>\n"
                             "<tr><th>test accuracy</th><td>%.2f%%</td></tr>\n"
                             "<tr><th>best test accuracy</th><td>%.2f%% (epoch %d)</td></tr>\n"
                             "<tr><th>training and evaluation time</th><td>%.1f s</td></tr>\n"
                             "</table>\n",
                             last->epoch, last->train_loss, 100 * last->train_accuracy,
                             last->test_loss, 100 * last->test_accuracy,
                             100 * rows[best].test_accuracy, rows[best].epoch, seconds));
    RN_TRY(rn_strbuf_appendf(h, "<h2>Per epoch</h2>\n<table>\n<tr><th>epoch</th><th>lr</th>"
                             "<th>train loss</th><th>train acc</th><th>test loss</th>"
                             "<th>test acc</th><th>train s</th><th>eval s</th>"
                             "<th>img/s</th></tr>\n"));
    for (int i = 0; i < count; i++) {
        const rn_run_metrics *r = &rows[i];
        RN_TRY(rn_strbuf_appendf(h, "<tr><td>%d</td><td>%.4g</td><td>%.4f</td><td>%.2f%%</td>"
                                 "<td>%.4f</td><td>%.2f%%</td><td>%.1f</td><td>%.1f</td>"
                                 "<td>%.0f</td></tr>\n", r->epoch, r->lr, r->train_loss,
                                 100 * r->train_accuracy, r->test_loss,
                                 100 * r->test_accuracy, r->train_seconds, r->eval_seconds,
                                 r->images_per_sec));
    }
    return rn_strbuf_appendf(h, "</table>\n");
}

static rn_status write_html(const char *path, const char *model, const char *svg,
                            const rn_run_metrics *rows, int count, const char *config_text)
{
    rn_strbuf h = {0};
    rn_status status = rn_strbuf_appendf(
        &h, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<title>resnet train: ");
    if (status == RN_OK)
        status = rn_xml_append_escaped(&h, model);
    if (status == RN_OK)
        status = rn_strbuf_appendf(
            &h, "</title>\n<style>body{font-family:sans-serif;margin:2em;max-width:60em}"
                "table{border-collapse:collapse;margin-bottom:1.5em}"
                "th,td{border:1px solid #ccc;padding:2px 8px;text-align:left}"
                "td{font-variant-numeric:tabular-nums}</style>\n</head>\n<body>\n"
                "<h1>resnet train: ");
    if (status == RN_OK)
        status = rn_xml_append_escaped(&h, model);
    if (status == RN_OK)
        status = rn_strbuf_appendf(&h, "</h1>\n<p>Written by resnet.c %s after every epoch; "
                                   "the plot is also in curves.svg and the numbers in "
                                   "metrics.csv.</p>\n%s\n", RN_VERSION, svg);
    if (status == RN_OK)
        status = append_results(&h, rows, count);
    if (status == RN_OK)
        status = append_config_table(&h, config_text);
    if (status == RN_OK)
        status = rn_strbuf_appendf(&h, "</body>\n</html>\n");
    if (status == RN_OK) {
        const void *chunks[1] = {h.data};
        size_t sizes[1] = {h.length};
        status = rn_file_write_atomic(path, chunks, sizes, 1);
    }
    rn_strbuf_free(&h);
    return status;
}

rn_status rn_run_report_write(const char *dir, const char *config_text)
{
    char metrics_path[1100], svg_path[1100], html_path[1100], model[64];
    rn_run_metrics *rows;
    int count;
    rn_strbuf svg = {0};

    snprintf(metrics_path, sizeof metrics_path, "%s/metrics.csv", dir);
    snprintf(svg_path, sizeof svg_path, "%s/curves.svg", dir);
    snprintf(html_path, sizeof html_path, "%s/report.html", dir);
    config_value(config_text, "model", model, sizeof model);

    RN_TRY(rn_run_metrics_read(metrics_path, &rows, &count));
    rn_status status = write_curves(svg_path, rows, count, model, &svg);
    if (status == RN_OK)
        status = write_html(html_path, model, svg.data, rows, count, config_text);
    rn_strbuf_free(&svg);
    free(rows);
    return status;
}
