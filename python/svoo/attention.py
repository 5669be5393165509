"""SparseAttention, Profile, Profiler, density() and compare() over libsvoo."""
import ctypes
import logging
import math
import os
import threading
import weakref

import numpy as np

from . import _arrays as A
from . import _lib as L

logger = logging.getLogger("svoo")

# defaults of the model fields for method "dense" when the caller gives none
# (they only bound the step/layer indices there)
_DENSE_STEPS = 1 << 20
_DENSE_LAYERS = 1024


def _fspath(path):
    b = os.fsencode(os.fspath(path))
    if b"\0" in b:
        # ctypes would pass the path only up to the NUL (another file)
        raise ValueError("%r: embedded null byte in path" % (path,))
    return b


# --------------------------------------------------------------------------
# Profiles
# --------------------------------------------------------------------------
def _indices(step, layer, head=None):
    """(step, layer[, head]) as C ints (out-of-range values raise, not wrap)."""
    idx = (L.int_arg(step, "step"), L.int_arg(layer, "layer"))
    return idx if head is None else idx + (L.int_arg(head, "head"),)


class _Closable:
    """close() at the end of a with block and when the object is collected."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


class _Owned(_Closable):
    """Owns one C handle (self._h), freed by close()."""

    _free = None  # name of the svoo_*_free function

    def _handle(self):
        if not self._h:
            raise ValueError("%s is closed" % type(self).__name__)
        return self._h

    def close(self):
        if self._h:
            getattr(L, self._free)(self._h)
            self._h = ctypes.c_void_p()


class Profile(_Owned):
    """Offline per-(step, layer, head) density grid (SVOO CSV format).

    Profile(steps, layers, heads) makes an empty grid; Profile.load(path)
    reads a `Step,Layer,Head,Sparsity` CSV (1-based steps in the file, 0-based
    in this API)."""

    _free = "svoo_profile_free"

    def __init__(self, steps=None, layers=None, heads=None, _handle=None):
        self._h = ctypes.c_void_p()
        if _handle is not None:
            self._h = _handle
        else:
            if steps is None or layers is None or heads is None:
                raise TypeError("Profile(steps, layers, heads) or Profile.load(path)")
            L.check(
                L.svoo_profile_create(L.int_arg(steps, "steps"), L.int_arg(layers, "layers"),
                                      L.int_arg(heads, "heads"), ctypes.byref(self._h)),
                prefix="Profile",
            )
        self.path = None

    @classmethod
    def load(cls, path):
        h = ctypes.c_void_p()
        L.check(L.svoo_profile_load(_fspath(path), ctypes.byref(h)))
        p = cls(_handle=h)
        p.path = os.fspath(path)
        return p

    @classmethod
    def from_numpy(cls, values):
        """Grid from a [steps, layers, heads] array (NaN = absent entry)."""
        a = np.asarray(values, dtype=np.float64)
        if a.ndim != 3:
            raise ValueError("Profile.from_numpy: expected [steps, layers, heads], got rank %d" % a.ndim)
        p = cls(*a.shape)
        for (s, l, h), v in np.ndenumerate(a):
            if not math.isnan(v):
                p.set(s, l, h, float(v))
        return p

    def save(self, path):
        L.check(L.svoo_profile_save(self._handle(), _fspath(path)))

    @property
    def dims(self):
        s, l, h = ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
        L.svoo_profile_dims(self._handle(), ctypes.byref(s), ctypes.byref(l), ctypes.byref(h))
        return s.value, l.value, h.value

    steps = property(lambda self: self.dims[0])
    layers = property(lambda self: self.dims[1])
    heads = property(lambda self: self.dims[2])

    def get(self, step, layer, head, default=None):
        """Kept ratio at (step, layer, head), 0-based. An absent entry returns
        `default` when given, else raises SvooNotFoundError."""
        v = ctypes.c_double()
        s = L.svoo_profile_get(self._handle(), *_indices(step, layer, head), ctypes.byref(v))
        if s == L.SVOO_ERR_NOT_FOUND and default is not None:
            return default
        L.check(s)
        return v.value

    def set(self, step, layer, head, value):
        L.check(L.svoo_profile_set(self._handle(), *_indices(step, layer, head), float(value)))

    def merge(self, other, mode="max"):
        if not isinstance(other, Profile):
            raise TypeError("merge: expected an svoo.Profile, got %s" % type(other).__name__)
        L.check(L.svoo_profile_merge(self._handle(), other._handle(), _merge_code(mode)))

    def stats(self):
        st = L.svoo_profile_stats()
        L.check(L.svoo_profile_stats_get(self._handle(), ctypes.byref(st)))
        return {n: getattr(st, n) for n, _ in st._fields_}

    def to_numpy(self):
        """[steps, layers, heads] float64 array, NaN where an entry is absent."""
        S, Ly, H = self.dims
        out = np.full((S, Ly, H), np.nan)
        v = ctypes.c_double()
        h = self._handle()
        for s in range(S):
            for l in range(Ly):
                for k in range(H):
                    if L.svoo_profile_get(h, s, l, k, ctypes.byref(v)) == L.SVOO_OK:
                        out[s, l, k] = v.value
        return out

    def __repr__(self):
        if not self._h:
            return "<svoo.Profile closed>"
        return "<svoo.Profile steps=%d layers=%d heads=%d%s>" % (
            self.dims + ((" path=%r" % self.path) if self.path else "",)
        )


def load_profile(path):
    return Profile.load(path)


def _merge_code(mode):
    if isinstance(mode, int):
        return mode
    try:
        return L.MERGES[str(mode).lower()]
    except KeyError:
        raise ValueError("merge=%r: expected 'max' or 'mean'" % (mode,)) from None


# --------------------------------------------------------------------------
# Context-free calls
# --------------------------------------------------------------------------
def density(q, k, tau=0.95, row_step=16, num_threads=0, dtype=None):
    """Exact density of every (batch, head): per query row, the smallest
    fraction of keys whose softmax mass reaches tau, averaged over rows
    0, row_step, ... Returns a float64 array [B, H]. CUDA tensors are copied
    to the host."""
    qv = A.cpu_view(q, "q", dtype)
    kv = A.cpu_view(k, "k", dtype)
    B, H = qv.shape[0], qv.shape[1]
    out = np.empty((B, H), dtype=np.float64)
    s = L.svoo_density(
        qv.ref(),
        kv.ref(),
        float(tau),
        int(row_step),
        L.int_arg(num_threads, "num_threads"),
        out.ctypes.data_as(L.c_double_p),
    )
    L.check(s, prefix="density")
    return out


def compare(ref, out, dtype=None):
    """Fidelity of `out` against `ref` (equal shapes, any dtypes):
    {'rel_l2', 'cosine', 'max_abs'}. CUDA tensors are copied to the host."""
    rv = A.cpu_view(ref, "ref", dtype)
    ov = A.cpu_view(out, "out", dtype)
    res = L.svoo_compare_result()
    L.check(L.svoo_compare(rv.ref(), ov.ref(), ctypes.byref(res)), prefix="compare")
    return {"rel_l2": res.rel_l2, "cosine": res.cosine, "max_abs": res.max_abs}


# --------------------------------------------------------------------------
# Profiler
# --------------------------------------------------------------------------
class Profiler(_Owned):
    """Collects the densities of dense runs (one run = one prompt) into a
    steps x layers x heads profile."""

    _free = "svoo_profiler_free"

    def __init__(self, num_steps, num_layers, heads, tau=0.95, row_step=16):
        self._h = ctypes.c_void_p()
        L.check(
            L.svoo_profiler_create(
                L.int_arg(num_steps, "num_steps"), L.int_arg(num_layers, "num_layers"),
                L.int_arg(heads, "heads"), float(tau), int(row_step),
                ctypes.byref(self._h),
            ),
            prefix="Profiler",
        )
        self.num_steps, self.num_layers, self.heads = int(num_steps), int(num_layers), int(heads)
        self._lock = threading.Lock()

    def new_run(self):
        with self._lock:
            L.check(L.svoo_profiler_begin_run(self._handle()))

    @property
    def runs(self):
        return L.svoo_profiler_runs(self._handle())

    def observe(self, step, layer, q, k, dtype=None):
        qv = A.cpu_view(q, "q", dtype)
        kv = A.cpu_view(k, "k", dtype)
        step_i, layer_i = _indices(step, layer)
        with self._lock:
            L.check(
                L.svoo_profiler_observe(self._handle(), step_i, layer_i, qv.ref(), kv.ref()),
                prefix="profiler observe (step %d, layer %d)" % (step_i, layer_i),
            )

    def result(self, merge="max"):
        h = ctypes.c_void_p()
        L.check(L.svoo_profiler_result(self._handle(), _merge_code(merge), ctypes.byref(h)))
        return Profile(_handle=h)

    def stability(self, layer=-1):
        st = L.svoo_stability()
        L.check(L.svoo_profiler_stability(self._handle(), L.int_arg(layer, "layer"),
                                          ctypes.byref(st)))
        return {n: getattr(st, n) for n, _ in st._fields_}


# --------------------------------------------------------------------------
# SparseAttention
# --------------------------------------------------------------------------
def _parse_geometry(geometry):
    """-> dict(frames, height, width, text_tokens, text_first) or None."""
    if geometry is None:
        return None
    if isinstance(geometry, dict):
        allowed = {"frames", "height", "width", "text_tokens", "text_first"}
        bad = set(geometry) - allowed
        if bad:
            raise TypeError("geometry: unknown keys %s (allowed: %s)" % (sorted(bad), sorted(allowed)))
        g = {k: int(geometry.get(k, 0)) for k in allowed}
        return g
    try:
        vals = [int(x) for x in geometry]
    except TypeError:
        raise TypeError("geometry: expected (frames, height, width) or a dict, got %r" % (geometry,)) from None
    if len(vals) not in (3, 4):
        raise ValueError("geometry: expected (frames, height, width[, text_tokens]), got %r" % (geometry,))
    g = dict(frames=vals[0], height=vals[1], width=vals[2], text_tokens=0, text_first=0)
    if len(vals) == 4:
        g["text_tokens"] = vals[3]
    return g


def _check_field(cfg, name, value):
    """ctypes wraps an integer that does not fit its field silently
    (num_steps=2**32 + 4 would be stored as 4): raise instead."""
    got = getattr(cfg, name)
    if isinstance(got, int) and got != value:
        raise L.SvooValueError(
            L.SVOO_ERR_INVALID_ARGUMENT,
            "SparseAttention: config.%s: %r does not fit the field (%s)"
            % (name, value, dict(cfg._fields_)[name].__name__),
        )


def _set_field(cfg, name, value):
    setattr(cfg, name, value)
    _check_field(cfg, name, value)


def _log_trampoline(ref):
    """The contexts' log_fn. It holds the SparseAttention weakly: a bound
    method would make a cycle (object -> callback -> object) that keeps the
    object and its contexts alive until the cyclic GC runs."""

    def log(user, msg):
        sa = ref()
        if sa is not None:
            sa._on_log(user, msg)
        else:
            logger.warning("%s", msg.decode(errors="replace") if msg else "")

    return log


_STATS_FIELDS = [n for n, _ in L.svoo_stats._fields_ if n != "size"]


class SparseAttention(_Closable):
    """Sparse attention over [B, H, N, D] q/k/v (SDPA's conventions; softmax
    scale 1/sqrt(D)). One object serves one model: contexts (holding the
    per-layer state of a generation) are created lazily per (heads, head_dim,
    device, geometry) seen.

        attn = svoo.SparseAttention("svoo", geometry=(21, 45, 80),
                                    profile="sparsity_wan_1.3B_t2v.csv",
                                    num_steps=50, num_layers=30)
        out = attn(q, k, v, step, layer)

    Knobs: any svoo_config field (top_p, floor_min, q_clusters, warmup_step_frac,
    reuse_every, num_threads, ...); an unknown name raises TypeError.

    stats: fill `last_stats` after each call. None (default): on CPU calls
    only, because on CUDA the statistics are read back from the device, which
    makes the host wait for the call (a synchronisation per layer); True: on
    every call; False: never. Without them `last_stats` is None.
    """

    def __init__(self, method="svoo", geometry=None, profile=None, num_steps=None,
                 num_layers=None, device=None, log=None, stats=None, **knobs):
        mcode = L.METHODS.get(str(method).lower())
        if mcode is None:
            raise ValueError("method=%r: expected one of %s" % (method, sorted(L.METHODS)))
        self.method = str(method).lower()
        self._mcode = mcode
        bad = [k for k in knobs if k not in L.CONFIG_KNOBS]
        if bad:
            raise TypeError(
                "SparseAttention: unknown knob(s) %s; valid: %s" % (", ".join(bad), ", ".join(L.CONFIG_KNOBS))
            )
        for k in ("num_steps", "num_layers"):
            if k in knobs:
                raise TypeError("pass %s as its own argument" % k)
        self.knobs = dict(knobs)
        self._geometry = _parse_geometry(geometry)
        for k in ("frames", "height", "width", "text_tokens", "text_first"):
            if k in knobs and self._geometry is not None:
                raise TypeError("%s given both as a knob and in geometry" % k)
        self.num_steps = None if num_steps is None else int(num_steps)
        self.num_layers = None if num_layers is None else int(num_layers)
        self.device = device
        if isinstance(profile, (str, bytes, os.PathLike)):
            profile = Profile.load(profile)
        elif profile is not None and not isinstance(profile, Profile):
            raise TypeError("profile: expected a path or an svoo.Profile, got %s" % type(profile).__name__)
        self.profile = profile
        self._log = log
        self._log_cb = L.LOG_FN(_log_trampoline(weakref.ref(self)))  # kept alive with the object
        self._ctxs = {}  # key -> (ctx handle, stream, the Profile the ctx borrows)
        self._lock = threading.RLock()  # one call at a time on the contexts
        self.stats = stats
        self.last_stats = None
        self.calls = 0
        self.current_step = None  # set by a StepTracker (torch op step = -1 reads it)
        self._registry_id = None
        # validate the knobs now (a bad value fails here, not at the first call)
        self._make_config(heads=1, head_dim=64, dev=L.DEVICE_CPU, index=0, stream=None,
                          geometry=self._geometry, validate=True)

    # ---- configuration ----------------------------------------------------
    @property
    def geometry(self):
        return None if self._geometry is None else dict(self._geometry)

    @geometry.setter
    def geometry(self, g):
        self._geometry = _parse_geometry(g)

    def _on_log(self, user, msg):
        text = msg.decode(errors="replace") if msg else ""
        if self._log is not None:
            self._log(text)
        else:
            logger.warning("%s", text)

    def _make_config(self, heads, head_dim, dev, index, stream, geometry, validate=False):
        cfg = L.svoo_config()
        L.svoo_config_init(ctypes.byref(cfg), self._mcode)
        cfg.device = dev
        cfg.device_index = index
        cfg.cuda_stream = stream
        cfg.head_dim = head_dim
        cfg.num_heads = heads
        dense = self._mcode == L.METHOD_DENSE
        steps, layers = self.num_steps, self.num_layers
        if steps is None:
            if not dense and not validate:
                raise ValueError(
                    "SparseAttention(method=%r): num_steps is required (warm-up and plan "
                    "reuse are scheduled over the steps)" % self.method
                )
            steps = _DENSE_STEPS
        if layers is None:
            if not dense and not validate:
                raise ValueError(
                    "SparseAttention(method=%r): num_layers is required (or use svoo.install, "
                    "which counts the self-attention layers)" % self.method
                )
            layers = _DENSE_LAYERS if not validate else 1
        _set_field(cfg, "num_steps", steps)
        _set_field(cfg, "num_layers", layers)
        if geometry:
            for k, v in geometry.items():
                _set_field(cfg, k, v)
        for k, v in self.knobs.items():
            try:
                setattr(cfg, k, v)
            except TypeError:
                raise TypeError("knob %s=%r: wrong type" % (k, v)) from None
            _check_field(cfg, k, v)
        if self.profile is not None:
            cfg.profile = self.profile._handle()
        cfg.log_fn = self._log_cb
        if validate:
            # head_dim/heads/geometry are placeholders here: check the knobs only
            probe = L.svoo_config.from_buffer_copy(cfg)
            if self.profile is not None:
                probe.num_heads = self.profile.heads
            if self._mcode == L.METHOD_SVG and not geometry:
                probe.frames = probe.height = probe.width = 1
            ctx = ctypes.c_void_p()
            s = L.svoo_ctx_create(ctypes.byref(probe), ctypes.byref(ctx))
            if s == L.SVOO_OK:
                L.svoo_ctx_free(ctx)
            elif s != L.SVOO_ERR_UNSUPPORTED:
                raise L.make_error(s, None, "SparseAttention")
        return cfg

    def config(self, heads, head_dim, device="cpu"):
        """The svoo_config a context for (heads, head_dim) would get, as a dict."""
        cfg = self._make_config(heads, head_dim, L.DEVICE_CUDA if str(device).startswith("cuda") else L.DEVICE_CPU,
                                0, None, self._geometry)
        return {n: getattr(cfg, n) for n, _ in cfg._fields_ if n not in ("log_fn", "log_user", "profile", "cuda_stream")}

    def _context(self, heads, head_dim, qv, stream):
        g = self._geometry
        gkey = tuple(sorted(g.items())) if g else None
        # a CUDA context's workspace is sized for (batch, tokens) at creation
        size = (qv.shape[0], qv.shape[2]) if qv.device == "cuda" else None
        key = (heads, head_dim, qv.device, qv.device_index, gkey, size)
        entry = self._ctxs.get(key)
        if entry is not None:
            return entry
        dev = L.DEVICE_CUDA if qv.device == "cuda" else L.DEVICE_CPU
        cfg = self._make_config(heads, head_dim, dev, qv.device_index, stream, g)
        if size is not None:
            if "max_batch" not in self.knobs:
                cfg.max_batch = size[0]
            if "max_tokens" not in self.knobs:
                cfg.max_tokens = size[1]
        ctx = ctypes.c_void_p()
        s = L.svoo_ctx_create(ctypes.byref(cfg), ctypes.byref(ctx))
        if s != L.SVOO_OK:
            raise L.make_error(s, None, "SparseAttention context")
        # the context reads the profile through a borrowed pointer: keep the
        # Profile alive with it (a reassigned self.profile must not free it)
        entry = (ctx, stream, self.profile)
        self._ctxs[key] = entry
        return entry

    # ---- the call ---------------------------------------------------------
    def __call__(self, q, k, v, step, layer, out=None, dtype=None):
        """out = softmax(q k^T / sqrt(D)) v, sparse per the method. q, k, v:
        [B, H, N, D] numpy arrays or torch tensors (one device, one dtype; D
        contiguous, other strides free). Returns a new array/tensor laid out
        like q, or `out`, which must not overlap q, k or v."""
        step_i, layer_i = _indices(step, layer)
        names = ("q", "k", "v")
        views = [A.view(x, n, dtype) for x, n in zip((q, k, v), names)]
        A.same_place(views, names)
        qv = views[0]
        if self.device is not None:
            want = str(self.device)
            have = qv.device if qv.device == "cpu" else "cuda:%d" % qv.device_index
            if not (want == have or (want == "cuda" and qv.device == "cuda")):
                raise L.SvooValueError(
                    L.SVOO_ERR_WRONG_DEVICE,
                    "q is on %s but SparseAttention(device=%r)" % (have, self.device),
                )
        if out is None:
            out = A.empty_like(qv)
        ov = A.view(out, "out", dtype, writable=True)
        A.same_place(views + [ov], names + ("out",))
        B, H, N, D = qv.shape
        stream = None
        torch = None
        if qv.device == "cuda":
            torch = A.torch_module()
            stream = torch.cuda.current_stream(qv.obj.device).cuda_stream
        # svoo.h: a context must not be used by two threads at once, and
        # ctypes releases the GIL during the call
        with self._lock:
            ctx, ctx_stream, profile = self._context(H, D, qv, stream)
            if profile is not None and not profile._h:
                raise L.SvooValueError(
                    L.SVOO_ERR_INVALID_ARGUMENT,
                    "SparseAttention: its svoo.Profile was closed while a context reads it "
                    "(close the Profile after the SparseAttention)",
                )
            want = self.stats if self.stats is not None else qv.device == "cpu"
            st = L.svoo_stats()
            L.svoo_stats_init(ctypes.byref(st))
            stp = ctypes.byref(st) if want else None
            if torch is not None and ctx_stream != stream:
                # the context was made for another stream: order it after the
                # current stream's work and the current stream after it
                cur = torch.cuda.current_stream(qv.obj.device)
                ext = torch.cuda.ExternalStream(ctx_stream, device=qv.obj.device)
                ext.wait_stream(cur)
                s = L.svoo_attention(ctx, step_i, layer_i, qv.ref(), views[1].ref(),
                                     views[2].ref(), ov.ref(), stp)
                cur.wait_stream(ext)
            else:
                s = L.svoo_attention(ctx, step_i, layer_i, qv.ref(), views[1].ref(),
                                     views[2].ref(), ov.ref(), stp)
            if s != L.SVOO_OK:
                raise L.make_error(s, ctx, "svoo_attention(step=%s, layer=%s)" % (step, layer))
        self.last_stats = None
        if want:
            stats = {n: getattr(st, n) for n in _STATS_FIELDS}
            stats["dense"] = bool(stats["dense"])
            stats["replanned"] = bool(stats["replanned"])
            stats.update(step=step_i, layer=layer_i, method=self.method,
                         shape=(B, H, N, D))
            self.last_stats = stats
        self.calls += 1
        return out

    # ---- life cycle -------------------------------------------------------
    def reset(self):
        """Forget cached clusters/centroids: call between videos."""
        with self._lock:
            for ctx, _, _ in self._ctxs.values():
                L.svoo_ctx_reset(ctx)
            self.last_stats = None

    def close(self):
        with self._lock:
            ctxs, self._ctxs = self._ctxs, {}
            for ctx, _, _ in ctxs.values():
                L.svoo_ctx_free(ctx)

    def __repr__(self):
        return "<svoo.SparseAttention method=%s steps=%s layers=%s geometry=%s knobs=%s contexts=%d>" % (
            self.method, self.num_steps, self.num_layers, self._geometry, self.knobs, len(self._ctxs))


# --------------------------------------------------------------------------
# Tensor files (safetensors / .npy) through the library's reader
# --------------------------------------------------------------------------
_NP_OF = {L.F32: np.float32, L.F16: np.float16, L.BF16: np.uint16}


def load_tensors(path):
    """{name: numpy array} of a .safetensors or .npy file (copies; bf16
    arrays come back as uint16 bit patterns; a .npy file's array is named "")."""
    h = ctypes.c_void_p()
    L.check(L.svoo_tensorfile_open(_fspath(path), ctypes.byref(h)))
    try:
        out = {}
        for i in range(L.svoo_tensorfile_count(h)):
            a = L.svoo_array()
            L.check(L.svoo_tensorfile_get(h, i, ctypes.byref(a)))
            dt = np.dtype(_NP_OF[a.dtype])
            shape = tuple(a.dims[j] for j in range(a.rank))
            buf = ctypes.string_at(a.data, a.nbytes) if a.nbytes else b""
            out[(a.name or b"").decode()] = np.frombuffer(buf, dtype=dt).reshape(shape).copy()
        return out
    finally:
        L.svoo_tensorfile_free(h)


def _array_struct(name, x, dtype):
    if not isinstance(name, str):
        raise TypeError("tensor name %r: expected a str" % (name,))
    if "\0" in name:
        # ctypes would pass the name only up to the NUL (a renamed tensor)
        raise ValueError("tensor name %r: embedded null byte" % (name,))
    x = np.ascontiguousarray(x)
    if x.dtype == np.uint16:
        if A._parse_dtype(dtype) != L.BF16:
            raise TypeError("%s: uint16 array: pass dtype='bf16'" % name)
        dt = L.BF16
    elif x.dtype in A._NP_DTYPES:
        dt = A._NP_DTYPES[x.dtype]
    else:
        raise TypeError("%s: dtype %s not supported (float32, float16, uint16 as bf16)" % (name, x.dtype))
    if x.ndim > L.SVOO_MAX_RANK:
        raise ValueError("%s: rank %d > %d" % (name, x.ndim, L.SVOO_MAX_RANK))
    a = L.svoo_array()
    nm = name.encode()
    a.name = nm
    a.dtype = dt
    a.rank = x.ndim
    for i, d in enumerate(x.shape):
        a.dims[i] = d
    a.data = x.ctypes.data
    a.nbytes = x.nbytes
    return a, (x, nm)


def save_safetensors(path, arrays, dtypes=None):
    """Write {name: numpy array} as safetensors (atomically). dtypes may map a
    name to 'bf16' for uint16 arrays."""
    dtypes = dtypes or {}
    keep, structs = [], []
    for name, x in arrays.items():
        a, k = _array_struct(name, x, dtypes.get(name))
        structs.append(a)
        keep.append(k)
    arr = (L.svoo_array * len(structs))(*structs)
    L.check(L.svoo_safetensors_save(_fspath(path), arr, len(structs)))


def save_npy(path, array, dtype=None):
    a, keep = _array_struct("", array, dtype)
    L.check(L.svoo_npy_save(_fspath(path), ctypes.byref(a)))
