"""One resolver for every model and energy spec (`edlm.loading.specs`, `edlm.loading.energy_specs`):
`edlm.load` / `edlm.load_energy` for every spec kind; one sentence, exit 2 and no output for every bad
spec; and every subcommand run with each spec kind it accepts.

The models are tiny and written here once per module: an mdlm, an ar and an nce run (random weights,
saved as training checkpoints, so nothing is trained), their `edlm export`s, a bundled root made of
those exports (EDLM_BUNDLED_DIR), and Hugging Face models: a GPT-2 with its own BPE tokenizer, an
MDLM-layout checkpoint with that tokenizer, and a GPT-2 whose tokenizer swaps two ids.
"""

from __future__ import annotations

import json
import math
import shutil

import pytest
import torch
from test_eval_tinyhf import build_tiny_hf
from test_specs import write_mdlm
from test_text8_bench import TINY as TEXT8_TINY
from test_train_support import text8_dir, tiny_overrides  # noqa: F401

import edlm
from edlm.cli import main
from edlm.config import load_config
from edlm.energy import AREnergy, NCEEnergy
from edlm.errors import EdlmError
from edlm.loading.pretrained import BUNDLED_ENV
from edlm.loading.specs import load_spec
from edlm.models import CausalLM, MaskedDiffusionLM
from edlm.models.hf import PROBE_TEXT, HFCausalLM
from edlm.train.checkpointing import save_checkpoint
from edlm.train.order import DataPosition
from edlm.util.device import cpu_threads

TINY = ["model.n_layers=1", "model.d_model=32", "model.n_heads=2", "model.cond_dim=32", "model.max_seq_len=32",
        "data.seq_len=32"]
AR = ["train.objective=ar", "model.causal=true", "model.adaln=false"]
WORDS = "the cat sat on the mat and the dog ran to the old mill by the river "


def save_run(out, cls, overrides, seed=0):
    """A training checkpoint (step 1) of a random-weight tiny model of class `cls`."""
    cfg = load_config("text8-tiny", TINY + overrides)
    torch.manual_seed(seed)
    model = cls(cfg.model)
    save_checkpoint(out, step=1, position=DataPosition(0, 0), config=cfg, model=model, ema_model=model,
                    optimizer=torch.optim.AdamW(model.parameters()))
    return out


@pytest.fixture(scope="module")
def zoo(tmp_path_factory, text8_dir):  # noqa: F811
    root = tmp_path_factory.mktemp("zoo")
    data = [f"data.path={text8_dir}"]
    z = {"root": root, "data": text8_dir,
         "mdlm": save_run(root / "mdlm", MaskedDiffusionLM, data),
         "ar": save_run(root / "ar", CausalLM, data + AR, seed=1),
         "ar30": save_run(root / "ar30", CausalLM, data + AR + ["model.vocab_size=30"])}
    z["nce"] = save_run(root / "nce", NCEEnergy, data + ["train.objective=nce", f"train.init_from={z['mdlm']}"])
    bundled = root / "bundled"
    for name in ("mdlm", "ar", "nce"):
        z[f"x_{name}"] = root / f"export-{name}"
        assert main(["export", str(z[name]), str(z[f"x_{name}"])]) == 0
        shutil.copytree(z[f"x_{name}"], bundled / f"text8-small-{name}")
    shutil.copytree(z["x_ar"], bundled / "text8-small-oracle")
    z["bundled"] = bundled
    tok, _ = build_tiny_hf(root / "gpt2", n_embd=16, n_layer=1)
    z["gpt2"], z["hf_mdlm"] = root / "gpt2", write_mdlm(root / "hf-mdlm", len(tok), tokenizer_from=root / "gpt2")
    z["swapped"] = root / "swapped"  # same vocabulary size, the probe text's first two ids swapped: another tokenizer
    shutil.copytree(z["gpt2"], z["swapped"])
    raw = json.loads((z["swapped"] / "tokenizer.json").read_text())
    vocab = raw["model"]["vocab"]
    first, second = tok.convert_ids_to_tokens(list(dict.fromkeys(tok.encode(PROBE_TEXT)))[:2])
    vocab[first], vocab[second] = vocab[second], vocab[first]
    (z["swapped"] / "tokenizer.json").write_text(json.dumps(raw))
    z["corpus"] = root / "corpus.txt"
    z["corpus"].write_text(WORDS * 40)
    return z


@pytest.fixture(autouse=True)
def bundled_root(zoo, monkeypatch):
    monkeypatch.setenv(BUNDLED_ENV, str(zoo["bundled"]))
    with cpu_threads(1):
        yield


def test_load_every_model_spec_kind(zoo):
    z = zoo
    reference = load_spec(f"ckpt:{z['mdlm']}", device="cpu")
    assert (reference.kind, reference.role, reference.step, reference.tokenizer_spec) == ("ckpt", "denoiser", 1, "char")
    assert reference.directory == z["mdlm"] / "checkpoints" / "step_00000001" and reference.seq_len == 32
    for spec, kind in ((str(z["mdlm"]), "ckpt"), (str(z["mdlm"] / "checkpoints"), "ckpt"),
                       (f"pretrained:{z['x_mdlm']}", "pretrained"), (str(z["x_mdlm"]), "pretrained"),
                       ("bundled:text8-small-mdlm", "bundled")):
        loaded = load_spec(spec, device="cpu")
        assert (loaded.kind, loaded.role, loaded.spec) == (kind, "denoiser", spec)
        assert loaded.config == reference.config and not loaded.model.training
        state = loaded.model.state_dict()
        assert all(torch.equal(v, state[k]) for k, v in reference.model.state_dict().items())
    assert isinstance(edlm.load("bundled:text8-small-ar", device="cpu"), CausalLM)
    assert isinstance(edlm.load(f"ckpt:{z['nce']}", device="cpu"), NCEEnergy)
    hf = load_spec(f"hf:{z['gpt2']}", device="cpu")
    assert isinstance(hf.model, HFCausalLM) and (hf.kind, hf.role, hf.config, hf.seq_len) == ("hf", "causal", None, 64)
    assert hf.tokenizer_spec == hf.tokenizer.name and hf.tokenizer_spec.startswith("hf:")
    hub = load_spec(f"hf:{z['hf_mdlm']}", device="cpu")
    assert isinstance(hub.model, MaskedDiffusionLM) and hub.role == "denoiser"


def test_load_energy_every_form(zoo):
    z = zoo
    denoiser = edlm.load(f"ckpt:{z['mdlm']}", device="cpu")
    ar = edlm.load_energy("ar:bundled:text8-small-ar", denoiser, device="cpu")
    coar = edlm.load_energy(f"coar:{z['ar']}", denoiser, device="cpu")
    assert isinstance(ar, AREnergy) and not ar.carry_over and coar.carry_over and coar.unit_partition
    for spec in (f"nce:{z['nce']}", f"nce:ckpt:{z['nce']}", f"nce:pretrained:{z['x_nce']}", "nce:bundled:text8-small-nce"):
        energy = edlm.load_energy(spec, denoiser, device="cpu")
        assert isinstance(energy, NCEEnergy) and not energy.training
    assert isinstance(edlm.load_energy(f"ar:hf:{z['gpt2']}", device="cpu").lm, HFCausalLM)  # no denoiser: no check
    x0 = torch.randint(0, 27, (2, 8), generator=torch.Generator().manual_seed(0))
    xt = torch.where(torch.arange(8) < 4, x0, torch.full_like(x0, 27))
    logp = torch.zeros(2, dtype=torch.float64)
    with torch.no_grad():  # coAR counts masked positions only: E = -(log p_AR of positions 4..7)
        lp = edlm.load(str(z["ar"]), device="cpu").token_logprobs(x0).double()
    assert torch.allclose(coar(x0, xt, torch.ones(2), logp), -lp[:, 4:].sum(1))
    assert torch.allclose(ar(x0, xt, torch.ones(2), logp), -edlm.load("bundled:text8-small-ar", device="cpu")
                          .token_logprobs(x0).double().sum(1))
    with pytest.raises(EdlmError, match="vocab_size=30 but the denoiser has vocab_size=27"):
        edlm.load_energy(f"ar:{z['ar30']}", denoiser, device="cpu")


def bad_cases(z, out):
    """(argv, value the message must name, phrase of the message) for each kind of bad spec."""
    sample = ["sample", "--device", "cpu", "--num-samples", "1", "--steps", "2", "--out", f"{out}.jsonl"]
    edlm_k = ["--k", "2", "--window", "1"]
    nll = ["eval", "nll", "--device", "cpu", "--out", str(out)]
    return [
        (nll + ["foo:bar"], "foo:bar", "has the unknown prefix 'foo:'"),
        (nll + [str(z["root"] / "missing")], str(z["root"] / "missing"), "does not exist"),
        (nll + [str(z["root"])], str(z["root"]), "is a directory but not an edlm model"),
        (nll + ["ckpt:"], "ckpt:", "names no model"),
        (nll + [f"ar:{z['ar']}"], f"ar:{z['ar']}", "is an energy spec, not a model"),
        (nll + [f"hf:{z['gpt2']}"], f"hf:{z['gpt2']}", "carries no edlm data config"),
        (nll + [f"ckpt:{z['nce']}"], f"ckpt:{z['nce']}", "is an NCE energy, not a masked diffusion model"),
        (sample + ["--denoiser", "bundled:nope"], "nope", "does not exist; use one of"),
        (sample + ["--denoiser", f"ckpt:{z['ar']}"], f"ckpt:{z['ar']}", "is a causal LM, not a masked diffusion"),
        (sample + ["--denoiser", str(z["mdlm"]), "--energy", f"xx:{z['ar']}"], f"xx:{z['ar']}",
         "is not an energy spec; use ar:MODEL, coar:MODEL or nce:MODEL"),
        (sample + edlm_k + ["--denoiser", str(z["mdlm"]), "--energy", f"ar:{z['mdlm']}"], f"ar:{z['mdlm']}",
         "needs a causal LM, but"),
        (sample + edlm_k + ["--denoiser", str(z["mdlm"]), "--energy", f"nce:{z['ar']}"], f"nce:{z['ar']}",
         "needs an NCE energy, but"),
        (sample + edlm_k + ["--denoiser", str(z["mdlm"]), "--energy", f"ar:{z['ar30']}"], "vocab_size=30",
         "but the denoiser has vocab_size=27"),
        (sample + edlm_k + ["--denoiser", f"hf:{z['hf_mdlm']}", "--energy", f"coar:hf:{z['swapped']}"],
         f"coar:hf:{z['swapped']}", "cannot be carry-over across tokenizers"),
        (sample + edlm_k + ["--denoiser", str(z["mdlm"]), "--energy", f"ar:{z['ar']}", "--trust-remote-code"],
         str(z["ar"]), "--trust-remote-code applies to hf: models only"),
        (sample + ["--denoiser", str(z["mdlm"]), "--energy", f"ar:{z['ar']}"], f"ar:{z['ar']}",
         "would have no effect with --k 1 and --window 0"),
        (["eval", "gen", str(z["root"] / "ids.jsonl"), "--oracle", str(z["ar"]), "--out", str(out)],
         str(z["root"] / "ids.jsonl"), "records no tokenizer"),
        (["eval", "gen", str(z["root"] / "ids.jsonl"), "--oracle", str(z["mdlm"]), "--tokenizer", "char",
          "--out", str(out)], str(z["mdlm"]), "is a masked diffusion model (denoiser), not a causal LM"),
        (["eval", "zeroshot", f"nce:{z['nce']}", "--corpus", str(z["corpus"]), "--out", str(out)], f"nce:{z['nce']}",
         "is an energy spec, not a model"),
        (["eval", "latency", "--denoiser", str(z["mdlm"]), "--energy", f"nce:{z['nce']}", "--out", str(out)],
         f"nce:{z['nce']}", "is not an AR energy"),
        (["export", f"hf:{z['gpt2']}", str(out)], f"hf:{z['gpt2']}", "carries no edlm run config"),
        (["train", "text8-tiny", *tiny_overrides(z["data"], out, steps=1, init_from="bundled:text8-small-ar")],
         "bundled:text8-small-ar", "holds a different architecture"),
    ]


def test_bad_specs_exit_2_with_one_sentence_and_write_nothing(zoo, tmp_path, capsys):
    (zoo["root"] / "ids.jsonl").write_text('{"ids": [1, 2, 3]}\n')
    out = tmp_path / "out"
    for argv, value, phrase in bad_cases(zoo, out):
        assert main(argv) == 2, argv
        lines = [line for line in capsys.readouterr().err.splitlines() if line.strip() and "Loading weights" not in line]  # HF's bar
        assert len(lines) == 1 and lines[0].startswith("edlm: error: ") and lines[0].endswith("."), lines
        assert value in lines[0] and phrase in lines[0], (argv, lines)
        assert list(tmp_path.iterdir()) == [], (argv, list(tmp_path.iterdir()))


def read_json(stem):
    return json.loads(stem.with_name(stem.name + ".json").read_text())["results"]


def test_every_subcommand_takes_every_spec_kind(zoo, tmp_path, capsys):
    z, out = zoo, tmp_path
    mdlm = [f"ckpt:{z['mdlm']}", str(z["mdlm"]), f"pretrained:{z['x_mdlm']}", str(z["x_mdlm"]),
            "bundled:text8-small-mdlm"]
    ar = [f"ckpt:{z['ar']}", str(z["ar"]), f"pretrained:{z['x_ar']}", str(z["x_ar"]), "bundled:text8-small-ar"]
    nce = [f"ckpt:{z['nce']}", str(z["nce"]), f"pretrained:{z['x_nce']}", "bundled:text8-small-nce"]
    cpu = ["--device", "cpu"]

    def run(*argv):
        code = main([str(a) for a in argv])
        captured = capsys.readouterr()
        assert code == 0, (argv, captured.err)

    def rows(path):
        return [json.loads(line) for line in path.read_text().splitlines()]

    # edlm sample: every denoiser kind; ar:, coar: and nce: energies of every model kind; hf: both ways.
    few = ["--steps", "2", "--num-samples", "1", "--seq-len", "8", *cpu]
    for i, spec in enumerate(mdlm):
        run("sample", "--denoiser", spec, *few, "--out", out / f"d{i}.jsonl")
        assert rows(out / f"d{i}.jsonl")[0]["denoiser"] == spec
    for i, energy in enumerate([f"ar:{s}" for s in ar] + [f"coar:{ar[2]}"] + [f"nce:{s}" for s in nce]):
        run("sample", "--denoiser", mdlm[i % len(mdlm)], "--energy", energy, "--k", "2", "--window", "1", *few,
            "--out", out / f"e{i}.jsonl")
        row = rows(out / f"e{i}.jsonl")[0]
        assert (row["energy"], row["tokenizer"], row["denoiser"]) == (energy, "char", mdlm[i % len(mdlm)])
    run("sample", "--denoiser", f"hf:{z['hf_mdlm']}", "--energy", f"ar:hf:{z['gpt2']}", "--k", "2", "--window", "1",
        *few, "--out", out / "hf.jsonl")
    assert rows(out / "hf.jsonl")[0]["tokenizer"] == f"hf:{z['hf_mdlm']}"
    run("sample", "--sampler", "glauber", "--denoiser", mdlm[4], "--energy", f"ar:{ar[3]}", *few,
        "--out", out / "g.jsonl")
    run("sample", "--denoiser", mdlm[0], "--steps", "4", "--num-samples", "6", "--seq-len", "32", *cpu,
        "--out", out / "many.jsonl")

    # edlm demo: the bundled defaults, then other kinds; an oracle of another tokenizer reads the text.
    demo = ["demo", "--steps", "2", "--num-samples", "1", "--seq-len", "8", "--k", "2", *cpu]
    run(*demo, "--out", out / "demo0")
    run(*demo, "--denoiser", mdlm[2], "--energy", f"coar:{ar[0]}", "--oracle", f"hf:{z['gpt2']}", "--out",
        out / "demo1")
    settings, methods = read_json(out / "demo0")["settings"], read_json(out / "demo1")["methods"]
    assert settings["oracle_retokenized"] is False and read_json(out / "demo1")["settings"]["oracle_retokenized"]
    assert all(math.isfinite(m["oracle_bits_per_char"]) for m in methods.values())

    # edlm eval nll, energy, gen, mauve, zeroshot, latency, text8.
    for i, spec in enumerate([mdlm[0], mdlm[3], ar[2], "bundled:text8-small-ar"]):
        run("eval", "nll", spec, "--max-sequences", "2", "--num-t", "2", *cpu, "--out", out / f"nll{i}")
        assert read_json(out / f"nll{i}")["model"] == spec
    energies = [f"nce:{s}" for s in nce] + [str(z["x_nce"])]
    for i, spec in enumerate(energies):
        run("eval", "energy", spec, "--denoiser", mdlm[i % len(mdlm)], "--num-t", "2", "--negatives", "2",
            "--max-sequences", "2", *cpu, "--out", out / f"en{i}")
    run("eval", "energy", "nce:bundled:text8-small-nce", "--num-t", "1", "--negatives", "2", "--max-sequences", "2",
        *cpu, "--out", out / "en-default")
    assert read_json(out / "en-default")["denoiser"] == str(z["mdlm"])  # the energy's train.init_from
    for i, oracle in enumerate(ar + [f"hf:{z['gpt2']}"]):
        run("eval", "gen", out / "many.jsonl", "--oracle", oracle, *cpu, "--out", out / f"gen{i}")
        result = read_json(out / f"gen{i}")
        assert result["retokenized"] is oracle.startswith("hf:") and result["num_chars"] == 6 * 32
        assert result["bits_per_char"] == pytest.approx(result["nll_per_token"] * result["num_scored_tokens"]
                                                        / math.log(2) / (6 * 32))
    mauve = ["--reference", z["corpus"], "--samples", out / "many.jsonl", "--prompt-len", "4", "--cont-len", "8",
             "--num-buckets", "2", "--kmeans-redo", "1", "--kmeans-iter", "5", *cpu]
    for i, featurizer in enumerate([ar[1], mdlm[4], f"hf:{z['gpt2']}"]):
        run("eval", "mauve", "--featurizer", featurizer, *mauve, "--out", out / f"mauve{i}")
    for i, spec in enumerate([mdlm[1], ar[4], f"hf:{z['gpt2']}"]):
        run("eval", "zeroshot", spec, "--corpus", z["corpus"], "--seq-len", "16", "--max-sequences", "2", "--num-t", "2",
            *cpu, "--out", out / f"zs{i}")
    run("eval", "latency", "--denoiser", mdlm[4], "--energy", f"coar:{ar[0]}", "--ar", f"hf:{z['gpt2']}", "--seq-len",
        "8", "--steps", "2", "--k", "2", "--num-samples", "1", "--repeats", "1", "--warmup", "0", *cpu,
        "--out", out / "lat")
    assert [m["label"] for m in read_json(out / "lat")["measurements"]][-1].startswith("EDLM-coAR")
    # eval text8 loads and checks its four models (SEDD left out: this zoo has no score model), then runs the
    # jobs of its shard: none here (test_text8_bench runs them, with SEDD models).
    run("eval", "text8", *TEXT8_TINY, "--denoiser", mdlm[0], "--ar", ar[2], "--nce", nce[3], "--oracle", ar[1],
        "--sedd", "none", "--data", z["data"], "--threads", "1", "--shard", "999/1000", "--cache", out / "cache",
        "--out", out / "t8")

    # edlm export, train.init_from and the lm-eval adapter's pretrained=.
    for i, spec in enumerate([nce[0], ar[2], mdlm[4]]):
        run("export", spec, out / f"export{i}")
    run("train", "text8-tiny", *tiny_overrides(z["data"], out / "ft", steps=1, init_from=mdlm[4]), "--no-progress")
    run("train", "text8-tiny", *tiny_overrides(z["data"], out / "ft-nce", steps=1, objective="nce", init_from=mdlm[2],
                                                nce_negatives=1), "--no-progress")
    from edlm.metrics.lm_eval_adapter import EdlmLM

    for spec in (mdlm[0], ar[4], f"hf:{z['gpt2']}"):
        assert EdlmLM(pretrained=spec, device="cpu").causal is (spec != mdlm[0])


def test_default_denoiser_of_a_bundled_energy(zoo):
    """A bundled energy's train.init_from names the run it was trained from, which is not on this
    machine; `edlm eval energy` then takes the bundled model of that run's name."""
    from types import SimpleNamespace

    from edlm.commands.eval_energy import default_denoiser

    def energy(kind, init_from):
        return SimpleNamespace(kind=kind, spec="x", config=SimpleNamespace(train=SimpleNamespace(init_from=init_from)))

    assert default_denoiser(energy("bundled", "runs/text8-small-mdlm")) == "bundled:text8-small-mdlm"
    assert default_denoiser(energy("bundled", "ckpt:runs/text8-small-mdlm")) == "bundled:text8-small-mdlm"
    assert default_denoiser(energy("ckpt", "runs/text8-small-mdlm")) == "runs/text8-small-mdlm"
    assert default_denoiser(energy("bundled", str(zoo["mdlm"]))) == str(zoo["mdlm"])  # it exists here
    with pytest.raises(EdlmError, match="records no train.init_from; pass --denoiser MODEL"):
        default_denoiser(energy("pretrained", ""))
