#include "data/loader.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/rng.h"
#include "core/status.h"
#include "data/image.h"

/* Batch b of an epoch is filled into slot b % SLOT_COUNT, so that the
 * caller can read one slot while the thread fills the other. */
enum { SLOT_COUNT = 2 };

/* Mixed into the per-sample seeds so that they never coincide with the
 * shuffle seed of the same epoch. */
#define SAMPLE_STREAM ((uint64_t)1 << 63)

struct rn_loader {
    const rn_dataset *data;
    rn_loader_config cfg;
    int out_channels, out_height, out_width;
    size_t sample_numel;       /* floats per output sample */
    size_t src_sample_nbytes;  /* bytes per input sample */
    int64_t batches_per_epoch;

    int64_t *order;              /* (count) data set index at each position of the epoch */
    float *images[SLOT_COUNT];   /* (batch_size, C, H, W) each */
    int32_t *labels[SLOT_COUNT]; /* (batch_size) each */

    pthread_t thread;
    int thread_started;
    pthread_mutex_t mutex;
    pthread_cond_t work_cond;  /* the thread waits here for a free slot or stop */
    pthread_cond_t ready_cond; /* the caller waits here for a filled slot or an idle thread */

    /* Guarded by mutex. order and epoch_key change only while the thread
     * is not filling (worker_busy == 0), so the thread reads them unlocked. */
    uint64_t epoch_key;
    int epoch_started;
    int64_t filled;    /* batches before this index are ready */
    int64_t delivered; /* index of the batch the next rn_loader_next returns */
    int64_t released;  /* batches before this index are no longer read by the caller */
    int worker_busy;
    int stop;
    rn_status failure;          /* first failure of the epoch's filling, or RN_OK */
    char failure_message[1024]; /* its message, re-raised in the caller's thread */
    double wait_seconds;        /* time rn_loader_next spent waiting for batches */
};

static double monotonic_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static uint64_t epoch_key(uint64_t seed, int epoch)
{
    return rn_hash64(seed ^ rn_hash64((uint64_t)epoch));
}

static int batch_length(const rn_loader *loader, int64_t batch)
{
    int64_t remaining = loader->data->count - batch * loader->cfg.batch_size;
    return remaining < loader->cfg.batch_size ? (int)remaining : loader->cfg.batch_size;
}

/* Decodes sample index of a data set of image files and augments it into
 * dst. Fails naming the file if it cannot be decoded, or if its size no
 * longer gives the loader's output size. */
static rn_status decode_sample(const rn_loader *loader, int64_t index, rn_rng *rng, float *dst)
{
    const rn_dataset *data = loader->data;
    const char *path = data->paths[index];
    rn_image image;
    int out_height, out_width;

    RN_TRY(rn_image_read(path, data->channels, &image));
    rn_augment_output_size(&loader->cfg.augment, image.height, image.width, &out_height,
                           &out_width);
    if (out_height != loader->out_height || out_width != loader->out_width) {
        rn_status status = rn_error(RN_ERR_FORMAT, "%s is %dx%d (HxW), but the data set's "
                                    "images are %dx%d; resize it or pass --resize",
                                    path, image.height, image.width, loader->out_height,
                                    loader->out_width);
        rn_image_free(&image);
        return status;
    }
    rn_augment_image(&loader->cfg.augment, loader->cfg.train, image.pixels, image.channels,
                     image.height, image.width, dst, rng);
    rn_image_free(&image);
    return RN_OK;
}

static rn_status fill_batch(rn_loader *loader, int64_t batch, uint64_t key)
{
    const rn_dataset *data = loader->data;
    int slot = (int)(batch % SLOT_COUNT);
    int64_t first = batch * loader->cfg.batch_size;
    int n = batch_length(loader, batch);

    for (int k = 0; k < n; k++) {
        int64_t index = loader->order[first + k];
        float *dst = loader->images[slot] + (size_t)k * loader->sample_numel;
        rn_rng rng;
        rn_rng_seed(&rng, rn_hash64(key ^ rn_hash64(SAMPLE_STREAM ^ (uint64_t)index)));
        if (data->paths)
            RN_TRY(decode_sample(loader, index, &rng, dst));
        else
            rn_augment_image(&loader->cfg.augment, loader->cfg.train,
                             data->images + (size_t)index * loader->src_sample_nbytes,
                             data->channels, data->height, data->width, dst, &rng);
        loader->labels[slot][k] = data->labels[index];
    }
    return RN_OK;
}

static int worker_has_work(const rn_loader *loader)
{
    return loader->epoch_started && loader->failure == RN_OK &&
           loader->filled < loader->batches_per_epoch &&
           loader->filled < loader->released + SLOT_COUNT;
}

static void *worker_main(void *arg)
{
    rn_loader *loader = arg;

    pthread_mutex_lock(&loader->mutex);
    for (;;) {
        while (!loader->stop && !worker_has_work(loader))
            pthread_cond_wait(&loader->work_cond, &loader->mutex);
        if (loader->stop)
            break;

        int64_t batch = loader->filled;
        uint64_t key = loader->epoch_key;
        loader->worker_busy = 1;
        pthread_mutex_unlock(&loader->mutex);

        rn_status status = fill_batch(loader, batch, key);

        pthread_mutex_lock(&loader->mutex);
        loader->worker_busy = 0;
        if (status == RN_OK) {
            loader->filled = batch + 1;
        } else {
            loader->failure = status;
            snprintf(loader->failure_message, sizeof loader->failure_message, "%s",
                     rn_last_error());
        }
        pthread_cond_broadcast(&loader->ready_cond);
    }
    pthread_mutex_unlock(&loader->mutex);
    return NULL;
}

static rn_status check_config(const rn_dataset *data, const rn_loader_config *cfg)
{
    if (data->count <= 0 || (!data->images && !data->paths) || !data->labels)
        return rn_error(RN_ERR_INVALID, "cannot create a loader over an empty data set");
    if ((data->height < 1 || data->width < 1) &&
        !(cfg->augment.resize_h > 0 && cfg->augment.resize_w > 0))
        return rn_error(RN_ERR_INVALID, "the images of the data set differ in size; "
                        "set a resize so that every sample has the same size");
    if ((uint64_t)data->count > UINT32_MAX)
        return rn_error(RN_ERR_INVALID,
                        "data set of %" PRId64 " samples is too large for the loader "
                        "(the shuffle supports at most %" PRIu32 ")",
                        data->count, UINT32_MAX);
    if (cfg->batch_size < 1)
        return rn_error(RN_ERR_INVALID, "invalid batch size %d; expected at least 1",
                        cfg->batch_size);
    if (cfg->drop_last && data->count < cfg->batch_size)
        return rn_error(RN_ERR_INVALID,
                        "batch size %d with drop_last leaves no batch from %" PRId64
                        " samples; lower the batch size or turn off drop_last",
                        cfg->batch_size, data->count);
    return rn_augment_check(&cfg->augment, data->channels);
}

static rn_status allocate_buffers(rn_loader *loader)
{
    size_t batch_numel = (size_t)loader->cfg.batch_size * loader->sample_numel;
    if (loader->sample_numel != 0 && batch_numel / loader->sample_numel != (size_t)loader->cfg.batch_size)
        return rn_error(RN_ERR_NOMEM, "batch of %d samples of %zu floats overflows size_t",
                        loader->cfg.batch_size, loader->sample_numel);

    loader->order = malloc((size_t)loader->data->count * sizeof loader->order[0]);
    if (!loader->order)
        return rn_error(RN_ERR_NOMEM, "cannot allocate the loader's order of %" PRId64 " samples",
                        loader->data->count);
    for (int s = 0; s < SLOT_COUNT; s++) {
        loader->images[s] = rn_alloc_aligned(batch_numel * sizeof(float));
        loader->labels[s] = rn_alloc_aligned((size_t)loader->cfg.batch_size * sizeof(int32_t));
        if (!loader->images[s] || !loader->labels[s])
            return rn_error(RN_ERR_NOMEM,
                            "cannot allocate loader buffers for batches of %d x %zu floats",
                            loader->cfg.batch_size, loader->sample_numel);
    }
    return RN_OK;
}

rn_status rn_loader_create(const rn_dataset *data, const rn_loader_config *cfg,
                           rn_loader **out)
{
    *out = NULL;
    RN_TRY(check_config(data, cfg));

    rn_loader *loader = calloc(1, sizeof *loader);
    if (!loader)
        return rn_error(RN_ERR_NOMEM, "cannot allocate the loader");
    loader->data = data;
    loader->cfg = *cfg;
    loader->out_channels = data->channels;
    rn_augment_output_size(&cfg->augment, data->height, data->width,
                           &loader->out_height, &loader->out_width);
    loader->sample_numel = (size_t)loader->out_channels * loader->out_height * loader->out_width;
    loader->src_sample_nbytes = (size_t)data->channels * data->height * data->width;
    loader->batches_per_epoch = cfg->drop_last
                                    ? data->count / cfg->batch_size
                                    : (data->count + cfg->batch_size - 1) / cfg->batch_size;
    pthread_mutex_init(&loader->mutex, NULL);
    pthread_cond_init(&loader->work_cond, NULL);
    pthread_cond_init(&loader->ready_cond, NULL);

    rn_status status = allocate_buffers(loader);
    if (status == RN_OK) {
        int err = pthread_create(&loader->thread, NULL, worker_main, loader);
        if (err != 0)
            status = rn_error(RN_ERR_NOMEM, "cannot start the loader thread: %s", strerror(err));
        loader->thread_started = err == 0;
    }
    if (status != RN_OK) {
        rn_loader_destroy(loader);
        return status;
    }
    *out = loader;
    return RN_OK;
}

/* Fisher-Yates shuffle of the data set indices, or the identity order. */
static void compute_order(rn_loader *loader, uint64_t key)
{
    int64_t count = loader->data->count;

    for (int64_t i = 0; i < count; i++)
        loader->order[i] = i;
    if (!loader->cfg.shuffle)
        return;

    rn_rng rng;
    rn_rng_seed(&rng, key);
    for (int64_t i = count - 1; i > 0; i--) {
        int64_t j = rn_rng_below(&rng, (uint32_t)(i + 1));
        int64_t swap = loader->order[i];
        loader->order[i] = loader->order[j];
        loader->order[j] = swap;
    }
}

rn_status rn_loader_start_epoch_at(rn_loader *loader, int epoch, int64_t first_batch)
{
    if (epoch < 0)
        return rn_error(RN_ERR_INVALID, "invalid epoch %d; expected 0 or more", epoch);
    if (first_batch < 0 || first_batch > loader->batches_per_epoch)
        return rn_error(RN_ERR_INVALID,
                        "invalid first batch %" PRId64 "; an epoch has %" PRId64 " batches",
                        first_batch, loader->batches_per_epoch);

    pthread_mutex_lock(&loader->mutex);

    /* Let the thread finish the batch it is filling, then keep it waiting
     * while order and the counters change. */
    loader->epoch_started = 0;
    while (loader->worker_busy)
        pthread_cond_wait(&loader->ready_cond, &loader->mutex);

    loader->epoch_key = epoch_key(loader->cfg.seed, epoch);
    compute_order(loader, loader->epoch_key);
    loader->filled = first_batch;
    loader->delivered = first_batch;
    loader->released = first_batch;
    loader->failure = RN_OK;
    loader->epoch_started = 1;
    pthread_cond_broadcast(&loader->work_cond);
    pthread_mutex_unlock(&loader->mutex);
    return RN_OK;
}

rn_status rn_loader_start_epoch(rn_loader *loader, int epoch)
{
    return rn_loader_start_epoch_at(loader, epoch, 0);
}

int rn_loader_next(rn_loader *loader, const float **images, const int32_t **labels, int *n)
{
    pthread_mutex_lock(&loader->mutex);
    RN_ASSERT(loader->epoch_started);

    /* The batch returned by the previous call is no longer in use, so its
     * slot can take the batch after the one returned now. */
    loader->released = loader->delivered;
    pthread_cond_broadcast(&loader->work_cond);
    if (loader->delivered >= loader->batches_per_epoch) {
        pthread_mutex_unlock(&loader->mutex);
        return 0;
    }
    if (loader->filled <= loader->delivered) {
        double wait_start = monotonic_seconds();
        while (loader->filled <= loader->delivered && loader->failure == RN_OK)
            pthread_cond_wait(&loader->ready_cond, &loader->mutex);
        loader->wait_seconds += monotonic_seconds() - wait_start;
    }
    if (loader->filled <= loader->delivered) {
        rn_error(loader->failure, "%s", loader->failure_message);
        pthread_mutex_unlock(&loader->mutex);
        return -1;
    }

    int64_t batch = loader->delivered++;
    int slot = (int)(batch % SLOT_COUNT);
    *images = loader->images[slot];
    *labels = loader->labels[slot];
    *n = batch_length(loader, batch);
    pthread_mutex_unlock(&loader->mutex);
    return 1;
}

rn_status rn_loader_error(rn_loader *loader)
{
    pthread_mutex_lock(&loader->mutex);
    rn_status status = loader->failure;
    if (status != RN_OK)
        rn_error(status, "%s", loader->failure_message);
    pthread_mutex_unlock(&loader->mutex);
    return status;
}

double rn_loader_wait_seconds(rn_loader *loader)
{
    pthread_mutex_lock(&loader->mutex);
    double seconds = loader->wait_seconds;
    pthread_mutex_unlock(&loader->mutex);
    return seconds;
}

int64_t rn_loader_batches_per_epoch(const rn_loader *loader)
{
    return loader->batches_per_epoch;
}

void rn_loader_sample_shape(const rn_loader *loader, int *channels, int *height, int *width)
{
    *channels = loader->out_channels;
    *height = loader->out_height;
    *width = loader->out_width;
}

void rn_loader_destroy(rn_loader *loader)
{
    if (!loader)
        return;
    if (loader->thread_started) {
        pthread_mutex_lock(&loader->mutex);
        loader->stop = 1;
        pthread_cond_broadcast(&loader->work_cond);
        pthread_mutex_unlock(&loader->mutex);
        pthread_join(loader->thread, NULL);
    }
    pthread_cond_destroy(&loader->ready_cond);
    pthread_cond_destroy(&loader->work_cond);
    pthread_mutex_destroy(&loader->mutex);
    for (int s = 0; s < SLOT_COUNT; s++) {
        rn_free_aligned(loader->images[s]);
        rn_free_aligned(loader->labels[s]);
    }
    free(loader->order);
    free(loader);
}
