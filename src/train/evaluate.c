#include "train/evaluate.h"

#include "core/status.h"
#include "layers/layers.h"

rn_status rn_evaluate(rn_model *model, rn_plan *plan, rn_loader *loader, int epoch,
                      rn_eval_result *result, int64_t *confusion)
{
    const float *images;
    const int32_t *labels;
    int n, got, classes = model->config.classes;
    double loss_sum = 0.0;

    result->loss = 0.0;
    result->correct = 0;
    result->count = 0;
    RN_TRY(rn_loader_start_epoch(loader, epoch));
    while ((got = rn_loader_next(loader, &images, &labels, &n)) > 0) {
        int correct;
        const float *logits = rn_model_forward(model, plan, images, n, 0);
        loss_sum += n * rn_cross_entropy(NULL, &correct, logits, labels, n, classes, 0.0f);
        result->correct += correct;
        result->count += n;
        if (!confusion)
            continue;
        for (int i = 0; i < n; i++) {
            const float *z = logits + (size_t)i * classes;
            int best = 0;
            for (int k = 1; k < classes; k++)
                if (z[k] > z[best])
                    best = k;
            confusion[(size_t)labels[i] * classes + best]++;
        }
    }
    if (got < 0)
        return rn_loader_error(loader);
    if (result->count > 0)
        result->loss = loss_sum / result->count;
    return RN_OK;
}
