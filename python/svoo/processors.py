"""Attention processors for diffusers-style pipelines (Wan-style attention).

Two lines in a pipeline:

    attn = svoo.SparseAttention("svoo", profile="sparsity_wan_1.3B_t2v.csv", num_steps=50)
    svoo.install(pipe.transformer, attn)

`install` gives every self-attention module (Wan's `attn1`) a WanAttnProcessor
that knows its layer index, and adds a forward pre-hook on the transformer
that advances the denoising step (and reads the latent geometry). Cross-
attention keeps its processor (dense).
"""
import math

from . import _arrays as A


def _torch():
    import torch

    return torch


def _sdpa(q, k, v, attn_mask=None):
    """F.scaled_dot_product_attention, or its definition on old torch."""
    torch = _torch()
    F = torch.nn.functional
    if hasattr(F, "scaled_dot_product_attention"):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=0.0, is_causal=False)
    s = torch.matmul(q, k.transpose(-2, -1)) * (1.0 / math.sqrt(q.shape[-1]))
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            s = s.masked_fill(~attn_mask, float("-inf"))
        else:
            s = s + attn_mask
    return torch.matmul(torch.softmax(s.float(), dim=-1).to(v.dtype), v)


def _scalar(t):
    if t is None:
        return None
    if A.is_torch(t):
        if t.numel() == 0:
            return None
        return float(t.reshape(-1)[0].item())
    try:
        return float(t)
    except (TypeError, ValueError):
        return None


# --------------------------------------------------------------------------
# Step tracking
# --------------------------------------------------------------------------
class StepTracker:
    """Denoising step of a transformer, advanced by a forward pre-hook.

    With a `timestep` argument to the transformer's forward (diffusers' Wan,
    HunyuanVideo, CogVideoX pass one) the step advances when the timestep
    changes, so classifier-free guidance's two forwards per step count once,
    and a timestep that goes up (or a step past num_steps) starts a new
    generation at step 0. Without one, every `forwards_per_step` forwards
    make a step. `set_step(i)` / `new_generation()` control it by hand.
    """

    def __init__(self, num_steps=None, forwards_per_step=1):
        self.num_steps = num_steps
        self.forwards_per_step = max(1, int(forwards_per_step))
        self.step = 0
        self.generation = 0  # generations begun
        self._last_t = None
        self._forwards = 0
        self._fresh = True
        self.on_new_generation = []  # callables(tracker)
        self.on_step = []  # callables(tracker, hidden_states)
        self.targets = []  # SparseAttention objects whose current_step we set

    def new_generation(self):
        """Next forward is step 0 of a new video."""
        self._fresh = True
        self._last_t = None
        self._forwards = 0

    def set_step(self, step):
        self.step = int(step)
        self._fresh = False
        self._publish()

    def _begin(self):
        self.step = 0
        self.generation += 1
        self._fresh = False
        for cb in self.on_new_generation:
            cb(self)

    def _publish(self):
        for sa in self.targets:
            sa.current_step = self.step

    def advance(self, timestep=None):
        t = _scalar(timestep)
        if self._fresh:
            self._begin()
            self._last_t = t
            self._forwards = 1
        elif t is not None and self._last_t is not None:
            if t > self._last_t:  # timesteps go down within a generation
                self._begin()
            elif t != self._last_t:
                self.step += 1
            self._last_t = t
        else:
            self._forwards += 1
            if self._forwards > self.forwards_per_step:
                self._forwards = 1
                self.step += 1
        if self.num_steps is not None and self.step >= self.num_steps:
            self._begin()
            self._last_t = t
        self._publish()
        return self.step

    def pre_forward_hook(self, module, args, kwargs=None):
        kwargs = kwargs or {}
        t = kwargs.get("timestep")
        if t is None and len(args) > 1:
            t = args[1]
        hs = kwargs.get("hidden_states", args[0] if args else None)
        self.advance(t)
        for cb in self.on_step:
            cb(self, module, hs)
        return None


def latent_geometry(module, hidden_states):
    """(frames, height, width) of the token grid of a video transformer's
    [B, C, F, H, W] input and its patch_size (config.patch_size), or None."""
    if hidden_states is None or not A.is_torch(hidden_states) or hidden_states.dim() != 5:
        return None
    cfg = getattr(module, "config", None)
    p = getattr(cfg, "patch_size", None) if cfg is not None else None
    if p is None:
        p = getattr(module, "patch_size", None)
    if p is None:
        return None
    if isinstance(p, int):
        p = (1, p, p)
    p = tuple(int(x) for x in p)
    if len(p) == 2:
        p = (1,) + p
    _, _, F, H, W = hidden_states.shape
    return (F // p[0], H // p[1], W // p[2])


# --------------------------------------------------------------------------
# The Wan processor
# --------------------------------------------------------------------------
def _rope_complex_bnhd(x, freqs):
    """diffusers <= 0.34: freqs complex [1, 1, N, D/2], applied on [B, H, N, D];
    here x is [B, N, H, D], so freqs is transposed to [1, N, 1, D/2]."""
    torch = _torch()
    f = freqs.transpose(1, 2) if freqs.dim() == 4 else freqs
    xc = torch.view_as_complex(x.to(torch.float64).unflatten(3, (-1, 2)))
    return torch.view_as_real(xc * f).flatten(3, 4).type_as(x)


def _rope_cos_sin_bnhd(x, cos, sin):
    """diffusers >= 0.35: (freqs_cos, freqs_sin) [1, N, 1, D], on [B, N, H, D]."""
    torch = _torch()
    x1, x2 = x.unflatten(-1, (-1, 2)).unbind(-1)
    c = cos[..., 0::2]
    s = sin[..., 1::2]
    out = torch.empty_like(x)
    out[..., 0::2] = x1 * c - x2 * s
    out[..., 1::2] = x1 * s + x2 * c
    return out.type_as(x)


class WanAttnProcessor:
    """Drop-in for diffusers' WanAttnProcessor2_0 / WanAttnProcessor:
    q/k/v through the module's to_q/to_k/to_v (or fused to_qkv), norm_q/norm_k,
    rotary embedding, then svoo for self-attention and dense SDPA for cross-
    attention (and for I2V image context). `layer` and `tracker` are set by
    svoo.install; `profiler` (svoo.profiling) makes self-attention run dense
    and feeds q/k to the profiler."""

    def __init__(self, sparse_attention=None, layer=None, tracker=None, profiler=None,
                 use_op=True):
        self.sparse_attention = sparse_attention
        self.layer = layer
        self.tracker = tracker
        self.profiler = profiler
        self.use_op = use_op
        self.calls = 0

    @property
    def step(self):
        return self.tracker.step if self.tracker is not None else 0

    def _self_attention(self, q, k, v):
        """q, k, v: [B, H, N, D] views (transposed [B, N, H, D] memory)."""
        sa = self.sparse_attention
        layer = self.layer if self.layer is not None else 0
        if self.profiler is not None:
            self.profiler.observe(self.step, layer, q, k)
            return _sdpa(q, k, v)
        if sa is None:
            return _sdpa(q, k, v)
        if self.use_op:
            from . import torch_ops

            return torch_ops.attention(sa, q, k, v, self.step, layer)
        return sa(q, k, v, self.step, layer)

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None,
                 rotary_emb=None, **kwargs):
        self.calls += 1
        torch = _torch()
        encoder_hidden_states_img = None
        if getattr(attn, "add_k_proj", None) is not None and encoder_hidden_states is not None:
            # I2V: 512 text tokens at the end, image context before (as diffusers)
            image_context_length = encoder_hidden_states.shape[1] - 512
            encoder_hidden_states_img = encoder_hidden_states[:, :image_context_length]
            encoder_hidden_states = encoder_hidden_states[:, image_context_length:]
        is_self = encoder_hidden_states is None
        context = hidden_states if is_self else encoder_hidden_states

        if getattr(attn, "fused_projections", False) and hasattr(attn, "to_qkv") and is_self:
            query, key, value = attn.to_qkv(hidden_states).chunk(3, dim=-1)
        elif getattr(attn, "fused_projections", False) and hasattr(attn, "to_kv") and not is_self:
            query = attn.to_q(hidden_states)
            key, value = attn.to_kv(context).chunk(2, dim=-1)
        else:
            query = attn.to_q(hidden_states)
            key = attn.to_k(context)
            value = attn.to_v(context)
        if getattr(attn, "norm_q", None) is not None:
            query = attn.norm_q(query)
        if getattr(attn, "norm_k", None) is not None:
            key = attn.norm_k(key)

        heads = attn.heads
        # [B, N, H, D]: svoo reads the transposed [B, H, N, D] view in place
        query = query.unflatten(2, (heads, -1))
        key = key.unflatten(2, (heads, -1))
        value = value.unflatten(2, (heads, -1))

        if rotary_emb is not None:
            if isinstance(rotary_emb, (tuple, list)):
                query = _rope_cos_sin_bnhd(query, *rotary_emb)
                key = _rope_cos_sin_bnhd(key, *rotary_emb)
            else:
                query = _rope_complex_bnhd(query, rotary_emb)
                key = _rope_complex_bnhd(key, rotary_emb)

        q, k, v = query.transpose(1, 2), key.transpose(1, 2), value.transpose(1, 2)

        hidden_states_img = None
        if encoder_hidden_states_img is not None:
            key_img = attn.add_k_proj(encoder_hidden_states_img)
            key_img = attn.norm_added_k(key_img)
            value_img = attn.add_v_proj(encoder_hidden_states_img)
            key_img = key_img.unflatten(2, (heads, -1)).transpose(1, 2)
            value_img = value_img.unflatten(2, (heads, -1)).transpose(1, 2)
            hidden_states_img = _sdpa(q, key_img, value_img)
            hidden_states_img = hidden_states_img.transpose(1, 2).flatten(2, 3).type_as(query)

        if is_self and attention_mask is None:
            out = self._self_attention(q, k, v)
        else:
            out = _sdpa(q, k, v, attn_mask=attention_mask)
        hidden_states = out.transpose(1, 2).flatten(2, 3).type_as(query)
        if hidden_states_img is not None:
            hidden_states = hidden_states + hidden_states_img
        hidden_states = attn.to_out[0](hidden_states)
        if len(attn.to_out) > 1:
            hidden_states = attn.to_out[1](hidden_states)
        return hidden_states


# --------------------------------------------------------------------------
# Installing into a transformer
# --------------------------------------------------------------------------
def _is_attention(m):
    return all(hasattr(m, a) for a in ("to_q", "to_out", "heads")) and (
        hasattr(m, "processor") or hasattr(m, "set_processor")
    )


def self_attention_modules(transformer, select=None):
    """[(name, module)] of the self-attention modules, in layer order.
    Default: modules named `attn1` (Wan, CogVideoX, HunyuanVideo blocks),
    else attention modules whose is_cross_attention is False."""
    cands = [(n, m) for n, m in transformer.named_modules() if _is_attention(m)]
    if select is not None:
        return [(n, m) for n, m in cands if select(n, m)]
    named = [(n, m) for n, m in cands if n.split(".")[-1] == "attn1"]
    if named:
        return named
    return [(n, m) for n, m in cands if getattr(m, "is_cross_attention", None) is False]


def _set_processor(m, p):
    if hasattr(m, "set_processor"):
        m.set_processor(p)
    else:
        m.processor = p


class Installation:
    """What svoo.install did, undone by remove() (also a context manager)."""

    def __init__(self, transformer, tracker, processors, originals, handle):
        self.transformer = transformer
        self.tracker = tracker
        self.processors = processors
        self._originals = originals
        self._handle = handle

    @property
    def num_layers(self):
        return len(self.processors)

    def remove(self):
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
        for m, p in self._originals:
            _set_processor(m, p)
        self._originals = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()


def install(transformer, sparse_attention=None, num_steps=None, tracker=None, profiler=None,
            select=None, use_op=True, auto_geometry=True):
    """Replace the self-attention processors of `transformer` by
    WanAttnProcessor(sparse_attention) with their layer index, and advance
    the step on each transformer forward. Returns an Installation (remove()
    restores the original processors). Fills sparse_attention.num_layers if
    unset, and its geometry from the latent shape on each forward if unset
    (auto_geometry)."""
    mods = self_attention_modules(transformer, select)
    if not mods:
        raise ValueError(
            "svoo.install: no self-attention module found in %s (expected attention modules "
            "named 'attn1' with to_q/to_k/to_v/to_out/heads; pass select=)" % type(transformer).__name__
        )
    sa = sparse_attention
    if num_steps is None and sa is not None:
        num_steps = sa.num_steps
    if tracker is None:
        tracker = StepTracker(num_steps)
    if sa is not None:
        if sa.num_layers is None:
            sa.num_layers = len(mods)
        tracker.targets.append(sa)
        tracker.on_new_generation.append(lambda tr: sa.reset())
        if auto_geometry and sa.geometry is None:

            def geo(tr, module, hs, sa=sa):
                g = latent_geometry(module, hs)
                if g is not None and g != tuple(
                    (sa.geometry or {}).get(k) for k in ("frames", "height", "width")
                ):
                    sa.geometry = g

            tracker.on_step.append(geo)
    procs, originals = [], []
    for i, (name, m) in enumerate(mods):
        originals.append((m, getattr(m, "processor", None)))
        p = WanAttnProcessor(sa, layer=i, tracker=tracker, profiler=profiler, use_op=use_op)
        p.name = name
        _set_processor(m, p)
        procs.append(p)
    try:
        handle = transformer.register_forward_pre_hook(tracker.pre_forward_hook, with_kwargs=True)
    except TypeError:  # torch < 2.0: no kwargs in hooks
        handle = transformer.register_forward_pre_hook(lambda mod, args: tracker.pre_forward_hook(mod, args))
    return Installation(transformer, tracker, procs, originals, handle)
