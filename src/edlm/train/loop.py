"""The training loop: `train(cfg)` trains (or resumes) the run in `cfg.train.out_dir`.

One optimizer step with global batch G, W processes and A accumulation steps:

1. the global batch `x0: Long[G, L]` is taken from the seeded data order at the current data
   position (every process reads the same G rows);
2. the objective draws all of the step's noise for the whole global batch from a CPU generator
   seeded by (train.seed, "noise", step), and the global RNG (dropout) is reseeded from
   (train.seed, "dropout", step, rank);
3. process r takes rows `shard(G, W, r)` and splits them into A equal micro-batches; each
   micro-batch loss (a mean over its rows) is scaled by 1/A and back-propagated, and DDP averages
   the gradients over the processes (synchronising only on the last micro-batch), so the update
   is the gradient of the mean loss over all G rows whatever W and A are;
4. gradient clipping, AdamW at the scheduled learning rate, EMA update.

Because the data order and all noise are functions of the seed and the step, a run resumed from a
checkpoint (which stores the weights, EMA, optimizer state, step and data position) repeats the
uninterrupted run's losses exactly, and runs with different W or A agree up to float rounding.
Only rank 0 writes checkpoints, metrics and the progress bar. SIGINT or SIGTERM stops every process
after the same step, with a checkpoint of it (`edlm.train.signals`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from edlm.config import RunConfig, check_run_config
from edlm.data import build_tokenizer, check_vocab, load_split
from edlm.diffusion.schedules import SCHEDULES
from edlm.errors import EdlmError, require
from edlm.loading.checkpoint import read_checkpoint
from edlm.loading.pretrained import build_run_model
from edlm.train.checkpointing import checkpoint_position, latest_checkpoint, restore_training_state, save_checkpoint
from edlm.train.metrics import MetricsLog
from edlm.train.objectives import objective_class
from edlm.train.optim import EMA, build_optimizer, learning_rate
from edlm.train.order import DataOrder, DataPosition, derive_seed, seeded_generator, shard
from edlm.train.runtime import Runtime, runtime
from edlm.train.signals import StopSignals, TrainingStopped
from edlm.util.device import amp_dtype, autocast
from edlm.util.outputs import check_output_path


@dataclass
class TrainResult:
    """What a call to `train` did on process `rank`. Losses are nats per token of the objective's
    metric (None if not measured in this call); `checkpoint` is the last checkpoint written (rank 0)
    or resumed from."""

    rank: int
    out_dir: Path
    step: int
    resumed_from: int
    checkpoint: Path | None
    loss: float | None
    val_loss: float | None


class LossModule(nn.Module):
    """`forward(x0, batch)` = `objective.loss(model, x0, batch)`. DDP wraps this module, so gradient
    synchronisation works whatever methods of the model the objective calls."""

    def __init__(self, model: nn.Module, objective) -> None:
        super().__init__()
        self.model = model
        self.objective = objective

    def forward(self, x0: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.objective.loss(self.model, x0, batch)


def check_train_config(cfg: RunConfig, world_size: int) -> None:
    """Raise EdlmError for a config that cannot train: the RunConfig's range checks again (a config
    may have been changed since it was built), then what they cannot see: the batch split over
    `world_size` processes, the diffusion schedule's name, a writable `train.out_dir` and the
    tokenizer's vocabulary. Runs before anything is loaded or written."""
    check_run_config(cfg)
    tc = cfg.train
    require(tc.batch_size % (world_size * tc.grad_accum) == 0,
            f"train.batch_size={tc.batch_size} must be divisible by processes ({world_size}) x train.grad_accum "
            f"({tc.grad_accum}); change one of them.")
    require(tc.schedule in SCHEDULES, f"train.schedule={tc.schedule!r} must be one of {', '.join(sorted(SCHEDULES))}.")
    check_output_path(tc.out_dir, option="train.out_dir", kind="workdir")
    check_vocab(build_tokenizer(cfg.data), cfg.model.vocab_size)
    if tc.compile:
        import torch._dynamo

        require(torch._dynamo.is_dynamo_supported(), f"train.compile=true needs torch.compile, which torch "
                f"{torch.__version__} does not support on this Python; set train.compile=false.")


def check_same_run(saved: RunConfig, cfg: RunConfig, out_dir: Path) -> None:
    """A run resumes only with the model, data (wherever it now lies), objective, seed, score-entropy
    graph and noise, and Glauber rounds (the time scale of a Glauber model) it started with."""
    keys = ([("model", f.name) for f in dataclasses.fields(cfg.model)]
            + [("data", f.name) for f in dataclasses.fields(cfg.data) if f.name != "path"]
            + [("train", key) for key in ("objective", "seed", "graph", "noise", "glauber_rounds")])  # a sedd model records graph, noise
    diffs = [f"{section}.{key}={getattr(getattr(saved, section), key)!r} there, {getattr(getattr(cfg, section), key)!r} now"
             for section, key in keys if getattr(getattr(saved, section), key) != getattr(getattr(cfg, section), key)]
    require(not diffs, f"{out_dir} holds a run with other settings ({'; '.join(diffs)}); "
            "use a new train.out_dir or the run's own settings.")


class Trainer:
    """The state of one training run on one process; `run()` trains to `cfg.train.steps`."""

    def __init__(self, cfg: RunConfig, rt: Runtime, progress: bool = True) -> None:
        check_train_config(cfg, rt.world_size)
        tc = cfg.train
        self.cfg, self.rt, self.progress = cfg, rt, progress
        self.out_dir = Path(tc.out_dir)
        self.amp_dtype = amp_dtype(tc.precision, rt.device)
        latest = latest_checkpoint(self.out_dir)
        self.resumed = read_checkpoint(latest) if latest is not None else None
        if self.resumed is not None:
            check_same_run(self.resumed.config, cfg, self.out_dir)

        objective_cls = objective_class(tc.objective)
        torch.manual_seed(derive_seed(tc.seed, "init"))
        self.model = build_run_model(cfg).to(rt.device)
        self.objective = objective_cls(cfg, self.model, rt.device)
        self.ema = EMA(self.model, tc.ema)
        if hasattr(self.objective, "use_ema"):  # an objective whose noise comes from the EMA model (glauber)
            self.objective.use_ema(self.ema.model)
        self.optimizer = build_optimizer(self.model, tc, rt.device)
        self.step, self.position = 0, DataPosition()
        if self.resumed is not None:
            restore_training_state(self.resumed, self.model, self.ema.model, self.optimizer)
            self.step, self.position = self.resumed.step, checkpoint_position(self.resumed)
        if tc.compile:  # in place: parameter and state-dict names stay those of the plain model
            self.model.compile()

        self.train_data = load_split(cfg.data, "train")
        self.order = DataOrder(len(self.train_data), tc.batch_size, tc.seed)
        self.valid_batches = self.validation_batches() if tc.eval_every and tc.eval_batches else []
        module = LossModule(self.model, self.objective)
        if rt.distributed:
            from torch.nn.parallel import DistributedDataParallel

            module = DistributedDataParallel(module, device_ids=[rt.device] if rt.device.type == "cuda" else None)
        self.forward = module

    def validation_batches(self) -> list[torch.Tensor]:
        """`eval_batches` global batches of validation rows, a fixed seeded subset: list of Long[<=G, L]."""
        tc = self.cfg.train
        valid = load_split(self.cfg.data, "valid")
        rows = torch.randperm(len(valid), generator=seeded_generator(tc.seed, "valid-rows"))
        return list(valid[rows[: tc.eval_batches * tc.batch_size]].split(tc.batch_size))

    def micro_batches(self, n: int, size: int) -> list[slice]:
        """This process's rows of an n-row global batch, in micro-batches of at most `size` rows."""
        mine = shard(n, self.rt.world_size, self.rt.rank)
        return [slice(s, min(s + size, mine.stop)) for s in range(mine.start, mine.stop, size)]

    def train_step(self) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimizer step. Returns (mean loss over this process's rows, gradient norm), on device."""
        tc, rt = self.cfg.train, self.rt
        rows, next_position = self.order.batch(self.position)
        x0 = self.train_data[rows].to(rt.device)
        torch.manual_seed(derive_seed(tc.seed, "dropout", self.step, rt.rank))
        with torch.no_grad(), autocast(self.amp_dtype, rt.device):
            batch = self.objective.prepare(x0, seeded_generator(tc.seed, "noise", self.step))
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(self.step, tc)
        micro = self.micro_batches(tc.batch_size, tc.batch_size // (rt.world_size * tc.grad_accum))
        total = torch.zeros((), device=rt.device)
        for i, rows_i in enumerate(micro):
            defer_sync = rt.distributed and i < len(micro) - 1
            with self.forward.no_sync() if defer_sync else contextlib.nullcontext():
                with autocast(self.amp_dtype, rt.device):
                    loss = self.forward(x0[rows_i], {k: v[rows_i] for k, v in batch.items()})
                (loss / len(micro)).backward()
            total += loss.detach() / len(micro)
        max_norm = tc.grad_clip if tc.grad_clip > 0 else math.inf
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step, self.position = self.step + 1, next_position
        self.ema.update(self.model, self.step)
        return total, grad_norm

    @torch.no_grad()
    def validate(self) -> float:
        """Mean loss per token (nats) of the EMA model over the fixed validation batches, with the
        same noise at every evaluation (a generator seeded from train.seed)."""
        tc, rt = self.cfg.train, self.rt
        generator = seeded_generator(tc.seed, "valid-noise")
        total = torch.zeros((), device=rt.device)
        rows = 0
        for batch_rows in self.valid_batches:
            x0 = batch_rows.to(rt.device)
            with autocast(self.amp_dtype, rt.device):
                batch = self.objective.prepare(x0, generator)
                for sl in self.micro_batches(len(x0), max(1, tc.batch_size // (rt.world_size * tc.grad_accum))):
                    loss = self.objective.loss(self.ema.model, x0[sl], {k: v[sl] for k, v in batch.items()})
                    total += loss.float() * (sl.stop - sl.start)
            rows += len(x0)
        return float(rt.all_reduce_sum(total)) / rows

    def describe(self) -> str:
        tc, rt = self.cfg.train, self.rt
        params = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        precision = ("fp32" if self.amp_dtype is None else "bf16 autocast") + (", compiled" if tc.compile else "")
        start = (f"resuming at step {self.step} from {self.resumed.path}" if self.resumed is not None
                 else "starting at step 0")
        return (f"edlm train: {tc.objective} objective, {params / 1e6:.2f}M parameters, {rt.world_size} process(es) "
                f"on {rt.device} ({precision}), global batch {tc.batch_size} x {self.cfg.data.seq_len} tokens, "
                f"{len(self.train_data)} training sequences; {start}, training to step {tc.steps} in {self.out_dir}")

    def log_training(self, window: "Window", log: MetricsLog | None) -> float:
        """Average the window's loss over processes and steps, write a metrics row, reset the window."""
        tc, rt = self.cfg.train, self.rt
        loss = float(rt.all_reduce_sum(window.loss)) / (rt.world_size * window.steps)
        if not math.isfinite(loss):
            raise EdlmError(f"training diverged: the loss is {loss} at step {self.step}; "
                            "lower train.lr or raise train.warmup_steps.")
        if log is not None:
            log.write({"step": self.step, "epoch": self.position.epoch, "loss": loss,
                       "lr": learning_rate(self.step - 1, tc), "grad_norm": float(window.grad_norm) / window.steps,
                       "tokens_per_s": tc.batch_size * self.cfg.data.seq_len * window.steps / window.seconds(),
                       "elapsed_s": window.since_start()})
        window.reset()
        return loss

    def log_validation(self, log: MetricsLog | None, bar) -> float:
        """Validate, write a metrics row and (with progress on) a line under the progress bar."""
        loss, metric = self.validate(), self.objective.metric
        if log is not None:
            log.write({"step": self.step, "val_loss": loss, "val_bits_per_token": loss / math.log(2),
                       "val_metric": metric})
        if self.rt.is_main and self.progress:
            bar.write(f"step {self.step}: validation {metric} {loss:.4f} nats/token ({loss / math.log(2):.4f} bits/token)")
        return loss

    def save(self) -> Path | None:
        """Write a checkpoint of the current step (rank 0 only; None elsewhere)."""
        if not self.rt.is_main:
            return None
        return save_checkpoint(self.out_dir, step=self.step, position=self.position, config=self.cfg, model=self.model,
                               ema_model=self.ema.model, optimizer=self.optimizer, keep_last=self.cfg.train.keep_last)

    def run(self) -> TrainResult:
        """Train until `train.steps`, logging, validating and checkpointing on the way.

        On SIGINT or SIGTERM the current step is finished and checkpointed, and every process raises
        `TrainingStopped` after the same step (`edlm.train.signals`)."""
        from edlm.util.progress import progress_bar

        tc, rt = self.cfg.train, self.rt
        result = TrainResult(rt.rank, self.out_dir, self.step, self.step,
                             self.resumed.path if self.resumed is not None else None, None, None)
        if rt.is_main and self.progress:
            print(self.describe(), flush=True)
        if self.step >= tc.steps:
            return result
        log = MetricsLog(self.out_dir, self.step) if rt.is_main else None
        bar = progress_bar(total=tc.steps, initial=self.step, desc="train", unit="step",
                           enabled=rt.is_main and self.progress)
        window = Window(rt.device)
        self.model.train()
        stopped = None
        try:
            with StopSignals(rt) as signals:
                while self.step < tc.steps and stopped is None:
                    window.add(*self.train_step())
                    bar.update(1)
                    last = self.step == tc.steps
                    if (tc.log_every and self.step % tc.log_every == 0) or last:
                        result.loss = self.log_training(window, log)
                        bar.set_postfix(loss=f"{result.loss:.4f}", refresh=False)
                    if self.valid_batches and (self.step % tc.eval_every == 0 or last):
                        with window.paused():
                            result.val_loss = self.log_validation(log, bar)
                    stopped = signals.agreed()
                    if (tc.save_every and self.step % tc.save_every == 0) or last or stopped is not None:
                        with window.paused():
                            result.checkpoint = self.save() or result.checkpoint
        finally:
            bar.close()
            if log is not None:
                log.close()
        rt.barrier()
        if stopped is not None and self.step < tc.steps:  # a signal during the last step changes nothing
            raise TrainingStopped(stopped, self.step, result.checkpoint, rt.rank)
        result.step = self.step
        return result


class Window:
    """Sums of the training loss and gradient norm (kept on the device, so logging is the only host
    synchronisation) and the wall time of the steps since the last metrics row."""

    def __init__(self, device: torch.device) -> None:
        self.loss = torch.zeros((), device=device)
        self.grad_norm = torch.zeros((), device=device)
        self.started = time.perf_counter()
        self.reset()

    def add(self, loss: torch.Tensor, grad_norm: torch.Tensor) -> None:
        self.loss += loss
        self.grad_norm += grad_norm
        self.steps += 1

    def reset(self) -> None:
        self.loss.zero_()
        self.grad_norm.zero_()
        self.steps = 0
        self.clock = time.perf_counter()

    @contextlib.contextmanager
    def paused(self):
        """Leave the time spent inside (validation, checkpoints) out of the throughput."""
        start = time.perf_counter()
        yield
        self.clock += time.perf_counter() - start

    def seconds(self) -> float:
        return time.perf_counter() - self.clock

    def since_start(self) -> float:
        return time.perf_counter() - self.started


def train(cfg: RunConfig, *, progress: bool = True) -> TrainResult:
    """Train the run that `cfg` describes in `cfg.train.out_dir`, resuming from its latest checkpoint.

    Works alone or under `torchrun` (one process per device; the process group is set up here).
    `progress`: print a header, the progress bar and validation lines on rank 0.
    """
    with runtime(cfg.train.device) as rt:
        return Trainer(cfg, rt, progress).run()
