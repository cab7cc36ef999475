"""The GPU check: edlm's CUDA paths proven and measured by one command, in about 8 minutes on an H200.

    PYTHONPATH=src python3 benchmarks/gpu_check.py

writes benchmarks/results/gpu_check.{json,md} with the device name, the torch and CUDA versions and the
git revision. Three parts, each in a child process with a time budget (a part that fails or runs past
its budget records its error, and what it measured until then; the next part runs regardless):

1. tests: `pytest -m gpu` over the test files that hold `gpu` tests (tests/test_gpu.py): training steps
   of every objective under bf16 autocast with fused AdamW, a one-process torchrun run over NCCL, exact
   resume, toy-world laws of GPU sampling with CUDA generators, fused SDPA kernels, host-device syncs.
2. throughput: training tokens/s of the owt-gpt2 MDLM (GPT-2 small: 12 layers x 768, L = 1024,
   V = 50257) in bf16 autocast, eager and with train.compile=true, on a synthetic corpus (random
   words, GPT-2 BPE); model FLOP/s (`flops_per_token`) as a fraction of the GPU's dense bf16 peak.
3. latency: batch size 1, random-weight models of the paper's size: AR with a KV cache, MDLM at
   T in {128, 256, 512, 1024} (no-change saving) and EDLM with the AR energy (k = 2, window 0.2) at the
   same T, median of 5 timed runs after one warm-up (`edlm.metrics.latency`); and the host-device
   syncs per sampling step (`count_host_syncs`).

    python benchmarks/gpu_check.py --device cpu --tiny --out DIR

is the dry run the test suite runs (tiny sizes, seconds; torch.compile is left out on the CPU).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if importlib.util.find_spec("edlm") is None:  # a machine without edlm installed: run the checkout's sources
    sys.path.insert(0, str(REPO / "src"))

import torch

from common import RESULTS, provenance, write_results

NAME = "gpu_check"
PARTS = ("tests", "throughput", "latency")
BUDGETS_S = {"tests": 130, "throughput": 140, "latency": 400}  # an H200 took 34, 73 and 346 s
# Dense bf16 tensor-core peaks (TFLOP/s) from the vendors' datasheets; the first name contained in the
# device name wins, so the more specific names come first.
BF16_PEAK_TFLOPS = (("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("GH200", 989.4), ("H200", 989.4), ("H100", 989.4),
                    ("A100", 312.0))


def bf16_peak_tflops(device_name: str) -> float | None:
    """The dense bf16 peak of a GPU by its name (`torch.cuda.get_device_name`), None when unknown."""
    return next((peak for name, peak in BF16_PEAK_TFLOPS if name in device_name), None)


def flops_per_token(model, seq_len: int) -> float:
    """Training FLOPs per token of the matrix products (forward + backward = 3 x forward):
    6 x the matrix parameters applied per token, n_layers (4 + 2 mlp_ratio) d^2 + d V, plus
    12 n_layers d L for attention scores and values over all L positions. model: ModelConfig."""
    d = model.d_model
    matrices = model.n_layers * (4 + 2 * model.mlp_ratio) * d * d + d * model.vocab_size
    return 6.0 * matrices + 12.0 * model.n_layers * d * seq_len


# --------------------------------------------------------------------------------------------------
# the parts (each runs in a child process: `--worker PART --result FILE`)


PAPER = dict(n_layers=12, d_model=768, n_heads=12, seq_len=1024, vocab_size=50257, train_batch=32, warmup=3,
             steps=20, latency_steps=(128, 256, 512, 1024), repeats=5)
TINY = dict(n_layers=1, d_model=32, n_heads=2, seq_len=32, vocab_size=128, train_batch=4, warmup=1, steps=2,
            latency_steps=(4, 8), repeats=2)


def write_corpus(path: Path, words: int) -> Path:
    """A text file of `words` random lowercase words (lines of 200), seeded: a stand-in for web text."""
    rng = random.Random(0)
    letters = "etaoinshrdlucmfwypvbgkjqxz"
    weights = [26 - i for i in range(26)]
    lines = [" ".join("".join(rng.choices(letters, weights, k=rng.randint(2, 9))) for _ in range(200))
             for _ in range(words // 200 + 2)]
    path.write_text("\n".join(lines) + "\n")
    return path


def train_speed(cfg, warmup: int, steps: int) -> dict:
    """Tokens/s of `steps` optimizer steps of `edlm.train`'s Trainer after `warmup` untimed ones (the
    first one compiles with train.compile=true); the device is synchronised before each clock read."""
    from edlm.metrics.latency import synchronizer
    from edlm.train.loop import Trainer
    from edlm.train.runtime import runtime

    with runtime(cfg.train.device) as rt:
        trainer = Trainer(cfg, rt, progress=False)
        sync, cuda = synchronizer(rt.device), rt.device.type == "cuda"
        if cuda:
            torch.cuda.reset_peak_memory_stats(rt.device)
        start = time.perf_counter()
        first_loss = float(trainer.train_step()[0])
        first_step_s = time.perf_counter() - start
        for _ in range(warmup - 1):
            trainer.train_step()
        sync()
        start = time.perf_counter()
        for _ in range(steps):
            loss = trainer.train_step()[0]
        sync()
        seconds = time.perf_counter() - start
        precision = "fp32" if trainer.amp_dtype is None else "bf16 autocast"
        peak_memory = torch.cuda.max_memory_allocated(rt.device) / 2**30 if cuda else None
    tokens = steps * cfg.train.batch_size * cfg.data.seq_len
    return dict(precision=precision, tokens_per_s=tokens / seconds, step_ms=1e3 * seconds / steps,
                model_tflops=flops_per_token(cfg.model, cfg.data.seq_len) * tokens / seconds / 1e12,
                first_step_s=first_step_s, first_loss=first_loss, last_loss=float(loss), peak_memory_gib=peak_memory)


def part_throughput(args, save) -> None:
    from edlm.config import load_config
    from edlm.util.device import select_device

    size = TINY if args.tiny else PAPER
    device = select_device(args.device)
    peak = bf16_peak_tflops(torch.cuda.get_device_name(device)) if device.type == "cuda" else None
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["EDLM_CACHE"] = tmp  # the synthetic corpus's tokenized splits stay in tmp
        needed = (size["warmup"] + size["steps"]) * size["train_batch"] * size["seq_len"]
        corpus = write_corpus(Path(tmp) / "words.txt", needed)  # a word is at least one BPE token
        for mode in ("eager", "compiled"):
            row = dict(mode=mode, batch=size["train_batch"], seq_len=size["seq_len"], warmup=size["warmup"],
                       steps=size["steps"])
            if mode == "compiled" and device.type != "cuda":
                rows.append(dict(row, skipped="torch.compile on the CPU takes minutes; the dry run leaves it out"))
                save(dict(recipe="owt-gpt2", corpus="random words, GPT-2 BPE", rows=rows))
                continue
            overrides = ["data.corpus=text", f"data.path={corpus}", f"train.device={device}",
                         f"train.batch_size={size['train_batch']}", "train.grad_accum=1", "train.eval_every=0",
                         "train.save_every=0", "train.log_every=0", f"train.out_dir={tmp}/run-{mode}",
                         f"train.compile={str(mode == 'compiled').lower()}"]
            if args.tiny:
                overrides += [f"model.n_layers={size['n_layers']}", f"model.d_model={size['d_model']}",
                              f"model.n_heads={size['n_heads']}", f"model.cond_dim={size['d_model']}",
                              f"model.max_seq_len={size['seq_len']}", f"data.seq_len={size['seq_len']}"]
            try:
                speed = train_speed(load_config("owt-gpt2", overrides), size["warmup"], size["steps"])
                rows.append(dict(row, **speed, bf16_peak_tflops=peak,
                                 fraction_of_peak=speed["model_tflops"] / peak if peak else None))
            except Exception as err:  # recorded; the other mode still runs
                rows.append(dict(row, error=f"{type(err).__name__}: {err}"))
            if device.type == "cuda":
                torch.cuda.empty_cache()
            save(dict(recipe="owt-gpt2", corpus="random words, GPT-2 BPE", rows=rows))


def part_latency(args, save) -> None:
    from edlm.energy import AREnergy
    from edlm.metrics.latency import LatencyResult, count_host_syncs, measure_ar, measure_diffusion, random_models
    from edlm.sampling import sample
    from edlm.util.device import amp_dtype, autocast, select_device

    size = TINY if args.tiny else PAPER
    device = select_device(args.device)
    length, steps = size["seq_len"], list(size["latency_steps"])
    denoiser, lm = random_models(vocab_size=size["vocab_size"], n_layers=size["n_layers"], d_model=size["d_model"],
                                 n_heads=size["n_heads"], max_seq_len=length, adaln=True, seed=0, device=device)
    energy = AREnergy(lm)
    dtype = amp_dtype("auto", device)
    setting = dict(num_samples=1, seq_len=length, steps=steps, k=2, window=0.2, repeats=size["repeats"], warmup=1,
                   denoiser_parameters=sum(p.numel() for p in denoiser.parameters()),
                   ar_parameters=sum(p.numel() for p in lm.parameters()),
                   note="random weights; the denoiser has adaLN (t ignored) as the owt-gpt2 recipe, the AR model "
                        "is also the EDLM energy")
    syncs, errors = [], []
    for label, kwargs in (("MDLM", {}), ("EDLM-AR", dict(energy=energy, k=2, window=0.2))):
        if device.type != "cuda":  # torch counts syncs on CUDA only
            break

        def run(kwargs=kwargs):
            with autocast(dtype, device):
                return sample(denoiser, 1, length, steps[0], generator=torch.Generator(device=device).manual_seed(0),
                              return_stats=True, **kwargs)

        try:  # first, so that a latency part cut short by its budget still reports them
            run()  # warm-up
            (_, stats), count = count_host_syncs(run)
            syncs.append(dict(method=label, steps=steps[0], syncs=count, syncs_per_step=count / steps[0],
                              denoiser_calls=stats.count("denoiser")[0], energy_calls=stats.count("energy")[0]))
        except Exception as err:  # recorded; the timings still run
            errors.append(dict(method=f"{label} syncs", error=f"{type(err).__name__}: {err}"))
        save(dict(setting, syncs=syncs, errors=errors))
    common = dict(repeats=size["repeats"], warmup=1, seed=0, amp_dtype=dtype)
    plan = [("AR (KV cache)", lambda: measure_ar(lm, 1, length, **common))]
    for t in steps:
        plan.append((f"MDLM T={t}", lambda t=t: measure_diffusion(denoiser, 1, length, t, **common)))
        plan.append((f"EDLM-AR T={t}", lambda t=t: measure_diffusion(denoiser, 1, length, t, energy=energy, k=2,
                                                                      window=0.2, **common)))
    found = []
    precision = "fp32" if dtype is None else "bf16 autocast"
    for label, measure in plan:
        try:
            found.append(measure())
        except Exception as err:  # recorded; the next configuration still runs
            errors.append(dict(method=label, error=f"{type(err).__name__}: {err}"))
        result = LatencyResult(found, str(device), precision, seed=0)
        save(dict(setting, precision=precision, rows=result.rows(), ratios=latency_ratios(result),
                  measurements=[m.to_dict() for m in found], syncs=syncs, errors=errors))


def latency_ratios(result) -> list[dict]:
    """Per T with both rows: EDLM / MDLM and MDLM / AR median wall times."""
    medians = {(m.method, m.steps): m.median_s for m in result.measurements}
    ar = result.ar_median()
    return [dict(steps=t, edlm_over_mdlm=medians[("edlm", t)] / medians[("mdlm", t)],
                 mdlm_over_ar=medians[("mdlm", t)] / ar if ar else None,
                 edlm_over_ar=medians[("edlm", t)] / ar if ar else None)
            for (method, t) in medians if method == "mdlm" and ("edlm", t) in medians]


WORKERS = {"throughput": part_throughput, "latency": part_latency}


def worker(args) -> None:
    """Run one part in this process, rewriting args.result (atomically) after every measurement."""
    result = Path(args.result)

    def save(payload: dict) -> None:
        tmp = result.with_suffix(".tmp")
        tmp.write_text(json.dumps(payload, indent=1))
        tmp.replace(result)

    WORKERS[args.worker](args, save)


# --------------------------------------------------------------------------------------------------
# the parent: children with budgets, then the report


def child_env(device: str) -> dict[str, str]:
    """This checkout's sources first on PYTHONPATH (for the children and their torchrun children); with
    the CPU as the device, no GPU visible (a dry run on a GPU machine skips the gpu tests too)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")])))
    return dict(env, CUDA_VISIBLE_DEVICES="") if device == "cpu" else env


def run_child(command: list[str], budget: float, device: str) -> tuple[int | None, str, float]:
    """(exit status or None when the budget ran out, stdout + stderr, seconds). A child past its budget
    is killed with its whole process group (pytest's torchrun grandchildren too)."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, cwd=REPO, env=child_env(device), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=budget)
        code = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        code = None
    return code, out, time.perf_counter() - start


def gpu_test_files() -> list[str]:
    """The test files that mark tests `gpu`."""
    return sorted(str(p.relative_to(REPO)) for p in (REPO / "tests").glob("test_*.py")
                  if "pytest.mark.gpu" in p.read_text())


def run_tests(budget: float, device: str) -> dict:
    """`pytest -m gpu` on the gpu test files: status, counts, each test's outcome (from the verbose
    lines, so a run cut short by its budget still reports the tests it finished), the output's tail."""
    files = gpu_test_files()
    code, out, seconds = run_child([sys.executable, "-m", "pytest", "-m", "gpu", "-p", "no:cacheprovider",
                                    "-o", "addopts=", "-v", "--tb=short", "-rfEs", *files], budget, device)
    counts = {word: int(n) for n, word in re.findall(r"(\d+) (passed|failed|skipped|errors?|xfailed|xpassed)", out)}
    outcomes = [dict(test=t, outcome=o) for t, o in
                re.findall(r"^(\S+::\S+) (PASSED|FAILED|SKIPPED|ERROR|XFAIL|XPASS)\b", out, flags=re.M)]
    status = {None: "timeout", 0: "ok", 1: "failed", 5: "no tests collected"}.get(code, "error")
    return dict(status=status, returncode=code, seconds=round(seconds, 1), files=files, counts=counts,
                outcomes=outcomes, output_tail=out[-10000:])


def run_worker(part: str, args, budget: float, scratch: Path) -> dict:
    """Run a measuring part in a child; its last saved payload, with status, seconds and any error."""
    result = scratch / f"{part}.json"
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", part, "--result", str(result),
               "--device", args.device] + (["--tiny"] if args.tiny else [])
    code, out, seconds = run_child(command, budget, args.device)
    payload = json.loads(result.read_text()) if result.exists() else {}
    failed = [r for r in payload.get("rows", []) if "error" in r] + payload.get("errors", [])
    status = "timeout" if code is None else "error" if code != 0 else "partial" if failed else "ok"
    record = dict(status=status, returncode=code, seconds=round(seconds, 1), **payload)
    if status in ("timeout", "error"):
        record["error"] = (f"ran past its budget of {budget:.0f} s; what it measured before is kept"
                           if code is None else "the child process failed") + "\n" + out[-4000:]
    return record


def device_info(name: str) -> dict:
    """Which device the check ran on: name, memory, multiprocessors, bf16 peak; torch, CUDA and driver versions."""
    info = dict(device=name, torch=torch.__version__, cuda=torch.version.cuda, cudnn=None, driver=None,
                name=None, capability=None, memory_gib=None, multiprocessors=None, bf16_peak_tflops=None)
    if name.startswith("cuda") and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(torch.device(name))
        info.update(name=props.name, capability=f"{props.major}.{props.minor}",
                    memory_gib=round(props.total_memory / 2**30, 1), multiprocessors=props.multi_processor_count,
                    bf16_peak_tflops=bf16_peak_tflops(props.name), cudnn=torch.backends.cudnn.version())
        if shutil.which("nvidia-smi"):
            smi = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=60)
            info["driver"] = smi.stdout.strip().splitlines()[0] if smi.returncode == 0 and smi.stdout.strip() else None
    else:
        from edlm.reports.provenance import machine

        info["name"] = machine()["cpu"] or "CPU"
    return info


def fmt(value, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}g}" if abs(value) < 1e4 else f"{value:,.0f}"
    return str(value)


def tests_markdown(t: dict) -> list[str]:
    counts = ", ".join(f"{n} {w}" for w, n in t["counts"].items()) or "no summary"
    return (["## pytest -m gpu", "", f"**{t['status']}** ({counts}; {t['seconds']} s; {', '.join(t['files'])}).", ""]
            + [f"- {o['outcome']} `{o['test']}`" for o in t["outcomes"]] + [""])


def throughput_markdown(t: dict, size: str) -> list[str]:
    lines = [f"## Training throughput: owt-gpt2 MDLM ({size})", "",
             f"Status **{t['status']}** ({t['seconds']} s). Synthetic corpus (random words, GPT-2 BPE); model "
             "FLOP/s counts the matrix products (6 x matrix parameters per token + attention), not recomputation.",
             "", "| mode | batch x L | precision | tokens/s | ms/step | model TFLOP/s | of bf16 peak | first step s "
                 "| peak GiB | first loss |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in t.get("rows", []):
        shape = f"| {r['mode']} | {r['batch']} x {r['seq_len']} |"
        if "tokens_per_s" not in r:
            lines.append(f"{shape} {r.get('skipped') or r.get('error')} |" + " |" * 7)
            continue
        lines.append(f"{shape} {r['precision']} | {fmt(r['tokens_per_s'])} | {fmt(r['step_ms'])} "
                     f"| {fmt(r['model_tflops'])} | {fmt(r['fraction_of_peak'])} | {fmt(r['first_step_s'])} "
                     f"| {fmt(r['peak_memory_gib'])} | {fmt(r['first_loss'], 5)} |")
    return lines + [""]


def latency_markdown(t: dict, size: str) -> list[str]:
    lines = [f"## Latency at batch size 1 (random weights, {size})", "",
             f"Status **{t['status']}** ({t['seconds']} s). {t.get('num_samples', 1)} sequence of "
             f"{t.get('seq_len', '-')} tokens per run, {t.get('precision', '-')}; median of {t.get('repeats', '-')} "
             f"timed runs after {t.get('warmup', '-')} warm-up. EDLM: AR energy, k = {t.get('k', '-')}, window "
             f"{t.get('window', '-')}. Passes per sample: full-length denoiser / energy evaluations.", "",
             "| method | median s | IQR s | denoiser passes | energy passes | vs AR |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['method']} | {fmt(r['median_s'])} | {fmt(r['iqr_s'])} | {fmt(r['denoiser_passes'])} "
              f"| {fmt(r['energy_passes'])} | {fmt(r['vs_ar'])} |" for r in t.get("rows", [])]
    lines += ["", "| T | EDLM / MDLM | MDLM / AR | EDLM / AR |", "|---|---|---|---|"]
    lines += [f"| {r['steps']} | {fmt(r['edlm_over_mdlm'])} | {fmt(r['mdlm_over_ar'])} | {fmt(r['edlm_over_ar'])} |"
              for r in t.get("ratios", [])]
    if t.get("syncs"):
        lines += ["", "Host-device syncs of one sampling call (docs/gpu.md says which):", "",
                  "| method | T | syncs | per step | denoiser calls | energy calls |", "|---|---|---|---|---|---|"]
        lines += [f"| {s['method']} | {s['steps']} | {s['syncs']} | {fmt(s['syncs_per_step'])} "
                  f"| {s['denoiser_calls']} | {s['energy_calls']} |" for s in t["syncs"]]
    return lines + [f"- error in {e['method']}: {e['error']}" for e in t.get("errors", [])] + [""]


def markdown(payload: dict) -> str:
    dev, parts = payload["device"], payload["parts"]
    size = "tiny sizes of the dry run" if payload["tiny"] else "GPT-2 small: 12 layers x 768, V = 50257, L = 1024"
    lines = ["# GPU check", "",
             f"{dev['name']} ({dev['device']}; compute capability {fmt(dev['capability'])}, "
             f"{fmt(dev['memory_gib'])} GiB, dense bf16 peak {fmt(dev['bf16_peak_tflops'])} TFLOP/s), torch "
             f"{dev['torch']}, CUDA {fmt(dev['cuda'])}, driver {fmt(dev['driver'])}; revision "
             f"{payload['git_revision']}, {payload['date']}, wall time {payload['wall_time_s']} s. "
             f"Command: `{payload['command']}`.", ""]
    if "tests" in parts:
        lines += tests_markdown(parts["tests"])
    if "throughput" in parts:
        lines += throughput_markdown(parts["throughput"], size)
    if "latency" in parts:
        lines += latency_markdown(parts["latency"], size)
    for name, part in parts.items():
        if part.get("error"):
            lines += [f"## {name}: {part['status']}", "", "```", part["error"].strip(), "```", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu (default cuda)")
    parser.add_argument("--tiny", action="store_true", help="tiny models and few steps: the seconds-long dry run")
    parser.add_argument("--out", default=str(RESULTS), help="directory for gpu_check.json and .md (default "
                                                            "benchmarks/results)")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma list of {', '.join(PARTS)} (default all)")
    for part, seconds in BUDGETS_S.items():
        parser.add_argument(f"--budget-{part}", type=float, default=seconds,
                            help=f"seconds the {part} part may run (default {seconds})")
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    if not parts or not set(parts) <= set(PARTS):
        parser.error(f"--parts {args.parts!r} must be a comma list of {', '.join(PARTS)}.")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error(f"--device {args.device} needs CUDA, which this machine lacks; use --device cpu --tiny for the "
                     "dry run.")
    started = time.perf_counter()
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        for part in parts:
            budget = getattr(args, f"budget_{part}")
            print(f"gpu_check: {part} (budget {budget:.0f} s) ...", flush=True)
            results[part] = (run_tests(budget, args.device) if part == "tests"
                             else run_worker(part, args, budget, Path(scratch)))
            print(f"gpu_check: {part}: {results[part]['status']} in {results[part]['seconds']} s", flush=True)
    payload = dict(device=device_info(args.device), tiny=args.tiny,
                   budgets_s={p: getattr(args, f"budget_{p}") for p in parts}, parts=results, **provenance(started))
    write_results(NAME, payload, markdown(payload), Path(args.out))
    print(f"wrote {Path(args.out) / (NAME + '.json')} and {Path(args.out) / (NAME + '.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
