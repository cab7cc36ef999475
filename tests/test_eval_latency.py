"""Latency measurement on tiny random models: warm-up runs excluded (fake clock), counts of runs and
forward passes, structure of the result, and `edlm eval latency` end to end. No test asserts on a
real timing."""

from __future__ import annotations

import json
import math

import pytest
import torch

import edlm
from edlm.cli import main
from edlm.energy import AREnergy
from edlm.errors import EdlmError
from edlm.metrics.latency import (COLUMNS, LatencyResult, Spread, count_parameters, latency_benchmark, measure_ar,
                               measure_diffusion, random_models, synchronizer, time_runs)
from edlm.util.device import cpu_threads

L = 8


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models run ~40x faster on one thread than on two busy shared cores."""
    with cpu_threads(1):
        yield


@pytest.fixture(scope="module")
def models():
    return random_models(vocab_size=11, n_layers=1, d_model=16, n_heads=2, max_seq_len=L, seed=0)


class FakeClock:
    """A clock that only moves when `advance` is called."""

    def __init__(self) -> None:
        self.now = 0.0
        self.reads = 0

    def __call__(self) -> float:
        self.reads += 1
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_time_runs_excludes_warmup_and_syncs_around_the_clock():
    clock, events = FakeClock(), []

    def run(i):
        events.append(("run", i))
        clock.advance(1000.0 if i < 2 else i)  # warm-up runs are slow: they must not show up
        return f"out{i}"

    def sync():
        events.append(("sync",))

    def read():
        events.append(("clock",))
        return clock()

    seconds, outputs = time_runs(run, repeats=3, warmup=2, sync=sync, clock=read)
    assert seconds == [2.0, 3.0, 4.0]
    assert outputs == ["out2", "out3", "out4"]
    assert [e for e in events if e[0] == "run"] == [("run", i) for i in range(5)]
    timed = events[events.index(("run", 1)) + 2:]  # after the last warm-up run and its sync
    assert timed[:5] == [("sync",), ("clock",), ("run", 2), ("sync",), ("clock",)]
    assert clock.reads == 6  # two reads per timed run, none for warm-ups


def test_time_runs_rejects_bad_counts():
    with pytest.raises(EdlmError, match="repeats=0"):
        time_runs(lambda i: None, repeats=0, warmup=1)
    with pytest.raises(EdlmError, match="warmup=-1"):
        time_runs(lambda i: None, repeats=1, warmup=-1)


def test_synchronizer_uses_the_device(monkeypatch):
    seen = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: seen.append(device))
    synchronizer(torch.device("cuda", 1))()
    assert seen == [torch.device("cuda", 1)]
    synchronizer(torch.device("cpu"))()
    assert len(seen) == 1


def test_spread():
    s = Spread.of([5.0, 1.0, 3.0, 2.0, 4.0])
    assert (s.median, s.min, s.max, s.q1, s.q3, s.iqr, s.mean) == (3.0, 1.0, 5.0, 2.0, 4.0, 2.0, 3.0)
    assert s.std == pytest.approx(math.sqrt(2.5))
    one = Spread.of([0.5])
    assert one.median == one.q1 == one.q3 == 0.5 and one.iqr == 0.0 and math.isnan(one.std)
    with pytest.raises(EdlmError):
        Spread.of([])


def test_random_models_have_equal_size_and_leave_the_global_rng_alone():
    state = torch.random.get_rng_state()
    den, lm = random_models(vocab_size=11, n_layers=2, d_model=16, n_heads=2, max_seq_len=L)
    assert torch.equal(state, torch.random.get_rng_state())
    assert count_parameters(den) == count_parameters(lm) > 0
    assert not den.training and not lm.training
    den_adaln, _ = random_models(vocab_size=11, n_layers=2, d_model=16, n_heads=2, max_seq_len=L, adaln=True)
    assert count_parameters(den_adaln) > count_parameters(lm)


def test_measure_diffusion_counts_runs_and_passes(models, monkeypatch):
    denoiser, lm = models
    clock, calls = FakeClock(), []
    real_sample = edlm.sampling.sample

    def counting_sample(*args, **kwargs):
        calls.append(kwargs["generator"].initial_seed())
        clock.advance(100.0 if len(calls) <= 2 else len(calls))
        return real_sample(*args, **kwargs)

    monkeypatch.setattr(edlm.sampling, "sample", counting_sample)
    m = measure_diffusion(denoiser, 3, L, 1, repeats=3, warmup=2, seed=10, clock=clock, batch_size=2)
    assert calls == [10, 11, 12, 13, 14]  # seed + run index, warm-ups first
    assert m.seconds == [3.0, 4.0, 5.0] and m.repeats == 3 and m.warmup == 2
    assert m.median_s == 4.0 and m.spread.min == 3.0 and m.spread.max == 5.0
    assert m.method == "mdlm" and m.label == "MDLM T=1" and m.k is None and m.window is None
    # one step reveals everything: exactly one denoiser pass per sequence, one call per chunk of 2
    assert m.passes_per_sample == {"denoiser": 1.0}
    assert m.calls_per_run == {"denoiser": 2.0}
    assert m.batch_size == 2 and m.peak_memory_bytes is None


def test_measure_edlm_counts_energy_passes(models):
    denoiser, lm = models
    m = measure_diffusion(denoiser, 2, L, 1, energy=AREnergy(lm), k=3, window=1.0, repeats=2, warmup=1)
    assert m.method == "edlm" and m.label == "EDLM-AR T=1 k=3 w=1" and (m.k, m.window) == (3, 1.0)
    assert m.passes_per_sample == {"denoiser": 1.0, "energy": 3.0}  # k candidates per sequence
    assert m.calls_per_run == {"denoiser": 1.0, "energy": 1.0}
    m = measure_diffusion(denoiser, 2, L, 4, energy=AREnergy(lm, carry_over=True), k=2, window=1.0, repeats=1,
                          warmup=0)
    assert m.label.startswith("EDLM-coAR") and m.carry_over is True
    assert 1.0 <= m.passes_per_sample["denoiser"] <= 4.0
    assert m.passes_per_sample["energy"] == pytest.approx(2 * m.passes_per_sample["denoiser"])
    with pytest.raises(EdlmError, match="plain MDLM"):
        measure_diffusion(denoiser, 2, L, 2, energy=AREnergy(lm), k=1, window=1.0)


def test_measure_ar_counts_kv_steps(models):
    _, lm = models
    clock = FakeClock()
    m = measure_ar(lm, 3, L, batch_size=2, repeats=2, warmup=1, clock=clock)
    assert m.method == "ar" and m.seconds == [0.0, 0.0] and m.steps is None
    assert m.passes_per_sample == {"ar_kv_step": float(L)}
    assert m.calls_per_run == {"ar_kv_step": 2.0 * L}  # two chunks of L incremental calls
    assert clock.reads == 4


def test_latency_benchmark_structure(models):
    denoiser, lm = models
    result = latency_benchmark(denoiser=denoiser, energy=AREnergy(lm), ar=lm, num_samples=2, seq_len=L,
                               steps=[2, 4], k=[2, 3], window=0.5, repeats=2, warmup=1,
                               models={"denoiser": {"parameters": count_parameters(denoiser)}})
    assert isinstance(result, LatencyResult)
    assert [(m.method, m.steps, m.k) for m in result.measurements] == [
        ("ar", None, None), ("mdlm", 2, None), ("edlm", 2, 2), ("edlm", 2, 3),
        ("mdlm", 4, None), ("edlm", 4, 2), ("edlm", 4, 3)]
    assert all(m.repeats == 2 and m.warmup == 1 and m.num_samples == 2 for m in result.measurements)
    assert result.device == "cpu" and result.precision == "fp32"
    rows = result.rows()
    assert len(rows) == 7 and set(COLUMNS) <= set(rows[0])
    assert rows[0]["vs_ar"] == 1.0 and rows[0]["ar_kv_steps"] == L
    assert rows[2]["energy_passes"] is not None and rows[1]["energy_passes"] is None
    payload = json.loads(json.dumps(result.to_dict(), allow_nan=True))
    assert payload["models"]["denoiser"]["parameters"] == count_parameters(denoiser)
    first = payload["measurements"][0]
    assert len(first["seconds"]) == 2 and first["median_s"] == result.measurements[0].median_s
    only_edlm = latency_benchmark(denoiser=denoiser, energy=AREnergy(lm), mdlm=False, num_samples=1, seq_len=L,
                                  steps=[2], k=2, window=1.0, repeats=1, warmup=0)
    assert [m.method for m in only_edlm.measurements] == ["edlm"] and only_edlm.ar_median() is None


@pytest.mark.parametrize("kwargs, match", [
    (dict(denoiser=None, ar=None), "nothing to time"),
    (dict(steps=[]), "steps"),
    (dict(steps=[0]), "steps"),
    (dict(k=1), "k=1"),
    (dict(window=0.0), "window"),
    (dict(precision="fp16"), "precision"),
])
def test_latency_benchmark_rejects_bad_arguments(models, kwargs, match):
    denoiser, lm = models
    args = dict(denoiser=denoiser, energy=AREnergy(lm), ar=lm, num_samples=1, seq_len=L, steps=[2], k=2,
                window=1.0, repeats=1, warmup=0)
    if kwargs.get("denoiser", 0) is None:
        args["energy"] = None
    args.update(kwargs)
    with pytest.raises(EdlmError, match=match):
        latency_benchmark(**args)


TINY_CLI = ["--layers", "1", "--width", "16", "--heads", "2", "--vocab", "11", "--seq-len", str(L),
            "--num-samples", "2", "--repeats", "2", "--warmup", "1"]


def test_cli_random_init_writes_json_and_markdown(tmp_path, capsys):
    out = tmp_path / "lat"
    code = main(["eval", "latency", "--random-init", *TINY_CLI, "--steps", "2,4", "--k", "2", "--window", "0.5",
                 "--device", "cpu", "--out", str(out)])
    assert code == 0
    payload = json.loads((tmp_path / "lat.json").read_text())
    res = payload["results"]
    assert [(m["method"], m["steps"]) for m in res["measurements"]] == [
        ("ar", None), ("mdlm", 2), ("edlm", 2), ("mdlm", 4), ("edlm", 4)]
    assert all(len(m["seconds"]) == 2 and m["warmup"] == 1 for m in res["measurements"])
    assert res["random_init"] is True and res["seq_len"] == L and res["steps"] == [2, 4]
    assert res["models"]["denoiser"]["parameters"] == res["models"]["ar"]["parameters"]
    md = (tmp_path / "lat.md").read_text()
    assert md.startswith("# Generation latency") and md.count("| EDLM-AR") == 2 and "AR (KV cache)" in md
    assert "wrote" in capsys.readouterr().out


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    from edlm.config import load_config
    from edlm.models import CausalLM, MaskedDiffusionLM
    from edlm.train.checkpointing import save_checkpoint
    from edlm.train.order import DataPosition

    root = tmp_path_factory.mktemp("latency-ckpts")
    tiny = ["model.n_layers=1", "model.d_model=16", "model.n_heads=2", "model.cond_dim=16", "model.max_seq_len=12",
            "data.seq_len=12"]
    out = {}
    for name, extra in (("mdlm", []), ("ar", ["train.objective=ar", "model.causal=true", "model.adaln=false"])):
        cfg = load_config("text8-tiny", tiny + extra)
        torch.manual_seed(0)
        model = (CausalLM if cfg.model.causal else MaskedDiffusionLM)(cfg.model)
        save_checkpoint(root / name, step=1, position=DataPosition(0, 0), config=cfg, model=model, ema_model=model,
                        optimizer=torch.optim.AdamW(model.parameters()))
        out[name] = str(root / name)
    return out


def test_cli_checkpoints(ckpts, tmp_path):
    out = tmp_path / "ck"
    code = main(["eval", "latency", "--denoiser", ckpts["mdlm"], "--energy", "coar:" + ckpts["ar"],
                 "--ar", ckpts["ar"], "--num-samples", "2", "--steps", "3", "--k", "2", "--repeats", "1",
                 "--warmup", "0", "--device", "cpu", "--out", str(out)])
    assert code == 0
    res = json.loads((tmp_path / "ck.json").read_text())["results"]
    assert res["seq_len"] == 12  # the checkpoint's data.seq_len
    assert [m["label"] for m in res["measurements"]] == ["AR (KV cache)", "MDLM T=3", "EDLM-coAR T=3 k=2 w=1"]
    assert res["models"]["energy"]["spec"] == "coar:" + ckpts["ar"]
    code = main(["eval", "latency", "--denoiser", ckpts["mdlm"], "--methods", "mdlm", "--num-samples", "1",
                 "--steps", "2", "--repeats", "1", "--warmup", "0", "--device", "cpu", "--out", str(out)])
    assert code == 0
    assert [m["method"] for m in json.loads((tmp_path / "ck.json").read_text())["results"]["measurements"]] == ["mdlm"]


@pytest.mark.parametrize("argv, match", [
    (["--random-init", *TINY_CLI, "--k", "1"], "--k"),
    (["--random-init", *TINY_CLI, "--window", "0"], "--window"),
    (["--random-init", *TINY_CLI, "--repeats", "0"], "--repeats"),
    (["--random-init", *TINY_CLI, "--warmup", "-1"], "--warmup"),
    (["--random-init", *TINY_CLI, "--steps", "4,x"], "--steps"),
    (["--random-init", *TINY_CLI, "--methods", "ar,gpt"], "--methods"),
    (["--random-init", *TINY_CLI, "--width", "15"], "--width 15"),
    (["--random-init", "--num-samples", "2"], "--seq-len"),
    (["--random-init", *TINY_CLI, "--denoiser", "x"], "--random-init"),
    (["--num-samples", "2"], "nothing to time"),
    (["--denoiser", "MDLM", "--energy", "gpt2", "--num-samples", "2"], "--energy"),
    (["--ar", "AR", "--methods", "mdlm"], "--denoiser"),
    (["--denoiser", "MDLM", "--seq-len", "64", "--methods", "mdlm"], "--seq-len 64"),
    (["--denoiser", "/nonexistent/ckpt"], "nonexistent"),
])
def test_cli_bad_arguments_exit_2(argv, match, ckpts, tmp_path, capsys):
    argv = [ckpts["mdlm"] if a == "MDLM" else ckpts["ar"] if a == "AR" else a for a in argv]
    out = tmp_path / "bad"
    assert main(["eval", "latency", *argv, "--device", "cpu", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("edlm: error:") and match in err and err.count("\n") == 1
    assert not list(tmp_path.iterdir())  # nothing written

