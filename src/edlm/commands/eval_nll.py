"""`edlm eval nll MODEL --out STEM`: likelihood of a data split under a trained model.

Prints nats per token, bits per token (BPC for character models) and perplexity, and writes them to
STEM.json and STEM.md. For a diffusion model these are Monte Carlo estimates of the MDLM NELBO (a
SEDD score model: of its score-entropy bound; a Glauber-trained model, `train.objective=glauber`: of the
Glauber diffusion bound over `--num-chains` forward chains per sequence, `edlm.likelihood.glauber_split`),
i.e. upper bounds on the true NLL; for an autoregressive model (and a UL2-style model before Glauber
training, through its causal mode) they are exact.

The Glauber bound uses the model as the reverse model and its causal mode as p_causal(x_T), and the run's
EMA weights as the forward chain's frozen model F (as in training); with --no-ema the trained weights are
the model and the EMA weights still F. Its rounds and permutations are those the model was trained with.
"""

from __future__ import annotations

import dataclasses

COLUMNS = ["model", "split", "nats_per_token", "stderr", "bits_per_token", "ppl", "num_sequences", "num_tokens",
           "kind"]
KIND_WORDS = {"upper_bound": "upper bounds (MDLM NELBO or SEDD score-entropy bound, Monte Carlo over t)",
              "exact": "exact (autoregressive NLL)"}
GLAUBER_WORDS = "upper bounds (Glauber diffusion bound, Monte Carlo over forward chains)"
DEFAULT_NUM_T, DEFAULT_NUM_CHAINS = 16, 8


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "nll", help="NLL / BPC / PPL of a data split under a model (upper bounds for diffusion models)",
        description="Evaluate the negative log-likelihood of a split under a trained model. For diffusion "
                    "models the numbers are upper bounds: the MDLM NELBO or SEDD's score-entropy bound, estimated "
                    "with --num-t antithetic times per sequence, or for a Glauber diffusion model "
                    "(train.objective=glauber) its bound over --num-chains forward chains per sequence.")
    from edlm.data.corpora import SPLITS

    parser.add_argument("model", metavar="MODEL", help="model spec of an edlm model trained on a corpus "
                                                       "(run or checkpoint directory, ckpt:, pretrained:, bundled:)")
    parser.add_argument("--split", default="test", choices=SPLITS, help="data split to evaluate (default: test)")
    parser.add_argument("--num-t", type=int, default=None,
                        help=f"diffusion times per sequence (default: {DEFAULT_NUM_T}; not for a Glauber model)")
    parser.add_argument("--num-chains", type=int, default=None,
                        help=f"forward chains per sequence of a Glauber diffusion model's bound (default: "
                             f"{DEFAULT_NUM_CHAINS}; at least 2)")
    parser.add_argument("--batch-size", type=int, default=32, help="sequences per batch (default: 32)")
    parser.add_argument("--max-sequences", type=int, default=0,
                        help="evaluate only the first N sequences of the split (default 0: all)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the Monte Carlo draws (default: 0)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N (default: auto)")
    parser.add_argument("--data", default=None, help="where the corpus lives, instead of the model's data.path")
    parser.add_argument("--no-ema", action="store_true", help="use the trained weights instead of the EMA weights")
    parser.add_argument("--out", required=True, metavar="STEM", help="writes STEM.json and STEM.md")
    parser.set_defaults(func=run)


def run(args) -> int:
    import torch

    from edlm.commands.glauber_diffusion_options import trained_rounds
    from edlm.data import load_split
    from edlm.errors import require
    from edlm.likelihood.glauber_split import glauber_split_likelihood
    from edlm.likelihood.nelbo import split_likelihood
    from edlm.loading.specs import load_spec, parse_model_spec
    from edlm.reports.report import write_report
    from edlm.util.outputs import check_output_path

    check_output_path(args.out, option="--out", kind="stem")
    require(args.num_t is None or args.num_t >= 1, f"--num-t {args.num_t} must be at least 1.")
    require(args.num_chains is None or args.num_chains >= 2, f"--num-chains {args.num_chains} must be at least 2.")
    require(args.batch_size >= 1, f"--batch-size {args.batch_size} must be at least 1.")
    require(args.max_sequences >= 0, f"--max-sequences {args.max_sequences} must be >= 0 (0 means all).")
    require(parse_model_spec(args.model, "MODEL")[0] != "hf", f"MODEL {args.model!r} carries no edlm data config, "
            "so its corpus is unknown; use edlm eval zeroshot for hf: models.")
    loaded = load_spec(args.model, device=args.device, ema=not args.no_ema, role=("denoiser", "score", "causal"),
                       what="MODEL")
    model, cfg = loaded.model, loaded.config
    data_cfg = cfg.data if args.data is None else dataclasses.replace(cfg.data, path=args.data)
    rounds = trained_rounds(loaded)
    require(rounds is None or args.num_t is None, f"--num-t applies to MDLM and SEDD models, and {args.model!r} is a "
            "Glauber diffusion model, whose bound runs forward chains; use --num-chains.")
    require(rounds is not None or args.num_chains is None, f"--num-chains applies to a Glauber diffusion model "
            f"(train.objective=glauber), and {args.model!r} is not one; drop --num-chains.")
    data = load_split(data_cfg, args.split)
    if args.max_sequences:
        data = data[: args.max_sequences]
    generator = torch.Generator().manual_seed(args.seed)
    if rounds is None:
        result = split_likelihood(model, data, num_t=args.num_t or DEFAULT_NUM_T, batch_size=args.batch_size,
                                  generator=generator, progress=True)
    else:
        frozen = load_spec(args.model, device=args.device).model if args.no_ema and loaded.kind == "ckpt" else model
        result = glauber_split_likelihood(model, data, rounds=rounds, frozen=frozen,
                                          num_chains=args.num_chains or DEFAULT_NUM_CHAINS,
                                          batch_size=args.batch_size, generator=generator, progress=True)
    words = KIND_WORDS.get(result.kind, result.kind) if rounds is None else GLAUBER_WORDS

    unit = "BPC" if data_cfg.tokenizer == "char" else "bits/token"
    report = {
        "model": args.model, "checkpoint": None if loaded.directory is None else str(loaded.directory),
        "step": loaded.step, "split": args.split,
        "weights": ("model" if args.no_ema else "ema") if loaded.kind == "ckpt" else "exported",
        "objective": cfg.train.objective,
        "tokenizer": data_cfg.tokenizer, "seed": args.seed, "bound": result.kind == "upper_bound", **result.to_dict(),
    }
    if rounds is not None:
        report.update(glauber_rounds=rounds, num_chains=args.num_chains or DEFAULT_NUM_CHAINS,
                      frozen="ema" if loaded.kind == "ckpt" else "exported", num_t=None)
    if data_cfg.tokenizer == "char":
        report["bpc"] = result.bits_per_token
    print(f"{args.split}: {result.nats_per_token:.4f} ± {result.stderr:.4f} nats/token, "
          f"{result.bits_per_token:.4f} {unit}, PPL {result.ppl:.4f} over {result.num_sequences} sequences "
          f"({result.num_tokens} tokens); {words}")
    notes = f"Numbers are {words}; stderr is the Monte Carlo error in nats/token."
    json_path, md_path = write_report(args.out, "Negative log-likelihood", report, [report], COLUMNS, notes)
    print(f"wrote {json_path} and {md_path}")
    return 0
