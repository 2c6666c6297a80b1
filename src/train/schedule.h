/* Learning-rate schedules with linear warm-up.
 *
 * The rate is evaluated before every step at the fractional epoch
 * t = epoch + batch / batches_per_epoch. Warm-up scales the rate linearly
 * from warmup_start_factor to 1 over the first warmup_epochs. After it,
 * constant keeps lr, step multiplies by gamma every step_size epochs counted
 * from the end of the warm-up, multistep multiplies by gamma at each
 * milestone counted from the start (in epochs, or in optimizer steps when
 * milestones_in_steps is set), and cosine decays from lr to 0
 * over the remaining epochs, continuously in t. Step and multistep change at epoch boundaries,
 * as PyTorch's StepLR and MultiStepLR do when stepped once per epoch. */
#ifndef RN_TRAIN_SCHEDULE_H
#define RN_TRAIN_SCHEDULE_H

#include <stdint.h>

#include "resnet.h"

typedef enum rn_schedule_kind {
    RN_SCHEDULE_CONSTANT,
    RN_SCHEDULE_STEP,
    RN_SCHEDULE_MULTISTEP,
    RN_SCHEDULE_COSINE,
} rn_schedule_kind;

enum { RN_MAX_MILESTONES = 16 };

typedef struct rn_schedule {
    rn_schedule_kind kind;
    double lr;
    int epochs;
    double warmup_epochs;
    double warmup_start_factor; /* torchvision's --lr-warmup-decay, 0.01 */
    int step_size;              /* step */
    double gamma;               /* step and multistep */
    int milestones[RN_MAX_MILESTONES];
    int milestone_count;
    int milestones_in_steps; /* multistep: milestones count optimizer steps, not epochs */
} rn_schedule;

rn_status rn_schedule_parse_kind(const char *text, rn_schedule_kind *out);
const char *rn_schedule_kind_name(rn_schedule_kind kind);
/* Parse "30,60,80" into milestones. */
rn_status rn_schedule_parse_milestones(const char *text, rn_schedule *schedule);
/* The rate at fractional epoch `epoch` for a schedule whose milestones
 * count epochs (milestones_in_steps == 0; asserted). */
double rn_schedule_lr(const rn_schedule *schedule, double epoch);

/* The rate before the optimizer step that follows `step` steps done, at
 * fractional epoch `epoch`. With milestones_in_steps, multistep multiplies
 * by gamma once step reaches each milestone, as PyTorch's MultiStepLR does
 * when stepped after every optimizer step. */
double rn_schedule_lr_at_step(const rn_schedule *schedule, double epoch, int64_t step);

#endif
