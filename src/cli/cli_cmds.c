/* cli_cmds.c - the command table: each command's name, help, the options
 * it accepts, whether it runs across MPI ranks, and its entry point (see
 * src/cli/cli.h). */
#include <stdio.h>

#include "cli.h"
#include "traverse.h"

const char CLI_NO_DEFAULT[] = "(none)";

#define MODEL O_ARCH, O_HIDDEN, O_LATENT, O_ACT, O_LIKELIHOOD, O_CONDITIONAL
#define TRAINING O_BETA, O_BINARIZE, O_NOISE
#define CONTROLS O_SCHEDULE, O_WARMUP, O_LR_EVERY, O_LR_GAMMA, O_KL_WARMUP, \
    O_ADAM_BETA1, O_ADAM_BETA2, O_ADAM_EPS, O_INIT, O_OBJECTIVE, O_K, O_ESTIMATOR
const cmd_spec CLI_CMDS[] = {
    {.name = "train",
     .brief = "train a VAE, writing sample grids and a checkpoint each epoch",
     .summary = "Train the VAE on DIR/train-*, evaluate on DIR/t10k-* after each "
                "epoch, write\nOUT/sampled-E.png, OUT/reconst-E.png, the checkpoint "
                "and the metrics each epoch.\nOUT/index.html is the run's page, "
                "rewritten each epoch: settings, losses, loss\ncurve, samples and "
                "reconstructions, and at the end the latent map (OUT/latent.png;\n"
                "vae manifold's). Open it in a browser; the folder can be moved whole.\n"
                "Model and training options are stored "
                "in the checkpoint: other commands read them.\nA run locks its "
                "checkpoint (CKPT.lock) against a second run. An existing\ncheckpoint "
                "is never replaced unasked: --resume continues it, --force replaces it.",
     .opts = {O_DATA, O_CKPT, O_OUT, O_EPOCHS, O_BATCH, O_LR, O_SEED, O_THREADS,
              O_JSON, O_RESUME, O_NEW_DATA, O_FORCE, MODEL, TRAINING, CONTROLS,
              O_VALID, O_METRICS, -1},
     .help = {[O_JSON] = "print one JSON object per epoch"},
     .mpi = 1,
     .run = cmd_train},
    {.name = "sample",
     .brief = "decode draws from the prior into a PNG grid",
     .summary = "Decode --n draws from the prior into one PNG grid, 8 a row: N(0, I), "
                "or for a\nconditional model p(z|y) with --label, or one column "
                "per label with --grid.",
     .opts = {O_CKPT, O_N, O_OUTPUT, O_SEED, O_THREADS, O_LABEL, O_GRID, -1},
     .help = {[O_N] = "images to draw (a conditional model without --label: 10 rows "
                      "of its labels)",
              [O_OUTPUT] = "output PNG",
              [O_SEED] = "seed of the prior draws",
              [O_LABEL] = "draw this label (conditional models; 0 to classes - 1)",
              [O_GRID] = "one column per label, up to 16 (what a conditional "
                                "model without --label shows)"},
     .def = {[O_N] = "128", [O_OUTPUT] = "sampled.png"},
     .run = cmd_sample},
    {.name = "reconstruct",
     .brief = "test images beside their reconstructions, as a PNG grid",
     .summary = "Write the first --n test images, each beside its reconstruction "
                "from the\nposterior mean, as one PNG grid.",
     .opts = {O_CKPT, O_DATA, O_N, O_OUTPUT, O_THREADS, -1},
     .help = {[O_N] = "test images to show", [O_OUTPUT] = "output PNG"},
     .def = {[O_N] = "32", [O_OUTPUT] = "reconst.png"},
     .run = cmd_reconstruct},
    {.name = "eval",
     .brief = "test-set loss (negative ELBO), and the importance-weighted bound",
     .summary = "Test-set loss (negative ELBO, one z draw per image), in nats per "
                "image; with\n--iw K also the importance-weighted bound on "
                "-log p(x) (Burda et al.) from K\ndraws per image (use K = 5000 "
                "to report a likelihood).",
     .opts = {O_CKPT, O_DATA, O_SEED, O_BATCH, O_THREADS, O_JSON, O_IW, O_ACTIVE_UNITS, -1},
     .help = {[O_SEED] = "seed of the z draws (train's evaluation uses the run's own seed, "
                         "which vae info shows)",
              [O_JSON] = "print the result as one JSON object"},
     .mpi = 1,
     .run = cmd_eval},
    {.name = "interpolate",
     .brief = "decode the line between two test images' latent codes",
     .summary = "Decode --steps points on the straight line between the posterior "
                "means of\ntest images --from and --to (ends included), shown "
                "between the two images, as\none PNG row.",
     .opts = {O_CKPT, O_DATA, O_FROM, O_TO, O_STEPS, O_LABEL, O_OUTPUT, O_THREADS, -1},
     .help = {[O_OUTPUT] = "output PNG",
              [O_LABEL] = "conditional models: decode with this label (without it: "
                          "the first image's)"},
     .def = {[O_OUTPUT] = "strip.png"},
     .run = cmd_interpolate},
    {.name = "encode",
     .brief = "latent codes of images, as CSV",
     .summary = "One CSV row per image: index, label, the posterior mean and "
                "log-variance\n(index,label,mu_0,...,logvar_0,...).",
     .opts = {O_CKPT, O_DATA, O_SPLIT, O_OUTPUT, O_THREADS, -1},
     .help = {[O_OUTPUT] = "output CSV"},
     .def = {[O_OUTPUT] = "latents.csv"},
     .mpi = 1,
     .run = cmd_encode},
    {.name = "score",
     .brief = "per-image negative ELBO as an anomaly score",
     .summary = "Per-image negative ELBO in nats (index,label,score,rec,kl) as CSV, "
                "or with\n--iw K the importance-weighted bound on -log p(x) "
                "(index,label,score), or with\n--top N the N highest-scoring "
                "images as a PNG grid, highest first.",
     .opts = {O_CKPT, O_DATA, O_SPLIT, O_OUTPUT, O_TOP, O_SEED, O_IW, O_THREADS, -1},
     .help = {[O_OUTPUT] = "output CSV, or PNG with --top (then " SCORE_TOP_OUTPUT
                           " unless given)",
              [O_SEED] = "seed of the z draws",
              [O_IW] = "score by the importance-weighted bound with K draws per "
                       "image instead"},
     .mpi = 1,
     .def = {[O_OUTPUT] = "scores.csv"},
     .run = cmd_score},
    {.name = "probe",
     .brief = "k-NN accuracy of the latent means: test images by training labels",
     .summary = "Classify each test image by the labels of the --k training images "
                "whose posterior\nmeans are nearest its own (Euclidean), and print "
                "the accuracy. The vote goes\nto the most frequent label; a tie, to "
                "the tied label with the nearest\nneighbour (equal distances: the "
                "earlier training image). A conditional model\nencodes each image "
                "with its own label.",
     .opts = {O_CKPT, O_DATA, O_KNN, O_LAYER, O_THREADS, O_JSON, -1},
     .help = {[O_JSON] = "print the result as one JSON object, with the "
                         "accuracy of each label"},
     .run = cmd_probe},
    {.name = "manifold",
     .brief = "the latent space as a picture",
     .summary = "For a 2-D latent, decode an N x N grid on the prior's quantiles "
                "(Kingma &\nWelling, Fig. 4). For more dimensions, the latent map: the "
                "test set's\nposterior means projected on their first two principal "
                "components (PCA), one\ncolour a label, the axes saying the share of "
                "the variance each carries; drawn\nby gnuplot (without it, an error: "
                "scripts/deps.sh installs gnuplot-nox), with\nthe points as CSV beside "
                "the PNG (index,label,pc1,pc2; manifold.csv).",
     .opts = {O_CKPT, O_DATA, O_N, O_LABEL, O_LAYER, O_OUTPUT, O_THREADS, -1},
     .help = {[O_N] = "grid side for a 2-D latent",
              [O_OUTPUT] = "output PNG (the map's CSV beside it)",
              [O_LABEL] = "conditional models: the label of the grid (without it: 0)"},
     .def = {[O_N] = "20", [O_OUTPUT] = "manifold.png"},
     .run = cmd_manifold},
    {.name = "traverse",
     .brief = "latent dimensions by their KL, each moved around a test image's code",
     .summary = "Rank the latent dimensions by the KL of q(z|x) to the prior each "
                "carries, averaged\nover the test set, and print the ranking. Then, "
                "for the --top most active, decode\na row that moves that one "
                "coordinate of test image --from's posterior mean from\n-3 to +3 "
                "standard deviations of the prior (1 for N(0, I); for a conditional\n"
                "model, p(z|y)'s of the image's label, which it also decodes with), "
                "the others\nheld at the mean: one row a dimension, --steps columns, "
                "as one PNG grid.",
     .opts = {O_CKPT, O_DATA, O_FROM, O_TOP, O_STEPS, O_LAYER, O_OUTPUT, O_THREADS, O_JSON,
              -1},
     .help = {[O_FROM] = "the index of the test image whose code is moved",
              [O_TOP] = "rows: the N most active dimensions (without it: all, at most 10)",
              [O_STEPS] = "columns a row, -3 to +3 ends included",
              [O_OUTPUT] = "output PNG",
              [O_JSON] = "print the ranking as one JSON object"},
     .def = {[O_STEPS] = STR(TRAVERSE_STEPS), [O_OUTPUT] = "traverse.png"},
     .run = cmd_traverse},
    {.name = "info",
     .brief = "what a checkpoint holds: model, training state, training data",
     .summary = "Print what --ckpt holds: its format version, the model, how far "
                "training got and\nwith which settings, and the fingerprint of the "
                "training data (count, size,\nCRC-32s of pixels and labels).",
     .opts = {O_CKPT, O_JSON, -1},
     .help = {[O_JSON] = "print it as one JSON object"},
     .run = cmd_info},
    {.name = "export",
     .brief = "the model's weights as safetensors, for PyTorch",
     .summary = "Write the model of --ckpt as a safetensors file: its tensors "
                "named as the\nstate_dict of scripts/vae_torch.py's modules, the "
                "architecture in the\nheader's __metadata__. scripts/vae_torch.py "
                "loads it with PyTorch alone.",
     .opts = {O_CKPT, O_OUTPUT, -1},
     .help = {[O_OUTPUT] = "output file"},
     .def = {[O_OUTPUT] = "model.safetensors"},
     .run = cmd_export},
    {.name = "import",
     .brief = "a folder of PNG/JPEG images into IDX files the other commands read",
     .summary = "Turn the images in DIR into a data set in the folder -o (created if "
                "missing):\none sub-folder of DIR per class (label i: the i-th name in "
                "byte order; images\nanywhere below it; an image beside class folders "
                "is an error), or only\nimages (no labels). Files ending in .png, .jpg "
                "or .jpeg (any case) are images;\nother files are skipped and counted; "
                "names starting with '.' are ignored.\nAlpha is composited over "
                "--background; an image that does not decode, or whose\nheader declares "
                "more than --max-pixels pixels (checked before decoding), stops\nthe import "
                "(--skip-broken: skipped with a warning). Grey output is\n"
                "train/t10k-images-idx3-ubyte, colour idx4 (N, H, W, 3, RGB "
                "interleaved); with\nclasses also the idx1 label files and labels.txt.\n"
                "Each class's round(F x n) images, at most n - 1, go to the test files "
                "(a seeded\nchoice). Existing IDX files in the folder are not replaced "
                "without --force.\nThe data set is built in a hidden folder beside "
                "the folder and swapped in whole\n(renameat2 RENAME_EXCHANGE): a killed "
                "import leaves the old set or the new one,\nnever a mix; the next import "
                "removes what it left. Other files in the folder are\nkept; a "
                "sub-folder in it is refused. See docs/import.md.",
     .opts = {O_OUTPUT, O_SIZE, O_CHANNELS, O_BACKGROUND, O_TEST_FRACTION, O_SEED,
              O_SKIP_BROKEN, O_MAX_PIXELS, O_FORCE, O_JSON, -1},
     .help = {[O_OUTPUT] = "the data set's folder (required; created if missing)",
              [O_SEED] = "seed of the split and of the files' order",
              [O_FORCE] = "replace the data set already in the folder, whole (its "
                          "files this import does not write go too; other files stay)",
              [O_JSON] = "print the summary as one JSON object"},
     .operand = "DIR",
     .run = cmd_import},
    {.name = "bench",
     .brief = "time training (or the importance-weighted bound) against its sgemm floor",
     .summary = "Time training epochs of a fresh model and, step by step, the same "
                "sgemm calls\nalone (the floor); print both and their ratio. With "
                "--iw K, time the\nimportance-weighted bound over the test set of "
                "--ckpt (or a fresh model)\ninstead.",
     .opts = {O_DATA, O_EPOCHS, O_BATCH, O_LR, O_SEED, O_THREADS, O_JSON, MODEL,
              TRAINING, CONTROLS, O_IW, O_CKPT, O_PLAN, -1},
     .help = {[O_EPOCHS] = "epochs to time",
              [O_JSON] = "print one JSON object per epoch and a summary",
              [O_CKPT] = "with --iw: the model (without it: a fresh one)"},
     .def = {[O_EPOCHS] = "3", [O_CKPT] = CLI_NO_DEFAULT},
     .mpi = 1,
     .mpi_unless = O_IW,
     .run = cmd_bench},
};
const size_t CLI_N_CMDS = sizeof CLI_CMDS / sizeof *CLI_CMDS;

void cli_print_help(void)
{
    printf("usage: vae COMMAND [options]\n\n"
           "Trains a variational autoencoder on MNIST-format images and samples "
           "from it.\n\ncommands:\n");
    for (size_t i = 0; i < CLI_N_CMDS; i++)
        printf("  %-12s %s\n", CLI_CMDS[i].name, CLI_CMDS[i].brief);
    printf("\n'vae COMMAND --help' lists a command's options; 'vae --version' the "
           "version and BLAS core;\n'vae --man' the manual page (roff, as installed in "
           "vae.1).\n");
}
