"""Check edlm's SEDD hub mapping against SEDD's own model code (docs/sedd-hub-mapping.md).

    python scripts/sedd_hub_check.py --reference DIR [--out FILE.json]

DIR is a copy of `model/` from louaaron/Score-Entropy-Discrete-Diffusion (a directory holding the
package `model`, with its dependencies einops, omegaconf and huggingface_hub importable) in which
the one flash-attn call, `flash_attn_varlen_qkvpacked_func`, is replaced by
`torch.nn.functional.scaled_dot_product_attention` with the same math. This script never ships
or imports that code from edlm's tree: it is read from DIR at run time.

For each case (absorb with scale_by_sigma, uniform without; loglinear and geometric noise) it builds
SEDD's `SEDD(config)` with a small config, puts random values in EVERY parameter (the zero-initialised
adaLN modulations and output layer included; the rotary buffer keeps its real table), writes it with
SEDD's own `save_pretrained` (PyTorchModelHubMixin: config.json + model.safetensors) and as
`pytorch_model.bin`, loads each directory with `edlm.load("hf:DIR")`, and compares the log scores of
both models (eval mode, float32, CPU) on random token ids and random sigmas. Prints and writes the
max abs difference per case.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tempfile
from pathlib import Path

import torch

SMALL = {"hidden_size": 64, "cond_dim": 32, "length": 48, "n_blocks": 2, "n_heads": 4, "dropout": 0.1, "type": "ddit",
         "name": "check"}
CASES = {  # name: (graph, scale_by_sigma, noise section)
    "absorb-loglinear": ("absorb", True, {"type": "loglinear", "sigma_min": 1e-4, "sigma_max": 20}),
    "absorb-geometric": ("absorb", True, {"type": "geometric", "sigma_min": 1e-4, "sigma_max": 20}),
    "uniform-geometric": ("uniform", False, {"type": "geometric", "sigma_min": 1e-4, "sigma_max": 20}),
}


def sedd_config(graph: str, scale_by_sigma: bool, noise: dict, tokens: int) -> dict:
    """A config.json like SEDD's Hydra config (configs/config.yaml with a model section)."""
    return {"ngpus": 1, "tokens": tokens, "graph": {"type": graph, "file": "data", "report_all": False},
            "noise": noise, "model": {**SMALL, "scale_by_sigma": scale_by_sigma},
            "training": {"batch_size": 8, "ema": 0.9999}, "sampling": {"predictor": "euler", "steps": 128}}


def randomise(module: torch.nn.Module, generator: torch.Generator) -> None:
    """Random values in every parameter: N(1, 0.2^2) for norm weights, N(0, 1/fan_in) for matrices,
    N(0, 0.2^2) for biases, N(0, 1) for the embedding."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("norm1.weight") or name.endswith("norm2.weight") or "norm_final" in name:
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=generator))
            elif p.dim() == 2 and "embedding" not in name:
                p.copy_(torch.randn(p.shape, generator=generator) / math.sqrt(p.shape[1]))
            elif p.dim() == 2:
                p.copy_(torch.randn(p.shape, generator=generator))
            else:
                p.copy_(0.2 * torch.randn(p.shape, generator=generator))


def compare(reference_cls, name: str, tokens: int, work: Path, generator: torch.Generator) -> dict:
    import edlm

    graph, scale, noise = CASES[name]
    config = sedd_config(graph, scale, noise, tokens)
    ref = reference_cls(config).eval()
    randomise(ref, generator)
    zero_left = [n for n, p in ref.named_parameters() if bool((p == 0).all())]
    assert not zero_left, zero_left
    out = {"case": name, "parameters": sum(p.numel() for p in ref.parameters())}
    for fmt in ("safetensors", "bin"):
        directory = work / f"{name}-{fmt}"
        ref.save_pretrained(directory)  # SEDD's own hub writer: config.json + model.safetensors
        if fmt == "bin":
            (directory / "model.safetensors").unlink()
            torch.save(ref.state_dict(), directory / "pytorch_model.bin")
        model = edlm.load(f"hf:{directory}", device="cpu")
        assert model.graph == graph and model.scale_by_sigma == scale
        assert model.noise.name == noise["type"] and model.time_conditioned
        n = tokens + (1 if graph == "absorb" else 0)
        worst = 0.0
        for batch, length in ((3, 48), (2, 17)):
            x = torch.randint(n, (batch, length), generator=generator)
            sigma = torch.exp(torch.empty(batch).uniform_(math.log(1e-4), math.log(20.0), generator=generator))
            with torch.no_grad():
                a, b = ref(x, sigma).float(), model(x, sigma)
            worst = max(worst, float((a - b).abs().max()))
            out.setdefault("max_abs_output", 0.0)
            out["max_abs_output"] = max(out["max_abs_output"], float(a.abs().max()))
        out[f"max_abs_diff_{fmt}"] = worst
        shutil.rmtree(directory)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", required=True, help="directory holding SEDD's `model` package (SDPA-patched)")
    parser.add_argument("--tokens", type=int, default=50, help="data vocabulary V of the small configs (default 50)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="also write the results as JSON")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(args.reference).resolve()))
    from model import SEDD  # SEDD's model/transformer.py, from --reference

    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        results = [compare(SEDD, name, args.tokens, Path(tmp), generator) for name in CASES]
    for r in results:
        print(json.dumps(r))
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
