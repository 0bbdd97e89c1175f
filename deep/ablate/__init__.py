"""The thesis' ablations as resumable sweeps: `ssldyn ablate NAME` (SPEC §1, §5; thesis 4.6–4.7).

sweeps   ABLATIONS: name -> Ablation(title, thesis, hypotheses, variants); Variant(name, label, method,
         overrides); variant_configs(ablation, dataset, preset=, overrides=, data_root=, device=)
runner   run_ablation(name, out, preset="cpu", dataset="cifar10", overrides=None, data_root=None,
         device=None, jobs=1) -> summary dict; plan(variant_configs, out) -> [Task]; execute(tasks, jobs)
report   report(ablation, variant_configs, out, outcomes, command): OUT/NAME.csv, OUT/NAME.png, OUT/summary.md
cli      register(subparsers): `ssldyn ablate`
The figures are drawn by figures.ablations, which `ssldyn figures` also uses to redraw them from CSV.
Nothing here imports torch at package import.
"""
