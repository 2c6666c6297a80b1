/* The plots and the HTML report of a training run directory. */
#ifndef RN_REPORT_RUN_REPORT_H
#define RN_REPORT_RUN_REPORT_H

#include "resnet.h"

/* One row of a run's metrics.csv. */
typedef struct rn_run_metrics {
    int epoch; /* 1-based */
    double lr;
    double train_loss, train_accuracy;
    double test_loss, test_accuracy;
    double train_seconds, eval_seconds, images_per_sec;
} rn_run_metrics;

/* Read metrics.csv (columns found by their header names) into a malloc'ed
 * array of *count rows. RN_ERR_FORMAT names the file and the bad line. */
rn_status rn_run_metrics_read(const char *path, rn_run_metrics **rows, int *count);

/* Write DIR/curves.svg (train loss, train accuracy and test accuracy per
 * epoch) and DIR/report.html (that plot inline, the final metrics, a table
 * per epoch and the configuration) from DIR/metrics.csv. config_text holds
 * the configuration as "key=value" lines. */
rn_status rn_run_report_write(const char *dir, const char *config_text);

#endif
