/*
 * svoo.h : the whole public API of libsvoo, training-free sparse attention for
 * video diffusion transformers (SVOO, Sparse VideoGen, SVG2, dense).
 *
 * Conventions
 *  - Every call returns an svoo_status (SVOO_OK == 0) unless it cannot fail.
 *    The library never exits or aborts. On failure a message naming the
 *    offending argument is kept: per context for calls that take a context
 *    (svoo_last_error(ctx)), per thread for the others (svoo_last_error(NULL)).
 *  - Handles are opaque; every _free() accepts NULL.
 *  - Config structs carry a `size` field set by their _init() function so that
 *    the ABI can grow: always call the _init() before filling fields.
 *  - Steps are 0-based in the API (the profile CSV stores them 1-based, as the
 *    SVOO reference publishes them); layers and heads are 0-based.
 *
 * Thread safety
 *  - Distinct contexts, profiles, profilers and tensor files may be used from
 *    different threads at the same time.
 *  - One svoo_ctx must not be used by two threads at once (it holds per-layer
 *    state that svoo_attention updates). The library parallelises internally
 *    with OpenMP; SVOO_NUM_THREADS / config.num_threads bound it.
 *  - Read-only objects (a loaded svoo_profile, an opened svoo_tensorfile) may
 *    be shared between threads once created, as long as nobody frees them.
 */
#ifndef SVOO_H
#define SVOO_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define SVOO_API __declspec(dllexport)
#elif defined(__GNUC__) && __GNUC__ >= 4
#define SVOO_API __attribute__((visibility("default")))
#else
#define SVOO_API
#endif

#define SVOO_VERSION_MAJOR 0
#define SVOO_VERSION_MINOR 1
#define SVOO_VERSION_PATCH 0
#define SVOO_VERSION_NUMBER                                                    \
    (SVOO_VERSION_MAJOR * 10000 + SVOO_VERSION_MINOR * 100 + SVOO_VERSION_PATCH)

/*! svoo_version_number() : @return : SVOO_VERSION_NUMBER of the linked library. */
SVOO_API unsigned svoo_version_number(void);
/*! svoo_version_string() : @return : "MAJOR.MINOR.PATCH" of the linked library. */
SVOO_API const char *svoo_version_string(void);
/*! svoo_has_cuda() : @return : 1 when the library was built with the CUDA backend. */
SVOO_API int svoo_has_cuda(void);

/* ------------------------------------------------------------------------ */
/* Status codes: values are fixed and append-only.                          */
/* ------------------------------------------------------------------------ */
typedef enum {
    SVOO_OK = 0,
    SVOO_ERR_NULL_POINTER = 1,       /* a required pointer argument is NULL */
    SVOO_ERR_INVALID_ARGUMENT = 2,   /* a value is out of its documented range */
    SVOO_ERR_SHAPE_MISMATCH = 3,     /* q/k/v/out (or file vs config) shapes disagree */
    SVOO_ERR_DTYPE_MISMATCH = 4,     /* q/k/v/out dtypes disagree */
    SVOO_ERR_UNSUPPORTED_HEAD_DIM = 5,
    SVOO_ERR_OVERLAPPING_STRIDES = 6, /* strides make distinct elements alias */
    SVOO_ERR_OUT_OF_MEMORY = 7,
    SVOO_ERR_IO = 8,                 /* open/read/write/rename failed (errno in message) */
    SVOO_ERR_FILE_TRUNCATED = 9,     /* file shorter than its header says */
    SVOO_ERR_FILE_CORRUPT = 10,      /* header not parseable or inconsistent */
    SVOO_ERR_UNKNOWN_DTYPE = 11,     /* a dtype the format or the library does not know */
    SVOO_ERR_DUPLICATE_NAME = 12,    /* a tensor name or profile key given twice */
    SVOO_ERR_NOT_FOUND = 13,         /* a tensor name / profile entry / preset absent */
    SVOO_ERR_NONFINITE_INPUT = 14,   /* NaN or Inf detected in q/k/v */
    SVOO_ERR_PROFILE_FORMAT = 15,    /* malformed profile CSV (file and line in message) */
    SVOO_ERR_PROFILE_MISMATCH = 16,  /* profile's heads differ from the model's; grids differ (merge) */
    SVOO_ERR_OUT_OF_RANGE = 17,      /* step/layer/head index outside the configured range */
    SVOO_ERR_UNSUPPORTED = 18,       /* method/backend/dtype not available in this build */
    SVOO_ERR_WRONG_DEVICE = 19,      /* tensor on another device than the context's */
    SVOO_ERR_CUDA = 20,              /* a CUDA runtime error (name and string in message) */
    SVOO_ERR_WORKSPACE_TOO_SMALL = 21,
    SVOO_ERR_MISALIGNED = 22,        /* pointer alignment the kernel requires is not met */
    SVOO_ERR_GEOMETRY = 23           /* frames x height x width (+ text) != sequence length */
} svoo_status;

#define SVOO_STATUS_COUNT 24

/*! svoo_status_name() : @return : the enumerator's name, e.g. "SVOO_ERR_IO"
 *  ("SVOO_ERR_UNKNOWN_STATUS" for a value outside the enum). Never NULL. */
SVOO_API const char *svoo_status_name(svoo_status s);
/*! svoo_status_string() : @return : a one-line human description. Never NULL. */
SVOO_API const char *svoo_status_string(svoo_status s);

typedef struct svoo_ctx svoo_ctx;

/*! svoo_last_error() : message of the last failing call on `ctx`, or, with
 *  ctx == NULL, of the last failing context-free call on this thread.
 *  @return : a NUL-terminated string ("" if none), valid until the next call
 *            on the same ctx / thread. */
SVOO_API const char *svoo_last_error(const svoo_ctx *ctx);

/* ------------------------------------------------------------------------ */
/* Tensor views                                                             */
/* ------------------------------------------------------------------------ */
typedef enum { SVOO_F32 = 0, SVOO_F16 = 1, SVOO_BF16 = 2 } svoo_dtype;
typedef enum { SVOO_DEVICE_CPU = 0, SVOO_DEVICE_CUDA = 1 } svoo_device;

/* A non-owning rank-4 view. shape[] is always the logical (B, H, N, D); the
 * strides (in elements, per logical dim) say where the memory really is, so
 * [B, H, N, D] and [B, N, H, D] buffers are both viewed without copies. The
 * innermost dim D must have stride 1. */
typedef struct {
    void *data;
    svoo_dtype dtype;
    svoo_device device;
    int device_index;   /* CUDA ordinal; 0 for CPU */
    int64_t shape[4];   /* B, H, N, D */
    int64_t stride[4];  /* elements between consecutive b, h, n, d */
} svoo_tensor;

/*! svoo_tensor_bhnd() : view of a contiguous [B, H, N, D] CPU buffer. */
SVOO_API svoo_tensor svoo_tensor_bhnd(void *data, svoo_dtype dtype, int64_t B,
                                      int64_t H, int64_t N, int64_t D);
/*! svoo_tensor_bnhd() : view of a contiguous [B, N, H, D] CPU buffer. */
SVOO_API svoo_tensor svoo_tensor_bnhd(void *data, svoo_dtype dtype, int64_t B,
                                      int64_t N, int64_t H, int64_t D);
/*! svoo_dtype_size() : @return : bytes per element (0 for an unknown dtype). */
SVOO_API size_t svoo_dtype_size(svoo_dtype dt);
/*! svoo_dtype_name() : @return : "f32", "f16", "bf16" or "unknown". */
SVOO_API const char *svoo_dtype_name(svoo_dtype dt);

/* ------------------------------------------------------------------------ */
/* Profiles: offline per-(step, layer, head) density, SVOO CSV format        */
/* ------------------------------------------------------------------------ */
typedef struct svoo_profile svoo_profile;

typedef enum { SVOO_MERGE_MAX = 0, SVOO_MERGE_MEAN = 1 } svoo_merge;

typedef struct {
    int steps, layers, heads;
    int64_t count;   /* entries present */
    double mean, std, min, max, median, p10, p90;
} svoo_profile_stats;

/*! svoo_profile_load() : reads `Step,Layer,Head,Sparsity` CSV (1-based steps,
 *  value = kept ratio in [0, 1]; CRLF accepted). The grid must be complete.
 *  @return : SVOO_OK, or SVOO_ERR_PROFILE_FORMAT / SVOO_ERR_IO with file:line. */
SVOO_API svoo_status svoo_profile_load(const char *path, svoo_profile **out);
/*! svoo_profile_create() : an empty steps x layers x heads grid (entries absent). */
SVOO_API svoo_status svoo_profile_create(int steps, int layers, int heads,
                                         svoo_profile **out);
/*! svoo_profile_save() : writes the CSV (all present entries), atomically:
 *  nothing is left at `path` on failure. */
SVOO_API svoo_status svoo_profile_save(const svoo_profile *p, const char *path);
SVOO_API void svoo_profile_free(svoo_profile *p);
SVOO_API void svoo_profile_dims(const svoo_profile *p, int *steps, int *layers,
                                int *heads);
/*! svoo_profile_get() : @return : SVOO_OK and *value, SVOO_ERR_OUT_OF_RANGE for
 *  indices outside the grid, SVOO_ERR_NOT_FOUND for an absent entry. */
SVOO_API svoo_status svoo_profile_get(const svoo_profile *p, int step, int layer,
                                      int head, double *value);
SVOO_API svoo_status svoo_profile_set(svoo_profile *p, int step, int layer,
                                      int head, double value);
/*! svoo_profile_merge() : dst[i] = max(dst[i], src[i]) or the running mean
 *  (each entry keeps its count). Grids must have equal dims. */
SVOO_API svoo_status svoo_profile_merge(svoo_profile *dst, const svoo_profile *src,
                                        svoo_merge mode);
SVOO_API svoo_status svoo_profile_stats_get(const svoo_profile *p,
                                            svoo_profile_stats *s);

/* ------------------------------------------------------------------------ */
/* Context and configuration                                                */
/* ------------------------------------------------------------------------ */
typedef enum {
    SVOO_METHOD_DENSE = 0,
    SVOO_METHOD_SVOO = 1, /* offline profile + online co-clustering */
    SVOO_METHOD_SVG2 = 2, /* independent k-means permutation */
    SVOO_METHOD_SVG = 3   /* Sparse VideoGen spatial/temporal heads */
} svoo_method;

/*! svoo_method_name() : @return : "dense", "svoo", "svg2", "svg" or "unknown". */
SVOO_API const char *svoo_method_name(svoo_method m);
/*! svoo_method_parse() : inverse of svoo_method_name (case-insensitive). */
SVOO_API svoo_status svoo_method_parse(const char *name, svoo_method *out);

/* the largest thread count a config or svoo_density accepts (OpenMP would
 * otherwise try to create whatever it is given) */
#define SVOO_MAX_THREADS 1024

typedef struct svoo_config {
    size_t size;          /* sizeof(svoo_config), set by svoo_config_init */
    svoo_method method;
    svoo_device device;   /* where q/k/v/out live */
    int device_index;
    void *cuda_stream;    /* cudaStream_t for SVOO_DEVICE_CUDA (NULL = default stream) */
    int num_threads;      /* CPU threads, 0 = OpenMP default, at most SVOO_MAX_THREADS */

    /* model */
    int head_dim;         /* 64 or 128 */
    int num_heads;
    int num_layers;
    int num_steps;
    /* latent video geometry (tokens = frames * height * width + text_tokens) */
    int frames, height, width;
    int text_tokens;
    int text_first;       /* 1: text tokens precede the video tokens */

    /* schedule (all methods but dense) */
    double warmup_step_frac;  /* first fraction of steps run dense (0.2) */
    double warmup_layer_frac; /* first fraction of layers run dense (0.03) */
    int reuse_start_step;     /* from this step on, re-plan only every reuse_every (11) */
    int reuse_every;          /* 20 (Wan2.1-1.3B), 40 (14B); 0 or 1 = re-plan every call */

    /* clustering (SVOO and SVG2). 0 clusters = auto: scaled with N so that
     * tokens per cluster match the reference (256 / 1024 at N = 75,600 for
     * SVOO, 300 / 1000 for SVG2). */
    int q_clusters;
    int k_clusters;
    int iters;                /* SVOO co-clustering iterations (2) */
    int kmeans_iters_first;   /* SVG2 first call (50) */
    int kmeans_iters;         /* SVG2 warm-started calls (2) */
    double top_p;             /* 0.9 */
    double floor_ratio;       /* SVG2 fixed floor, SVOO fallback without profile entry (0.10) */
    double floor_min, floor_max; /* SVOO clip of the profiled floor ([0.15, 0.20]) */
    /* borrowed; must outlive the context; may be NULL. Its heads must equal
     * num_heads (SVOO_ERR_PROFILE_MISMATCH); a profile of another step count
     * is read at the same fraction of the steps; a (step, layer, head) it
     * lacks uses floor_ratio, with one note through log_fn per context */
    const svoo_profile *profile;
    int ear;                  /* error-aware compensation of dropped key clusters (0) */
    uint64_t seed;

    /* SVG */
    double svg_sparsity;      /* target computed fraction of the video mask (0.3) */
    int svg_sample_rows;      /* rows sampled for head classification (64) */
    int svg_block;            /* block size of the masks (128) */

    /* diagnostics: rows sampled per head to measure recall in svoo_stats
     * (0 = off; costs a dense pass over those rows) */
    int recall_rows;
    int check_finite;         /* 1: scan q/k/v for NaN/Inf first (SVOO_ERR_NONFINITE_INPUT) */
    /* notes the library emits (e.g. a profile fallback, said once per
     * context); NULL = write them to stderr */
    void (*log_fn)(void *user, const char *msg);
    void *log_user;

    /* CUDA: the largest batch and sequence length calls will use. Workspace
     * and layer state are allocated on the device at svoo_ctx_create, never
     * in svoo_attention (calls beyond them fail with
     * SVOO_ERR_WORKSPACE_TOO_SMALL). 0 = 1 / frames*height*width+text_tokens;
     * negative values are refused. */
    int max_batch;
    int64_t max_tokens;
    /* CUDA on Hopper, sparse calls: 1 (default) copies K and V in key-cluster
     * order before the attention (with ear the means pass makes the copy), so
     * that the kernel loads every key tile by TMA (3-7% faster calls at Wan
     * 720p; the copy takes ~0.27 ms and 2 x max_batch x heads x max_tokens x
     * head_dim x 2 bytes of workspace: 0.46 GB at Wan2.1-1.3B 720p); 0 = the
     * kernel gathers K and V rows instead. Ignored elsewhere. */
    int cuda_kv_order;
} svoo_config;

/*! svoo_config_init() : fills `cfg` with the reference defaults of `method`
 *  (the values in parentheses above) and sets cfg->size. The model fields are zero; svoo_ctx_create needs, for
 *  every method (dense too), head_dim, num_heads, num_layers and num_steps;
 *  SVG also frames, height and width (and text_tokens / text_first when text
 *  tokens are in the sequence); SVOO a profile, or it runs every head at
 *  floor_ratio and says so once. */
SVOO_API void svoo_config_init(svoo_config *cfg, svoo_method method);

/*! svoo_ctx_create() : validates `cfg` (message names the field) and creates a
 *  context holding the per-layer state of one generation.
 *  @return : SVOO_OK and *out, or an error with *out == NULL and the message in
 *            svoo_last_error(NULL). */
SVOO_API svoo_status svoo_ctx_create(const svoo_config *cfg, svoo_ctx **out);
SVOO_API void svoo_ctx_free(svoo_ctx *ctx);
/*! svoo_ctx_reset() : forgets cached clusters/centroids (start of a new video). */
SVOO_API void svoo_ctx_reset(svoo_ctx *ctx);
/*! svoo_ctx_config() : @return : the context's validated config (read-only). */
SVOO_API const svoo_config *svoo_ctx_config(const svoo_ctx *ctx);

/* Per-call report. Times in milliseconds of wall clock (CPU) or of device
 * events (CUDA). */
typedef struct {
    size_t size;          /* set by svoo_stats_init */
    double density;       /* fraction of the B*H*N*N score matrix computed */
    int dense;            /* 1: the call ran dense (warm-up or method dense) */
    int replanned;        /* 1: clusters/masks computed this call, 0: reused */
    double ms_plan;       /* clustering, selection, masks */
    double ms_permute;    /* gathers into / scatters out of cluster order */
    double ms_attend;     /* the attention executor */
    double ms_total;
    double recall;        /* mean dense probability mass of computed keys on
                             recall_rows sampled rows; NaN when not measured */
    int spatial_heads, temporal_heads; /* SVG classification of this call */
} svoo_stats;

SVOO_API void svoo_stats_init(svoo_stats *st);

/*! svoo_attention() : out = attention(q, k, v) for one layer call.
 *  q, k, v, out : (B, H, N, D) views of one dtype on the context's device;
 *  B may differ between calls (each batch element gets its own plan).
 *  step in [0, num_steps), layer in [0, num_layers). stats may be NULL.
 *  Softmax scale is 1/sqrt(D). `out` must not overlap q, k or v
 *  (SVOO_ERR_INVALID_ARGUMENT): the planners and the executors read the
 *  inputs after rows of out are written. NaN/Inf inputs: with cfg.check_finite the call
 *  fails with SVOO_ERR_NONFINITE_INPUT; otherwise they propagate to the rows
 *  they touch (no crash).
 *  @return : SVOO_OK, or an error status with svoo_last_error(ctx) set and
 *            `out` unspecified. */
SVOO_API svoo_status svoo_attention(svoo_ctx *ctx, int step, int layer,
                                    const svoo_tensor *q, const svoo_tensor *k,
                                    const svoo_tensor *v, svoo_tensor *out,
                                    svoo_stats *stats);

/*! svoo_workspace_size() : device bytes the CUDA backend preallocates for
 *  calls of batch B at sequence length N under `cfg` (0 on the CPU); an upper
 *  bound, found without touching the device: with config.cuda_kv_order (a
 *  sparse method, with or without config.ear) it counts the copy of K and V in
 *  key-cluster order, which a context allocates only on a Hopper GPU.
 *  @return : SVOO_OK, or the error svoo_ctx_create would give for `cfg`. */
SVOO_API svoo_status svoo_workspace_size(const svoo_config *cfg, int64_t B,
                                         int64_t N, size_t *bytes);

/* ------------------------------------------------------------------------ */
/* Fidelity metrics                                                         */
/* ------------------------------------------------------------------------ */
typedef struct {
    double rel_l2;   /* ||out - ref|| / ||ref|| */
    double cosine;   /* <out, ref> / (||out|| ||ref||) */
    double max_abs;  /* max |out - ref| */
} svoo_compare_result;

/*! svoo_compare() : compares two CPU views of equal shape (any dtypes).
 *  A NaN in either view (or Inf - Inf) makes all three figures NaN. */
SVOO_API svoo_status svoo_compare(const svoo_tensor *ref, const svoo_tensor *out,
                                  svoo_compare_result *res);

/* ------------------------------------------------------------------------ */
/* Exact density and the profiler                                           */
/* ------------------------------------------------------------------------ */
/*! svoo_density() : exact density of every (b, h) of q, k (CPU views): for each
 *  query row, the smallest fraction of keys whose softmax mass reaches tau,
 *  averaged over the rows 0, row_step, 2*row_step, ... (row_step >= 1).
 *  densities : B*H doubles, index b*H + h. num_threads 0 = default, at most
 *  SVOO_MAX_THREADS. */
SVOO_API svoo_status svoo_density(const svoo_tensor *q, const svoo_tensor *k,
                                  double tau, int64_t row_step, int num_threads,
                                  double *densities);

typedef struct svoo_profiler svoo_profiler;

/*! svoo_profiler_create() : collects densities of dense runs for a model of
 *  steps x layers x heads. One run = one prompt's generation. */
SVOO_API svoo_status svoo_profiler_create(int steps, int layers, int heads,
                                          double tau, int64_t row_step,
                                          svoo_profiler **out);
SVOO_API void svoo_profiler_free(svoo_profiler *p);
/*! svoo_profiler_begin_run() : starts a new prompt's run. */
SVOO_API svoo_status svoo_profiler_begin_run(svoo_profiler *p);
/*! svoo_profiler_observe() : density of every head of q, k at (step, layer)
 *  in the current run (batch elements are averaged). */
SVOO_API svoo_status svoo_profiler_observe(svoo_profiler *p, int step, int layer,
                                           const svoo_tensor *q,
                                           const svoo_tensor *k);
/*! svoo_profiler_runs() : @return : number of runs begun. */
SVOO_API int svoo_profiler_runs(const svoo_profiler *p);
/*! svoo_profiler_result() : merged profile over runs (max as the reference, or
 *  mean). Caller frees *out. */
SVOO_API svoo_status svoo_profiler_result(const svoo_profiler *p, svoo_merge mode,
                                          svoo_profile **out);

typedef struct {
    int runs;
    double mean, std, min, max; /* of per-run density over (step, head) entries */
    double mean_spread;         /* mean over entries of (max - min) across runs */
    double mean_cv;             /* mean over entries of std/mean across runs */
} svoo_stability;

/*! svoo_profiler_stability() : input-stability of `layer` (or all layers with
 *  layer == -1) across the runs observed. */
SVOO_API svoo_status svoo_profiler_stability(const svoo_profiler *p, int layer,
                                             svoo_stability *s);

/* ------------------------------------------------------------------------ */
/* Tensor files: safetensors and .npy                                       */
/* ------------------------------------------------------------------------ */
#define SVOO_MAX_RANK 8

typedef struct {
    const char *name;     /* NUL-terminated; "" for .npy */
    svoo_dtype dtype;
    int rank;
    int64_t dims[SVOO_MAX_RANK];
    const void *data;     /* little-endian, C order */
    size_t nbytes;
} svoo_array;

typedef struct svoo_tensorfile svoo_tensorfile;

/*! svoo_tensorfile_open() : maps a .safetensors or .npy file (by content) and
 *  validates header, dtypes, shapes, offsets and bounds (docs/FILES.md).
 *  @return : SVOO_OK, or SVOO_ERR_IO, _FILE_TRUNCATED (header or data beyond
 *            the end), _FILE_CORRUPT, _UNKNOWN_DTYPE, _DUPLICATE_NAME, or
 *            _UNSUPPORTED (big-endian / Fortran-order .npy, rank > 8). */
SVOO_API svoo_status svoo_tensorfile_open(const char *path, svoo_tensorfile **out);
SVOO_API void svoo_tensorfile_free(svoo_tensorfile *f);
SVOO_API int svoo_tensorfile_count(const svoo_tensorfile *f);
/*! svoo_tensorfile_get() : i-th array (views into the mapping, valid until free). */
SVOO_API svoo_status svoo_tensorfile_get(const svoo_tensorfile *f, int i,
                                         svoo_array *out);
/*! svoo_tensorfile_find() : array by name (SVOO_ERR_NOT_FOUND if absent). */
SVOO_API svoo_status svoo_tensorfile_find(const svoo_tensorfile *f,
                                          const char *name, svoo_array *out);
/*! svoo_safetensors_save() : writes arrays atomically (temp file + rename). */
SVOO_API svoo_status svoo_safetensors_save(const char *path, const svoo_array *arrays,
                                           int count);
/*! svoo_npy_save() : writes one array as .npy v1.0 (bf16 as '<u2'), atomically. */
SVOO_API svoo_status svoo_npy_save(const char *path, const svoo_array *array);
/*! svoo_array_view() : tensor view of a rank-3 ([H, N, D] / [N, H, D], B = 1)
 *  or rank-4 array; layout_bnhd = 1 for [B, N, H, D]. No copy: a view of an
 *  array from svoo_tensorfile_get() points into a read-only mapping and must
 *  only be read (q, k, v), never passed as `out`. */
SVOO_API svoo_status svoo_array_view(const svoo_array *a, int layout_bnhd,
                                     svoo_tensor *out);

#ifdef __cplusplus
}
#endif
#endif /* SVOO_H */

/* ------------------------------------------------------------------------ */
/* Experimental: synthetic video workloads and test hooks. Only for static   */
/* linking; may change between versions.                                    */
/* ------------------------------------------------------------------------ */
#if defined(SVOO_STATIC_LINKING_ONLY) && !defined(SVOO_H_STATIC)
#define SVOO_H_STATIC
#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    SVOO_HEAD_SPATIAL = 0,  /* attends within nearby frames */
    SVOO_HEAD_TEMPORAL = 1, /* attends to the same place across frames */
    SVOO_HEAD_SEMANTIC = 2  /* attends within moving object-like groups */
} svoo_head_kind;

typedef struct {
    size_t size;         /* set by svoo_synth_config_init */
    char preset[32];
    int frames, height, width, text_tokens, text_first;
    int heads, head_dim, layers, steps;
    uint64_t seed;
    const svoo_profile *profile; /* borrowed; NULL = documented default spread */
    double tau;          /* density threshold of the calibration (0.95) */
    int64_t calib_row_step; /* rows sampled in calibration (16) */
} svoo_synth_config;

typedef struct svoo_synth svoo_synth;

SVOO_API void svoo_synth_config_init(svoo_synth_config *cfg);
/*! svoo_synth_preset() : fills geometry/heads/layers/steps of a named preset
 *  ("tiny", "small", "wan2.1-1.3b-720p", ...). SVOO_ERR_NOT_FOUND if unknown. */
SVOO_API svoo_status svoo_synth_preset(const char *name, svoo_synth_config *cfg);
/*! svoo_synth_preset_names() : NULL-terminated list of preset names. */
SVOO_API const char *const *svoo_synth_preset_names(void);
SVOO_API svoo_status svoo_synth_create(const svoo_synth_config *cfg, svoo_synth **out);
SVOO_API void svoo_synth_free(svoo_synth *s);
/*! svoo_synth_generate() : calibrated q, k, v of (step, layer), all heads, as
 *  contiguous [1, H, N, D] buffers of dtype `dt` (N*H*D elements each). */
SVOO_API svoo_status svoo_synth_generate(svoo_synth *s, int step, int layer,
                                         svoo_dtype dt, void *q, void *k, void *v);
/*! svoo_synth_profile() : the profile the generator targets, shaped like the
 *  preset (steps x layers x heads, after the evenly spaced subset); what a
 *  SVOO context on this workload should read. Caller frees *out. */
SVOO_API svoo_status svoo_synth_profile(const svoo_synth *s, svoo_profile **out);
/*! svoo_synth_head_info() : the kind and target density of a head at
 *  (step, layer), and the profile (step, layer, head) it was mapped from. */
SVOO_API svoo_status svoo_synth_head_info(const svoo_synth *s, int step, int layer,
                                          int head, svoo_head_kind *kind,
                                          double *target, int src_index[3]);
SVOO_API const char *svoo_head_kind_name(svoo_head_kind k);

/*! svoo_alloc_fail_at() : test hook: the k-th library allocation from now on
 *  (1-based) fails; 0 disables. @return : allocations counted since the last
 *  call to this function. */
SVOO_API int64_t svoo_alloc_fail_at(int64_t k);

#ifdef __cplusplus
}
#endif
#endif /* SVOO_STATIC_LINKING_ONLY */
