"""Command-line glue for `edlm sample --prompts FILE [--prompt-len P] [--cont-len C]`: every sample continues its
own prompt, the first P tokens of window i of P + C tokens of a human text file, cut as `edlm eval mauve --reference`
cuts it (`edlm.metrics.mauve.prompt_ids`). The samples are P + C tokens long by default; a longer `--seq-len`
generates that length, of which `edlm eval mauve` reads the first P + C tokens. `edlm.commands.sample` wires
these in.
"""

from __future__ import annotations

import argparse

import torch

from edlm.errors import require

PROMPT_DEFAULTS = {"prompt_len": 50, "cont_len": 50}


def add_prompt_arguments(parser: argparse.ArgumentParser) -> None:
    """Add --prompts, --prompt-len and --cont-len."""
    group = parser.add_argument_group("prompts (MAUVE: sample i continues prompt i of a human text file)")
    group.add_argument("--prompts", default=None, metavar="FILE",
                       help="human text file: sample i continues the first --prompt-len tokens of its window i of "
                            "--prompt-len + --cont-len tokens, the windows edlm eval mauve --reference cuts it into "
                            "(--sampler mdlm only; excludes --prefix)")
    group.add_argument("--prompt-len", type=int, default=None,
                       help=f"prompt tokens per sample (default {PROMPT_DEFAULTS['prompt_len']}; needs --prompts)")
    group.add_argument("--cont-len", type=int, default=None,
                       help=f"continuation tokens per window (default {PROMPT_DEFAULTS['cont_len']}; needs "
                            "--prompts); the default --seq-len is --prompt-len + --cont-len, and a longer --seq-len "
                            "generates the full length, of which MAUVE reads the first --prompt-len + --cont-len")


def check_prompt_args(args) -> None:
    """Refuse, in one sentence, prompt options that do not apply, then fill in the defaults (needs no model)."""
    if args.prompts is None:
        given = [flag for dest, flag in (("prompt_len", "--prompt-len"), ("cont_len", "--cont-len"))
                 if getattr(args, dest) is not None]
        require(not given, f"{', '.join(given)} {'needs' if len(given) == 1 else 'need'} --prompts FILE; add it or "
                f"drop {'it' if len(given) == 1 else 'them'}.")
        return
    require(args.sampler == "mdlm", f"--prompts applies to --sampler mdlm only; drop it with --sampler {args.sampler}.")
    require(args.prefix is None, "--prompts and --prefix both fix the first tokens; pass one of them.")
    for dest, value in PROMPT_DEFAULTS.items():
        if getattr(args, dest) is None:
            setattr(args, dest, value)
    require(args.prompt_len >= 1 and args.cont_len >= 1,
            f"--prompt-len {args.prompt_len} and --cont-len {args.cont_len} must be at least 1.")
    length = args.prompt_len + args.cont_len
    require(args.seq_len is None or args.seq_len >= length, f"--seq-len {args.seq_len} is shorter than --prompt-len "
            f"+ --cont-len = {length}; raise --seq-len or drop it (default {length}).")
    args.seq_len = args.seq_len or length


def load_prompts(args, tokenizer) -> torch.Tensor:
    """Long[num_samples, prompt_len]: the prompts of the --prompts file in the denoiser's tokenizer."""
    from edlm.metrics.mauve import prompt_ids

    return prompt_ids(args.prompts, tokenizer, args.prompt_len, args.cont_len, args.num_samples)


def prompt_settings(args) -> dict:
    """The JSONL settings of a prompted run (empty without --prompts)."""
    return {} if args.prompts is None else dict(prompts=args.prompts, prompt_len=args.prompt_len,
                                                cont_len=args.cont_len)
