"""The CUDA paths, on a GPU (marked `gpu`, skipped without CUDA; `benchmarks/gpu_check.py` runs them).

Training: every objective takes optimizer steps under bf16 autocast with fused AdamW, and the first
step's loss is the CPU fp32 run's up to bf16 rounding (same weights, batch and noise) or, for NCE,
exactly 2 ln 2 (zero energy head); a one-process `torchrun` job runs the multi-process code path (DDP,
collectives) over an NCCL group and matches the plain run; a resumed run restores the exact state.
Sampling: with explicit CUDA generators, MDLM, EDLM and AR samples of a toy world follow its exact law
within the sampling-noise floor. Kernels: SDPA runs the flash kernel (bf16) and the memory-efficient
one (fp32) for every attention call of the models. Synchronisation: model forwards never make the
host wait for the GPU; the sampler does a bounded number of times per step (docs/gpu.md lists why).

Each test is small (tiny models, a few steps), because these run in minutes of rented GPU time.
"""

from __future__ import annotations

import json
import math
import re
import subprocess

import pytest
import torch
from test_train_support import PYTHON, subprocess_env, text8_dir, tiny_overrides  # noqa: F401
from torch import nn

import edlm
from edlm.config import load_config
from edlm.energy import AREnergy
from edlm.metrics.latency import count_host_syncs
from edlm.models import CausalLM, MaskedDiffusionLM, ModelConfig
from edlm.sampling import ar_sample
from edlm.toy import ExactCausalLM, ExactDenoiser, FactorisedDenoiser, ToyDistribution
from edlm.train import train
from edlm.train.loop import Trainer
from edlm.train.metrics import read_metrics
from edlm.train.runtime import runtime

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

CUDA = torch.device("cuda", 0)
N = 4000  # samples per law check; at the noise floor means TV <= FLOOR * E[TV] (as tests/test_sampling_mdlm.py)
FLOOR = 1.75
SYNCS_PER_STEP = 16  # docs/gpu.md: about 6 per MDLM step and 11 per importance-sampled step at these sizes


def gpu_overrides(text8_dir, out, **train) -> list[str]:  # noqa: F811
    """tiny_overrides on CUDA: 3 steps, a checkpoint and a validation at the last one."""
    return tiny_overrides(text8_dir, out, **{"steps": 3, "eval_every": 3, "save_every": 3, "device": "cuda", **train})


def losses(run) -> list[float]:
    return [row["loss"] for row in read_metrics(run) if "loss" in row]


# --------------------------------------------------------------------------------------------------
# training


AR_MODEL = ["model.causal=true", "model.adaln=false", "train.objective=ar"]


@pytest.mark.parametrize("extra", [[], AR_MODEL], ids=["mdlm", "ar"])
def test_bf16_fused_adamw_steps_match_cpu_fp32(extra, text8_dir, tmp_path):  # noqa: F811
    train(load_config("text8-tiny", gpu_overrides(text8_dir, tmp_path / "cpu", device="cpu", precision="fp32") + extra),
          progress=False)
    cfg = load_config("text8-tiny", gpu_overrides(text8_dir, tmp_path / "gpu", precision="bf16") + extra)
    with runtime(cfg.train.device) as rt:
        trainer = Trainer(cfg, rt, progress=False)
        assert trainer.amp_dtype is torch.bfloat16
        assert all(group["fused"] for group in trainer.optimizer.param_groups)
        assert trainer.run().step == 3
    gpu, cpu = losses(tmp_path / "gpu"), losses(tmp_path / "cpu")
    assert len(gpu) == 3 and all(math.isfinite(v) for v in gpu), gpu
    # Step 1: the same initial weights, batch and noise on both devices; only bf16 rounding differs.
    assert gpu[0] == pytest.approx(cpu[0], rel=2e-2), (gpu, cpu)


def test_nce_steps_under_bf16_start_at_two_log_two(text8_dir, tmp_path):  # noqa: F811
    mdlm = tmp_path / "mdlm"
    train(load_config("text8-tiny", gpu_overrides(text8_dir, mdlm, steps=2, eval_every=0)), progress=False)
    cfg = load_config("text8-tiny", gpu_overrides(text8_dir, tmp_path / "nce", objective="nce", init_from=str(mdlm),
                                                  nce_negatives=2, precision="bf16"))
    with runtime(cfg.train.device) as rt:
        trainer = Trainer(cfg, rt, progress=False)
        assert all(group["fused"] for group in trainer.optimizer.param_groups)
        assert trainer.run().step == 3
    nce = losses(tmp_path / "nce")
    assert len(nce) == 3 and all(math.isfinite(v) for v in nce), nce
    assert nce[0] == pytest.approx(2 * math.log(2), abs=1e-6)  # zero head: E = 0 for positives and negatives


# One process under torchrun, but on the multi-process code path: DDP around the loss module, the
# loss and validation sums all-reduced over an NCCL group, the stop-signal vote over its gloo twin.
# (With WORLD_SIZE=1 `edlm train` needs no process group; one GPU cannot hold two NCCL ranks.)
ONE_RANK_DDP = """
import json, sys
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from edlm.config import load_config
from edlm.train.loop import Trainer
from edlm.train.runtime import Runtime, runtime


class OneRankGroup(Runtime):
    @property
    def distributed(self):
        return True


with runtime("auto") as rt:
    assert rt.world_size == 1 and rt.device == torch.device("cuda", 0), rt
    torch.cuda.set_device(rt.device)
    dist.init_process_group(backend="nccl")
    try:
        trainer = Trainer(load_config("text8-tiny", json.loads(sys.argv[1])), OneRankGroup(0, 1, rt.device),
                          progress=False)
        assert isinstance(trainer.forward, DistributedDataParallel)
        step = trainer.run().step
        backend = dist.get_backend()
    finally:
        dist.destroy_process_group()
print(json.dumps({"backend": backend, "step": step}))
"""


def test_torchrun_nccl_process_group_matches_plain_run(text8_dir, tmp_path):  # noqa: F811
    settings = {"steps": 4, "eval_every": 2, "save_every": 0}
    script = tmp_path / "one_rank_ddp.py"
    script.write_text(ONE_RANK_DDP)
    command = [PYTHON, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1", str(script),
               json.dumps(gpu_overrides(text8_dir, tmp_path / "ddp", **settings))]
    # One node: gloo and NCCL talk over the loopback interface (sandboxed machines may have no other).
    env = {"GLOO_SOCKET_IFNAME": "lo", "NCCL_SOCKET_IFNAME": "lo", "NCCL_DEBUG": "WARN", **subprocess_env()}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert json.loads(re.findall(r"\{.*\}", done.stdout)[-1]) == {"backend": "nccl", "step": 4}  # any line prefix
    train(load_config("text8-tiny", gpu_overrides(text8_dir, tmp_path / "plain", **settings)), progress=False)
    ddp, plain = read_metrics(tmp_path / "ddp"), read_metrics(tmp_path / "plain")
    assert [r["step"] for r in ddp] == [r["step"] for r in plain] == [1, 2, 2, 3, 4, 4]
    assert ddp[0]["loss"] == pytest.approx(plain[0]["loss"], rel=1e-6)  # step 1: same weights, same forward
    for a, b in zip(ddp, plain):  # later steps: up to the GPU's nondeterministic backward kernels
        for key in ("loss", "val_loss"):
            if key in b:
                assert a[key] == pytest.approx(b[key], rel=1e-2), (b["step"], key)


def test_resume_on_gpu_restores_the_exact_state(text8_dir, tmp_path):  # noqa: F811
    cfg = load_config("text8-tiny", gpu_overrides(text8_dir, tmp_path / "run", eval_every=0))
    with runtime(cfg.train.device) as rt:
        first = Trainer(cfg, rt, progress=False)
        first.run()  # writes the checkpoint of step 3
        resumed = Trainer(cfg, rt, progress=False)
        assert resumed.resumed is not None and resumed.step == first.step == 3
        assert resumed.position == first.position
        for a, b in ((first.model, resumed.model), (first.ema.model, resumed.ema.model)):
            sa, sb = a.state_dict(), b.state_dict()
            assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
        oa, ob = first.optimizer.state_dict()["state"], resumed.optimizer.state_dict()["state"]
        assert oa.keys() == ob.keys()
        for i in oa:
            assert oa[i].keys() == ob[i].keys()
            for key in oa[i]:  # fused AdamW keeps even `step` on the GPU
                assert oa[i][key].device == ob[i][key].device and torch.equal(oa[i][key], ob[i][key]), (i, key)
        # The next step draws the same batch and noise and computes the same loss from the same weights.
        assert torch.equal(first.train_step()[0], resumed.train_step()[0])


# --------------------------------------------------------------------------------------------------
# sampling with CUDA generators, against a toy world's exact law


class OnDevice(nn.Module):
    """A parameter-free toy model that computes on `device`: an empty parameter tells the samplers
    (`module_device`) where it runs; every other attribute is the wrapped model's."""

    def __init__(self, model, device: torch.device) -> None:
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(0, device=device), requires_grad=False)
        self.inner = model

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            if "inner" not in self.__dict__:
                raise
            return getattr(self.__dict__["inner"], name)

    def forward(self, *args):
        return self.inner(*args)


@pytest.fixture(scope="module")
def toys() -> tuple[ToyDistribution, ToyDistribution]:
    """The toy world of tests/test_sampling_mdlm.py on the CPU (to judge samples) and on the GPU (to model)."""
    cpu = ToyDistribution.random(3, 3, torch.Generator().manual_seed(0))
    gpu = ToyDistribution(3, 3, cpu.probs.to(CUDA))
    gpu.sequences = gpu.sequences.to(CUDA)
    return cpu, gpu


def cuda_generator(seed: int) -> torch.Generator:
    return torch.Generator(device=CUDA).manual_seed(seed)


def test_mdlm_samples_on_gpu_follow_the_exact_law(toys):
    cpu, gpu = toys
    denoiser = OnDevice(ExactDenoiser(gpu), CUDA)
    x = edlm.sample(denoiser, N, 3, 1024, generator=cuda_generator(1))  # 1024 steps: reveals rarely coincide
    assert x.device == CUDA
    assert cpu.tv(x) <= FLOOR * cpu.expected_tv(N), (cpu.tv(x), cpu.expected_tv(N))
    assert torch.equal(x, edlm.sample(denoiser, N, 3, 1024, generator=cuda_generator(1)))  # reproducible


def test_edlm_samples_on_gpu_follow_the_exact_law(toys):
    """A factorised proposal corrected by the exact AR energy (as tests/test_sampling_importance.py)."""
    cpu, gpu = toys
    energy = AREnergy(OnDevice(ExactCausalLM(gpu), CUDA))
    x = edlm.sample(OnDevice(FactorisedDenoiser(gpu), CUDA), N, 3, 3, energy=energy, k=64, window=1.0,
                    generator=cuda_generator(2))
    assert x.device == CUDA
    assert cpu.tv(x) <= FLOOR * cpu.expected_tv(N), (cpu.tv(x), cpu.expected_tv(N))


def test_ar_samples_from_a_cuda_generator_follow_the_exact_law(toys):
    """The model on the CPU, its random numbers drawn on the GPU (the generator's device) and moved."""
    cpu, _ = toys
    x = ar_sample(ExactCausalLM(cpu), N, 3, generator=cuda_generator(3))
    assert cpu.tv(x) <= FLOOR * cpu.expected_tv(N), (cpu.tv(x), cpu.expected_tv(N))


# --------------------------------------------------------------------------------------------------
# kernels and host-device synchronisation


def tiny_models() -> tuple[MaskedDiffusionLM, CausalLM]:
    """A random MDLM denoiser and causal LM on the GPU, eval mode: 2 layers, 2 heads of width 32, L = 64."""
    shape = dict(vocab_size=50, n_layers=2, d_model=64, n_heads=2, cond_dim=64, max_seq_len=64)
    torch.manual_seed(0)
    denoiser = MaskedDiffusionLM(ModelConfig(**shape)).to(CUDA).eval()
    lm = CausalLM(ModelConfig(**shape, causal=True, adaln=False)).to(CUDA).eval()
    return denoiser, lm


def every_attention_call(denoiser, lm, x: torch.Tensor, *, grad: bool) -> None:
    """Bidirectional (denoiser), causal (full forward) and KV-cache attention (the first position, then
    one query against the cache); forward and backward with `grad`."""
    t = torch.full((x.shape[0],), 0.5, device=x.device)
    with torch.set_grad_enabled(grad):
        out = denoiser(x, t).float().sum() + lm.token_logprobs(x).sum()
    if grad:
        out.backward()
    with torch.no_grad():
        cache = lm.new_cache(x.shape[0], x.shape[1])
        lm.next_logits(torch.full_like(x[:, :1], lm.bos_id), cache)
        lm.next_logits(x[:, :1], cache)


def test_sdpa_runs_fused_kernels():
    from torch.nn.attention import SDPBackend, sdpa_kernel

    denoiser, lm = tiny_models()
    x = torch.randint(50, (4, 64), device=CUDA)
    # Restricted to one backend, SDPA raises "No available kernel" instead of falling back to math.
    with sdpa_kernel([SDPBackend.FLASH_ATTENTION]), torch.autocast("cuda", dtype=torch.bfloat16):
        every_attention_call(denoiser, lm, x, grad=True)
    with sdpa_kernel([SDPBackend.EFFICIENT_ATTENTION]):  # fp32 has no flash kernel
        every_attention_call(denoiser, lm, x, grad=True)


def test_model_forwards_make_no_host_syncs():
    denoiser, lm = tiny_models()
    x = torch.randint(50, (4, 64), device=CUDA)

    def forwards():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            every_attention_call(denoiser, lm, x, grad=False)

    forwards()  # warm-up: lazy CUDA initialisation outside the count
    assert count_host_syncs(forwards)[1] == 0


@pytest.mark.parametrize("edlm_step", [False, True], ids=["mdlm", "edlm"])
def test_sampler_host_syncs_per_step_are_bounded(edlm_step):
    """4 steps over 64 positions reveal about 16 per step: a sync per position or per token would
    exceed the bound; the syncs docs/gpu.md lists (a few per step) stay far below it."""
    denoiser, lm = tiny_models()
    kwargs = {"energy": AREnergy(lm), "k": 2, "window": 1.0} if edlm_step else {}

    def run():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            return edlm.sample(denoiser, 2, 64, 4, generator=cuda_generator(0), **kwargs)

    run()  # warm-up
    samples, syncs = count_host_syncs(run)
    assert samples.shape == (2, 64) and int(samples.max()) < 50
    assert 0 < syncs <= SYNCS_PER_STEP * 4, syncs
