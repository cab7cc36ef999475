"""Loading models from specs: the one resolver (`specs`, `energy_specs`), training checkpoints (`checkpoint`),
exported and bundled directories (`pretrained`), Hugging Face and MDLM hub checkpoints, and the content hashes
every stored tensor file is checked against (`integrity`)."""
