/* Model weights and training checkpoints as safetensors files.
 *
 * Tensor names are the model's PyTorch state_dict keys: parameters, BN
 * running statistics (F32) and `<bn>.num_batches_tracked` (I64 scalars).
 * A checkpoint adds the SGD momentum buffers as
 * `optimizer.<parameter key>.momentum_buffer`; loaders of plain weights
 * skip the `optimizer.` keys. `__metadata__` holds the architecture and the
 * preprocessing (docs/formats.md lists every key). */
#ifndef RN_IO_WEIGHTS_H
#define RN_IO_WEIGHTS_H

#include "io/safetensors.h"
#include "model/model.h"
#include "train/sgd.h"

#define RN_WEIGHTS_FORMAT "resnet.c"
#define RN_WEIGHTS_FORMAT_VERSION "1"
#define RN_OPTIMIZER_PREFIX "optimizer."

enum { RN_META_MAX = 48 };

/* Metadata key/value pairs to store in a file. */
typedef struct rn_metadata {
    const char *keys[RN_META_MAX];
    char values[RN_META_MAX][2048];
    int count;
} rn_metadata;

/* Add or replace a key (the key string must outlive the struct). */
void rn_metadata_set(rn_metadata *meta, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Write the model's weights (and the momentum buffers when sgd is not NULL)
 * with the architecture metadata plus `extra`, atomically. */
rn_status rn_weights_save(const rn_model *model, const rn_sgd *sgd,
                          const rn_metadata *extra, const char *path);

/* Read the architecture recorded in a file's metadata. */
rn_status rn_weights_read_config(const rn_safetensors *file, rn_model_config *config);

/* Reads the "class_names" metadata, a JSON array of `classes` strings, into
 * a new array of new strings (*names). Without that metadata, or when it is
 * not such an array, the names are the class numbers "0", "1", ...
 * Returns RN_ERR_NOMEM. Free the names with rn_class_names_free. */
rn_status rn_weights_read_class_names(const rn_safetensors *file, int classes, char ***names);

/* Frees an array of `classes` strings and the array. Accepts NULL. */
void rn_class_names_free(char **names, int classes);

/* Copy a file's tensors into the model. Every parameter and buffer must be
 * present with its exact shape and dtype. The file may contain no other
 * tensor except `optimizer.` keys. Any mismatch is RN_ERR_FORMAT naming the
 * key and both shapes. When sgd is not NULL, the momentum buffers are loaded
 * too and must all be present. */
rn_status rn_weights_apply(rn_model *model, rn_sgd *sgd, const rn_safetensors *file);

#endif
