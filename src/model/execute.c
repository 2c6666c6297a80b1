/* Memory planning and the forward and backward passes of a model. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "kernels/gemm.h"
#include "layers/conv_direct.h"
#include "layers/conv_implicit.h"
#include "model/model.h"

struct rn_plan {
    int mb;         /* planned (maximum) batch size */
    int threads;    /* OpenMP threads the scratch memory was sized for */
    int current_mb; /* batch size of the last forward pass */
    const float **value_data; /* per value: (mb, c, h, w); [0] is the input */
    float **grad_data;        /* per value: its gradient, NULL for the input */
    unsigned char *grad_ready;
    float **save_mean, **save_invstd; /* per node, BN only: (c) */
    /* Per BN node: the index of the ReLU node fused into it, or 0. */
    int *fused_relu;
    /* Per node: 1 for a node that runs inside another one. That is a ReLU
     * in the BN before it, or in inference plans a node folded into a
     * convolution. */
    unsigned char *skip;
    /* Per convolution node of an inference plan: 1 + the BN node folded
     * into it (0: none), 1 + the value added after that BN (0: none), and
     * whether a ReLU follows. */
    int *fold_bn, *fold_residual;
    unsigned char *fold_relu;
    int32_t **argmax;                 /* per node, max pooling only */
    /* Per convolution node of an inference plan: its weights transformed
     * for Winograd (rn_conv2d_prepare_weights), or NULL. They match the
     * model's weights_version `prepared_version` once prepared_valid. */
    float **prepared;
    unsigned long prepared_version;
    int prepared_valid;
    size_t prepared_nbytes;
    rn_profile *profile;              /* NULL unless timing layers */
    int inference;                    /* forward in evaluation mode only */
    float *scratch;
    void *activation_block, *grad_block, *state_block, *prepared_block;
    size_t nbytes;
};

static size_t value_numel(const rn_model *m, int v, int mb)
{
    return (size_t)mb * m->values[v].c * m->values[v].h * m->values[v].w;
}

static size_t round16(size_t n)
{
    return (n + 15) & ~(size_t)15;
}

static rn_conv_shape conv_shape(const rn_model *m, const rn_node *node, int mb)
{
    rn_value in = m->values[node->src], out = m->values[node->dst];
    return (rn_conv_shape){
        .mb = mb, .ic = in.c, .ih = in.h, .iw = in.w,
        .oc = out.c, .oh = out.h, .ow = out.w,
        .kh = node->kh, .kw = node->kw, .sh = node->stride, .sw = node->stride,
        .ph = node->pad, .pw = node->pad, .groups = node->groups,
    };
}

static rn_pool_shape pool_shape(const rn_model *m, const rn_node *node, int mb)
{
    rn_value in = m->values[node->src], out = m->values[node->dst];
    return (rn_pool_shape){
        .mb = mb, .c = in.c, .ih = in.h, .iw = in.w, .oh = out.h, .ow = out.w,
        .kh = node->kh, .kw = node->kw, .sh = node->stride, .sw = node->stride,
        .ph = node->pad, .pw = node->pad,
    };
}

/* Fold the addition `node` (index k) into the convolution of one of its
 * inputs. That input must be a folded BN's output that only the addition
 * reads, with nothing folded after the BN yet. The other input must exist
 * before the convolution runs. Returns whether it folded. */
static int fold_addition(const rn_model *m, rn_plan *plan, const rn_node *node, int k,
                         int *storage, const int *consumers, const int *producer,
                         int *folded_into)
{
    int inputs[2] = {node->src, node->src2};
    for (int j = 0; j < 2; j++) {
        int x = inputs[j], other = inputs[1 - j];
        int conv = folded_into[x];
        if (conv < 0 || consumers[x] != 1 || x == other || plan->fold_relu[conv] ||
            plan->fold_residual[conv])
            continue;
        if (other != 0 && producer[other] >= conv)
            continue; /* not computed yet when the convolution runs */
        plan->fold_residual[conv] = other + 1;
        plan->skip[k] = 1;
        storage[node->dst] = storage[x];
        folded_into[node->dst] = conv;
        return 1;
    }
    return 0;
}

/* A ReLU may overwrite its input when nothing else reads that input: no
 * backward pass reads its own output except ReLU's, so the value before the
 * ReLU is never needed again. A residual addition may likewise overwrite an
 * input that only it reads, unless a ReLU (on its own or fused into a BN)
 * produced that input, because that ReLU's backward pass reads it. Returns,
 * per value, the value whose memory it uses (itself unless aliased). A ReLU
 * that directly follows the BN whose output it overwrites is fused into
 * that BN.
 *
 * With fold (inference), a BN that alone reads a convolution's output runs
 * inside that convolution (rn_conv_post). So does an addition that alone
 * reads the BN's output, once its other input is ready. So does a ReLU
 * that alone reads the BN's output or the sum. */
static void plan_aliases(const rn_model *m, int *storage, rn_plan *plan, int fold)
{
    int *fused_relu = plan->fused_relu;
    unsigned char *skip = plan->skip;
    int *consumers = calloc(m->value_count, sizeof(int));
    RN_ASSERT(consumers);
    for (int i = 0; i < m->node_count; i++) {
        consumers[m->nodes[i].src]++;
        if (m->nodes[i].src2 >= 0)
            consumers[m->nodes[i].src2]++;
    }
    int *producer = malloc(m->value_count * sizeof(int));
    int *folded_into = malloc(m->value_count * sizeof(int)); /* convolution node or -1 */
    RN_ASSERT(producer && folded_into);
    for (int v = 0; v < m->value_count; v++) {
        storage[v] = v;
        producer[v] = -1;
        folded_into[v] = -1;
    }
    for (int i = 0; i < m->node_count; i++)
        producer[m->nodes[i].dst] = i;
    for (int i = 0; i < m->node_count; i++) {
        const rn_node *node = &m->nodes[i];
        int conv = producer[node->src];
        if (fold && node->kind == RN_NODE_BN && conv >= 0 &&
            m->nodes[conv].kind == RN_NODE_CONV && consumers[node->src] == 1) {
            plan->fold_bn[conv] = i + 1;
            skip[i] = 1;
            storage[node->dst] = storage[node->src];
            folded_into[node->dst] = conv;
            continue;
        }
        if (fold && node->kind == RN_NODE_ADD && fold_addition(m, plan, node, i, storage,
                                                              consumers, producer, folded_into))
            continue;
        if (fold && node->kind == RN_NODE_RELU && folded_into[node->src] >= 0 &&
            consumers[node->src] == 1) {
            plan->fold_relu[folded_into[node->src]] = 1;
            skip[i] = 1;
            storage[node->dst] = storage[node->src];
            continue;
        }
        if (node->kind == RN_NODE_ADD) {
            int inputs[2] = {node->src, node->src2};
            for (int k = 0; k < 2; k++) {
                int v = inputs[k], p = v > 0 ? producer[v] : -1;
                if (p < 0 || consumers[v] != 1 || storage[v] != v ||
                    m->nodes[p].kind == RN_NODE_RELU || fused_relu[p])
                    continue;
                storage[node->dst] = v;
                break;
            }
        }
        if (node->kind == RN_NODE_RELU && node->src != 0 && consumers[node->src] == 1) {
            storage[node->dst] = storage[node->src];
            if (i > 0 && m->nodes[i - 1].kind == RN_NODE_BN && m->nodes[i - 1].dst == node->src) {
                fused_relu[i - 1] = i;
                skip[i] = 1;
            }
        }
    }
    free(consumers);
    free(producer);
    free(folded_into);
}

/* Whether the addition at node k can give its output's gradient, unchanged,
 * to input `second` as well as to `first`, the two sharing one buffer. No
 * backward pass writes into its own output's gradient. So sharing is safe
 * when only the addition reads `second`, and every other reader of `first`
 * (which adds into the buffer) comes before `second`'s producer in the
 * forward pass, and so after it in the backward pass. */
static int grad_shares(const rn_model *m, int k, int first, int second, const int *producer)
{
    int p = second > 0 ? producer[second] : -1;
    if (p < 0 || second == first)
        return 0;
    for (int i = 0; i < m->node_count; i++) {
        const rn_node *node = &m->nodes[i];
        int reads_second = node->src == second || node->src2 == second;
        int reads_first = node->src == first || node->src2 == first;
        /* i == p: second's producer would read the buffer it writes. */
        if (i != k && (reads_second || (reads_first && i >= p)))
            return 0;
    }
    return 1;
}

/* Return whether the backward pass of `node` may write its input's gradient
 * over its output's. That is safe when each input element's gradient depends
 * only on the same output element's, or (BN) on per-channel sums taken first. */
static int grad_in_place(const rn_model *m, const rn_node *node, int mb)
{
    return (node->kind == RN_NODE_RELU || node->kind == RN_NODE_BN) &&
           value_numel(m, node->src, mb) == value_numel(m, node->dst, mb);
}

/* Gradient slots: a value's gradient lives from the backward pass of its
 * last reader to that of its producer, so slots are reused in reverse order.
 * A slot is free again once every value in it has been released.
 *
 * A ReLU or BN hands its output's slot on to its input when it is the first
 * to write the input's gradient (the input has no slot yet) and no other
 * value uses the slot. Its backward pass then overwrites its output's
 * gradient with its input's, which grad_in_place() allows.
 *
 * When no free slot is large enough, the largest free one grows, so the
 * stem's large gradients take over the small ones' slots rather than adding
 * to them.
 * Fills slot_of[value] and slot sizes; returns the slot count. */
static int plan_grad_slots(const rn_model *m, int mb, int *slot_of,
                           size_t *slot_numel, int *slot_busy)
{
    int slots = 0;
    int *producer = malloc(m->value_count * sizeof(int));
    RN_ASSERT(producer);
    for (int v = 0; v < m->value_count; v++) {
        slot_of[v] = -1;
        producer[v] = -1;
    }
    for (int i = 0; i < m->node_count; i++)
        producer[m->nodes[i].dst] = i;

    int last = m->nodes[m->node_count - 1].dst;
    for (int i = m->node_count; i >= 0; i--) {
        int want[2] = {-1, -1};
        int release = -1;
        if (i == m->node_count) {
            want[0] = last;
        } else {
            want[0] = m->nodes[i].src;
            want[1] = m->nodes[i].src2;
            release = m->nodes[i].dst;
        }
        /* The two inputs of an addition get the output's gradient as it
         * is: the first of them to need a slot takes over the output's, so
         * the backward pass copies the gradient at most once. Where
         * grad_shares() allows, the other input takes it too and nothing is
         * copied. Only a slot that the output alone uses is taken over: a
         * value sharing it from a later addition would receive what the
         * input's other readers add. */
        if (i < m->node_count && m->nodes[i].kind == RN_NODE_ADD && slot_of[release] >= 0 &&
            slot_busy[slot_of[release]] == 1) {
            int out_slot = slot_of[release];
            int takes[2] = {0, 0};
            for (int k = 0; k < 2; k++)
                takes[k] = want[k] > 0 && slot_of[want[k]] < 0 &&
                           value_numel(m, want[k], mb) == value_numel(m, release, mb);
            if (takes[0] && takes[1] && !grad_shares(m, i, want[0], want[1], producer) &&
                !grad_shares(m, i, want[1], want[0], producer))
                takes[1] = 0;
            for (int k = 0; k < 2; k++) {
                if (takes[k]) {
                    slot_of[want[k]] = out_slot;
                    slot_busy[out_slot]++;
                }
            }
        }
        if (i < m->node_count && grad_in_place(m, &m->nodes[i], mb) && want[0] > 0 &&
            slot_of[want[0]] < 0 && slot_of[release] >= 0 &&
            slot_busy[slot_of[release]] == 1) {
            slot_of[want[0]] = slot_of[release];
            slot_busy[slot_of[release]]++;
        }
        for (int k = 0; k < 2; k++) {
            int v = want[k];
            if (v <= 0 || slot_of[v] >= 0)
                continue;
            size_t need = value_numel(m, v, mb);
            int best = -1, largest = -1;
            for (int s = 0; s < slots; s++) {
                if (slot_busy[s])
                    continue;
                if (slot_numel[s] >= need && (best < 0 || slot_numel[s] < slot_numel[best]))
                    best = s;
                if (largest < 0 || slot_numel[s] > slot_numel[largest])
                    largest = s;
            }
            if (best < 0 && largest >= 0) {
                best = largest;
                slot_numel[best] = need;
            } else if (best < 0) {
                best = slots++;
                slot_numel[best] = need;
            }
            slot_busy[best] = 1;
            slot_of[v] = best;
        }
        /* slot_busy counts the values holding a slot. */
        if (release > 0 && slot_of[release] >= 0)
            slot_busy[slot_of[release]]--;
    }
    free(producer);
    return slots;
}

void rn_plan_destroy(rn_plan *plan)
{
    if (!plan)
        return;
    free(plan->value_data);
    free(plan->grad_data);
    free(plan->grad_ready);
    free(plan->save_mean);
    free(plan->save_invstd);
    free(plan->argmax);
    free(plan->prepared);
    free(plan->fused_relu);
    free(plan->skip);
    free(plan->fold_bn);
    free(plan->fold_residual);
    free(plan->fold_relu);
    rn_free_aligned(plan->scratch);
    rn_free_aligned(plan->activation_block);
    rn_free_aligned(plan->grad_block);
    rn_free_aligned(plan->state_block);
    rn_free_aligned(plan->prepared_block);
    free(plan);
}

size_t rn_plan_nbytes(const rn_plan *plan)
{
    return plan->nbytes;
}

size_t rn_plan_weights_nbytes(const rn_plan *plan)
{
    return plan->prepared_nbytes;
}

/* Activation memory of a forward-only plan: a value's region is free again
 * once its last reader has run, so regions are reused in forward order.
 * Fills value_offset for every value that owns its storage and returns the
 * floats needed. */
static size_t plan_inference_activations(const rn_model *m, int mb, const int *storage,
                                         size_t *value_offset)
{
    int nv = m->value_count;
    int *last_use = calloc(nv, sizeof(int));
    int *slot_of = calloc(nv, sizeof(int));
    size_t *slot_numel = calloc(nv, sizeof(size_t));
    int *slot_busy = calloc(nv, sizeof(int));
    RN_ASSERT(last_use && slot_of && slot_numel && slot_busy);

    for (int v = 0; v < nv; v++)
        last_use[v] = -1;
    for (int i = 0; i < m->node_count; i++) {
        last_use[storage[m->nodes[i].src]] = i;
        if (m->nodes[i].src2 >= 0)
            last_use[storage[m->nodes[i].src2]] = i;
    }
    last_use[storage[nv - 1]] = m->node_count; /* the logits outlive the pass */

    int slots = 0;
    for (int i = 0; i < m->node_count; i++) {
        int v = m->nodes[i].dst;
        if (storage[v] == v) {
            size_t need = value_numel(m, v, mb);
            int best = -1;
            for (int k = 0; k < slots; k++)
                if (!slot_busy[k] && slot_numel[k] >= need &&
                    (best < 0 || slot_numel[k] < slot_numel[best]))
                    best = k;
            if (best < 0) {
                best = slots++;
                slot_numel[best] = need;
            }
            slot_busy[best] = 1;
            slot_of[v] = best;
        }
        /* Free what this node read for the last time, and an output that
         * nothing reads. */
        int done[3] = {storage[m->nodes[i].src],
                       m->nodes[i].src2 >= 0 ? storage[m->nodes[i].src2] : 0, storage[v]};
        for (int k = 0; k < 3; k++) {
            int r = done[k];
            if (r > 0 && last_use[r] <= i)
                slot_busy[slot_of[r]] = 0;
        }
    }
    size_t numel = 0;
    size_t *slot_offset = calloc(slots > 0 ? slots : 1, sizeof(size_t));
    RN_ASSERT(slot_offset);
    for (int k = 0; k < slots; k++) {
        slot_offset[k] = numel;
        numel += round16(slot_numel[k]);
    }
    for (int v = 1; v < nv; v++)
        if (storage[v] == v)
            value_offset[v] = slot_offset[slot_of[v]];
    free(slot_offset);
    free(last_use);
    free(slot_of);
    free(slot_numel);
    free(slot_busy);
    return numel;
}

enum plan_kind {
    PLAN_TRAINING,
    PLAN_KEEP_VALUES,
    PLAN_INFERENCE,
};

static rn_status plan_create(const rn_model *m, int mb, enum plan_kind kind, rn_plan **out)
{
    int nv = m->value_count, nn = m->node_count;
    rn_plan *plan = calloc(1, sizeof *plan);
    int *storage = calloc(nv, sizeof(int));
    int *slot_of = calloc(nv, sizeof(int));
    size_t *slot_numel = calloc(nv, sizeof(size_t));
    int *slot_busy = calloc(nv, sizeof(int));
    size_t *value_offset = calloc(nv, sizeof(size_t));
    size_t *slot_offset = calloc(nv, sizeof(size_t));
    rn_status status = RN_OK;

    *out = NULL;
    if (mb < 1) {
        status = rn_error(RN_ERR_INVALID, "invalid batch size %d: must be at least 1", mb);
        goto done;
    }
    if (!plan || !storage || !slot_of || !slot_numel || !slot_busy || !value_offset ||
        !slot_offset)
        goto nomem;
    plan->mb = mb;
    plan->threads = rn_threads_get();
    plan->value_data = calloc(nv, sizeof(float *));
    plan->grad_data = calloc(nv, sizeof(float *));
    plan->grad_ready = calloc(nv, 1);
    plan->save_mean = calloc(nn, sizeof(float *));
    plan->save_invstd = calloc(nn, sizeof(float *));
    plan->argmax = calloc(nn, sizeof(int32_t *));
    plan->fused_relu = calloc(nn, sizeof(int));
    plan->skip = calloc(nn, 1);
    plan->fold_bn = calloc(nn, sizeof(int));
    plan->fold_residual = calloc(nn, sizeof(int));
    plan->fold_relu = calloc(nn, 1);
    plan->prepared = calloc(nn, sizeof(float *));
    if (!plan->value_data || !plan->grad_data || !plan->grad_ready ||
        !plan->save_mean || !plan->save_invstd || !plan->argmax ||
        !plan->fused_relu || !plan->skip || !plan->fold_bn || !plan->fold_residual ||
        !plan->fold_relu || !plan->prepared)
        goto nomem;

    /* Activations: one region per stored value, or for inference regions
     * reused once their value is dead. */
    plan->inference = kind == PLAN_INFERENCE;
    if (kind == PLAN_KEEP_VALUES) {
        for (int v = 0; v < nv; v++)
            storage[v] = v;
    } else {
        plan_aliases(m, storage, plan, kind == PLAN_INFERENCE);
    }
    size_t activation_numel = 0;
    if (kind == PLAN_INFERENCE) {
        activation_numel = plan_inference_activations(m, mb, storage, value_offset);
    } else {
        for (int v = 1; v < nv; v++) {
            if (storage[v] != v)
                continue;
            value_offset[v] = activation_numel;
            activation_numel += round16(value_numel(m, v, mb));
        }
    }

    /* Gradients, none for inference. */
    int slots = kind == PLAN_INFERENCE ? 0 : plan_grad_slots(m, mb, slot_of, slot_numel, slot_busy);
    size_t grad_numel = 0;
    for (int s = 0; s < slots; s++) {
        slot_offset[s] = grad_numel;
        grad_numel += round16(slot_numel[s]);
    }

    /* Saved state (floats; max-pooling indices are int32 of the same size)
     * and the largest convolution scratch. */
    size_t state_numel = 0, scratch_numel = 0, prepared_numel = 0;
    for (int i = 0; i < nn; i++) {
        const rn_node *node = &m->nodes[i];
        if (node->kind == RN_NODE_BN)
            state_numel += 2 * round16(m->values[node->src].c);
        else if (node->kind == RN_NODE_MAXPOOL)
            state_numel += round16(value_numel(m, node->dst, mb));
        else if (node->kind == RN_NODE_CONV) {
            rn_conv_shape s = conv_shape(m, node, mb);
            size_t need = rn_conv2d_scratch_numel(&s, plan->threads);
            if (need > scratch_numel)
                scratch_numel = need;
            if (kind == PLAN_INFERENCE)
                prepared_numel += round16(rn_conv2d_prepared_numel(&s));
        }
    }

    plan->activation_block = rn_alloc_aligned(activation_numel * sizeof(float));
    plan->grad_block = rn_alloc_aligned(grad_numel * sizeof(float));
    plan->state_block = rn_alloc_aligned(state_numel * sizeof(float));
    plan->scratch = rn_alloc_aligned(scratch_numel * sizeof(float));
    plan->prepared_block = rn_alloc_aligned(prepared_numel * sizeof(float));
    if (!plan->activation_block || !plan->grad_block || !plan->state_block ||
        !plan->scratch || !plan->prepared_block)
        goto nomem;
    plan->nbytes = (activation_numel + grad_numel + state_numel + scratch_numel +
                    prepared_numel) * sizeof(float);
    plan->prepared_nbytes = prepared_numel * sizeof(float);

    float *activations = plan->activation_block;
    for (int v = 1; v < nv; v++)
        plan->value_data[v] = activations + value_offset[storage[v]];
    float *grads = plan->grad_block;
    for (int v = 1; v < nv; v++)
        plan->grad_data[v] = slot_of[v] >= 0 ? grads + slot_offset[slot_of[v]] : NULL;
    float *prepared = plan->prepared_block;
    for (int i = 0; i < nn && kind == PLAN_INFERENCE; i++) {
        if (m->nodes[i].kind != RN_NODE_CONV)
            continue;
        rn_conv_shape s = conv_shape(m, &m->nodes[i], mb);
        size_t need = rn_conv2d_prepared_numel(&s);
        if (need) {
            plan->prepared[i] = prepared;
            prepared += round16(need);
        }
    }
    float *state = plan->state_block;
    for (int i = 0; i < nn; i++) {
        const rn_node *node = &m->nodes[i];
        if (node->kind == RN_NODE_BN) {
            size_t c = round16(m->values[node->src].c);
            plan->save_mean[i] = state;
            plan->save_invstd[i] = state + c;
            state += 2 * c;
        } else if (node->kind == RN_NODE_MAXPOOL) {
            plan->argmax[i] = (int32_t *)state;
            state += round16(value_numel(m, node->dst, mb));
        }
    }
    *out = plan;
    plan = NULL;
    goto done;

nomem:
    status = rn_error(RN_ERR_NOMEM, "out of memory planning %s at batch size %d; "
                      "try a smaller --batch-size", m->config.arch, mb);
done:
    rn_plan_destroy(plan);
    free(storage);
    free(slot_of);
    free(slot_numel);
    free(slot_busy);
    free(value_offset);
    free(slot_offset);
    return status;
}

rn_status rn_plan_create(const rn_model *m, int mb, rn_plan **out)
{
    return plan_create(m, mb, PLAN_TRAINING, out);
}

rn_status rn_plan_create_keeping_values(const rn_model *m, int mb, rn_plan **out)
{
    return plan_create(m, mb, PLAN_KEEP_VALUES, out);
}

rn_status rn_plan_create_inference(const rn_model *m, int mb, rn_plan **out)
{
    return plan_create(m, mb, PLAN_INFERENCE, out);
}

const float *rn_plan_value(const rn_plan *plan, int value)
{
    return plan->value_data[value];
}

static float *param(rn_model *m, int id)
{
    return id < 0 ? NULL : m->param_data + m->params[id].offset;
}

static float *grad(rn_model *m, int id)
{
    return id < 0 ? NULL : m->grad_data + m->params[id].offset;
}

static float *buffer(rn_model *m, int id)
{
    return m->buffer_data + m->buffers[id].offset;
}

/* Node i's prepared weights if they serve a pass over mb images, else NULL:
 * the plan prepares them for its full batch. */
static const float *prepared_for(const rn_model *m, const rn_plan *plan, int i, int mb)
{
    if (!plan->prepared[i] || mb == plan->mb)
        return plan->prepared[i];
    rn_conv_shape full = conv_shape(m, &m->nodes[i], plan->mb);
    rn_conv_shape s = conv_shape(m, &m->nodes[i], mb);
    return rn_conv2d_prepared_serves(&full, &s) ? plan->prepared[i] : NULL;
}

const float *rn_model_forward(rn_model *m, rn_plan *plan, const float *images,
                              int mb, int train)
{
    RN_ASSERT(mb >= 1 && mb <= plan->mb);
    RN_ASSERT(plan->threads == rn_threads_get());
    RN_ASSERT(!train || !plan->inference);
    plan->current_mb = mb;
    plan->value_data[0] = images;
    if (plan->inference && (!plan->prepared_valid || plan->prepared_version != m->weights_version)) {
        for (int i = 0; i < m->node_count; i++) {
            if (!plan->prepared[i])
                continue;
            rn_conv_shape s = conv_shape(m, &m->nodes[i], plan->mb);
            rn_conv2d_prepare_weights(plan->prepared[i], param(m, m->nodes[i].weights), &s);
        }
        plan->prepared_version = m->weights_version;
        plan->prepared_valid = 1;
    }

    for (int i = 0; i < m->node_count; i++) {
        const rn_node *node = &m->nodes[i];
        const float *src = plan->value_data[node->src];
        float *dst = (float *)plan->value_data[node->dst];
        rn_value in = m->values[node->src];
        rn_activation activation = plan->fused_relu[i] ? RN_ACTIVATION_RELU : RN_ACTIVATION_NONE;

        if (plan->skip[i])
            continue;
        double start = plan->profile ? omp_get_wtime() : 0.0;
        switch (node->kind) {
        case RN_NODE_CONV: {
            rn_conv_shape s = conv_shape(m, node, mb);
            rn_conv_post post = {0};
            int bn = plan->fold_bn[i] - 1;
            if (bn >= 0) {
                /* The BN's unused statistics buffers take its coefficients. */
                const rn_node *b = &m->nodes[bn];
                rn_bn_eval_coefficients(plan->save_mean[bn], plan->save_invstd[bn],
                                        param(m, b->weights), param(m, b->bias),
                                        buffer(m, b->running_mean), buffer(m, b->running_var),
                                        s.oc);
                post.scale = plan->save_mean[bn];
                post.shift = plan->save_invstd[bn];
                if (plan->fold_residual[i])
                    post.residual = plan->value_data[plan->fold_residual[i] - 1];
                post.relu = plan->fold_relu[i] || plan->fused_relu[bn];
            }
            rn_conv2d_forward_prepared(dst, src, param(m, node->weights),
                                       prepared_for(m, plan, i, mb), param(m, node->bias), &s,
                                       plan->scratch,
                                       bn >= 0 ? &post : NULL);
            break;
        }
        case RN_NODE_BN: {
            rn_bn_shape s = {mb, in.c, in.h, in.w};
            if (train) {
                rn_bn_forward_train(dst, plan->save_mean[i], plan->save_invstd[i],
                                    buffer(m, node->running_mean),
                                    buffer(m, node->running_var), src,
                                    param(m, node->weights), param(m, node->bias), &s,
                                    activation);
                m->num_batches_tracked[node->bn_index]++;
            } else {
                rn_bn_forward_eval(dst, src, param(m, node->weights),
                                   param(m, node->bias), buffer(m, node->running_mean),
                                   buffer(m, node->running_var), &s, activation);
            }
            break;
        }
        case RN_NODE_RELU:
            rn_relu_forward(dst, src, value_numel(m, node->src, mb));
            break;
        case RN_NODE_MAXPOOL: {
            rn_pool_shape s = pool_shape(m, node, mb);
            /* Only the backward pass reads the indices. */
            rn_maxpool_forward(dst, train ? plan->argmax[i] : NULL, src, &s);
            break;
        }
        case RN_NODE_AVGPOOL:
            rn_avgpool_global_forward(dst, src, mb, in.c, in.h * in.w);
            break;
        case RN_NODE_LINEAR:
            rn_linear_forward(dst, src, param(m, node->weights), param(m, node->bias),
                              mb, in.c * in.h * in.w, m->values[node->dst].c);
            break;
        case RN_NODE_ADD:
            rn_add_forward(dst, src, plan->value_data[node->src2],
                           value_numel(m, node->dst, mb));
            break;
        case RN_NODE_SHORTCUT_A:
            rn_shortcut_a_forward(dst, src, mb, in.c, in.h, in.w,
                                  m->values[node->dst].c, node->stride);
            break;
        }
        if (plan->profile)
            plan->profile->forward[rn_node_profile_class(m, plan, i, mb)] += omp_get_wtime() - start;
    }
    return plan->value_data[m->value_count - 1];
}

/* The gradient of value v, zeroed on first use in this backward pass.
 * Returns NULL for the network input because no layer needs its gradient. */
static float *value_grad(const rn_model *m, rn_plan *plan, int v)
{
    if (v == 0)
        return NULL;
    if (!plan->grad_ready[v]) {
        memset(plan->grad_data[v], 0, value_numel(m, v, plan->current_mb) * sizeof(float));
        plan->grad_ready[v] = 1;
    }
    return plan->grad_data[v];
}

/* The gradient of value v for a layer that can overwrite it. On first use
 * in this pass the buffer is not zeroed and *mode is RN_GRAD_OVERWRITE. */
static float *value_grad_for(rn_plan *plan, int v, rn_grad_mode *mode)
{
    *mode = RN_GRAD_ACCUMULATE;
    if (v == 0)
        return NULL;
    if (!plan->grad_ready[v]) {
        plan->grad_ready[v] = 1;
        *mode = RN_GRAD_OVERWRITE;
    }
    return plan->grad_data[v];
}

void rn_model_backward(rn_model *m, rn_plan *plan, const float *diff_logits)
{
    int mb = plan->current_mb;
    int last = m->value_count - 1;

    RN_ASSERT(!plan->inference);
    memset(plan->grad_ready, 0, m->value_count);
    rn_grad_mode mode;
    memcpy(value_grad_for(plan, last, &mode), diff_logits,
           value_numel(m, last, mb) * sizeof(float));

    for (int i = m->node_count - 1; i >= 0; i--) {
        const rn_node *node = &m->nodes[i];
        const float *src = plan->value_data[node->src];
        const float *dst = plan->value_data[node->dst];
        const float *dy = plan->grad_data[node->dst];
        rn_value in = m->values[node->src];

        if (plan->skip[i])
            continue;
        RN_ASSERT(plan->grad_ready[node->dst] || plan->fused_relu[i]);
        double start = plan->profile ? omp_get_wtime() : 0.0;
        switch (node->kind) {
        case RN_NODE_CONV: {
            rn_conv_shape s = conv_shape(m, node, mb);
            float *dx = value_grad_for(plan, node->src, &mode);
            rn_conv2d_backward(dx, grad(m, node->weights), grad(m, node->bias), dy, src,
                               param(m, node->weights), &s, plan->scratch, mode);
            break;
        }
        case RN_NODE_BN: {
            rn_bn_shape s = {mb, in.c, in.h, in.w};
            const float *relu_dst = NULL;
            if (plan->fused_relu[i]) {
                int relu_out = m->nodes[plan->fused_relu[i]].dst;
                RN_ASSERT(plan->grad_ready[relu_out]);
                dy = plan->grad_data[relu_out];
                relu_dst = plan->value_data[relu_out];
            }
            float *dx = value_grad_for(plan, node->src, &mode);
            rn_bn_backward_train(dx, grad(m, node->weights), grad(m, node->bias), dy,
                                 relu_dst, src, plan->save_mean[i], plan->save_invstd[i],
                                 param(m, node->weights), &s, mode);
            break;
        }
        case RN_NODE_RELU:
            if (node->src != 0) {
                float *dx = value_grad_for(plan, node->src, &mode);
                rn_relu_backward(dx, dy, dst, value_numel(m, node->src, mb), mode);
            }
            break;
        case RN_NODE_MAXPOOL: {
            rn_pool_shape s = pool_shape(m, node, mb);
            if (node->src != 0)
                rn_maxpool_backward(value_grad(m, plan, node->src), dy,
                                    plan->argmax[i], &s);
            break;
        }
        case RN_NODE_AVGPOOL:
            if (node->src != 0)
                rn_avgpool_global_backward(value_grad(m, plan, node->src), dy, mb,
                                           in.c, in.h * in.w);
            break;
        case RN_NODE_LINEAR:
            rn_linear_backward(value_grad(m, plan, node->src), grad(m, node->weights),
                               grad(m, node->bias), dy, src, param(m, node->weights),
                               mb, in.c * in.h * in.w, m->values[node->dst].c);
            break;
        case RN_NODE_ADD: {
            size_t n = value_numel(m, node->dst, mb);
            int inputs[2] = {node->src, node->src2};
            for (int k = 0; k < 2; k++) {
                float *dx = value_grad_for(plan, inputs[k], &mode);
                if (dx == dy && inputs[0] == inputs[1] && mode == RN_GRAD_ACCUMULATE)
                    rn_accumulate(dx, dy, n); /* x + x: twice the gradient */
                else if (dx == dy) /* the planner gave this input the output's slot */
                    RN_ASSERT(mode == RN_GRAD_OVERWRITE);
                else if (dx && mode == RN_GRAD_OVERWRITE)
                    memcpy(dx, dy, n * sizeof(float));
                else if (dx)
                    rn_accumulate(dx, dy, n);
            }
            break;
        }
        case RN_NODE_SHORTCUT_A: {
            float *dx = value_grad(m, plan, node->src);
            if (dx)
                rn_shortcut_a_backward(dx, dy, mb, in.c, in.h, in.w,
                                       m->values[node->dst].c, node->stride);
            break;
        }
        }
        if (plan->profile)
            plan->profile->backward[rn_node_profile_class(m, plan, i, mb)] += omp_get_wtime() - start;
    }
}

void rn_plan_set_profile(rn_plan *plan, rn_profile *profile)
{
    plan->profile = profile;
}

rn_profile_class rn_node_profile_class(const rn_model *m, const rn_plan *plan, int i, int mb)
{
    const rn_node *node = &m->nodes[i];
    switch (node->kind) {
    case RN_NODE_CONV: {
        rn_conv_shape s = conv_shape(m, node, mb);
        if (plan && prepared_for(m, plan, i, mb) ? rn_conv_direct_applies_prepared(&s)
                                                 : rn_conv_direct_applies(&s))
            return RN_PROFILE_CONV_DIRECT;
        return rn_conv_implicit_applies(&s) ? RN_PROFILE_CONV_IMPLICIT : RN_PROFILE_CONV_GEMM;
    }
    case RN_NODE_BN:
        return RN_PROFILE_BN;
    case RN_NODE_RELU:
        return RN_PROFILE_RELU;
    case RN_NODE_ADD:
        return RN_PROFILE_ADD;
    case RN_NODE_MAXPOOL:
    case RN_NODE_AVGPOOL:
        return RN_PROFILE_POOL;
    case RN_NODE_LINEAR:
        return RN_PROFILE_LINEAR;
    case RN_NODE_SHORTCUT_A:
        return RN_PROFILE_SHORTCUT;
    }
    return RN_PROFILE_ADD;
}

const char *rn_profile_class_name(rn_profile_class c)
{
    static const char *const names[RN_PROFILE_CLASSES] = {
        "conv, Winograd/direct", "conv, implicit GEMM", "conv, im2col+GEMM",
        "batch norm (+ReLU)", "ReLU",
        "residual add", "pooling", "linear", "shortcut A",
    };
    return c < RN_PROFILE_CLASSES ? names[c] : "?";
}

void rn_model_zero_grad(rn_model *m)
{
    memset(m->grad_data, 0, m->param_numel * sizeof(float));
}
