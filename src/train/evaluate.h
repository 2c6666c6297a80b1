/* Evaluation of a model over a data set in inference mode. */
#ifndef RN_TRAIN_EVALUATE_H
#define RN_TRAIN_EVALUATE_H

#include <stdint.h>

#include "data/loader.h"
#include "model/model.h"

typedef struct rn_eval_result {
    double loss;     /* mean cross-entropy */
    int64_t correct; /* top-1 hits */
    int64_t count;
} rn_eval_result;

/* Run every batch of the loader's current epoch through the model in
 * evaluation mode (running BN statistics). `confusion`, when not NULL, is a
 * (classes, classes) matrix of counts indexed [label][prediction] that is
 * added to. */
rn_status rn_evaluate(rn_model *model, rn_plan *plan, rn_loader *loader, int epoch,
                      rn_eval_result *result, int64_t *confusion);

#endif
