/* SVG line plots: axes with "nice" ticks, grid, curves and legends. */
#include "report/plot.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/status.h"
#include "io/file.h"

/* Panel geometry in SVG user units (pixels). The plot area of a panel spans
 * [PLOT_LEFT, PLOT_LEFT + PLOT_W] x [PLOT_TOP, PLOT_TOP + PLOT_H]; the legend
 * starts LEGEND_GAP below it, in two columns. */
enum {
    PANEL_W = 480, TITLE_H = 34, PLOT_LEFT = 72, PLOT_W = 388, PLOT_TOP = 30,
    PLOT_H = 250, LEGEND_GAP = 52, LEGEND_ROW_H = 18, LEGEND_COL_W = 200,
};

/* The Okabe-Ito palette, which stays distinguishable with the common forms
 * of colour blindness. Gray replaces its yellow, which is too pale on white. */
static const char *const PALETTE[RN_PLOT_PALETTE_SIZE] = {
    "#0072B2", "#D55E00", "#009E73", "#CC79A7",
    "#E69F00", "#56B4E9", "#000000", "#999999",
};

static const char *dash_array(rn_line_style style)
{
    switch (style) {
    case RN_LINE_DASHED: return "7 4";
    case RN_LINE_DOTTED: return "2 3";
    case RN_LINE_DASHDOT: return "8 3 2 3";
    case RN_LINE_SOLID: break;
    }
    return NULL;
}

rn_status rn_xml_append_escaped(rn_strbuf *out, const char *text)
{
    for (const char *p = text; *p; p++) {
        const char *entity = NULL;
        switch (*p) {
        case '&': entity = "&amp;"; break;
        case '<': entity = "&lt;"; break;
        case '>': entity = "&gt;"; break;
        case '"': entity = "&quot;"; break;
        case '\'': entity = "&#39;"; break;
        }
        if (entity)
            RN_TRY(rn_strbuf_append(out, entity, strlen(entity)));
        else
            RN_TRY(rn_strbuf_append(out, p, 1));
    }
    return RN_OK;
}

/* ------------------------------------------------------------------ axes */

typedef struct axis {
    double lo, hi;   /* data range shown; log10 of it on a log axis */
    double step;     /* tick spacing (in log10 units on a log axis) */
    int log;
} axis;

/* A round tick spacing, 1, 2 or 5 times a power of ten, giving about
 * `target` intervals over span. */
static double nice_step(double span, int target)
{
    double raw = span / target;
    double magnitude = pow(10.0, floor(log10(raw)));
    double norm = raw / magnitude;
    double factor = 10.0;
    if (norm < 1.5)
        factor = 1.0;
    else if (norm < 3.0)
        factor = 2.0;
    else if (norm < 7.0)
        factor = 5.0;
    return factor * magnitude;
}

static axis linear_axis(double lo, double hi, int integer)
{
    axis a = {.log = 0};
    if (!(hi > lo)) {
        double pad = fabs(lo) > 0 ? 0.1 * fabs(lo) : 1.0;
        lo -= pad;
        hi += pad;
    }
    a.step = nice_step(hi - lo, 5);
    if (integer && a.step < 1.0)
        a.step = 1.0;
    a.lo = floor(lo / a.step + 1e-9) * a.step;
    a.hi = ceil(hi / a.step - 1e-9) * a.step;
    return a;
}

static axis log_axis(double lo, double hi)
{
    axis a = {.log = 1};
    a.lo = floor(log10(lo));
    a.hi = ceil(log10(hi));
    if (a.hi <= a.lo)
        a.hi = a.lo + 1;
    double decades = a.hi - a.lo;
    a.step = decades <= 8 ? 1.0 : ceil(decades / 8);
    return a;
}

static double axis_position(const axis *a, double v)
{
    double t = a->log ? log10(v) : v;
    return (t - a->lo) / (a->hi - a->lo);
}

static int point_shown(const rn_panel *p, double y)
{
    return isfinite(y) && (!p->log_y || y > 0);
}

/* Find the ranges of the panel's data. Returns 0 if it has no point to draw. */
static int data_range(const rn_panel *p, double *x_lo, double *x_hi, double *y_lo,
                      double *y_hi)
{
    int any = 0;
    *x_lo = *y_lo = INFINITY;
    *x_hi = *y_hi = -INFINITY;
    for (int s = 0; s < p->series_count; s++) {
        const rn_series *series = &p->series[s];
        for (int i = 0; i < series->n; i++) {
            if (!point_shown(p, series->y[i]) || !isfinite(series->x[i]))
                continue;
            any = 1;
            *x_lo = fmin(*x_lo, series->x[i]);
            *x_hi = fmax(*x_hi, series->x[i]);
            *y_lo = fmin(*y_lo, series->y[i]);
            *y_hi = fmax(*y_hi, series->y[i]);
        }
    }
    return any;
}

/* Tick label text: "0.25", "1e+03" style numbers printed compactly. */
static void tick_text(char *buf, size_t size, double v, double step)
{
    if (fabs(v) < 1e-12 * fmax(1.0, step))
        v = 0.0;
    snprintf(buf, size, "%.6g", v);
}

/* ----------------------------------------------------------------- panel */

static rn_status draw_ticks(rn_strbuf *o, const axis *xa, const axis *ya, double ox,
                            double oy)
{
    char text[32];

    /* Vertical grid lines and x tick labels. */
    for (double t = xa->lo; t <= xa->hi + 1e-9 * xa->step; t += xa->step) {
        double px = ox + PLOT_LEFT + PLOT_W * (t - xa->lo) / (xa->hi - xa->lo);
        tick_text(text, sizeof text, t, xa->step);
        RN_TRY(rn_strbuf_appendf(o, "<line class=\"grid\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" "
                                 "y2=\"%.1f\"/>\n", px, oy + PLOT_TOP, px,
                                 oy + PLOT_TOP + PLOT_H));
        RN_TRY(rn_strbuf_appendf(o, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s"
                                 "</text>\n", px, oy + PLOT_TOP + PLOT_H + 16, text));
    }
    /* Horizontal grid lines and y tick labels; powers of ten on a log axis. */
    for (double t = ya->lo; t <= ya->hi + 1e-9 * ya->step; t += ya->step) {
        double py = oy + PLOT_TOP + PLOT_H - PLOT_H * (t - ya->lo) / (ya->hi - ya->lo);
        RN_TRY(rn_strbuf_appendf(o, "<line class=\"grid\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" "
                                 "y2=\"%.1f\"/>\n", ox + PLOT_LEFT, py, ox + PLOT_LEFT + PLOT_W,
                                 py));
        if (ya->log) {
            RN_TRY(rn_strbuf_appendf(o, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">10"
                                     "<tspan dy=\"-6\" font-size=\"9\">%d</tspan></text>\n",
                                     ox + PLOT_LEFT - 6, py + 4, (int)lround(t)));
            /* Over few decades, also mark 2 and 5 times each power of ten. */
            for (int m = 0; m < 2 && ya->hi - ya->lo <= 3 && t < ya->hi - 0.5; m++) {
                double v = (m ? 5.0 : 2.0) * pow(10.0, t);
                double pm = oy + PLOT_TOP + PLOT_H - PLOT_H * axis_position(ya, v);
                tick_text(text, sizeof text, v, v);
                RN_TRY(rn_strbuf_appendf(o, "<line class=\"grid\" x1=\"%.1f\" y1=\"%.1f\" "
                                         "x2=\"%.1f\" y2=\"%.1f\"/>\n<text x=\"%.1f\" "
                                         "y=\"%.1f\" text-anchor=\"end\" font-size=\"10\">%s"
                                         "</text>\n", ox + PLOT_LEFT, pm,
                                         ox + PLOT_LEFT + PLOT_W, pm, ox + PLOT_LEFT - 6,
                                         pm + 4, text));
            }
        } else {
            tick_text(text, sizeof text, t, ya->step);
            RN_TRY(rn_strbuf_appendf(o, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s"
                                     "</text>\n", ox + PLOT_LEFT - 6, py + 4, text));
        }
    }
    return RN_OK;
}

static rn_status draw_series(rn_strbuf *o, const rn_panel *p, const rn_series *s,
                             const axis *xa, const axis *ya, double ox, double oy,
                             int clip_id)
{
    const char *color = PALETTE[(s->color % RN_PLOT_PALETTE_SIZE + RN_PLOT_PALETTE_SIZE) %
                                RN_PLOT_PALETTE_SIZE];
    const char *dash = dash_array(s->style);
    int open = 0;

    /* One path; a left-out point starts a new subpath with "M". */
    RN_TRY(rn_strbuf_appendf(o, "<path clip-path=\"url(#clip%d)\" fill=\"none\" "
                             "stroke=\"%s\" stroke-width=\"2\"", clip_id, color));
    if (dash)
        RN_TRY(rn_strbuf_appendf(o, " stroke-dasharray=\"%s\"", dash));
    RN_TRY(rn_strbuf_append(o, " d=\"", 4));
    for (int i = 0; i < s->n; i++) {
        if (!point_shown(p, s->y[i]) || !isfinite(s->x[i])) {
            open = 0;
            continue;
        }
        double px = ox + PLOT_LEFT + PLOT_W * axis_position(xa, s->x[i]);
        double py = oy + PLOT_TOP + PLOT_H * (1.0 - axis_position(ya, s->y[i]));
        RN_TRY(rn_strbuf_appendf(o, "%s%.1f %.1f ", open ? "L" : "M", px, py));
        open = 1;
    }
    RN_TRY(rn_strbuf_append(o, "\"/>\n", 4));

    if (!s->markers)
        return RN_OK;
    for (int i = 0; i < s->n; i++) {
        if (!point_shown(p, s->y[i]) || !isfinite(s->x[i]))
            continue;
        double px = ox + PLOT_LEFT + PLOT_W * axis_position(xa, s->x[i]);
        double py = oy + PLOT_TOP + PLOT_H * (1.0 - axis_position(ya, s->y[i]));
        RN_TRY(rn_strbuf_appendf(o, "<circle clip-path=\"url(#clip%d)\" cx=\"%.1f\" "
                                 "cy=\"%.1f\" r=\"2.5\" fill=\"%s\"/>\n", clip_id, px, py,
                                 color));
    }
    return RN_OK;
}

/* Two legend columns, or one when a label would run into the second. */
static int legend_columns(const rn_panel *p)
{
    size_t longest = 0;
    for (int s = 0; s < p->series_count; s++)
        if (strlen(p->series[s].label) > longest)
            longest = strlen(p->series[s].label);
    /* About 7 units per character at font size 12, after a 36-unit sample. */
    return 36 + 7 * (int)longest < LEGEND_COL_W ? 2 : 1;
}

static int legend_rows(const rn_panel *p)
{
    int columns = legend_columns(p);
    return (p->series_count + columns - 1) / columns;
}

static rn_status draw_legend(rn_strbuf *o, const rn_panel *p, double ox, double oy)
{
    int columns = legend_columns(p);
    for (int s = 0; s < p->series_count; s++) {
        const rn_series *series = &p->series[s];
        const char *color = PALETTE[(series->color % RN_PLOT_PALETTE_SIZE +
                                     RN_PLOT_PALETTE_SIZE) % RN_PLOT_PALETTE_SIZE];
        const char *dash = dash_array(series->style);
        double x = ox + PLOT_LEFT - 40 + (s % columns) * LEGEND_COL_W;
        double y = oy + PLOT_TOP + PLOT_H + LEGEND_GAP + (s / columns) * LEGEND_ROW_H;
        RN_TRY(rn_strbuf_appendf(o, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
                                 "stroke=\"%s\" stroke-width=\"2\"", x, y - 4, x + 30, y - 4,
                                 color));
        if (dash)
            RN_TRY(rn_strbuf_appendf(o, " stroke-dasharray=\"%s\"", dash));
        RN_TRY(rn_strbuf_appendf(o, "/>\n<text x=\"%.1f\" y=\"%.1f\">", x + 36, y));
        RN_TRY(rn_xml_append_escaped(o, series->label));
        RN_TRY(rn_strbuf_append(o, "</text>\n", 8));
    }
    return RN_OK;
}

static rn_status draw_panel(rn_strbuf *o, const rn_panel *p, double ox, double oy,
                            int clip_id)
{
    double x_lo, x_hi, y_lo, y_hi;
    int any = data_range(p, &x_lo, &x_hi, &y_lo, &y_hi);
    if (!any) {
        x_lo = 0;
        x_hi = 1;
        y_lo = p->log_y ? 0.1 : 0;
        y_hi = 1;
    }
    if (p->y_max > p->y_min) {
        y_lo = p->y_min;
        y_hi = p->y_max;
    }
    axis xa = linear_axis(x_lo, x_hi, p->x_integer);
    axis ya = p->log_y ? log_axis(y_lo, y_hi) : linear_axis(y_lo, y_hi, 0);

    RN_TRY(rn_strbuf_appendf(o, "<clipPath id=\"clip%d\"><rect x=\"%d\" y=\"%d\" width=\"%d\" "
                             "height=\"%d\"/></clipPath>\n", clip_id, (int)ox + PLOT_LEFT,
                             (int)oy + PLOT_TOP, PLOT_W, PLOT_H));
    if (p->title) {
        RN_TRY(rn_strbuf_appendf(o, "<text class=\"panel-title\" x=\"%.1f\" y=\"%.1f\" "
                                 "text-anchor=\"middle\">", ox + PLOT_LEFT + PLOT_W / 2.0,
                                 oy + PLOT_TOP - 10));
        RN_TRY(rn_xml_append_escaped(o, p->title));
        RN_TRY(rn_strbuf_append(o, "</text>\n", 8));
    }
    RN_TRY(draw_ticks(o, &xa, &ya, ox, oy));
    RN_TRY(rn_strbuf_appendf(o, "<rect class=\"frame\" x=\"%.1f\" y=\"%.1f\" width=\"%d\" "
                             "height=\"%d\"/>\n", ox + PLOT_LEFT, oy + PLOT_TOP, PLOT_W,
                             PLOT_H));

    /* Axis labels. */
    RN_TRY(rn_strbuf_appendf(o, "<text class=\"axis-label\" x=\"%.1f\" y=\"%.1f\" "
                             "text-anchor=\"middle\">", ox + PLOT_LEFT + PLOT_W / 2.0,
                             oy + PLOT_TOP + PLOT_H + 36));
    RN_TRY(rn_xml_append_escaped(o, p->xlabel ? p->xlabel : ""));
    RN_TRY(rn_strbuf_appendf(o, "</text>\n<text class=\"axis-label\" text-anchor=\"middle\" "
                             "transform=\"translate(%.1f %.1f) rotate(-90)\">", ox + 18,
                             oy + PLOT_TOP + PLOT_H / 2.0));
    RN_TRY(rn_xml_append_escaped(o, p->ylabel ? p->ylabel : ""));
    RN_TRY(rn_strbuf_append(o, "</text>\n", 8));

    for (int s = 0; s < p->series_count; s++)
        RN_TRY(draw_series(o, p, &p->series[s], &xa, &ya, ox, oy, clip_id));
    return draw_legend(o, p, ox, oy);
}

/* ---------------------------------------------------------------- figure */

rn_status rn_plot_svg_grid(rn_strbuf *o, const char *title, const rn_panel *panels,
                           int panel_count, int columns)
{
    RN_ASSERT(panel_count >= 1 && columns >= 1);
    if (columns > panel_count)
        columns = panel_count;
    int rows = 0;
    for (int k = 0; k < panel_count; k++) {
        int r = legend_rows(&panels[k]);
        rows = r > rows ? r : rows;
    }
    int panel_h = PLOT_TOP + PLOT_H + LEGEND_GAP + rows * LEGEND_ROW_H;
    int grid_rows = (panel_count + columns - 1) / columns;
    int width = PANEL_W * columns;
    int height = TITLE_H + grid_rows * panel_h;

    RN_TRY(rn_strbuf_appendf(o, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" "
                             "height=\"%d\" viewBox=\"0 0 %d %d\" font-family=\"DejaVu Sans, "
                             "Arial, Helvetica, sans-serif\" font-size=\"12\">\n",
                             width, height, width, height));
    RN_TRY(rn_strbuf_appendf(o, "<style>.grid{stroke:#dddddd;stroke-width:1}"
                             ".frame{fill:none;stroke:#333333;stroke-width:1}"
                             ".axis-label{font-size:13px}"
                             ".panel-title{font-size:13px;font-weight:bold}"
                             ".title{font-size:15px;font-weight:bold}</style>\n"
                             "<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n",
                             width, height));
    if (title) {
        RN_TRY(rn_strbuf_appendf(o, "<text class=\"title\" x=\"%.1f\" y=\"22\" "
                                 "text-anchor=\"middle\">", width / 2.0));
        RN_TRY(rn_xml_append_escaped(o, title));
        RN_TRY(rn_strbuf_append(o, "</text>\n", 8));
    }
    for (int k = 0; k < panel_count; k++)
        RN_TRY(draw_panel(o, &panels[k], (double)(k % columns) * PANEL_W,
                          TITLE_H + (double)(k / columns) * panel_h, k));
    return rn_strbuf_append(o, "</svg>\n", 7);
}

rn_status rn_plot_svg(rn_strbuf *o, const char *title, const rn_panel *panels,
                      int panel_count)
{
    return rn_plot_svg_grid(o, title, panels, panel_count, panel_count);
}

rn_status rn_plot_write(const char *path, const char *title, const rn_panel *panels,
                        int panel_count, int columns)
{
    rn_strbuf svg = {0};
    rn_status status = rn_plot_svg_grid(&svg, title, panels, panel_count, columns);
    if (status == RN_OK) {
        const void *chunks[1] = {svg.data};
        size_t sizes[1] = {svg.length};
        status = rn_file_write_atomic(path, chunks, sizes, 1);
    }
    rn_strbuf_free(&svg);
    return status;
}
