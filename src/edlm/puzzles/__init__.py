"""Logic puzzles for reasoning with discrete diffusion and AR models (docs/puzzles.md).

- `sudoku`: board geometry, the exact solver (`solutions`, `count_solutions`), the solver's fill order,
  the generator of puzzles with one solution;
- `zebra`: Zebra (Einstein) puzzles, their exact solver, generator and one-line text form;
- `datasets`: seeded puzzle sets and splits by solution hash (`sudoku_set`, `zebra_set`, `split_of`);
- `lines`: reading puzzle files (Sudoku boards or Zebra lines), one puzzle per line, with one-sentence errors
  naming the line;
- `tokens`: the token formats of each kind of model (`cells`, `pairs` in row-major or solver order);
- `tokenizer`: the puzzle tokenizers `puzzle:SHAPE:FORMAT` of `data.tokenizer`, rows for training;
- `corpus`: directories of train, valid and test puzzles (`edlm data puzzles`), read by `data.corpus=puzzles`;
- `score`: whole-board and per-cell accuracy with 95% intervals.

Solving with a model is `edlm.sampling.puzzles` (it needs the samplers, a higher layer).
"""
