"""Evaluation of a trained run's backbone (SPEC §3 "Evaluation"; thesis Sec. 4.5–4.6, Tables 4.1–4.3).

- `knn`: the weighted kNN of thesis Fig. 4.4 (the training engine's `deep.knn`, on a clean train bank);
- `linear_probe`: a linear layer on frozen, once-computed backbone features (Tables 4.1–4.2);
- `finetune`: the whole network trained on a class-balanced label subset (`labels`, Table 4.3);
- `table`: our numbers beside the thesis' Tables 4.2 and 4.3.

Nothing here imports torch at package import, so `ssldyn` starts fast.
"""
