"""Bundled models (`bundled:NAME`, EDLM_BUNDLED_DIR) and `edlm demo`, on tiny bf16 models built here."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file
from test_eval_generative import Letters, UnigramLM

from edlm.cli import main
from edlm.metrics.judge import judge_bits_per_char
from edlm.commands.demo import side_by_side
from edlm.config import load_config
from edlm.energy import NCEEnergy
from edlm.errors import EdlmError
from edlm.models import CausalLM, MaskedDiffusionLM
from edlm.models.sedd import SEDDScoreModel
from edlm.loading.pretrained import BUNDLED_ENV, WEIGHTS_FILE, bundled_dir, bundled_names, from_pretrained, save_pretrained
from edlm.loading.specs import load_spec

TINY = ["model.n_layers=1", "model.d_model=16", "model.n_heads=2", "model.cond_dim=16", "model.max_seq_len=16",
        "data.seq_len=16"]
AR = ["model.causal=true", "model.adaln=false", "train.objective=ar"]
MODELS = {"text8-small-mdlm": (MaskedDiffusionLM, []), "text8-small-ar": (CausalLM, AR),
          "text8-small-nce": (NCEEnergy, ["train.objective=nce"]), "text8-small-oracle": (CausalLM, AR)}


@pytest.fixture(scope="module")
def bundled_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("bundled")
    for seed, (name, (cls, overrides)) in enumerate(MODELS.items()):
        cfg = load_config("text8-tiny", TINY + overrides)
        torch.manual_seed(seed)
        save_pretrained(cls(cfg.model).to(torch.bfloat16), root / name, config=cfg)
    return root


@pytest.fixture(scope="module")
def words_data(tmp_path_factory):
    """A text8 prefix of 12M characters whose train split [0, 10M) repeats " a b c d e f cat" (so its
    vocabulary is a-f and cat) and whose test split [11M, 12M) repeats " cat dog a zz yy"."""
    root = tmp_path_factory.mktemp("words")
    (root / "text8").mkdir()
    with open(root / "text8" / "text8_prefix.txt", "w") as f:
        f.write(" a b c d e f cat" * (11_000_000 // 16) + " cat dog a zz yy" * (1_000_000 // 16))
    return root


@pytest.fixture
def bundled(bundled_root, monkeypatch):
    monkeypatch.setenv(BUNDLED_ENV, str(bundled_root))
    return bundled_root


def test_bundled_spec_loads_bf16_weights_into_fp32(bundled):
    import edlm
    from edlm.loading.specs import load_spec

    assert bundled_names() == sorted(MODELS)
    assert bundled_dir("text8-small-ar") == bundled / "text8-small-ar"
    stored = load_file(str(bundled / "text8-small-mdlm" / WEIGHTS_FILE))
    assert all(t.dtype == torch.bfloat16 for t in stored.values())
    loaded = load_spec("bundled:text8-small-mdlm", device="cpu")
    assert (loaded.kind, loaded.role, loaded.directory, loaded.tokenizer_spec) == (
        "bundled", "denoiser", bundled / "text8-small-mdlm", "char")
    for model in (edlm.load("bundled:text8-small-mdlm", device="cpu"),
                  from_pretrained(bundled_dir("text8-small-mdlm"), device="cpu")[0], loaded.model):
        state = model.state_dict()
        assert isinstance(model, MaskedDiffusionLM) and not model.training
        assert all(state[k].dtype == torch.float32 and torch.equal(state[k], v.float()) for k, v in stored.items())


def test_unknown_or_missing_bundled_model(bundled, tmp_path, monkeypatch):
    with pytest.raises(EdlmError, match="'nope' does not exist; use one of text8-small-ar, text8-small-mdlm, "
                                        "text8-small-nce, text8-small-oracle"):
        bundled_dir("nope")
    monkeypatch.setenv(BUNDLED_ENV, str(tmp_path / "empty"))
    assert bundled_names() == []
    with pytest.raises(EdlmError, match="holds no bundled models"):
        bundled_dir("text8-small-mdlm")


def oracle_bits_by_hand(lm, ids: list[int]) -> float:
    """-sum log2 p(x_i | x_<i) / characters, from the causal LM's logits (text8: one character per id)."""
    x = torch.tensor([ids])
    with torch.no_grad():
        logp = torch.log_softmax(lm(x).double(), dim=-1).gather(-1, x[..., None])
    return float(-logp.sum()) / math.log(2) / len(ids)


def test_judge_bits_per_char_by_hand():
    """Bits per character of each sample under a unigram oracle, on the samples' ids when the oracle shares
    their tokenizer, else on their text encoded by the oracle's tokenizer."""
    samples, letters = [[0, 1, 0, 2], [3, 3]], Letters("abcd|", "letters")  # "abac", "dd"
    bits, retokenized = judge_bits_per_char(SimpleNamespace(model=UnigramLM(), tokenizer=letters), samples, letters)
    abac = -(math.log2(0.4) + math.log2(0.3) + math.log2(0.4) + math.log2(0.2))
    assert not retokenized and bits == pytest.approx([abac / 4, -2 * math.log2(0.05) / 2])
    reversed_letters = Letters("dcba|", "reversed")  # "abac" -> [3, 2, 3, 1], "dd" -> [0, 0]
    bits, retokenized = judge_bits_per_char(SimpleNamespace(model=UnigramLM(), tokenizer=reversed_letters), samples, letters)
    dcdb = -(math.log2(0.05) + math.log2(0.2) + math.log2(0.05) + math.log2(0.3))
    assert retokenized and bits == pytest.approx([dcdb / 4, -2 * math.log2(0.4) / 2])


def test_demo_prints_both_columns_summary_and_json(bundled, words_data, tmp_path, capsys):
    assert main(["demo", "--steps", "6", "--device", "cpu", "--columns", "60", "--data", str(words_data),
                 "--out", str(tmp_path / "demo")]) == 0
    text = capsys.readouterr().out
    result = json.loads((tmp_path / "demo.json").read_text())["results"]
    assert "| EDLM (AR energy, k=4, window=1.0, 6 steps) |" in (tmp_path / "demo.md").read_text()
    assert "MDLM (6 steps)" in text and "EDLM (AR energy, k=4," in text  # the header wraps at width 60
    assert result["methods"]["edlm"]["header"] == "EDLM (AR energy, k=4, window=1.0, 6 steps)"
    assert "oracle bits/char" in text and "not a benchmark" in text and "benchmarks/results/text8.md" in text
    assert result["settings"]["seq_len"] == 16 and result["settings"]["oracle"] == "bundled:text8-small-oracle"
    mdlm, edlm = result["methods"]["mdlm"], result["methods"]["edlm"]
    oracle = load_spec("bundled:text8-small-oracle", device="cpu").model
    for method in (mdlm, edlm):
        assert [len(s["ids"]) for s in method["samples"]] == [16, 16]
        assert [len(s["text"]) for s in method["samples"]] == [16, 16]
        bits = [s["oracle_bits_per_char"] for s in method["samples"]]
        assert bits == pytest.approx([oracle_bits_by_hand(oracle, s["ids"]) for s in method["samples"]], rel=1e-6)
        assert math.isclose(method["oracle_bits_per_char"], sum(bits) / 2)
        assert method["denoiser_rows_per_sample"] > 0 and method["seconds_per_sample"] > 0
    assert mdlm["energy_rows_per_sample"] == 0 and edlm["energy_rows_per_sample"] > 0
    # Real words: the test text " cat dog a zz yy" twice has 4 of its 10 words in the train vocabulary.
    vocabulary = {"a", "b", "c", "d", "e", "f", "cat"}
    assert result["real_words"] == dict(vocabulary_size=7, test_texts=[" cat dog a zz yy"] * 2,
                                        test_real_word_fraction=0.4)
    assert "real text (the first 2 test sequence(s) of 16 characters): 0.400." in " ".join(text.split())
    summary_lines = {line.split()[0]: line.split() for line in text.splitlines() if line.startswith(("MDLM ", "EDLM "))}
    for name, method in (("MDLM", mdlm), ("EDLM", edlm)):
        words = [[w in vocabulary for w in s["text"].split()] for s in method["samples"]]
        assert method["real_word_fraction"] == sum(map(sum, words)) / sum(map(len, words))
        assert [s["real_word_fraction"] for s in method["samples"]] == [sum(w) / len(w) for w in words]
        assert summary_lines[name][-1] == f"{method['real_word_fraction']:.3f}"
    for left, right in zip(mdlm["samples"], edlm["samples"]):  # both texts printed, side by side, in 60 columns
        lines = side_by_side((mdlm["header"], edlm["header"]), (left["text"], right["text"]), 60)
        assert all(line in text.splitlines() and len(line) <= 60 for line in lines)
        body = lines[[i for i, line in enumerate(lines) if "-+-" in line][0] + 1:]
        assert "".join(line[:28] for line in body).replace(" ", "") == left["text"].replace(" ", "")
        assert "".join(line[31:] for line in body).replace(" ", "") == right["text"].replace(" ", "")


def test_demo_real_word_fractions_of_known_samples(bundled, words_data, tmp_path, capsys, monkeypatch):
    """Samples fixed by hand (the samplers are replaced): fractions of their words in {a, ..., f, cat}."""
    import edlm.commands.demo as demo

    texts = {"mdlm": [" a b cat xx yy z", " cat cat cat qqq"],  # 3 of 6 and 3 of 4 words: 6 of 10
             "edlm": ["abcdef cat dog e", "f f f f f f f  f"]}  # 2 of 4 and 8 of 8 words: 10 of 12
    tokenizer = load_spec("bundled:text8-small-mdlm", device="cpu").tokenizer

    def fixed(denoiser, seq_len, args, energy=None, **options):
        rows = [tokenizer.encode(t) for t in texts["mdlm" if energy is None else "edlm"]]
        return rows, dict(seconds_per_sample=1.0, denoiser_rows_per_sample=1.0, energy_rows_per_sample=0.0)

    monkeypatch.setattr(demo, "run_sampler", fixed)
    assert main(["demo", "--oracle", "none", "--device", "cpu", "--data", str(words_data),
                 "--out", str(tmp_path / "demo")]) == 0
    out = capsys.readouterr().out
    result = json.loads((tmp_path / "demo.json").read_text())["results"]
    mdlm, edlm = result["methods"]["mdlm"], result["methods"]["edlm"]
    assert [s["real_word_fraction"] for s in mdlm["samples"]] == [0.5, 0.75] and mdlm["real_word_fraction"] == 0.6
    assert [s["real_word_fraction"] for s in edlm["samples"]] == [0.5, 1.0] and edlm["real_word_fraction"] == 10 / 12
    assert result["real_words"]["test_real_word_fraction"] == 0.4
    assert "MDLM          1.00                   1.0                 0.0       0.600" in out
    assert "EDLM          1.00                   1.0                 0.0       0.833" in out
    assert ("the 7 distinct words of the text8 train split; real text (the first 2 test sequence(s) of 16 "
            "characters): 0.400.") in " ".join(out.split())
    assert "| 0.6 |" in (tmp_path / "demo.md").read_text()


def test_demo_with_nce_energy_and_no_oracle(bundled, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("EDLM_DATA", raising=False)  # no text8 named: the real-word fractions are left out
    code = main(["demo", "--energy", "nce:bundled:text8-small-nce", "--oracle", "none", "--num-samples", "1",
                 "--steps", "4", "--k", "2", "--device", "cpu", "--out", str(tmp_path / "demo")])
    assert code == 0
    text = capsys.readouterr().out
    assert "EDLM (NCE energy, k=2, window=1.0, 4 steps)" in text and "oracle" not in text
    assert "real words: left out, since text8 was not found: pass --data DIR or set EDLM_DATA." in text
    result = json.loads((tmp_path / "demo.json").read_text())["results"]
    assert result["real_words"] is None
    assert all(m["oracle_bits_per_char"] is None and m["real_word_fraction"] is None and len(m["samples"]) == 1
               for m in result["methods"].values())


def test_demo_temperature_reaches_both_samplers(bundled, tmp_path, capsys, monkeypatch):
    """--temperature is passed to both samplers: the MDLM column equals edlm.sampling.sample at that temperature
    from the same seed, and it differs from the model's own (temperature 1) samples."""
    import edlm.sampling

    real_sample, temperatures = edlm.sampling.sample, []

    def spy(*args, **kwargs):
        temperatures.append(kwargs["temperature"])
        return real_sample(*args, **kwargs)

    monkeypatch.setattr(edlm.sampling, "sample", spy)
    argv = ["demo", "--oracle", "none", "--steps", "4", "--device", "cpu", "--out", str(tmp_path / "demo")]
    assert main([*argv, "--temperature", "0.25"]) == 0
    assert temperatures == [0.25, 0.25] and "seed 0, temperature 0.25, on cpu" in capsys.readouterr().out
    result = json.loads((tmp_path / "demo.json").read_text())["results"]
    assert result["settings"]["temperature"] == 0.25
    denoiser = load_spec("bundled:text8-small-mdlm", device="cpu").model
    cold = real_sample(denoiser, 2, 16, 4, temperature=0.25, generator=torch.Generator().manual_seed(0))
    model = real_sample(denoiser, 2, 16, 4, generator=torch.Generator().manual_seed(0))
    assert [s["ids"] for s in result["methods"]["mdlm"]["samples"]] == cold.tolist() != model.tolist()


def test_sample_defaults_to_bundled_denoiser(bundled, tmp_path):
    out = tmp_path / "s.jsonl"
    code = main(["sample", "--energy", "ar:bundled:text8-small-ar", "--k", "2", "--window", "1", "--steps", "4",
                 "--num-samples", "2", "--device", "cpu", "--out", str(out)])
    assert code == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [len(r["ids"]) for r in rows] == [16, 16] and rows[0]["denoiser"] == "bundled:text8-small-mdlm"
    assert all(1.0 <= r["ess_mean"] <= 2.0 for r in rows)


@pytest.mark.parametrize("argv, message", [
    (["demo", "--k", "0"], "--k 0 must be at least 1"),
    (["demo", "--window", "1.5"], "--window 1.5 must lie in [0, 1]"),
    (["demo", "--temperature", "0"], "--temperature 0.0 must be positive (1 = the model)"),
    (["demo", "--denoiser", "bundled:nope"], "'nope' does not exist; use one of"),
    (["demo", "--denoiser", "bundled:text8-small-ar"], "is a causal LM, not a masked diffusion model"),
    (["demo", "--seq-len", "32"], "exceeds the denoiser's max_seq_len=16"),
    (["sample", "--k", "0", "--out", "x.jsonl"], "--k 0 must be at least 1"),
])
def test_bad_input_exits_2(bundled, capsys, argv, message):
    assert main([*argv, "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_missing_bundled_directory_exits_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(BUNDLED_ENV, str(tmp_path / "absent"))
    assert main(["sample", "--device", "cpu", "--out", str(tmp_path / "s.jsonl")]) == 2
    assert "holds no bundled models" in capsys.readouterr().err


def test_the_committed_models_load_and_know_english(monkeypatch):
    """The real bundled checkpoints (not the tiny ones): each loads as its kind, the AR models give a
    real text8 sentence far fewer bits than a scrambled copy, and the MDLM and SEDD bounds are well
    below uniform."""
    import edlm
    from edlm.data import build_tokenizer
    from edlm.config import DataConfig

    monkeypatch.delenv(BUNDLED_ENV, raising=False)
    kinds = {**{name: cls for name, (cls, _) in MODELS.items()}, "text8-small-sedd": SEDDScoreModel,
             "text8-small-sedd-uniform": SEDDScoreModel}
    assert bundled_names() == sorted(kinds)
    models = {name: edlm.load(f"bundled:{name}", device="cpu") for name in kinds}
    for name, cls in kinds.items():
        assert type(models[name]) is cls and models[name].config.max_seq_len == 256, name
    text = ("the history of the city begins in the middle ages when a small settlement was founded on the river "
            "by monks who built a church and a school the town grew quickly during the industrial revolution")
    ids = torch.tensor([build_tokenizer(DataConfig(tokenizer="char")).encode(text)])
    scrambled = ids[:, torch.randperm(ids.shape[1], generator=torch.Generator().manual_seed(0))]
    for name in ("text8-small-ar", "text8-small-oracle"):
        bits = [float(edlm.nelbo(models[name], x).nats_per_token) / math.log(2) for x in (ids, scrambled)]
        assert bits[0] < 2.5 < 3.5 < bits[1], (name, bits)  # trained: ~2 bits/char on text, ~4+ on noise
    assert (models["text8-small-sedd"].graph, models["text8-small-sedd-uniform"].graph) == ("absorb", "uniform")
    for name in ("text8-small-mdlm", "text8-small-sedd", "text8-small-sedd-uniform"):
        bound = edlm.nelbo(models[name], ids, num_t=64, generator=torch.Generator().manual_seed(0))
        assert float(bound.nats_per_token) / math.log(2) < 3.5, name  # upper bound, below uniform log2(27) = 4.75
