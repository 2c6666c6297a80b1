/* Line plots as standalone SVG documents, drawn without any external tool.
 *
 * A figure is one or more panels side by side under a common title. Each
 * panel has labelled axes, a grid, a linear or base-10 logarithmic y axis
 * and a legend below its plot area, so the legend never hides a curve.
 * Labels and titles are UTF-8 text. */
#ifndef RN_REPORT_PLOT_H
#define RN_REPORT_PLOT_H

#include "io/json.h"
#include "resnet.h"

typedef enum rn_line_style {
    RN_LINE_SOLID,
    RN_LINE_DASHED,
    RN_LINE_DOTTED,
    RN_LINE_DASHDOT,
} rn_line_style;

enum { RN_PLOT_LABEL_MAX = 80, RN_PLOT_PALETTE_SIZE = 8 };

typedef struct rn_series {
    char label[RN_PLOT_LABEL_MAX];
    const double *x, *y; /* (n) points; a non-finite y, or y <= 0 on a log
                          * axis, is left out and breaks the line there */
    int n;
    int color;           /* palette index, taken modulo RN_PLOT_PALETTE_SIZE */
    rn_line_style style;
    int markers;         /* draw a dot at every point */
} rn_series;

typedef struct rn_panel {
    const char *title;
    const char *xlabel, *ylabel;
    int log_y;
    double y_min, y_max; /* fixed y range when y_max > y_min, else from the data */
    int x_integer;       /* x ticks at whole numbers only (epochs, layer indices) */
    const rn_series *series;
    int series_count;
} rn_panel;

/* Append an SVG document with the panels side by side to out. */
rn_status rn_plot_svg(rn_strbuf *out, const char *title, const rn_panel *panels,
                      int panel_count);

/* Append an SVG document with the panels in rows of `columns`, left to
 * right and top to bottom. */
rn_status rn_plot_svg_grid(rn_strbuf *out, const char *title, const rn_panel *panels,
                           int panel_count, int columns);

/* Write the SVG document of rn_plot_svg_grid to path atomically. */
rn_status rn_plot_write(const char *path, const char *title, const rn_panel *panels,
                        int panel_count, int columns);

/* Append text with the five XML special characters escaped. */
rn_status rn_xml_append_escaped(rn_strbuf *out, const char *text);

#endif
