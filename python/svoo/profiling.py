"""svoo.profiling: build a sparsity profile from a few dense generations.

    with svoo.profiling("my_profile.csv", num_steps=50, module=pipe.transformer) as prof:
        for prompt in prompts:
            prof.new_run()
            pipe(prompt, num_inference_steps=50)
    # my_profile.csv is written here (max over prompts)

During the block every self-attention call runs dense (SDPA) and its q/k go
to the C profiler (svoo_profiler_observe; CUDA tensors are copied to the host).
"""
from . import _lib as L
from .attention import Profiler, _merge_code


class profiling:
    """Context manager around dense runs that writes the profile CSV at exit.

    path: where the CSV goes (atomically). num_steps: the denoising steps.
    num_layers / heads: taken from the installed module / the first call when
    None. tau, row_step: the density threshold and the query rows sampled.
    merge: 'max' (as the reference) or 'mean' over runs. module: a
    transformer to install the profiling processor into (processors restored
    at exit); without one, call observe(step, layer, q, k) yourself.
    """

    def __init__(self, path, num_steps, num_layers=None, heads=None, tau=0.95, row_step=16,
                 merge="max", module=None, select=None):
        self.path = path
        self.num_steps = int(num_steps)
        self.num_layers = num_layers
        self.heads = heads
        self.tau = float(tau)
        self.row_step = int(row_step)
        self.merge = _merge_code(merge)
        self.module = module
        self.select = select
        self.profiler = None
        self.installation = None
        self.profile = None  # the merged svoo.Profile after exit
        self._run_pending = True
        self.observed = 0

    # ---- installing into a pipeline ---------------------------------------
    def install(self, module, select=None):
        from .processors import install

        self.installation = install(module, None, num_steps=self.num_steps, profiler=self,
                                    select=select or self.select)
        if self.num_layers is None:
            self.num_layers = self.installation.num_layers
        tr = self.installation.tracker
        # a new generation detected by the tracker starts a new run too
        tr.on_new_generation.append(lambda t: self._mark_new_run())
        return self.installation

    @property
    def tracker(self):
        return self.installation.tracker if self.installation else None

    def _mark_new_run(self):
        self._run_pending = True

    def new_run(self):
        """The next observations belong to a new prompt's run."""
        self._run_pending = True
        if self.installation is not None:
            self.installation.tracker.new_generation()

    # ---- observations -----------------------------------------------------
    def observe(self, step, layer, q, k, dtype=None):
        """Density of every head of q, k ([B, H, N, D]) at (step, layer)."""
        if self.profiler is None:
            heads = self.heads if self.heads is not None else q.shape[1]
            if self.num_layers is None:
                raise ValueError("svoo.profiling: num_layers is required without module=")
            self.profiler = Profiler(self.num_steps, int(self.num_layers), int(heads),
                                     self.tau, self.row_step)
            self.heads = heads
        if self._run_pending:
            self.profiler.new_run()
            self._run_pending = False
        self.profiler.observe(step, layer, q, k, dtype=dtype)
        self.observed += 1

    @property
    def runs(self):
        return self.profiler.runs if self.profiler is not None else 0

    def result(self):
        if self.profiler is None:
            raise RuntimeError("svoo.profiling: nothing was observed")
        return self.profiler.result(self.merge)

    def stability(self, layer=-1):
        if self.profiler is None:
            raise RuntimeError("svoo.profiling: nothing was observed")
        return self.profiler.stability(layer)

    # ---- context manager ---------------------------------------------------
    def __enter__(self):
        if self.module is not None:
            self.install(self.module)
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            if self.installation is not None:
                self.installation.remove()
            if exc_type is None:
                if self.profiler is None:
                    raise RuntimeError(
                        "svoo.profiling(%r): no self-attention call was observed; nothing written"
                        % (self.path,)
                    )
                self.profile = self.result()
                self.profile.save(self.path)
        finally:
            if self.profiler is not None:
                self.profiler.close()
        return False
