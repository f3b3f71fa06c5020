/* cmd_export.c - vae export: the model of --ckpt as safetensors, for
 * PyTorch (scripts/vae_torch.py) and the other frameworks that read the
 * format (see src/io/export.h and src/cli/cli.h). */
#include <stdio.h>

#include "cli.h"
#include "export.h"

int cmd_export(cli_opts *o)
{
    const char *path = o->output;
    paths_list l = {0};
    paths_add(&l, "--ckpt", o->ckpt, PATHS_READ);
    paths_add(&l, "-o", path, PATHS_WRITE);
    if (cli_check_paths(&l))
        return EXIT_USAGE;
    /* Not cli_load_model: a model of any image size exports, no data is read. */
    model_net m;
    ckpt_train t;
    err_msg err;
    if (ckpt_load_model(o->ckpt, &m, &t, &err)) {
        say_error("%s", err.text);
        return 1;
    }
    /* The settings whose rows say they go into the metadata. */
    const char *keys[SETTING_COUNT], *values[SETTING_COUNT];
    char text[SETTING_COUNT][64];
    size_t n = 0;
    for (int i = 0; i < SETTING_COUNT; i++)
        if (SETTINGS[i].export) {
            keys[n] = SETTINGS[i].key;
            values[n] = settings_format(&t.set, (setting_id)i, 0, text[n], sizeof text[n]);
            n++;
        }
    export_info info = {VAE_VERSION, t.epoch, t.adam_t, keys, values, n};
    int rc = export_write(path, &m, &info, &err);
    if (rc) {
        say_error("%s", err.text);
    } else {
        export_tensor tensors[EXPORT_MAX_TENSORS];
        printf("wrote %s (%zu tensors, %zu parameters, from %s)\n", path,
               export_tensors(&m, &info, tensors), m.n_params, o->ckpt);
    }
    model_free(&m);
    return rc ? 1 : 0;
}
