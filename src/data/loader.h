/* Mini-batch loader: shuffles, augments and batches a data set on a
 * background thread, one batch ahead of the caller (double buffering).
 *
 * The output is a pure function of (seed, epoch, configuration), whatever
 * the thread timing:
 *   - The order of epoch e is a Fisher-Yates shuffle drawn from an rn_rng
 *     seeded with rn_hash64(seed ^ rn_hash64(e)), or the data set order if
 *     shuffle is off.
 *   - The augmentation of a sample draws from its own rn_rng, seeded from
 *     that epoch key and the sample's index in the data set. It therefore
 *     does not depend on the batch size or on the sample's position.
 * Starting an epoch at batch k yields exactly the batches k, k+1, ... of a
 * full pass, which is what resuming a run mid-epoch needs.
 *
 * Samples of a data set of image files (dataset->paths) are decoded on the
 * thread as their batch is filled.
 *
 * A loader serves one caller thread. */
#ifndef RN_DATA_LOADER_H
#define RN_DATA_LOADER_H

#include <stdint.h>

#include "data/augment.h"
#include "data/dataset.h"
#include "resnet.h"

typedef struct rn_loader_config {
    int batch_size;
    int shuffle;       /* reshuffle every epoch */
    int drop_last;     /* drop the last batch if it is smaller than batch_size */
    int train;         /* apply the random steps of augment (crop, flip) */
    rn_augment augment;
    uint64_t seed;
} rn_loader_config;

typedef struct rn_loader rn_loader;

/* Creates a loader over data, which must outlive it, and starts its thread.
 * Returns RN_ERR_INVALID for an unusable configuration (including drop_last
 * with fewer samples than one batch) and RN_ERR_NOMEM. */
rn_status rn_loader_create(const rn_dataset *data, const rn_loader_config *cfg,
                           rn_loader **out);

/* Begins epoch `epoch` (>= 0) at its first batch, abandoning any batches
 * left from the previous epoch. Returns RN_ERR_INVALID for a negative epoch. */
rn_status rn_loader_start_epoch(rn_loader *loader, int epoch);

/* Begins epoch `epoch` at batch first_batch, in [0, batches per epoch].
 * The batches then match the tail of a full pass over the same epoch.
 * Returns RN_ERR_INVALID for a negative epoch or first_batch out of range. */
rn_status rn_loader_start_epoch_at(rn_loader *loader, int epoch, int64_t first_batch);

/* Waits for the next batch of the epoch. Returns 1 and sets images
 * (n, C, H, W), labels (n) and n, or returns 0 at the end of the epoch.
 * Returns -1 with the error message set (by rn_error) when the thread
 * failed to produce the batch: an image file that cannot be decoded, named
 * in the message; later calls fail the same way until the next
 * rn_loader_start_epoch*. rn_loader_error returns that failure's status.
 * The batch stays valid until the next call to rn_loader_next,
 * rn_loader_start_epoch* or rn_loader_destroy. Calling it before the first
 * rn_loader_start_epoch* is a programming error and aborts. */
int rn_loader_next(rn_loader *loader, const float **images, const int32_t **labels, int *n);

/* Returns the status of the thread's failure in this epoch, with its
 * message set again by rn_error, or RN_OK if there was none. */
rn_status rn_loader_error(rn_loader *loader);

int64_t rn_loader_batches_per_epoch(const rn_loader *loader);

/* Total seconds rn_loader_next has waited for the thread to fill a batch,
 * since the loader was created: the time the caller spent on data loading
 * beyond what the thread did in the background. */
double rn_loader_wait_seconds(rn_loader *loader);

/* Shape of one output sample (C, H, W), after resizing. */
void rn_loader_sample_shape(const rn_loader *loader, int *channels, int *height, int *width);

/* Stops and joins the thread, also in the middle of an epoch (it finishes
 * the batch it is filling first), and frees the loader. Accepts NULL. */
void rn_loader_destroy(rn_loader *loader);

#endif
