#include "data/preprocess.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/status.h"
#include "model/model.h"

/* ImageNet's per-channel statistics, as torchvision's models document them. */
static const float IMAGENET_MEAN[3] = {0.485f, 0.456f, 0.406f};
static const float IMAGENET_STD[3] = {0.229f, 0.224f, 0.225f};

int rn_is_torchvision_arch(const char *arch)
{
    return rn_model_is_imagenet(arch);
}

rn_status rn_preprocess_from_metadata(const rn_safetensors *file, const rn_model_config *config,
                                      rn_preprocess *out)
{
    const char *normalize = rn_safetensors_metadata(file, "normalize");
    const char *resize = rn_safetensors_metadata(file, "resize");
    rn_augment *aug = &out->augment;
    char tail;

    memset(out, 0, sizeof *out);
    out->channels = config->in_c;
    out->height = config->in_h;
    out->width = config->in_w;

    if (normalize && strcmp(normalize, "none") != 0) {
        if (sscanf(normalize, "%f,%f,%f,%f,%f,%f%c", &aug->mean[0], &aug->mean[1],
                   &aug->mean[2], &aug->std[0], &aug->std[1], &aug->std[2], &tail) != 6)
            return rn_error(RN_ERR_FORMAT, "%s: metadata 'normalize' is '%s', expected six "
                            "comma-separated numbers or none", file->path, normalize);
        aug->normalize = 1;
    } else if (!normalize && rn_is_torchvision_arch(config->arch)) {
        memcpy(aug->mean, IMAGENET_MEAN, sizeof aug->mean);
        memcpy(aug->std, IMAGENET_STD, sizeof aug->std);
        aug->normalize = 1;
        out->resize_shorter = (int)lround(256.0 * config->in_h / 224.0);
    }

    if (resize && strcmp(resize, "none") != 0) {
        if (sscanf(resize, "%dx%d%c", &aug->resize_h, &aug->resize_w, &tail) != 2 ||
            aug->resize_h < 1 || aug->resize_w < 1)
            return rn_error(RN_ERR_FORMAT, "%s: metadata 'resize' is '%s', expected HxW or none",
                            file->path, resize);
        if (aug->resize_h != out->height || aug->resize_w != out->width)
            return rn_error(RN_ERR_FORMAT, "%s: metadata 'resize' is %dx%d but the input is "
                            "%dx%d; the file is inconsistent", file->path, aug->resize_h,
                            aug->resize_w, out->height, out->width);
        out->resize_shorter = 0;
    }
    return rn_error_prefix(rn_augment_check(aug, out->channels), "%s: ", file->path);
}

/* The size that image is resized to before the centre crop: its shorter
 * side to p->resize_shorter (the longer one truncated, as torchvision's
 * Resize does), or just covering the input size. */
static void resized_size(const rn_preprocess *p, const rn_image *image, int *height, int *width)
{
    double scale;
    if (p->resize_shorter > 0) {
        int shorter = image->height < image->width ? image->height : image->width;
        scale = (double)p->resize_shorter / shorter;
    } else {
        double scale_h = (double)p->height / image->height;
        double scale_w = (double)p->width / image->width;
        scale = scale_h > scale_w ? scale_h : scale_w;
    }
    *height = (int)(image->height * scale + 1e-6);
    *width = (int)(image->width * scale + 1e-6);
    if (*height < p->height)
        *height = p->height;
    if (*width < p->width)
        *width = p->width;
}

rn_status rn_preprocess_image(const rn_preprocess *p, const rn_image *image, float *dst)
{
    RN_ASSERT(image->channels == p->channels);
    int same_size = image->height == p->height && image->width == p->width;

    if (p->augment.resize_h > 0 || (same_size && p->resize_shorter == 0)) {
        rn_augment_image(&p->augment, 0, image->pixels, image->channels, image->height,
                         image->width, dst, NULL);
        return RN_OK;
    }

    int height, width;
    rn_image resized, cropped;
    resized_size(p, image, &height, &width);
    RN_TRY(rn_image_resize(image, height, width, &resized));
    /* Centre offsets rounded half to even, as Python's round() in
     * torchvision's CenterCrop does (nearbyint in the default mode). */
    int top = (int)nearbyint((height - p->height) / 2.0);
    int left = (int)nearbyint((width - p->width) / 2.0);
    rn_status status = rn_image_crop(&resized, top, left, p->height, p->width, &cropped);
    rn_image_free(&resized);
    if (status != RN_OK)
        return status;
    rn_augment_image(&p->augment, 0, cropped.pixels, cropped.channels, cropped.height,
                     cropped.width, dst, NULL);
    rn_image_free(&cropped);
    return RN_OK;
}
