"""Shared test drivers (not fakes of inputs, which live in tests/fakes/): the tiny vda-fit recipes and their
process runners (`recipes`), the localhost SLURM cluster (`slurm_cluster`), the DDP equivalence script run as a
child process (`ddp_equivalence_script`) and the numerical precision checks of the CUDA suite (`precision`)."""
