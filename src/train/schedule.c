#include "train/schedule.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"

rn_status rn_schedule_parse_kind(const char *text, rn_schedule_kind *out)
{
    static const char *names[] = {"constant", "step", "multistep", "cosine"};
    for (int k = 0; k < 4; k++) {
        if (!strcmp(text, names[k])) {
            *out = (rn_schedule_kind)k;
            return RN_OK;
        }
    }
    return rn_error(RN_ERR_INVALID, "invalid learning-rate schedule '%s': expected "
                    "constant, step, multistep or cosine", text);
}

const char *rn_schedule_kind_name(rn_schedule_kind kind)
{
    switch (kind) {
    case RN_SCHEDULE_CONSTANT: return "constant";
    case RN_SCHEDULE_STEP: return "step";
    case RN_SCHEDULE_MULTISTEP: return "multistep";
    case RN_SCHEDULE_COSINE: return "cosine";
    }
    return "?";
}

rn_status rn_schedule_parse_milestones(const char *text, rn_schedule *schedule)
{
    const char *p = text;
    schedule->milestone_count = 0;
    while (*p) {
        char *end;
        errno = 0;
        long value = strtol(p, &end, 10);
        if (end == p || errno || value < 1 || value > 1000000 ||
            (*end && *end != ','))
            return rn_error(RN_ERR_INVALID, "invalid milestones '%s': expected "
                            "increasing positive epochs (or steps) separated by commas, "
                            "such as 30,60,80", text);
        if (schedule->milestone_count == RN_MAX_MILESTONES)
            return rn_error(RN_ERR_INVALID, "too many milestones in '%s': at most %d",
                            text, RN_MAX_MILESTONES);
        if (schedule->milestone_count > 0 &&
            value <= schedule->milestones[schedule->milestone_count - 1])
            return rn_error(RN_ERR_INVALID, "milestones '%s' must increase", text);
        schedule->milestones[schedule->milestone_count++] = (int)value;
        p = *end ? end + 1 : end;
    }
    return RN_OK;
}

double rn_schedule_lr(const rn_schedule *s, double epoch)
{
    RN_ASSERT(!s->milestones_in_steps);
    return rn_schedule_lr_at_step(s, epoch, 0);
}

double rn_schedule_lr_at_step(const rn_schedule *s, double epoch, int64_t step)
{
    double factor = 1.0;

    if (epoch < s->warmup_epochs) {
        double progress = epoch / s->warmup_epochs;
        return s->lr * (s->warmup_start_factor + (1.0 - s->warmup_start_factor) * progress);
    }
    double after = epoch - s->warmup_epochs;
    int whole = (int)floor(epoch + 1e-9);

    switch (s->kind) {
    case RN_SCHEDULE_CONSTANT:
        break;
    case RN_SCHEDULE_STEP:
        /* Decays count from the end of the warm-up; whole epochs still inside
         * a fractional warm-up give a negative count, which means none. */
        if (whole - s->warmup_epochs > 0)
            factor = pow(s->gamma, floor((whole - s->warmup_epochs) / s->step_size + 1e-9));
        break;
    case RN_SCHEDULE_MULTISTEP:
        for (int k = 0; k < s->milestone_count; k++)
            if ((s->milestones_in_steps ? step : whole) >= s->milestones[k])
                factor *= s->gamma;
        break;
    case RN_SCHEDULE_COSINE: {
        double span = s->epochs - s->warmup_epochs;
        double progress = span > 0 ? after / span : 1.0;
        if (progress > 1.0)
            progress = 1.0;
        factor = 0.5 * (1.0 + cos(M_PI * progress));
        break;
    }
    }
    return s->lr * factor;
}
